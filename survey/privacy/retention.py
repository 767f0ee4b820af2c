"""The retention policy: how long each kind of personal data is kept.

| kind | setting (days; 0 keeps forever) | what goes when the time is up |
| --- | --- | --- |
| answers | RETENTION_ANSWERS_DAYS after submission | free-text and file answers (closed answers stay: they are counted); the claims' details, once decided |
| evidence | RETENTION_EVIDENCE_DAYS after the claim's decision | evidence items (rows and files); files in answers with no claim under review |
| contact | RETENTION_CONTACT_DAYS without activity from the person | the person is erased (``privacy.erasure``), their counts stay |
| drafts | when the campaign closes | unsubmitted answers, which can no longer be sent |

"Activity" is what comes from the person: being added, opening, starting or answering a
survey, opting out, a claim; a claim still under review keeps them. Published reports are
frozen bytes, and the rows kept (invitations, closed answers, claim states) still give
the same counts, so nothing published changes.

Each kind is worked through in batches of ``PURGE_BATCH`` rows, each committed: a run
killed midway has finished whole batches, and the next run picks up the rest; a second
run finds nothing to do. Files are deleted before their batch commits, so a kill leaves
rows naming files already gone, never files no row names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Text, bindparam, cast, delete, exists, func, or_, select, tuple_, update

from survey.audiences.models import ERASED, Stakeholder
from survey.audit.chain import record
from survey.campaigns.models import Campaign, Invitation, Response
from survey.claims.models import Claim, Evidence
from survey.core.types import utcnow
from survey.extensions import db
from survey.privacy.data import personal_questions_of, remove_files, stored_files, without_personal
from survey.privacy.erasure import erase_person
from workflows.claims import OPEN as _OPEN

#: claim states the committee still works on
OPEN = tuple(sorted(_OPEN))

#: rows per committed batch
PURGE_BATCH = 200


@dataclass
class Purge:
    """What a run removed (or, dry, would remove), by kind."""

    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: {
        "free-text answers": 0, "answer files": 0, "claim details": 0, "evidence items": 0,
        "drafts": 0, "people": 0})


def _cutoff(now: datetime, setting: str) -> datetime | None:
    days = current_app.config[setting]
    return now - timedelta(days=days) if days and days > 0 else None


def purge(now: datetime | None = None, *, dry_run: bool = False, batch: int = PURGE_BATCH) -> Purge:
    """Apply the whole policy as of ``now``; commits after each batch (never when dry)."""
    now = now or utcnow()
    result = Purge(dry_run)
    answers_cutoff = _cutoff(now, "RETENTION_ANSWERS_DAYS")
    evidence_cutoff = _cutoff(now, "RETENTION_EVIDENCE_DAYS")
    contact_cutoff = _cutoff(now, "RETENTION_CONTACT_DAYS")
    try:
        _answers(result, answers_cutoff, evidence_cutoff, batch)
        if answers_cutoff:
            _claim_details(result, answers_cutoff, batch)
        if evidence_cutoff:
            _evidence(result, evidence_cutoff, batch)
        _drafts(result, batch)
        if contact_cutoff:
            _people(result, contact_cutoff, batch)
    finally:
        if dry_run:
            db.session.rollback()
    return result


def _done(result: Purge) -> None:
    """End a batch: kept when for real, forgotten when dry."""
    if not result.dry_run:
        db.session.commit()


#: Response.retention_level: what the policy has removed from an answer so far
NOTHING, FILES, FREE_TEXT = 0, 1, 2


def _answers(result: Purge, answers_cutoff: datetime | None, evidence_cutoff: datetime | None, batch: int) -> None:
    """Free text and files after RETENTION_ANSWERS_DAYS; files alone after
    RETENTION_EVIDENCE_DAYS, unless a claim made from the answer is still under review.

    Each answer is read once per level it reaches, not every day: an answer stripped
    (or found with nothing to strip) is marked, and the next runs start past it."""
    if answers_cutoff:
        for level in (NOTHING, FILES):
            _strip_answers(result, level, FREE_TEXT, answers_cutoff, batch)
    if evidence_cutoff:  # the older ones have just lost their files with their free text
        _strip_answers(result, NOTHING, FILES, evidence_cutoff, batch, since=answers_cutoff)


def _strip_answers(result: Purge, level: int, to: int, cutoff: datetime, batch: int,
                   since: datetime | None = None) -> None:
    """Answers at ``level`` submitted before ``cutoff`` (and from ``since``), oldest
    first, taken to ``to``."""
    kind = "free-text answers" if to == FREE_TEXT else "answer files"
    after = None  # (submitted_at, id) of the last answer read: the index's order
    while True:
        query = (select(Response, Campaign.questionnaire_id).join(Campaign, Campaign.id == Response.campaign_id)
                 .where(Response.retention_level == level, Response.submitted_at < cutoff)
                 .order_by(Response.submitted_at, Response.id).limit(batch))
        if after is not None:
            query = query.where(tuple_(Response.submitted_at, Response.id) > after)
        elif since is not None:
            query = query.where(Response.submitted_at >= since)
        rows = db.session.execute(query).all()
        if not rows:
            return
        after = (rows[-1][0].submitted_at, rows[-1][0].id)
        under_review = set(db.session.scalars(select(Claim.response_id).where(
            Claim.response_id.in_([r.id for r, _q in rows]), Claim.state.in_(OPEN))))
        files: list[str] = []
        stripped, unchanged = [], []
        for response, questionnaire_id in rows:
            if response.id in under_review:  # looked at again tomorrow
                continue
            kept = without_personal(response.answers,
                                    personal_questions_of(questionnaire_id) if to == FREE_TEXT else ())
            if kept == response.answers:
                unchanged.append(response.id)
                continue
            files += [name for name in stored_files(response.answers) if name not in stored_files(kept)]
            result.counts[kind] += 1
            stripped.append({"answer_id": response.id, "kept": kept})
        if not result.dry_run and stripped:
            # One statement for the batch, run per row, by id (an anonymous answer may have been
            # rewritten since: anonymity); a row gone meanwhile is not an error.
            answers = Response.__table__
            db.session.execute(update(answers).where(answers.c.id == bindparam("answer_id"))
                               .values(answers=bindparam("kept"), retention_level=to), stripped)
        if not result.dry_run and unchanged:
            db.session.execute(update(Response).where(Response.id.in_(unchanged)).values(retention_level=to)
                               .execution_options(synchronize_session=False))
        if not result.dry_run and files:
            # A file that is also a claim's evidence follows the evidence's own clock.
            kept_as_evidence = set(db.session.scalars(select(Evidence.stored_as).where(Evidence.stored_as.in_(files))))
            remove_files(name for name in files if name not in kept_as_evidence)
        _done(result)


def _claim_details(result: Purge, cutoff: datetime, batch: int) -> None:
    """What the respondent said about a decided claim (employer, role, comment…)."""
    last_id = 0
    while True:
        claims = db.session.scalars(
            select(Claim).where(Claim.id > last_id, Claim.state.not_in(OPEN),
                                func.coalesce(Claim.decided_at, Claim.created_at) < cutoff,
                                # details already emptied: not read again every day
                                cast(Claim.details, Text) != "{}")
            .order_by(Claim.id).limit(batch)).all()
        if not claims:
            return
        last_id = claims[-1].id
        for claim in claims:
            result.counts["claim details"] += 1
            if not result.dry_run:
                claim.details = {}
                record("details_purged", f"claim:{claim.id}", actor="retention",
                       reason=f"RETENTION_ANSWERS_DAYS ({current_app.config['RETENTION_ANSWERS_DAYS']})")
        _done(result)


def _evidence(result: Purge, cutoff: datetime, batch: int) -> None:
    """Evidence of claims decided (or withdrawn) before the cutoff."""
    last_id = 0
    while True:
        items = db.session.scalars(
            select(Evidence).join(Claim, Claim.id == Evidence.claim_id)
            .where(Evidence.id > last_id, Claim.state.not_in(OPEN),
                   func.coalesce(Claim.decided_at, Claim.created_at) < cutoff)
            .order_by(Evidence.id).limit(batch)).all()
        if not items:
            return
        last_id = items[-1].id
        result.counts["evidence items"] += len(items)
        if not result.dry_run:
            # The claim keeps its decision; its trail says where its evidence went, and what it
            # was: a file's hash lets an auditor match a copy kept elsewhere (a link's or a
            # contact's would give the text back to whoever guesses it, so not theirs).
            by_claim: dict[int, list[dict]] = {}
            for item in items:
                removed = {"id": item.id, "kind": item.kind, **({"sha256": item.sha256} if item.kind == "file" else {})}
                by_claim.setdefault(item.claim_id, []).append(removed)
            for claim_id, removed in by_claim.items():
                record("evidence_purged", f"claim:{claim_id}", actor="retention",
                       reason=f"RETENTION_EVIDENCE_DAYS ({current_app.config['RETENTION_EVIDENCE_DAYS']})",
                       data={"evidence": removed})
            remove_files(item.stored_as for item in items if item.stored_as)
            db.session.execute(delete(Evidence).where(Evidence.id.in_([item.id for item in items]))
                               .execution_options(synchronize_session=False))
        _done(result)


def _drafts(result: Purge, batch: int) -> None:
    """Answers never submitted to a campaign now closed: they can never be sent."""
    closed_drafts = (select(Response).join(Campaign, Campaign.id == Response.campaign_id)
                     .where(Response.submitted_at.is_(None), Campaign.status == "closed"))
    if result.dry_run:
        result.counts["drafts"] += db.session.scalar(select(func.count()).select_from(closed_drafts.subquery()))
        return
    while True:
        drafts = db.session.scalars(closed_drafts.order_by(Response.id).limit(batch)).all()
        if not drafts:
            return
        remove_files(name for draft in drafts for name in stored_files(draft.answers))
        db.session.execute(delete(Response).where(Response.id.in_([d.id for d in drafts]))
                           .execution_options(synchronize_session=False))
        result.counts["drafts"] += len(drafts)
        _done(result)


def inactive_people(cutoff: datetime):
    """Stakeholders not erased yet, with no activity of their own since ``cutoff``."""
    recent_invitation = exists().where(
        Invitation.stakeholder_id == Stakeholder.id,
        or_(Invitation.opened_at >= cutoff, Invitation.started_at >= cutoff,
            Invitation.completed_at >= cutoff, Invitation.opted_out_at >= cutoff))
    recent_claim = exists().where(
        Claim.stakeholder_id == Stakeholder.id, or_(Claim.created_at >= cutoff, Claim.state.in_(OPEN)))
    return select(Stakeholder.id).where(
        or_(Stakeholder.suppression_reason.is_(None), Stakeholder.suppression_reason != ERASED),
        Stakeholder.created_at < cutoff, ~recent_invitation, ~recent_claim)


def _people(result: Purge, cutoff: datetime, batch: int) -> None:
    if result.dry_run:
        result.counts["people"] += db.session.scalar(
            select(func.count()).select_from(inactive_people(cutoff).subquery()))
        return
    days = current_app.config["RETENTION_CONTACT_DAYS"]
    while True:
        ids = db.session.scalars(inactive_people(cutoff).order_by(Stakeholder.id).limit(batch)).all()
        if not ids:
            return
        for person in db.session.scalars(select(Stakeholder).where(Stakeholder.id.in_(ids))):
            erase_person(person, actor="retention", reason=f"no activity for {days} days")
        result.counts["people"] += len(ids)
        _done(result)
