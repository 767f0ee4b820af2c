"""The campaign page follows its sending as it happens, in a real browser: while the page
stays open, invitations go out (marked sent in the database) and the progress sentence,
the bar and the counts change without a reload; when the campaign opens, the page
reloads once and stops asking. Without JavaScript: the figures as of the load, and a link."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from playwright.sync_api import expect

from survey.campaigns import services
from survey.campaigns.models import Campaign
from survey.extensions import db
from tests.browser.conftest import assert_accessible, submit
from tests.campaigns.helpers import invitations, started_campaign

pytestmark = pytest.mark.browser


@pytest.fixture
def sending(app, alumni, create_stakeholder, monkeypatch):
    """A campaign sending to four people, one invitation out; the page asks every 0.2 s."""
    monkeypatch.setitem(app.config, "PROGRESS_POLL_SECONDS", 0.2)
    for _ in range(4):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    _send(campaign.id, 1)
    return campaign.id


def _send(campaign_id: int, number: int) -> None:
    """What the workers record as ``number`` more invitations go out."""
    waiting = [i for i in invitations(campaign_id) if i.status == "queued"][:number]
    for invitation in waiting:
        invitation.status, invitation.sent_at = "sent", datetime.now(timezone.utc)
    db.session.commit()


def test_the_progress_changes_as_invitations_go_out_then_the_page_reloads(sending, open_page, create_user):
    page = open_page(create_user(role="admin"))
    page.goto(f"/admin/campaigns/{sending}")
    text, bar = page.locator("#sending-text"), page.locator("#sending-bar")
    expect(text).to_have_text("1 of 4 invitations sent (25%)")
    assert page.locator("#sending-text[aria-live=polite]").count() == 1
    assert_accessible(page, "sending, 1 of 4")
    page.evaluate("window.stillTheSamePage = true")  # gone if the page reloads

    _send(sending, 2)
    expect(text).to_have_text("3 of 4 invitations sent (75%)")
    expect(bar).to_have_js_property("value", 3)
    expect(page.locator("[data-count=sent]")).to_have_text("3")
    expect(page.locator("[data-count=queued]")).to_have_text("1")
    assert page.evaluate("window.stillTheSamePage") is True  # updated in place, not reloaded
    assert_accessible(page, "sending, 3 of 4")

    _send(sending, 1)
    campaign = db.session.get(Campaign, sending)
    with page.expect_navigation():  # the script reloads the page once the status changes
        services.transition(campaign, "open")
        db.session.commit()
    page.wait_for_load_state()
    assert page.evaluate("window.stillTheSamePage") is None
    expect(page.locator("h1 .status")).to_have_text("open")
    assert page.locator("#sending-text").count() == 0 and page.locator("script[src*=progress]").count() == 0
    expect(page.locator("[data-count=sent]")).to_have_text("4")
    assert_accessible(page, "open")


def test_while_a_large_audience_is_invited_the_bar_has_no_total_yet(app, alumni, create_stakeholder, monkeypatch,
                                                                     open_page, create_user):
    from workflows.tasks import invite_audience

    monkeypatch.setitem(app.config, "PROGRESS_POLL_SECONDS", 0.2)
    monkeypatch.setitem(app.config, "INVITE_CHUNK", 2)
    for _ in range(4):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)  # the first chunk: two of four invited
    page = open_page(create_user(role="admin"))
    page.goto(f"/admin/campaigns/{campaign.id}")
    text, bar = page.locator("#sending-text"), page.locator("#sending-bar")
    expect(text).to_have_text("0 invitations sent; still inviting the audience (2 so far)")
    page.wait_for_timeout(600)  # three polls: the script keeps it so
    assert bar.get_attribute("value") is None  # indeterminate, not "0 of 2"
    assert_accessible(page, "sending, still inviting")

    invite_audience(campaign.id)  # the rest of the audience
    expect(text).to_have_text("0 of 4 invitations sent (0%)")
    expect(bar).to_have_js_property("max", 4)
    expect(bar).to_have_js_property("position", 0)  # determinate now (-1 while indeterminate)


def test_without_javascript_the_page_shows_the_figures_as_of_its_load(sending, open_page, create_user):
    page = open_page(create_user(role="admin"), javascript=False)
    page.goto(f"/admin/campaigns/{sending}")
    expect(page.locator("#sending-text")).to_have_text("1 of 4 invitations sent (25%)")
    _send(sending, 3)
    submit(page.get_by_role("link", name="Refresh"))
    # (no axe here: it runs as a script, which this page does not; the other tests check the same page)
    expect(page.locator("#sending-text")).to_have_text("4 of 4 invitations sent (100%)")


def test_the_progress_is_accessible_in_french(sending, open_page, create_user):
    page = open_page(create_user(role="admin"), locale="fr-FR")
    page.goto(f"/admin/campaigns/{sending}")
    assert page.locator("html").get_attribute("lang") == "fr"
    expect(page.locator("#sending-text")).to_contain_text("25")
    assert_accessible(page, "sending, fr")
