// Keeps a campaign page's sending progress current while its invitations go out: asks the
// server for the figures every few seconds (data-interval), updates the bar, the sentence
// (an aria-live region, changed only when its words change) and the counts; when the
// campaign's status changes (sending → open), stops and reloads the page once, so the rest
// of it (funnel, recipients, buttons) is current too.
// Without this script the page shows the figures as of its load and a "Refresh" link.
(function () {
  "use strict";
  var box = document.querySelector("[data-progress-url]");
  if (!box || !window.fetch) { return; }

  var url = box.getAttribute("data-progress-url");
  var status = box.getAttribute("data-status");
  var interval = Math.max(parseFloat(box.getAttribute("data-interval")) || 3, 0.1) * 1000;
  var bar = box.querySelector("progress");
  var text = document.getElementById("sending-text");
  var failures = 0;
  var MAX_FAILURES = 5;  // then stop: logged out, or the server is gone; "Refresh" still works

  function show(data) {
    if (bar && data.preparing) {
      bar.removeAttribute("value");  // indeterminate: the audience is still being invited
    } else if (bar) {
      bar.max = Math.max(data.invited, 1);
      bar.value = data.sent;
    }
    if (text && text.textContent !== data.text) { text.textContent = data.text; }
    document.querySelectorAll("[data-count]").forEach(function (el) {
      var key = el.getAttribute("data-count");
      if (typeof data[key] === "number" && el.textContent !== String(data[key])) {
        el.textContent = String(data[key]);
      }
    });
  }

  function later() { window.setTimeout(poll, interval); }

  function poll() {
    if (document.hidden) { later(); return; }  // nobody is looking: ask when they are
    // "redirect: error": an expired session answers with the login page, which is no JSON
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin",
                cache: "no-store", redirect: "error"})
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        show(data);
        if (data.status !== status) {
          window.location.reload();
          return;
        }
        later();
      })
      .catch(function () {
        failures += 1;
        if (failures < MAX_FAILURES) { later(); }
      });
  }

  later();
}());
