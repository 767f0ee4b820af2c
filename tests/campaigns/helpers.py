"""Helpers shared by the campaign, mail and respond tests: a campaign in a given state."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import event, select

from survey.campaigns import services
from survey.campaigns.models import Campaign, Invitation
from survey.core.tokens import hash_token
from survey.extensions import db
from survey.mail.models import OutboxMessage


def now() -> datetime:
    return datetime.now(timezone.utc)


def make_campaign(questionnaire, *, audience_kind=None, filters=None, privacy="identified",
                  send_at=None, closes_at=None, reminders=None, name="Alumni 2025") -> Campaign:
    """A draft campaign (committed) sending a minute ago and closing in two days by default."""
    campaign = services.create_campaign(
        name=name, questionnaire=questionnaire, audience_kind=audience_kind or questionnaire.kind,
        audience_filters=filters, privacy=privacy,
        send_at=send_at or now() - timedelta(minutes=1),
        closes_at=closes_at or now() + timedelta(days=2), reminders=reminders,
    )
    db.session.commit()
    return campaign


def schedule(campaign: Campaign, monkeypatch) -> list:
    """Schedule without queueing a real Celery task; returns the tasks that would have been queued."""
    from workflows import tasks

    queued = []
    monkeypatch.setattr(tasks.start_campaign, "apply_async",
                        lambda args=(), kwargs=None, **_: queued.append(tuple(args)))
    services.schedule_campaign(campaign)
    db.session.commit()
    return queued


def started_campaign(questionnaire, monkeypatch, **options) -> Campaign:
    """A campaign scheduled and started in-process: invitations and outbox rows exist."""
    campaign = make_campaign(questionnaire, **options)
    schedule(campaign, monkeypatch)
    assert services.start_campaign(campaign.id) is True
    db.session.commit()
    return campaign


def invitations(campaign_id: int) -> list[Invitation]:
    return db.session.scalars(
        select(Invitation).where(Invitation.campaign_id == campaign_id).order_by(Invitation.id)
    ).all()


def outbox(campaign_id: int) -> list[OutboxMessage]:
    return db.session.scalars(
        select(OutboxMessage).join(Invitation, Invitation.id == OutboxMessage.invitation_id)
        .where(Invitation.campaign_id == campaign_id).order_by(OutboxMessage.id)
    ).all()


def link_path(invitation: Invitation) -> str:
    """The path of an invitation's survey link (/s/<token>), as the email gives it."""
    token = services.invitation_token(invitation.token_nonce)
    assert hash_token(token) == invitation.token_hash
    return f"/s/{token}"


@contextmanager
def counted_queries():
    """Collects the SQL statements sent to the database inside the block (by this
    thread's requests too: a test client's request runs in the same process)."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, _parameters, _context, _executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
