"""Reminders: who gets one, when, and what it says (in-process, real SMTP server).

``queue_due_reminders`` takes the time as a parameter, so quiet hours and
schedules are checked at chosen moments without waiting for them.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from survey.campaigns import services
from survey.campaigns.models import Campaign, Invitation
from survey.campaigns.reminders import gap_before, queue_due_reminders, quiet_until
from survey.extensions import db
from survey.mail.models import OutboxMessage
from survey.mail.sending import send_batch
from survey.mail.suppression import opt_out
from tests.campaigns.helpers import invitations, now, outbox, started_campaign

PARIS = "Europe/Paris"
QUIET = (time(20, 0), time(8, 0))


def _local(day: str, clock: str, zone: str = PARIS) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


def _zone_where_it_is(hour: int) -> str:
    """A fixed-offset time zone whose local time is now ``hour``:xx."""
    offset = (hour - datetime.now(timezone.utc).hour + 12) % 24 - 12  # -12..11
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def _campaign(alumni, create_stakeholder, monkeypatch, *, people=1, zone=PARIS, quiet=None,
              reminders=("PT1H", "PT3H"), closes_in=timedelta(days=2)):
    for number in range(people):
        create_stakeholder(email=f"person{number}@example.org", timezone=zone)
    campaign = started_campaign(alumni, monkeypatch, reminders=list(reminders),
                                closes_at=now() + closes_in)
    campaign.quiet_hours_start, campaign.quiet_hours_end = quiet or (None, None)
    db.session.commit()
    return campaign


def _fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def _queue_now(invitation) -> int:
    """Make the invitation's reminder due a moment ago, then queue what is due."""
    invitation.next_reminder_at = now() - timedelta(seconds=1)
    db.session.commit()
    queued = queue_due_reminders()
    db.session.commit()
    return queued


def _reminders(campaign_id):
    return [row for row in outbox(campaign_id) if row.kind == "reminder"]


# ---------------------------------------------------------------------- quiet hours, the rule

@pytest.mark.parametrize("clock, quiet, expected", [
    ("23:00", QUIET, ("2026-11-24", "08:00")),   # late evening: wait for the morning
    ("02:30", QUIET, ("2026-11-23", "08:00")),   # night: the same day's morning
    ("07:59", QUIET, ("2026-11-23", "08:00")),
    ("08:00", QUIET, None),                      # the end is not quiet any more
    ("19:59", QUIET, None),
    ("20:00", QUIET, ("2026-11-24", "08:00")),
    ("12:30", (time(12, 0), time(14, 0)), ("2026-11-23", "14:00")),  # a window within the day
    ("15:00", (time(12, 0), time(14, 0)), None),
    ("23:00", (None, None), None),               # no quiet hours at all
])
def test_quiet_hours_in_the_recipients_time_zone(clock, quiet, expected):
    moment = _local("2026-11-23", clock)
    until = quiet_until(moment, PARIS, *quiet)
    assert until == (_local(*expected) if expected else None)


def test_quiet_hours_follow_each_persons_own_clock():
    moment = _local("2026-11-23", "23:00")  # 23:00 in Paris is 17:00 in Montreal
    assert quiet_until(moment, "America/Montreal", *QUIET) is None
    assert quiet_until(moment, PARIS, *QUIET) == _local("2026-11-24", "08:00")


def test_gaps_follow_the_schedule(app):  # app: every model is mapped
    campaign = Campaign(reminders=["P3D", "P7D", "PT12H"])
    assert [gap_before(campaign, n) for n in (1, 2, 3, 4)] == [
        timedelta(hours=12), timedelta(days=3) - timedelta(hours=12), timedelta(days=4), None]


# ---------------------------------------------------------------------- the schedule

def test_the_first_reminder_falls_due_its_delay_after_the_invitation(app, alumni, create_stakeholder, smtp_server,
                                                                    monkeypatch):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch)
    assert send_batch(10) == 1
    [invitation] = invitations(campaign.id)
    assert invitation.sent_at is not None
    assert invitation.next_reminder_at == invitation.sent_at + timedelta(hours=1)

    assert queue_due_reminders(invitation.sent_at + timedelta(minutes=59)) == 0  # not yet
    assert queue_due_reminders(invitation.sent_at + timedelta(hours=1)) == 1
    db.session.commit()
    [reminder] = _reminders(campaign.id)
    assert (reminder.sequence, reminder.status) == (1, "queued")
    assert _fresh(Invitation, invitation.id).next_reminder_at is None  # one at a time


def test_reminders_say_so_and_the_next_one_follows_the_schedule(app, alumni, create_stakeholder, smtp_server,
                                                               monkeypatch):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch)
    send_batch(10)
    invitation = invitations(campaign.id)[0]
    assert _queue_now(invitation) == 1
    assert send_batch(10) == 1

    [first, second] = smtp_server.messages
    title = alumni.title("en")
    assert first["message"]["Subject"] == f"{title}: a few minutes of your time"
    reminder = second["message"]
    assert reminder["Subject"] == f"Reminder: {title}"
    assert "A short reminder" in reminder.get_body(("plain",)).get_content()
    assert reminder["Message-ID"] != first["message"]["Message-ID"]
    stored = _fresh(Invitation, invitation.id)
    assert stored.reminders_sent == 1
    # The second reminder: 3 h after the invitation, so 2 h after the first reminder went out.
    sent = _reminders(campaign.id)[0].sent_at
    assert stored.next_reminder_at == sent + timedelta(hours=2)


def test_someone_who_started_is_asked_to_finish_not_invited_again(app, alumni, create_stakeholder, smtp_server,
                                                                 client, monkeypatch):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch)
    send_batch(10)
    invitation = invitations(campaign.id)[0]
    invitation.started_at, invitation.status = now(), "started"
    _queue_now(invitation)
    send_batch(10)

    reminder = smtp_server.messages[-1]["message"]
    body = reminder.get_body(("plain",)).get_content()
    assert reminder["Subject"] == f"Finish your answers: {alumni.title('en')}"
    assert "your answers are saved" in body


def test_the_schedule_is_capped_by_its_length(app, alumni, create_stakeholder, smtp_server, monkeypatch):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch, reminders=("PT1H",))
    send_batch(10)
    invitation = invitations(campaign.id)[0]
    _queue_now(invitation)
    send_batch(10)
    assert _fresh(Invitation, invitation.id).next_reminder_at is None
    assert queue_due_reminders(now() + timedelta(days=1)) == 0
    assert len(smtp_server.messages) == 2


@pytest.mark.parametrize("change", ["completed", "opted_out", "bounced", "suppressed", "closed"])
def test_no_reminder_for_those_who_answered_left_or_cannot_be_reached(app, alumni, create_stakeholder,
                                                                     smtp_server, monkeypatch, change):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch)
    send_batch(10)
    invitation = invitations(campaign.id)[0]
    due = invitation.next_reminder_at
    if change == "completed":
        invitation.completed_at, invitation.status = now(), "completed"
    elif change == "opted_out":
        opt_out(invitation, everything=False)
    elif change == "bounced":
        invitation.status = "bounced"
    elif change == "suppressed":
        invitation.stakeholder.suppressed_at = now()
        invitation.stakeholder.suppression_reason = "opted out"
    else:
        campaign.closes_at = due - timedelta(seconds=1)
    db.session.commit()
    assert queue_due_reminders(due) == 0
    assert _reminders(campaign.id) == []


def test_a_reminder_queued_before_an_answer_is_cancelled_not_sent(app, alumni, create_stakeholder, smtp_server,
                                                                 monkeypatch):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch)
    send_batch(10)
    invitation = invitations(campaign.id)[0]
    _queue_now(invitation)
    invitation.completed_at, invitation.status = now(), "completed"
    db.session.commit()

    assert send_batch(10) == 1
    [reminder] = _reminders(campaign.id)
    assert reminder.status == "cancelled"
    assert "already answered" in reminder.smtp_reply
    assert len(smtp_server.messages) == 1  # the invitation only


def test_closing_cancels_queued_reminders_and_stops_the_schedule(app, alumni, create_stakeholder, smtp_server,
                                                                 monkeypatch):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch, people=2)
    send_batch(10)
    first, second = invitations(campaign.id)
    db.session.execute(update(Invitation).where(Invitation.id == first.id)
                       .values(next_reminder_at=now() - timedelta(seconds=1)))
    queue_due_reminders()
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(closes_at=now() - timedelta(seconds=1)))
    db.session.commit()

    assert services.close_due_campaigns() == 1
    db.session.commit()
    assert [r.status for r in _reminders(campaign.id)] == ["cancelled"]
    assert _fresh(Invitation, second.id).next_reminder_at is None
    assert send_batch(10) == 0
    assert len(smtp_server.messages) == 2


# ---------------------------------------------------------------------- quiet hours, applied

def test_a_reminder_due_at_23h_local_waits_for_8h_local(app, alumni, create_stakeholder, smtp_server, monkeypatch):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch, quiet=QUIET)
    send_batch(10)
    invitation = invitations(campaign.id)[0]
    evening = _local((now() + timedelta(days=1)).date().isoformat(), "23:00")
    morning = _local((now() + timedelta(days=2)).date().isoformat(), "08:00")
    invitation.next_reminder_at = evening
    campaign.closes_at = now() + timedelta(days=5)
    db.session.commit()

    assert queue_due_reminders(evening) == 0
    db.session.commit()
    assert _fresh(Invitation, invitation.id).next_reminder_at == morning
    assert queue_due_reminders(morning - timedelta(seconds=1)) == 0
    assert queue_due_reminders(morning) == 1
    db.session.commit()
    assert len(_reminders(campaign.id)) == 1


def test_quiet_hours_that_last_past_the_close_mean_no_reminder(app, alumni, create_stakeholder, smtp_server,
                                                              monkeypatch):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch, quiet=QUIET)
    send_batch(10)
    invitation = invitations(campaign.id)[0]
    evening = _local((now() + timedelta(days=1)).date().isoformat(), "23:00")
    invitation.next_reminder_at = evening
    campaign.closes_at = evening + timedelta(hours=2)
    db.session.commit()

    assert queue_due_reminders(evening) == 0
    db.session.commit()
    assert _fresh(Invitation, invitation.id).next_reminder_at is None


def test_a_reminder_about_to_go_out_at_night_waits_in_the_outbox(app, alumni, create_stakeholder, smtp_server,
                                                                monkeypatch):
    """The sender checks quiet hours too: a retry or a backlog can push a reminder into the night."""
    zone = _zone_where_it_is(23)
    campaign = _campaign(alumni, create_stakeholder, monkeypatch, zone=zone, quiet=QUIET)
    send_batch(10)
    invitation = invitations(campaign.id)[0]
    db.session.add(OutboxMessage(invitation_id=invitation.id, kind="reminder", sequence=1))
    db.session.commit()

    assert send_batch(10) == 1
    [reminder] = _reminders(campaign.id)
    assert (reminder.status, reminder.attempts) == ("queued", 0)
    local_morning = reminder.next_attempt_at.astimezone(ZoneInfo(zone))
    assert (local_morning.hour, local_morning.minute) == (8, 0)
    assert reminder.next_attempt_at > now()
    assert len(smtp_server.messages) == 1


def test_two_runs_at_once_queue_each_reminder_once(app, alumni, create_stakeholder, smtp_server, monkeypatch):
    campaign = _campaign(alumni, create_stakeholder, monkeypatch, people=3)
    send_batch(10)
    due = max(i.next_reminder_at for i in invitations(campaign.id))
    assert queue_due_reminders(due) == 3
    # A second beat that read the same invitations before the first committed inserts
    # the same (invitation, reminder, 1) rows: the unique key turns them into no-ops.
    db.session.execute(update(Invitation).where(Invitation.campaign_id == campaign.id)
                       .values(next_reminder_at=due))
    assert queue_due_reminders(due) == 0
    db.session.commit()
    assert len(_reminders(campaign.id)) == 3
