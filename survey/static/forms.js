// A page that comes back with errors moves the focus to its summary, so a keyboard or
// screen-reader user starts from the list of what to fix, each linked to its field.
(function () {
  "use strict";
  var summary = document.querySelector(".error-summary");
  if (summary) { summary.focus(); }
}());
