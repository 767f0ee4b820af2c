"""Helpers shared by the API tests: a campaign body, its creation, the JSON error shape."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

CAMPAIGNS = "/api/v1/campaigns"


def iso(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat()


def campaign_body(questionnaire_id, /, **changes) -> dict:
    body = {
        "name": "Alumni 2024, six months on",
        "questionnaire_id": questionnaire_id,
        "audience": {"kind": "alumnus", "filters": {"cohort": "2024"}},
        "privacy": "confidential",
        "send_at": iso(timedelta(days=1)),
        "closes_at": iso(timedelta(days=30)),
        "reminders": ["P7D", "P3D"],
    }
    body.update(changes)
    return body


def create_campaign(client, auth, questionnaire_id, **changes) -> int:
    response = client.post(CAMPAIGNS, json=campaign_body(questionnaire_id, **changes), headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def assert_json_error(response, status) -> dict:
    """The error shape README documents: {"code", "message", "errors"}."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json
    payload = response.get_json()
    assert set(payload) >= {"code", "message", "errors"}
    assert payload["code"] == status
    assert isinstance(payload["message"], str) and payload["message"]
    return payload
