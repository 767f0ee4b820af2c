"""Whole-chain checks, kept: beat asks for one every AUDIT_CHECK_INTERVAL, the CLI keeps
its own, and the trail's page builds on the last one, recomputing only later events."""
from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from survey.audit import chain, checks
from survey.audit.chain import record, verify
from survey.audit.models import AuditCheck, AuditEvent
from survey.core.types import utcnow
from survey.extensions import db
from tests.audit.test_chain import _events, _tamper


@pytest.fixture
def client(english_client):
    return english_client


@pytest.fixture
def auditor(client, create_user, login):
    return login(create_user("auditor"))


def _trail(client) -> str:
    page = client.get("/audit/")
    assert page.status_code == 200
    return re.sub(r"\s+", " ", page.get_data(as_text=True))


def _check(run_by="beat") -> AuditCheck:
    check = checks.start_check(run_by)
    db.session.commit()
    return checks.run_check(check.id)


def test_the_page_recomputes_only_the_events_after_the_last_check(app_ctx, auditor, monkeypatch):
    _events(5)
    first = _check("cli")
    assert (first.ok, first.checked, first.through_id) == (True, 5, 5)
    _events(3)
    recomputed = []
    real = checks.verify
    monkeypatch.setattr(checks, "verify", lambda **kw: recomputed.append(kw) or real(**kw))
    html = _trail(auditor)
    assert "The chain is intact." in html and "8 events checked from the first: every hash matches." in html
    assert f"Last check of the whole chain from its first event: {first.finished_at:%Y-%m-%d %H:%M} UTC (flask audit verify)." in html
    assert "The 3 events written since were checked now." in html
    assert recomputed == [{"after": (5, first.through_hash)}]


def test_an_event_changed_after_the_last_check_shows_at_once(app_ctx, auditor):
    _events(5)
    _check()
    _events(3)
    _tamper(update(AuditEvent).where(AuditEvent.id == 7).values(reason="rewritten"))
    html = _trail(auditor)
    assert "The chain is broken at event 7: its content does not match its hash." in html
    assert "6 events before it are intact." in html


def test_an_event_changed_before_the_last_check_shows_at_the_next_check(app_ctx, auditor):
    _events(5)
    _check()
    _tamper(update(AuditEvent).where(AuditEvent.id == 2).values(reason="rewritten"))
    html = _trail(auditor)  # the page trusts the last check for the events it covered, and says when it ran
    assert "The chain is intact." in html and "Events before it are checked again at the next" in html
    second = _check()
    assert (second.ok, second.broken_id) == (False, 2)
    html = _trail(auditor)
    assert "The chain is broken at event 2: its content does not match its hash." in html
    assert f"Found by the check of the whole chain of {second.finished_at:%Y-%m-%d %H:%M} UTC (scheduled)" in html


def test_beat_asks_for_a_check_when_none_ran_for_the_interval_or_one_died(app_ctx, app):
    assert checks.check_due()  # never checked
    _events(2)
    _check()
    assert not checks.check_due()
    db.session.execute(update(AuditCheck).values(finished_at=utcnow() - timedelta(days=2)))
    db.session.commit()
    assert checks.check_due()  # the last one is older than AUDIT_CHECK_INTERVAL (a day)
    asked = checks.start_check("beat")
    db.session.commit()
    assert not checks.check_due()  # one is under way: no second one
    db.session.execute(update(AuditCheck).where(AuditCheck.id == asked.id)
                       .values(started_at=utcnow() - timedelta(seconds=app.config["AUDIT_CHECK_LEASE"] + 1)))
    db.session.commit()
    assert checks.check_due()  # its worker died: ask again


def test_a_check_run_twice_keeps_its_first_result(app_ctx):
    _events(3)
    check = _check()
    finished = check.finished_at
    _events(1)
    assert checks.run_check(check.id) is None  # the task delivered a second time
    db.session.expire_all()
    assert (db.session.get(AuditCheck, check.id).checked, db.session.get(AuditCheck, check.id).finished_at) == (
        3, finished)


def test_events_written_while_a_check_runs_are_left_to_the_next(app, monkeypatch):
    """The check covers the chain as its head stood when it began: an event appended while
    it runs (head and event in one commit) is left whole to the next check, never half seen."""
    with app.app_context():
        if db.session.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite lets no one commit while the check reads (the suite also runs on PostgreSQL in CI)")
        _events(4)
    appended = threading.Event()

    def append() -> None:
        with app.app_context():
            record("vote", "claim:9", actor="system")
            db.session.commit()
            db.session.remove()
        appended.set()

    with app.app_context():
        real = chain._digest
        checking = threading.current_thread()

        def digest_then_append(*args):  # the appender hashes its event too: only the check waits
            if threading.current_thread() is checking and not appended.is_set():
                threading.Thread(target=append).start()
                assert appended.wait(10)
            return real(*args)

        monkeypatch.setattr(chain, "_digest", digest_then_append)
        result = verify(batch=2)
        monkeypatch.undo()
        assert (result.ok, result.checked) == (True, 4)
        assert verify().checked == 5 and db.session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc())) == 5


def test_the_cli_keeps_its_check(app, app_ctx):
    _events(4)
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.output.strip() == "audit chain OK: 4 events"
    kept = checks.last_check()
    assert (kept.run_by, kept.ok, kept.checked, kept.through_id) == ("cli", True, 4, 4)


def test_a_real_beat_and_worker_check_the_chain(app, app_ctx, background):
    _events(6)
    background.worker()
    background.beat()
    deadline = utcnow() + timedelta(seconds=60)
    while checks.last_check() is None:
        assert utcnow() < deadline, "beat and the worker did not check the chain"
        db.session.expire_all()
        time.sleep(0.2)
    kept = checks.last_check()
    assert (kept.run_by, kept.ok, kept.checked) == ("beat", True, 6)
