"""Celery tasks queued during a transaction are sent only after it commits.

A worker must never pick up a task for rows it cannot see yet, and a rolled
back request must not leave tasks behind.
"""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from survey.extensions import db

_KEY = "attest_deferred_tasks"


def after_commit(task, *args, **kwargs) -> None:
    """Queue ``task.delay(*args, **kwargs)`` for when the current session commits."""
    db.session.info.setdefault(_KEY, []).append((task, args, kwargs))


@event.listens_for(Session, "after_commit")
def _send_deferred(session: Session) -> None:
    for task, args, kwargs in session.info.pop(_KEY, []):
        task.apply_async(args=args, kwargs=kwargs)


@event.listens_for(Session, "after_soft_rollback")
def _drop_deferred(session: Session, previous_transaction) -> None:
    session.info.pop(_KEY, None)
