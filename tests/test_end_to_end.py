"""One whole campaign: import the sample CSV, schedule, a real Celery worker sends
through a real SMTP server, a respondent follows the emailed link, saves, resumes
and submits, and the counts follow."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from survey.audiences.models import Stakeholder
from survey.extensions import db
from survey.mail.models import OutboxMessage

pytestmark = pytest.mark.worker


def _poll(fetch, until, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def _form_token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_whole_campaign(app, client, shared_data, smtp_server, celery_worker_process, builtin_questionnaires):
    from survey.accounts.services import create_api_key

    _, key = create_api_key("e2e")
    db.session.commit()
    auth = {"Authorization": f"Bearer {key}"}

    # 1. Import the messy French export through the API.
    body = (shared_data / "alumni_fr_excel.csv").read_bytes()
    imported = client.post("/api/v1/audiences/import?kind=alumnus", data=body, headers=auth,
                           content_type="text/csv").get_json()
    assert imported["created"] > 200
    assert {r["line"] for r in imported["rejected"]} >= {19, 35}

    # 2. A campaign to one programme, sending now.
    questionnaire = builtin_questionnaires["alumni-outcomes"]
    programme = "Data Analyst"
    audience = db.session.scalar(
        select(func.count()).select_from(Stakeholder)
        .where(Stakeholder.attributes["programme"].as_string() == programme)
    )
    assert audience > 5
    now = datetime.now(timezone.utc)
    created = client.post("/api/v1/campaigns", headers=auth, json={
        "name": "Alumni 2025", "questionnaire_id": questionnaire.id,
        "audience": {"kind": "alumnus", "filters": {"programme": programme}},
        "privacy": "identified", "send_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=2)).isoformat(), "reminders": ["P3D", "P7D"],
    })
    assert created.status_code == 201, created.get_json()
    campaign_id = created.get_json()["id"]
    assert created.get_json()["status"] == "draft"

    scheduled = client.post(f"/api/v1/campaigns/{campaign_id}/schedule", headers=auth)
    assert scheduled.status_code == 200, scheduled.get_json()

    # 3. The worker sends one invitation per person, no more.
    smtp_server.wait_for(audience)
    progress = _poll(lambda: client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).get_json(),
                     lambda p: p["status"] == "open")
    replies = set(db.session.scalars(select(OutboxMessage.smtp_reply)))
    assert progress["status"] == "open"
    assert progress["counts"] == {"invited": audience, "sent": audience, "failed": 0,
                                  "opened": 0, "started": 0, "completed": 0}, replies
    time.sleep(1)
    assert len(smtp_server.messages) == audience
    recipients = sorted(m["to"][0] for m in smtp_server.messages)
    assert len(set(recipients)) == audience

    # 4. A respondent opens the link in their email (in their own language).
    caught = smtp_server.messages[0]
    message = caught["message"]
    person = db.session.scalar(select(Stakeholder).where(Stakeholder.email == caught["to"][0]))
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    link = re.search(r"https://attest\.test\.example/s/[A-Za-z0-9_-]+", text).group(0)
    assert link in html
    path = link.removeprefix("https://attest.test.example")

    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    page_html = page.get_data(as_text=True)
    assert f'lang="{person.locale}"' in page_html
    assert client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).get_json()["counts"]["opened"] == 1

    # 5. Save part of the answers, come back, they are still there.
    saved = client.post(path, data={"csrf_token": _form_token(page_html), "activity": "employed_full_time",
                                    "save": "1"})
    assert saved.status_code == 303
    resumed = client.get(path).get_data(as_text=True)
    assert re.search(r'value="employed_full_time"[^>]*checked|checked[^>]*value="employed_full_time"', resumed)
    counts = client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).get_json()["counts"]
    assert (counts["opened"], counts["started"], counts["completed"]) == (1, 1, 0)

    # 6. Submit, once.
    answers = {"csrf_token": _form_token(resumed), "activity": "employed_full_time",
               "outcomes": ["new_job", "raise"], "attribution": "4", "employer": "ACME",
               "role": "Data analyst", "submit": "1"}
    done = client.post(path, data=answers)
    assert done.status_code == 200, done.get_data(as_text=True)
    again = client.post(path, data=answers)
    assert again.status_code == 409
    assert client.get(path).status_code == 409

    counts = client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).get_json()["counts"]
    assert counts == {"invited": audience, "sent": audience, "failed": 0, "opened": 1, "started": 1,
                      "completed": 1}

    from survey.campaigns.models import Response

    db.session.expire_all()
    stored = db.session.scalars(select(Response).where(Response.campaign_id == campaign_id)).all()
    assert len(stored) == 1
    assert stored[0].answers["outcomes"] == ["new_job", "raise"]
    assert stored[0].answers["employer"] == "ACME"

    # 7. A tampered link opens nothing.
    assert client.get(path[:-2] + ("AA" if not path.endswith("AA") else "BB")).status_code == 404
