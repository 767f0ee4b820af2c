"""Fresh login: a vote, a chair's decision or a publication with a login older than
FRESH_LOGIN_MINUTES changes nothing and asks for the password; once it is confirmed,
the user is back on the page they were on and the decision goes through."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from survey.accounts.freshness import CHECKED_AT
from survey.claims.models import Review
from survey.extensions import db
from survey.reports.models import ReportSnapshot
from tests.committee.conftest import committee, make_claims, post, reload  # noqa: F401  (fixtures)
from tests.factories import PASSWORD, token
from tests.reports.conftest import cohort  # noqa: F401  (fixture)


def _age_login(client, minutes: float) -> None:
    """As if the last password check of this session was ``minutes`` ago."""
    with client.session_transaction() as session:
        session[CHECKED_AT] = int(time.time() - minutes * 60)


def _confirm_url(response) -> tuple[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    location = urlsplit(response.headers["Location"])
    assert location.path == "/confirm-password"
    return response.headers["Location"], parse_qs(location.query)["next"][0]


def _confirm(client, url, password=PASSWORD):
    return client.post(url, data={"password": password, "csrf_token": token(client, url)})


def test_a_stale_vote_changes_nothing_then_goes_through_after_confirming(committee, make_claims, browser):
    [claim] = make_claims()
    member = browser(committee[0])
    claim_page = f"/committee/claims/{claim.id}"
    form_token = token(member, claim_page)  # the form was opened while the login was fresh
    _age_login(member, 16)

    refused = member.post(f"{claim_page}/vote", data={"vote-verdict": "approve", "csrf_token": form_token})
    confirm_url, back = _confirm_url(refused)
    assert back == claim_page  # the page, not the POST
    review = db.session.scalar(select(Review).where(Review.claim_id == claim.id,
                                                    Review.reviewer_id == committee[0].id))
    db.session.expire_all()
    assert db.session.get(Review, review.id).verdict is None
    page = member.get(confirm_url).get_data(as_text=True)
    assert "Nothing was changed: this decision needs a recent login." in page
    assert "Confirm your password" in page

    wrong = _confirm(member, confirm_url, "not the password at all")
    assert wrong.status_code == 400 and "Wrong password." in wrong.get_data(as_text=True)
    assert _confirm_url(member.post(f"{claim_page}/vote", data={
        "vote-verdict": "approve", "csrf_token": form_token}))  # still stale

    confirmed = _confirm(member, confirm_url)
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == claim_page
    assert member.get(claim_page).status_code == 200
    voted = post(member, f"{claim_page}/vote", "vote", verdict="approve")
    assert voted.status_code == 302 and voted.headers["Location"] == claim_page
    assert reload(review).verdict == "approve"


def test_a_login_within_the_limit_needs_no_confirmation(committee, make_claims, browser):
    [claim] = make_claims()
    member = browser(committee[0])
    _age_login(member, 14)
    voted = post(member, f"/committee/claims/{claim.id}/vote", "vote", verdict="reject",
                 comment="The contract does not name the employer.")
    assert voted.status_code == 302 and voted.headers["Location"] == f"/committee/claims/{claim.id}"


def test_a_stale_chair_decision_changes_nothing(committee, make_claims, create_user, browser):
    [claim] = make_claims()
    chair = browser(create_user(role="chair"))
    _age_login(chair, 60)
    refused = post(chair, f"/committee/claims/{claim.id}/decide", "decide", decision="rejected",
                   reason="no evidence")
    _confirm_url(refused)
    assert reload(claim).state == "in_review"


def test_a_stale_bulk_decision_changes_nothing(committee, make_claims, create_user, browser):
    [claim] = make_claims()
    chair = browser(create_user(role="chair"))
    form_token = token(chair, "/committee/claims")
    _age_login(chair, 60)
    refused = chair.post("/committee/claims/bulk", data={
        "claim_ids": str(claim.id), "decision": "rejected", "reason": "no evidence", "csrf_token": form_token})
    _, back = _confirm_url(refused)
    assert back == "/committee/claims"
    assert reload(claim).state == "in_review"


def test_a_stale_publication_publishes_nothing_then_works_after_confirming(cohort, create_user, browser):
    chair = browser(create_user(role="chair"))
    form_token = token(chair, "/reports/publish")
    _age_login(chair, 16)
    data = {"title": "Impact 2026", "campaign": cohort.id, "csrf_token": form_token}

    confirm_url, back = _confirm_url(chair.post("/reports/publish", data=data))
    assert back == "/reports/publish"
    assert db.session.scalar(select(func.count()).select_from(ReportSnapshot)) == 0
    # Opening the form with a stale login asks first, so nothing typed is lost.
    _confirm_url(chair.get("/reports/publish"))

    assert _confirm(chair, confirm_url).headers["Location"] == "/reports/publish"
    published = chair.post("/reports/publish", data={**data, "csrf_token": token(chair, "/reports/publish")})
    assert published.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(ReportSnapshot)) == 1


def test_the_limit_comes_from_the_configuration(app, committee, make_claims, browser, monkeypatch):
    monkeypatch.setitem(app.config, "FRESH_LOGIN_MINUTES", 60)
    [claim] = make_claims()
    member = browser(committee[0])
    _age_login(member, 30)
    assert post(member, f"/committee/claims/{claim.id}/vote", "vote", verdict="approve").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x"])
def test_confirming_never_sends_the_user_off_site(create_user, browser, target):
    from urllib.parse import quote

    member = browser(create_user(role="committee"))
    response = _confirm(member, "/confirm-password?next=" + quote(target, safe=""))
    assert response.status_code == 302 and response.headers["Location"] == "/committee/"


def test_the_confirm_page_needs_a_login(browser):
    response = browser().get("/confirm-password")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
