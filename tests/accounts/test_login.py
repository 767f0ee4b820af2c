"""Logging in and out of the staff pages, and who may see which page."""
from __future__ import annotations

import re

import pytest

from tests.factories import PASSWORD, csrf_token

EN = {"Accept-Language": "en"}
STAFF_PAGES = [
    "/admin/campaigns/",
    "/admin/campaigns/new",
    "/admin/questionnaires/",
    "/admin/audiences/",
    "/admin/mail/",
]


def _flash_errors(html: str) -> list[str]:
    return [m.strip() for m in re.findall(r'class="flash flash-error"[^>]*>(.*?)</div>', html, re.S)]


def _logged_in_user_id(client):
    """The user id of the session (Flask-Login keeps "<id>:<session token>", User.get_id)."""
    with client.session_transaction() as session:
        value = session.get("_user_id")
    return value.partition(":")[0] if value else None


def _post_login(client, email, password, path="/login"):
    token = csrf_token(client)
    return client.post(path, data={"email": email, "password": password, "csrf_token": token}, headers=EN)


# --------------------------------------------------------------------------- login

def test_right_password_logs_in_and_lands_on_the_admin_home(client, create_user):
    user = create_user(role="admin")
    response = _post_login(client, user.email, PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/campaigns/"
    assert _logged_in_user_id(client) == str(user.id)
    assert client.get("/admin/campaigns/").status_code == 200


def test_email_is_matched_whatever_its_case_and_spaces(client, create_user):
    user = create_user(role="admin", email="ada@staff.example")
    response = _post_login(client, "  Ada@Staff.EXAMPLE ", PASSWORD)
    assert response.status_code == 302
    assert _logged_in_user_id(client) == str(user.id)


def test_wrong_password_and_unknown_email_give_the_same_message_and_no_session(client, create_user):
    user = create_user(role="admin")

    wrong_password = _post_login(client, user.email, PASSWORD + "x")
    unknown_email = _post_login(client, "nobody@staff.example", PASSWORD)

    for response in (wrong_password, unknown_email):
        assert response.status_code == 200  # the form again, not a redirect
        assert _logged_in_user_id(client) is None
    wrong_html = wrong_password.get_data(as_text=True)
    unknown_html = unknown_email.get_data(as_text=True)
    assert _flash_errors(wrong_html) == ["Wrong email or password."]
    assert _flash_errors(unknown_html) == _flash_errors(wrong_html)
    # And the staff pages stay closed.
    assert client.get("/admin/campaigns/").status_code == 302


def test_an_inactive_user_cannot_log_in(client, create_user):
    from survey.extensions import db

    user = create_user(role="admin")
    user.active = False
    db.session.commit()
    response = _post_login(client, user.email, PASSWORD)
    assert response.status_code == 200
    assert _flash_errors(response.get_data(as_text=True)) == ["Wrong email or password."]
    assert _logged_in_user_id(client) is None


def test_login_post_without_csrf_token_is_refused_with_a_clear_400_page(client, create_user):
    user = create_user(role="admin")
    client.get("/login")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD}, headers=EN)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Form expired" in html
    assert "reload the page" in html
    assert _logged_in_user_id(client) is None


def test_login_post_with_a_forged_csrf_token_is_refused(client, create_user):
    user = create_user(role="admin")
    client.get("/login")
    response = client.post(
        "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": "forged"}, headers=EN
    )
    assert response.status_code == 400
    assert _logged_in_user_id(client) is None


# ----------------------------------------------------------------------- next=

def test_a_next_path_on_this_site_is_followed(client, create_user):
    user = create_user(role="admin")
    response = _post_login(client, user.email, PASSWORD, path="/login?next=/admin/questionnaires/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/questionnaires/"


def test_anonymous_staff_page_round_trip_through_login(client, create_user):
    user = create_user(role="admin")
    response = client.get("/admin/audiences/")
    assert response.status_code == 302
    login_url = response.headers["Location"]
    assert login_url.startswith("/login?next=")
    response = _post_login(client, user.email, PASSWORD, path=login_url)
    assert response.headers["Location"] == "/admin/audiences/"


@pytest.mark.parametrize("target", [
    "//evil.example",
    "//evil.example/admin/campaigns/",
    "https://evil.example",
    "https://evil.example/admin/campaigns/",
    "http:evil.example",
    "javascript:alert(1)",
    "/\\evil.example",      # browsers read a backslash as a slash: //evil.example
    "\\\\evil.example",
    "/\t/evil.example",     # browsers drop tabs and newlines inside URLs
    "/\n/evil.example",
    "evil.example",
])
def test_next_pointing_off_site_is_ignored(client, create_user, target):
    from urllib.parse import quote

    user = create_user(role="admin")
    response = _post_login(client, user.email, PASSWORD, path="/login?next=" + quote(target, safe=""))
    assert response.status_code == 302
    location = response.headers["Location"]
    # Either ignored, or kept as a path a browser cannot read as another host.
    assert location == "/admin/campaigns/" or (
        location.startswith("/") and not location.startswith("//")
        and not any(c in location for c in "\\\t\r\n")
    ), location


# ----------------------------------------------------------------------- logout

def test_logout_is_post_only(client, create_user, login):
    login(create_user(role="admin"))
    response = client.get("/logout")
    assert response.status_code == 405
    assert client.get("/admin/campaigns/").status_code == 200  # still logged in


def test_logout_without_csrf_token_is_refused(client, create_user, login):
    user = create_user(role="admin")
    login(user)
    response = client.post("/logout", headers=EN)
    assert response.status_code == 400
    assert "Form expired" in response.get_data(as_text=True)
    assert _logged_in_user_id(client) == str(user.id)
    assert client.get("/admin/campaigns/").status_code == 200


def test_logout_with_csrf_token_ends_the_session(client, create_user, login):
    login(create_user(role="admin"))
    token = csrf_token(client, "/admin/campaigns/")
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert _logged_in_user_id(client) is None
    response = client.get("/admin/campaigns/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


# ----------------------------------------------------------------- staff pages

@pytest.mark.parametrize("page", STAFF_PAGES)
def test_staff_pages_send_anonymous_visitors_to_login(client, page):
    response = client.get(page)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("role", ["committee", "chair", "auditor"])
@pytest.mark.parametrize("page", STAFF_PAGES)
def test_staff_pages_are_forbidden_to_other_roles(client, create_user, login, role, page):
    login(create_user(role=role))
    response = client.get(page)
    assert response.status_code == 403


@pytest.mark.parametrize("page", STAFF_PAGES)
def test_staff_pages_open_for_admins(client, create_user, login, page):
    login(create_user(role="admin"))
    response = client.get(page)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]


@pytest.mark.parametrize("role, home", [("committee", "/committee/"), ("chair", "/committee/claims"),
                                        ("auditor", "/committee/claims")])
def test_other_roles_land_on_their_home_page_after_login(client, create_user, role, home):
    user = create_user(role=role)
    response = _post_login(client, user.email, PASSWORD)
    assert response.status_code == 302
    landing = client.get(response.headers["Location"])
    if landing.status_code == 302:  # "/" sends each role to its own work
        assert landing.headers["Location"] == home
        landing = client.get(landing.headers["Location"])
    assert landing.status_code == 200


@pytest.mark.parametrize("url", ["/admin/campaigns/99999999999999999999",
                                 "/admin/questionnaires/9223372036854775808"])
def test_an_id_too_large_for_the_database_is_a_plain_404(client, create_user, login, url):
    login(create_user(role="admin"))
    assert client.get(url).status_code == 404


def test_the_log_in_request_speaks_the_visitor_s_language(client):
    """Flask-Login's own message is English: "Please log in to access this page." on a French page."""
    response = client.get("/admin/campaigns/", headers={"Accept-Language": "fr"}, follow_redirects=True)
    body = response.get_data(as_text=True)
    assert "Please log in" not in body and "Veuillez vous connecter pour ouvrir cette page." in body


# --------------------------------------------------------------------------- language

def test_the_language_of_the_login_is_kept_for_the_staff_member_s_emails(client, create_user):
    from survey.accounts.models import User
    from survey.extensions import db

    user = create_user(role="committee")
    assert user.locale is None  # never logged in: their emails are in the default language
    token = csrf_token(client)
    client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token},
                headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    db.session.expire_all()
    assert db.session.get(User, user.id).locale == "fr"

    # the language switch, once logged in, changes it too
    token = csrf_token(client, "/committee/")
    client.post("/language", data={"lang": "en", "next": "/committee/", "csrf_token": token})
    db.session.expire_all()
    assert db.session.get(User, user.id).locale == "en"


def test_a_language_chosen_on_the_login_page_outlives_the_login(client, create_user):
    user = create_user(role="admin")
    client.get("/login", headers=EN)
    client.post("/language", data={"lang": "fr", "next": "/login", "csrf_token": csrf_token(client)}, headers=EN)
    response = _post_login(client, user.email, PASSWORD)  # an English browser
    assert response.status_code == 302
    assert '<html lang="fr">' in client.get("/admin/campaigns/", headers=EN).get_data(as_text=True)
