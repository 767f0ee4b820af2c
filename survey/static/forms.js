// A page that comes back with errors moves the focus to its summary, so a keyboard or
// screen-reader user starts from the list of what to fix, each linked to its field.
(function () {
  "use strict";
  var summary = document.querySelector(".error-summary");
  if (!summary) { return; }
  summary.focus();
  // An embedded PDF (evidence on a claim page) takes the focus as its viewer starts: give
  // it back, once, while the page is opening and before the reader has done anything.
  var until = Date.now() + 3000;
  function stop() { until = 0; }
  document.addEventListener("keydown", stop);
  document.addEventListener("pointerdown", stop);
  function giveBack() {
    var active = document.activeElement;
    if (Date.now() < until && active && /^(OBJECT|EMBED|IFRAME)$/.test(active.tagName)) {
      summary.focus();
      stop();
    }
  }
  window.addEventListener("load", giveBack);
  window.addEventListener("blur", function () { setTimeout(giveBack, 0); });
}());
