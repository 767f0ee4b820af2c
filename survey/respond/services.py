"""What happens when a respondent opens, saves and submits a survey.

Opening never uses a link up; saving keeps a draft; submitting happens once.
In an anonymous campaign the submitted response is cut from the invitation, keeps
no time of its own (every answer carries the campaign's send day) and is stored
mixed with earlier answers (``survey.privacy.anonymity``).

Each submitted response keeps a copy of the respondent's groups (REPORT_SEGMENTS:
department, programme, cohort…) so the report can group answers without going back
to the person; in an anonymous campaign only groups of at least REPORT_MIN_GROUP
invitees are kept, so the copy never narrows a response down to a few people.
"""
from __future__ import annotations

from datetime import datetime, time, timezone

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from survey.audiences.models import Stakeholder
from survey.campaigns.models import Campaign, Invitation, Response
from survey.campaigns.services import is_accepting_answers
from survey.core.errors import InvalidState
from survey.core.tokens import hash_token
from survey.core.types import utcnow
from survey.extensions import db

# What a survey link's page needs, the person, the campaign, its questionnaire and the draft,
# in one statement; built once, as are the UPDATEs below, since every respondent's every page
# runs it (a statement built per call has its cache key computed per call: with three
# joinedload options, most of what SQLAlchemy did for this SELECT).
_BY_TOKEN = (select(Invitation).where(Invitation.token_hash == bindparam("token_hash"))
             .options(joinedload(Invitation.stakeholder), joinedload(Invitation.draft),
                      joinedload(Invitation.campaign).joinedload(Campaign.questionnaire)))

# The conditional UPDATEs that record an invitation's first opening and take it for a save
# or a submit: built once, on the table (the ORM's bulk UPDATE layer, or a flush, cost half
# as much again per call, and adds nothing when the caller sets what was written on the
# invitation itself).
_invitations = Invitation.__table__
_INVITATION = bindparam("invitation_id", type_=_invitations.c.id.type)
_NOW = bindparam("now", type_=_invitations.c.completed_at.type)
_OPEN = (
    _invitations.update()
    .where(_invitations.c.id == _INVITATION, _invitations.c.opened_at.is_(None))
    .values(opened_at=_NOW, status=case((_invitations.c.status.in_(("queued", "sent", "failed")), "opened"),
                                        else_=_invitations.c.status))
    .returning(_invitations.c.opened_at, _invitations.c.status)
)
_LOCK_TO_SAVE = (
    _invitations.update()
    .where(_invitations.c.id == _INVITATION, _invitations.c.completed_at.is_(None))
    .values(opened_at=func.coalesce(_invitations.c.opened_at, _NOW),
            started_at=func.coalesce(_invitations.c.started_at, _NOW),
            status=case((_invitations.c.status.in_(("opened", "sent", "queued", "failed")), "started"),
                        else_=_invitations.c.status))
    .returning(_invitations.c.opened_at, _invitations.c.started_at, _invitations.c.status)
)
_LOCK_TO_SUBMIT = (
    _invitations.update()
    .where(_invitations.c.id == _INVITATION, _invitations.c.completed_at.is_(None))
    .values(completed_at=_NOW, status="completed", started_at=func.coalesce(_invitations.c.started_at, _NOW),
            next_reminder_at=None,  # answered: no reminder is due, and the campaign page says none is
            opened_at=bindparam("opened_at", type_=_invitations.c.opened_at.type))
    .returning(_invitations.c.started_at)
)


class AlreadySubmitted(InvalidState):
    pass


class CampaignClosed(InvalidState):
    status = 410


#: a link token is 43 URL-safe characters; anything far from that is not ours
MAX_TOKEN_LENGTH = 100


def find_invitation(token: str) -> Invitation | None:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return db.session.scalar(_BY_TOKEN, {"token_hash": hash_token(token)})


def draft_for(invitation: Invitation) -> Response | None:
    """The invitation's draft or response as the database has it now (``invitation.draft``
    is the draft as it was read with the invitation)."""
    return db.session.scalar(select(Response).where(Response.invitation_id == invitation.id))


def check_open(invitation: Invitation) -> None:
    if invitation.completed_at is not None:
        raise AlreadySubmitted(_l("You have already answered this survey. Thank you!"))
    if not is_accepting_answers(invitation.campaign):
        raise CampaignClosed(_l("This survey is closed."))


def open_invitation(invitation: Invitation) -> None:
    """Record the first opening; opening again changes nothing (nor does a second tab
    opening at the same instant: the first one's time stays)."""
    if invitation.opened_at is None:
        opened = db.session.execute(_OPEN, {"invitation_id": invitation.id, "now": utcnow()}).first()
        if opened is not None:
            for name in ("opened_at", "status"):
                set_committed_value(invitation, name, getattr(opened, name))


def save_draft(invitation: Invitation, answers: dict, locale: str) -> Response:
    check_open(invitation)
    now = utcnow()
    # As for a submit, the conditional UPDATE is the lock: a save that comes after a submit
    # (another tab, the same instant) is refused, not written over the submitted answers.
    locked = db.session.execute(_LOCK_TO_SAVE, {"invitation_id": invitation.id, "now": now}).first()
    if locked is None:
        db.session.rollback()
        raise AlreadySubmitted(_l("You have already answered this survey. Thank you!"))
    for name in ("opened_at", "started_at", "status"):
        set_committed_value(invitation, name, getattr(locked, name))
    response = draft_for(invitation)
    if response is None:
        response = Response(campaign_id=invitation.campaign_id, invitation_id=invitation.id,
                            locale=locale, started_at=now, answers={})
        db.session.add(response)
    response.answers = answers
    response.locale = locale
    db.session.flush()
    return response


def segment_of(invitation: Invitation) -> dict[str, str]:
    """The respondent's groups (REPORT_SEGMENTS) to keep with the answer.

    In an anonymous campaign a value is kept only if at least REPORT_MIN_GROUP invitees of
    the campaign share it together with the values kept before it: one per attribute is not
    enough, since "Sales" and "cohort 2019" may each be large while only one person is both.
    """
    attributes = invitation.stakeholder.attributes or {}
    present = {name: str(attributes[name]) for name in current_app.config["REPORT_SEGMENTS"]
               if attributes.get(name) not in (None, "")}
    if invitation.campaign.privacy != "anonymous":
        return present
    kept: dict[str, str] = {}
    for name, value in present.items():
        wanted = {**kept, name: value}
        peers = db.session.scalar(
            select(func.count(Invitation.id))
            .join(Stakeholder, Stakeholder.id == Invitation.stakeholder_id)
            .where(Invitation.campaign_id == invitation.campaign_id,
                   *(Stakeholder.attributes[key].as_string() == val for key, val in wanted.items()))
        )
        if peers >= current_app.config["REPORT_MIN_GROUP"]:
            kept = wanted
    return kept


def submit_response(invitation: Invitation, answers: dict, locale: str) -> Response:
    """Submit once: a concurrent or repeated submit is refused and changes nothing."""
    check_open(invitation)
    now = utcnow()
    # The conditional UPDATE is the lock: of two simultaneous submits only one matches.
    locked = db.session.execute(_LOCK_TO_SUBMIT, {"invitation_id": invitation.id, "now": now,
                                                  "opened_at": invitation.opened_at or now}).first()
    if locked is None:
        db.session.rollback()
        raise AlreadySubmitted(_l("You have already answered this survey. Thank you!"))
    for name, value in (("completed_at", now), ("status", "completed"), ("started_at", locked.started_at),
                        ("opened_at", invitation.opened_at or now)):
        set_committed_value(invitation, name, value)  # what the UPDATE wrote, without reading it back
    campaign: Campaign = invitation.campaign
    # The draft read with the invitation is the one, unless a "save" committed since. Saving
    # starts the invitation: if the UPDATE found it started (by whoever, whenever) and no
    # draft was read, the draft is read again, now that the UPDATE holds the invitation.
    response = invitation.draft
    if response is None and locked.started_at != now:
        response = draft_for(invitation)
    if campaign.privacy == "anonymous":
        # Nothing may tie the answer to the person: no link, and no time of its own. Even
        # the day would do it (the invitation records when its person answered), so every
        # answer of the campaign carries the same day: the day the campaign was sent. The
        # draft goes, and the answer is a new row mixed with earlier ones (privacy.anonymity).
        from survey.privacy.anonymity import store_anonymous

        if response is not None:
            db.session.delete(response)
        # Nor the language it was given in: a few people answering in English narrow it down.
        response_id = store_anonymous({
            "campaign_id": campaign.id, "answers": answers, "segment": segment_of(invitation),
            "locale": current_app.config["BABEL_DEFAULT_LOCALE"],
            "submitted_at": datetime.combine(campaign.send_at.date(), time(0), tzinfo=timezone.utc),
        })
        return db.session.get(Response, response_id)
    if response is None:
        response = Response(campaign_id=invitation.campaign_id, invitation_id=invitation.id, started_at=now)
        db.session.add(response)
    response.answers = answers
    response.locale = locale
    response.submitted_at = now
    response.segment = segment_of(invitation)
    db.session.flush()
    if campaign.privacy == "identified":  # a claim names its claimant: never from a private answer
        from survey.claims.services import create_claims

        create_claims(response, invitation.stakeholder_id)
    return response
