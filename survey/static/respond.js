// Shows or hides conditional questions as the respondent answers.
// The server applies the same conditions, so the form also works without this script.
(function () {
  "use strict";
  var form = document.querySelector("form.survey");
  if (!form) { return; }

  function values(name) {
    var out = [];
    form.querySelectorAll("[name='" + name + "']").forEach(function (el) {
      if ((el.type === "radio" || el.type === "checkbox")) {
        if (el.checked) { out.push(el.type === "checkbox" && el.value === "y" ? true : el.value); }
      } else if (el.value !== "") {
        out.push(el.value);
      }
    });
    return out;
  }

  function holds(cond) {
    if (cond.all) { return cond.all.every(holds); }
    if (cond.any) { return cond.any.some(holds); }
    var given = values(cond.question);
    if (!given.length) { return false; }
    if (cond.any_of) { return given.some(function (v) { return cond.any_of.indexOf(v) !== -1; }); }
    if (cond.none_of) { return given.every(function (v) { return cond.none_of.indexOf(v) === -1; }); }
    if ("equals" in cond) { return given.some(function (v) { return String(v) === String(cond.equals); }); }
    if (cond.answered) { return true; }
    return false;
  }

  function update() {
    form.querySelectorAll("[data-show-if]").forEach(function (block) {
      block.hidden = !holds(JSON.parse(block.getAttribute("data-show-if")));
    });
  }

  form.addEventListener("change", update);
  form.addEventListener("input", update);
  update();
}());
