"""Audit events, chained by hash: each event's hash covers its content and the
previous event's hash, so changing or deleting any event breaks every later link."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

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
    reason: Mapped[str] = mapped_column(Text, default="")
    #: anything else worth keeping (verdict, reviewer ids, content hash…)
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(db.Model):
    """One row: the chain's last position and hash. Appending updates it first, which
    takes a write lock, so two appends never fork the chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"), default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
