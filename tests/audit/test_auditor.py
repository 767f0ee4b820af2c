"""The auditor's trail page (/audit/), and ``flask audit verify|export``."""
from __future__ import annotations

import hashlib
import json
import re

import pytest
from sqlalchemy import select, update

from survey.audit.chain import record, verify
from survey.audit.models import AuditEvent, AuditReason
from survey.extensions import db
from tests.audit.test_chain import _tamper


@pytest.fixture
def client(english_client):
    return english_client


def _events(count: int, subject=lambda n: f"claim:{n % 3}", action=lambda n: "vote" if n % 2 else "transition"):
    for number in range(1, count + 1):
        record(action(number), subject(number), actor="system", from_state="submitted", to_state="in_review",
               reason=f"reason {number}", data={"n": number, "text": "é"})
    db.session.commit()


def _rows(html: str) -> list[int]:
    return [int(number) for number in re.findall(r'<tr id="event-(\d+)"', html)]


def _trail(client, **params):
    page = client.get("/audit/", query_string=params)
    assert page.status_code == 200, page.get_data(as_text=True)
    return page.get_data(as_text=True)


# ---------------------------------------------------------------------- who may read it

@pytest.mark.parametrize("role", ["auditor", "chair"])
def test_the_auditor_and_the_chair_read_the_trail_newest_first(client, create_user, login, role):
    _events(5)
    login(create_user(role))
    html = _trail(client)
    assert _rows(html) == [5, 4, 3, 2, 1]
    assert "The chain is intact." in html
    assert "5 events checked from the first: every hash matches." in html
    assert "reason 5" in html and "claim:2" in html
    assert 'href="/audit/"' in html  # in the navigation


@pytest.mark.parametrize("role", ["committee", "admin"])
def test_other_staff_are_refused(client, create_user, login, role):
    login(create_user(role))
    assert client.get("/audit/").status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/audit/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_the_page_changes_nothing_and_offers_nothing_to_change(client, create_user, login):
    _events(3)
    login(create_user("auditor"))
    html = _trail(client)
    main = html.split('<main id="main"', 1)[1]
    assert 'method="post"' not in main.lower()
    assert '<form method="get"' in main
    db.session.expire_all()
    assert db.session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) == 3
    assert client.post("/audit/").status_code in (400, 405)  # no POST route (CSRF answers first)


# ---------------------------------------------------------------------- filters and pages

def test_filter_by_subject_and_by_action(client, create_user, login):
    _events(12)
    login(create_user("auditor"))
    assert _rows(_trail(client, subject="claim:1")) == [10, 7, 4, 1]
    assert _rows(_trail(client, action="vote")) == [11, 9, 7, 5, 3, 1]
    assert _rows(_trail(client, subject="claim:1", action="vote")) == [7, 1]
    html = _trail(client, subject="claim:404")
    assert _rows(html) == [] and "No event matches these filters." in html
    # the action list offers what the trail holds
    assert '<option value="transition">' in _trail(client) and '<option value="vote">' in _trail(client)


def test_a_hundred_per_page(client, create_user, login):
    _events(250)
    login(create_user("auditor"))
    first = _trail(client)
    assert _rows(first) == list(range(250, 150, -1))
    assert "page 1 of 3" in first and 'rel="next"' in first
    assert _rows(_trail(client, page=3)) == list(range(50, 0, -1))
    assert _rows(_trail(client, page=10**12)) == list(range(50, 0, -1))  # past the end: the last page
    assert _rows(_trail(client, page=-4)) == list(range(250, 150, -1))
    assert _rows(_trail(client, page=2, action="vote")) == list(range(49, 0, -2))


def test_escaping(client, create_user, login):
    record("vote", "claim:<b>1</b>", actor="system", reason="<script>alert(1)</script>", data={"x": "<i>"})
    db.session.commit()
    login(create_user("auditor"))
    html = _trail(client)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>1</b>" not in html and "<i>" not in html


# ---------------------------------------------------------------------- a broken chain

def test_a_tampered_chain_is_shown_broken_at_its_first_bad_link(client, create_user, login):
    _events(6)
    _tamper(update(AuditEvent).where(AuditEvent.id == 4).values(reason="rewritten"))
    login(create_user("auditor"))
    html = _trail(client)
    assert "The chain is broken at event 4: its content does not match its hash." in html
    assert "3 events before it are intact." in html
    assert "&#34;text&#34;: &#34;é&#34;" in html  # the details as written (not \u00e9)
    assert re.search(r'<tr id="event-4" class="has-error">', html)
    assert "The chain is intact." not in html


def test_a_deleted_event_is_shown_missing(client, create_user, login):
    _events(6)
    _tamper(AuditReason.__table__.delete().where(AuditReason.event_id == 2),
            AuditEvent.__table__.delete().where(AuditEvent.id == 2))
    login(create_user("chair"))
    assert "The chain is broken at event 2: event 2 is missing." in _trail(client)


# ---------------------------------------------------------------------- the CLI

def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["audit", *args])


def test_cli_verify_says_ok_and_exits_0(app, app_ctx):
    _events(5)
    result = _cli(app, "verify")
    assert (result.exit_code, result.output.strip()) == (0, "audit chain OK: 5 events")


def test_cli_verify_on_an_empty_trail(app, app_ctx):
    result = _cli(app, "verify")
    assert (result.exit_code, result.output.strip()) == (0, "audit chain OK: 0 events")


def test_cli_verify_says_broken_and_exits_1(app, app_ctx):
    _events(5)
    _tamper(update(AuditEvent).where(AuditEvent.id == 4).values(data={"n": 40}))
    result = _cli(app, "verify")
    assert result.exit_code == 1
    assert result.output.strip() == "audit chain BROKEN at event 4: its content does not match its hash"


def _reverify(lines: list[dict]) -> None:
    """The auditor's own check, from the exported lines alone (not the app's code)."""
    previous = "0" * 64
    for position, event in enumerate(lines, start=1):
        assert event["id"] == position
        assert event["prev_hash"] == previous
        fields = [event["id"], event["at"], event["actor_id"], event["actor"], event["action"],
                  event["subject"], event["from"], event["to"], event["reason"], event["data"]]
        if event["reason_hash"] is not None:  # a reason kept apart: the hash covers its hash
            fields.append(event["reason_hash"])
            if event["reason_kept"] is not None:
                kept = event["reason_kept"]
                assert hashlib.sha256(f"{kept['salt']}\n{kept['text']}".encode()).hexdigest() == event["reason_hash"]
        body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest() == event["hash"], position
        previous = event["hash"]


def test_cli_export_lines_re_verify_and_the_export_is_recorded(app, app_ctx, tmp_path):
    _events(7)
    out = tmp_path / "trail.jsonl"
    result = _cli(app, "export", "--out", str(out))
    assert result.exit_code == 0, result.output

    raw = out.read_bytes()
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert len(lines) == 7
    assert set(lines[0]) == {"id", "at", "actor_id", "actor", "action", "subject", "from", "to", "reason", "data",
                             "reason_hash", "reason_kept", "prev_hash", "hash"}
    assert (lines[2]["reason"], lines[2]["reason_kept"]["text"]) == ("", "reason 3")  # written about a claim
    assert lines[2]["data"] == {"n": 3, "text": "é"} and lines[2]["from"] == "submitted"
    _reverify(lines)

    db.session.expire_all()
    export = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (export.id, export.action, export.subject, export.actor) == (8, "export", "audit:trail", "cli")
    assert export.prev_hash == lines[-1]["hash"]  # chained after what it exported
    assert export.data["events"] == 7 and export.data["last_hash"] == lines[-1]["hash"]
    assert export.data["sha256"] == hashlib.sha256(raw).hexdigest()
    assert export.data["to"] == str(out)
    assert verify().ok

    # a second export holds the first export's event, and still re-verifies
    second = tmp_path / "again.jsonl"
    assert _cli(app, "export", "--out", str(second)).exit_code == 0
    again = [json.loads(line) for line in second.read_text().splitlines()]
    assert [line["action"] for line in again[-1:]] == ["export"] and len(again) == 8
    _reverify(again)


def test_cli_export_to_standard_output(app, app_ctx):
    _events(3)
    result = _cli(app, "export")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    _reverify(lines)
    assert len(lines) == 3
    db.session.expire_all()
    assert db.session.scalar(select(AuditEvent.action).where(AuditEvent.id == 4)) == "export"


def test_cli_export_of_a_real_claim_trail_re_verifies(app, app_ctx, tmp_path, alumni, create_stakeholder,
                                                      monkeypatch):
    """Events written by the claim services (user actors, nested data, timestamps) too."""
    from survey.accounts.models import User
    from survey.campaigns.models import Invitation
    from survey.claims.models import Claim
    from survey.respond import services as respond
    from tests.campaigns.helpers import started_campaign
    from tests.claims.test_evidence_page import _vote

    members = [User(email=f"m{n}@staff.example", role="committee", password_hash="-") for n in range(2)]
    db.session.add_all(members)
    person = create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    invitation = db.session.scalar(select(Invitation).where(Invitation.campaign_id == campaign.id))
    respond.submit_response(invitation, {"activity": "employed_full_time", "outcomes": ["new_job", "raise"],
                                         "employer": "Café ☕"}, "en")
    db.session.commit()
    claim = db.session.scalars(select(Claim).where(Claim.stakeholder_id == person.id)).first()
    _vote(claim, members[0], "approve", "ok « fine »")
    out = tmp_path / "trail.jsonl"
    assert _cli(app, "export", "--out", str(out)).exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"claim_created", "transition", "assignment", "vote"} <= {line["action"] for line in lines}
    assert any(line["actor_id"] == members[0].id for line in lines)
    _reverify(lines)
