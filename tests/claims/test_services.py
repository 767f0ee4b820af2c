"""Claim services, called directly: claims made from answers, reviewers assigned,
votes, the policy, the chair, evidence requests, conflicts, reassignment,
withdrawal, revocation and who may read a claim."""
from __future__ import annotations

import hashlib
import io
import itertools
import re
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from survey.accounts.models import User
from survey.audit.chain import verify
from survey.audit.models import AuditEvent
from survey.campaigns.models import Invitation, Response
from survey.claims import services
from survey.claims.models import Claim, Conflict, Review
from survey.core.errors import InvalidState, NotFound, PermissionDenied, ValidationFailed
from survey.core.tokens import hash_token
from survey.extensions import db
from survey.mail.models import OutboxMessage
from survey.reports.document import Selection
from survey.reports.models import SnapshotClaim
from survey.reports.publishing import publish
from survey.respond import services as respond
from survey.respond.uploads import store_upload
from tests.campaigns.helpers import started_campaign

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
LINK = "https://www.linkedin.example/in/ada"
_seq = itertools.count(1)


# ---------------------------------------------------------------------- helpers

@pytest.fixture
def member(app_ctx):
    """A staff user, made directly (no password hashing: these tests never log in)."""

    def make(role="committee", *, email=None, active=True, **attributes) -> User:
        user = User(email=email or f"{role}{next(_seq)}@staff.example", name="", role=role,
                    password_hash="-", active=active, attributes=attributes)
        db.session.add(user)
        db.session.commit()
        return user

    return make


@pytest.fixture
def submit(alumni, monkeypatch):
    """``person`` answers a new identified (or other) campaign; returns their claims."""

    def do(person, outcomes=("new_job",), *, privacy="identified", **answers) -> list[Claim]:
        campaign = started_campaign(alumni, monkeypatch, privacy=privacy, name=f"Alumni {next(_seq)}")
        invitation = db.session.scalar(select(Invitation).where(
            Invitation.campaign_id == campaign.id, Invitation.stakeholder_id == person.id))
        answers = {"activity": "employed_full_time", "outcomes": list(outcomes), **answers}
        response = respond.submit_response(invitation, answers, person.locale)
        db.session.commit()
        return claims_of(response)

    return do


def claims_of(response: Response) -> list[Claim]:
    return db.session.scalars(select(Claim).where(Claim.response_id == response.id).order_by(Claim.id)).all()


def events(claim: Claim, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.subject == f"claim:{claim.id}").order_by(AuditEvent.id)
    if action:
        query = query.where(AuditEvent.action == action)
    return db.session.scalars(query).all()


def audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent))


def reviewers(claim: Claim) -> list[int]:
    """The ids of the claim's active reviewers, in the order they were assigned."""
    db.session.refresh(claim)
    return [review.reviewer_id for review in claim.reviews if review.active]


def review_of(claim: Claim, user: User) -> Review:
    return db.session.scalar(select(Review).where(Review.claim_id == claim.id, Review.reviewer_id == user.id))


def vote(claim: Claim, user: User, verdict: str, comment: str = "") -> None:
    services.record_vote(review_of(claim, user), verdict, comment, reviewer=user)
    db.session.commit()


@pytest.fixture
def reviewed(member, create_stakeholder, submit):
    """One claim in review by two committee members (plus one spare member and a chair)."""

    class Setup:
        a, b, spare = member(), member(), member()
        chair = member("chair")
        person = create_stakeholder()
        [claim] = submit(person)

    assert reviewers(Setup.claim) == [Setup.a.id, Setup.b.id]
    return Setup


# ---------------------------------------------------------------------- creation

def test_an_identified_submission_makes_one_claim_per_claimed_outcome(member, create_stakeholder, submit):
    member(), member()
    person = create_stakeholder()
    stored = store_upload(FileStorage(io.BytesIO(PDF), filename="contract.pdf"))
    claims = submit(person, ["new_job", "raise", "none"], attribution=4, employer="Acme", role="Engineer",
                    start_date="2025-03-01", salary_change=12, comment="Thanks to the course",
                    business_name="", evidence_link=LINK, evidence_file=stored, consent_contact=True)

    assert [claim.outcome_type for claim in claims] == ["new_job", "raise"]
    for claim in claims:
        assert (claim.state, claim.stakeholder_id, claim.attribution) == ("in_review", person.id, 4)
        assert claim.details == {"employer": "Acme", "role": "Engineer", "start_date": "2025-03-01",
                                 "salary_change": 12, "comment": "Thanks to the course"}
        assert claim.token_hash == hash_token(services.claim_token(claim.token_nonce))
        file, link = claim.evidence
        assert (file.kind, file.stored_as, file.filename, file.media_type, file.size) == (
            "file", stored["stored_as"], "contract.pdf", "application/pdf", len(PDF))
        assert file.sha256 == hashlib.sha256(PDF).hexdigest()
        assert (link.kind, link.url, link.sha256) == ("link", LINK, hashlib.sha256(LINK.encode()).hexdigest())
        assert len(reviewers(claim)) == 2

        trail = events(claim)
        assert [event.action for event in trail] == [
            "claim_created", "evidence_added", "evidence_added", "transition", "assignment", "assignment"]
        created = trail[0]
        assert (created.actor, created.to_state, created.data["outcome_type"]) == (
            "respondent", "submitted", claim.outcome_type)
        assert [event.data["sha256"] for event in trail[1:3]] == [file.sha256, link.sha256]
        assert (trail[3].actor, trail[3].from_state, trail[3].to_state) == ("system", "submitted", "in_review")
        assert {event.data["reviewer"] for event in trail[4:]} == set(reviewers(claim))
    assert claims[0].token_hash != claims[1].token_hash
    assert verify().ok


def test_an_attribution_that_is_not_a_number_is_not_kept(member, create_stakeholder, submit):
    [claim] = submit(create_stakeholder(), ["promotion"], attribution="a lot")
    assert claim.attribution is None and claim.details == {} and claim.evidence == []


@pytest.mark.parametrize("outcomes", [["none"], []])
def test_no_claimed_outcome_makes_no_claim(member, create_stakeholder, submit, outcomes):
    member()
    assert submit(create_stakeholder(), outcomes) == []
    assert db.session.scalar(select(func.count()).select_from(Claim)) == 0


@pytest.mark.parametrize("privacy", ["confidential", "anonymous"])
def test_a_private_campaign_makes_no_claim(member, create_stakeholder, submit, privacy):
    member(), member()
    assert submit(create_stakeholder(), ["new_job", "raise"], privacy=privacy, evidence_link=LINK) == []
    assert db.session.scalar(select(func.count()).select_from(Claim)) == 0
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.subject.not_like("campaign:%"))) == 0  # no claim event


# ---------------------------------------------------------------------- assignment

def test_reviewers_are_balanced_by_their_open_load(member, create_stakeholder, submit, app, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEWERS_PER_CLAIM", 2)
    a, b = member(), member()
    c, d = member(active=False), member(active=False)
    person = create_stakeholder()
    first = submit(person)[0]
    second = submit(person)[0]
    assert reviewers(first) == reviewers(second) == [a.id, b.id]  # the only active members

    c.active = True
    db.session.commit()
    third = submit(person)[0]
    assert reviewers(third) == [c.id, a.id]  # loads a 2, b 2, c 0: c first, then the lowest id of equals

    d.active = True
    db.session.commit()
    fourth = submit(person)[0]
    assert reviewers(fourth) == [d.id, c.id]  # loads a 3, b 2, c 1, d 0

    for claim in (first, second, third):  # a's votes empty a's queue: a 0, b 2, c 2, d 1
        vote(claim, a, "approve")
    fifth = submit(person)[0]
    assert reviewers(fifth) == [a.id, d.id]


def test_the_claims_of_one_answer_are_shared_out_among_the_committee(member, create_stakeholder, submit, app,
                                                                   monkeypatch):
    """Two outcomes claimed in one answer: the second claim goes to the members the first
    one did not load."""
    monkeypatch.setitem(app.config, "REVIEWERS_PER_CLAIM", 2)
    a, b, c, d = member(), member(), member(), member()
    new_job, raise_ = submit(create_stakeholder(), ["new_job", "raise"])
    assert reviewers(new_job) == [a.id, b.id]
    assert reviewers(raise_) == [c.id, d.id]


@contextmanager
def another_process(app):
    """What runs inside is done as by another web process: with its own count of the
    members' open reviews (each process keeps its own, in its app's extensions)."""
    mine = app.extensions.pop(services._LOAD, None)
    try:
        yield
    finally:
        app.extensions.pop(services._LOAD, None)
        if mine is not None:
            app.extensions[services._LOAD] = mine


def test_another_process_s_assignments_count_once_the_load_is_counted_again(member, create_stakeholder, submit,
                                                                            app, monkeypatch):
    """Each web process keeps its count of the members' open reviews for
    REVIEWER_LOAD_SECONDS (counting is a scan of the whole backlog), adding its own
    assignments; what other processes assign meanwhile shows at its next count."""
    clock = [1000.0]
    monkeypatch.setattr(services.time, "monotonic", lambda: clock[0])
    monkeypatch.setitem(app.config, "REVIEWERS_PER_CLAIM", 1)
    a, b = member(), member()
    person = create_stakeholder()
    assert reviewers(submit(person)[0]) == [a.id]  # counted: a 0, b 0; then a 1

    b.active = False  # away while another web process takes three answers: all go to a
    db.session.commit()
    with another_process(app):
        assert [reviewers(submit(person)[0]) for _ in range(3)] == [[a.id]] * 3
    b.active = True
    db.session.commit()

    clock[0] += app.config["REVIEWER_LOAD_SECONDS"] - 1
    assert reviewers(submit(person)[0]) == [b.id]  # this process's own count: a 1, b 0
    assert reviewers(submit(person)[0]) == [a.id]  # a 1, b 1: it has not seen a's other three yet
    clock[0] += 1
    assert reviewers(submit(person)[0]) == [b.id]  # counted again: a 5, b 1
    assert reviewers(submit(person)[0]) == [b.id]  # a 5, b 2


def test_a_decided_claim_no_longer_counts_in_the_load(member, create_stakeholder, submit):
    a, b = member(), member()
    person = create_stakeholder()
    first = submit(person)[0]
    services.withdraw(first)
    db.session.commit()
    member()  # would come first if a and b's unvoted reviews of the withdrawn claim still counted
    assert reviewers(submit(person)[0]) == [a.id, b.id]


def test_the_claimant_never_reviews_their_own_claim(member, create_stakeholder, submit):
    person = create_stakeholder(email="Grace.Hopper@Example.org")
    herself = member(email="grace.hopper@example.org")
    others = [member(), member()]
    for claim in submit(person, ["new_job", "promotion"]):
        assert reviewers(claim) == [user.id for user in others]
        assert services.excluded(herself, person) == "the reviewer is the claimant"


def test_the_mentor_never_reviews_their_mentee(member, create_stakeholder, submit, app, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEWER_EXCLUSIONS", "mentor=email")
    mentor, x, y = member(), member(), member()
    person = create_stakeholder(mentor=mentor.email.upper())
    [claim] = submit(person)
    assert reviewers(claim) == [x.id, y.id]
    assert services.excluded(mentor, person) == "exclusion rule: mentor"
    other = create_stakeholder(mentor="")
    assert services.excluded(mentor, other) is None


@pytest.mark.parametrize("rule, theirs, mine", [
    ("cohort", {"cohort": " 2024-a"}, {"cohort": "2024-A"}),                 # the same attribute on both sides
    ("mentor=email, department=team", {"department": "Data"}, {"team": "data"}),  # one of several rules
])
def test_a_shared_attribute_excludes_the_member(member, create_stakeholder, submit, app, monkeypatch,
                                                rule, theirs, mine):
    monkeypatch.setitem(app.config, "REVIEWER_EXCLUSIONS", rule)
    colleague = member()
    colleague.attributes = mine
    stranger = member()
    stranger.attributes = {key: "something else" for key in mine}
    nobody = member()  # no attributes at all
    db.session.commit()
    person = create_stakeholder(**theirs)
    [claim] = submit(person)
    assert reviewers(claim) == [stranger.id, nobody.id]
    assert services.excluded(colleague, person).startswith("exclusion rule")


def test_only_active_committee_members_review(member, create_stakeholder, submit):
    for role in ("admin", "chair", "auditor"):
        member(role)
    member(active=False)
    only = member()
    [claim] = submit(create_stakeholder())
    assert reviewers(claim) == [only.id]  # fewer than REVIEWERS_PER_CLAIM: as many as there are
    assert claim.state == "in_review"


def test_no_eligible_member_at_all_leaves_the_claim_in_review_unassigned(member, create_stakeholder, submit):
    member("chair")
    claims = submit(create_stakeholder(), ["new_job", "raise"])
    assert [(claim.state, reviewers(claim)) for claim in claims] == [("in_review", []), ("in_review", [])]
    assert verify().ok


# ---------------------------------------------------------------------- votes

def test_a_vote_by_someone_else_is_refused(reviewed):
    claim = reviewed.claim
    before = audit_count()
    for intruder in (reviewed.spare, reviewed.chair):
        with pytest.raises(NotFound):
            services.record_vote(review_of(claim, reviewed.a), "approve", "", reviewer=intruder)
    db.session.rollback()
    assert review_of(claim, reviewed.a).verdict is None and audit_count() == before


def test_a_vote_on_an_inactive_review_is_refused(reviewed):
    claim = reviewed.claim
    services.reassign(claim, review_of(claim, reviewed.a), chair=reviewed.chair)
    db.session.commit()
    before = audit_count()
    with pytest.raises(NotFound):
        services.record_vote(review_of(claim, reviewed.a), "approve", "", reviewer=reviewed.a)
    db.session.rollback()
    assert review_of(claim, reviewed.a).verdict is None and audit_count() == before


def test_a_second_vote_is_refused(reviewed):
    claim = reviewed.claim
    vote(claim, reviewed.a, "approve")
    before = audit_count()
    with pytest.raises(InvalidState, match="already voted"):
        services.record_vote(review_of(claim, reviewed.a), "reject", "changed my mind", reviewer=reviewed.a)
    db.session.rollback()
    review = review_of(claim, reviewed.a)
    assert (review.verdict, review.comment, audit_count(), claim.state) == ("approve", "", before, "in_review")


def test_a_vote_on_a_claim_not_in_review_is_refused(reviewed):
    claim = reviewed.claim
    services.withdraw(claim)
    db.session.commit()
    before = audit_count()
    with pytest.raises(InvalidState, match="withdrawn"):
        services.record_vote(review_of(claim, reviewed.a), "approve", "", reviewer=reviewed.a)
    db.session.rollback()
    assert review_of(claim, reviewed.a).verdict is None and audit_count() == before


@pytest.mark.parametrize("verdict, comment", [
    ("reject", ""), ("reject", "   "), ("need_evidence", ""), ("need_evidence", "\n"), ("maybe", "why not"),
])
def test_a_vote_needs_a_known_verdict_and_a_reason_to_say_no(reviewed, verdict, comment):
    claim = reviewed.claim
    before = audit_count()
    with pytest.raises(ValidationFailed):
        services.record_vote(review_of(claim, reviewed.a), verdict, comment, reviewer=reviewed.a)
    db.session.rollback()
    assert review_of(claim, reviewed.a).verdict is None and audit_count() == before


def test_two_approvals_prove_the_claim(reviewed):
    claim = reviewed.claim
    vote(claim, reviewed.a, "approve", "  payslip checked ")
    assert (claim.state, claim.decided_at) == ("in_review", None)
    assert review_of(claim, reviewed.a).comment == "payslip checked"
    vote(claim, reviewed.b, "approve")
    assert claim.state == "proven" and claim.decided_at is not None and claim.decided_by_id is None
    decision = events(claim, "transition")[-1]
    assert (decision.actor, decision.actor_id, decision.from_state, decision.to_state) == (
        "policy", None, "in_review", "proven")
    assert [event.data["verdict"] for event in events(claim, "vote")] == ["approve", "approve"]
    assert [event.actor_id for event in events(claim, "vote")] == [reviewed.a.id, reviewed.b.id]
    assert verify().ok


def test_two_rejections_reject_the_claim(reviewed):
    claim = reviewed.claim
    vote(claim, reviewed.a, "reject", "the dates do not match")
    vote(claim, reviewed.b, "reject", "no employer named")
    assert claim.state == "rejected" and claim.decided_at is not None
    assert events(claim, "transition")[-1].actor == "policy"


@pytest.mark.parametrize("second", [("reject", "not convinced"), ("abstain", "")])
def test_a_split_waits_for_the_chair_who_must_give_a_reason(reviewed, second):
    claim, chair = reviewed.claim, reviewed.chair
    vote(claim, reviewed.a, "approve")
    assert not services.awaiting_chair(claim)  # a vote is still missing
    vote(claim, reviewed.b, *second)
    assert claim.state == "in_review" and services.awaiting_chair(claim)

    before = audit_count()
    for to, reason in (("proven", ""), ("proven", "  "), ("revoked", "because"), ("approved", "because")):
        with pytest.raises(ValidationFailed):
            services.chair_decide(claim, to, reason, chair=chair)
    db.session.rollback()
    assert (claim.state, audit_count()) == ("in_review", before)

    services.chair_decide(claim, "inconclusive", " the employer did not answer ", chair=chair)
    db.session.commit()
    assert (claim.state, claim.decided_by_id, claim.decision_reason) == (
        "inconclusive", chair.id, "the employer did not answer")
    decision = events(claim, "transition")[-1]
    assert (decision.actor, decision.actor_id, decision.written_reason) == (
        f"user:{chair.id}", chair.id, "the employer did not answer")
    assert not services.awaiting_chair(claim)


def test_the_chair_cannot_decide_a_decided_claim(reviewed):
    claim = reviewed.claim
    vote(claim, reviewed.a, "approve")
    vote(claim, reviewed.b, "approve")
    with pytest.raises(InvalidState):
        services.chair_decide(claim, "rejected", "second thoughts", chair=reviewed.chair)
    db.session.rollback()
    assert claim.state == "proven" and claim.decided_by_id is None


# ---------------------------------------------------------------------- evidence

def _outbox_requests(claim: Claim) -> list[OutboxMessage]:
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "evidence_request",
                                                          OutboxMessage.claim_id == claim.id)
                              .order_by(OutboxMessage.id)).all()


def test_need_evidence_asks_the_respondent(reviewed):
    claim = reviewed.claim
    vote(claim, reviewed.a, "need_evidence", "a payslip, please")
    assert claim.state == "in_review"  # the other vote is missing
    vote(claim, reviewed.b, "approve")
    assert claim.state == "needs_evidence" and not services.awaiting_chair(claim)
    [request] = _outbox_requests(claim)
    assert (request.invitation_id, request.sequence, request.status) == (
        claim.response.invitation_id, 1, "queued")
    decision = events(claim, "transition")[-1]
    assert (decision.actor, decision.to_state, decision.written_reason) == ("policy", "needs_evidence", "a payslip, please")
    with pytest.raises(InvalidState):  # nothing to vote on until the evidence comes
        services.chair_decide(claim, "proven", "fine", chair=reviewed.chair)


def test_new_evidence_starts_a_new_round_with_the_same_reviewers(reviewed):
    claim, a, b = reviewed.claim, reviewed.a, reviewed.b
    vote(claim, a, "need_evidence", "a payslip, please")
    vote(claim, b, "reject", "no contract")
    assert claim.state == "needs_evidence"

    services.add_contact_evidence(claim, "Jane Roe, HR, jane@acme.example", actor="respondent")
    db.session.commit()
    assert claim.state == "in_review"
    assert reviewers(claim) == [a.id, b.id]
    for review in claim.reviews:
        assert (review.verdict, review.voted_at, review.comment, review.round) == (None, None, "", 2)
    assert [(e.actor_id, e.data["verdict"]) for e in events(claim, "vote")] == [
        (a.id, "need_evidence"), (b.id, "reject")]  # the first round stays in the trail
    assert events(claim, "transition")[-1].reason == "new evidence"

    vote(claim, a, "approve")  # not "already voted": a new round
    vote(claim, b, "need_evidence", "now the contract too")
    assert claim.state == "needs_evidence"
    assert [request.sequence for request in _outbox_requests(claim)] == [1, 2]
    services.add_link_evidence(claim, LINK, actor="respondent")
    db.session.commit()
    vote(claim, a, "approve")
    vote(claim, b, "approve")
    assert claim.state == "proven"
    assert [(review.round, review.verdict) for review in claim.reviews] == [(3, "approve"), (3, "approve")]
    assert verify().ok


def test_evidence_added_during_review_changes_neither_state_nor_round(reviewed):
    claim = reviewed.claim
    vote(claim, reviewed.a, "approve")
    services.add_link_evidence(claim, LINK, actor="respondent")
    db.session.commit()
    assert claim.state == "in_review" and review_of(claim, reviewed.a).verdict == "approve"
    assert {review.round for review in claim.reviews} == {1}


@pytest.mark.parametrize("call, value", [
    (services.add_link_evidence, "javascript:alert(1)"),
    (services.add_link_evidence, "https://" + "x" * 2000),
    (services.add_contact_evidence, "   "),
])
def test_bad_evidence_is_refused(reviewed, call, value):
    before = audit_count()
    with pytest.raises(ValidationFailed):
        call(reviewed.claim, value, actor="respondent")
    assert audit_count() == before


def test_two_claims_of_one_answer_each_get_their_own_request(member, create_stakeholder, submit):
    a, b = member(), member()
    claims = submit(create_stakeholder(), ["new_job", "raise"])
    for claim in claims:
        vote(claim, a, "need_evidence", "more, please")
        vote(claim, b, "abstain")
    requests = [_outbox_requests(claim) for claim in claims]
    assert [[(r.invitation_id, r.sequence) for r in rows] for rows in requests] == [
        [(claims[0].response.invitation_id, 1)], [(claims[0].response.invitation_id, 2)]]


# ---------------------------------------------------------------------- conflicts and reassignment

def test_a_declared_conflict_hands_the_claim_to_someone_else_for_good(reviewed, submit, create_stakeholder):
    claim, a, spare = reviewed.claim, reviewed.a, reviewed.spare
    review = review_of(claim, a)
    with pytest.raises(NotFound):
        services.declare_conflict(review, "not mine", reviewer=spare)
    db.session.rollback()

    services.declare_conflict(review, " my neighbour ", reviewer=a)
    db.session.commit()
    assert not review.active and review.conflict_declared_at is not None
    conflict = db.session.scalar(select(Conflict))
    assert (conflict.user_id, conflict.stakeholder_id, conflict.reason) == (a.id, reviewed.person.id, "my neighbour")
    assert reviewers(claim) == [reviewed.b.id, spare.id]
    [declared] = events(claim, "conflict")
    assert (declared.actor_id, declared.written_reason) == (a.id, "my neighbour")
    assert events(claim, "assignment")[-1].data == {"reviewer": spare.id}
    with pytest.raises(NotFound):  # a stepped aside: no vote
        services.record_vote(review, "approve", "", reviewer=a)

    # a is now the least loaded member, and still never gets this person's claims
    for later in submit(reviewed.person, ["promotion", "raise", "business_created"]):
        assert a.id not in reviewers(later)
    [elsewhere] = submit(create_stakeholder())
    assert a.id in reviewers(elsewhere)  # only that person's claims
    assert verify().ok


def test_a_conflict_takes_the_member_off_every_open_claim_of_that_person(member, create_stakeholder, submit):
    a, b, c = member(), member(), member()
    first, second = submit(create_stakeholder(), ["new_job", "raise"])
    assert reviewers(first) == [a.id, b.id] and reviewers(second) == [c.id, a.id]

    services.declare_conflict(review_of(first, a), "my cousin", reviewer=a)
    db.session.commit()
    assert a.id not in reviewers(first) and a.id not in reviewers(second)
    assert not services.may_see_claim(a, second)
    assert db.session.scalar(select(func.count()).select_from(Conflict)) == 1
    assert len(events(second, "conflict")) == 1
    assert verify().ok


def test_a_conflict_with_nobody_left_to_review_leaves_fewer_reviewers(reviewed, create_stakeholder):
    claim = reviewed.claim
    services.declare_conflict(review_of(claim, reviewed.a), "", reviewer=reviewed.a)
    services.declare_conflict(review_of(claim, reviewed.spare), "", reviewer=reviewed.spare)
    db.session.commit()
    assert reviewers(claim) == [reviewed.b.id]
    vote(claim, reviewed.b, "approve")
    assert claim.state == "in_review" and services.awaiting_chair(claim)  # one approval: the chair settles


@pytest.mark.parametrize("per_claim, votes, expected", [
    (2, [("need_evidence", "a payslip")], "needs_evidence"),                    # one of two left, and done
    (3, [("need_evidence", "a payslip"), ("approve", "")], "needs_evidence"),
    (2, [("approve", "")], "in_review"),                                        # one approval: the chair
])
def test_a_conflict_that_completes_the_votes_lets_the_policy_decide(member, create_stakeholder, submit, app,
                                                                     monkeypatch, per_claim, votes, expected):
    monkeypatch.setitem(app.config, "REVIEWERS_PER_CLAIM", per_claim)
    team = [member() for _ in range(per_claim)]
    [claim] = submit(create_stakeholder())
    for user, (verdict, comment) in zip(team, votes):
        vote(claim, user, verdict, comment)
    leaving = team[len(votes)]
    services.declare_conflict(review_of(claim, leaving), "my brother", reviewer=leaving)
    db.session.commit()
    assert claim.state == expected  # never left in review with nobody to act on it
    assert services.awaiting_chair(claim) == (expected == "in_review")
    assert len(_outbox_requests(claim)) == (expected == "needs_evidence")


def test_the_chair_reassigns_to_a_chosen_member(reviewed):
    claim, chair = reviewed.claim, reviewed.chair
    new = services.reassign(claim, review_of(claim, reviewed.a), chair=chair, to=reviewed.spare)
    db.session.commit()
    assert new.reviewer_id == reviewed.spare.id and reviewers(claim) == [reviewed.b.id, reviewed.spare.id]
    assert [e.actor_id for e in events(claim)[-2:]] == [chair.id, chair.id]
    assert [e.action for e in events(claim)[-2:]] == ["unassignment", "assignment"]
    assert services.may_see_claim(reviewed.spare, claim)


def test_the_chair_cannot_reassign_to_an_ineligible_member(reviewed, member):
    claim, chair, person = reviewed.claim, reviewed.chair, reviewed.person
    conflicted = member()
    db.session.add(Conflict(user_id=conflicted.id, stakeholder_id=person.id, reason="friend"))
    candidates = [
        member(email=person.email),            # the claimant
        conflicted,                            # a declared conflict
        member(active=False),                  # no longer active
        member("auditor"),                     # not on the committee
        reviewed.b,                            # already reviewing it
    ]
    db.session.commit()
    before = audit_count()
    for candidate in candidates:
        with pytest.raises(ValidationFailed):
            services.reassign(claim, review_of(claim, reviewed.a), chair=chair, to=candidate)
        db.session.rollback()
    assert reviewers(claim) == [reviewed.a.id, reviewed.b.id] and audit_count() == before


def test_a_conflict_or_a_deactivation_not_yet_written_counts_for_eligibility(reviewed, member):
    """A change made earlier in the same transaction counts, not yet written or not."""
    claim, person = reviewed.claim, reviewed.person
    assert reviewed.spare in services.eligible_reviewers(claim)
    db.session.add(Conflict(user_id=reviewed.spare.id, stakeholder_id=person.id, reason="friend"))
    assert reviewed.spare not in services.eligible_reviewers(claim)
    db.session.rollback()
    later = member()
    db.session.commit()
    assert later in services.eligible_reviewers(claim)
    later.active = False
    assert later not in services.eligible_reviewers(claim)


def test_the_chair_reassigns_to_the_next_eligible_member(reviewed, member):
    claim, chair = reviewed.claim, reviewed.chair
    new = services.reassign(claim, review_of(claim, reviewed.b), chair=chair)
    db.session.commit()
    assert new.reviewer_id == reviewed.spare.id
    assert reviewers(claim) == [reviewed.a.id, reviewed.spare.id]
    # nobody left: refused by name
    with pytest.raises(services.NoReviewerAvailable):
        services.reassign(claim, review_of(claim, reviewed.a), chair=chair)
    db.session.rollback()
    assert reviewers(claim) == [reviewed.a.id, reviewed.spare.id]


def test_a_decided_claim_is_not_reassigned(reviewed):
    claim = reviewed.claim
    vote(claim, reviewed.a, "approve")
    vote(claim, reviewed.b, "approve")
    with pytest.raises(InvalidState):
        services.reassign(claim, review_of(claim, reviewed.a), chair=reviewed.chair, to=reviewed.spare)


def test_a_review_is_not_taken_away_twice(reviewed):
    claim = reviewed.claim
    services.reassign(claim, review_of(claim, reviewed.a), chair=reviewed.chair, to=reviewed.spare)
    db.session.commit()
    with pytest.raises(InvalidState, match="not reviewing"):
        services.reassign(claim, review_of(claim, reviewed.a), chair=reviewed.chair)


@pytest.mark.parametrize("to", ["spare", None])
def test_a_reviewer_who_voted_is_not_reassigned(reviewed, to):
    """Taking a rejection away and giving the claim to two approvers would prove it "by
    the policy" with a rejection on file: a vote cast stays; the chair decides instead."""
    claim, chair, a = reviewed.claim, reviewed.chair, reviewed.a
    vote(claim, a, "reject", "the payslip is not hers")
    before = audit_count()
    with pytest.raises(InvalidState, match="already voted on this claim"):
        services.reassign(claim, review_of(claim, a), chair=chair, to=reviewed.spare if to else None)
    db.session.rollback()
    assert reviewers(claim) == [a.id, reviewed.b.id] and review_of(claim, a).verdict == "reject"
    assert audit_count() == before
    # the one who has not voted yet may still be replaced
    services.reassign(claim, review_of(claim, reviewed.b), chair=chair, to=reviewed.spare)
    db.session.commit()
    assert reviewers(claim) == [a.id, reviewed.spare.id]


def _trace_votes(claim: Claim, chair: User) -> dict:
    """The votes the published trace shows for ``claim``."""
    snapshot = publish(chair, Selection(campaign_id=claim.campaign_id), "Impact report")
    db.session.commit()
    return db.session.scalar(select(SnapshotClaim.votes).where(SnapshotClaim.snapshot_id == snapshot.id,
                                                               SnapshotClaim.claim_id == claim.id))


def test_the_published_trace_shows_the_votes_that_decided_the_claim(reviewed):
    """A reviewer who rejected, then stepped aside (a conflict), did not decide the claim:
    the trace shows the two approvals that proved it, not a rejection that would say the
    policy proved a claim somebody rejected."""
    claim, a = reviewed.claim, reviewed.a
    vote(claim, a, "reject", "the dates do not match")
    services.declare_conflict(review_of(claim, a), "she is my cousin", reviewer=a)
    db.session.commit()
    assert reviewers(claim) == [reviewed.b.id, reviewed.spare.id]
    vote(claim, reviewed.b, "approve")
    vote(claim, reviewed.spare, "approve")
    assert claim.state == "proven" and claim.decided_by_id is None
    assert _trace_votes(claim, reviewed.chair) == {"approve": 2}


def test_a_conflict_declared_after_the_decision_leaves_its_vote_in_the_trace(reviewed):
    claim, a = reviewed.claim, reviewed.a
    vote(claim, a, "approve")
    vote(claim, reviewed.b, "approve")
    services.declare_conflict(review_of(claim, a), "I found out later", reviewer=a)
    db.session.commit()
    assert claim.state == "proven" and not review_of(claim, a).active
    assert _trace_votes(claim, reviewed.chair) == {"approve": 2}  # the votes that proved it


# ---------------------------------------------------------------------- the chair kept from a claim

@pytest.mark.parametrize("kept_by, refusal", [
    ("own claim", "This claim is your own"),
    ("declared conflict", "you declared a conflict of interest with this person"),
    ("exclusion rule", "an exclusion rule keeps you from their claims"),
])
def test_the_chair_may_not_settle_a_claim_a_member_could_not_review(member, create_stakeholder, submit, app,
                                                                    monkeypatch, kept_by, refusal):
    monkeypatch.setitem(app.config, "REVIEWER_EXCLUSIONS", "mentor=email")
    a, b = member(), member()
    chair = member("chair", email="Grace.Hopper@staff.example")
    if kept_by == "own claim":
        person = create_stakeholder(email="grace.hopper@STAFF.example")
    elif kept_by == "declared conflict":  # declared when the chair was a member
        person = create_stakeholder()
        db.session.add(Conflict(user_id=chair.id, stakeholder_id=person.id, reason="my cousin"))
        db.session.commit()
    else:
        person = create_stakeholder(mentor=chair.email)
    split, proven, untouched = (submit(person)[0] for _ in range(3))
    vote(split, a, "approve")
    vote(split, b, "abstain")
    vote(proven, a, "approve")
    vote(proven, b, "approve")
    assert services.awaiting_chair(split) and services.chair_excluded(chair, split) is not None

    before = audit_count()
    for refused in (lambda: services.chair_decide(split, "proven", "looks right to me", chair=chair),
                    lambda: services.revoke(proven, "second thoughts", chair=chair),
                    lambda: services.reassign(untouched, review_of(untouched, a), chair=chair)):
        with pytest.raises(PermissionDenied, match=refusal):
            refused()
        db.session.rollback()
    done, refusals = services.bulk_decide([split], "proven", "looks right to me", chair=chair)
    db.session.rollback()
    assert done == 0 and [line.split(":")[0] for line in refusals] == [f"#{split.id}"] and refusal in refusals[0]
    assert [claim.state for claim in (split, proven, untouched)] == ["in_review", "proven", "in_review"]
    assert reviewers(untouched) == [a.id, b.id] and audit_count() == before

    # another chair, kept from nothing, settles it
    other = member("chair")
    services.chair_decide(split, "proven", "the contract is genuine", chair=other)
    db.session.commit()
    assert (split.state, split.decided_by_id) == ("proven", other.id)


# ---------------------------------------------------------------------- the chair's other powers

def test_bulk_decide_decides_what_it_can_and_names_the_rest(member, create_stakeholder, submit):
    a, b, chair = member(), member(), member("chair")
    person = create_stakeholder()
    waiting, proven, withdrawn = (submit(person)[0] for _ in range(3))
    vote(waiting, a, "approve")
    vote(waiting, b, "abstain")
    vote(proven, a, "approve")
    vote(proven, b, "approve")
    services.withdraw(withdrawn)
    db.session.commit()

    done, refused = services.bulk_decide([waiting, proven, withdrawn], "rejected", "insufficient", chair=chair)
    db.session.commit()
    assert done == 1
    assert [line.split(":")[0] for line in refused] == [f"#{proven.id}", f"#{withdrawn.id}"]
    db.session.expire_all()
    assert [claim.state for claim in (waiting, proven, withdrawn)] == ["rejected", "proven", "withdrawn"]
    assert waiting.decided_by_id == chair.id and proven.decided_by_id is None

    done, refused = services.bulk_decide([proven], "rejected", "", chair=chair)
    assert (done, len(refused)) == (0, 1) and "reason" in refused[0]
    assert verify().ok


def _claim_in(state, reviewed, submit) -> Claim:
    """A claim of ``reviewed.person`` brought to ``state`` through the services."""
    if state == "submitted":  # no service stores a claim submitted (it is written in review): set back
        [claim] = submit(reviewed.person, ["raise"])
        claim.state = "submitted"
        db.session.commit()
        return claim
    claim = reviewed.claim
    steps = {
        "in_review": [],
        "needs_evidence": [("a", "need_evidence", "more"), ("b", "approve", "")],
        "proven": [("a", "approve", ""), ("b", "approve", "")],
        "rejected": [("a", "reject", "no"), ("b", "reject", "no")],
        "inconclusive": [("a", "approve", ""), ("b", "abstain", "")],
        "revoked": [("a", "approve", ""), ("b", "approve", "")],
        "withdrawn": [],
    }[state]
    for who, verdict, comment in steps:
        vote(claim, getattr(reviewed, who), verdict, comment)
    if state == "inconclusive":
        services.chair_decide(claim, "inconclusive", "unclear", chair=reviewed.chair)
    elif state == "revoked":
        services.revoke(claim, "the employer denied it", chair=reviewed.chair)
    elif state == "withdrawn":
        services.withdraw(claim)
    db.session.commit()
    assert claim.state == state
    return claim


@pytest.mark.parametrize("state", ["submitted", "in_review", "needs_evidence"])
def test_the_respondent_withdraws_an_open_claim(reviewed, submit, state):
    claim = _claim_in(state, reviewed, submit)
    services.withdraw(claim)
    db.session.commit()
    last = events(claim, "transition")[-1]
    assert (claim.state, last.actor, last.from_state) == ("withdrawn", "respondent", state)
    assert claim.decided_at is None


@pytest.mark.parametrize("state", ["proven", "rejected", "inconclusive", "revoked", "withdrawn"])
def test_a_closed_claim_cannot_be_withdrawn(reviewed, submit, state):
    claim = _claim_in(state, reviewed, submit)
    before = audit_count()
    with pytest.raises(InvalidState):
        services.withdraw(claim)
    db.session.rollback()
    assert (claim.state, audit_count()) == (state, before)


def test_revoking_needs_a_proven_claim_and_a_reason(reviewed, submit, monkeypatch):
    claim, chair = reviewed.claim, reviewed.chair
    with pytest.raises(InvalidState):  # not proven yet
        services.revoke(claim, "fraud", chair=chair)
    vote(claim, reviewed.a, "approve")
    vote(claim, reviewed.b, "approve")
    for reason in ("", "   "):
        with pytest.raises(InvalidState, match="reason"):
            services.revoke(claim, reason, chair=chair)
    db.session.rollback()
    assert claim.state == "proven"
    services.revoke(claim, " the employer denied it ", chair=chair)
    db.session.commit()
    assert (claim.state, claim.revoked_reason) == ("revoked", "the employer denied it")
    last = events(claim, "transition")[-1]
    assert (last.actor_id, last.from_state, last.to_state, last.written_reason) == (
        chair.id, "proven", "revoked", "the employer denied it")


# ---------------------------------------------------------------------- who sees a claim

def test_who_may_see_a_claim(reviewed, member):
    claim = reviewed.claim
    vote(claim, reviewed.b, "approve")
    conflicted = reviewed.a
    services.declare_conflict(review_of(claim, conflicted), "my sister", reviewer=conflicted)
    db.session.commit()
    table = {
        "assigned, not voted yet": (reviewed.spare, True),
        "assigned, voted": (reviewed.b, True),
        "not assigned": (member(), False),
        "conflicted": (conflicted, False),
        "chair": (reviewed.chair, True),
        "auditor": (member("auditor"), True),
        "admin": (member("admin"), False),
    }
    assert {who: services.may_see_claim(user, claim) for who, (user, _) in table.items()} == {
        who: expected for who, (_, expected) in table.items()}


# ---------------------------------------------------------------------- the evidence request email

def _drain(smtp_server) -> None:
    """Send the campaign's invitations first (they went out before the answer came)."""
    from survey.mail.sending import send_batch

    while send_batch(50):
        pass
    smtp_server.messages.clear()


@pytest.mark.parametrize("locale, subject", [
    ("fr", "Votre réponse à « {title} » : pourriez-vous ajouter un justificatif ?"),
    ("en", "Your answer to “{title}”: could you add evidence?"),
])
def test_the_evidence_request_is_emailed_in_the_respondents_language(
        member, create_stakeholder, submit, alumni, smtp_server, locale, subject):
    from survey.mail.sending import send_batch

    a, b = member(), member()
    person = create_stakeholder(locale=locale)
    [claim] = submit(person)
    _drain(smtp_server)
    vote(claim, a, "need_evidence", "a payslip, please")
    vote(claim, b, "approve")

    assert send_batch(10) == 1
    [mail] = smtp_server.wait_for(1)
    assert mail["to"] == [person.email]
    message = mail["message"]
    spaces = str.maketrans({"\xa0": " ", "\u202f": " "})  # French typography's no-break spaces
    assert message["Subject"].translate(spaces) == subject.format(title=alumni.title(locale)).translate(spaces)
    text = message.get_body(("plain",)).get_content()
    token = re.search(r"https://attest\.test\.example/e/(\S+)", text).group(1)
    assert hash_token(token) == claim.token_hash
    assert services.find_claim_by_token(token).id == claim.id
    [request] = _outbox_requests(claim)
    db.session.refresh(request)
    assert request.status == "sent" and request.smtp_reply.startswith("250")


def test_the_evidence_request_says_what_the_committee_asked(member, create_stakeholder, submit, smtp_server):
    from survey.mail.sending import send_batch

    a, b = member(), member()
    [claim] = submit(create_stakeholder())
    _drain(smtp_server)
    vote(claim, a, "need_evidence", "a payslip, please")
    vote(claim, b, "approve")
    send_batch(10)
    [mail] = smtp_server.wait_for(1)
    assert "a payslip, please" in mail["message"].get_body(("plain",)).get_content()


@pytest.mark.parametrize("meanwhile", ["withdrawn", "evidence added"])
def test_no_evidence_request_once_the_claim_no_longer_needs_it(
        member, create_stakeholder, submit, smtp_server, meanwhile):
    from survey.mail.sending import send_batch

    a, b = member(), member()
    [claim] = submit(create_stakeholder())
    _drain(smtp_server)
    vote(claim, a, "need_evidence", "a payslip, please")
    vote(claim, b, "approve")
    if meanwhile == "withdrawn":
        services.withdraw(claim)
    else:
        services.add_link_evidence(claim, LINK, actor="respondent")
    db.session.commit()

    assert send_batch(10) == 1
    [request] = _outbox_requests(claim)
    db.session.refresh(request)
    assert (request.status, request.smtp_reply) == ("cancelled", "not sent: the claim no longer needs evidence")
    assert smtp_server.messages == []
