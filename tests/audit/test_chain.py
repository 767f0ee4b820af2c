"""The audit chain: appended in order, verified from the start, and any edit,
deletion or insertion is found at the first broken link."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, select, text, update

from survey.audit.chain import record, verify
from survey.audit.models import AuditEvent, AuditReason
from survey.extensions import db
from tests.conftest import at_once


def _events(count: int) -> None:
    for number in range(count):
        record("transition", f"claim:{number}", actor="system", from_state="submitted", to_state="in_review",
               reason=f"reason {number}", data={"n": number, "text": "é"})
    db.session.commit()


def _tamper(*statements) -> None:
    """What a database administrator could do: on PostgreSQL only after disabling the
    triggers that keep the tables append-only."""
    postgres = db.session.get_bind().dialect.name == "postgresql"
    triggers = (("audit_events", "audit_events_append_only"), ("audit_reasons", "audit_reasons_never_rewritten"))
    if postgres:
        for table, trigger in triggers:
            db.session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
    for statement in statements:
        db.session.execute(statement)
    if postgres:
        for table, trigger in triggers:
            db.session.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
    db.session.commit()
    db.session.expire_all()


def test_an_untouched_chain_verifies(app_ctx):
    _events(7)
    result = verify(batch=3)  # across several batches
    assert (result.ok, result.checked, result.broken_id) == (True, 7, None)


def test_an_empty_chain_verifies(app_ctx):
    assert verify().ok


@pytest.mark.parametrize("change", [
    {"reason": "a different reason"},
    {"reason_hash": "0" * 64},
    {"to_state": "proven"},
    {"data": {"n": 3, "text": "é", "extra": 1}},
    {"actor": "user:1"},
])
def test_an_edited_event_is_the_first_broken_link(app_ctx, change):
    _events(6)
    _tamper(update(AuditEvent).where(AuditEvent.id == 4).values(**change))
    result = verify()
    assert (result.ok, result.broken_id, result.checked) == (False, 4, 3)
    assert "hash" in result.problem


def test_a_deleted_event_is_found(app_ctx):
    _events(6)
    _tamper(delete(AuditReason).where(AuditReason.event_id == 3), delete(AuditEvent).where(AuditEvent.id == 3))
    result = verify()
    assert (result.ok, result.broken_id) == (False, 3)


def test_deleting_the_last_events_is_found_too(app_ctx):
    _events(6)
    _tamper(delete(AuditReason).where(AuditReason.event_id >= 5), delete(AuditEvent).where(AuditEvent.id >= 5))
    result = verify()
    assert not result.ok and result.broken_id == 5


def test_a_reason_written_about_a_claim_is_kept_apart_and_a_system_reason_is_not(app_ctx, create_user):
    member = create_user(role="committee")
    record("vote", "claim:1", actor="system", reason="his manager confirmed it")
    record("transition", "claim:1", actor="policy", reason="committee votes: approve, approve")
    record("publish", "report:x", actor="system", reason="a correction")
    record("vote", "claim:1", actor=member, reason="new evidence")  # a person's words, whatever they say
    record("transition", "claim:1", actor="policy", reason="new evidence")  # the policy quoting a member
    record("transition", "claim:1", actor="respondent", reason="new evidence")  # the system's words
    db.session.commit()
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(event.reason, event.written_reason) for event in events] == [
        ("", "his manager confirmed it"),
        ("committee votes: approve, approve", "committee votes: approve, approve"),
        ("a correction", "a correction"),
        ("", "new evidence"),
        ("", "new evidence"),
        ("new evidence", "new evidence")]
    assert events[0].reason_hash is not None and events[1].reason_hash is None


def test_a_rewritten_reason_is_found(app_ctx):
    _events(4)
    _tamper(update(AuditReason).where(AuditReason.event_id == 3).values(text="something else"))
    result = verify()
    assert (result.ok, result.broken_id, result.problem) == (False, 3, "its reason does not match its hash")


def test_a_reason_deleted_by_no_erasure_is_found_and_one_an_erasure_lists_is_not(app_ctx):
    """Deleting a kept reason takes no trigger to disable (erasure must be able to): the
    erasure's own event lists what it deleted, and a reason missing for no erasure is a
    broken link (found in review: a chair's reason could vanish unnoticed)."""
    from survey.audit.chain import REASONS_ERASED, erase_reasons

    _events(5)
    db.session.execute(delete(AuditReason).where(AuditReason.event_id == 3))
    db.session.commit()
    result = verify()
    assert (result.ok, result.broken_id, result.problem, result.through_id) == (
        False, 3, "its reason was deleted, and no erasure says so", 2)

    erased = erase_reasons([2, 4])  # what an erasure does, and says
    record("erasure", "person:1", actor="cli", data={REASONS_ERASED: erased})
    db.session.commit()
    assert erased == [2, 4]
    assert verify().broken_id == 3  # still unexplained
    record("erasure", "person:2", actor="cli", data={REASONS_ERASED: [3]})
    db.session.commit()
    assert verify().ok
    assert db.session.get(AuditEvent, 3).written_reason is None


def test_postgresql_refuses_to_rewrite_a_kept_reason(app_ctx):
    if db.session.get_bind().dialect.name != "postgresql":
        pytest.skip("the trigger exists on PostgreSQL (the suite also runs there in CI)")
    _events(2)
    with pytest.raises(Exception, match="never rewritten"):
        db.session.execute(update(AuditReason).values(text="x"))
    db.session.rollback()
    db.session.execute(delete(AuditReason))  # erasure must be able to; the chain then asks for its event
    db.session.commit()
    assert verify().problem == "its reason was deleted, and no erasure says so"


def test_postgresql_refuses_to_change_or_delete_an_event(app_ctx):
    if db.session.get_bind().dialect.name != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL (the suite also runs there in CI)")
    _events(2)
    for statement in (update(AuditEvent).values(reason="x"), delete(AuditEvent)):
        with pytest.raises(Exception, match="append-only"):
            db.session.execute(statement)
        db.session.rollback()
    assert verify().ok


def test_concurrent_appends_never_fork_the_chain(app):
    def append(worker: int) -> None:
        with app.app_context():
            for number in range(10):
                record("vote", f"claim:{worker}", actor="system", data={"n": number})
                db.session.commit()
            db.session.remove()

    with app.app_context():
        _events(1)
    threads = [threading.Thread(target=append, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context():
        result = verify()
        assert (result.ok, result.checked) == (True, 41)


def test_the_first_events_written_at_once_start_one_chain(app):
    # The first event creates the chain's head: two at once (respondents answering the
    # moment a campaign opens) must not both try, failing one answer with a 500.
    def append(worker: int):
        def run(ready) -> None:
            ready()
            record("claim_created", f"claim:{worker}", actor="respondent")
            db.session.commit()
        return run

    with app.app_context():
        assert db.session.query(AuditEvent).count() == 0
    assert at_once(app, *(append(worker) for worker in range(4))) == []
    with app.app_context():
        result = verify()
        assert (result.ok, result.checked) == (True, 4)
