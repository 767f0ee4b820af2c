"""Who must not be emailed: opt-outs (of everything, or of one campaign) and hard bounces.

Suppression takes effect at once: the queued emails it concerns are cancelled in
the same transaction, and the sender checks again just before each send. A
re-import never lifts it (see audiences.services); only the person can, by
opting back in, and only an opt-out, never a bounce.
"""
from __future__ import annotations

from sqlalchemy import select, update

from survey.audiences.models import ERASED, Stakeholder
from survey.campaigns.models import Invitation
from survey.core.types import utcnow
from survey.extensions import db
from survey.mail.models import OutboxMessage

OPTED_OUT = "opted out"
#: how a hard bounce's reason starts (the relay's reply follows)
HARD_BOUNCE = "hard bounce: "


def suppression_words(reason: str | None) -> str:
    """Why a person is not emailed, in the reader's language: the reason is stored as the
    code "opted out" or "erased", or "hard bounce: " and the relay's own (English) words."""
    from flask_babel import gettext as _

    if not reason:
        return ""
    if reason == OPTED_OUT:
        return _("they opted out")
    if reason == ERASED:
        return _("their data was erased")
    if reason.startswith(HARD_BOUNCE):
        return _("their address bounced (%(reply)s)", reply=reason.removeprefix(HARD_BOUNCE))
    return reason


def cancel_queued(invitation_ids) -> int:
    """Cancel the emails not yet sent for these invitations (a list or a subquery)."""
    cancelled = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == "queued", OutboxMessage.invitation_id.in_(invitation_ids))
        .values(status="cancelled", lease_until=None)
        .returning(OutboxMessage.invitation_id, OutboxMessage.kind)
    ).all()
    not_sent([invitation_id for invitation_id, kind in cancelled if kind == "invitation"])
    return len(cancelled)


def not_sent(invitation_ids: list[int]) -> None:
    """Invitations whose email was cancelled before it went out are "failed", not "queued"
    for ever: the campaign page counts them with the emails that could not be sent, and
    their email's log says why. (An opt-out or an answer given meanwhile keeps its status.)"""
    for chunk in (invitation_ids[i:i + 1000] for i in range(0, len(invitation_ids), 1000)):
        db.session.execute(update(Invitation).where(Invitation.id.in_(chunk), Invitation.status == "queued")
                           .values(status="failed"))


def _invitations_of(stakeholder_id: int):
    return select(Invitation.id).where(Invitation.stakeholder_id == stakeholder_id)


def opt_out(invitation: Invitation, *, everything: bool) -> bool:
    """Stop emails about this campaign, or (``everything``) all emails to this person.

    Idempotent: returns whether anything changed.
    """
    now = utcnow()
    changed = False
    if invitation.opted_out_at is None:
        invitation.opted_out_at = now
        if invitation.status != "completed":  # a completed answer stays counted as completed
            invitation.status = "opted_out"
        invitation.next_reminder_at = None
        changed = True
    person = invitation.stakeholder
    if everything and person.suppressed_at is None:
        person.suppressed_at, person.suppression_reason = now, OPTED_OUT
        changed = True
    cancel_queued(_invitations_of(person.id) if everything else [invitation.id])
    db.session.flush()
    return changed


def opt_in(invitation: Invitation) -> bool:
    """Undo an opt-out made through this invitation's link (never lifts a bounce).

    Reminders are not rescheduled: the person asked to hear from us again, and the
    next campaign will reach them; the current one's link still works.
    """
    changed = False
    person = invitation.stakeholder
    if person.suppression_reason == OPTED_OUT:
        person.suppressed_at = person.suppression_reason = None
        changed = True
    if invitation.opted_out_at is not None:
        invitation.opted_out_at = None
        if invitation.status == "opted_out":
            invitation.status = _status_from_times(invitation)
        changed = True
    db.session.flush()
    return changed


def _status_from_times(invitation: Invitation) -> str:
    if invitation.completed_at:
        return "completed"
    if invitation.started_at:
        return "started"
    if invitation.opened_at:
        return "opened"
    return "sent" if invitation.sent_at else "queued"


def suppress_address(stakeholder_id: int, reason: str) -> bool:
    """A hard bounce: no email to this address in any campaign, now or later."""
    changed = db.session.execute(
        update(Stakeholder)
        .where(Stakeholder.id == stakeholder_id, Stakeholder.suppressed_at.is_(None))
        .values(suppressed_at=utcnow(), suppression_reason=reason[:200])
    ).rowcount
    cancel_queued(_invitations_of(stakeholder_id))
    return bool(changed)


def means_dead_address(enhanced_status: str) -> bool:
    """Whether a permanent failure says the address itself is gone (RFC 3463: 5.1.x bad
    mailbox or domain, 5.2.1 mailbox disabled), rather than this one email refused
    (5.7.1 policy, 5.3.4 too big…): only the former suppresses the address."""
    return enhanced_status.startswith("5.1.") or enhanced_status == "5.2.1"
