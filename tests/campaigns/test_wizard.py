"""The campaign wizard: questionnaire and privacy, people, timing, then check and schedule.
Each step saves the draft; a draft's page links back to every step; nothing but a draft
can be changed."""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from survey.campaigns.models import Campaign
from survey.extensions import db
from tests.campaigns.helpers import make_campaign, schedule
from tests.factories import csrf_token

NEW = "/admin/campaigns/new"


@pytest.fixture
def client(english_client):
    """The client ``login`` logs in: isolated requests, pages in English."""
    return english_client


@pytest.fixture
def admin(client, create_user, login):
    login(create_user(role="admin"))
    return client


def _post(client, url, **data):
    return client.post(url, data={"csrf_token": csrf_token(client, url), **data})


def _campaigns() -> list[Campaign]:
    db.session.expire_all()
    return db.session.scalars(select(Campaign).order_by(Campaign.id)).all()


def _step_one(admin, questionnaire, **changes):
    return _post(admin, NEW, **{"name": "Alumni 2026", "questionnaire_id": questionnaire.id,
                                "audience_kind": "alumnus", "privacy": "identified", **changes})


def test_a_campaign_from_first_step_to_scheduled(admin, alumni, create_stakeholder, monkeypatch):
    create_stakeholder(programme="Data Analyst", cohort="2024-03")
    create_stakeholder(programme="Data Analyst", cohort="2024-09")
    create_stakeholder(programme="<b>Web</b>", cohort="2024-09")

    page = admin.get(NEW).get_data(as_text=True)
    assert 'aria-current="step"' in page and "Step 1 of 4" in page

    response = _step_one(admin, alumni)
    [campaign] = _campaigns()
    assert (campaign.status, campaign.name, campaign.privacy) == ("draft", "Alumni 2026", "identified")
    assert response.headers["Location"] == f"/admin/campaigns/{campaign.id}/audience"

    # Step 2: how many can be emailed, and the attributes to filter on (escaped).
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "3 people can be emailed" in page
    assert "<code>programme</code>" in page and "<code>Data Analyst</code>" in page
    assert "&lt;b&gt;Web&lt;/b&gt;" in page and "<b>Web</b>" not in page
    response = _post(admin, f"/admin/campaigns/{campaign.id}/audience",
                     audience_filters="programme = Data Analyst", count="")
    assert response.headers["Location"] == f"/admin/campaigns/{campaign.id}/audience"  # counted, not moved on
    assert "2 people can be emailed" in admin.get(response.headers["Location"]).get_data(as_text=True)
    response = _post(admin, f"/admin/campaigns/{campaign.id}/audience",
                     audience_filters="programme=Data Analyst\ncohort=2024-09")
    assert response.headers["Location"] == f"/admin/campaigns/{campaign.id}/timing"
    assert _campaigns()[0].audience_filters == {"programme": "Data Analyst", "cohort": "2024-09"}

    # Step 3: the times are read in the chosen zone.
    response = _post(admin, f"/admin/campaigns/{campaign.id}/timing", timezone="America/New_York",
                     send_at="2031-03-01T09:00", closes_at="2031-04-01T09:00", reminders="P7D", quiet_hours="")
    assert response.headers["Location"] == f"/admin/campaigns/{campaign.id}"
    [campaign] = _campaigns()
    assert campaign.send_at == datetime(2031, 3, 1, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert campaign.reminders == ["P7D"]

    # Step 4: the draft's page sums it up, links back to each step, and schedules.
    page = admin.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert "1 person can be emailed" in page and "Step 4 of 4" in page
    for step in ("edit", "audience", "timing"):
        assert f'href="/admin/campaigns/{campaign.id}/{step}"' in page
    from workflows import tasks

    monkeypatch.setattr(tasks.start_campaign, "apply_async", lambda *args, **kwargs: None)
    _post(admin, f"/admin/campaigns/{campaign.id}/schedule")
    assert _campaigns()[0].status == "scheduled"
    page = admin.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert f'href="/admin/campaigns/{campaign.id}/timing"' not in page  # no more "Change" links


def test_a_questionnaire_for_another_audience_is_refused_at_its_field(admin, builtin_questionnaires):
    employees = builtin_questionnaires["employee-pulse"] if "employee-pulse" in builtin_questionnaires else next(
        q for q in builtin_questionnaires.values() if q.kind == "employee")
    response = _step_one(admin, employees, audience_kind="alumnus")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert re.search(r'id="questionnaire_id-error"[^>]*>[^<]*written for employees, not alumni', page)  # words, not codes
    assert 'href="#questionnaire_id"' in page
    assert _campaigns() == []


def test_step_one_without_a_name_shows_the_error_and_creates_nothing(admin, alumni):
    response = _step_one(admin, alumni, name="   ")
    assert response.status_code == 200
    assert 'id="name-error"' in response.get_data(as_text=True)
    assert _campaigns() == []


def test_changing_the_basics_of_a_draft_keeps_its_people_and_timing(admin, alumni):
    campaign = make_campaign(alumni, filters={"programme": "Data"}, reminders=["P2D"])
    send_at = campaign.send_at
    page = admin.get(f"/admin/campaigns/{campaign.id}/edit").get_data(as_text=True)
    assert 'value="Alumni 2025"' in page  # prefilled from the draft
    response = _post(admin, f"/admin/campaigns/{campaign.id}/edit", name="Renamed", questionnaire_id=alumni.id,
                     audience_kind="alumnus", privacy="anonymous")
    assert response.status_code == 302
    [campaign] = _campaigns()
    assert (campaign.name, campaign.privacy) == ("Renamed", "anonymous")
    assert (campaign.audience_filters, campaign.reminders, campaign.send_at) == ({"programme": "Data"}, ["P2D"],
                                                                                 send_at)


@pytest.mark.parametrize("step", ["edit", "audience", "timing"])
def test_a_scheduled_campaign_cannot_be_changed(admin, alumni, create_stakeholder, monkeypatch, step):
    create_stakeholder()
    campaign = make_campaign(alumni, send_at=datetime(2031, 1, 1, tzinfo=ZoneInfo("UTC")),
                             closes_at=datetime(2031, 2, 1, tzinfo=ZoneInfo("UTC")))
    schedule(campaign, monkeypatch)
    url = f"/admin/campaigns/{campaign.id}/{step}"
    token = csrf_token(admin, f"/admin/campaigns/{campaign.id}")
    response = admin.post(url, data={"csrf_token": token, "name": "Changed", "questionnaire_id": alumni.id,
                                     "audience_kind": "alumnus", "privacy": "anonymous",
                                     "audience_filters": "programme=Other", "timezone": "UTC",
                                     "send_at": "2031-06-01T09:00", "closes_at": "2031-07-01T09:00"})
    assert response.headers["Location"] == f"/admin/campaigns/{campaign.id}"
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "Only a draft can be changed" in page
    [after] = _campaigns()
    assert (after.name, after.privacy, after.audience_filters, after.status) == (
        "Alumni 2025", "identified", {}, "scheduled")


def test_only_admins_reach_the_steps(client, create_user, login, alumni):
    campaign = make_campaign(alumni)
    login(create_user(role="committee"))
    for url in (NEW, *(f"/admin/campaigns/{campaign.id}/{step}" for step in ("edit", "audience", "timing"))):
        assert client.get(url).status_code == 403, url


def test_the_list_of_campaigns_is_paginated_and_filtered(admin, alumni, create_stakeholder, monkeypatch):
    for n in range(53):
        make_campaign(alumni, name=f"Campaign {n:02d}")
    create_stakeholder()
    scheduled = make_campaign(alumni, name="The scheduled one")
    schedule(scheduled, monkeypatch)

    first = admin.get("/admin/campaigns/").get_data(as_text=True)
    assert "54 campaigns" in first and "The scheduled one" in first  # newest first
    assert len(re.findall(r'<tr><td><a href="/admin/campaigns/\d+">', first)) == 50
    assert 'rel="next"' in first and "Page 1 of 2" in first
    second = admin.get("/admin/campaigns/?page=2").get_data(as_text=True)
    assert len(re.findall(r'<tr><td><a href="/admin/campaigns/\d+">', second)) == 4
    assert "Campaign 00" in second
    assert admin.get("/admin/campaigns/?page=999").get_data(as_text=True).count("Campaign 0") == 4  # the last page: 03, 02, 01, 00

    only = admin.get("/admin/campaigns/?status=scheduled").get_data(as_text=True)
    assert "1 campaign" in only and "The scheduled one" in only and "Campaign 01" not in only
    assert "No campaign has this status" in admin.get("/admin/campaigns/?status=closed").get_data(as_text=True)



@pytest.mark.parametrize("field, value", [("reminders", "P99999999999D"), ("name", "Alumni\x002026"),
                                          ("audience_filters", "programme=Data\x00")])
def test_overflowing_delays_and_nul_characters_are_form_errors_not_crashes(admin, alumni, field, value):
    """Found by schemathesis through the API: both were server errors from the UI too."""
    response = _step_one(admin, alumni)
    [campaign] = _campaigns()
    step = {"reminders": "timing", "name": "edit", "audience_filters": "audience"}[field]
    data = {"name": "Alumni 2026", "questionnaire_id": alumni.id, "audience_kind": "alumnus",
            "privacy": "identified", "audience_filters": "", "timezone": "UTC", "send_at": "2031-03-01T09:00",
            "closes_at": "2031-04-01T09:00", "reminders": "", "quiet_hours": "", field: value}
    response = _post(admin, f"/admin/campaigns/{campaign.id}/{step}", **data)
    assert response.status_code == 200
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    [after] = _campaigns()
    assert (after.name, after.audience_filters, after.reminders) == ("Alumni 2026", {}, ["P3D", "P7D"])


def test_a_reminder_after_the_close_is_refused_at_its_field(admin, alumni):
    """Six days open with reminders after 3 and 10 days: the second could never be sent."""
    _step_one(admin, alumni)
    [campaign] = _campaigns()
    response = _post(admin, f"/admin/campaigns/{campaign.id}/timing", timezone="Europe/Paris",
                     send_at="2031-03-01T09:00", closes_at="2031-03-07T09:00", reminders="P3D, P10D", quiet_hours="")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'id="reminders-error"' in body and "The reminder P10D would come after the survey closes" in body
    assert _campaigns()[0].reminders == ["P3D", "P7D"]  # nothing changed
    response = _post(admin, f"/admin/campaigns/{campaign.id}/timing", timezone="Europe/Paris",
                     send_at="2031-03-01T09:00", closes_at="2031-03-07T09:00", reminders="P3D, P5D", quiet_hours="")
    assert response.status_code == 302 and _campaigns()[0].reminders == ["P3D", "P5D"]


@pytest.mark.parametrize("moment, words", [("2031-03-30T02:30", "02:30 does not exist in Europe/Paris"),
                                           ("2031-10-26T02:30", "02:30 happens twice in Europe/Paris")])
def test_a_send_time_the_clocks_skip_or_repeat_is_refused(admin, alumni, moment, words):
    """Paris skips 02:00–03:00 on 30 March 2031 and passes it twice on 26 October."""
    _step_one(admin, alumni)
    [campaign] = _campaigns()
    response = _post(admin, f"/admin/campaigns/{campaign.id}/timing", timezone="Europe/Paris",
                     send_at=moment, closes_at="2031-12-01T09:00", reminders="", quiet_hours="")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'id="send_at-error"' in body and words in body
    response = _post(admin, f"/admin/campaigns/{campaign.id}/timing", timezone="Europe/Paris",
                     send_at=moment.replace("02:30", "03:30"), closes_at="2031-12-01T09:00", reminders="",
                     quiet_hours="")
    assert response.status_code == 302


def test_the_time_zones_offered_are_places(admin, alumni):
    _step_one(admin, alumni)
    [campaign] = _campaigns()
    page = admin.get(f"/admin/campaigns/{campaign.id}/timing").get_data(as_text=True)
    offered = re.findall(r'<option[^>]*value="([^"]+)"', page)
    assert "Europe/Paris" in offered and "America/Montreal" in offered and "UTC" in offered
    assert not {"Factory", "localtime", "posixrules"} & set(offered)
