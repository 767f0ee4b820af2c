"""Every staff page, as the role that uses it, in a real browser: axe-core finds no
WCAG 2.1 AA violation, in English and in French, empty, with errors and full; the
pages fit a 320 px phone."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from survey.campaigns.models import Campaign
from survey.claims import services as claims
from survey.extensions import db
from survey.mail.models import OutboxMessage
from survey.questionnaires.models import Questionnaire
from survey.reports.document import Selection
from survey.reports.publishing import publish
from survey.reports.sampling import draw_sample
from tests.browser.conftest import assert_accessible, submit
from tests.campaigns.helpers import make_campaign
from tests.committee.conftest import committee, make_claims  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

CLAIMANT = {"activity": "employed_full_time", "outcomes": ["new_job", "raise"], "attribution": 4,
            "employer": "ACME <b>&amp;</b> Sons", "role": "Data analyst", "salary_change": 12,
            "evidence_link": "https://example.org/profile/ada"}


@pytest.fixture
def world(make_claims, committee, create_user):
    """A started campaign with two claims under review, one proven after a vote, a
    published report with an audit sample; one user per role."""
    users = {role: create_user(role=role) for role in ("admin", "chair", "auditor")}
    users["committee"] = committee[0]
    made = make_claims(CLAIMANT, with_file=True)
    proven = made[1]
    for review in proven.reviews:
        claims.record_vote(review, "approve", "", reviewer=review.reviewer)  # the policy proves it
    db.session.commit()
    snapshot = publish(users["chair"], Selection(campaign_id=made[0].campaign_id), "Impact report 2026")
    db.session.flush()
    sample = draw_sample(users["auditor"], snapshot, 1)
    db.session.commit()
    draft = make_campaign(db.session.get(Campaign, made[0].campaign_id).questionnaire, name="Next year")
    return {"users": users, "claim": made[0], "campaign_id": made[0].campaign_id, "snapshot": snapshot,
            "sample": sample, "draft": draft.id}


def _pages(world) -> dict[str, list[str]]:
    campaign, claim, snapshot = world["campaign_id"], world["claim"], world["snapshot"]
    questionnaire = db.session.scalar(select(Questionnaire.id))
    outbox = db.session.scalar(select(OutboxMessage.message_id).limit(1))
    report = f"/reports/?campaign={campaign}"
    return {
        "admin": ["/", "/admin/campaigns/", "/admin/campaigns/new", f"/admin/campaigns/{campaign}",
                  *(f"/admin/campaigns/{world['draft']}{step}" for step in ("/edit", "/audience", "/timing", "")),
                  "/admin/questionnaires/", f"/admin/questionnaires/{questionnaire}", "/admin/audiences/",
                  "/admin/mail/", report, "/reports/published", f"/reports/published/{snapshot.id}"]
                 + ([f"/admin/mail/{outbox}"] if outbox else []),
        "committee": ["/committee/", f"/committee/claims/{claim.id}", "/account/password",
                      f"/confirm-password?next=/committee/claims/{claim.id}"],
        "chair": ["/committee/claims", f"/committee/claims/{claim.id}", "/audit/", "/reports/publish", report,
                  f"/reports/published/{snapshot.id}",
                  f"/reports/published/{snapshot.id}/trace?state=proven"],
        "auditor": ["/audit/", f"/reports/published/{snapshot.id}", f"/reports/samples/{world['sample'].id}"],
        None: ["/login", f"/p/{snapshot.slug}"],
    }


@pytest.mark.parametrize("role", ["admin", "committee", "chair", "auditor", None])
def test_every_staff_page_is_accessible(world, open_page, role):
    for locale in ("en", "fr"):
        page = open_page(world["users"].get(role) if role else None, locale=f"{locale}-FR")
        for path in _pages(world)[role]:
            response = page.goto(path)
            assert response.status == 200, f"{path} as {role}: {response.status}"
            assert page.locator("html").get_attribute("lang") == locale
            assert_accessible(page, f"{role}, {locale}")


def test_forms_with_errors_are_accessible(world, open_page):
    admin = open_page(world["users"]["admin"])
    admin.goto("/admin/campaigns/new")
    submit(admin.locator("form button[type=submit]").last)
    assert admin.locator(".error-summary, .error-message").first.is_visible()
    assert_accessible(admin, "new campaign with errors")

    chair = open_page(world["users"]["chair"])
    chair.goto("/reports/publish")
    submit(chair.get_by_role("button", name="Publish"))
    assert chair.locator(".error-summary").is_visible()
    assert_accessible(chair, "publish with errors")

    member = open_page(world["users"]["committee"])
    member.goto("/account/password")
    member.get_by_label("Current password").fill("not the current one")
    member.get_by_label("New password", exact=True).fill("a long new passphrase")
    member.get_by_label("New password, again").fill("another long passphrase")
    submit(member.get_by_role("button", name="Change password"))
    assert member.locator(".error-summary, .error-message").first.is_visible()
    assert_accessible(member, "change password with errors")

    anonymous = open_page()
    anonymous.goto("/login")
    anonymous.get_by_label("Email").fill("nobody@example.org")
    anonymous.get_by_label("Password").fill("wrong password, long enough")
    submit(anonymous.get_by_role("button", name="Log in"))
    assert_accessible(anonymous, "login refused")


@pytest.mark.parametrize("role", ["admin", "committee", "chair"])
def test_staff_pages_fit_a_small_phone(world, open_page, role):
    page = open_page(world["users"][role], width=320)
    for path in _pages(world)[role]:  # every page: a published report's long address once ran off it
        page.goto(path)
        overflow = page.evaluate("""() => [...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > innerWidth + 1
                         && !e.closest('.table-wrap, pre, code, svg'))
            .map(e => e.tagName + '.' + e.className).slice(0, 5)""")
        assert overflow == [], f"{path} is wider than 320 px: {overflow}"


def test_the_claim_page_shows_its_pdf_and_the_report_downloads_in_a_real_browser(world, open_page):
    """The downloads refuse requests from other sites (Sec-Fetch-Site, survey/core/fetch.py):
    what Chromium sends from the service's own pages is taken."""
    page = open_page(world["users"]["chair"])
    loaded = []
    page.on("response", lambda response: loaded.append((response.url, response.status))
            if "/committee/evidence/" in response.url else None)
    page.goto(f"/committee/claims/{world['claim'].id}")
    page.wait_for_load_state("networkidle")
    assert loaded and all(status == 200 for _url, status in loaded), loaded
    page.goto(f"/reports/?campaign={world['campaign_id']}")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    assert download.value.suggested_filename == "impact-report.csv"


def test_after_an_error_the_focus_stays_on_the_summary_though_the_page_shows_a_pdf(world, open_page):
    """Found in review: on a claim page with a PDF shown, the viewer took the focus once it had
    loaded, away from the error summary a keyboard or screen-reader user starts from."""
    chair = open_page(world["users"]["chair"])
    chair.goto(f"/committee/claims/{world['claim'].id}")
    submit(chair.get_by_role("button", name="Record the decision"))
    chair.wait_for_load_state("networkidle")
    chair.wait_for_timeout(500)  # the viewer's own start
    assert chair.locator(".error-summary").is_visible()
    assert chair.evaluate("() => document.activeElement.className") == "error-summary"
