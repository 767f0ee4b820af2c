"""Markup a respondent or an imported file supplies is text wherever it is shown: an
audience CSV whose names and attributes hold HTML (refused by the importer, its report
inert), people whose stored names and attributes hold it anyway, a respondent whose
free-text answers hold the same, then every page and email that shows them."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from survey.audiences.models import Stakeholder
from survey.campaigns.models import Invitation
from survey.claims.models import Claim
from survey.claims.services import claim_token
from survey.extensions import db
from survey.mail.sending import send_batch
from survey.reports.document import Selection
from survey.reports.publishing import publish
from survey.respond.services import submit_response
from tests.campaigns.helpers import started_campaign
from tests.factories import token

SCRIPT = "<script>alert('attest-xss')</script>"
IMG = '"><img src=x onerror=alert(\'attest-xss\')>'
PAYLOADS = (SCRIPT, IMG)


def assert_inert(where: str, body: str) -> None:
    for payload in PAYLOADS:
        assert payload not in body, f"{where}: {payload} is shown as markup"
    assert "<img src=x" not in body, where


def _csv() -> bytes:
    rows = ["email,first name,last name,programme,cohort"]
    for n in range(6):
        rows.append(f'xss{n}@example.org,"{SCRIPT}","{IMG.replace(chr(34), chr(34) * 2)}",'
                    f'"{IMG.replace(chr(34), chr(34) * 2)}",{SCRIPT}')
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def hostile(app, alumni, create_user, create_stakeholder, committee, browser, smtp_server, monkeypatch):  # noqa: F811
    admin = create_user(role="admin")
    client = browser(admin)
    imported = client.post("/admin/audiences/", data={
        "csrf_token": token(client, "/admin/audiences/"), "kind": "alumnus",
        "file": (io.BytesIO(_csv()), "people.csv")}, content_type="multipart/form-data")
    assert imported.status_code == 200
    report = imported.get_data(as_text=True)
    assert_inert("the import report", report)
    assert "contains markup" in report  # refused, and said why
    assert db.session.scalar(select(Stakeholder).where(Stakeholder.email.like("xss%"))) is None
    # People stored before the importer refused markup (or by any other way in): shown as text.
    for n in range(6):
        person = create_stakeholder(email=f"xss{n}@example.org", programme=IMG, cohort=SCRIPT)
        person.first_name, person.last_name = SCRIPT, IMG
    db.session.commit()
    campaign = started_campaign(alumni, monkeypatch, name=SCRIPT)
    assert send_batch(50) == 6
    invitations = db.session.scalars(select(Invitation).where(Invitation.campaign_id == campaign.id)).all()
    for invitation in invitations[:5]:
        submit_response(invitation, {
            "activity": "employed_full_time", "outcomes": ["new_job"], "attribution": 4, "employer": SCRIPT,
            "role": IMG, "comment": SCRIPT + IMG, "evidence_link": "https://example.org/" + IMG.replace(" ", "%20")}, "en")
        db.session.commit()
    claim = db.session.scalars(select(Claim).where(Claim.campaign_id == campaign.id)).first()
    return {"admin": client, "campaign": campaign, "claim": claim, "smtp": smtp_server, "invitation": invitations[5]}


def test_imported_and_answered_markup_is_text_everywhere(hostile, create_user, browser, committee):
    campaign, claim = hostile["campaign"], hostile["claim"]
    admin = hostile["admin"]
    pages = {
        "people page": admin.get("/admin/audiences/"),
        "campaigns list": admin.get("/admin/campaigns/"),
        "recipients page": admin.get(f"/admin/campaigns/{campaign.id}"),
        "live report": admin.get(f"/reports/?campaign={campaign.id}&by=programme,cohort"),
    }
    shown = pages["people page"].get_data(as_text=True)
    assert "&lt;script&gt;alert(" in shown  # there, as text: the test is not vacuous

    reviewer = next(r.reviewer for r in claim.reviews if r.active)
    member = browser(reviewer)
    pages["committee queue"] = member.get("/committee/")
    pages["committee claim page (member)"] = member.get(f"/committee/claims/{claim.id}")
    chair_user = create_user(role="chair")
    chair = browser(chair_user)
    pages["committee claim page (chair)"] = chair.get(f"/committee/claims/{claim.id}")
    pages["claims list"] = chair.get("/committee/claims")
    pages["audit trail"] = chair.get("/audit/")
    assert "&lt;script&gt;alert(" in pages["committee claim page (member)"].get_data(as_text=True)

    snapshot = publish(chair_user, Selection(campaign_id=campaign.id, breakdowns=("programme", "cohort")), SCRIPT)
    db.session.commit()
    pages["published (staff)"] = chair.get(f"/reports/published/{snapshot.id}")
    pages["published list"] = chair.get("/reports/published")
    pages["trace"] = chair.get(f"/reports/published/{snapshot.id}/trace?state=claimed")
    pages["public report"] = browser(None).get(f"/p/{snapshot.slug}")
    pages["evidence page"] = browser(None).get(f"/e/{claim_token(claim.token_nonce)}")
    for where, response in pages.items():
        assert response.status_code == 200, where
        assert_inert(where, response.get_data(as_text=True))

    messages = hostile["smtp"].messages
    assert len(messages) == 6
    for caught in messages:
        html = caught["message"].get_body(("html",)).get_content()
        assert_inert("invitation email", html)
        assert "&lt;script&gt;" in html


def test_the_survey_page_shows_saved_markup_as_text(hostile, browser):
    """Typed into the real form, saved, shown again when the respondent comes back."""
    import re

    from survey.campaigns.services import invitation_token

    url = f"/s/{invitation_token(hostile['invitation'].token_nonce)}"
    respondent = browser(None)
    page = respondent.get(url).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    saved = respondent.post(url, data={"csrf_token": csrf, "action": "save", "activity": "employed_full_time",
                                       "outcomes": "new_job", "employer": SCRIPT, "role": IMG, "comment": SCRIPT})
    assert saved.status_code == 303
    again = respondent.get(url)
    assert again.status_code == 200
    body = again.get_data(as_text=True)
    assert_inert("the survey page", body)
    assert "&lt;script&gt;alert(" in body
