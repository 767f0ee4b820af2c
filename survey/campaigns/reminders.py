"""Reminders: who is due one, when, and queueing it in the outbox.

Each invitation carries ``next_reminder_at``. It is set when an email to the
person goes out (the invitation, then each reminder), to that moment plus the
gap the campaign's schedule gives before the next reminder; it is NULL while a
reminder waits in the outbox and once the schedule is used up. Beat polls for
due invitations (``queue_due_reminders``): no long countdown lives in the
broker, so a restart of Redis or of a worker loses nothing.

A reminder due during the recipient's quiet hours (local time, per campaign)
is moved to the end of those hours; none is queued after the campaign closes.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import isodate
from sqlalchemy import and_, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from survey.audiences.models import Stakeholder
from survey.campaigns.models import Campaign, Invitation
from survey.core.types import UTCDateTime, utcnow
from survey.extensions import db
from survey.mail.models import OutboxMessage

#: invitations turned into reminder rows per statement (keyset-paginated)
CHUNK = 5000

#: an invitation in one of these may get a reminder (not failed, bounced, completed, opted out)
REMINDABLE = ("sent", "opened", "started")


def schedule_offsets(campaign: Campaign) -> list[timedelta]:
    """The campaign's reminders as delays after the invitation, ascending."""
    return sorted(isodate.parse_duration(text) for text in campaign.reminders or [])


def gap_before(campaign: Campaign, reminder_number: int) -> timedelta | None:
    """Time from the previous email to reminder ``reminder_number`` (1-based); None past the last."""
    offsets = schedule_offsets(campaign)
    if reminder_number > len(offsets):
        return None
    previous = offsets[reminder_number - 2] if reminder_number >= 2 else timedelta(0)
    return offsets[reminder_number - 1] - previous


def quiet_until(moment: datetime, timezone: str, start: time | None, end: time | None) -> datetime | None:
    """The end of the quiet hours ``moment`` falls in, for someone in ``timezone``; else None."""
    if start is None or end is None or start == end:
        return None
    local = moment.astimezone(ZoneInfo(timezone))
    now = local.time()
    if start < end:  # e.g. 12:00–14:00, within one day
        if not start <= now < end:
            return None
        day = local.date()
    else:  # e.g. 20:00–08:00, across midnight
        if start <= now:
            day = local.date() + timedelta(days=1)
        elif now < end:
            day = local.date()
        else:
            return None
    # A wall-clock time skipped by a DST change resolves forward; either way it is
    # the first moment the person is awake again.
    return datetime.combine(day, end, tzinfo=ZoneInfo(timezone)).astimezone(moment.tzinfo)


def _due(now: datetime):
    """Invitations whose next reminder is due and who may still receive one."""
    return and_(
        Invitation.next_reminder_at <= now,
        Invitation.status.in_(REMINDABLE),
        Invitation.completed_at.is_(None),
        Invitation.opted_out_at.is_(None),
        Campaign.id == Invitation.campaign_id,
        Campaign.status.in_(("sending", "open")),
        Campaign.closes_at > now,
        Stakeholder.id == Invitation.stakeholder_id,
        Stakeholder.suppressed_at.is_(None),
    )


def _insert_ignoring_duplicates():
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(OutboxMessage)


def queue_due_reminders(now: datetime | None = None) -> int:
    """Queue every reminder that is due; returns how many were queued.

    Safe to run from several beats or workers at once: invitations are taken
    under ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, and the outbox's unique key
    (invitation, kind, sequence) makes a second insert of the same reminder a
    no-op everywhere. Flushes; the caller commits.
    """
    now = now or utcnow()
    _defer_quiet_hours(now)
    queued = 0
    last_id = 0
    while True:
        ids = db.session.scalars(
            select(Invitation.id)
            .where(_due(now), Invitation.id > last_id)
            .order_by(Invitation.id)
            .limit(CHUNK)
            .with_for_update(skip_locked=True, of=Invitation)
        ).all()
        if not ids:
            return queued
        last_id = ids[-1]
        rows = select(
            Invitation.id, literal("reminder"), Invitation.reminders_sent + 1, literal("queued"),
            literal(0), literal(now, UTCDateTime()), literal(now, UTCDateTime()),
        ).where(Invitation.id.in_(ids))
        inserted = db.session.scalars(
            _insert_ignoring_duplicates()
            .from_select(["invitation_id", "kind", "sequence", "status", "attempts",
                          "next_attempt_at", "created_at"], rows)
            .on_conflict_do_nothing()
            .returning(OutboxMessage.id)  # only the rows really inserted, on every driver
        ).all()
        queued += len(inserted)
        db.session.execute(
            update(Invitation).where(Invitation.id.in_(ids)).values(next_reminder_at=None)
        )


def _defer_quiet_hours(now: datetime) -> None:
    """Move reminders due in their recipient's quiet hours to the end of those hours.

    One UPDATE per (campaign, time zone) among the due: there are few time zones,
    and the rows themselves never pass through Python.
    """
    groups = db.session.execute(
        select(Invitation.campaign_id, Stakeholder.timezone)
        .where(_due(now), Campaign.quiet_hours_start.is_not(None))
        .distinct()
    ).all()
    for campaign_id, timezone in groups:
        campaign = db.session.get(Campaign, campaign_id)
        until = quiet_until(now, timezone, campaign.quiet_hours_start, campaign.quiet_hours_end)
        if until is None:
            continue
        # Quiet until after the close: the reminder would never be allowed out.
        new_time = until if until < campaign.closes_at else None
        db.session.execute(
            update(Invitation)
            .where(
                Invitation.campaign_id == campaign.id,
                Invitation.next_reminder_at <= now,
                Invitation.stakeholder_id.in_(select(Stakeholder.id).where(Stakeholder.timezone == timezone)),
            )
            .values(next_reminder_at=new_time)
        )
