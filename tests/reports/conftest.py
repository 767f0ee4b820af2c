"""The report tests' fixtures: a cohort with known counts, a chair and an auditor."""
from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from survey.campaigns.models import Invitation, Response
from survey.claims.models import Claim
from survey.core.types import utcnow
from survey.extensions import db
from tests.campaigns.helpers import started_campaign

# 10 invited; 6 answered: their activity, and the claims each made (outcome, state)
ANSWERED = [
    ("employed_full_time", [("new_job", "proven")]),
    ("employed_full_time", [("new_job", "rejected"), ("raise", "proven")]),
    ("self_employed", [("business_created", "in_review")]),
    ("continuing_education", []),
    ("seeking", [("new_job", "withdrawn")]),
    (None, []),  # answered, but did not say what they do
]


@pytest.fixture
def cohort(alumni, create_stakeholder, monkeypatch):
    people = [create_stakeholder(email=f"p{number}@example.org") for number in range(10)]
    campaign = started_campaign(alumni, monkeypatch)
    invitations = {i.stakeholder_id: i for i in db.session.scalars(
        select(Invitation).where(Invitation.campaign_id == campaign.id))}
    for person, (activity, claims) in zip(people, ANSWERED):
        invitation = invitations[person.id]
        invitation.completed_at, invitation.status = utcnow(), "completed"
        response = Response(campaign_id=campaign.id, invitation_id=invitation.id, locale="en",
                            submitted_at=utcnow(), answers={"activity": activity} if activity else {})
        db.session.add(response)
        db.session.flush()
        for outcome, state in claims:
            db.session.add(Claim(response_id=response.id, campaign_id=campaign.id, stakeholder_id=person.id,
                                 outcome_type=outcome, state=state, token_nonce="n",
                                 token_hash=secrets.token_hex(32),
                                 decided_at=utcnow() if state in ("proven", "rejected") else None))
    db.session.commit()
    return campaign


@pytest.fixture
def chair(create_user):
    return create_user(role="chair")


@pytest.fixture
def auditor(create_user):
    return create_user(role="auditor")
