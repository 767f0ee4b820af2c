// Shows or hides conditional questions as the respondent answers, as the server decides
// (survey/respond/forms.py: _holds, visible_answers), so the form also works without it:
// - values compare as the server's do: the page's "1" is the definition's 1, a ticked
//   consent box is true and never equals 1;
// - a question inside a hidden block counts as unanswered, so what follows from it hides
//   too (the server drops a hidden question's answer, and then what depends on it);
// - a multi question's "exclusive" option (e.g. "None of these") unticks the others, and
//   ticking another unticks it.
(function () {
  "use strict";
  var form = document.querySelector("form.survey");
  if (!form) { return; }

  function shown(el) {
    var block = el.closest(".question");
    return !block || !block.hidden;
  }

  function values(name) {
    var out = [];
    form.querySelectorAll("[name='" + name + "']").forEach(function (el) {
      if (!shown(el)) { return; }
      if ((el.type === "radio" || el.type === "checkbox")) {
        if (el.checked) { out.push(el.type === "checkbox" && el.value === "y" ? true : el.value); }
      } else if (el.value !== "") {
        out.push(el.value);
      }
    });
    return out;
  }

  function same(given, wanted) {
    if (typeof given === "boolean" || typeof wanted === "boolean") { return given === wanted; }
    if (typeof wanted === "number") { return given.trim() !== "" && Number(given) === wanted; }
    return String(given) === String(wanted);
  }

  function among(given, list) {
    return list.some(function (wanted) { return same(given, wanted); });
  }

  function holds(cond) {
    if (cond.all) { return cond.all.every(holds); }
    if (cond.any) { return cond.any.some(holds); }
    var given = values(cond.question);
    if (!given.length) { return false; }
    if (cond.answered) { return true; }
    if (cond.any_of) { return given.some(function (v) { return among(v, cond.any_of); }); }
    if (cond.none_of) { return given.every(function (v) { return !among(v, cond.none_of); }); }
    if ("equals" in cond) { return given.length === 1 && same(given[0], cond.equals); }
    return false;
  }

  var shownField = form.querySelector("input[name=_shown]");

  function update() {
    // In page order: a block hidden here empties what later blocks test.
    form.querySelectorAll("[data-show-if]").forEach(function (block) {
      block.hidden = !holds(JSON.parse(block.getAttribute("data-show-if")));
    });
    // What the respondent sees, for the server: it sends the page back rather than take a
    // submission that opens questions they have not seen (which, with this script, never
    // happens).
    if (shownField) {
      var ids = [];
      form.querySelectorAll(".question").forEach(function (block) {
        if (!block.hidden) { ids.push(block.id.replace(/^q-/, "")); }
      });
      shownField.value = ids.join(" ");
    }
  }

  function exclusive(event) {
    var box = event.target;
    if (box.type !== "checkbox" || !box.checked) { return; }
    var group = form.querySelectorAll("input[type=checkbox][name='" + box.name + "']");
    group.forEach(function (other) {
      if (other !== box && (box.hasAttribute("data-exclusive") || other.hasAttribute("data-exclusive"))) {
        other.checked = false;
      }
    });
  }

  // A file larger than the server takes would cost the respondent the whole page (the
  // server refuses the request before reading it): refused here, with what was typed kept.
  function tooLarge(event) {
    var refused = null;
    form.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
      var note = document.getElementById(input.id + "-too-large");
      if (note) { note.remove(); }
      var file = input.files && input.files[0];
      if (!shown(input) || !file || file.size <= Number(input.getAttribute("data-max-bytes"))) { return; }
      note = document.createElement("p");
      note.className = "error-message";
      note.id = input.id + "-too-large";
      note.setAttribute("role", "alert");
      note.textContent = input.getAttribute("data-too-large");
      input.parentNode.insertBefore(note, input);
      var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
        return id && id !== note.id;
      });
      input.setAttribute("aria-describedby", described.concat(note.id).join(" "));
      refused = refused || input;
    });
    if (refused) {
      event.preventDefault();
      refused.focus();
    }
  }

  form.addEventListener("submit", tooLarge);
  form.addEventListener("change", function (event) { exclusive(event); update(); });
  form.addEventListener("input", update);
  update();
}());
