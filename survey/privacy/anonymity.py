"""Storing an anonymous campaign's answers so that nothing links them to a person.

The response row has no link column and no time of its own (``respond.services``), and
its id is random. What is left is *how* a row was written: on SQLite the hidden rowid
grows with each insert, on PostgreSQL a row's ``xmin`` is the transaction that wrote it
(the same transaction marks the invitation completed) and its place in the table
follows insertion order. So a submission does not just add its row: it deletes up to
``MIX_SIZE`` earlier answers of the campaign, chosen at random, and inserts them again
together with the new one, in a random order, in the transaction that completes the
invitation. The last transaction of an invitation then points to a group of answers,
never to one, and the order of rows says nothing about the order of respondents.
"""
from __future__ import annotations

import os
import secrets
import uuid

from sqlalchemy import delete, insert, select

from survey.campaigns.models import Response
from survey.extensions import db

#: how many earlier answers are rewritten with each new one (the size of the group an
#: observer of the storage can narrow the last answer down to)
MIX_SIZE = 20

_COLUMNS = (Response.id, Response.campaign_id, Response.answers, Response.locale, Response.started_at,
            Response.submitted_at, Response.segment, Response.retention_level)


def _earlier_answers(campaign_id: int, count: int) -> list[dict]:
    """Up to ``count`` submitted anonymous answers of the campaign, from a random point
    of the (random) id order; rows another submission is rewriting are skipped."""
    start = uuid.uuid4()
    base = (select(*_COLUMNS)
            .where(Response.campaign_id == campaign_id, Response.invitation_id.is_(None),
                   Response.submitted_at.is_not(None))
            .with_for_update(skip_locked=True))
    rows = db.session.execute(base.where(Response.id >= start).order_by(Response.id).limit(count)).all()
    if len(rows) < count:  # wrap around to the start of the id order
        rows += db.session.execute(base.where(Response.id < start).order_by(Response.id)
                                   .limit(count - len(rows))).all()
    return [dict(row._mapping) for row in rows]


def store_anonymous(response_fields: dict) -> uuid.UUID:
    """Insert one anonymous answer mixed with earlier ones; returns its (random) id.

    ``response_fields``: campaign_id, answers, locale, submitted_at, segment (no link,
    no start time). Flushes; the caller commits with the invitation's completion.
    """
    db.session.flush()
    campaign_id = response_fields["campaign_id"]
    earlier = _earlier_answers(campaign_id, MIX_SIZE)
    if earlier:
        db.session.execute(delete(Response).where(Response.id.in_([row["id"] for row in earlier]))
                           .execution_options(synchronize_session=False))
    new_id = uuid.uuid4()
    rows = [*earlier, {**response_fields, "id": new_id, "started_at": None}]
    secrets.SystemRandom().shuffle(rows)
    for row in rows:  # one statement per row: the order of the rows is the order given
        db.session.execute(insert(Response).values(**row))
    _backdate_files(response_fields["answers"], response_fields["submitted_at"])
    return new_id


def _backdate_files(answers: dict, day) -> None:
    """An uploaded file's modification time would say when its person answered: it gets
    the answer's day instead. (The inode's change time cannot be set by a program: whoever
    reads the evidence volume's metadata still sees it.)"""
    from survey.privacy.data import STORED_NAME, stored_files
    from survey.respond.uploads import evidence_dir

    stamp = day.timestamp()
    for name in stored_files(answers):
        path = evidence_dir() / name
        if STORED_NAME.fullmatch(name) and path.exists():
            os.utime(path, (stamp, stamp))
