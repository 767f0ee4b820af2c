"""The claim state machine: one table of allowed transitions, one function that
applies a transition or refuses it, and writes the audit event. Nothing else
writes a claim's state, but for one case: a new claim is inserted already in review
(``survey.claims.services.create_claims``), once ``check`` allows it, with the same
events as if it had been inserted submitted, then moved.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

from survey.audit.chain import record
from survey.core.errors import InvalidState
from survey.core.types import utcnow
from survey.web import LABELS

#: state → the states it may go to (DESIGN.md, "Claim states")
TRANSITIONS: dict[str, frozenset[str]] = {
    "submitted": frozenset({"in_review", "withdrawn"}),
    "in_review": frozenset({"needs_evidence", "proven", "rejected", "inconclusive", "withdrawn"}),
    "needs_evidence": frozenset({"in_review", "withdrawn"}),
    "proven": frozenset({"revoked"}),
    "rejected": frozenset(),
    "inconclusive": frozenset(),
    "revoked": frozenset(),
    "withdrawn": frozenset(),
}

#: the states that are a decision on the claim
DECIDED = frozenset({"proven", "rejected", "inconclusive"})
#: the states in which the committee still has work to do
OPEN = frozenset({"submitted", "in_review", "needs_evidence"})


class ClaimTransitionRefused(InvalidState):
    """The claim cannot go from its state to the one asked."""


def check(state_from: str, to: str, reason: str = "") -> None:
    """Raise ClaimTransitionRefused unless a claim may go from ``state_from`` to ``to``."""
    if to not in TRANSITIONS.get(state_from, ()):
        raise ClaimTransitionRefused(
            _l("A claim that is %(state)s cannot become %(to)s.", state=LABELS.get(state_from, state_from),
               to=LABELS.get(to, to)),
            state_from=state_from, state_to=to)
    if to == "revoked" and not reason.strip():
        raise ClaimTransitionRefused(_l("Revoking a proven claim needs a reason."), state_from=state_from,
                                     state_to=to)


def record_transition(subject, state_from: str, to: str, *, actor, reason: str = "",
                      data: dict | None = None) -> None:
    """The audit event of a transition (``subject``: the claim, or "claim:<id>")."""
    record("transition", subject, actor=actor, from_state=state_from, to_state=to, reason=reason, data=data)


def transition(claim, to: str, *, actor, reason: str = "", decided_by=None, data: dict | None = None) -> None:
    """Move ``claim`` to ``to`` or raise ClaimTransitionRefused; records the audit event.

    The caller has locked the claim (``survey.claims.services.lock_claims``, which reads
    it again): ``claim.state`` is then the state as committed, and no other transaction
    moves the claim before this one commits. Without the lock, two requests at once
    would each check the state they had read, and both move the claim."""
    check(claim.state, to, reason)
    before = claim.state
    claim.state = to
    if to in DECIDED:
        claim.decided_at = utcnow()
        claim.decided_by_id = getattr(decided_by, "id", None)
        claim.decision_reason = reason or None
    elif to == "revoked":
        claim.revoked_reason = reason
    record_transition(claim, before, to, actor=actor, reason=reason, data=data)
