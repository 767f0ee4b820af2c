"""The opt-out pages behind List-Unsubscribe (RFC 8058): one-click POST, the confirm
page, the two choices, opting back in, and the refusals."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from survey.audiences.models import Stakeholder
from survey.campaigns.models import Invitation
from survey.campaigns.services import unsubscribe_token
from survey.core.tokens import hash_token
from survey.extensions import db
from survey.mail.models import OutboxMessage
from tests.campaigns.helpers import invitations, link_path, started_campaign

EN = {"Accept-Language": "en"}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def two_campaigns(alumni, create_stakeholder, monkeypatch):
    """One English-speaking alumnus invited by two started campaigns (emails still queued).

    Returns (person id, [invitation ids], opt-out path of the first invitation).
    """
    def make(locale="en", **names):
        person = create_stakeholder(locale=locale)
        for key, value in names.items():
            setattr(person, key, value)
        db.session.commit()
        first = started_campaign(alumni, monkeypatch, name="Alumni 2025")
        second = started_campaign(alumni, monkeypatch, name="Alumni 2026")
        [a] = invitations(first.id)
        [b] = invitations(second.id)
        return person.id, [a.id, b.id], optout_path(a)

    return make


def optout_path(invitation: Invitation) -> str:
    token = unsubscribe_token(invitation.token_nonce)
    assert re.fullmatch(r"[0-9a-f]{40}", token)
    assert hash_token(token) == invitation.unsubscribe_hash
    return f"/u/{token}"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _open(client, path) -> str:
    page = client.get(path, headers=EN)
    assert page.status_code == 200, page.get_data(as_text=True)
    return page.get_data(as_text=True)


def _snapshot(person_id: int):
    """Everything an opt-out may change, to compare before and after."""
    db.session.expire_all()
    person = db.session.get(Stakeholder, person_id)
    invites = db.session.scalars(
        select(Invitation).where(Invitation.stakeholder_id == person_id).order_by(Invitation.id)
    ).all()
    rows = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.invitation_id.in_([i.id for i in invites]))
        .order_by(OutboxMessage.id)
    ).all()
    return {
        "person": (person.suppressed_at, person.suppression_reason),
        "invitations": [(i.id, i.status, i.opted_out_at, i.next_reminder_at) for i in invites],
        "outbox": [(r.id, r.invitation_id, r.status) for r in rows],
    }


def _outbox_status(invitation_id: int) -> set[str]:
    db.session.expire_all()
    return set(db.session.scalars(
        select(OutboxMessage.status).where(OutboxMessage.invitation_id == invitation_id)
    ))


def _person(person_id) -> Stakeholder:
    db.session.expire_all()
    return db.session.get(Stakeholder, person_id)


def _invitation(invitation_id) -> Invitation:
    db.session.expire_all()
    return db.session.get(Invitation, invitation_id)


def fresh(app, send, *args, **kwargs):
    """One request in its own application context, as in production.

    The test holds an app context open (``app_ctx``) and Flask reuses it for every
    request, so ``g`` (where Flask-WTF caches the CSRF token and where the view
    pins the language) would leak from one client's request into another's.
    """
    with app.app_context():
        return send(*args, **kwargs)


def provider_post(app, path, **kwargs):
    """A mail provider's one-click POST: no cookie, no CSRF token, no session."""
    return fresh(app, app.test_client(use_cookies=False).post, path, **kwargs)


def _no_caching(response):
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


# ------------------------------------------------------------------ RFC 8058 one-click POST

@pytest.mark.parametrize("how", ["urlencoded", "multipart", "no body"])
def test_one_click_post_without_cookie_or_csrf_stops_every_email(app, two_campaigns, how):
    person_id, (first, second), path = two_campaigns()
    assert _outbox_status(first) == _outbox_status(second) == {"queued"}
    if how == "urlencoded":
        response = provider_post(app, path, data=ONE_CLICK, headers=EN)
    elif how == "multipart":
        response = provider_post(app, path, data=ONE_CLICK, content_type="multipart/form-data", headers=EN)
    else:  # liberal: a POST without the RFC 8058 body is still the one-click
        response = provider_post(app, path, headers=EN)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert "You are unsubscribed" in response.get_data(as_text=True)
    _no_caching(response)
    person = _person(person_id)
    assert person.suppression_reason == "opted out" and person.suppressed_at is not None
    # Every queued email of this person is cancelled, in every campaign.
    assert _outbox_status(first) == _outbox_status(second) == {"cancelled"}
    assert _invitation(first).status == "opted_out" and _invitation(first).opted_out_at is not None

    before = _snapshot(person_id)
    again = provider_post(app, path, data=ONE_CLICK, headers=EN)
    assert again.status_code == 200 and "Location" not in again.headers
    assert _snapshot(person_id) == before  # idempotent: nothing new


def test_one_click_keeps_a_bounce_as_the_reason(app, two_campaigns):
    person_id, (first, _second), path = two_campaigns()
    person = _person(person_id)
    person.suppressed_at, person.suppression_reason = datetime.now(timezone.utc), "hard bounce: 550 5.1.1"
    db.session.commit()
    assert provider_post(app, path, data=ONE_CLICK).status_code == 200
    assert _person(person_id).suppression_reason == "hard bounce: 550 5.1.1"
    assert _invitation(first).opted_out_at is not None


def test_a_token_in_upper_case_still_works(app, two_campaigns):
    """Some mail servers change the case of the address part; the token is hex."""
    person_id, _ids, path = two_campaigns()
    response = provider_post(app, path.upper().replace("/U/", "/u/"), data=ONE_CLICK)
    assert response.status_code == 200
    assert _person(person_id).suppression_reason == "opted out"


# ------------------------------------------------------------------ GET: a confirm page only

def test_get_only_shows_the_choices_and_changes_nothing(client, two_campaigns):
    person_id, _ids, path = two_campaigns()
    before = _snapshot(person_id)
    for _ in range(2):  # a link scanner, then the person
        page = client.get(path, headers=EN)
        assert page.status_code == 200
        _no_caching(page)
    body = page.get_data(as_text=True)
    assert '<html lang="en">' in body
    assert "<h1>Unsubscribe</h1>" in body
    assert "Stop all emails from us</button>" in body
    assert "Stop emails about this survey only</button>" in body
    assert body.count(f'action="{path}/choose"') == 2
    assert 'name="scope" value="all"' in body and 'name="scope" value="survey"' in body
    assert _snapshot(person_id) == before


def test_the_survey_page_links_to_the_opt_out_page(client, two_campaigns):
    _person_id, (first, _second), path = two_campaigns()
    body = client.get(link_path(_invitation(first)), headers=EN).get_data(as_text=True)
    assert f'href="{path}"' in body


# ------------------------------------------------------------------ the two choices

def test_this_survey_only_leaves_the_other_campaigns_alone(client, two_campaigns):
    person_id, (first, second), path = two_campaigns()
    token = _csrf(_open(client, path))
    chosen = client.post(f"{path}/choose", data={"csrf_token": token, "scope": "survey"}, headers=EN)
    assert chosen.status_code == 303
    assert chosen.headers["Location"].endswith(path)

    invitation = _invitation(first)
    assert invitation.status == "opted_out" and invitation.opted_out_at is not None
    person = _person(person_id)
    assert (person.suppressed_at, person.suppression_reason) == (None, None)
    assert _outbox_status(first) == {"cancelled"}
    assert _outbox_status(second) == {"queued"}  # the other campaign's email still goes
    assert _invitation(second).opted_out_at is None

    result = client.get(path, headers=EN).get_data(as_text=True)
    assert "Done: you will get no more emails about this survey." in result
    assert "You are unsubscribed from this survey" in result
    assert "I changed my mind, email me again</button>" in result
    assert "Stop all emails from us</button>" in result  # can still go further


def test_stop_all_then_opt_back_in(client, two_campaigns):
    person_id, (first, second), path = two_campaigns()
    token = _csrf(_open(client, path))
    assert client.post(f"{path}/choose", data={"csrf_token": token, "scope": "all"}).status_code == 303
    assert _person(person_id).suppression_reason == "opted out"
    assert _outbox_status(first) == _outbox_status(second) == {"cancelled"}

    page = client.get(path, headers=EN).get_data(as_text=True)
    assert "Done: you will get no more emails from us." in page
    assert "<h1>You are unsubscribed</h1>" in page
    assert f'action="{path}/resubscribe"' in page

    # Reloading the result page (a GET) changes nothing more.
    before = _snapshot(person_id)
    assert client.get(path, headers=EN).status_code == 200
    assert _snapshot(person_id) == before

    back = client.post(f"{path}/resubscribe", data={"csrf_token": _csrf(page)}, headers=EN)
    assert back.status_code == 303 and back.headers["Location"].endswith(path)
    person = _person(person_id)
    assert (person.suppressed_at, person.suppression_reason) == (None, None)
    invitation = _invitation(first)
    assert invitation.opted_out_at is None and invitation.status != "opted_out"
    page = client.get(path, headers=EN).get_data(as_text=True)
    assert "Done: your opt-out is cancelled." in page
    assert "Stop all emails from us</button>" in page  # the choices again


def test_one_click_then_opt_back_in_from_the_page(app, client, two_campaigns):
    person_id, (first, _second), path = two_campaigns()
    provider_post(app, path, data=ONE_CLICK)
    page = _open(client, path)
    assert "<h1>You are unsubscribed</h1>" in page
    client.post(f"{path}/resubscribe", data={"csrf_token": _csrf(page)})
    assert _person(person_id).suppressed_at is None
    assert _invitation(first).status != "opted_out"


def test_opting_back_in_never_lifts_a_bounce(client, two_campaigns):
    person_id, (first, _second), path = two_campaigns()
    token = _csrf(_open(client, path))
    client.post(f"{path}/choose", data={"csrf_token": token, "scope": "survey"})
    person = _person(person_id)
    bounced_at = datetime.now(timezone.utc)
    person.suppressed_at, person.suppression_reason = bounced_at, "hard bounce: 550 5.1.1 no such user"
    db.session.commit()

    page = client.get(path, headers=EN).get_data(as_text=True)
    assert "could not be delivered" in page
    assert client.post(f"{path}/resubscribe", data={"csrf_token": token}).status_code == 303
    person = _person(person_id)
    assert person.suppression_reason == "hard bounce: 550 5.1.1 no such user"
    assert person.suppressed_at is not None
    assert _invitation(first).opted_out_at is None  # their own opt-out is undone, the bounce stays
    assert "could not be delivered" in client.get(path, headers=EN).get_data(as_text=True)


# ------------------------------------------------------------------ refusals

def _tampered(path: str) -> list[str]:
    token = path.removeprefix("/u/")
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")
    return [flipped, token[:-1], token + "0", token[:-1] + "g", "0" * 40, "x" * 5000]


def test_tampered_tokens_are_404_and_change_nothing(app, client, two_campaigns):
    person_id, (first, _second), path = two_campaigns()
    csrf = _csrf(_open(client, path))
    before = _snapshot(person_id)
    survey_token = link_path(_invitation(first)).removeprefix("/s/")  # the survey link's token is not it
    for token in _tampered(path) + [survey_token]:
        bad = f"/u/{token}"
        for response in (
            client.get(bad, headers=EN),
            provider_post(app, bad, data=ONE_CLICK, headers=EN),
            client.post(f"{bad}/choose", data={"csrf_token": csrf, "scope": "all"}, headers=EN),
            client.post(f"{bad}/resubscribe", data={"csrf_token": csrf}, headers=EN),
        ):
            assert response.status_code == 404, (token, response.status_code)
            assert "This link does not work" in response.get_data(as_text=True)
            assert "Location" not in response.headers
            _no_caching(response)
    assert _snapshot(person_id) == before


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_choose_without_a_valid_csrf_token_is_400_and_changes_nothing(client, two_campaigns, token):
    person_id, _ids, path = two_campaigns()
    _open(client, path)
    before = _snapshot(person_id)
    data = {"scope": "all"}
    if token is not None:
        data["csrf_token"] = token
    refused = client.post(f"{path}/choose", data=data, headers=EN)
    assert refused.status_code == 400
    assert "Nothing was saved" in refused.get_data(as_text=True)
    _no_caching(refused)
    assert _snapshot(person_id) == before


def test_resubscribe_without_csrf_is_400_and_keeps_the_opt_out(app, client, two_campaigns):
    person_id, _ids, path = two_campaigns()
    provider_post(app, path, data=ONE_CLICK)
    _open(client, path)
    before = _snapshot(person_id)
    assert client.post(f"{path}/resubscribe", data={}).status_code == 400
    assert _snapshot(person_id) == before
    assert _person(person_id).suppression_reason == "opted out"


def test_the_choices_work_over_https_from_a_browser_that_sends_no_referer(app, two_campaigns):
    person_id, _ids, path = two_campaigns()
    https = {"base_url": "https://attest.test.example"}
    browser = app.test_client()
    page = fresh(app, browser.get, path, **https).get_data(as_text=True)
    chosen = fresh(app, browser.post, f"{path}/choose",
                   data={"csrf_token": _csrf(page), "scope": "survey"}, **https)
    assert chosen.status_code == 303


@pytest.mark.parametrize("scope", [None, "", "everything", "ALL"])
def test_choose_an_unknown_scope_is_400_and_changes_nothing(client, two_campaigns, scope):
    person_id, _ids, path = two_campaigns()
    data = {"csrf_token": _csrf(_open(client, path))}
    if scope is not None:
        data["scope"] = scope
    before = _snapshot(person_id)
    refused = client.post(f"{path}/choose", data=data, headers=EN)
    assert refused.status_code == 400
    assert "Nothing was changed" in refused.get_data(as_text=True)
    assert _snapshot(person_id) == before


# ------------------------------------------------------------------ language and escaping

def test_pages_are_in_the_persons_language(app, client, two_campaigns):
    _person_id, _ids, path = two_campaigns(locale="fr")
    body = client.get(path, headers=EN).get_data(as_text=True)  # the browser says English
    assert '<html lang="fr">' in body
    assert "<h1>Se désinscrire</h1>" in body
    assert "Ne plus recevoir aucun e-mail de notre part</button>" in body
    assert "Ne plus recevoir d'e-mail sur cette enquête seulement</button>" in body
    one_click = provider_post(app, path, data=ONE_CLICK, headers=EN)
    assert '<html lang="fr">' in one_click.get_data(as_text=True)
    assert "Votre désinscription est enregistrée" in one_click.get_data(as_text=True)


def test_a_language_chosen_on_the_site_wins(app, client, two_campaigns):
    _person_id, _ids, path = two_campaigns(locale="fr")
    token = _csrf(fresh(app, _open, client, path))
    fresh(app, client.post, "/language", data={"csrf_token": token, "lang": "en", "next": path})
    assert "<h1>Unsubscribe</h1>" in fresh(app, client.get, path).get_data(as_text=True)


def test_html_in_the_name_is_shown_escaped(client, two_campaigns):
    evil = '<script>alert("x")</script><b onmouseover=alert(1)>'
    _person_id, _ids, path = two_campaigns(first_name=evil)
    body = _open(client, path)
    assert "<script>alert" not in body
    assert "<b onmouseover" not in body
    assert "&lt;script&gt;alert(" in body
