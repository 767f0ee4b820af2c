"""Rate limits: failed password attempts per address and per account, survey-link pages per
link and per address; a refused request is a clear 429 page with Retry-After.

The limits are off under TESTING (other tests log in and open survey links many times a
minute, all from 127.0.0.1); each test here turns them on for itself and uses addresses
and accounts of its own, so runs that share one Redis never share a counter. With
TEST_REDIS_URL the counters are in that Redis, as in production.
"""
from __future__ import annotations

import os
import uuid

import pytest

from tests.factories import PASSWORD, csrf_token


@pytest.fixture
def limits_on(app):
    from survey.extensions import limiter

    limiter.enabled = True
    yield limiter
    limiter.enabled = False


def _address() -> str:
    """An address no other test (or other run) uses: documentation IPv6 with a random suffix."""
    tail = uuid.uuid4().hex
    return "2001:db8:" + ":".join(tail[i:i + 4] for i in range(0, 24, 4))


def _email() -> str:
    return f"limited-{uuid.uuid4().hex[:12]}@staff.example"


def _client(browser, address: str):
    client = browser()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _try_login(client, email, password):
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)})


def _assert_refused(response):
    assert response.status_code == 429, response.get_data(as_text=True)[:300]
    html = response.get_data(as_text=True)
    assert "Too many requests" in html
    assert "Too many failed attempts. For the safety of the account, wait a few minutes" in html
    assert int(response.headers["Retry-After"]) >= 1


def test_one_account_tried_from_many_addresses_is_stopped(limits_on, browser, create_user):
    user = create_user(role="admin", email=_email())
    for _ in range(5):
        assert _try_login(_client(browser, _address()), user.email, "wrong password, again").status_code == 200
    # The sixth attempt on that account is refused from any address, even with the right password.
    client = _client(browser, _address())
    _assert_refused(_try_login(client, user.email, PASSWORD))
    _assert_refused(_try_login(_client(browser, _address()), user.email.upper(), PASSWORD))
    with client.session_transaction() as session:
        assert "_user_id" not in session
    # Another account, from the same address, is not affected.
    other = create_user(role="admin", email=_email())
    assert _try_login(client, other.email, PASSWORD).status_code == 302


def test_one_address_trying_many_accounts_is_stopped(limits_on, browser, create_user):
    address = _address()
    client = _client(browser, address)
    for _ in range(10):
        assert _try_login(client, _email(), "wrong password, again").status_code == 200
    user = create_user(role="admin", email=_email())
    _assert_refused(_try_login(client, user.email, PASSWORD))
    # The same account from another address gets in: the buckets are separate.
    assert _try_login(_client(browser, _address()), user.email, PASSWORD).status_code == 302


def test_successful_logins_do_not_count(limits_on, browser, create_user):
    user = create_user(role="admin", email=_email())
    address = _address()
    for _ in range(7):
        client = _client(browser, address)
        assert _try_login(client, user.email, PASSWORD).status_code == 302


def test_a_forwarded_for_header_does_not_pick_another_bucket(limits_on, browser):
    """Without a configured proxy (PROXY_FIX_X_FOR=0), X-Forwarded-For is the client's own word."""
    client = _client(browser, _address())
    for number in range(10):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"198.51.100.{number}"
        assert _try_login(client, _email(), "wrong password, again").status_code == 200
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.200"
    _assert_refused(_try_login(client, _email(), "wrong password, again"))


def test_password_confirmation_and_change_share_the_account_s_bucket(limits_on, browser, create_user):
    user = create_user(role="committee", email=_email())
    client = browser(user)
    client.environ_base["REMOTE_ADDR"] = _address()
    for _ in range(3):
        response = client.post("/confirm-password", data={"password": "not it at all",
                                                          "csrf_token": csrf_token(client, "/confirm-password")})
        assert response.status_code == 400
    for _ in range(2):
        response = client.post("/account/password", data={
            "current_password": "not it at all", "new_password": "a brand new passphrase",
            "confirm_password": "a brand new passphrase", "csrf_token": csrf_token(client, "/account/password")})
        assert response.status_code == 400
    response = client.post("/confirm-password", data={"password": PASSWORD,
                                                      "csrf_token": csrf_token(client, "/confirm-password")})
    _assert_refused(response)
    # and the login form, from elsewhere, for the same account
    _assert_refused(_try_login(_client(browser, _address()), user.email, PASSWORD))


def test_an_email_field_added_to_a_logged_in_form_buys_no_fresh_bucket(limits_on, browser, create_user):
    """Found in review: the account's bucket was named by any "email" field the form sent,
    so a stolen session could guess its password without end, a new email at each try."""
    user = create_user(role="committee", email=_email())
    client = browser(user)
    for number in range(5):
        client.environ_base["REMOTE_ADDR"] = _address()  # and from ever new addresses
        response = client.post("/confirm-password", data={
            "password": "not it at all", "email": _email(), "csrf_token": csrf_token(client, "/confirm-password")})
        assert response.status_code == 400
    client.environ_base["REMOTE_ADDR"] = _address()
    _assert_refused(client.post("/confirm-password", data={
        "password": PASSWORD, "email": _email(), "csrf_token": csrf_token(client, "/confirm-password")}))


def test_survey_link_pages_are_limited_per_link(limits_on, browser):
    address = _address()
    respondent = _client(browser, address)
    for _ in range(60):  # generous: a person answering never comes near it
        assert respondent.get("/s/not-a-real-token").status_code == 404
    refused = respondent.get("/s/not-a-real-token")
    assert refused.status_code == 429
    html = refused.get_data(as_text=True)
    assert "Too many requests with this link. Please wait a minute" in html
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["Referrer-Policy"] == "no-referrer"  # still a token page
    # The RFC 8058 one-click opt-out is never refused: mailbox providers post it.
    assert respondent.post("/u/not-a-real-token").status_code != 429
    # Colleagues behind the same address, with links of their own, are not affected;
    # the login form is another bucket.
    colleague = _client(browser, address)
    assert colleague.get("/s/another-token").status_code == 404
    assert colleague.get("/e/another-token").status_code == 404
    assert respondent.get("/login").status_code == 200


def test_one_address_has_a_ceiling_over_every_link(app, limits_on, browser, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_SURVEY_ADDRESS", "10/minute")
    address = _address()
    office = _client(browser, address)
    for number in range(10):
        assert office.get(f"/s/token-{number}").status_code == 404
    refused = office.get("/s/token-10")
    assert refused.status_code == 429
    assert "Too many requests from your connection" in refused.get_data(as_text=True)
    assert _client(browser, _address()).get("/s/token-10").status_code == 404  # another address


def test_the_link_counters_never_hold_the_link(app, limits_on, browser):
    """The counters live in Redis: keyed by a hash of the link, never by the link itself."""
    from survey.accounts.ratelimits import survey_link

    with app.test_request_context("/s/a-secret-link-token"):
        from flask import request
        request.view_args = {"token": "a-secret-link-token"}
        key = survey_link()
    assert key.startswith("link:") and "a-secret-link-token" not in key


def test_the_refusal_page_is_translated(limits_on, browser):
    address = _address()
    client = _client(browser, address)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr"
    for _ in range(60):
        client.get("/s/not-a-real-token")
    refused = client.get("/s/not-a-real-token")
    assert refused.status_code == 429
    assert '<html lang="fr">' in refused.get_data(as_text=True)


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="needs TEST_REDIS_URL (real Redis)")
def test_the_counters_are_kept_in_redis(app, limits_on, browser):
    import redis

    email = _email()
    _try_login(_client(browser, _address()), email, "wrong password, again")
    server = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    assert any(email in key.decode() for key in server.scan_iter(match=f"*{email}*"))
    assert app.config["RATELIMIT_STORAGE_URI"] == os.environ["TEST_REDIS_URL"]


def test_the_limits_are_off_under_testing_unless_turned_on(app):
    from survey.extensions import limiter

    assert app.config["RATELIMIT_ENABLED"] is False and limiter.enabled is False
