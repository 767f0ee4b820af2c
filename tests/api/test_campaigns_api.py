"""POST /api/v1/campaigns, POST /api/v1/campaigns/<id>/schedule, GET /api/v1/campaigns/<id>."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from survey.extensions import db
from tests.api.helpers import CAMPAIGNS as URL
from tests.api.helpers import assert_json_error, campaign_body, create_campaign, iso

COUNT_KEYS = {"invited", "sent", "failed", "opened", "started", "completed"}


def _campaign_count() -> int:
    from survey.campaigns.models import Campaign

    return db.session.scalar(select(func.count()).select_from(Campaign))


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
    payload = assert_json_error(client.post(URL, json=body, headers=auth), 422)
    assert field in str(payload["errors"])
    assert f"{field}: Missing data" in payload["message"]
    assert _campaign_count() == 0


BAD_FIELDS = {
    "naive send_at": {"send_at": "2031-03-01T09:00:00"},
    "naive closes_at": {"closes_at": "2031-03-01T09:00:00"},
    "not a date": {"send_at": "next tuesday"},
    "before year 1 in UTC": {"send_at": "0001-01-01T00:30:00+01:00"},
    "after year 9999 in UTC": {"closes_at": "9999-12-31T23:59:59-01:00"},
    "closes before send": {"send_at": iso(timedelta(days=10)), "closes_at": iso(timedelta(days=5))},
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
    "reminder too long to be a date": {"reminders": ["P99999999999D"]},
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
    payload = assert_json_error(client.post(URL, json=body, headers=auth), 422)
    assert "semantic errors" not in payload["message"]  # says what is wrong, not a generic text
    assert _campaign_count() == 0


def test_a_questionnaire_for_employees_cannot_go_to_alumni(client, auth, builtin_questionnaires):
    employee_pulse = builtin_questionnaires["employee-pulse"]
    payload = assert_json_error(client.post(URL, json=campaign_body(employee_pulse.id), headers=auth), 422)
    assert "employee" in payload["message"]
    assert _campaign_count() == 0


def test_the_reminder_error_names_the_bad_value(client, auth, alumni_questionnaire):
    body = campaign_body(alumni_questionnaire.id, reminders=["P3D", "P3X"])
    payload = assert_json_error(client.post(URL, json=body, headers=auth), 422)
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

def test_get_gives_status_and_every_count(client, auth, alumni_questionnaire):
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
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
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
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
    payload = assert_json_error(client.open(path, method=method, headers=auth), 404)
    assert "campaign" in payload["message"].lower()


@pytest.mark.parametrize("campaign_id", ["99999999999999999999", str(2**63)])
def test_a_huge_campaign_id_gives_404_not_500(client, auth, campaign_id):
    assert_json_error(client.get(f"{URL}/{campaign_id}", headers=auth), 404)
    assert_json_error(client.post(f"{URL}/{campaign_id}/schedule", headers=auth), 404)


def test_schedule_then_schedule_again_gives_409(client, auth, alumni_questionnaire, create_stakeholder):
    from survey.questionnaires.models import Questionnaire

    create_stakeholder(kind="alumnus", cohort="2024")
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)

    first = client.post(f"{URL}/{campaign_id}/schedule", headers=auth)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["status"] == "scheduled"
    db.session.expire_all()
    assert db.session.get(Questionnaire, alumni_questionnaire.id).frozen_at is not None

    second = client.post(f"{URL}/{campaign_id}/schedule", headers=auth)
    payload = assert_json_error(second, 409)
    assert "scheduled" in payload["message"]
    assert client.get(f"{URL}/{campaign_id}", headers=auth).get_json()["status"] == "scheduled"


def test_schedule_with_an_empty_audience_gives_422_and_stays_draft(client, auth, alumni_questionnaire,
                                                                    create_stakeholder):
    create_stakeholder(kind="alumnus", cohort="2023")   # another cohort
    create_stakeholder(kind="employee", cohort="2024")  # another kind
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
    payload = assert_json_error(client.post(f"{URL}/{campaign_id}/schedule", headers=auth), 422)
    assert "audience" in payload["message"]
    assert client.get(f"{URL}/{campaign_id}", headers=auth).get_json()["status"] == "draft"


def test_schedule_leaves_out_suppressed_people(client, auth, alumni_questionnaire, create_stakeholder):
    from survey.core.types import utcnow

    person = create_stakeholder(kind="alumnus", cohort="2024")
    person.suppressed_at = utcnow()
    person.suppression_reason = "opted_out"
    db.session.commit()
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
    assert_json_error(client.post(f"{URL}/{campaign_id}/schedule", headers=auth), 422)


def test_a_past_send_time_starts_at_once(client, auth, alumni_questionnaire, create_stakeholder, monkeypatch):
    from workflows import tasks

    queued = []
    monkeypatch.setattr(tasks.start_campaign, "apply_async",
                        lambda args=(), kwargs=None, **_: queued.append(tuple(args)))
    create_stakeholder(kind="alumnus", cohort="2024")
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id, send_at=iso(timedelta(minutes=-5)))
    response = client.post(f"{URL}/{campaign_id}/schedule", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert queued == [(campaign_id,)]


# ------------------------------------------------------------------ quiet hours

def test_quiet_hours_are_stored_and_returned(client, auth, alumni_questionnaire):
    from datetime import time

    from survey.campaigns.models import Campaign

    body = campaign_body(alumni_questionnaire.id, quiet_hours={"start": "21:30", "end": "7:00"})
    response = client.post(URL, json=body, headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert created["quiet_hours"] == {"start": "21:30", "end": "07:00"}
    assert created["reminders"] == ["P3D", "P7D"]
    stored = db.session.get(Campaign, created["id"])
    assert (stored.quiet_hours_start, stored.quiet_hours_end) == (time(21, 30), time(7, 0))
    again = client.get(f"{URL}/{created['id']}", headers=auth).get_json()
    assert again["quiet_hours"] == {"start": "21:30", "end": "07:00"}
    assert again["reminders"] == ["P3D", "P7D"]


def test_absent_quiet_hours_are_the_configured_default(client, auth, alumni_questionnaire, app, monkeypatch):
    monkeypatch.setitem(app.config, "DEFAULT_QUIET_HOURS", "22:00-06:30")
    body = campaign_body(alumni_questionnaire.id)
    assert "quiet_hours" not in body
    response = client.post(URL, json=body, headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["quiet_hours"] == {"start": "22:00", "end": "06:30"}

    monkeypatch.setitem(app.config, "DEFAULT_QUIET_HOURS", "")
    response = client.post(URL, json=campaign_body(alumni_questionnaire.id), headers=auth)
    assert response.get_json()["quiet_hours"] is None


def test_null_quiet_hours_mean_reminders_at_any_hour(client, auth, alumni_questionnaire):
    from survey.campaigns.models import Campaign

    response = client.post(URL, json=campaign_body(alumni_questionnaire.id, quiet_hours=None), headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["quiet_hours"] is None
    stored = db.session.get(Campaign, response.get_json()["id"])
    assert (stored.quiet_hours_start, stored.quiet_hours_end) == (None, None)


BAD_QUIET_HOURS = {
    "hour 25": {"start": "25:00", "end": "08:00"},
    "minute 60": {"start": "20:00", "end": "08:60"},
    "same start and end": {"start": "20:00", "end": "20:00"},
    "not a clock time": {"start": "8pm", "end": "8am"},
    "with seconds": {"start": "20:00:00", "end": "08:00:00"},
    "trailing newline": {"start": "20:00\n", "end": "08:00"},
    "other digits": {"start": "٢٠:٠٠", "end": "08:00"},
    "missing end": {"start": "20:00"},
    "numbers": {"start": 20, "end": 8},
    "a string": "20:00-08:00",
    "a list": ["20:00", "08:00"],
}


@pytest.mark.parametrize("quiet_hours", BAD_QUIET_HOURS.values(), ids=BAD_QUIET_HOURS.keys())
def test_invalid_quiet_hours_give_422_naming_the_field(client, auth, alumni_questionnaire, quiet_hours):
    body = campaign_body(alumni_questionnaire.id, quiet_hours=quiet_hours)
    payload = assert_json_error(client.post(URL, json=body, headers=auth), 422)
    assert "quiet_hours" in payload["errors"]["json"]
    assert payload["message"].startswith("Invalid request: quiet_hours")
    assert _campaign_count() == 0


def test_the_openapi_document_describes_quiet_hours_and_recipients(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    assert "quiet_hours" in schemas["CampaignIn"]["properties"]
    assert {"quiet_hours", "reminders"} <= set(schemas["CampaignOut"]["properties"])
    operation = spec["paths"]["/api/v1/campaigns/{campaign_id}/recipients"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"page", "per_page", "status"}
    assert operation["security"] == [{"bearerAuth": []}]
    assert "200" in operation["responses"]
    recipient = schemas["RecipientOut"]["properties"]
    assert {"email", "status", "reminders_sent", "next_reminder_at", "emails"} <= set(recipient)
    assert {"kind", "sequence", "status", "attempts", "smtp_reply", "message_id"} <= set(
        schemas["EmailOut"]["properties"])


# ------------------------------------------------------------------- recipients

@pytest.fixture
def sent_campaign(alumni_questionnaire, create_stakeholder, monkeypatch):
    """A started campaign of five people; the first had its invitation and a reminder."""
    from survey.mail.models import OutboxMessage
    from tests.campaigns.helpers import invitations, now, outbox, started_campaign

    for n in range(5):
        create_stakeholder(kind="alumnus", email=f"alum{n}@example.org", timezone="Asia/Tokyo")
    campaign = started_campaign(alumni_questionnaire, monkeypatch, reminders=["P3D"])
    first = invitations(campaign.id)[0]
    invitation_email = outbox(campaign.id)[0]
    invitation_email.status, invitation_email.attempts, invitation_email.sent_at = "sent", 1, now()
    invitation_email.smtp_reply = "250 2.0.0 <b>Ok</b>"
    invitation_email.message_id = "<abc@attest.test>"
    first.status, first.sent_at, first.reminders_sent = "sent", now(), 1
    db.session.add(OutboxMessage(invitation_id=first.id, kind="reminder", sequence=1, status="failed",
                                 attempts=6, smtp_reply="550 5.7.1 rejected"))
    db.session.commit()
    return campaign


def test_recipients_need_an_api_key(client, sent_campaign):
    assert_json_error(client.get(f"{URL}/{sent_campaign.id}/recipients"), 401)
    assert_json_error(client.get(f"{URL}/{sent_campaign.id}/recipients",
                                  headers={"Authorization": "Bearer not-a-key"}), 401)
    assert_json_error(client.get(f"{URL}/999999/recipients?per_page=0"), 401)  # the key first


def test_recipients_of_an_unknown_campaign_give_404(client, auth):
    payload = assert_json_error(client.get(f"{URL}/999999/recipients", headers=auth), 404)
    assert "campaign" in payload["message"].lower()
    assert_json_error(client.get(f"{URL}/99999999999999999999/recipients", headers=auth), 404)


def test_recipients_with_every_email_sent_to_them(client, auth, sent_campaign):
    response = client.get(f"{URL}/{sent_campaign.id}/recipients", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["page"], body["per_page"], body["total"], body["pages"]) == (1, 50, 5, 1)
    assert [r["email"] for r in body["items"]] == [f"alum{n}@example.org" for n in range(5)]
    first = body["items"][0]
    assert first["status"] == "sent" and first["reminders_sent"] == 1
    assert first["timezone"] == "Asia/Tokyo"
    assert (first["first_name"], first["last_name"]) == ("Ada", "Lovelace")
    assert first["suppressed_at"] is None and first["opted_out_at"] is None
    invitation_email, reminder = first["emails"]
    assert invitation_email["kind"] == "invitation" and invitation_email["sequence"] == 0
    assert invitation_email["status"] == "sent" and invitation_email["attempts"] == 1
    assert invitation_email["smtp_reply"] == "250 2.0.0 <b>Ok</b>"  # JSON carries it as it came
    assert invitation_email["message_id"] == "<abc@attest.test>"
    assert invitation_email["sent_at"] and invitation_email["queued_at"]
    assert invitation_email["next_attempt_at"] is None
    assert (reminder["kind"], reminder["sequence"], reminder["status"], reminder["attempts"]) == (
        "reminder", 1, "failed", 6)
    assert reminder["smtp_reply"] == "550 5.7.1 rejected"
    others = body["items"][1:]
    assert all(r["status"] == "queued" and len(r["emails"]) == 1 for r in others)
    assert all(r["emails"][0]["status"] == "queued" and r["emails"][0]["next_attempt_at"] for r in others)


def test_recipients_are_paginated_and_filtered(client, auth, sent_campaign):
    url = f"{URL}/{sent_campaign.id}/recipients"
    pages = [client.get(f"{url}?per_page=2&page={n}", headers=auth).get_json() for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [5] * 4
    assert [p["pages"] for p in pages] == [3] * 4
    assert [[r["email"] for r in p["items"]] for p in pages] == [
        ["alum0@example.org", "alum1@example.org"], ["alum2@example.org", "alum3@example.org"],
        ["alum4@example.org"], []]

    sent = client.get(f"{url}?status=sent", headers=auth).get_json()
    assert [r["email"] for r in sent["items"]] == ["alum0@example.org"] and sent["total"] == 1
    queued = client.get(f"{url}?status=queued&per_page=3&page=2", headers=auth).get_json()
    assert [r["email"] for r in queued["items"]] == ["alum4@example.org"] and queued["total"] == 4
    assert client.get(f"{url}?status=completed", headers=auth).get_json()["items"] == []
    found = client.get(f"{url}?email=ALUM3", headers=auth).get_json()
    assert [r["email"] for r in found["items"]] == ["alum3@example.org"]


@pytest.mark.parametrize("query", ["status=nonsense", "per_page=0", "per_page=201", "page=0", "page=-1",
                                   "page=two", f"page={10**30}"])
def test_bad_recipient_queries_give_422(client, auth, sent_campaign, query):
    payload = assert_json_error(client.get(f"{URL}/{sent_campaign.id}/recipients?{query}", headers=auth), 422)
    assert query.split("=")[0] in payload["message"]


def test_a_draft_campaign_has_no_recipients_yet(client, auth, alumni_questionnaire):
    campaign_id = create_campaign(client, auth, alumni_questionnaire.id)
    body = client.get(f"{URL}/{campaign_id}/recipients", headers=auth).get_json()
    assert (body["items"], body["total"], body["pages"]) == ([], 0, 1)


# ---------------------------------------------------------------------- the list's queries

def test_the_list_makes_as_many_queries_for_one_campaign_as_for_many(client, auth, alumni_questionnaire,
                                                                   create_stakeholder, monkeypatch):
    """Every campaign of a page is counted in one GROUP BY, not one query per campaign."""
    from tests.campaigns.helpers import counted_queries, invitations, started_campaign

    for _ in range(2):
        create_stakeholder(cohort="2024")

    def add_campaigns(number: int) -> None:
        for n in range(number):
            campaign = started_campaign(alumni_questionnaire, monkeypatch, name=f"Campaign {n}")
            first = invitations(campaign.id)[0]
            first.status, first.sent_at = "sent", datetime.now(timezone.utc)
        db.session.commit()

    def listed() -> tuple[int, list]:
        client.get(URL, headers=auth)  # warm: the connection, the session
        with counted_queries() as statements:
            response = client.get(URL, headers=auth)
        assert response.status_code == 200, response.get_data(as_text=True)
        return len(statements), response.get_json()["items"]

    add_campaigns(1)
    create_campaign(client, auth, alumni_questionnaire.id)  # a draft: nothing counted
    few, _items = listed()
    add_campaigns(6)
    many, items = listed()
    assert many == few
    assert len(items) == 8
    counts = [item["counts"] for item in items]
    assert counts.count({"invited": 2, "sent": 1, "failed": 0, "opened": 0, "started": 0, "completed": 0}) == 7
    assert counts.count(dict.fromkeys(COUNT_KEYS, 0)) == 1
