"""What happens when a respondent opens, saves and submits a survey.

Opening never uses a link up; saving keeps a draft; submitting happens once.
In an anonymous campaign the submitted response is cut from the invitation and
keeps only the day it was submitted.
"""
from __future__ import annotations

from datetime import datetime, time, timezone

from sqlalchemy import select, update

from survey.campaigns.models import Campaign, Invitation, Response
from survey.campaigns.services import is_accepting_answers
from survey.core.errors import InvalidState
from survey.core.tokens import hash_token
from survey.core.types import utcnow
from survey.extensions import db


class AlreadySubmitted(InvalidState):
    pass


class CampaignClosed(InvalidState):
    status = 410


#: a link token is 43 URL-safe characters; anything far from that is not ours
MAX_TOKEN_LENGTH = 100


def find_invitation(token: str) -> Invitation | None:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    return db.session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token)))


def draft_for(invitation: Invitation) -> Response | None:
    return db.session.scalar(select(Response).where(Response.invitation_id == invitation.id))


def check_open(invitation: Invitation) -> None:
    if invitation.completed_at is not None:
        raise AlreadySubmitted("You have already answered this survey. Thank you!")
    if not is_accepting_answers(invitation.campaign):
        raise CampaignClosed("This survey is closed.")


def open_invitation(invitation: Invitation) -> None:
    """Record the first opening; opening again changes nothing."""
    if invitation.opened_at is None:
        invitation.opened_at = utcnow()
        if invitation.status in ("queued", "sent", "failed"):
            invitation.status = "opened"


def save_draft(invitation: Invitation, answers: dict, locale: str) -> Response:
    check_open(invitation)
    now = utcnow()
    response = draft_for(invitation)
    if response is None:
        response = Response(campaign_id=invitation.campaign_id, invitation_id=invitation.id,
                            locale=locale, started_at=now, answers={})
        db.session.add(response)
    response.answers = answers
    response.locale = locale
    open_invitation(invitation)
    if invitation.started_at is None:
        invitation.started_at = now
    if invitation.status in ("opened", "sent", "queued", "failed"):
        invitation.status = "started"
    db.session.flush()
    return response


def submit_response(invitation: Invitation, answers: dict, locale: str) -> Response:
    """Submit once: a concurrent or repeated submit is refused and changes nothing."""
    check_open(invitation)
    now = utcnow()
    # The conditional UPDATE is the lock: of two simultaneous submits only one matches.
    claimed = db.session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.completed_at.is_(None))
        .values(completed_at=now, status="completed",
                started_at=invitation.started_at or now, opened_at=invitation.opened_at or now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise AlreadySubmitted("You have already answered this survey. Thank you!")
    db.session.refresh(invitation)
    response = draft_for(invitation)
    if response is None:
        response = Response(campaign_id=invitation.campaign_id, invitation_id=invitation.id, started_at=now)
        db.session.add(response)
    response.answers = answers
    response.locale = locale
    response.submitted_at = now
    campaign: Campaign = invitation.campaign
    if campaign.privacy == "anonymous":
        # Nothing may tie the answer to the person: no link, no precise times.
        response.invitation_id = None
        response.started_at = None
        response.submitted_at = datetime.combine(now.date(), time(0), tzinfo=timezone.utc)
    db.session.flush()
    if campaign.privacy == "identified":  # a claim names its claimant: never from a private answer
        from survey.claims.services import create_claims

        create_claims(response, invitation.stakeholder_id)
    return response
