"""Audit events, chained by hash: each event's hash covers its content and the
previous event's hash, so changing or deleting any event breaks every later link."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from survey.core.types import JSONType, UTCDateTime, utcnow
from survey.extensions import db


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    #: the position in the chain (1, 2, 3…), given under the head's lock
    id: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"), primary_key=True,
                                    autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the user who acted; NULL for the respondent (``actor`` says so) or the system
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: who acted, in words: "user:12", "respondent", "system", "policy"
    actor: Mapped[str] = mapped_column(String(100))
    #: transition, vote, assignment, conflict, evidence_added, evidence_downloaded, export…
    action: Mapped[str] = mapped_column(String(40))
    #: what it is about: "claim:7", "evidence:3", "report:2"
    subject: Mapped[str] = mapped_column(String(100), index=True)
    from_state: Mapped[str | None] = mapped_column(String(40))
    to_state: Mapped[str | None] = mapped_column(String(40))
    #: a reason the system wrote ("committee votes: approve, approve"); what a person wrote
    #: about a claim is kept apart (``kept``) and this is empty
    reason: Mapped[str] = mapped_column(Text, default="")
    #: the salted hash of the reason kept apart, which the event's hash covers; NULL when
    #: there is none (and for events older than the separation)
    reason_hash: Mapped[str | None] = mapped_column(String(64))
    #: anything else worth keeping (verdict, reviewer ids, content hash…)
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    kept: Mapped[AuditReason | None] = relationship(lazy="selectin", viewonly=True)

    @property
    def written_reason(self) -> str | None:
        """The reason as written, wherever it is kept; None once it was erased."""
        if self.reason_hash is None:
            return self.reason
        return self.kept.text if self.kept is not None else None


class AuditReason(db.Model):
    """What a person wrote about a claim (a vote's comment, a chair's reason, a conflict),
    kept apart from its event so that erasing the person can delete it.

    The event's hash covers ``reason_hash``, a hash of the salt and the text: the chain
    still verifies once the row is gone, and the hash left behind cannot be tested against
    guesses, since the salt went with the text."""

    __tablename__ = "audit_reasons"

    event_id: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"),
                                          ForeignKey("audit_events.id"), primary_key=True, autoincrement=False)
    salt: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)


class AuditHead(db.Model):
    """One row: the chain's last position and hash. Appending updates it first, which
    takes a write lock, so two appends never fork the chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"), default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheck(db.Model):
    """A check of the whole chain from its first event, and what it found.

    Beat runs one every AUDIT_CHECK_INTERVAL and ``flask audit verify`` records its own.
    The trail's page shows the last one and recomputes only the events after it, so it
    costs the same at a thousand events or ten million."""

    __tablename__ = "audit_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: "beat" or "cli"
    run_by: Mapped[str] = mapped_column(String(40))
    #: when beat asked for it (a worker runs it) or the CLI started it
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: NULL until it has its result (for good if its worker died: beat asks for another
    #: once it is AUDIT_CHECK_LEASE old)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ok: Mapped[bool | None] = mapped_column()
    #: events whose hash was recomputed
    checked: Mapped[int | None] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"))
    #: the last event found intact: where the page's check of later events starts
    through_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"))
    through_hash: Mapped[str | None] = mapped_column(String(64))
    #: the first broken event, and why (``verify``'s words)
    broken_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"))
    problem: Mapped[str] = mapped_column(Text, default="")
