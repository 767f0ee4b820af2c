"""Erasing a person: their personal data and evidence go, the anonymised counts stay.

What goes: contact fields (email, names), attributes, free-text and file answers,
drafts, evidence (rows and files), the claims' details and the committee's comments
and the auditor's notes on them (in the audit trail too), declared conflicts naming them
(and what anyone writes about their open claims afterwards is not kept), every link token
(survey, opt-out, evidence), and their address in SMTP replies. Emails still queued
are cancelled.

What stays: a stub of the person (kind, locale) flagged ``erased`` and suppressed, so
that invitations, closed answers and claim states still count; published reports
(frozen bytes); the audit chain's events, which are append-only and hash-chained (they
keep the proof of every decision, a legal-obligation exception to erasure: who did what,
when, from which state to which), with the hash of each reason erased in place of its
text, and one ``erasure`` event more, with counts, never the address. Anonymous answers are not linked
to anyone, so there is nothing to find.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import delete, func, select, update

from survey.audiences.models import ERASED, Stakeholder
from survey.audit.chain import REASONS_ERASED, erase_reasons, record
from survey.audit.models import AuditEvent
from survey.campaigns.models import Campaign, Invitation, Response
from survey.claims.models import Claim, Conflict, Review
from survey.core.types import utcnow
from survey.extensions import db
from survey.mail.models import OutboxMessage
from survey.privacy.data import personal_questions_of, remove_files, stored_files, without_personal
from survey.privacy.logs import redact
from survey.privacy.models import ErasedAddress, address_hash
from survey.reports.models import ReportSnapshot, SampleCheck, SnapshotClaim


class UnknownPerson(LookupError):
    """No one is held under this address (never known, or already erased)."""


@dataclass
class Erasure:
    """What an erasure removed, by kind (for the command's report and the audit event)."""

    person_id: int
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, count: int) -> None:
        if count:
            self.counts[kind] = self.counts.get(kind, 0) + count


def find_person(email: str) -> Stakeholder:
    """The stakeholder with this address (case and surrounding spaces ignored)."""
    wanted = (email or "").strip().lower()
    person = db.session.scalar(select(Stakeholder).where(func.lower(Stakeholder.email) == wanted)) if wanted else None
    if person is None or person.suppression_reason == ERASED:
        raise UnknownPerson(email)
    return person


def erased_address(person_id: int) -> str:
    """The unique, undeliverable placeholder an erased person's email becomes."""
    return f"erased-{person_id}@erased.invalid"


def _dead_token() -> str:
    """A token hash no link can match (a hash of a secret nobody keeps)."""
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def erase_person(person: Stakeholder, *, actor="cli", reason: str = "erasure request",
                 keep_out: bool = False) -> Erasure:
    """Erase ``person``'s personal data; flushes, the caller commits (files are deleted
    at once, so a run killed before its commit leaves only rows to erase again).

    ``keep_out``: the person asked for it, so a later import must not bring them back: a
    keyed hash of the address is kept (``ErasedAddress``), nothing else. The retention
    policy erases without it: someone inactive for years may come back as a new learner."""
    report = Erasure(person.id)
    if keep_out:
        db.session.merge(ErasedAddress(address_hash=address_hash(person.email)))
        report.add("kept out of later imports", 1)
    invitation_ids = select(Invitation.id).where(Invitation.stakeholder_id == person.id).scalar_subquery()
    files: list[str] = []

    # Answers linked to the person (identified and confidential campaigns): drafts go,
    # submitted answers lose their free text and files.
    responses = db.session.execute(
        select(Response, Campaign.questionnaire_id).join(Campaign, Campaign.id == Response.campaign_id)
        .where(Response.invitation_id.in_(invitation_ids))
    ).all()
    for response, questionnaire_id in responses:
        files += stored_files(response.answers)
        if response.submitted_at is None:
            db.session.delete(response)
            report.add("drafts", 1)
            continue
        kept = without_personal(response.answers, personal_questions_of(questionnaire_id))
        if kept != response.answers:
            response.answers = kept
            report.add("free-text answers", 1)

    # Claims: states stay (they are counted), what the person said and sent goes.
    claims = db.session.scalars(select(Claim).where(Claim.stakeholder_id == person.id)).all()
    for claim in claims:
        for item in claim.evidence:
            if item.stored_as:
                files.append(item.stored_as)
            db.session.delete(item)
            report.add("evidence items", 1)
        if claim.details:
            claim.details = {}
            report.add("claim details", 1)
        claim.token_nonce, claim.token_hash = secrets.token_hex(16), _dead_token()
        claim.decision_reason = None
        if claim.revoked_reason is not None:
            claim.revoked_reason = ERASED
    erased_reasons = _erase_what_was_written_about(claims, report)
    if claims:
        report.add("review comments", db.session.execute(
            update(Review).where(Review.claim_id.in_([c.id for c in claims]), Review.comment != "")
            .values(comment="").execution_options(synchronize_session=False)).rowcount)
    report.add("conflicts", db.session.execute(
        delete(Conflict).where(Conflict.stakeholder_id == person.id)
        .execution_options(synchronize_session=False)).rowcount)

    # Emails: nothing more goes out; the address leaves the SMTP replies.
    report.add("emails cancelled", db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.invitation_id.in_(invitation_ids), OutboxMessage.status.in_(("queued", "sending")))
        .values(status="cancelled", lease_until=None, smtp_reply="not sent: the person's data was erased")
        .execution_options(synchronize_session=False)).rowcount)
    for message in db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.invitation_id.in_(invitation_ids), OutboxMessage.smtp_reply.is_not(None))):
        scrubbed = redact(message.smtp_reply)  # relays quote the address, in any case or in IDNA form
        if scrubbed != message.smtp_reply:
            message.smtp_reply = scrubbed

    # Links: every survey and opt-out token stops working.
    for invitation in db.session.scalars(select(Invitation).where(Invitation.stakeholder_id == person.id)):
        invitation.token_nonce, invitation.token_hash = secrets.token_hex(16), _dead_token()
        invitation.unsubscribe_hash = None
        invitation.next_reminder_at = None
        report.add("invitations unlinked", 1)

    # The person: a stub that still counts, emailed never again.
    person.email = erased_address(person.id)
    person.first_name = person.last_name = ""
    person.attributes = {}
    person.timezone = current_app.config["DEFAULT_TIMEZONE"]
    person.suppressed_at = person.suppressed_at or utcnow()
    person.suppression_reason = ERASED
    report.add("contact data", 1)
    db.session.flush()

    report.add("evidence files", remove_files(files))
    record("erasure", f"person:{person.id}", actor=actor, reason=reason,
           data={**dict(sorted(report.counts.items())), REASONS_ERASED: erased_reasons})
    return report


def _erase_what_was_written_about(claims: list[Claim], report: Erasure) -> list[int]:
    """The reasons the audit trail keeps apart about these claims (votes' comments,
    conflicts, the chair's and the policy's reasons), and the auditor's notes on them as
    sampled claims of a published report; the ids of the events whose reason went."""
    if not claims:
        return []
    ids = [claim.id for claim in claims]
    checks = db.session.execute(
        select(SampleCheck, ReportSnapshot.slug)
        .join(SnapshotClaim, SnapshotClaim.id == SampleCheck.snapshot_claim_id)
        .join(ReportSnapshot, ReportSnapshot.id == SnapshotClaim.snapshot_id)
        .where(SnapshotClaim.claim_id.in_(ids))).all()
    for check, _slug in checks:
        if check.note:
            check.note = ""
            report.add("auditor's notes", 1)
    sampled = {(check.sample_id, check.position) for check, _slug in checks}
    notes = [event_id for event_id, data in db.session.execute(
        select(AuditEvent.id, AuditEvent.data).where(
            AuditEvent.subject.in_({f"report:{slug}" for _check, slug in checks}),
            AuditEvent.action == "sample_checked", AuditEvent.reason_hash.is_not(None)))
        if isinstance(data, dict) and (data.get("sample"), data.get("position")) in sampled] if checks else []
    erased = erase_reasons(
        select(AuditEvent.id).where(AuditEvent.subject.in_([f"claim:{claim_id}" for claim_id in ids]),
                                    AuditEvent.reason_hash.is_not(None)).union(select(AuditEvent.id).where(
                                        AuditEvent.id.in_(notes))))
    report.add("reasons in the audit trail", len(erased))
    return erased



def allow_again(email: str, *, actor="cli") -> bool:
    """A person erased at their request asks to be surveyed again (they enrolled anew, say):
    their address may be imported again. False if no erased address matches it."""
    removed = db.session.execute(delete(ErasedAddress).where(ErasedAddress.address_hash == address_hash(email)))
    if not removed.rowcount:
        return False
    record("erasure_lifted", "erased-addresses", actor=actor)  # never the address
    return True
