"""Writing to and checking the audit chain.

``record`` adds one event to the caller's transaction; when it commits, its events
are appended: the single ``audit_head`` row is bumped (an UPDATE, so the database's
write lock serialises appends on PostgreSQL and SQLite alike), and each event is
hashed with the one before. ``verify`` recomputes every
hash in order and names the first event that does not match.

What a person wrote about a claim is not in its event: the event holds a salted hash of
it, the text is an ``AuditReason`` of its own, and erasing the person deletes that row
without breaking the chain (``erase_reasons``).
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

from survey.audit.models import AuditEvent, AuditHead, AuditReason
from survey.audit.words import policy_wrote, system_wrote
from survey.core.bulk import insert_or_ignore
from survey.core.types import utcnow
from survey.extensions import db

GENESIS = "0" * 64


def _digest(prev_hash: str, event_id: int, at: datetime, actor_id: int | None, actor: str, action: str,
            subject: str, from_state: str | None, to_state: str | None, reason: str, data: dict,
            reason_hash: str | None = None) -> str:
    fields = [event_id, at.isoformat(timespec="microseconds"), actor_id, actor, action, subject,
              from_state, to_state, reason, data]
    if reason_hash is not None:  # events older than reasons kept apart have nine fields
        fields.append(reason_hash)
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def reason_digest(salt: str, text: str) -> str:
    """The hash of a reason kept apart, which its event's hash covers."""
    return hashlib.sha256(f"{salt}\n{text}".encode()).hexdigest()


#: actions about a claim whose subject is something else (the auditor's note on a sampled
#: claim is recorded under its report)
ABOUT_A_CLAIM = {"sample_checked"}


def kept_apart(fields: dict) -> bool:
    """Whether an event's reason is kept apart from it: one about a claim that a person
    wrote (a member, the chair, the auditor), whatever it says, or that quotes one (the
    policy's reason for asking for evidence is the members' requests)."""
    reason = fields["reason"]
    if not reason or not (fields["subject"].startswith("claim:") or fields["action"] in ABOUT_A_CLAIM):
        return False
    if fields["actor_id"] is not None:
        return True
    if fields["actor"] == "policy":
        return not policy_wrote(reason)
    return not system_wrote(reason)


def acting():
    """Who is acting in this request, for ``record``: the API key, else the logged-in
    user, else None (a worker, a command: "system")."""
    from flask import g, has_request_context
    from flask_login import current_user

    if not has_request_context():
        return None
    if g.get("api_key") is not None:
        return f"api-key:{g.api_key.id}"
    return current_user if current_user.is_authenticated else None


def actor_of(user) -> tuple[int | None, str]:
    """(actor_id, actor) for a user, or for "respondent"/"system"/"policy" given as a string."""
    if isinstance(user, str) or user is None:
        return None, user or "system"
    return user.id, f"user:{user.id}"


def record(action: str, subject, *, actor=None, from_state: str | None = None,
           to_state: str | None = None, reason: str = "", data: dict | None = None) -> None:
    """Add one event to the chain when the caller's transaction commits (and only if it
    does): see ``_append``. ``subject`` is "kind:id", or a model with an ``audit_subject``
    (a claim): named at the commit, so it may be one not written yet."""
    actor_id, actor_label = actor_of(actor)
    db.session.info.setdefault(PENDING, []).append(
        {"actor_id": actor_id, "actor": actor_label, "action": action, "subject": subject,
         "from_state": from_state, "to_state": to_state, "reason": reason or "", "data": data or {}})


#: where a session keeps the events recorded in its transaction
PENDING = "audit_pending"


@orm_event.listens_for(Session, "before_commit")
def _append(session: Session) -> None:
    """Chain and write the transaction's events, just before it commits.

    The head row is bumped once for all of them: its row lock (held until the commit)
    serialises appends on PostgreSQL and SQLite alike, and being taken last, it is held
    for a few milliseconds, not for the whole transaction: respondents submitting at
    once do not queue behind each other's claims.
    """
    pending = session.info.pop(PENDING, None)
    if not pending:
        return
    if any(not isinstance(fields["subject"], str) for fields in pending):
        session.flush()  # the models named by subject get their ids
        for fields in pending:
            if not isinstance(fields["subject"], str):
                fields["subject"] = fields["subject"].audit_subject
    connection = session.connection()
    head = connection.execute(_BUMP, {"count": len(pending)}).one_or_none()
    if head is None:  # the first events ever; two transactions at once must not both start the chain
        session.execute(insert_or_ignore(AuditHead).values(id=1, last_id=0, last_hash=GENESIS)
                        .on_conflict_do_nothing())
        head = connection.execute(_BUMP, {"count": len(pending)}).one()
    last_id, prev_hash = head  # the new last id, and the hash of the event before ours
    now = utcnow()
    rows, reasons = [], []
    for event_id, fields in enumerate(pending, start=last_id - len(pending) + 1):
        fields["reason_hash"] = None
        if kept_apart(fields):
            salt = secrets.token_hex(16)
            reasons.append({"event_id": event_id, "salt": salt, "text": fields["reason"]})
            fields["reason"], fields["reason_hash"] = "", reason_digest(salt, fields["reason"])
        digest = _digest(prev_hash, event_id, now, fields["actor_id"], fields["actor"], fields["action"],
                         fields["subject"], fields["from_state"], fields["to_state"], fields["reason"],
                         fields["data"], fields["reason_hash"])
        rows.append({"id": event_id, "at": now, "prev_hash": prev_hash, "hash": digest, **fields})
        prev_hash = digest
    # every row has every column: one INSERT for all of them
    connection.execute(_EVENTS, rows)
    if reasons:
        connection.execute(_REASONS, reasons)
    connection.execute(_HEAD_HASH, {"hash": prev_hash})


# The statements of every commit that records something, built once: Core statements on
# the tables (not the ORM's), since nothing here is an object the session tracks.
_head, _events = AuditHead.__table__, AuditEvent.__table__
_BUMP = (_head.update().where(_head.c.id == 1).values(last_id=_head.c.last_id + bindparam("count"))
         .returning(_head.c.last_id, _head.c.last_hash))
_EVENTS = _events.insert()
_REASONS = AuditReason.__table__.insert()
_HEAD_HASH = _head.update().where(_head.c.id == 1).values(last_hash=bindparam("hash"))


@orm_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    """A transaction that rolled back recorded nothing."""
    session.info.pop(PENDING, None)


def erase_reasons(event_ids) -> list[int]:
    """Delete the reasons kept apart of these events (ids, or a SELECT of them); returns the
    ids of the events whose reason went, which the erasure's own event lists: ``verify``
    takes a reason missing for no erasure as a broken link. The events stay, and their
    hashes still verify."""
    erased = sorted(db.session.scalars(select(AuditReason.event_id).where(AuditReason.event_id.in_(event_ids))))
    if erased:
        db.session.execute(delete(AuditReason).where(AuditReason.event_id.in_(erased))
                           .execution_options(synchronize_session=False))
    return erased


#: the key of an ``erasure`` event's data that lists the events whose reason it deleted
REASONS_ERASED = "reasons_erased"


@dataclass
class Verification:
    ok: bool
    #: events whose hash was recomputed
    checked: int
    #: the first event whose link is broken, and why
    broken_id: int | None = None
    problem: str = ""
    #: the last event found intact (0 and GENESIS: none), where a later check can start
    through_id: int = 0
    through_hash: str = GENESIS


def verify(batch: int = 5000, *, after: tuple[int, str] = (0, GENESIS)) -> Verification:
    """Recompute the chain's hashes in order; stop at the first broken link.

    ``after``: the id and hash of an event already found intact (a stored check's
    ``through_id`` and ``through_hash``): start with the event after it. Rows are read as
    plain tuples, a batch at a time: memory stays flat whatever the chain's length.

    The head is read first, and the chain checked up to it: events appended while a long
    check runs (their head moves with them, in one commit) are left to the next check
    instead of looking like events missing from the end."""
    last_id, prev_hash = after
    checked = 0
    head = db.session.execute(select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == 1)).one_or_none()
    table, kept = AuditEvent.__table__, AuditReason.__table__
    upto = [table.c.id <= head.last_id] if head is not None else []
    columns = [table.c[name] for name in (
        "id", "at", "actor_id", "actor", "action", "subject", "from_state", "to_state", "reason", "data",
        "reason_hash", "prev_hash", "hash")] + [kept.c.salt, kept.c.text]

    def broken(event_id: int, problem: str) -> Verification:
        return Verification(False, checked, event_id, problem, last_id, prev_hash)

    # Events whose kept reason is gone, and the hash before each: an erasure after them
    # must list them, or the reason was deleted behind the chain's back.
    unexplained: dict[int, tuple[int, str]] = {}

    while True:
        rows = db.session.execute(
            select(*columns).select_from(table.outerjoin(kept, kept.c.event_id == table.c.id))
            .where(table.c.id > last_id, *upto).order_by(table.c.id).limit(batch)).all()
        if not rows:
            break
        for (event_id, at, actor_id, actor, action, subject, from_state, to_state, reason, data, reason_hash,
             prev, digest, salt, text) in rows:
            if event_id != last_id + 1:
                return broken(last_id + 1, f"event {last_id + 1} is missing")
            if prev != prev_hash:
                return broken(event_id, "its previous hash does not match the event before")
            if _digest(prev_hash, event_id, at, actor_id, actor, action, subject, from_state, to_state, reason,
                       data, reason_hash) != digest:
                return broken(event_id, "its content does not match its hash")
            if text is not None and (reason_hash is None or reason_digest(salt, text) != reason_hash):
                return broken(event_id, "its reason does not match its hash")
            if reason_hash is not None and text is None:
                unexplained[event_id] = (checked, prev_hash)
            if action == "erasure" and isinstance(data, dict):
                for erased_id in data.get(REASONS_ERASED) or ():
                    unexplained.pop(erased_id, None)
            last_id, prev_hash, checked = event_id, digest, checked + 1
    if unexplained:
        event_id = min(unexplained)
        before, hash_before = unexplained[event_id]
        return Verification(False, before, event_id, "its reason was deleted, and no erasure says so",
                            event_id - 1, hash_before)
    if head is not None and (head.last_id != last_id or head.last_hash != prev_hash):
        return broken(last_id + 1 if head.last_id > last_id else last_id,
                      "events after it are missing (the chain's head is further on)")
    return Verification(True, checked, through_id=last_id, through_hash=prev_hash)
