"""``flask --app wsgi people export EMAIL``: everything held about a person (right of access)."""
from __future__ import annotations

import json

from sqlalchemy import select

from survey.audit.chain import verify
from survey.audit.models import AuditEvent
from survey.extensions import db
from tests.privacy.conftest import EMAIL, FIRST, LAST, SECRETS


def test_the_export_holds_everything_about_the_person(story, cli):
    result = cli("people", "export", EMAIL)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    person = data["person"]
    assert (person["email"], person["first_name"], person["last_name"]) == (EMAIL, FIRST, LAST)
    assert person["attributes"] == {"cohort": "2019", "programme": "Data"}
    by_campaign = {item["campaign"]["name"]: item for item in data["invitations"]}
    answered, drafted = by_campaign[story.campaign.name], by_campaign[story.other_campaign.name]
    assert answered["status"] == "completed" and answered["completed_at"]
    assert answered["answers"]["submitted"] is True
    assert answered["answers"]["answers"]["employer"] == SECRETS["employer"]
    assert [email["kind"] for email in answered["emails"]] == ["invitation"]
    assert drafted["status"] == "started"
    assert drafted["answers"] == {**drafted["answers"], "submitted": False,
                                  "answers": {"comment": SECRETS["draft"]}}
    [claim] = data["claims"]
    assert claim["outcome_type"] == "new_job" and claim["state"] == story.claim.state
    assert claim["details"]["employer"] == SECRETS["employer"]
    evidence = {item["kind"]: item for item in claim["evidence"]}
    assert evidence["file"]["filename"] == SECRETS["file"]
    assert evidence["link"]["url"] == SECRETS["evidence_link"]
    assert evidence["contact"]["contact"] == SECRETS["contact"]
    # The export is in the audit trail, by id only.
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "person_export"))
    assert event.subject == f"person:{story.person.id}" and EMAIL not in str(event.data)
    assert verify().ok


def test_the_export_to_a_file(story, cli, tmp_path):
    target = tmp_path / "export.json"
    result = cli("people", "export", EMAIL.upper(), "--output", str(target))
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text(encoding="utf-8"))["person"]["first_name"] == FIRST


def test_an_anonymous_campaign_says_its_answers_are_linked_to_no_one(app_ctx, alumni, create_stakeholder,
                                                                  monkeypatch, cli):
    from tests.campaigns.helpers import started_campaign
    from tests.privacy.conftest import answer

    person = create_stakeholder(email="anon@example.org")
    campaign = started_campaign(alumni, monkeypatch, privacy="anonymous")
    answer(campaign, person, {"activity": "seeking", "outcomes": ["none"], "comment": "anonymous words"})
    result = cli("people", "export", "anon@example.org")
    assert result.exit_code == 0, result.output
    [invitation] = json.loads(result.output)["invitations"]
    assert invitation["status"] == "completed" and invitation["answers"] is None
    assert "not linked" in invitation["note"]
    assert "anonymous words" not in result.output


def test_an_unknown_address_is_a_clear_error(app_ctx, cli):
    result = cli("people", "export", "nobody@example.org")
    assert result.exit_code == 1
    assert "No one is held under 'nobody@example.org'" in result.output
