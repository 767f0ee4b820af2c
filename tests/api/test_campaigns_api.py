"""POST /api/v1/campaigns, POST /api/v1/campaigns/<id>/schedule, GET /api/v1/campaigns/<id>."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from survey.extensions import db

URL = "/api/v1/campaigns"
COUNT_KEYS = {"invited", "sent", "failed", "opened", "started", "completed"}


def _iso(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat()


def campaign_body(questionnaire_id, /, **changes):
    body = {
        "name": "Alumni 2024, six months on",
        "questionnaire_id": questionnaire_id,
        "audience": {"kind": "alumnus", "filters": {"cohort": "2024"}},
        "privacy": "confidential",
        "send_at": _iso(timedelta(days=1)),
        "closes_at": _iso(timedelta(days=30)),
        "reminders": ["P7D", "P3D"],
    }
    body.update(changes)
    return body


def _campaign_count() -> int:
    from survey.campaigns.models import Campaign

    return db.session.scalar(select(func.count()).select_from(Campaign))


def _assert_json_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json
    payload = response.get_json()
    assert set(payload) >= {"code", "message", "errors"}  # the shape README documents
    assert payload["code"] == status
    assert isinstance(payload["message"], str) and payload["message"]
    return payload


@pytest.fixture
def alumni_questionnaire(builtin_questionnaires):
    return builtin_questionnaires["alumni-outcomes"]


# ---------------------------------------------------------------------- create

def test_create_gives_201_with_id_and_draft_status(client, auth, alumni_questionnaire):
    response = client.post(URL, json=campaign_body(alumni_questionnaire.id), headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body["id"], int)
    assert body["status"] == "draft"
    assert body["questionnaire_id"] == alumni_questionnaire.id
    assert body["audience"] == {"kind": "alumnus", "filters": {"cohort": "2024"}}
    assert body["privacy"] == "confidential"
    assert body["reminders"] == ["P3D", "P7D"]  # in the order they fall due
    assert body["counts"] == dict.fromkeys(COUNT_KEYS, 0)

    from survey.campaigns.models import Campaign

    stored = db.session.get(Campaign, body["id"])
    assert stored.status == "draft" and stored.name == "Alumni 2024, six months on"


def test_times_with_any_offset_are_understood(client, auth, alumni_questionnaire):
    body = campaign_body(alumni_questionnaire.id, send_at="2031-03-01T09:00:00+01:00",
                         closes_at="2031-03-01T09:30:00Z")
    response = client.post(URL, json=body, headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    sent = datetime.fromisoformat(created["send_at"])
    assert sent == datetime(2031, 3, 1, 8, 0, tzinfo=timezone.utc)


def test_privacy_and_reminders_have_defaults(client, auth, alumni_questionnaire):
    body = campaign_body(alumni_questionnaire.id)
    del body["privacy"], body["reminders"]
    response = client.post(URL, json=body, headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["privacy"] == "identified"
    assert response.get_json()["reminders"] == []


@pytest.mark.parametrize("field", ["name", "questionnaire_id", "audience", "send_at", "closes_at"])
def test_a_missing_field_gives_422_naming_it(client, auth, alumni_questionnaire, field):
    body = campaign_body(alumni_questionnaire.id)
    del body[field]
    payload = _assert_json_error(client.post(URL, json=body, headers=auth), 422)
    assert field in str(payload["errors"])
    assert f"{field}: Missing data" in payload["message"]
    assert _campaign_count() == 0


BAD_FIELDS = {
    "naive send_at": {"send_at": "2031-03-01T09:00:00"},
    "naive closes_at": {"closes_at": "2031-03-01T09:00:00"},
    "not a date": {"send_at": "next tuesday"},
    "before year 1 in UTC": {"send_at": "0001-01-01T00:30:00+01:00"},
    "after year 9999 in UTC": {"closes_at": "9999-12-31T23:59:59-01:00"},
    "closes before send": {"send_at": _iso(timedelta(days=10)), "closes_at": _iso(timedelta(days=5))},
    "closes at send": {"send_at": "2031-03-01T09:00:00+00:00", "closes_at": "2031-03-01T10:00:00+01:00"},
    "unknown questionnaire": {"questionnaire_id": 999_999},
    "questionnaire id as text": {"questionnaire_id": "1"},
    "huge questionnaire id": {"questionnaire_id": 10**30},
    "audience kind unknown": {"audience": {"kind": "robot", "filters": {}}},
    "audience not an object": {"audience": "alumnus"},
    "filter value not text": {"audience": {"kind": "alumnus", "filters": {"cohort": 2024}}},
    "bad reminder": {"reminders": ["P3X"]},
    "reminder in months": {"reminders": ["P1M"]},
    "negative reminder": {"reminders": ["-P1D"]},
    "duplicate reminders": {"reminders": ["P3D", "PT72H"]},
    "reminders not a list": {"reminders": "P3D"},
    "privacy secret": {"privacy": "secret"},
    "empty name": {"name": ""},
    "blank name": {"name": "   "},
    "name too long": {"name": "x" * 201},
}


@pytest.mark.parametrize("changes", BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_invalid_campaign_gives_422_json_never_500(client, auth, alumni_questionnaire, changes):
    body = campaign_body(alumni_questionnaire.id, **changes)
    payload = _assert_json_error(client.post(URL, json=body, headers=auth), 422)
    assert "semantic errors" not in payload["message"]  # says what is wrong, not a generic text
    assert _campaign_count() == 0


def test_a_questionnaire_for_employees_cannot_go_to_alumni(client, auth, builtin_questionnaires):
    employee_pulse = builtin_questionnaires["employee-pulse"]
    payload = _assert_json_error(client.post(URL, json=campaign_body(employee_pulse.id), headers=auth), 422)
    assert "employee" in payload["message"]
    assert _campaign_count() == 0


def test_the_reminder_error_names_the_bad_value(client, auth, alumni_questionnaire):
    body = campaign_body(alumni_questionnaire.id, reminders=["P3D", "P3X"])
    payload = _assert_json_error(client.post(URL, json=body, headers=auth), 422)
    assert "P3X" in payload["message"]


@pytest.mark.parametrize("data,content_type", [
    (b"[1, 2, 3]", "application/json"),
    (b"\"a campaign\"", "application/json"),
    (b"42", "application/json"),
    (b"null", "application/json"),
    (b"{\"name\": ", "application/json"),
    (b"\xff\xfe\x00\x01", "application/json"),
    (b"[" * 100_000, "application/json"),
    (b"name=x&questionnaire_id=1", "application/x-www-form-urlencoded"),
    (b"{\"name\": \"x\"}", "text/plain"),
    (b"", None),
])
def test_a_body_that_is_not_a_json_object_gives_4xx_json(client, auth, alumni_questionnaire, data, content_type):
    response = client.post(URL, data=data, content_type=content_type, headers=auth)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)[:300]
    assert response.is_json
    assert response.get_json()["message"]
    assert _campaign_count() == 0


# ---------------------------------------------------------------- read and schedule

def _create(client, auth, questionnaire_id, **changes) -> int:
    response = client.post(URL, json=campaign_body(questionnaire_id, **changes), headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def test_get_gives_status_and_every_count(client, auth, alumni_questionnaire):
    campaign_id = _create(client, auth, alumni_questionnaire.id)
    response = client.get(f"{URL}/{campaign_id}", headers=auth)
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == campaign_id
    assert body["status"] == "draft"
    assert set(body["counts"]) == COUNT_KEYS
    assert all(value == 0 for value in body["counts"].values())


def test_counts_follow_the_invitations(client, auth, alumni_questionnaire, create_stakeholder):
    from survey.campaigns.models import Campaign, Invitation
    from survey.campaigns.services import start_campaign
    from survey.core.types import utcnow

    for _ in range(3):
        create_stakeholder(kind="alumnus", cohort="2024")
    create_stakeholder(kind="alumnus", cohort="2023")  # not in the audience
    campaign_id = _create(client, auth, alumni_questionnaire.id)
    assert client.post(f"{URL}/{campaign_id}/schedule", headers=auth).status_code == 200
    campaign = db.session.get(Campaign, campaign_id)
    campaign.send_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert start_campaign(campaign_id)
    db.session.commit()
    invitations = db.session.scalars(select(Invitation).where(Invitation.campaign_id == campaign_id)
                                     .order_by(Invitation.id)).all()
    now = utcnow()
    invitations[0].status, invitations[0].sent_at, invitations[0].opened_at = "opened", now, now
    invitations[1].status, invitations[1].sent_at = "sent", now
    invitations[1].started_at = invitations[1].completed_at = now
    invitations[2].status = "failed"
    db.session.commit()

    body = client.get(f"{URL}/{campaign_id}", headers=auth).get_json()
    assert body["status"] == "sending"
    assert body["counts"] == {"invited": 3, "sent": 2, "failed": 1, "opened": 1, "started": 1, "completed": 1}


@pytest.mark.parametrize("path", [f"{URL}/999", f"{URL}/999/schedule"])
def test_an_unknown_campaign_gives_404_json(client, auth, path):
    method = "POST" if path.endswith("schedule") else "GET"
    payload = _assert_json_error(client.open(path, method=method, headers=auth), 404)
    assert "campaign" in payload["message"].lower()


@pytest.mark.parametrize("campaign_id", ["99999999999999999999", str(2**63)])
def test_a_huge_campaign_id_gives_404_not_500(client, auth, campaign_id):
    _assert_json_error(client.get(f"{URL}/{campaign_id}", headers=auth), 404)
    _assert_json_error(client.post(f"{URL}/{campaign_id}/schedule", headers=auth), 404)


def test_schedule_then_schedule_again_gives_409(client, auth, alumni_questionnaire, create_stakeholder):
    from survey.questionnaires.models import Questionnaire

    create_stakeholder(kind="alumnus", cohort="2024")
    campaign_id = _create(client, auth, alumni_questionnaire.id)

    first = client.post(f"{URL}/{campaign_id}/schedule", headers=auth)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["status"] == "scheduled"
    db.session.expire_all()
    assert db.session.get(Questionnaire, alumni_questionnaire.id).frozen_at is not None

    second = client.post(f"{URL}/{campaign_id}/schedule", headers=auth)
    payload = _assert_json_error(second, 409)
    assert "scheduled" in payload["message"]
    assert client.get(f"{URL}/{campaign_id}", headers=auth).get_json()["status"] == "scheduled"


def test_schedule_with_an_empty_audience_gives_422_and_stays_draft(client, auth, alumni_questionnaire,
                                                                    create_stakeholder):
    create_stakeholder(kind="alumnus", cohort="2023")   # another cohort
    create_stakeholder(kind="employee", cohort="2024")  # another kind
    campaign_id = _create(client, auth, alumni_questionnaire.id)
    payload = _assert_json_error(client.post(f"{URL}/{campaign_id}/schedule", headers=auth), 422)
    assert "audience" in payload["message"]
    assert client.get(f"{URL}/{campaign_id}", headers=auth).get_json()["status"] == "draft"


def test_schedule_leaves_out_suppressed_people(client, auth, alumni_questionnaire, create_stakeholder):
    from survey.core.types import utcnow

    person = create_stakeholder(kind="alumnus", cohort="2024")
    person.suppressed_at = utcnow()
    person.suppression_reason = "opted_out"
    db.session.commit()
    campaign_id = _create(client, auth, alumni_questionnaire.id)
    _assert_json_error(client.post(f"{URL}/{campaign_id}/schedule", headers=auth), 422)


def test_a_past_send_time_starts_at_once(client, auth, alumni_questionnaire, create_stakeholder, monkeypatch):
    from workflows import tasks

    queued = []
    monkeypatch.setattr(tasks.start_campaign, "apply_async",
                        lambda args=(), kwargs=None, **_: queued.append(tuple(args)))
    create_stakeholder(kind="alumnus", cohort="2024")
    campaign_id = _create(client, auth, alumni_questionnaire.id, send_at=_iso(timedelta(minutes=-5)))
    response = client.post(f"{URL}/{campaign_id}/schedule", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert queued == [(campaign_id,)]
