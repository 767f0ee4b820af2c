"""What counts as personal data in answers, and where a person's files are.

Free text (``text``, ``long_text``) and files (``file``) are what a respondent writes or
sends in their own words: the parts of an answer that erasure and retention remove.
Closed answers (choices, numbers, dates, scales, consent) stay: they are what the
anonymised counts are made of.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from survey.extensions import db
from survey.questionnaires.models import Questionnaire

#: question types whose answers are the respondent's own words or documents
PERSONAL_TYPES = ("text", "long_text", "file")
#: the names ``respond.uploads.store_upload`` gives files (anything else is not ours)
STORED_NAME = re.compile(r"[0-9a-f]{16,64}")


def personal_question_ids(definition: dict) -> frozenset[str]:
    return frozenset(q["id"] for q in definition.get("questions", []) if q.get("type") in PERSONAL_TYPES)


_by_questionnaire: dict[int, frozenset[str]] = {}


def personal_questions_of(questionnaire_id: int) -> frozenset[str]:
    """``personal_question_ids`` of a questionnaire version (versions are frozen: cached)."""
    if questionnaire_id not in _by_questionnaire:
        questionnaire = db.session.get(Questionnaire, questionnaire_id)
        _by_questionnaire[questionnaire_id] = personal_question_ids(questionnaire.definition)
    return _by_questionnaire[questionnaire_id]


def stored_files(answers: dict) -> list[str]:
    """The evidence files an answer refers to (their names under EVIDENCE_DIR)."""
    return [value["stored_as"] for value in (answers or {}).values()
            if isinstance(value, dict) and isinstance(value.get("stored_as"), str)]


def without_personal(answers: dict, question_ids: Iterable[str]) -> dict:
    """The answers minus free text and files."""
    drop = set(question_ids)
    return {key: value for key, value in (answers or {}).items()
            if key not in drop and not (isinstance(value, dict) and "stored_as" in value)}


def remove_files(names: Iterable[str]) -> int:
    """Delete evidence files by stored name; a file already gone is not an error."""
    from survey.respond.uploads import evidence_dir

    folder, removed = evidence_dir(), 0
    for name in set(names):
        if not name or not STORED_NAME.fullmatch(name):
            continue
        path = folder / name
        if path.exists():
            path.unlink(missing_ok=True)
            removed += 1
    return removed
