"""The respondent form, built from a questionnaire definition.

``build_form`` makes one WTForms field per question (field name = question id)
plus two buttons, ``save`` and ``submit``. Validation depends on the answers
themselves, so it does not use WTForms' fixed per-field validators:

* a question whose ``show_if`` is false (given the submitted answers) is hidden:
  it is never required, never validated, and its value is discarded;
* "save" keeps partial answers: nothing is required, but a badly typed answer
  (a date that is not a date, a number out of range…) is still reported;
* "submit" also requires every visible required question.

Templates read, on each question field: ``field.question`` (its definition),
``field.visible`` (render the group with the ``hidden`` attribute when false, so
a script can reveal it live), ``field.description`` (the help text) and, for
scales, ``field.min_label`` / ``field.max_label``. ``form.question_fields()``
lists them in order.

File questions are only validated here (type, presence); storing the upload is
the job of the code that handles the response, so ``extract_answers`` skips them.
"""
from __future__ import annotations

import datetime
import math

from flask import has_request_context, request
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField
from werkzeug.datastructures import FileStorage
from wtforms import (
    BooleanField,
    DateField,
    FloatField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import Length, NumberRange, StopValidation, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

DEFAULT_MAX_LENGTH = {"text": 500, "long_text": 5000}
FILE_EXTENSIONS = ["pdf", "png", "jpg", "jpeg"]
ACTIONS = ("save", "submit")

# Our own messages, in the form's locale (WTForms' built-in ones follow the
# request locale instead, and are phrased for developers).
MESSAGES = {
    "en": {
        "required": "Please answer this question.",
        "consent_required": "Please tick this box to continue.",
        "file_required": "Please add a file.",
        "choice": "Please choose one of the options.",
        "choices": "Please choose among the options.",
        "alone": "“%(option)s” cannot be ticked with other answers.",
        "number": "Please enter a number, for example 12 or 12.5.",
        "date": "Please enter a date, for example 2024-09-30.",
        "between": "Please enter a number between %(min)s and %(max)s.",
        "at_least": "Please enter a number of at least %(min)s.",
        "at_most": "Please enter a number of at most %(max)s.",
        "too_long": "Please keep this under %(max)d characters.",
        "file_type": "Please add a PDF, PNG or JPEG file.",
        "file_again": "Please choose your file again: files are not kept while the page has errors.",
        "save": "Save and continue later",
        "submit": "Submit my answers",
    },
    "fr": {
        "required": "Merci de répondre à cette question.",
        "consent_required": "Merci de cocher cette case pour continuer.",
        "file_required": "Merci d'ajouter un fichier.",
        "choice": "Merci de choisir l'une des réponses proposées.",
        "choices": "Merci de choisir parmi les réponses proposées.",
        "alone": "« %(option)s » ne peut pas être coché avec d'autres réponses.",
        "number": "Merci d'indiquer un nombre, par exemple 12 ou 12,5.",
        "date": "Merci d'indiquer une date, par exemple 2024-09-30.",
        "between": "Merci d'indiquer un nombre entre %(min)s et %(max)s.",
        "at_least": "Merci d'indiquer un nombre supérieur ou égal à %(min)s.",
        "at_most": "Merci d'indiquer un nombre inférieur ou égal à %(max)s.",
        "too_long": "Merci de ne pas dépasser %(max)d caractères.",
        "file_type": "Merci d'ajouter un fichier PDF, PNG ou JPEG.",
        "file_again": "Merci de choisir votre fichier à nouveau : il n'est pas gardé tant que la page a des erreurs.",
        "save": "Enregistrer et continuer plus tard",
        "submit": "Envoyer mes réponses",
    },
}


def localized(texts: dict | None, locale: str) -> str:
    """The text in ``locale``, else English, else French, else ''."""
    if not texts:
        return ""
    return texts.get(locale) or texts.get("en") or texts.get("fr") or ""


def help_text(question: dict, locale: str) -> str:
    """The help text of a question in ``locale`` ('' when it has none)."""
    return localized(question.get("help"), locale)


def _message(locale: str, key: str) -> str:
    return MESSAGES.get(locale, MESSAGES["en"])[key]


# ----------------------------------------------------------------------- conditions

def is_empty(value) -> bool:
    """No answer: None, blank text, no choice, or an unticked consent box.

    (0 is an answer: compare by identity with False, since ``0 == False``.)
    """
    return value is None or value is False or value == "" or value == []


def _same(a, b) -> bool:
    """Equality that keeps booleans apart from numbers (Python has True == 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def asked_in(definition: dict, privacy: str) -> dict:
    """The questionnaire as a campaign of this privacy asks it. Questions marked
    ``evidence`` (a payslip, a profile link, leave to contact an employer) are asked in
    identified campaigns only: only there do answers become claims, and evidence names
    its giver, which a confidential or anonymous campaign promises not to keep."""
    if privacy == "identified" or not any(q.get("evidence") for q in definition["questions"]):
        return definition
    return {**definition, "questions": [q for q in definition["questions"] if not q.get("evidence")]}


def is_visible(question: dict, answers: dict) -> bool:
    """Whether ``question`` is shown, given the answers to earlier questions.

    A question without ``show_if`` is always shown. A test on a question that has
    no answer yet is false, including ``none_of``: follow-up questions stay hidden
    until the question they follow is answered.
    """
    condition = question.get("show_if")
    return True if condition is None else _holds(condition, answers)


def _holds(condition: dict, answers: dict) -> bool:
    if "all" in condition:
        return all(_holds(part, answers) for part in condition["all"])
    if "any" in condition:
        return any(_holds(part, answers) for part in condition["any"])

    answer = answers.get(condition["question"])
    if is_empty(answer):
        return False
    if "answered" in condition:
        return True
    # A multi answer is a list of values; any other answer is one value.
    chosen = answer if isinstance(answer, list) else [answer]
    if "any_of" in condition:
        return any(_same(value, wanted) for value in chosen for wanted in condition["any_of"])
    if "none_of" in condition:
        return not any(_same(value, unwanted) for value in chosen for unwanted in condition["none_of"])
    if "equals" in condition:  # never on a multi question (the definition check refuses it)
        return not isinstance(answer, list) and _same(answer, condition["equals"])
    return False


def visible_answers(definition: dict, answers: dict) -> dict:
    """``answers`` without those to hidden questions, walking in question order.

    Order matters: a question hidden because of an earlier answer loses its
    answer, which may in turn hide the questions that depend on it.
    """
    kept = {}
    for question in definition["questions"]:
        qid = question["id"]
        if is_visible(question, kept) and qid in answers:
            kept[qid] = answers[qid]
    return kept


# ----------------------------------------------------------------------------- fields

class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes (a multi question)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class NumberField(FloatField):
    """A number that also accepts a decimal comma ("12,5") and refuses NaN/infinity."""

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        text = str(valuelist[0]).strip().replace(",", ".").replace(" ", "").replace("\u00a0", "")
        if text == "":
            self.data = None
            return
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            self.data = None
            raise ValueError(self.invalid_value_message)
        self.data = number


def _chosen_alone(alone: dict[str, str], locale: str):
    """A multi question's exclusive options ("None of these", value → label) are ticked
    alone or not at all: "none" with "new job" would be a claim nobody stands behind."""
    def check(form, field):
        chosen = list(field.data or ())
        clash = [value for value in chosen if value in alone]
        if clash and len(chosen) > 1:
            raise ValidationError(_message(locale, "alone") % {"option": alone[clash[0]]})
    return check


def _strip(value):
    """Trimmed, with a browser's CRLF line breaks as one character each, as its
    ``maxlength`` counts them (a 5,000-character answer it allows is not refused here)."""
    return value.replace("\r\n", "\n").strip() if isinstance(value, str) else value


def _make_field(question: dict, locale: str):
    """An unbound field for one question, and the validators that check its type."""
    qtype = question["type"]
    label = localized(question["label"], locale)
    common = {"description": help_text(question, locale)}
    checks = []  # run after the "answered?" check, see RespondentForm.validate_for

    if qtype in ("single", "multi"):
        choices = [SelectChoice(o["value"], localized(o["label"], locale)) for o in question["options"]]
        if qtype == "single":
            field = RadioField(label, choices=choices, invalid_choice_message=_message(locale, "choice"), **common)
        else:
            field = MultiCheckboxField(
                label, choices=choices, invalid_choice_message=_message(locale, "choices"), **common
            )
            alone = {o["value"]: localized(o["label"], locale) for o in question["options"] if o.get("exclusive")}
            if alone:
                checks.append(_chosen_alone(alone, locale))
    elif qtype == "scale":
        low, high = int(question["min"]), int(question["max"])
        choices = [SelectChoice(str(point), str(point)) for point in range(low, high + 1)]
        field = RadioField(label, choices=choices, invalid_choice_message=_message(locale, "choice"), **common)
    elif qtype in ("text", "long_text"):
        limit = question.get("max_length", DEFAULT_MAX_LENGTH[qtype])
        checks.append(Length(max=limit, message=_message(locale, "too_long")))
        field_class = StringField if qtype == "text" else TextAreaField
        field = field_class(label, filters=[_strip], render_kw={"maxlength": limit}, **common)
    elif qtype == "number":
        low, high = question.get("min"), question.get("max")
        render_kw = {}
        if low is not None and high is not None:
            checks.append(NumberRange(min=low, max=high, message=_message(locale, "between")))
        elif low is not None:
            checks.append(NumberRange(min=low, message=_message(locale, "at_least")))
        elif high is not None:
            checks.append(NumberRange(max=high, message=_message(locale, "at_most")))
        if low is not None:
            render_kw["min"] = low
        if high is not None:
            render_kw["max"] = high
        field = NumberField(label, invalid_value_message=_message(locale, "number"), render_kw=render_kw, **common)
    elif qtype == "date":
        field = DateField(label, format="%Y-%m-%d", invalid_value_message=_message(locale, "date"), **common)
    elif qtype == "consent":
        field = BooleanField(label, **common)
    elif qtype == "file":
        checks.append(FileAllowed(FILE_EXTENSIONS, message=_message(locale, "file_type")))
        field = FileField(label, render_kw={"accept": ".pdf,.png,.jpg,.jpeg"}, **common)
    else:  # the schema allows no other type
        raise ValueError(f"unknown question type {qtype!r}")
    return field, checks


# ------------------------------------------------------------------------------ form

class RespondentForm(FlaskForm):
    """Base class of the per-questionnaire forms made by :func:`build_form`."""

    # Set by build_form on each instance. Declared here so that a question id
    # equal to one of these names is caught (see RESERVED_IDS in services).
    definition: dict = None
    locale: str = None
    answers: dict = None  # the answers saved before this request (used for file questions)
    type_checks: dict = None  # question id → validators of its type

    def question_fields(self) -> list:
        return [self[question["id"]] for question in self.definition["questions"]]

    @property
    def action(self) -> str:
        """'submit' only when the submit button was pressed; anything else saves.

        Submitting is final, so it must be deliberate (pressing Enter in a text box
        may send the form without naming a button).
        """
        return "submit" if self.submit.data else "save"

    def validate(self, extra_validators=None) -> bool:
        """Validate for the button that was pressed (see ``validate_for``)."""
        return self.validate_for(self.action)

    def validate_for(self, action: str) -> bool:
        """Validate for ``save`` (partial answers) or ``submit`` (complete answers).

        Hidden questions are skipped and emptied; visible ones get their type
        checks, and on submit the required ones must be answered.
        """
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        self.form_errors = []
        success = True
        question_ids = {question["id"] for question in self.definition["questions"]}
        for name, field in self._fields.items():
            if name not in question_ids:  # csrf_token and the buttons
                success = field.validate(self) and success
        visible = _visible_ids(self)
        for field in self.question_fields():
            field.visible = field.question["id"] in visible
            if not field.visible:
                _discard(field)
                continue
            must_answer = action == "submit" and field.question.get("required", False)
            first = _Answered(must_answer, self.locale, self.answers)
            success = field.validate(self, [first, *self.type_checks[field.question["id"]]]) and success
        return success


class _Answered:
    """First check of a visible question: is it answered, and must it be?

    Unanswered and optional: stop here (no type check on nothing, and the
    messages of an empty date or number are dropped). Unanswered and required:
    stop with "please answer". Answered: go on to the type checks.
    """

    def __init__(self, required: bool, locale: str, saved_answers: dict):
        self.required = required
        self.locale = locale
        self.saved_answers = saved_answers

    def __call__(self, form, field):
        if not _raw_is_empty(field):
            if field.process_errors:
                # Unreadable (a date that is not a date…): its own message says it all.
                raise StopValidation()
            return
        qtype = field.question["type"]
        if qtype == "file" and not is_empty(self.saved_answers.get(field.question["id"])):
            # A file stored by an earlier save counts as the answer.
            field.errors[:] = []
            raise StopValidation()
        field.errors[:] = []
        if not self.required:
            raise StopValidation()
        key = {"consent": "consent_required", "file": "file_required"}.get(qtype, "required")
        raise StopValidation(_message(self.locale, key))


def _raw_is_empty(field) -> bool:
    """Whether the respondent sent nothing for this field (blank counts as nothing)."""
    if field.question["type"] == "consent":
        return field.data is not True
    for raw in field.raw_data or ():
        if isinstance(raw, FileStorage):
            if raw:  # a FileStorage is false when no file was chosen
                return False
        elif str(raw).strip():
            return False
    return True


def ask_for_files_again(form) -> None:
    """When the page comes back with errors, a file chosen in it was not kept (nothing
    is stored from a page with errors, and a browser never fills a file box again):
    say so at each such question, so the respondent does not submit without it. (A
    function, not a method: a form's names are names a question cannot take.)"""
    for field in form.question_fields():
        chosen = isinstance(field.data, FileStorage) and field.data.filename
        if field.question["type"] == "file" and field.visible and chosen and not field.errors:
            field.errors.append(_message(form.locale, "file_again"))


#: the form field (not a question: question ids start with a letter) listing the questions
#: the respondent's page showed, kept current by the page's script
SHOWN = "_shown"


def questions_not_seen(form) -> list[str]:
    """Questions now shown (given the answers sent) that the page which sent them did not
    show: without the page's script, a follow-up appears only when the page comes back.
    Empty when the page did not say what it showed (a client of its own)."""
    if not has_request_context() or SHOWN not in request.form:
        return []
    shown = set(request.form[SHOWN].split())
    return [field.question["id"] for field in form.question_fields() if field.visible and field.question["id"] not in shown]


def _discard(field) -> None:
    """Forget the answer of a hidden question, so it is neither kept nor shown again."""
    field.errors = []
    field.raw_data = []
    if field.question["type"] == "multi":
        field.data = []
    elif field.question["type"] == "consent":
        field.data = False
    else:
        field.data = None


def _field_value(field):
    """The plain JSON value of a field (None when empty or not readable)."""
    qtype, data = field.question["type"], field.data
    if data is None:
        return None
    if qtype == "multi":
        return list(data) or None
    if qtype == "scale":
        try:
            return int(data)
        except (TypeError, ValueError):
            return None
    if qtype in ("text", "long_text", "single"):
        if not isinstance(data, str):
            return None
        return data.strip() or None
    if qtype == "number":
        return int(data) if float(data).is_integer() else float(data)
    if qtype == "date":
        return data.isoformat() if isinstance(data, datetime.date) else None
    if qtype == "consent":
        return True if data is True else None  # an unticked box is no answer
    return None  # file: the upload is not an answer value (stored elsewhere)


def _current_values(form) -> dict:
    values = {}
    for field in form.question_fields():
        value = _field_value(field)
        if not is_empty(value):
            values[field.question["id"]] = value
    return values


def _visible_ids(form) -> set[str]:
    """Ids of the questions shown, given what the form currently holds."""
    # Conditions only look at earlier questions, so checking each question
    # against the answers kept for the whole form is the same as walking in order.
    kept = visible_answers(form.definition, _current_values(form))
    return {question["id"] for question in form.definition["questions"] if is_visible(question, kept)}


def _prefill(definition: dict, answers: dict) -> dict:
    """Saved answers (plain JSON) turned into field data."""
    data = {}
    for question in definition["questions"]:
        value = answers.get(question["id"])
        if value is None or question["type"] == "file":
            continue
        if question["type"] == "scale":
            value = str(value)
        elif question["type"] == "date":
            try:
                value = datetime.date.fromisoformat(value)
            except (TypeError, ValueError):
                continue
        data[question["id"]] = value
    return data


def build_form(
    definition: dict,
    locale: str,
    answers: dict | None = None,
    formdata=None,
    meta: dict | None = None,
) -> RespondentForm:
    """A form for ``definition`` with labels in ``locale``.

    ``formdata``: the submitted data to read; when None, the current request's
    form and files are read if it is a POST (Flask-WTF's usual behaviour).
    Without submitted data, the fields are filled from ``answers`` (the saved
    ones). ``meta`` is passed to Flask-WTF, e.g. ``{"csrf": False}``.
    """
    answers = answers or {}
    attrs = {}
    type_checks = {}
    for question in definition["questions"]:
        if hasattr(RespondentForm, question["id"]):
            # validate_definition refuses these ids (RESERVED_IDS); this is a safety net.
            raise ValueError(f"question id {question['id']!r} clashes with the form itself")
        attrs[question["id"]], type_checks[question["id"]] = _make_field(question, locale)
    attrs["save"] = SubmitField(_message(locale, "save"))
    attrs["submit"] = SubmitField(_message(locale, "submit"))
    form_class = type("QuestionnaireForm", (RespondentForm,), attrs)

    submitted = formdata is not None or (has_request_context() and request.method in ("POST", "PUT", "PATCH", "DELETE"))
    kwargs = {"meta": meta or {}}
    if formdata is not None:
        kwargs["formdata"] = formdata
    if not submitted:
        kwargs["data"] = _prefill(definition, answers)
    form = form_class(**kwargs)

    form.definition = definition
    form.locale = locale
    form.answers = answers
    form.type_checks = type_checks
    for question in definition["questions"]:
        field = form[question["id"]]
        field.question = question
        if question["type"] == "scale":
            field.min_label = localized(question.get("min_label"), locale)
            field.max_label = localized(question.get("max_label"), locale)
    visible = _visible_ids(form)
    for field in form.question_fields():
        field.visible = field.question["id"] in visible
    return form


def extract_answers(form: RespondentForm, definition: dict) -> dict:
    """The answers to store: plain JSON, visible questions only, empty ones left out.

    Dates are ISO strings, numbers int or float, scales int, multi answers lists,
    a ticked consent ``True`` (unticked: left out). File questions are left out:
    the uploaded file is ``form[question_id].data`` and is stored elsewhere.
    Call it after ``validate_for``; an answer that failed validation is left out.
    """
    values = {}
    for field in form.question_fields():
        if field.question["type"] == "file" or field.errors:
            continue
        value = _field_value(field)
        if not is_empty(value):
            values[field.question["id"]] = value
    return visible_answers(definition, values)
