"""Reminders: who is due one, when, and queueing it in the outbox.

Each invitation carries ``next_reminder_at``. It is set when an email to the
person goes out (the invitation, then each reminder), to that moment plus the
gap the campaign's schedule gives before the next reminder; it is NULL while a
reminder waits in the outbox and once the schedule is used up. Beat polls for
due invitations and the senders queue them (``queue_due_reminders``): no long
countdown lives in the broker, so a restart of Redis or of a worker loses nothing.

A reminder due during the recipient's quiet hours (local time, per campaign)
is moved to the end of those hours; none is queued after the campaign closes.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import isodate
from sqlalchemy import and_, exists, literal, select, update

from survey.audiences.models import Stakeholder
from survey.campaigns.models import Campaign, Invitation
from survey.core.bulk import insert_or_ignore
from survey.core.types import UTCDateTime, utcnow
from survey.extensions import db
from survey.mail.models import OutboxMessage

#: invitations turned into reminder rows per statement
CHUNK = 5000

#: an invitation in one of these may get a reminder (not failed, bounced, completed, opted out)
REMINDABLE = ("sent", "opened", "started")


def schedule_offsets(campaign: Campaign) -> list[timedelta]:
    """The campaign's reminders as delays after the invitation, ascending."""
    return list(_offsets(tuple(campaign.reminders or ())))


@lru_cache(maxsize=256)
def _offsets(reminders: tuple[str, ...]) -> tuple[timedelta, ...]:
    """Parsed once per schedule: the sending loop asks for each email's next gap."""
    return tuple(sorted(isodate.parse_duration(text) for text in reminders))


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


def _wanted(now: datetime):
    """Whether a due invitation may still get its reminder: not failed, bounced, answered
    or opted out, its campaign still running, the address not suppressed."""
    return and_(
        Invitation.status.in_(REMINDABLE),
        Invitation.completed_at.is_(None),
        Invitation.opted_out_at.is_(None),
        Campaign.status.in_(("sending", "open")),
        Campaign.closes_at > now,
        Stakeholder.suppressed_at.is_(None),
    )


def reminders_due(now: datetime | None = None) -> bool:
    """Whether some invitation's reminder is due (one probe of the index on the due time)."""
    now = now or utcnow()
    return db.session.scalar(select(exists().where(Invitation.next_reminder_at <= now)))


def queue_due_reminders(now: datetime | None = None, limit: int | None = None) -> int:
    """Queue the reminders that are due (at most ``limit``; all without); returns how many.

    Beat does not queue them: it only sees that some are due (``reminders_due``) and
    starts the senders, and each sending task queues the next batch's worth before it
    sends (workflows.tasks.send_due_emails). So a million reminders falling due at once
    cost beat one index probe, and their rows are written a batch at a time, as fast as
    they can be sent.

    Invitations are taken in due order under ``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
    so several workers take different ones; and the outbox's unique key (invitation,
    kind, sequence) makes a second insert of the same reminder a no-op everywhere. Each
    due invitation leaves the due set: its reminder queued, or moved to the end of the
    recipient's quiet hours, or (no longer wanted, or quiet until after the close) none.
    Flushes; the caller commits.
    """
    now = now or utcnow()
    queued = 0
    remaining = limit
    quiet: dict[tuple[int, str], datetime | None | bool] = {}  # (campaign, time zone) → _after_quiet_hours
    while remaining is None or remaining > 0:
        size = CHUNK if remaining is None else min(CHUNK, remaining)
        rows = db.session.execute(
            select(Invitation.id, _wanted(now).label("wanted"), Invitation.campaign_id, Stakeholder.timezone)
            .join(Campaign, Campaign.id == Invitation.campaign_id)
            .join(Stakeholder, Stakeholder.id == Invitation.stakeholder_id)
            .where(Invitation.next_reminder_at <= now)
            .order_by(Invitation.next_reminder_at)  # the index's order: no sort of everything due
            .limit(size)
            .with_for_update(skip_locked=True, of=Invitation)
        ).all()
        if not rows:
            break
        send, later = [], defaultdict(list)  # later: new due time → invitation ids
        for invitation_id, wanted, campaign_id, timezone in rows:
            if (campaign_id, timezone) not in quiet:
                quiet[(campaign_id, timezone)] = _after_quiet_hours(now, campaign_id, timezone)
            if not wanted:
                later[None].append(invitation_id)
            elif (deferred := quiet[(campaign_id, timezone)]) is not False:
                later[deferred].append(invitation_id)
            else:
                send.append(invitation_id)
        if send:
            queued += _queue(send, now)
        for moment, ids in later.items():
            db.session.execute(update(Invitation).where(Invitation.id.in_(ids)).values(next_reminder_at=moment))
        if remaining is not None:
            remaining -= len(rows)
    return queued


def _queue(ids: list[int], now: datetime) -> int:
    """One reminder row per invitation (the next in its schedule); they are no longer due."""
    rows = select(
        Invitation.id, literal("reminder"), Invitation.reminders_sent + 1, literal("queued"),
        literal(0), literal(now, UTCDateTime()), literal(now, UTCDateTime()),
    ).where(Invitation.id.in_(ids))
    inserted = db.session.scalars(
        insert_or_ignore(OutboxMessage)
        .from_select(["invitation_id", "kind", "sequence", "status", "attempts", "next_attempt_at", "created_at"],
                     rows)
        .on_conflict_do_nothing()
        .returning(OutboxMessage.id)  # only the rows really inserted, on every driver
    ).all()
    db.session.execute(update(Invitation).where(Invitation.id.in_(ids)).values(next_reminder_at=None))
    return len(inserted)


def _after_quiet_hours(now: datetime, campaign_id: int, timezone: str):
    """False if ``now`` is not in the quiet hours of this campaign for this time zone;
    else when they end, or None if that is after the campaign closes (no reminder then)."""
    campaign = db.session.get(Campaign, campaign_id)  # the session's identity map: one load per campaign
    until = quiet_until(now, timezone, campaign.quiet_hours_start, campaign.quiet_hours_end)
    if until is None:
        return False
    return until if until < campaign.closes_at else None
