"""The outbox: every email the system sends is a row here before it is sent."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from survey.campaigns.models import Invitation
from survey.core.types import UTCDateTime, utcnow
from survey.extensions import db

if TYPE_CHECKING:
    from survey.accounts.models import User
    from survey.claims.models import Claim

OUTBOX_STATUSES = ("queued", "sending", "sent", "failed", "cancelled", "bounced")
#: emails to respondents, tied to their invitation
RESPONDENT_KINDS = ("invitation", "reminder", "evidence_request")
#: emails to staff: a reviewer's weekly reminder of overdue reviews, the chair's weekly digest
STAFF_KINDS = ("review_reminder", "chair_digest")
OUTBOX_KINDS = RESPONDENT_KINDS + STAFF_KINDS


class OutboxMessage(db.Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("invitation_id", "kind", "sequence"),
        UniqueConstraint("user_id", "kind", "sequence"),
        CheckConstraint(f"status IN {OUTBOX_STATUSES!r}", name="status_known"),
        CheckConstraint(f"kind IN {OUTBOX_KINDS!r}", name="kind_known"),
        CheckConstraint(f"(kind IN {RESPONDENT_KINDS!r}) = (invitation_id IS NOT NULL)", name="respondent_has_invitation"),
        CheckConstraint("(kind = 'evidence_request') = (claim_id IS NOT NULL)", name="request_has_claim"),
        CheckConstraint(f"(kind IN {STAFF_KINDS!r}) = (user_id IS NOT NULL)", name="staff_has_user"),
        CheckConstraint("status <> 'sending' OR lease_until IS NOT NULL", name="sending_has_lease"),
        CheckConstraint("status <> 'sent' OR sent_at IS NOT NULL", name="sent_has_time"),
        Index("ix_outbox_messages_status_next_attempt_at_id", "status", "next_attempt_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the respondent's invitation (respondent kinds only)
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id"))
    #: ``invitation``, ``reminder``, ``evidence_request`` (the committee asks for more),
    #: ``review_reminder`` (to a reviewer) or ``chair_digest`` (to a chair)
    kind: Mapped[str] = mapped_column(String(20))
    #: the claim an evidence request is about
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))
    #: the staff member a review reminder or a digest goes to
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: 0 for the invitation; 1, 2… for reminders; the ISO week (2026 * 100 + 48) for staff emails
    sequence: Mapped[int] = mapped_column(default=0)
    #: queued → sending → sent | failed; cancelled when no longer wanted;
    #: sent → bounced when a delivery status notification comes back
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    #: a queued row is not sent before this time
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: a worker that claimed the row owns it until then; after it, the row can be taken again
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the Message-ID the email went out with, recorded with its outcome (it is derived from the
    #: row, so a resend carries the same one: survey/mail/addresses.py); older rows got theirs
    #: before the first attempt
    message_id: Mapped[str | None] = mapped_column(String(250))
    #: the server's last answer, e.g. "250 2.0.0 Ok" or "550 5.1.1 no such user"
    smtp_reply: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when an asynchronous bounce (RFC 3464) for this email was ingested
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    invitation: Mapped[Invitation | None] = relationship()
    claim: Mapped[Claim | None] = relationship()
    user: Mapped[User | None] = relationship()
