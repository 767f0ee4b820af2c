"""The chair's side: the list of every claim, "awaiting the chair" computed in SQL, and
the decisions (decide, revoke, reassign, bulk)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, update

from survey.audit.models import AuditEvent
from survey.claims import services
from survey.claims.models import Review
from survey.committee.lists import AWAITING_CHAIR, Filters, claims_page
from survey.core.types import utcnow
from survey.extensions import db
from tests.committee.conftest import ANSWERS, post, reload

LIST = "/committee/claims"


def url(claim, action=None) -> str:
    return f"/committee/claims/{claim.id}" + (f"/{action}" if action else "")


def _html(response) -> str:
    return response.get_data(as_text=True)


def _claim_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="claim-(\d+)">', html)]


@pytest.fixture
def three(create_user):
    return [create_user(role="committee") for _ in range(3)]


@pytest.fixture
def chair(create_user, browser):
    user = create_user(role="chair")
    client = browser(user)
    client.user = user
    return client


def _set_votes(claim, *verdicts) -> None:
    """Write the active reviews' verdicts directly (the policy is not applied)."""
    reviews = [r for r in claim.reviews if r.active]
    for review, verdict in zip(reviews, verdicts):
        db.session.execute(update(Review).where(Review.id == review.id).values(
            verdict=verdict, voted_at=utcnow() if verdict else None))
    db.session.commit()


# ---------------------------------------------------------------------- the list

@pytest.mark.parametrize("verdicts", [
    (None, None), ("approve", None), ("approve", "reject"), ("abstain", "abstain"), ("approve", "abstain"),
    ("reject", "abstain"), ("need_evidence", "approve"), ("approve", "approve"), ("reject", "reject"),
])
def test_awaiting_the_chair_in_sql_is_the_policy_in_python(three, make_claims, verdicts):
    [claim] = make_claims()
    _set_votes(claim, *verdicts)
    claim = reload(claim)
    in_sql = [row.claim.id for row in claims_page(Filters(state=AWAITING_CHAIR)).items]
    assert in_sql == ([claim.id] if services.awaiting_chair(claim) else [])
    [row] = claims_page(Filters()).items
    assert row.awaiting_chair is services.awaiting_chair(claim)


def test_awaiting_the_chair_counts_only_active_reviews_of_the_current_round(three, make_claims):
    [claim] = make_claims()
    _set_votes(claim, "approve", "reject")
    assert len(claims_page(Filters(state=AWAITING_CHAIR)).items) == 1
    # new evidence: a new round in which nobody has voted yet
    services.resume_review(_needs_evidence(claim))
    db.session.commit()
    claim = reload(claim)
    assert services.awaiting_chair(claim) is False
    assert claims_page(Filters(state=AWAITING_CHAIR)).items == []


def _needs_evidence(claim):
    from workflows.claims import transition

    claim = reload(claim)
    transition(claim, "needs_evidence", actor="policy", reason="more please")
    return claim


def test_the_list_filters_and_shows_the_vote_count(three, make_claims, chair):
    split, fresh = make_claims(ANSWERS, ANSWERS, programme="Data Analyst")
    [ux] = make_claims({**ANSWERS, "outcomes": ["raise"]}, programme="UX Design")
    _set_votes(split, "approve", "reject")
    every = _html(chair.get(LIST))
    assert set(_claim_ids(every)) == {split.id, fresh.id, ux.id}
    rows = dict(re.findall(r'<tr id="claim-(\d+)">(.*?)</tr>', every, re.S))
    assert "2 of 2" in rows[str(split.id)] and "awaiting the chair" in rows[str(split.id)]
    assert "0 of 2" in rows[str(fresh.id)] and "awaiting the chair" not in rows[str(fresh.id)]
    assert _claim_ids(_html(chair.get(f"{LIST}?state=awaiting_chair"))) == [split.id]
    assert _claim_ids(_html(chair.get(f"{LIST}?programme=UX+Design"))) == [ux.id]
    assert _claim_ids(_html(chair.get(f"{LIST}?type=raise"))) == [ux.id]
    assert _claim_ids(_html(chair.get(f"{LIST}?state=proven"))) == []
    assert _claim_ids(_html(chair.get(f"{LIST}?sort=type"))) == [split.id, fresh.id, ux.id]


def test_the_filters_offer_a_new_programme_once_the_kept_options_are_old(three, make_claims, chair, app,
                                                                      monkeypatch):
    make_claims(programme="Data Analyst")
    assert '<option value="Data Analyst"' in _html(chair.get(LIST))
    make_claims(programme="UX Design")
    html = _html(chair.get(LIST))  # the options read a moment ago are kept…
    assert '<option value="UX Design"' not in html
    assert len(_claim_ids(html)) == 2  # …not the claims: the list itself is always current
    monkeypatch.setitem(app.config, "FILTER_OPTIONS_SECONDS", 0)  # …until FILTER_OPTIONS_SECONDS have passed
    html = _html(chair.get(LIST))
    assert '<option value="Data Analyst"' in html and '<option value="UX Design"' in html


# ---------------------------------------------------------------------- decide, revoke

def test_the_chair_decides_a_claim_with_a_reason(three, make_claims, chair):
    [claim] = make_claims()
    response = post(chair, url(claim, "decide"), "decide", decision="inconclusive", reason="no way to check")
    assert response.status_code == 302
    claim = reload(claim)
    assert (claim.state, claim.decision_reason, claim.decided_by_id) == ("inconclusive", "no way to check",
                                                                         chair.user.id)
    html = _html(chair.get(url(claim)))
    assert "Claim #%d decided: inconclusive." % claim.id in html and "no way to check" in html


def test_a_decision_without_a_reason_is_refused(three, make_claims, chair):
    [claim] = make_claims()
    response = post(chair, url(claim, "decide"), "decide", decision="proven", reason="")
    assert response.status_code == 400 and 'id="decide-reason-error"' in _html(response)
    assert reload(claim).state == "in_review"


def test_the_chair_revokes_a_proven_claim_and_nothing_else(three, make_claims, chair):
    proven, open_claim = make_claims(ANSWERS, ANSWERS)
    post(chair, url(proven, "decide"), "decide", decision="proven", reason="contract seen")
    assert f'action="{url(proven, "revoke")}"' in _html(chair.get(url(proven)))
    assert f'action="{url(open_claim, "revoke")}"' not in _html(chair.get(url(open_claim)))

    refused = post(chair, url(open_claim, "revoke"), "revoke", reason="oops")
    assert refused.status_code == 400 and "cannot become revoked" in _html(refused)
    assert reload(open_claim).state == "in_review"
    assert post(chair, url(proven, "revoke"), "revoke", reason="").status_code == 400
    assert reload(proven).state == "proven"

    assert post(chair, url(proven, "revoke"), "revoke", reason="the contract was forged").status_code == 302
    proven = reload(proven)
    assert (proven.state, proven.revoked_reason) == ("revoked", "the contract was forged")


def test_the_chair_is_not_offered_nor_allowed_to_decide_their_own_claim(three, make_claims, chair):
    own, other = make_claims(ANSWERS, ANSWERS)
    own.claimant.email = chair.user.email.upper()  # the chair answered the survey too
    db.session.commit()
    _set_votes(own, "approve", None)
    _set_votes(other, "approve", None)

    html = _html(chair.get(url(own)))
    assert "This claim is your own: you may not decide, revoke or reassign it." in html
    for action in ("decide", "reassign"):
        assert f'action="{url(own, action)}"' not in html
        assert f'action="{url(other, action)}"' in _html(chair.get(url(other)))

    refused = post(chair, url(own, "decide"), "decide", decision="proven", reason="I know it is true")
    assert refused.status_code == 400 and "This claim is your own" in _html(refused)
    assert reload(own).state == "in_review"
    taken = reload(own).reviews[0]
    refused = post(chair, url(own, "reassign"), "reassign", review_id=taken.id, to="")
    assert refused.status_code == 400 and "This claim is your own" in _html(refused)
    assert all(r.active for r in reload(own).reviews)

    response = post(chair, LIST + "/bulk", claim_ids=[own.id, other.id], decision="proven", reason="contracts seen")
    assert response.status_code == 302
    flashed = _html(chair.get(response.headers["Location"]))
    assert "1 claim decided: proven." in flashed and f"#{own.id}: This claim is your own" in flashed
    assert (reload(own).state, reload(other).state) == ("in_review", "proven")


# ---------------------------------------------------------------------- reassign

def test_a_reviewer_who_voted_is_neither_offered_nor_reassigned(three, make_claims, chair):
    [claim] = make_claims()
    voted, waiting = sorted((r for r in claim.reviews if r.active), key=lambda r: r.id)
    _set_votes(claim, "reject", None)
    html = _html(chair.get(url(claim)))
    offered = re.search(r'<select[^>]*name="reassign-review_id".*?</select>', html, re.S).group(0)
    assert f'value="{waiting.id}"' in offered and f'value="{voted.id}"' not in offered

    response = post(chair, url(claim, "reassign"), "reassign", review_id=voted.id, to=three[2].id)
    assert response.status_code == 400
    assert "That reviewer has already voted on this claim: a review with a vote cannot be reassigned." in _html(
        response)
    assert {r.reviewer_id for r in reload(claim).reviews if r.active} == {voted.reviewer_id, waiting.reviewer_id}


def test_the_chair_reassigns_a_reviewer_to_a_chosen_member(three, make_claims, chair, browser):
    [claim] = make_claims()
    taken = next(r for r in claim.reviews if r.reviewer_id == three[0].id)
    html = _html(chair.get(url(claim)))
    assert f'<option value="{three[2].id}">{three[2].email}</option>' in html
    response = post(chair, url(claim, "reassign"), "reassign", review_id=taken.id, to=three[2].id)
    assert response.status_code == 302
    claim = reload(claim)
    assert {r.reviewer_id for r in claim.reviews if r.active} == {three[1].id, three[2].id}
    # the member who lost it may still read it, but it is no longer in their queue
    assert f'<tr id="claim-{claim.id}">' not in _html(browser(three[0]).get("/committee/"))


def test_reassigning_to_the_next_available_member(three, make_claims, chair):
    [claim] = make_claims()
    taken = next(r for r in claim.reviews if r.reviewer_id == three[1].id)
    assert post(chair, url(claim, "reassign"), "reassign", review_id=taken.id, to="").status_code == 302
    assert {r.reviewer_id for r in reload(claim).reviews if r.active} == {three[0].id, three[2].id}


def test_reassigning_with_nobody_left_is_refused_and_changes_nothing(committee, make_claims, chair):
    [claim] = make_claims()  # two members only: both already review it
    taken = claim.reviews[0]
    events = db.session.scalar(select(func.count(AuditEvent.id)))
    response = post(chair, url(claim, "reassign"), "reassign", review_id=taken.id, to="")
    assert response.status_code == 400 and "No other committee member" in _html(response)
    assert all(r.active for r in reload(claim).reviews)
    assert db.session.scalar(select(func.count(AuditEvent.id))) == events


def test_reassigning_to_a_member_not_offered_is_refused(three, make_claims, chair, create_user):
    [claim] = make_claims()
    taken = claim.reviews[0]
    admin = create_user(role="admin")
    response = post(chair, url(claim, "reassign"), "reassign", review_id=taken.id, to=admin.id)
    assert response.status_code == 400
    assert all(r.active for r in reload(claim).reviews)


# ---------------------------------------------------------------------- bulk

def test_bulk_decision_decides_what_it_can_and_reports_the_rest(three, make_claims, chair):
    first, second, already = make_claims(ANSWERS, ANSWERS, ANSWERS)
    post(chair, url(already, "decide"), "decide", decision="proven", reason="seen")
    page = _html(chair.get(LIST))
    assert f'name="claim_ids" value="{first.id}"' in page
    response = chair.post("/committee/claims/bulk", data={
        "csrf_token": _token(page), "claim_ids": [first.id, second.id, already.id, 999999],
        "decision": "inconclusive", "reason": "no employer answered", "state": "in_review", "sort": "type"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/committee/claims?state=in_review&sort=type")
    assert [reload(c).state for c in (first, second, already)] == ["inconclusive", "inconclusive", "proven"]
    assert reload(first).decision_reason == "no employer answered"
    html = _html(chair.get(LIST))
    assert "2 claims decided: inconclusive." in html
    assert "2 claims were not decided" in html
    assert f"#{already.id}: A claim that is proven cannot become inconclusive." in html
    assert "#999999: no such claim." in html


def test_bulk_decision_needs_claims_a_decision_and_a_reason(three, make_claims, chair):
    [claim] = make_claims()
    token = _token(_html(chair.get(LIST)))
    response = chair.post("/committee/claims/bulk", data={"csrf_token": token, "decision": "proven",
                                                          "reason": ""})
    assert response.status_code == 400
    html = _html(response)
    assert "Select at least one claim." in html and "Give the reason for the decision." in html
    response = chair.post("/committee/claims/bulk", data={"csrf_token": token, "claim_ids": [claim.id],
                                                          "decision": "maybe", "reason": "x"})
    assert response.status_code == 400
    assert f'value="{claim.id}" id="select-{claim.id}" checked' in _html(response)  # the selection is kept
    assert reload(claim).state == "in_review"


def test_bulk_decision_is_for_the_chair_only(three, make_claims, browser, create_user):
    [claim] = make_claims()
    for user in (three[0], create_user(role="auditor"), create_user(role="admin")):
        response = post(browser(user), "/committee/claims/bulk", claim_ids=claim.id, decision="proven", reason="x")
        assert response.status_code == 403
    assert reload(claim).state == "in_review"


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
