"""Sessions: a new one on login, and logout or a password change ends the user's other
sessions (another browser, another device) while the password change keeps this one."""
from __future__ import annotations

import re

from sqlalchemy import text

from survey.extensions import db
from tests.factories import PASSWORD, csrf_token

NEW_PASSWORD = "plum jacket orbit lantern"


def _logged_in(client) -> bool:
    return client.get("/admin/campaigns/").status_code == 200


def _stored(email: str, column: str) -> str:
    with db.engine.connect() as conn:
        return conn.execute(text(f"SELECT {column} FROM users WHERE email = :e"), {"e": email}).scalar_one()


def _change_password(client, current, new, again=None):
    return client.post("/account/password", data={
        "current_password": current, "new_password": new, "confirm_password": new if again is None else again,
        "csrf_token": csrf_token(client, "/account/password")})


def test_login_starts_a_new_session_nothing_carries_over(browser, create_user):
    user = create_user(role="admin")
    client = browser()
    before = csrf_token(client)
    with client.session_transaction() as session:
        session["planted"] = "by someone who had the cookie before login"
    client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": before})
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"].startswith(f"{user.id}:")
    assert csrf_token(client, "/admin/campaigns/") != before


def test_logout_ends_the_user_s_other_sessions(browser, create_user):
    user = create_user(role="admin")
    laptop, phone = browser(user), browser(user)
    other_user = browser(create_user(role="admin"))
    assert _logged_in(laptop) and _logged_in(phone)

    response = laptop.post("/logout", data={"csrf_token": csrf_token(laptop, "/admin/campaigns/")})
    assert response.status_code == 302

    assert not _logged_in(laptop)
    response = phone.get("/admin/campaigns/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert _logged_in(other_user)  # someone else's sessions are not touched
    # Logging in again works, on either device.
    assert _logged_in(browser(user))


def test_a_password_change_keeps_this_session_and_ends_the_others(browser, create_user):
    user = create_user(role="committee")
    laptop, phone = browser(user), browser(user)

    response = _change_password(laptop, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    page = laptop.get(response.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert "Your password is changed. Your other sessions are logged out." in page

    assert laptop.get("/committee/").status_code == 200
    assert phone.get("/committee/").status_code == 302
    # The old password no longer opens a session; the new one does.
    fresh = browser()
    refused = fresh.post("/login", data={"email": user.email, "password": PASSWORD,
                                         "csrf_token": csrf_token(fresh)})
    assert refused.status_code == 200 and "Wrong email or password." in refused.get_data(as_text=True)
    ok = fresh.post("/login", data={"email": user.email, "password": NEW_PASSWORD, "csrf_token": csrf_token(fresh)})
    assert ok.status_code == 302


def test_the_change_password_page_is_linked_from_the_staff_navigation(browser, create_user):
    for role in ("admin", "committee", "chair", "auditor"):
        page = browser(create_user(role=role)).get("/account/password")
        assert page.status_code == 200
        assert 'href="/account/password"' in page.get_data(as_text=True)


def test_the_change_password_page_needs_a_login(browser):
    response = browser().get("/account/password")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_a_wrong_current_password_changes_nothing(browser, create_user):
    user = create_user(role="admin")
    client, other = browser(user), browser(user)
    stored = _stored(user.email, "password_hash")
    response = _change_password(client, "not my password at all", NEW_PASSWORD)
    assert response.status_code == 400
    assert "This is not your current password." in response.get_data(as_text=True)
    assert _stored(user.email, "password_hash") == stored
    assert _logged_in(client) and _logged_in(other)


def test_the_two_new_passwords_must_match(browser, create_user):
    user = create_user(role="admin")
    client = browser(user)
    response = _change_password(client, PASSWORD, NEW_PASSWORD, again=NEW_PASSWORD + "!")
    assert response.status_code == 400
    assert "The two new passwords are not the same." in response.get_data(as_text=True)
    assert browser(user)  # the old password still works (browser() asserts the login)


def test_the_new_password_follows_the_policy(browser, create_user):
    user = create_user(role="admin", email="grace.hopper@staff.example")
    client = browser(user)
    stored = _stored(user.email, "password_hash")
    for new, message in [
        ("short", "A password needs at least 12 characters."),
        ("Password1234", "This password is on a list of common passwords"),
        ("Grace.Hopper2026", "A password cannot be made only of your email address or the name of this application."),
        ("attest-attest", "A password cannot be made only of your email address or the name of this application."),
        (PASSWORD, "The new password is the same as the current one."),
    ]:
        response = _change_password(client, PASSWORD, new)
        assert response.status_code == 400, new
        html = response.get_data(as_text=True)
        assert re.search(r'class="error-message"[^>]*>[^<]*' + re.escape(message[:40]), html), (new, html[-3000:])
    assert _stored(user.email, "password_hash") == stored


def test_the_change_password_form_needs_its_csrf_token(browser, create_user):
    user = create_user(role="admin")
    client = browser(user)
    stored = _stored(user.email, "password_hash")
    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert response.status_code == 400 and "Form expired" in response.get_data(as_text=True)
    assert _stored(user.email, "password_hash") == stored


def test_a_session_from_before_session_tokens_is_logged_out(browser, create_user):
    """A cookie that names only the user id (as before this change) no longer logs anyone in."""
    user = create_user(role="admin")
    client = browser(user)
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
    assert client.get("/admin/campaigns/").status_code == 302


def test_deactivating_a_user_ends_their_sessions(browser, create_user):
    user = create_user(role="admin")
    client = browser(user)
    user.active = False
    db.session.commit()
    assert client.get("/admin/campaigns/").status_code == 302
