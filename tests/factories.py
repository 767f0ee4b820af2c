"""Factory fixtures: ``create_user``, ``login``, ``create_stakeholder``…"""
from __future__ import annotations

import itertools
import re
import threading

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

    def factory(slug="alumni-outcomes", privacy="identified", locale="en", definition=None):
        """``definition``: a questionnaire of the test's own instead of a built-in one."""
        from survey.questionnaires.services import add_questionnaire

        questionnaire = add_questionnaire(definition) if definition else builtin_questionnaires[slug]
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


@pytest.fixture
def browser(app, app_ctx):
    """browser(user) → a test client logged in as ``user``, reading pages in English;
    requests as isolated as real ones (tests/accounts/conftest.py)."""

    from tests.conftest import IsolatedClient

    def open_as(user=None):
        client = IsolatedClient(app, app.response_class, use_cookies=True)
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
        if user is not None:
            client.get("/login")
            response = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                                   "csrf_token": token(client, "/login")})
            assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return open_as


def token(client, path="/committee/") -> str:
    """The session's CSRF token, read from the form on ``path`` (a page the user may open)."""
    html = client.get(path, follow_redirects=True).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture(scope="session")
def live_server(app):
    """The app under test on http://127.0.0.1:<port>, in a thread of this process (so the
    tests and the pages share the database)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
