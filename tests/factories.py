"""Factory fixtures: ``create_user``, ``login``, ``create_stakeholder``…"""
from __future__ import annotations

import itertools

import pytest

from survey.extensions import db

_seq = itertools.count(1)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def create_user(app_ctx):
    from survey.accounts.services import create_user as _create

    def factory(role="admin", email=None, password=PASSWORD):
        user = _create(email or f"{role}{next(_seq)}@staff.example", password, role)
        db.session.commit()
        return user

    return factory


@pytest.fixture
def login(client):
    def do_login(user, password=PASSWORD):
        client.get("/login")
        response = client.post(
            "/login", data={"email": user.email, "password": password, "csrf_token": csrf_token(client)}
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return do_login


def csrf_token(client, path="/login") -> str:
    """The CSRF token of the client's session, read from a rendered form."""
    import re

    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def create_stakeholder(app_ctx):
    from survey.audiences.models import Stakeholder

    def factory(kind="alumnus", email=None, locale="en", timezone="Europe/Paris", **attributes):
        person = Stakeholder(
            kind=kind, email=email or f"person{next(_seq)}@example.org", first_name="Ada",
            last_name="Lovelace", locale=locale, timezone=timezone, attributes=attributes,
        )
        db.session.add(person)
        db.session.commit()
        return person

    return factory


@pytest.fixture
def builtin_questionnaires(app_ctx):
    from survey.questionnaires.services import load_builtin_questionnaires

    questionnaires = {q.slug: q for q in load_builtin_questionnaires()}
    db.session.commit()
    return questionnaires


@pytest.fixture
def alumni(builtin_questionnaires):
    """The built-in alumni-outcomes questionnaire."""
    return builtin_questionnaires["alumni-outcomes"]


@pytest.fixture
def open_survey(app_ctx, create_stakeholder, builtin_questionnaires):
    """A campaign that has started, and the survey link of one person in it."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import select

    from survey.campaigns import services
    from survey.campaigns.models import Invitation

    def factory(slug="alumni-outcomes", privacy="identified", locale="en"):
        questionnaire = builtin_questionnaires[slug]
        person = create_stakeholder(kind=questionnaire.kind, locale=locale)
        now = datetime.now(timezone.utc)
        campaign = services.create_campaign(
            name="Test campaign", questionnaire=questionnaire, audience_kind=questionnaire.kind,
            audience_filters={}, privacy=privacy, send_at=now - timedelta(minutes=1),
            closes_at=now + timedelta(days=1),
        )
        services.schedule_campaign(campaign)
        db.session.info.pop("attest_deferred_tasks", None)  # sent in-process below, not by a worker
        assert services.start_campaign(campaign.id)
        db.session.commit()
        invitation = db.session.scalar(
            select(Invitation).where(Invitation.campaign_id == campaign.id, Invitation.stakeholder_id == person.id)
        )
        return invitation, f"/s/{services.invitation_token(invitation.token_nonce)}"

    return factory
