"""Fixtures for the committee pages: claims made the real way (a started campaign and a
submitted identified response) and committee members; ``browser`` is in tests/factories.py."""
from __future__ import annotations

from io import BytesIO

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from survey.campaigns.models import Invitation
from survey.claims.models import Claim
from survey.extensions import db
from survey.respond.services import submit_response
from survey.respond.uploads import store_upload
from tests.campaigns.helpers import started_campaign
from tests.factories import token  # noqa: F401  (the committee tests import it from here)

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

ANSWERS = {"activity": "employed_full_time", "outcomes": ["new_job"], "attribution": 4,
           "employer": "ACME", "role": "Data analyst", "evidence_link": "https://example.org/profile/ada"}


def stored_file(data: bytes = PDF, filename: str = "contract.pdf") -> dict:
    return store_upload(FileStorage(stream=BytesIO(data), filename=filename))


@pytest.fixture
def committee(create_user):
    """Two committee members: every claim gets both (REVIEWERS_PER_CLAIM = 2)."""
    return [create_user(role="committee"), create_user(role="committee")]


@pytest.fixture
def make_claims(alumni, create_stakeholder, monkeypatch):
    """make_claims(answers…) → the claims of one submitted response per answers, in one
    started campaign (a claim per claimed outcome, reviewers assigned)."""
    counter = iter(range(1, 1000))

    def make(*answer_sets, programme="Data Analyst", name=None, with_file=False):
        answer_sets = answer_sets or (ANSWERS,)
        people = [create_stakeholder(programme=programme) for _answers in answer_sets]
        campaign = started_campaign(alumni, monkeypatch, filters={"programme": programme},
                                    name=name or f"Campaign {next(counter)}")
        claims = []
        for person, answers in zip(people, answer_sets):
            invitation = db.session.scalar(select(Invitation).where(
                Invitation.campaign_id == campaign.id, Invitation.stakeholder_id == person.id))
            answers = dict(answers)
            if with_file:
                answers["evidence_file"] = stored_file()
            response = submit_response(invitation, answers, "en")
            db.session.commit()
            claims += db.session.scalars(
                select(Claim).where(Claim.response_id == response.id).order_by(Claim.id)).all()
        return claims

    return make


def post(client, url, prefix=None, csrf=True, **fields):
    """POST a committee form (fields named ``<prefix>-<name>``), with the session's CSRF token."""
    data = {(f"{prefix}-{name}" if prefix else name): value for name, value in fields.items()}
    if csrf:
        data["csrf_token"] = token(client)
    return client.post(url, data=data)


def reload(model):
    db.session.expire_all()
    return db.session.get(type(model), model.id)
