"""Checks of the whole chain, kept.

Recomputing every hash from the first event takes a while on a long chain (about 14 µs
per event: half a minute for two million). So whole-chain checks are run in the
background and stored: beat asks for one every AUDIT_CHECK_INTERVAL (``start_check``,
then ``workflows.tasks.check_audit_chain`` runs it), ``flask audit verify`` stores its
own, and the trail's page shows the last one and recomputes only the events after it
(``current``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, exists, or_, select

from survey.audit.chain import Verification, verify
from survey.audit.models import AuditCheck
from survey.core.types import utcnow
from survey.extensions import db


def last_check() -> AuditCheck | None:
    """The last whole-chain check that finished."""
    return db.session.scalar(select(AuditCheck).where(AuditCheck.finished_at.is_not(None))
                             .order_by(AuditCheck.finished_at.desc(), AuditCheck.id.desc()).limit(1))


def check_due() -> bool:
    """No check finished in the last AUDIT_CHECK_INTERVAL, and none under way (one started
    more than AUDIT_CHECK_LEASE ago and never finished had its worker die)."""
    now = utcnow()
    config = current_app.config
    recent = or_(AuditCheck.finished_at >= now - timedelta(seconds=config["AUDIT_CHECK_INTERVAL"]),
                 and_(AuditCheck.finished_at.is_(None),
                      AuditCheck.started_at >= now - timedelta(seconds=config["AUDIT_CHECK_LEASE"])))
    return not db.session.scalar(select(exists().where(recent)))


def start_check(run_by: str) -> AuditCheck:
    """A new check, under way from now (flushed; the caller commits, then ``run_check``):
    committed before it runs, beat's next ticks see it and ask for no other."""
    check = AuditCheck(run_by=run_by, started_at=utcnow(), problem="")
    db.session.add(check)
    db.session.flush()
    return check


def run_check(check_id: int) -> AuditCheck | None:
    """Check the whole chain and store what it found in the check ``check_id`` (committed);
    a check that has its result already is left as it is (a task delivered twice)."""
    check = db.session.get(AuditCheck, check_id)
    if check is None or check.finished_at is not None:
        return None
    result = verify()
    check.finished_at, check.ok, check.checked = utcnow(), result.ok, result.checked
    check.through_id, check.through_hash = result.through_id, result.through_hash
    check.broken_id, check.problem = result.broken_id, result.problem
    db.session.commit()
    if not result.ok:
        current_app.logger.error("audit chain broken at event %s: %s", result.broken_id, result.problem)
    return check


@dataclass
class Current:
    """What the trail's page says about the chain."""

    #: the whole chain: the last stored check and the events after it, or everything now
    verification: Verification
    #: the stored check it builds on (None: the page checked every event itself)
    check: AuditCheck | None = None
    #: events recomputed for this page, after the stored check
    since: int = 0


def current() -> Current:
    """The chain as of now, at the cost of the events after the last stored check.

    Without a stored check (a new installation, before beat's first), every event is
    recomputed here. After a check that found the chain broken, its finding stands until
    the next check: recomputing a long broken chain on every view would find the same."""
    check = last_check()
    if check is None:
        return Current(verify())
    if not check.ok:
        return Current(Verification(False, check.checked or 0, check.broken_id, check.problem), check)
    recent = verify(after=(check.through_id, check.through_hash))
    whole = Verification(recent.ok, (check.checked or 0) + recent.checked, recent.broken_id, recent.problem,
                         recent.through_id, recent.through_hash)
    return Current(whole, check, recent.checked)
