"""Campaign operations: create, schedule, start sending, open, close; progress counts.

A campaign's status changes only through ``transition``; the table below says
which changes exist.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, time, timedelta

import isodate
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, insert, literal, select, update

from survey.audiences.models import KINDS, Stakeholder
from survey.audiences.services import audience_conditions
from survey.audit.chain import acting, record
from survey.campaigns.models import PRIVACY_MODES, Campaign, Invitation
from survey.core.bulk import insert_rows
from survey.core.errors import InvalidState, ValidationFailed
from survey.core.tokens import derive_hex_token, derive_token, hash_token
from survey.core.types import UTCDateTime, utcnow
from survey.extensions import db
from survey.mail.models import OutboxMessage
from survey.questionnaires.models import Questionnaire
from survey.web import LABELS

#: status → the statuses it may go to
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"scheduled"}),
    # scheduled → closed: the closing time passed before it could start (workers down)
    "scheduled": frozenset({"draft", "sending", "closed"}),
    "sending": frozenset({"open", "closed"}),
    "open": frozenset({"closed"}),
    "closed": frozenset(),
}

INVITATION_COLUMNS = ("campaign_id", "stakeholder_id", "token_nonce", "token_hash", "unsubscribe_hash", "status",
                      "reminders_sent", "created_at")


class CampaignTransitionRefused(InvalidState):
    pass


def transition(campaign: Campaign, to: str) -> None:
    """Move ``campaign`` to ``to`` or refuse; the one place a campaign's status is set."""
    if to not in TRANSITIONS[campaign.status]:
        raise CampaignTransitionRefused(
            _l("A %(status)s campaign cannot become %(to)s.", status=LABELS.get(campaign.status, campaign.status),
               to=LABELS.get(to, to)),
            status_from=campaign.status, status_to=to
        )
    now = utcnow()
    if campaign.id is not None:  # a campaign's every status change is in the audit trail
        record("campaign_status", f"campaign:{campaign.id}", actor=acting(), from_state=campaign.status, to_state=to)
    campaign.status = to
    if to == "scheduled":
        campaign.scheduled_at = now
    elif to == "draft":
        campaign.scheduled_at = None
    elif to == "sending":
        campaign.sending_started_at = now
    elif to == "closed":
        campaign.closed_at = now


def parse_reminders(reminders: list[str] | None) -> list[str]:
    """Validate ISO 8601 durations ("P3D", "PT30S"); return them in ascending order."""
    parsed = []
    for text in reminders or []:
        try:
            duration = isodate.parse_duration(str(text).strip())
        except (isodate.ISO8601Error, ValueError, OverflowError):  # P99999999999D overflows
            raise ValidationFailed(_l("“%(text)s” is not an ISO 8601 duration such as P3D or PT12H.", text=text),
                                   field="reminders") from None
        if isinstance(duration, isodate.Duration):  # months or years: no fixed length
            raise ValidationFailed(
                _l("“%(text)s”: use days, hours, minutes or seconds, not months or years.", text=text),
                field="reminders")
        if duration <= timedelta(0):
            raise ValidationFailed(_l("“%(text)s” must be after the invitation.", text=text), field="reminders")
        parsed.append((duration, str(text).strip()))
    if len({d for d, _ in parsed}) != len(parsed):
        raise ValidationFailed(_l("Two reminders have the same delay."), field="reminders")
    return [text for _, text in sorted(parsed)]


def parse_quiet_hours(text: str | None) -> tuple[time, time] | None:
    """ "20:00-08:00" → (20:00, 08:00); "" or None → no quiet hours."""
    text = (text or "").strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})", text)
    try:
        if not match:
            raise ValueError
        start = time(int(match.group(1)), int(match.group(2)))
        end = time(int(match.group(3)), int(match.group(4)))
    except ValueError:
        raise ValidationFailed(_l("“%(text)s”: write quiet hours as HH:MM-HH:MM, e.g. 20:00-08:00.", text=text),
                               field="quiet_hours") from None
    if start == end:
        raise ValidationFailed(_l("Quiet hours must start and end at different times."), field="quiet_hours")
    return start, end


def default_quiet_hours() -> tuple[time, time] | None:
    return parse_quiet_hours(current_app.config["DEFAULT_QUIET_HOURS"])


def create_campaign(
    *,
    name: str,
    questionnaire: Questionnaire,
    audience_kind: str,
    audience_filters: dict | None,
    privacy: str,
    send_at: datetime,
    closes_at: datetime,
    reminders: list[str] | None = None,
    quiet_hours: tuple[time, time] | None | str = "default",
    created_by=None,
) -> Campaign:
    """A draft campaign. ``quiet_hours``: (start, end) local times with no reminders,
    None for none, or the configured default."""
    campaign = Campaign(created_by_id=getattr(created_by, "id", None))
    _apply_settings(campaign, name=name, questionnaire=questionnaire, audience_kind=audience_kind,
                    audience_filters=audience_filters, privacy=privacy, send_at=send_at,
                    closes_at=closes_at, reminders=reminders, quiet_hours=quiet_hours)
    db.session.add(campaign)
    db.session.flush()
    record("campaign_created", f"campaign:{campaign.id}", actor=created_by or acting(),
           data={"questionnaire": questionnaire.id, "privacy": privacy, "audience": audience_kind})
    return campaign


def campaign_settings(campaign: Campaign) -> dict:
    """What an admin chose for a campaign, as ``create_campaign`` takes it."""
    quiet = ((campaign.quiet_hours_start, campaign.quiet_hours_end)
             if campaign.quiet_hours_start is not None else None)
    return {"name": campaign.name, "questionnaire": campaign.questionnaire,
            "audience_kind": campaign.audience_kind, "audience_filters": dict(campaign.audience_filters or {}),
            "privacy": campaign.privacy, "send_at": campaign.send_at, "closes_at": campaign.closes_at,
            "reminders": list(campaign.reminders or []), "quiet_hours": quiet}


def update_campaign(campaign: Campaign, **changes) -> None:
    """Change some of a draft's settings (``create_campaign``'s names); the rest stay.
    Once scheduled, a campaign must go back to draft first."""
    if campaign.status != "draft":
        raise InvalidState(_l("Only a draft can be changed: unschedule the campaign first."),
                           status=campaign.status)
    unknown = set(changes) - set(campaign_settings(campaign))
    if unknown:
        raise ValidationFailed(_l("Unknown campaign settings: %(names)s.", names=", ".join(sorted(unknown))))
    before = campaign_settings(campaign)
    _apply_settings(campaign, **{**before, **changes})
    changed = sorted(name for name, value in campaign_settings(campaign).items() if value != before[name])
    if changed:
        record("campaign_changed", f"campaign:{campaign.id}", actor=acting(), data={"settings": changed})


def _apply_settings(campaign: Campaign, *, name, questionnaire, audience_kind, audience_filters, privacy,
                    send_at, closes_at, reminders, quiet_hours) -> None:
    """Check every setting, then write them all (nothing is written if one is wrong)."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed(_l("A campaign needs a name."), field="name")
    # PostgreSQL stores no NUL character in text: refuse it here, not with a 500 there.
    for field, text in (("name", name), *(("audience_filters", f"{k}{v}") for k, v in (audience_filters or {}).items())):
        if "\x00" in text:
            raise ValidationFailed(_l("Remove the invisible NUL character from this text."), field=field)
    if audience_kind not in KINDS:
        raise ValidationFailed(_l("Audience kind must be one of %(kinds)s.", kinds=", ".join(KINDS)), field="audience")
    if questionnaire.kind != audience_kind:
        raise ValidationFailed(
            _l("Questionnaire %(slug)s is written for %(kind)s, not %(audience_kind)s: choose one written for them.",
               slug=questionnaire.slug, kind=LABELS.get(questionnaire.kind, questionnaire.kind),
               audience_kind=LABELS.get(audience_kind, audience_kind)),
            field="questionnaire_id")
    if privacy not in PRIVACY_MODES:
        raise ValidationFailed(_l("Privacy must be one of %(modes)s.", modes=", ".join(PRIVACY_MODES)), field="privacy")
    for field, moment in (("send_at", send_at), ("closes_at", closes_at)):
        if moment.tzinfo is None:
            raise ValidationFailed(_l("Times need a time zone offset."), field=field)
    if closes_at <= send_at:
        raise ValidationFailed(_l("The campaign must close after it is sent."), field="closes_at")
    reminders = parse_reminders(reminders)
    if quiet_hours == "default":
        quiet_hours = default_quiet_hours()
    campaign.name, campaign.questionnaire, campaign.audience_kind = name[:200], questionnaire, audience_kind
    campaign.audience_filters = {str(k): str(v) for k, v in (audience_filters or {}).items()}
    campaign.privacy, campaign.send_at, campaign.closes_at = privacy, send_at, closes_at
    campaign.reminders = reminders
    campaign.quiet_hours_start, campaign.quiet_hours_end = quiet_hours or (None, None)


def audience_query(campaign: Campaign):
    """The stakeholders a campaign goes to: its kind and filters, never the suppressed."""
    return select(Stakeholder.id).where(
        *audience_conditions(campaign.audience_kind, campaign.audience_filters, reachable_only=True)
    )


def audience_count(campaign: Campaign) -> int:
    return db.session.scalar(select(func.count()).select_from(audience_query(campaign).subquery()))


def schedule_campaign(campaign: Campaign) -> None:
    """Draft → scheduled; freezes the questionnaire version; starts at once if due."""
    from survey.core.deferred import after_commit
    from survey.questionnaires.services import freeze_questionnaire
    from workflows.tasks import start_campaign

    if campaign.status == "draft" and campaign.closes_at <= utcnow():
        raise ValidationFailed(_l("This campaign's closing time has passed; change it before scheduling."))
    if campaign.status == "draft" and audience_count(campaign) == 0:
        raise ValidationFailed(_l("No one in the audience can be emailed: import people or change the filters."))
    transition(campaign, "scheduled")
    freeze_questionnaire(campaign.questionnaire)
    if campaign.send_at <= utcnow():
        after_commit(start_campaign, campaign.id)


def unschedule_campaign(campaign: Campaign) -> None:
    transition(campaign, "draft")


def invitation_token(invitation_nonce: str) -> str:
    """The secret in a survey link, recomputed from SECRET_KEY and the stored nonce."""
    return derive_token(current_app.config["SECRET_KEY"], "invitation", invitation_nonce)


def unsubscribe_token(invitation_nonce: str) -> str:
    """The secret in an invitation's List-Unsubscribe link; hex, as it also travels
    in an email address (unsubscribe+<token>@…)."""
    return derive_hex_token(current_app.config["SECRET_KEY"], "unsubscribe", invitation_nonce)


def start_campaign(campaign_id: int) -> bool:
    """Scheduled and due → sending, with the first chunk of invitations (one invitation
    and one outbox row per recipient); returns whether it started.

    An audience of up to INVITE_CHUNK people is invited whole in this transaction, so a
    worker killed half-way leaves the campaign scheduled and the next attempt starts
    clean. A larger one is invited a chunk per transaction by ``add_invitations``, while
    the first emails go out: a million people take a minute to invite, too long to send
    nothing, and too long for one transaction.
    """
    now = utcnow()
    # The conditional UPDATE is the lock, on SQLite as on PostgreSQL: of two workers
    # starting the same campaign, the second waits, then matches nothing.
    # (A campaign whose closing time passed while workers were down is never started.)
    claimed = db.session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == "scheduled", Campaign.send_at <= now,
               Campaign.closes_at > now)
        .values(sending_started_at=now, invitations_lease_until=now + INVITATIONS_LEASE)
    ).rowcount
    if claimed != 1:
        return False
    campaign = db.session.get(Campaign, campaign_id)
    db.session.refresh(campaign)
    transition(campaign, "sending")
    _invite_next_chunk(campaign, now)
    return True


def refresh_queue_statistics() -> None:
    """Let PostgreSQL see the queue a campaign just filled (its first chunk), before the
    senders' first claims.

    Autovacuum analyses a table once a tenth of it has changed: a campaign of 100,000
    on an outbox of millions that had nothing queued would be sent on statistics that
    say nothing is queued, and on those the planner takes a bitmap scan and a sort of
    every queued row over the index that would stop after a batch (40 ms a batch at
    60,000 queued instead of 2). A sample of each table: a fraction of a second.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.connection().exec_driver_sql("ANALYZE invitations, outbox_messages")
        db.session.commit()


#: how long a worker inviting a campaign's audience holds it between two chunks; past
#: that, beat gives the rest to another worker (a chunk takes well under a second)
INVITATIONS_LEASE = timedelta(minutes=2)


def add_invitations(campaign_id: int) -> bool:
    """Invite the next chunk of a sending campaign's audience, in the caller's transaction;
    returns whether more may remain. False once every invitation exists, or when the
    campaign was closed meanwhile.

    The conditional UPDATE is the lock, as in ``start_campaign``: two workers given the
    same campaign (a beat resuming one it thought abandoned) take turns, and each reads,
    once it holds the campaign, who is invited already; the unique (campaign, person)
    constraint stands behind that.
    """
    now = utcnow()
    held = db.session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == "sending", Campaign.invitations_made_at.is_(None))
        .values(invitations_lease_until=now + INVITATIONS_LEASE)
    ).rowcount
    if held != 1:
        return False
    campaign = db.session.get(Campaign, campaign_id)
    db.session.refresh(campaign)
    return _invite_next_chunk(campaign, now)


def campaigns_to_resume_inviting() -> list[int]:
    """Sending campaigns whose invitations are not all made and whose worker's hold ran out
    (it died, or its task was lost): beat gives them to another worker."""
    return db.session.scalars(
        select(Campaign.id).where(Campaign.status == "sending", Campaign.invitations_made_at.is_(None),
                                  Campaign.invitations_lease_until < utcnow())
    ).all()


def _invite_next_chunk(campaign: Campaign, now) -> bool:
    """Invitations and outbox rows for the next INVITE_CHUNK people of the audience, by
    id, after the last one invited; marks the campaign's invitations made when none is
    left. Returns whether more may remain."""
    last_id = db.session.scalar(
        select(func.max(Invitation.stakeholder_id)).where(Invitation.campaign_id == campaign.id)) or 0
    chunk = current_app.config["INVITE_CHUNK"]
    ids = db.session.scalars(
        audience_query(campaign).where(Stakeholder.id > last_id).order_by(Stakeholder.id).limit(chunk)
    ).all()
    rows = []
    for stakeholder_id in ids:
        nonce = secrets.token_hex(16)
        rows.append((campaign.id, stakeholder_id, nonce, hash_token(invitation_token(nonce)),
                     hash_token(unsubscribe_token(nonce)), "queued", 0, now))
    insert_rows(Invitation.__table__, INVITATION_COLUMNS, rows)
    if rows:
        db.session.execute(
            insert(OutboxMessage).from_select(
                ["invitation_id", "kind", "sequence", "status", "attempts", "next_attempt_at", "created_at"],
                select(
                    Invitation.id, literal("invitation"), literal(0), literal("queued"), literal(0),
                    literal(now, UTCDateTime()), literal(now, UTCDateTime()),
                ).where(Invitation.campaign_id == campaign.id, Invitation.stakeholder_id > last_id),
            )
        )
    if len(ids) < chunk:  # the audience is all invited
        campaign.invitations_made_at = now
        campaign.invitations_lease_until = None
        return False
    return True


def campaigns_due_to_start() -> list[int]:
    return db.session.scalars(
        select(Campaign.id).where(Campaign.status == "scheduled", Campaign.send_at <= utcnow(),
                                  Campaign.closes_at > utcnow())
    ).all()


def open_sent_campaigns() -> int:
    """Sending → open once no invitation email is still waiting to go."""
    waiting = (
        select(OutboxMessage.id)
        .join(Invitation, Invitation.id == OutboxMessage.invitation_id)
        .where(
            Invitation.campaign_id == Campaign.id,
            OutboxMessage.kind == "invitation",
            OutboxMessage.status.in_(("queued", "sending")),
        )
    )
    campaigns = db.session.scalars(
        select(Campaign).where(Campaign.status == "sending", Campaign.invitations_made_at.is_not(None),
                               ~waiting.exists())
    ).all()
    for campaign in campaigns:
        transition(campaign, "open")
    return len(campaigns)


def close_due_campaigns() -> int:
    """At closes_at: the campaign closes, links stop accepting answers, queued mail
    is cancelled and no reminder falls due any more."""
    from survey.mail.suppression import cancel_queued

    campaigns = db.session.scalars(
        select(Campaign).where(Campaign.status.in_(("scheduled", "sending", "open")),
                               Campaign.closes_at <= utcnow())
    ).all()
    for campaign in campaigns:
        transition(campaign, "closed")
        of_campaign = select(Invitation.id).where(Invitation.campaign_id == campaign.id)
        cancel_queued(of_campaign)
        db.session.execute(
            update(Invitation).where(Invitation.campaign_id == campaign.id,
                                     Invitation.next_reminder_at.is_not(None))
            .values(next_reminder_at=None)
        )
    return len(campaigns)


def is_accepting_answers(campaign: Campaign) -> bool:
    return campaign.status in ("sending", "open") and utcnow() < campaign.closes_at


#: what the progress counts are called, in the order ``_count_columns`` gives them
COUNT_KEYS = ("invited", "sent", "failed", "queued", "opened", "started", "completed")


def _count_columns() -> tuple:
    """The aggregates over a campaign's invitations, one per ``COUNT_KEYS``: invited, whose
    email went out, failed or bounced, still waiting to be sent, opened, started, completed."""
    return (
        func.count(Invitation.id),
        func.count(Invitation.sent_at),
        func.sum(case((Invitation.status.in_(("failed", "bounced")), 1), else_=0)),
        func.sum(case((Invitation.status == "queued", 1), else_=0)),
        func.count(Invitation.opened_at),
        func.count(Invitation.started_at),
        func.count(Invitation.completed_at),
    )


def campaign_counts_many(campaign_ids) -> dict[int, dict[str, int]]:
    """Progress counts of several campaigns (a page of a list) in one GROUP BY query;
    every id is in the answer, zeros for a campaign with no invitation."""
    ids = list(dict.fromkeys(campaign_ids))
    counts = {campaign_id: dict.fromkeys(COUNT_KEYS, 0) for campaign_id in ids}
    if not ids:
        return counts
    rows = db.session.execute(
        select(Invitation.campaign_id, *_count_columns())
        .where(Invitation.campaign_id.in_(ids)).group_by(Invitation.campaign_id)
    )
    for campaign_id, *values in rows:
        counts[campaign_id] = {key: int(value or 0) for key, value in zip(COUNT_KEYS, values)}
    return counts


def campaign_counts(campaign_id: int) -> dict[str, int]:
    """Progress counts of one campaign (``COUNT_KEYS``) in one aggregate query."""
    return campaign_counts_many([campaign_id])[campaign_id]
