"""Two people acting on one claim at the same moment: the last two votes, or the last vote
and the chair's decision. Whoever comes second waits for the first to commit, then sees
what it did: the claim is decided once, and the one who came too late is told so.

These run on the database of the suite (PostgreSQL with TEST_DATABASE_URL, as in
production, where several workers write at once; SQLite otherwise). The two transactions
really overlap: the first has acted and keeps its transaction open while the second
starts, and commits only once the second waits for it (or has finished without waiting).
"""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text

from survey.audit.chain import verify
from survey.audit.models import AuditEvent
from survey.claims import services
from survey.claims.models import Claim, Review
from survey.core.errors import InvalidState, ServiceError
from survey.extensions import db
from tests.claims.test_services import member, review_of, reviewed, submit, vote  # noqa: F401  (fixtures)
from tests.conftest import at_once

#: how long the first transaction stays open for the second to run into it
WAIT = 10.0


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _waits_for_a_lock(pid: int) -> bool:
    """Whether the PostgreSQL backend ``pid`` is waiting for a lock (read on a connection
    of its own: another transaction's view of pg_stat_activity would not change)."""
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                                  {"pid": pid}).scalar() == "Lock"


def overlapping(app, first, second) -> dict[str, ServiceError | None]:
    """Run ``first`` and ``second`` (each: read what a page would, return the action) in
    two threads, each with its own session, their transactions overlapping as above.
    Returns what each action raised (None: it committed). On PostgreSQL, checks that the
    second did wait for the first: the two really overlapped."""
    acted, finished = threading.Event(), threading.Event()
    second_pid: list[int] = []
    waited: list[bool] = []
    outcome: dict[str, ServiceError | None] = {}

    def run(name, prepare, start) -> bool:
        action = prepare()
        start()
        try:
            action()
        except ServiceError as exc:
            db.session.rollback()
            outcome[name] = exc
            return False
        return True

    def run_first(ready) -> None:
        if not run("first", first, ready):
            acted.set()
            return
        acted.set()  # acted, not committed: its locks are held
        # SQLite shows no waits: a second is plenty for the second to run into the first
        deadline = time.monotonic() + (WAIT if _postgresql() else 1.0)
        while not finished.is_set() and time.monotonic() < deadline:
            if second_pid and _waits_for_a_lock(second_pid[0]):
                waited.append(True)
                time.sleep(0.1)  # well inside its wait
                break
            time.sleep(0.02)
        db.session.commit()
        outcome["first"] = None

    def run_second(ready) -> None:
        def start():
            ready()
            assert acted.wait(WAIT)
            if _postgresql():
                second_pid.append(db.session.execute(text("SELECT pg_backend_pid()")).scalar())

        try:
            if run("second", second, start):
                db.session.commit()
                outcome["second"] = None
        finally:
            finished.set()

    assert at_once(app, run_first, run_second, timeout=60) == []
    if _postgresql() and outcome.get("first", 0) is None:
        assert waited, "the second did not wait for the first: they did not overlap"
    return outcome


def vote_by(review_id: int, verdict: str, comment: str = ""):
    def prepare():
        review = db.session.get(Review, review_id)
        reviewer, claim = review.reviewer, review.claim
        assert [r.verdict for r in claim.reviews]  # the page read the claim and its votes
        return lambda: services.record_vote(review, verdict, comment, reviewer=reviewer)
    return prepare


def chair_decides(claim_id: int, chair_id: int, to: str, reason: str):
    def prepare():
        from survey.accounts.models import User

        claim, chair = db.session.get(Claim, claim_id), db.session.get(User, chair_id)
        assert [r.verdict for r in claim.reviews]  # the page read the claim and its votes
        return lambda: services.chair_decide(claim, to, reason, chair=chair)
    return prepare


def decisions(claim_id: int) -> list[tuple[str, str, str]]:
    """The claim's transitions after it went to review: (who, from, to)."""
    return [(event.actor, event.from_state, event.to_state) for event in db.session.scalars(
        select(AuditEvent).where(AuditEvent.subject == f"claim:{claim_id}", AuditEvent.action == "transition")
        .order_by(AuditEvent.id)) if event.from_state != "submitted"]


def test_the_last_two_approvals_at_once_prove_the_claim_once(app, reviewed):
    claim = reviewed.claim
    first, second = review_of(claim, reviewed.a).id, review_of(claim, reviewed.b).id
    db.session.commit()

    outcome = overlapping(app, vote_by(first, "approve"), vote_by(second, "approve"))

    assert outcome == {"first": None, "second": None}  # both votes count
    db.session.expire_all()
    claim = db.session.get(Claim, claim.id)
    assert [r.verdict for r in claim.reviews] == ["approve", "approve"]
    assert claim.state == "proven" and claim.decided_at is not None  # never left in review, unsettled
    assert decisions(claim.id) == [("policy", "in_review", "proven")]
    assert verify().ok


@pytest.mark.parametrize("first", ["the last vote", "the chair"])
def test_the_last_vote_and_the_chairs_decision_at_once_decide_the_claim_once(app, reviewed, first):
    claim, chair = reviewed.claim, reviewed.chair
    vote(claim, reviewed.a, "approve")
    last_vote = vote_by(review_of(claim, reviewed.b).id, "approve")
    decision = chair_decides(claim.id, chair.id, "rejected", "the employer denies it")
    db.session.commit()

    if first == "the last vote":
        outcome = overlapping(app, last_vote, decision)
        expected, decided = "proven", [("policy", "in_review", "proven")]
        refusal = "A claim that is proven cannot become rejected"
    else:
        outcome = overlapping(app, decision, last_vote)
        expected, decided = "rejected", [(f"user:{chair.id}", "in_review", "rejected")]
        refusal = "This claim is rejected: it takes no vote now"

    # The first one wins; the second is refused by name, as if it came a minute later.
    assert outcome["first"] is None
    assert isinstance(outcome["second"], InvalidState) and refusal in str(outcome["second"])
    db.session.expire_all()
    claim = db.session.get(Claim, claim.id)
    assert claim.state == expected
    assert decisions(claim.id) == decided  # one decision in the trail: the one that stands
    assert claim.decided_by_id == (chair.id if expected == "rejected" else None)
    assert verify().ok


LATE = {
    "the other reviewer votes": (
        lambda s: services.record_vote(review_of(s.claim, s.b), "approve", "", reviewer=s.b),
        "This claim is rejected: it takes no vote now"),
    "the chair decides again": (
        lambda s: services.chair_decide(s.claim, "proven", "the contract is genuine", chair=s.chair),
        "A claim that is rejected cannot become proven"),
    "the chair reassigns": (
        lambda s: services.reassign(s.claim, review_of(s.claim, s.b), chair=s.chair, to=s.spare),
        "Only a claim under review can be reassigned"),
    "the respondent withdraws": (
        lambda s: services.withdraw(s.claim), "A claim that is rejected cannot become withdrawn"),
    "the respondent adds evidence": (
        lambda s: services.add_link_evidence(s.claim, "https://acme.example/team", actor="respondent"),
        "This claim is rejected: it takes no more evidence"),
}


@pytest.mark.parametrize("late", sorted(LATE))
def test_what_a_page_read_before_a_decision_made_elsewhere_is_refused(app, reviewed, late):
    """The same, one after the other: this session read the claim in review (a page
    opened a minute ago), the chair rejected it elsewhere since; acting on what the page
    read is refused by name and changes nothing."""
    act, refusal = LATE[late]
    claim = reviewed.claim
    vote(claim, reviewed.a, "approve")
    assert claim.state == "in_review" and [r.verdict for r in claim.reviews] == ["approve", None]
    with app.app_context():  # elsewhere
        from survey.accounts.models import User

        elsewhere = db.session.get(Claim, claim.id)
        services.chair_decide(elsewhere, "rejected", "the employer denies it",
                              chair=db.session.get(User, reviewed.chair.id))
        db.session.commit()
    before = db.session.scalar(select(db.func.count()).select_from(AuditEvent))

    with pytest.raises(InvalidState, match=refusal):
        act(reviewed)
    db.session.rollback()
    assert db.session.scalar(select(db.func.count()).select_from(AuditEvent)) == before
    claim = db.session.get(Claim, claim.id)
    assert (claim.state, len(claim.evidence)) == ("rejected", 0)
    assert [(r.reviewer_id, r.active, r.verdict) for r in claim.reviews] == [
        (reviewed.a.id, True, "approve"), (reviewed.b.id, True, None)]
    assert decisions(claim.id) == [(f"user:{reviewed.chair.id}", "in_review", "rejected")]
