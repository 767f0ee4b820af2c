"""GET /api/v1/campaigns (the list), PATCH /api/v1/campaigns/<id>, POST …/<id>/unschedule,
GET …/<id>/funnel."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from survey.extensions import db
from tests.api.helpers import CAMPAIGNS as URL
from tests.api.helpers import assert_json_error, create_campaign


@pytest.fixture
def alumni_questionnaire(builtin_questionnaires):
    return builtin_questionnaires["alumni-outcomes"]


def _stored(campaign_id: int):
    from survey.campaigns.models import Campaign

    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def _scheduled(client, auth, questionnaire_id, create_stakeholder) -> int:
    create_stakeholder(kind="alumnus", cohort="2024")
    campaign_id = create_campaign(client, auth, questionnaire_id)
    response = client.post(f"{URL}/{campaign_id}/schedule", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return campaign_id


# ------------------------------------------------------------------------ list

def test_the_list_is_newest_first_with_counts_and_page_figures(client, auth, alumni_questionnaire):
    ids = [create_campaign(client, auth, alumni_questionnaire.id, name=f"Campaign {n}") for n in range(3)]
    response = client.get(URL, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["page"], body["per_page"], body["total"], body["pages"]) == (1, 50, 3, 1)
    assert [item["id"] for item in body["items"]] == ids[::-1]
    first = body["items"][0]
    assert first["name"] == "Campaign 2" and first["status"] == "draft"
    assert first["counts"] == {"invited": 0, "sent": 0, "failed": 0, "opened": 0, "started": 0, "completed": 0}
    assert first["audience"] == {"kind": "alumnus", "filters": {"cohort": "2024"}}


def test_the_list_is_paginated_and_a_page_past_the_end_is_empty(client, auth, alumni_questionnaire):
    ids = [create_campaign(client, auth, alumni_questionnaire.id) for _ in range(5)][::-1]
    pages = [client.get(f"{URL}?per_page=2&page={n}", headers=auth).get_json() for n in (1, 2, 3, 4)]
    assert [[item["id"] for item in page["items"]] for page in pages] == [ids[0:2], ids[2:4], ids[4:], []]
    assert {(page["total"], page["pages"], page["per_page"]) for page in pages} == {(5, 3, 2)}
    assert [page["page"] for page in pages] == [1, 2, 3, 4]
    far = client.get(f"{URL}?page=1000000", headers=auth)
    assert far.status_code == 200 and far.get_json()["items"] == []


def test_the_list_filters_by_status(client, auth, alumni_questionnaire, create_stakeholder):
    draft = create_campaign(client, auth, alumni_questionnaire.id)
    scheduled = _scheduled(client, auth, alumni_questionnaire.id, create_stakeholder)
    only = client.get(f"{URL}?status=scheduled", headers=auth).get_json()
    assert [item["id"] for item in only["items"]] == [scheduled] and only["total"] == 1
    assert [item["id"] for item in client.get(f"{URL}?status=draft", headers=auth).get_json()["items"]] == [draft]
    assert client.get(f"{URL}?status=closed", headers=auth).get_json() == {
        "items": [], "page": 1, "per_page": 50, "total": 0, "pages": 1}


@pytest.mark.parametrize("query", ["per_page=0", "per_page=101", "page=0", "page=-1", "page=two",
                                   f"page={10**30}", "status=finished", "status="])
def test_bad_list_queries_give_422_naming_the_parameter(client, auth, query):
    payload = assert_json_error(client.get(f"{URL}?{query}", headers=auth), 422)
    assert query.split("=")[0] in payload["message"]


def test_per_page_100_is_allowed(client, auth):
    assert client.get(f"{URL}?per_page=100", headers=auth).get_json()["per_page"] == 100


# ----------------------------------------------------------------------- PATCH

def test_patch_changes_only_what_is_sent(client, auth, alumni_questionnaire):
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id, quiet_hours={"start": "21:00", "end": "07:00"})
    before = client.get(f"{URL}/{campaign_id}", headers=auth).get_json()

    response = client.patch(f"{URL}/{campaign_id}", json={"name": "Renamed", "reminders": ["P10D", "P2D"]},
                            headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    after = response.get_json()
    assert after["name"] == "Renamed"
    assert after["reminders"] == ["P2D", "P10D"]  # in the order they fall due, as on creation
    unchanged = {key: value for key, value in before.items() if key not in ("name", "reminders")}
    assert {key: after[key] for key in unchanged} == unchanged
    assert after["quiet_hours"] == {"start": "21:00", "end": "07:00"}
    stored = _stored(campaign_id)
    assert stored.name == "Renamed" and stored.privacy == "confidential"
    assert client.get(f"{URL}/{campaign_id}", headers=auth).get_json() == after


def test_patch_every_setting(client, auth, builtin_questionnaires):
    alumni, employees = builtin_questionnaires["alumni-outcomes"], builtin_questionnaires["employee-pulse"]
    campaign_id = create_campaign(client, auth, alumni.id)
    changes = {
        "questionnaire_id": employees.id, "audience": {"kind": "employee", "filters": {"department": "HR"}},
        "privacy": "anonymous", "send_at": "2031-05-01T09:00:00+02:00", "closes_at": "2031-05-20T18:00:00Z",
        "quiet_hours": None,
    }
    response = client.patch(f"{URL}/{campaign_id}", json=changes, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["questionnaire_id"] == employees.id
    assert body["audience"] == {"kind": "employee", "filters": {"department": "HR"}}
    assert (body["privacy"], body["quiet_hours"]) == ("anonymous", None)
    stored = _stored(campaign_id)
    assert stored.send_at == datetime(2031, 5, 1, 7, 0, tzinfo=timezone.utc)
    assert stored.closes_at == datetime(2031, 5, 20, 18, 0, tzinfo=timezone.utc)
    assert (stored.quiet_hours_start, stored.quiet_hours_end) == (None, None)

    again = client.patch(f"{URL}/{campaign_id}", json={"quiet_hours": {"start": "22:00", "end": "06:00"}},
                         headers=auth)
    assert again.get_json()["quiet_hours"] == {"start": "22:00", "end": "06:00"}
    assert (_stored(campaign_id).quiet_hours_start, _stored(campaign_id).quiet_hours_end) == (time(22), time(6))


def test_an_empty_patch_changes_nothing(client, auth, alumni_questionnaire):
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
    before = client.get(f"{URL}/{campaign_id}", headers=auth).get_json()
    response = client.patch(f"{URL}/{campaign_id}", json={}, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == before


@pytest.mark.parametrize("data,content_type,status", [
    (b"", None, 400), (b"", "application/json", 400), (b"name=x", "application/x-www-form-urlencoded", 415),
    (b'{"name": "x"}', "text/plain", 415), (b"[1, 2]", "application/json", 422), (b"null", "application/json", 422),
])
def test_a_patch_without_a_json_object_is_refused(client, auth, alumni_questionnaire, data, content_type, status):
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
    response = client.patch(f"{URL}/{campaign_id}", data=data, content_type=content_type, headers=auth)
    assert_json_error(response, status)
    assert _stored(campaign_id).name == "Alumni 2024, six months on"


BAD_CHANGES = {
    "closes before send": {"closes_at": "2000-01-01T00:00:00Z"},
    "naive time": {"send_at": "2031-03-01T09:00:00"},
    "blank name": {"name": "   "},
    "empty name": {"name": ""},
    "null name": {"name": None},
    "unknown questionnaire": {"questionnaire_id": 999_999},
    "questionnaire for employees, audience of alumni": "employee-pulse",
    "audience kind unknown": {"audience": {"kind": "robot"}},
    "bad reminder": {"reminders": ["P3X"]},
    "reminder in months": {"reminders": ["P1M"]},
    "huge reminder": {"reminders": ["P99999999999D"]},
    "duplicate reminders": {"reminders": ["P3D", "PT72H"]},
    "privacy secret": {"privacy": "secret"},
    "quiet hours equal": {"quiet_hours": {"start": "20:00", "end": "20:00"}},
    "unknown field": {"status": "closed"},
    "not an object": ["name"],
}


@pytest.mark.parametrize("changes", BAD_CHANGES.values(), ids=BAD_CHANGES.keys())
def test_bad_values_give_422_and_change_nothing(client, auth, builtin_questionnaires, changes):
    campaign_id = create_campaign(client, auth, builtin_questionnaires["alumni-outcomes"].id)
    before = client.get(f"{URL}/{campaign_id}", headers=auth).get_json()
    if changes == "employee-pulse":
        changes = {"questionnaire_id": builtin_questionnaires["employee-pulse"].id}
    assert_json_error(client.patch(f"{URL}/{campaign_id}", json=changes, headers=auth), 422)
    assert client.get(f"{URL}/{campaign_id}", headers=auth).get_json() == before


def test_the_error_names_what_is_wrong(client, auth, alumni_questionnaire):
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
    payload = assert_json_error(client.patch(f"{URL}/{campaign_id}", json={"reminders": ["P3D", "P3X"]},
                                             headers=auth), 422)
    assert "P3X" in payload["message"]
    payload = assert_json_error(client.patch(f"{URL}/{campaign_id}", json={"closes_at": "2000-01-01T00:00:00Z"},
                                             headers=auth), 422)
    assert "close after" in payload["message"]


def test_a_scheduled_campaign_refuses_changes_with_409(client, auth, alumni_questionnaire, create_stakeholder):
    campaign_id = _scheduled(client, auth, alumni_questionnaire.id, create_stakeholder)
    payload = assert_json_error(client.patch(f"{URL}/{campaign_id}", json={"name": "Too late"}, headers=auth), 409)
    assert "draft" in payload["message"] and "unschedule" in payload["message"]
    assert _stored(campaign_id).name == "Alumni 2024, six months on"
    assert _stored(campaign_id).status == "scheduled"


def test_unschedule_then_patch_then_schedule_again(client, auth, alumni_questionnaire, create_stakeholder):
    campaign_id = _scheduled(client, auth, alumni_questionnaire.id, create_stakeholder)
    response = client.post(f"{URL}/{campaign_id}/unschedule", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "draft"
    assert _stored(campaign_id).scheduled_at is None

    renamed = client.patch(f"{URL}/{campaign_id}", json={"name": "Second try"}, headers=auth)
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "Second try"
    again = client.post(f"{URL}/{campaign_id}/schedule", headers=auth)
    assert again.status_code == 200 and again.get_json()["status"] == "scheduled"


@pytest.mark.parametrize("status", ["draft", "sending", "closed"])
def test_unschedule_gives_409_unless_scheduled(client, auth, alumni_questionnaire, status):
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
    campaign = _stored(campaign_id)
    if status != "draft":
        campaign.status, campaign.scheduled_at = status, datetime.now(timezone.utc)
        db.session.commit()
    payload = assert_json_error(client.post(f"{URL}/{campaign_id}/unschedule", headers=auth), 409)
    assert status in payload["message"]
    assert _stored(campaign_id).status == status


@pytest.mark.parametrize("method,suffix", [("PATCH", ""), ("POST", "/unschedule"), ("GET", "/funnel")])
@pytest.mark.parametrize("campaign_id", ["999999", "99999999999999999999"])
def test_an_unknown_campaign_gives_404(client, auth, method, suffix, campaign_id):
    payload = assert_json_error(client.open(f"{URL}/{campaign_id}{suffix}", method=method, json={}, headers=auth),
                                404)
    if campaign_id == "999999":
        assert "campaign" in payload["message"].lower()


@pytest.mark.parametrize("method,path", [("GET", URL), ("GET", f"{URL}?per_page=0"), ("PATCH", f"{URL}/1"),
                                         ("POST", f"{URL}/1/unschedule"), ("GET", f"{URL}/1/funnel")])
def test_each_new_route_needs_a_key(client, method, path):
    payload = assert_json_error(client.open(path, method=method, json={"name": ""}), 401)
    assert "API key" in payload["message"]


# ---------------------------------------------------------------------- funnel

def test_the_funnel_gives_cumulative_counts_per_day(client, auth, alumni_questionnaire, create_stakeholder,
                                                    monkeypatch):
    from tests.campaigns.helpers import invitations, started_campaign

    for _ in range(3):
        create_stakeholder(kind="alumnus")
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    campaign = started_campaign(alumni_questionnaire, monkeypatch, send_at=two_days_ago - timedelta(minutes=1))
    first, second, _third = invitations(campaign.id)
    first.sent_at = second.sent_at = two_days_ago
    first.opened_at = first.started_at = two_days_ago
    second.opened_at = two_days_ago + timedelta(days=1)
    first.completed_at = datetime.now(timezone.utc)
    db.session.commit()

    response = client.get(f"{URL}/{campaign.id}/funnel", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["campaign_id"] == campaign.id
    assert body["days"] == [
        {"day": (two_days_ago + timedelta(days=n)).date().isoformat(), **totals}
        for n, totals in enumerate([
            {"sent": 2, "opened": 1, "started": 1, "completed": 0},
            {"sent": 2, "opened": 2, "started": 1, "completed": 0},
            {"sent": 2, "opened": 2, "started": 1, "completed": 1},
        ])
    ]


def test_a_draft_has_an_empty_funnel(client, auth, alumni_questionnaire):
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
    assert client.get(f"{URL}/{campaign_id}/funnel", headers=auth).get_json() == {
        "campaign_id": campaign_id, "days": []}


def test_patch_takes_the_fields_of_post_each_optional():
    from survey.api.schemas import CampaignIn, CampaignPatchIn

    assert set(CampaignPatchIn().fields) == set(CampaignIn().fields)
    assert not any(field.required for field in CampaignPatchIn().fields.values())

