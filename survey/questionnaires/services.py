"""Questionnaire definitions: parse, validate, version, freeze.

A definition is a JSON document (YAML is accepted too) described by ``schema.json``
and documented in ``docs/questionnaires.md``. Checking one happens in two steps:

1. the JSON Schema checks the structure (keys, types, patterns);
2. :func:`_semantic_problems` checks what a schema cannot say: ids are unique,
   conditions only look at earlier questions, options fit the question type…

Every problem is reported at once, in the reader's language, with its location, inside a
single :class:`ValidationFailed` so that an admin can fix a file in one go. The schema's
own messages (``x-errors``) are translated through ``SCHEMA_MESSAGES``, and jsonschema's
through ``_describe``.

Versioning: a questionnaire version is never edited. Uploading a definition for
an existing slug creates the next version (unless it is identical to the latest
one). A version is frozen when a campaign first uses it; freezing only records the
date, because nothing edits a version anyway; there is deliberately no
``update_questionnaire``.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import yaml
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from jsonschema import Draft202012Validator
from sqlalchemy import and_, func, select

from survey.core.errors import ValidationFailed
from survey.core.i18n import LazyText, lazy_join
from survey.core.types import utcnow
from survey.extensions import db
from survey.questionnaires.models import Questionnaire

HERE = Path(__file__).resolve().parent
SCHEMA_PATH = HERE / "schema.json"
BUILTIN_DIR = HERE / "builtin"

#: A definition is a few tens of kilobytes (the built-in alumni one: 10 kB); anything
#: far larger is a mistake, and would make the pure-Python YAML parser slow.
MAX_DEFINITION_BYTES = 256_000

CHOICE_TYPES = ("single", "multi")

#: Which question types each optional key applies to (the others are refused
#: rather than silently ignored, so that a typo in ``type`` shows up).
KEYS_BY_TYPE = {
    "options": ("single", "multi"),
    "min": ("number", "scale"),
    "max": ("number", "scale"),
    "min_label": ("scale",),
    "max_label": ("scale",),
    "max_length": ("text", "long_text"),
}

#: A scale is shown as radio buttons: 11 points (0 to 10) is the most that stays usable.
MAX_SCALE_POINTS = 11

#: Question ids become field names on the respondent form
#: (survey/respond/forms.py); these names are already taken by the form itself.
RESERVED_IDS = frozenset({
    "csrf_token", "save", "submit", "meta", "data", "errors", "form_errors", "process",
    "post_process", "populate_obj", "validate", "validate_on_submit", "validate_for",
    "is_submitted", "hidden_tag", "action", "definition", "locale", "answers",
    "type_checks", "question_fields",
})


# --------------------------------------------------------------------------- parsing

def parse_definition(raw: bytes | str, filename: str | None = None) -> dict:
    """Read an uploaded definition (JSON or YAML) and validate it.

    YAML is used when the file name ends in ``.yaml``/``.yml``, or when the text
    is not valid JSON. Any problem, including unreadable input, raises
    :class:`ValidationFailed`; nothing else escapes.
    """
    if isinstance(raw, (bytes, bytearray)):
        if len(raw) > MAX_DEFINITION_BYTES:
            raise ValidationFailed(_l("The questionnaire file is too large (256 kB at most)."))
        try:
            text = bytes(raw).decode("utf-8-sig")  # -sig: tolerate a BOM from Windows editors
        except UnicodeDecodeError:
            raise ValidationFailed(_l("The questionnaire file is not UTF-8 text (JSON or YAML).")) from None
    elif isinstance(raw, str):
        text = raw
        if len(text) > MAX_DEFINITION_BYTES:
            raise ValidationFailed(_l("The questionnaire file is too large (256 kB at most)."))
    else:
        raise ValidationFailed(_l("The questionnaire definition must be JSON or YAML text."))

    if not text.strip():
        raise ValidationFailed(_l("The questionnaire file is empty."))

    name = (filename or "").lower()
    if name.endswith((".yaml", ".yml")):
        data = _load_yaml(text)
    else:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            try:
                data = _load_yaml(text)
            except ValidationFailed:
                # Neither worked: report the error of the format it most looks like.
                if name.endswith(".json") or text.lstrip().startswith(("{", "[")):
                    raise ValidationFailed(_l("The file is not valid JSON: %(problem)s",
                                              problem=_json_error(exc))) from None
                raise
    return validate_definition(data)


def _json_error(exc: Exception):
    if isinstance(exc, json.JSONDecodeError):  # the json module's words, our position
        return _l("%(problem)s (line %(line)d, column %(column)d)", problem=exc.msg, line=exc.lineno,
                  column=exc.colno)
    if isinstance(exc, RecursionError):
        return _l("it is nested too deeply")
    return str(exc)[:200]  # e.g. a number too long to convert


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases.

    Anchors and aliases can expand a tiny file into gigabytes once copied out
    ("billion laughs"); a questionnaire never needs them. (The faster C loader is
    not used: it crashes the process on deeply nested input.)
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise ValidationFailed(_l("The YAML file uses aliases (*name); write the values out in full."))
        return super().compose_node(parent, index)


def _load_yaml(text: str):
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.reader.ReaderError:
        raise ValidationFailed(
            _l("The file is not valid YAML: it contains control characters (is it binary?).")) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or _l("it cannot be read")  # PyYAML's words, or ours
        if mark:
            raise ValidationFailed(_l("The file is not valid YAML: %(problem)s (line %(line)d, column %(column)d)",
                                      problem=problem, line=mark.line + 1, column=mark.column + 1)) from None
        raise ValidationFailed(_l("The file is not valid YAML: %(problem)s", problem=problem)) from None
    except RecursionError:
        raise ValidationFailed(_l("The YAML file is nested too deeply.")) from None
    except ValidationFailed:
        raise
    except Exception:  # noqa: BLE001
        # PyYAML's constructors let plain errors through on odd values
        # (ValueError for "2024-13-45" or a 5000-digit number…).
        raise ValidationFailed(_l(
            "The file is not valid YAML: a value cannot be read (an impossible date, a huge number…); "
            "put it in quotes if it is text."
        )) from None


# ------------------------------------------------------------------------ validation

@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_definition(definition) -> dict:
    """Check a definition; return a plain-JSON copy of it or raise ValidationFailed.

    The structural (schema) check runs first; the semantic checks only run on a
    structurally valid definition, since they rely on its shape.
    """
    if not isinstance(definition, dict):
        raise ValidationFailed(_l(
            "The questionnaire definition must be a mapping (a JSON object) with slug, kind, title and questions."
        ))
    # A JSON round trip gives a detached copy and refuses what JSON cannot hold:
    # YAML dates or binary values, NaN or infinity.
    try:
        definition = json.loads(json.dumps(definition, allow_nan=False))
    except (TypeError, ValueError):
        raise ValidationFailed(_l(
            "The questionnaire definition holds values JSON cannot represent (a date, binary data, "
            "NaN or infinity); put dates and similar values in quotes."
        )) from None
    except RecursionError:
        raise ValidationFailed(_l("The questionnaire definition is nested too deeply.")) from None

    try:
        problems = _schema_problems(definition)
        if not problems:
            problems = _semantic_problems(definition)
    except RecursionError:  # conditions nested hundreds of levels deep
        raise ValidationFailed(_l("The questionnaire definition is nested too deeply.")) from None
    if problems:
        # "…has 2 problems:\n- first\n- second", put together when read, in the reader's language
        message = lazy_join("\n- ", [LazyText(_problems_heading, len(problems)), *problems])
        raise ValidationFailed(message, problems=problems)
    return definition


def _problems_heading(count: int) -> str:
    """Called when the message is read (a lazy ``ngettext``)."""
    return ngettext("The questionnaire definition has %(num)d problem:",
                    "The questionnaire definition has %(num)d problems:", count)


def _schema_problems(definition: dict) -> list:
    # In document order: questions[2] before questions[10].
    errors = sorted(_validator().iter_errors(definition), key=lambda e: _path_key(e.absolute_path))
    problems = []
    for error in errors:
        problem = _l("%(where)s: %(problem)s", where=_location(definition, list(error.absolute_path)),
                     problem=_describe(error))
        if problem not in problems:
            problems.append(problem)
    return problems


def _path_key(path) -> list:
    return [(0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in path]


#: the schema's ``x-errors``, in the reader's language (tests check each one is here)
SCHEMA_MESSAGES = {
    "a slug is lowercase letters and digits, in words joined by single hyphens (e.g. alumni-outcomes)":
        _l("a slug is lowercase letters and digits, in words joined by single hyphens (e.g. alumni-outcomes)"),
    "a questionnaire needs at least one question": _l("a questionnaire needs at least one question"),
    "a question id is a lowercase letter followed by lowercase letters, digits or underscores (at most 63 "
    "characters)": _l("a question id is a lowercase letter followed by lowercase letters, digits or underscores "
                      "(at most 63 characters)"),
    "a choice question needs at least two options": _l("a choice question needs at least two options"),
    "a scale question needs both 'min' and 'max'": _l("a scale question needs both 'min' and 'max'"),
    "a condition needs 'question' (or is an 'all' or 'any' list)":
        _l("a condition needs 'question' (or is an 'all' or 'any' list)"),
    "a condition needs one test: any_of, none_of, equals or answered":
        _l("a condition needs one test: any_of, none_of, equals or answered"),
    "a condition has exactly one test: any_of, none_of, equals or answered":
        _l("a condition has exactly one test: any_of, none_of, equals or answered"),
}
#: JSON Schema's types, in words
TYPE_WORDS = {"string": _l("text"), "integer": _l("a whole number"), "number": _l("a number"),
              "object": _l("an object ({…})"), "array": _l("a list ([…])"), "boolean": _l("true or false"),
              "null": _l("null")}


def _describe(error):
    """jsonschema's message, reworded (and translated) where the default is unclear."""
    custom = error.schema.get("x-errors", {}) if isinstance(error.schema, dict) else {}
    if error.validator in custom:
        return SCHEMA_MESSAGES.get(custom[error.validator], custom[error.validator])
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return _l("missing %(keys)s", keys=", ".join(repr(key) for key in missing))
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {})
        unknown = [key for key in error.instance if key not in known]
        return _l("unknown key %(keys)s (check the spelling)", keys=", ".join(repr(key) for key in unknown))
    if error.validator == "enum":
        allowed = ", ".join(str(value) for value in error.validator_value)
        return _l("%(value)s is not allowed; use one of: %(allowed)s", value=repr(error.instance), allowed=allowed)
    if error.validator == "const":
        return _l("must be %(value)s", value=json.dumps(error.validator_value))
    value = error.validator_value
    if error.validator == "type":
        wanted = value if isinstance(value, list) else [value]
        return _l("%(value)s should be %(type)s", value=json.dumps(error.instance, ensure_ascii=False)[:60],
                  type=" / ".join(str(TYPE_WORDS.get(name, name)) for name in wanted))
    if error.validator == "minLength":
        return _l("must not be empty") if value == 1 else ngettext(
            "at least %(num)d character", "at least %(num)d characters", value)
    if error.validator == "maxLength":
        return ngettext("at most %(num)d character", "at most %(num)d characters", value)
    if error.validator in ("minItems", "minProperties"):
        return _l("must not be empty") if value == 1 else ngettext(
            "at least %(num)d item", "at least %(num)d items", value)
    if error.validator in ("maxItems", "maxProperties"):
        return ngettext("at most %(num)d item", "at most %(num)d items", value)
    if error.validator == "minimum":
        return _l("must be %(number)s or more", number=value)
    if error.validator == "maximum":
        return _l("must be %(number)s or less", number=value)
    return error.message


def _location(definition: dict, path: list):
    """``questions[3] (employer).options[0].label`` from a JSON path."""
    if not path:
        return _l("definition")
    text = ""
    node = definition
    for index, part in enumerate(path):
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
        # Name the question, so that "questions[7]" does not need counting.
        if index == 1 and path[0] == "questions" and isinstance(node, dict) and isinstance(node.get("id"), str):
            text += f" ({node['id']})"
    return text


def _question_location(index: int, question: dict) -> str:
    return f"questions[{index}] ({question['id']})"


def _semantic_problems(definition: dict) -> list:
    """The rules the schema cannot express; the definition is structurally valid."""
    problems: list = []
    earlier: dict[str, dict] = {}  # id → question, for the questions seen so far
    all_ids = {q["id"] for q in definition["questions"]}
    for index, question in enumerate(definition["questions"]):
        where = _question_location(index, question)
        qid, qtype = question["id"], question["type"]

        if qid in earlier:
            problems.append(_l("%(where)s: the id '%(id)s' is already used by an earlier question",
                               where=where, id=qid))
        if qid in RESERVED_IDS:
            problems.append(_l("%(where)s: the id '%(id)s' is reserved by the respondent form; choose another",
                               where=where, id=qid))

        for key, types in KEYS_BY_TYPE.items():
            if key in question and qtype not in types:
                problems.append(_l("%(where)s: '%(key)s' does not apply to a %(type)s question",
                                   where=where, key=key, type=qtype))

        if qtype in CHOICE_TYPES:
            if "options" not in question:
                problems.append(_l("%(where)s: a %(type)s question needs 'options'", where=where, type=qtype))
            else:
                seen = set()
                for value in (option["value"] for option in question["options"]):
                    if value in seen:
                        problems.append(_l("%(where)s: the option value '%(value)s' appears more than once",
                                           where=where, value=value))
                    seen.add(value)
                if qtype != "multi" and any(option.get("exclusive") for option in question["options"]):
                    problems.append(_l("%(where)s: 'exclusive' applies to the options of a multi question only",
                                       where=where))

        if "min" in question and "max" in question:
            low, high = question["min"], question["max"]
            if qtype == "scale" and low >= high:
                problems.append(_l("%(where)s: a scale needs min < max (got min %(low)s, max %(high)s)",
                                   where=where, low=low, high=high))
            elif qtype == "scale" and high - low + 1 > MAX_SCALE_POINTS:
                problems.append(_l("%(where)s: a scale has at most %(points)d points (got %(low)s to %(high)s)",
                                   where=where, points=MAX_SCALE_POINTS, low=low, high=high))
            elif qtype == "number" and low > high:
                problems.append(_l("%(where)s: min (%(low)s) is greater than max (%(high)s)",
                                   where=where, low=low, high=high))

        if "show_if" in question:
            for problem in _condition_problems(question["show_if"], earlier, all_ids, qid):
                problems.append(_l("%(where)s: show_if %(problem)s", where=where, problem=problem))

        earlier.setdefault(qid, question)
    return problems


def _condition_problems(condition: dict, earlier: dict, all_ids: set, own_id: str) -> list:
    if "all" in condition or "any" in condition:
        problems = []
        for part in condition.get("all") or condition.get("any"):
            problems.extend(_condition_problems(part, earlier, all_ids, own_id))
        return problems

    ref = condition["question"]
    target = earlier.get(ref)
    if target is None:
        if ref == own_id:
            reason = _l("it is this question itself")
        elif ref in all_ids:
            reason = _l("it comes later")
        else:
            reason = _l("there is no such question")
        return [_l("refers to '%(ref)s', which is not an earlier question (%(reason)s)", ref=ref, reason=reason)]

    if target["type"] == "file":
        return [_l("refers to '%(ref)s', a file question; conditions cannot depend on uploads", ref=ref)]
    if "equals" in condition and target["type"] == "multi":
        return [_l("uses 'equals' on '%(ref)s', a multi question; use any_of or none_of", ref=ref)]

    if "answered" in condition:
        return []
    test = "any_of" if "any_of" in condition else "none_of" if "none_of" in condition else "equals"
    values = [condition["equals"]] if test == "equals" else condition[test]
    problems = []
    if "options" in target:
        allowed = [option["value"] for option in target["options"]]
        for value in values:
            if value not in allowed:
                problems.append(_l(
                    "%(test)s uses %(value)s, which is not an option of '%(ref)s' (options: %(options)s)",
                    test=test, value=json.dumps(value), ref=ref, options=", ".join(allowed)))
    elif target["type"] == "scale":
        # Scale answers are whole numbers from min to max.
        low, high = target["min"], target["max"]
        points = range(int(low), int(high) + 1)
        for value in values:
            if isinstance(value, bool) or value not in points:
                problems.append(_l("%(test)s uses %(value)s, but '%(ref)s' is a scale from %(low)s to %(high)s",
                                   test=test, value=json.dumps(value), ref=ref, low=low, high=high))
    return problems


# ---------------------------------------------------------------------- versions

def add_questionnaire(definition: dict) -> Questionnaire:
    """Store a definition as the next version of its slug (version 1 if new).

    If the latest version already has exactly this definition, it is returned
    as is: uploading the same file twice does not make a new version. Flushes,
    does not commit.
    """
    definition = validate_definition(definition)
    latest = db.session.scalars(
        select(Questionnaire)
        .where(Questionnaire.slug == definition["slug"])
        .order_by(Questionnaire.version.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.definition == definition:
        return latest
    questionnaire = Questionnaire(
        slug=definition["slug"],
        version=latest.version + 1 if latest else 1,
        kind=definition["kind"],
        definition=definition,
    )
    db.session.add(questionnaire)
    db.session.flush()
    return questionnaire


def freeze_questionnaire(questionnaire: Questionnaire) -> Questionnaire:
    """Mark a version as used by a campaign (the first date is kept)."""
    if questionnaire.frozen_at is None:
        questionnaire.frozen_at = utcnow()
    return questionnaire


def builtin_definitions() -> list[dict]:
    """The definitions shipped in ``builtin/``, sorted by file name."""
    return [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted(BUILTIN_DIR.glob("*.json"))
    ]


def load_builtin_questionnaires() -> list[Questionnaire]:
    """Add the built-in questionnaires; safe to run again (identical → same version)."""
    return [add_questionnaire(definition) for definition in builtin_definitions()]


def latest_versions() -> list[Questionnaire]:
    """The latest version of each slug, sorted by slug, in one query."""
    newest = (
        select(Questionnaire.slug, func.max(Questionnaire.version).label("version"))
        .group_by(Questionnaire.slug)
        .subquery()
    )
    return list(
        db.session.scalars(
            select(Questionnaire)
            .join(newest, and_(Questionnaire.slug == newest.c.slug, Questionnaire.version == newest.c.version))
            .order_by(Questionnaire.slug)
        )
    )
