"""The campaign page's funnel over time: cumulative counts per day, drawn as SVG."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from survey.campaigns.progress import funnel_by_day, funnel_chart, tally
from survey.campaigns.services import campaign_counts
from survey.extensions import db
from tests.campaigns.helpers import invitations, started_campaign

SVG = "{http://www.w3.org/2000/svg}"


def test_the_funnel_counts_each_step_by_the_end_of_each_day(app, alumni, create_stakeholder, monkeypatch):
    for _ in range(4):
        create_stakeholder()
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    campaign = started_campaign(alumni, monkeypatch, send_at=two_days_ago - timedelta(minutes=1))
    first, second, third, _fourth = invitations(campaign.id)
    for invitation in (first, second, third):  # three invitations out two days ago, one still queued
        invitation.sent_at = two_days_ago
    first.opened_at = first.started_at = two_days_ago          # opened and started the same day
    second.opened_at = two_days_ago + timedelta(days=1)        # opened yesterday
    first.completed_at = datetime.now(timezone.utc)            # completed today
    db.session.commit()

    days = funnel_by_day(campaign)
    assert [d.day for d in days] == [(two_days_ago + timedelta(days=n)).date() for n in range(3)]
    assert [d.totals for d in days] == [
        {"sent": 3, "opened": 1, "started": 1, "completed": 0},
        {"sent": 3, "opened": 2, "started": 1, "completed": 0},
        {"sent": 3, "opened": 2, "started": 1, "completed": 1},
    ]
    with app.test_request_context(headers={"Accept-Language": "en"}):
        svg = ET.fromstring(str(funnel_chart(days, invited=4)))
    lines = {line.get("class"): line.get("points").split() for line in svg.iter(f"{SVG}polyline")}
    assert set(lines) == {"stage-sent", "stage-opened", "stage-started", "stage-completed"}
    # Three days, three points each; the "sent" line sits at 3/4 of the height all along.
    assert all(len(points) == 3 for points in lines.values())
    assert len({point.split(",")[1] for point in lines["stage-sent"]}) == 1
    assert "Completed 1" in "".join(svg.itertext())


def test_on_its_first_day_the_funnel_shows_its_points(app):
    """Found by a newcomer: one day is a line of one point, which draws nothing."""
    from datetime import date

    from survey.campaigns.progress import Day

    day = Day(date(2026, 12, 5), {"sent": 12, "opened": 2, "started": 2, "completed": 1})
    with app.test_request_context(headers={"Accept-Language": "en"}):
        svg = ET.fromstring(str(funnel_chart([day], invited=12)))
    marks = {mark.get("class") for mark in svg.iter(f"{SVG}circle")}
    assert marks == {"stage-sent", "stage-opened", "stage-started", "stage-completed"}


def test_the_one_pass_tally_gives_the_same_counts_as_the_progress_query(app, alumni, create_stakeholder,
                                                                         monkeypatch):
    # The campaign page takes its counts from the tally; the script it polls, from
    # campaign_counts: the two must never disagree.
    for _ in range(9):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    rows = invitations(campaign.id)
    states = ["queued", "queued", "failed", "bounced", "sent", "sent", "opened", "started", "completed"]
    order = ["sent", "opened", "started", "completed"]
    for invitation, status in zip(rows, states):
        invitation.status = status
        for stage in order[:order.index(status) + 1] if status in order else []:
            setattr(invitation, f"{stage}_at", yesterday if stage == "sent" else datetime.now(timezone.utc))
    db.session.commit()

    counted = tally(campaign)
    assert counted.counts == campaign_counts(campaign.id)
    assert counted.counts == {"invited": 9, "sent": 5, "failed": 2, "queued": 2, "opened": 3, "started": 2,
                              "completed": 1}
    assert counted.by_status == {"queued": 2, "failed": 1, "bounced": 1, "sent": 2, "opened": 1, "started": 1,
                                 "completed": 1}
    assert [d.totals for d in funnel_by_day(campaign, counted)] == [d.totals for d in funnel_by_day(campaign)]


def test_the_campaign_page_shows_the_funnel(alumni, create_stakeholder, create_user, browser, monkeypatch):
    create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    admin = browser(create_user(role="admin"))
    assert "<svg" not in admin.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)  # nothing sent yet
    [invitation] = invitations(campaign.id)
    invitation.sent_at = datetime.now(timezone.utc)
    db.session.commit()
    html = browser(create_user(role="admin")).get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert "The funnel, day by day" in html and "<svg" in html
