"""What the claim page shows: the answers in the viewer's language, and the claim's
history from the audit trail, with the votes kept private until the decision.

Votes are private to the committee until the claim is decided: before that, a
member sees their own vote only (in the reviews and in the history); the chair
and the auditor always see every vote. A member never reads why another member
declared a conflict.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask_babel import format_date, format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from survey.accounts.models import User
from survey.audit.models import AuditEvent
from survey.audit.words import ACTIONS, ACTORS, erased_words, reason_words, shown_reason
from survey.claims.models import Claim, Review
from survey.extensions import db
from survey.respond.forms import localized
from survey.web import LABELS

#: how a piece of evidence can be verified (Evidence.source, as the services store it) → words
SOURCES = {"document from the respondent": _l("document from the respondent"), "public link": _l("public link"),
           "employer contact": _l("employer contact")}


def sees_all_votes(viewer: User, claim: Claim) -> bool:
    """The chair and the auditor always; a member once the claim is decided."""
    return viewer.role in ("chair", "auditor") or claim.decided_at is not None


def visible_reviews(viewer: User, claim: Claim) -> list[Review]:
    """The reviews the viewer may read, verdicts and comments included."""
    if sees_all_votes(viewer, claim):
        return list(claim.reviews)
    return [review for review in claim.reviews if review.reviewer_id == viewer.id]


# ---------------------------------------------------------------------- answers

def _questions(definition: dict) -> dict[str, dict]:
    return {question["id"]: question for question in definition.get("questions", [])}


def _number(value) -> str:
    """In the reader's language: 12.5 is "12,5" in French; a whole float has no decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return format_decimal(value, format="#,##0.###")


def format_answer(question: dict, value, locale: str) -> str:
    """An answer as the respondent chose it, in words (option labels, yes/no…)."""
    kind = question.get("type")
    options = {option["value"]: localized(option.get("label"), locale) or str(option["value"])
               for option in question.get("options", [])}
    if kind == "multi" and isinstance(value, list):
        return ", ".join(options.get(item, str(item)) for item in value)
    if kind == "single":
        return options.get(value, str(value))
    if kind == "consent":
        return _("Yes") if value is True else _("No")
    if kind == "scale" and "max" in question:
        return _("%(value)s out of %(max)s", value=_number(value), max=_number(question["max"]))
    if kind == "date" and isinstance(value, str):
        try:
            return format_date(date.fromisoformat(value), "medium")  # "30 sept. 2024", "Sep 30, 2024"
        except ValueError:
            return value
    if kind == "file" and isinstance(value, dict):
        return value.get("filename") or _("a file")
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _answered(value) -> bool:
    return value not in (None, "", [])


def answer_rows(definition: dict, answers: dict, locale: str) -> list[tuple[str, str]]:
    """(question label, answer) in the questionnaire's order, answered questions only."""
    rows = []
    for question in definition.get("questions", []):
        value = (answers or {}).get(question["id"])
        if _answered(value):
            rows.append((localized(question.get("label"), locale) or question["id"],
                         format_answer(question, value, locale)))
    return rows


def detail_rows(definition: dict, details: dict, locale: str) -> list[tuple[str, str]]:
    """The claim's details (copied from the answers) with their questions' labels."""
    questions = _questions(definition)
    rows = []
    for key, value in (details or {}).items():
        if not _answered(value):
            continue
        question = questions.get(key, {"id": key})
        rows.append((localized(question.get("label"), locale) or key, format_answer(question, value, locale)))
    return rows


def file_size(size: int | None) -> str:
    """12345 → "12.1 kB" ("12,1 ko" in French); never "0 kB" for a small file."""
    if not size:
        return ""
    return _("%(kb)s kB", kb=format_decimal(max(size / 1024, 0.1), format="#,##0.#"))


# ---------------------------------------------------------------------- history

@dataclass
class HistoryItem:
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    reason: str
    detail: str


def claim_history(claim: Claim, viewer: User) -> list[HistoryItem]:
    """The audit events whose subject is this claim, oldest first, in words."""
    events = db.session.execute(
        select(AuditEvent, User).outerjoin(User, User.id == AuditEvent.actor_id)
        .where(AuditEvent.subject == f"claim:{claim.id}").order_by(AuditEvent.id)
    ).all()
    reviewer_ids = {event.data.get("reviewer") for event, _user in events if isinstance(event.data, dict)}
    reviewer_ids = {rid for rid in reviewer_ids if isinstance(rid, int)}
    names = {user.id: user.name or user.email
             for user in db.session.scalars(select(User).where(User.id.in_(reviewer_ids)))} if reviewer_ids else {}
    votes_visible = sees_all_votes(viewer, claim)
    # The person erased: what people wrote about their claim went with their data.
    erased = claim.claimant.erased
    items = []
    for event, user in events:
        data = event.data if isinstance(event.data, dict) else {}
        mine = event.actor_id == viewer.id
        shown = shown_reason(event, erased)
        reason, detail = (shown if shown is not None else erased_words()), ""
        if event.action == "vote":
            if votes_visible or mine:
                detail = str(LABELS.get(data.get("verdict"), data.get("verdict", "")))
            else:
                reason = ""  # a member reads the others' votes only once the claim is decided
        elif event.action == "conflict" and not mine and viewer.role == "committee":
            reason = ""
        elif event.action == "transition" and event.actor == "policy" and not votes_visible:
            reason = ""  # the policy's reasons quote the votes ("committee votes: …", their comments)
        elif event.action in ("assignment", "unassignment") and "reviewer" in data:
            detail = names.get(data["reviewer"], f"#{data['reviewer']}")
        elif event.action == "evidence_added" and "evidence" in data:
            detail = _("evidence #%(id)s", id=data["evidence"])
        if user is not None:
            actor = user.name or user.email
        else:
            actor = str(ACTORS.get(event.actor, event.actor))
        items.append(HistoryItem(at=event.at, actor=actor, action=str(ACTIONS.get(event.action, event.action)),
                                 from_state=event.from_state, to_state=event.to_state, reason=reason_words(reason),
                                 detail=detail))
    return items
