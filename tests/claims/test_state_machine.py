"""The claim state machine and the decision policy, as tables."""
from __future__ import annotations

import itertools

import pytest

from survey.claims.models import CLAIM_STATES, Claim
from workflows.claims import TRANSITIONS, ClaimTransitionRefused, transition
from workflows.policy import Policy

ALLOWED = {
    ("submitted", "in_review"), ("submitted", "withdrawn"),
    ("in_review", "needs_evidence"), ("in_review", "proven"), ("in_review", "rejected"),
    ("in_review", "inconclusive"), ("in_review", "withdrawn"),
    ("needs_evidence", "in_review"), ("needs_evidence", "withdrawn"),
    ("proven", "revoked"),
}


def test_the_table_is_the_documented_life_cycle():
    assert set(TRANSITIONS) == set(CLAIM_STATES)
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize("before, after", sorted(itertools.product(CLAIM_STATES, repeat=2)))
def test_every_pair_is_applied_or_refused_by_name(app_ctx, before, after, monkeypatch):
    events = []
    monkeypatch.setattr("workflows.claims.record", lambda *args, **kwargs: events.append((args, kwargs)))
    claim = Claim(id=1, state=before)
    if (before, after) in ALLOWED:
        transition(claim, after, actor="system", reason="because")
        assert claim.state == after
        assert events[0][1]["from_state"] == before and events[0][1]["to_state"] == after
        if after in ("proven", "rejected", "inconclusive"):
            assert claim.decided_at is not None
        if after == "revoked":
            assert claim.revoked_reason == "because"
    else:
        with pytest.raises(ClaimTransitionRefused) as refused:
            transition(claim, after, actor="system", reason="because")
        assert refused.value.details == {"state_from": before, "state_to": after}
        assert claim.state == before
        assert events == []  # a refused transition leaves no trace but the error


def test_revoking_needs_a_reason(app_ctx, monkeypatch):
    monkeypatch.setattr("workflows.claims.record", lambda *args, **kwargs: None)
    claim = Claim(id=1, state="proven")
    with pytest.raises(ClaimTransitionRefused):
        transition(claim, "revoked", actor="system", reason="  ")
    assert claim.state == "proven"


@pytest.mark.parametrize("verdicts, outcome", [
    (["approve", "approve"], "proven"),
    (["reject", "reject"], "rejected"),
    (["approve", "reject"], "chair"),
    (["approve", "abstain"], "chair"),
    (["abstain", "abstain"], "chair"),
    (["approve", "need_evidence"], "needs_evidence"),
    (["reject", "need_evidence"], "needs_evidence"),
    (["approve", None], None),
    (["reject", None], None),
    ([None, None], None),
    ([], None),
    (["approve", "approve", "reject"], "chair"),          # a rejection blocks proof
    (["approve", "approve", None], "proven"),             # enough approvals already
    (["reject", "reject", "approve"], "rejected"),
    (["approve", "approve", "reject", "reject"], "chair"),  # a split
])
def test_the_default_policy(verdicts, outcome):
    assert Policy().outcome(verdicts) == outcome


def test_the_policy_is_configurable():
    strict = Policy(approvals_to_prove=3, rejections_to_reject=1)
    assert strict.outcome(["approve", "approve", "approve"]) == "proven"
    assert strict.outcome(["approve", "approve", "abstain"]) == "chair"
    assert strict.outcome(["reject", None, None]) == "rejected"


@pytest.mark.parametrize("role", ["committee", "admin", "auditor"])
def test_only_the_chair_holds_the_chairs_powers_even_outside_the_views(app_ctx, role):
    from survey.accounts.models import User
    from survey.claims import services
    from survey.core.errors import PermissionDenied

    claim, user = Claim(id=1, state="proven"), User(id=9, role=role, active=True, email="x@example.org")
    for call in (lambda: services.chair_decide(claim, "rejected", "because", chair=user),
                 lambda: services.revoke(claim, "because", chair=user),
                 lambda: services.bulk_decide([claim], "rejected", "because", chair=user)):
        with pytest.raises(PermissionDenied):
            call()
    assert claim.state == "proven"
