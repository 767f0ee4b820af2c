"""Security headers on every response, no Referer from token pages, session cookie flags."""
from __future__ import annotations

from tests.factories import PASSWORD, csrf_token


def _assert_common_headers(response):
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    # the tests' BASE_URL is https://…
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_an_html_page_has_the_security_headers(browser, create_user):
    page = browser(create_user(role="admin")).get("/admin/campaigns/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    _assert_common_headers(page)
    assert page.headers["Referrer-Policy"] == "same-origin"


def test_error_pages_have_them_too(browser):
    response = browser().get("/no/such/page")
    assert response.status_code == 404
    _assert_common_headers(response)


def test_a_token_page_sends_no_referrer_and_is_not_cached(open_survey, browser):
    _invitation, link = open_survey()
    page = browser().get(link)
    assert page.status_code == 200
    _assert_common_headers(page)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in page.headers["Cache-Control"]


def test_the_session_cookie_is_secure_httponly_and_samesite(browser, create_user):
    user = create_user(role="admin")
    client = browser()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    cookie = next(value for value in response.headers.getlist("Set-Cookie") if value.startswith("session="))
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "secure" in flags and "httponly" in flags
    assert flags["samesite"].lower() == "samesite=lax"


def test_a_page_of_another_role_says_whose_it_is(browser, create_user):
    """An admin opening the claims or the trail met "ask an administrator": the page now says
    which roles it is for, and that roles are kept apart on purpose."""
    admin = browser(create_user(role="admin"))
    for path in ("/committee/claims", "/audit/"):
        response = admin.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 403, path
        assert "This page is for the roles: auditor, chair." in body, path
        assert "Your account&#39;s role is admin" in body and "Ask an administrator" not in body
    french = admin.get("/audit/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "auditeur" in french and "Roles" not in french
