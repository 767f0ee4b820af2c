"""Privacy tests' fixtures: a person who answered an identified campaign with evidence,
left a draft in another, and a committee to review their claim."""
from __future__ import annotations

import io
import itertools
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from survey.accounts.models import User
from survey.audiences.models import Stakeholder
from survey.campaigns.models import Campaign, Invitation, Response
from survey.claims.models import Claim
from survey.extensions import db
from survey.respond import services as respond
from survey.respond.uploads import store_upload
from tests.campaigns.helpers import link_path, started_campaign

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
_seq = itertools.count(1)

#: what the person gave us, each of which must be gone after erasure
EMAIL = "zephyrine.quatremare@example.org"
FIRST, LAST = "Zéphyrine", "Quatremare"
SECRETS = {
    "employer": "Quatremare Forges SARL",
    "comment": "Ma voisine Odalie m'a aidée",
    "evidence_link": "https://profiles.example/in/zquatremare",
    "file": "cv_zquatremare.pdf",
    "contact": "Hortense Brisebarre, hortense.brisebarre@forges.example",
    "draft": "brouillon très personnel",
}


@dataclass
class Story:
    person: Stakeholder
    campaign: Campaign
    other_campaign: Campaign
    invitation: Invitation
    link: str
    claim: Claim
    stored_file: str


@pytest.fixture
def member(app_ctx):
    def make(role="committee") -> User:
        user = User(email=f"{role}{next(_seq)}@staff.example", name="", role=role, password_hash="-",
                    active=True, attributes={})
        db.session.add(user)
        db.session.commit()
        return user

    return make


def answer(campaign: Campaign, person: Stakeholder, answers: dict) -> Response:
    invitation = db.session.scalar(select(Invitation).where(
        Invitation.campaign_id == campaign.id, Invitation.stakeholder_id == person.id))
    response = respond.submit_response(invitation, answers, person.locale)
    db.session.commit()
    return response


@pytest.fixture
def story(app_ctx, alumni, create_stakeholder, member, monkeypatch) -> Story:
    from survey.claims.services import add_contact_evidence

    member(), member()
    person = create_stakeholder(email=EMAIL, cohort="2019", programme="Data")
    person.first_name, person.last_name = FIRST, LAST
    others = [create_stakeholder(cohort="2019", programme="Data") for _ in range(3)]
    db.session.commit()
    campaign = started_campaign(alumni, monkeypatch, name=f"Alumni {next(_seq)}")
    upload = store_upload(FileStorage(io.BytesIO(PDF), filename=SECRETS["file"]))
    response = answer(campaign, person, {
        "activity": "employed_full_time", "outcomes": ["new_job"], "attribution": 4,
        "employer": SECRETS["employer"], "comment": SECRETS["comment"],
        "evidence_link": SECRETS["evidence_link"], "evidence_file": upload,
    })
    answer(campaign, others[0], {"activity": "seeking", "outcomes": ["none"], "comment": "someone else"})
    claim = db.session.scalar(select(Claim).where(Claim.response_id == response.id))
    add_contact_evidence(claim, SECRETS["contact"], actor="respondent")
    db.session.commit()
    # A second campaign, where the person saved a draft and did not submit.
    other = started_campaign(alumni, monkeypatch, name=f"Alumni {next(_seq)}")
    draft_invitation = db.session.scalar(select(Invitation).where(
        Invitation.campaign_id == other.id, Invitation.stakeholder_id == person.id))
    respond.save_draft(draft_invitation, {"comment": SECRETS["draft"]}, "en")
    db.session.commit()
    invitation = db.session.scalar(select(Invitation).where(
        Invitation.campaign_id == campaign.id, Invitation.stakeholder_id == person.id))
    return Story(person, campaign, other, invitation, link_path(invitation), claim, upload["stored_as"])


def stored_text() -> str:
    """Every row of every table, as text: what a copy of the database would show."""
    db.session.expire_all()
    chunks = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(table.select()):
            chunks.append(" | ".join(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                                     for value in row))
    return "\n".join(chunks)


def personal_needles() -> list[str]:
    return [EMAIL, FIRST, LAST, *SECRETS.values()]


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args, input=None):
        db.session.commit()  # the command runs in its own session: let it see everything
        result = runner.invoke(args=list(args), input=input)
        db.session.expire_all()
        return result

    return invoke
