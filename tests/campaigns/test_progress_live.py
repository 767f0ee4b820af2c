"""The campaign page follows its sending as it happens: a JSON endpoint of the progress
(the same figures as the page's "Progress"), polled by a static script while the campaign
is scheduled or sending; and the campaign lists count every campaign of a page at once."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from survey.campaigns import services
from survey.campaigns.progress import sending_progress
from survey.extensions import db
from tests.campaigns.helpers import (
    counted_queries,
    invitations,
    make_campaign,
    schedule,
    started_campaign,
)


def _mark(invitation, status: str) -> None:
    """What sending records: the email went out (sent_at), or it failed for good."""
    invitation.status = status
    if status != "failed":
        invitation.sent_at = datetime.now(timezone.utc)
    if status in ("opened", "started", "completed"):
        invitation.opened_at = invitation.sent_at
    if status in ("started", "completed"):
        invitation.started_at = invitation.sent_at
    if status == "completed":
        invitation.completed_at = invitation.sent_at


@pytest.fixture
def sending(alumni, create_stakeholder, monkeypatch):
    """A campaign sending to five people, nothing sent yet."""
    for _ in range(5):
        create_stakeholder()
    return started_campaign(alumni, monkeypatch)


@pytest.fixture
def admin(browser, create_user):
    return browser(create_user(role="admin"))


def _progress(client, campaign_id: int):
    return client.get(f"/admin/campaigns/{campaign_id}/progress")


# ---------------------------------------------------------------------- the JSON

def test_the_progress_counts_invitations_as_they_are_sent(admin, sending):
    response = _progress(admin, sending.id)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "no-store" in response.headers["Cache-Control"]
    assert response.get_json() == {
        "campaign_id": sending.id, "status": "sending", "live": True, "invited": 5, "sent": 0, "failed": 0,
        "queued": 5, "opened": 0, "started": 0, "completed": 0, "percent": 0, "preparing": False,
        "text": "0 of 5 invitations sent (0%)"}

    first, second, third, fourth, _fifth = invitations(sending.id)
    _mark(first, "sent")
    _mark(second, "completed")
    _mark(third, "opened")
    _mark(fourth, "failed")
    db.session.commit()
    body = _progress(admin, sending.id).get_json()
    assert {key: body[key] for key in ("invited", "sent", "failed", "queued", "opened", "started", "completed")} \
        == {"invited": 5, "sent": 3, "failed": 1, "queued": 1, "opened": 2, "started": 1, "completed": 1}
    assert (body["status"], body["percent"], body["text"]) == ("sending", 60, "3 of 5 invitations sent (60%)")


def test_the_percentage_is_rounded_down_so_100_means_every_invitation_is_out(admin, alumni, create_stakeholder,
                                                                           monkeypatch):
    for _ in range(3):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    first, second, _third = invitations(campaign.id)
    _mark(first, "sent")
    _mark(second, "sent")
    db.session.commit()
    body = _progress(admin, campaign.id).get_json()
    assert (body["percent"], body["text"]) == (66, "2 of 3 invitations sent (66%)")


def test_the_status_says_when_the_sending_is_over(admin, sending):
    for invitation in invitations(sending.id):
        _mark(invitation, "sent")
    services.transition(sending, "open")
    db.session.commit()
    body = _progress(admin, sending.id).get_json()
    assert (body["status"], body["live"], body["sent"], body["queued"], body["percent"]) == ("open", False, 5, 0, 100)


def test_a_scheduled_campaign_has_sent_nothing_yet(admin, alumni, create_stakeholder, monkeypatch):
    create_stakeholder()
    campaign = make_campaign(alumni)
    schedule(campaign, monkeypatch)
    body = _progress(admin, campaign.id).get_json()
    assert (body["status"], body["live"], body["invited"], body["percent"]) == ("scheduled", True, 0, 0)
    assert body["text"] == "No invitation sent yet."


def test_the_sentence_is_in_the_readers_language(app, sending):
    for invitation in invitations(sending.id)[:2]:
        _mark(invitation, "sent")
    db.session.commit()
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        text = sending_progress(sending)["text"]
    # French numbers: a (narrow) no-break space before the per cent sign
    assert re.fullmatch(r"2 .+ 5 .+\(40\s%\)", text), text


# ---------------------------------------------------------------------- who may ask

def test_only_admins_may_follow_the_progress(browser, client, create_user, sending):
    url = f"/admin/campaigns/{sending.id}/progress"
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    for role in ("committee", "chair", "auditor"):
        assert browser(create_user(role=role)).get(url).status_code == 403, role


def test_the_progress_of_an_unknown_campaign_is_404(admin):
    assert _progress(admin, 999999).status_code == 404


# ---------------------------------------------------------------------- the page

def _page(client, campaign_id: int) -> str:
    response = client.get(f"/admin/campaigns/{campaign_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_page_of_a_sending_campaign_shows_the_bar_and_polls(admin, app, sending, monkeypatch):
    monkeypatch.setitem(app.config, "PROGRESS_POLL_SECONDS", 0.5)
    first, second, *_ = invitations(sending.id)
    _mark(first, "sent")
    _mark(second, "failed")
    db.session.commit()
    html = _page(admin, sending.id)
    assert re.search(r'<progress id="sending-bar" max="5" value="1" aria-labelledby="sending-text">', html)
    assert re.search(r'<p id="sending-text" aria-live="polite"[^>]*>1 of 5 invitations sent \(20%\)</p>', html)
    assert f'data-progress-url="/admin/campaigns/{sending.id}/progress"' in html
    assert 'data-status="sending"' in html and 'data-interval="0.5"' in html
    assert re.search(r'<script src="/static/progress\.js[^"]*" defer></script>', html)
    assert f'<a href="/admin/campaigns/{sending.id}">Refresh</a>' in html
    # the "Progress" list: the same figures as the JSON, each marked for the script to update
    body = _progress(admin, sending.id).get_json()
    for key in ("invited", "sent", "queued", "failed", "opened", "started", "completed"):
        assert f'<strong data-count="{key}">{body[key]}</strong>' in html, key
    assert "<script>" not in html and " onclick=" not in html  # the CSP allows neither


def test_the_page_of_an_open_campaign_does_not_poll(admin, sending):
    services.transition(sending, "open")
    db.session.commit()
    html = _page(admin, sending.id)
    assert "<progress" not in html and "progress.js" not in html and "aria-live" not in html
    assert '<strong data-count="invited">5</strong>' in html
    assert 'data-count="queued"' not in html  # "waiting" only matters while sending


def test_the_refresh_link_keeps_the_recipients_filters(admin, sending):
    html = _page(admin, f"{sending.id}?status=queued")
    assert f'<a href="/admin/campaigns/{sending.id}?status=queued">Refresh</a>' in html


def test_the_poll_interval_defaults_to_three_seconds(app):
    assert app.config["PROGRESS_POLL_SECONDS"] == 3


# ---------------------------------------------------------------------- the lists

def test_counts_of_many_campaigns_come_from_one_query(app_ctx, alumni, create_stakeholder, monkeypatch):
    for _ in range(3):
        create_stakeholder()
    first = started_campaign(alumni, monkeypatch)
    second = started_campaign(alumni, monkeypatch, name="Second")
    draft = make_campaign(alumni, name="Draft")
    _mark(invitations(second.id)[0], "completed")
    db.session.commit()
    ids = [first.id, second.id, draft.id]
    with counted_queries() as statements:
        counts = services.campaign_counts_many(ids)
    assert len(statements) == 1
    assert counts == {
        ids[0]: {"invited": 3, "sent": 0, "failed": 0, "queued": 3, "opened": 0, "started": 0, "completed": 0},
        ids[1]: {"invited": 3, "sent": 1, "failed": 0, "queued": 2, "opened": 1, "started": 1, "completed": 1},
        ids[2]: dict.fromkeys(services.COUNT_KEYS, 0),
    }
    assert all(services.campaign_counts(c) == counts[c] for c in counts)
    assert services.campaign_counts_many([]) == {}


def _campaigns_with_invitations(alumni, monkeypatch, number: int) -> None:
    for n in range(number):
        campaign = started_campaign(alumni, monkeypatch, name=f"Campaign {n}")
        _mark(invitations(campaign.id)[0], "completed")
    db.session.commit()


def test_the_campaign_list_makes_as_many_queries_for_one_campaign_as_for_many(admin, alumni, create_stakeholder,
                                                                            monkeypatch):
    for _ in range(2):
        create_stakeholder()

    def queries() -> tuple[int, str]:
        admin.get("/admin/campaigns/")  # warm: the connection, the session
        with counted_queries() as statements:
            html = _page(admin, "")
        return len(statements), html

    _campaigns_with_invitations(alumni, monkeypatch, 1)
    make_campaign(alumni, name="A draft")
    few, _html = queries()
    _campaigns_with_invitations(alumni, monkeypatch, 6)
    many, html = queries()
    assert many == few
    # every row still shows its own counts: 2 invited, 1 completed; the draft none
    assert len(re.findall(r"<td>2</td><td>1</td>", html)) == 7
    assert len(re.findall(r"<td>0</td><td>0</td>", html)) == 1
