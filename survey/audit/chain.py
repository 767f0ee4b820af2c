"""Writing to and checking the audit chain.

``record`` appends one event: it first bumps the single ``audit_head`` row (an
UPDATE, so the database's write lock serialises appends on PostgreSQL and SQLite
alike), then hashes the event with the previous hash. ``verify`` recomputes every
hash in order and names the first event that does not match.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from survey.audit.models import AuditEvent, AuditHead
from survey.core.types import utcnow
from survey.extensions import db

GENESIS = "0" * 64


def _digest(prev_hash: str, event_id: int, at: datetime, actor_id: int | None, actor: str, action: str,
            subject: str, from_state: str | None, to_state: str | None, reason: str, data: dict) -> str:
    body = json.dumps(
        [event_id, at.isoformat(timespec="microseconds"), actor_id, actor, action, subject,
         from_state, to_state, reason, data],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def actor_of(user) -> tuple[int | None, str]:
    """(actor_id, actor) for a user, or for "respondent"/"system"/"policy" given as a string."""
    if isinstance(user, str) or user is None:
        return None, user or "system"
    return user.id, f"user:{user.id}"


def record(action: str, subject: str, *, actor=None, from_state: str | None = None,
           to_state: str | None = None, reason: str = "", data: dict | None = None) -> AuditEvent:
    """Append one event to the chain (flushed with the caller's transaction)."""
    actor_id, actor_label = actor_of(actor)
    bumped = db.session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(last_id=AuditHead.last_id + 1)
        .returning(AuditHead.last_id)
    ).scalar()
    if bumped is None:  # the first event ever
        db.session.add(AuditHead(id=1, last_id=1, last_hash=GENESIS))
        db.session.flush()
        bumped = 1
    head = db.session.get(AuditHead, 1)
    db.session.refresh(head)
    now = utcnow()
    event = AuditEvent(
        id=bumped, at=now, actor_id=actor_id, actor=actor_label, action=action, subject=subject,
        from_state=from_state, to_state=to_state, reason=reason or "", data=data or {},
        prev_hash=head.last_hash,
    )
    event.hash = _digest(head.last_hash, bumped, now, actor_id, actor_label, action, subject, from_state,
                         to_state, event.reason, event.data)
    head.last_hash = event.hash
    db.session.add(event)
    db.session.flush()
    return event


@dataclass
class Verification:
    ok: bool
    checked: int
    #: the first event whose link is broken, and why
    broken_id: int | None = None
    problem: str = ""


def verify(batch: int = 5000) -> Verification:
    """Recompute the chain from the first event; stop at the first broken link."""
    prev_hash, expected_id, checked = GENESIS, 1, 0
    last_id = 0
    while True:
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not events:
            break
        for event in events:
            if event.id != expected_id:
                return Verification(False, checked, expected_id, f"event {expected_id} is missing")
            if event.prev_hash != prev_hash:
                return Verification(False, checked, event.id, "its previous hash does not match the event before")
            digest = _digest(prev_hash, event.id, event.at, event.actor_id, event.actor, event.action,
                             event.subject, event.from_state, event.to_state, event.reason, event.data)
            if digest != event.hash:
                return Verification(False, checked, event.id, "its content does not match its hash")
            prev_hash, expected_id, checked = event.hash, expected_id + 1, checked + 1
        last_id = events[-1].id
        db.session.expire_all()
    head = db.session.get(AuditHead, 1)
    if head is not None and (head.last_id != checked or head.last_hash != prev_hash):
        return Verification(False, checked, checked + 1 if head.last_id > checked else checked,
                            "events after it are missing (the chain's head is further on)")
    return Verification(True, checked)
