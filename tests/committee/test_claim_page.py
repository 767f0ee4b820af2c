"""The claim page: who may read it, what it shows, the member's vote and conflict."""
from __future__ import annotations

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from survey.audit.chain import verify
from survey.audit.models import AuditEvent
from survey.claims.models import Conflict, Review
from survey.extensions import db
from tests.committee.conftest import ANSWERS, PNG, post, reload, stored_file

POSTS = ("vote", "conflict", "decide", "revoke", "reassign")


def url(claim, action=None) -> str:
    return f"/committee/claims/{claim.id}" + (f"/{action}" if action else "")


def _html(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def three(create_user):
    return [create_user(role="committee") for _ in range(3)]


@pytest.fixture
def claim(three, make_claims):
    """One claim with a PDF and a link, reviewed by the first two of three members."""
    [claim] = make_claims(with_file=True)
    assert {r.reviewer_id for r in claim.reviews} == {three[0].id, three[1].id}
    return claim


# ---------------------------------------------------------------------- who may read it

def test_an_assigned_member_reads_the_claim_with_the_vote_and_conflict_forms(claim, three, browser):
    page = browser(three[0]).get(url(claim))
    assert page.status_code == 200
    html = _html(page)
    assert f'action="{url(claim, "vote")}"' in html
    assert f'action="{url(claim, "conflict")}"' in html
    assert f'action="{url(claim, "decide")}"' not in html
    assert "object-src 'self'" in page.headers["Content-Security-Policy"]


def test_a_member_not_assigned_gets_404_like_a_missing_claim(claim, three, browser):
    other = browser(three[2])
    assert other.get(url(claim)).status_code == 404
    assert other.get("/committee/claims/999999").status_code == 404
    assert post(other, url(claim, "vote"), "vote", verdict="approve").status_code == 404
    assert reload(claim).reviews[0].verdict is None


def test_a_member_who_declared_a_conflict_gets_404(claim, three, browser):
    member = browser(three[0])
    assert post(member, url(claim, "conflict"), "conflict", reason="my cousin").status_code == 302
    assert member.get(url(claim)).status_code == 404
    evidence = reload(claim).evidence[0]
    assert member.get(f"/committee/evidence/{evidence.id}").status_code == 404


def test_the_chair_reads_every_claim_with_the_chair_forms(claim, create_user, browser):
    html = _html(browser(create_user(role="chair")).get(url(claim)))
    assert f'action="{url(claim, "decide")}"' in html
    assert f'action="{url(claim, "reassign")}"' in html
    assert f'action="{url(claim, "vote")}"' not in html


def test_the_auditor_reads_everything_and_changes_nothing(claim, three, create_user, browser):
    auditor = browser(create_user(role="auditor"))
    page = auditor.get(url(claim))
    assert page.status_code == 200
    assert f'action="{url(claim)}/' not in _html(page)  # no form on the claim
    list_page = _html(auditor.get("/committee/claims"))
    assert 'name="claim_ids"' not in list_page and "/committee/claims/bulk" not in list_page
    events = db.session.scalar(select(func.count(AuditEvent.id)))
    for action in POSTS:
        response = post(auditor, url(claim, action), action, verdict="approve", decision="proven",
                        reason="x", review_id=claim.reviews[0].id, to="")
        assert response.status_code == 403, action
    assert post(auditor, "/committee/claims/bulk", claim_ids=claim.id, decision="proven",
                reason="x").status_code == 403
    assert reload(claim).state == "in_review"
    assert db.session.scalar(select(func.count(AuditEvent.id))) == events


def test_an_admin_is_refused_and_an_anonymous_visitor_sent_to_login(claim, create_user, browser):
    admin = browser(create_user(role="admin"))
    assert admin.get(url(claim)).status_code == 403
    assert post(admin, url(claim, "vote"), "vote", verdict="approve").status_code == 403
    anonymous = browser().get(url(claim))
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")


def test_the_chair_cannot_vote_and_a_member_cannot_decide(claim, three, create_user, browser):
    chair = browser(create_user(role="chair"))
    assert post(chair, url(claim, "vote"), "vote", verdict="approve").status_code == 403
    assert post(chair, url(claim, "conflict"), "conflict", reason="").status_code == 403
    member = browser(three[0])
    for action in ("decide", "revoke", "reassign"):
        assert post(member, url(claim, action), action, decision="proven", reason="x").status_code == 403
    assert reload(claim).state == "in_review"


# ---------------------------------------------------------------------- what it shows

def test_answers_in_the_viewers_language_beside_the_evidence(claim, three, browser):
    html = _html(browser(three[0]).get(url(claim)))
    assert "What is your main activity today?" in html and "Employed full-time" in html
    assert "I found a new job" in html and "4 out of 5" in html
    assert "ACME" in html and "Data analyst" in html
    evidence = {e.kind: e for e in claim.evidence}
    download = f"/committee/evidence/{evidence['file'].id}"
    assert f'<object data="{download}?inline=1" type="application/pdf"' in html
    assert f'href="{download}"' in html
    assert "https://example.org/profile/ada" in html
    assert 'href="https://example.org/profile/ada" rel="noopener noreferrer"' in html
    assert "Ada Lovelace" in html and "Data Analyst" in html

    french = browser(three[0])
    french.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr"
    html = _html(french.get(url(claim)))
    assert str(escape("Quelle est votre activité principale aujourd'hui\u00a0?")) in html
    assert "En emploi à temps plein" in html
    assert "Enregistrer mon vote" in html and "Historique" in html  # the page's own texts too


def test_an_image_is_shown_in_the_page(three, make_claims, browser):
    [claim] = make_claims({**ANSWERS, "evidence_file": stored_file(PNG, "payslip.png")})
    [image] = [e for e in claim.evidence if e.kind == "file"]
    html = _html(browser(three[0]).get(url(claim)))
    assert f'<img src="/committee/evidence/{image.id}?inline=1"' in html


def test_the_history_comes_from_the_audit_trail(claim, three, browser, create_user):
    html = _html(browser(create_user(role="auditor")).get(url(claim)))
    assert "claim submitted" in html and "evidence added" in html
    assert "submitted → in review" in html
    assert html.count("reviewer assigned") == 2 and three[0].email in html


def test_html_in_answers_evidence_and_comments_is_escaped(three, make_claims, browser, create_user):
    attack = "<script>alert(1)</script>"
    [claim] = make_claims({**ANSWERS, "employer": attack, "role": '"><img src=x onerror=alert(1)>',
                           "evidence_link": "https://example.org/<b>x</b>"})
    member = browser(three[0])
    assert post(member, url(claim, "vote"), "vote", verdict="reject", comment="<i>nope</i>").status_code == 302
    for viewer in (member, browser(create_user(role="chair"))):
        html = _html(viewer.get(url(claim)))
        assert attack not in html and "<img src=x" not in html and "<b>x</b>" not in html
        assert "<i>nope</i>" not in html
        assert str(escape(attack)) in html
        assert str(escape("<i>nope</i>")) in html


# ---------------------------------------------------------------------- votes

def test_two_approvals_prove_the_claim(claim, three, browser):
    first, second = browser(three[0]), browser(three[1])
    response = post(first, url(claim, "vote"), "vote", verdict="approve", comment="payslip matches")
    assert response.status_code == 302 and response.headers["Location"].endswith(url(claim))
    assert reload(claim).state == "in_review"
    page = _html(first.get(url(claim)))
    assert "Your vote is recorded." in page
    assert f'action="{url(claim, "vote")}"' not in page  # voted once, no second form
    post(second, url(claim, "vote"), "vote", verdict="approve")
    assert reload(claim).state == "proven"
    page = _html(second.get(url(claim)))
    assert "The claim is now: proven." in page
    assert '<span class="status">proven</span>' in page


def test_a_rejection_without_a_comment_is_refused_and_nothing_is_stored(claim, three, browser):
    member = browser(three[0])
    events = db.session.scalar(select(func.count(AuditEvent.id)))
    response = post(member, url(claim, "vote"), "vote", verdict="reject", comment="  ")
    assert response.status_code == 400
    html = _html(response)
    assert 'id="vote-comment-error"' in html and "Say why" in html
    assert 'class="error-summary"' in html and 'href="#vote-comment"' in html
    assert '<input checked id="vote-verdict-1"' in html  # the choice is kept
    review = next(r for r in reload(claim).reviews if r.reviewer_id == three[0].id)
    assert (review.verdict, review.voted_at) == (None, None)
    assert db.session.scalar(select(func.count(AuditEvent.id))) == events


def test_a_vote_without_a_verdict_is_refused(claim, three, browser):
    response = post(browser(three[0]), url(claim, "vote"), "vote", comment="hmm")
    assert response.status_code == 400 and "Choose a verdict." in _html(response)
    assert "<title>Error: " in _html(response)  # a screen reader hears the page came back with errors


def test_voting_twice_is_refused(claim, three, browser):
    member = browser(three[0])
    post(member, url(claim, "vote"), "vote", verdict="abstain")
    response = post(member, url(claim, "vote"), "vote", verdict="approve")
    assert response.status_code == 400 and "already voted" in _html(response)
    assert next(r for r in reload(claim).reviews if r.reviewer_id == three[0].id).verdict == "abstain"


def test_the_others_votes_are_hidden_from_a_member_until_the_decision(claim, three, browser, create_user):
    first, second = browser(three[0]), browser(three[1])
    post(first, url(claim, "vote"), "vote", verdict="reject", comment="Secret-reason-of-the-first")
    before = _html(second.get(url(claim)))
    assert "Secret-reason-of-the-first" not in before
    assert ">reject<" not in before and "reject<br>" not in before
    assert "Votes are private until the decision" in before
    # the first reviewer sees their own vote; the chair and the auditor see it too
    assert "Secret-reason-of-the-first" in _html(first.get(url(claim)))
    for role in ("chair", "auditor"):
        assert "Secret-reason-of-the-first" in _html(browser(create_user(role=role)).get(url(claim)))

    post(second, url(claim, "vote"), "vote", verdict="approve")
    assert reload(claim).state == "in_review"  # split: the chair settles it
    chair = browser(create_user(role="chair"))
    assert "awaiting the chair" in _html(chair.get(url(claim)))
    post(chair, url(claim, "decide"), "decide", decision="rejected", reason="the payslip is not theirs")
    after = _html(second.get(url(claim)))
    assert "Secret-reason-of-the-first" in after
    assert "Votes are private until the decision" not in after


def test_the_policy_s_reasons_do_not_quote_hidden_votes(claim, three, browser):
    """Found by trying it: a member could not read another's comment in the votes, yet read it
    in the history, where the policy's "needs evidence" quoted it."""
    members = [browser(user) for user in three]
    post(members[0], url(claim, "vote"), "vote", verdict="need_evidence", comment="Secret-ask-for-a-payslip")
    for member in members[1:]:
        post(member, url(claim, "vote"), "vote", verdict="approve")
    assert reload(claim).state == "needs_evidence"  # not decided: votes stay private
    assert "Secret-ask-for-a-payslip" not in _html(members[1].get(url(claim)))
    assert "Secret-ask-for-a-payslip" in _html(members[0].get(url(claim)))  # their own words


# ---------------------------------------------------------------------- conflicts

def test_a_conflict_hands_the_claim_to_another_member(claim, three, browser):
    member = browser(three[0])
    response = post(member, url(claim, "conflict"), "conflict", reason="my former colleague")
    assert response.status_code == 302 and response.headers["Location"].endswith("/committee/")
    assert "stepped aside" in _html(member.get("/committee/"))
    assert f'<tr id="claim-{claim.id}">' not in _html(member.get("/committee/"))
    assert member.get(url(claim)).status_code == 404
    claim = reload(claim)
    active = {r.reviewer_id for r in claim.reviews if r.active}
    assert active == {three[1].id, three[2].id}
    assert db.session.scalar(select(Conflict).where(Conflict.user_id == three[0].id)).reason == "my former colleague"
    assert f'<tr id="claim-{claim.id}">' in _html(browser(three[2]).get("/committee/"))
    assert verify().ok


def test_a_member_never_reads_why_another_declared_a_conflict(claim, three, browser, create_user):
    post(browser(three[0]), url(claim, "conflict"), "conflict", reason="Private-conflict-reason")
    assert "Private-conflict-reason" not in _html(browser(three[1]).get(url(claim)))
    assert "Private-conflict-reason" in _html(browser(create_user(role="chair")).get(url(claim)))


# ---------------------------------------------------------------------- CSRF

def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(claim, three, browser):
    member = browser(three[0])
    response = post(member, url(claim, "vote"), "vote", csrf=False, verdict="approve")
    assert response.status_code == 400
    assert "This form has expired" in _html(response)
    assert db.session.scalar(select(Review.verdict).where(Review.reviewer_id == three[0].id)) is None


# ---------------------------------------------------------------------- answers in words

@pytest.mark.parametrize("question, value, words", [
    ({"type": "single", "options": [{"value": "a", "label": {"en": "Alpha", "fr": "Alpha FR"}}]}, "a", "Alpha"),
    ({"type": "single", "options": []}, "gone", "gone"),  # an option since removed: its value
    ({"type": "multi", "options": [{"value": "a", "label": {"en": "Alpha"}}, {"value": "b", "label": {"en": "Beta"}}]},
     ["b", "a"], "Beta, Alpha"),
    ({"type": "scale", "min": 1, "max": 5}, 3, "3 out of 5"),
    ({"type": "consent"}, True, "Yes"),
    ({"type": "consent"}, False, "No"),
    ({"type": "number"}, 12.0, "12"),
    ({"type": "number"}, 12.5, "12.5"),
    ({"type": "file"}, {"filename": "payslip.pdf", "stored_as": "ab"}, "payslip.pdf"),
    ({"type": "text"}, "<b>ACME</b>", "<b>ACME</b>"),  # escaped by the template, not here
])
def test_answers_in_words(app, question, value, words):
    from survey.committee.claim_page import format_answer

    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert format_answer({"id": "q", **question}, value, "en") == words


@pytest.mark.parametrize("size, words", [(None, ""), (40, "0.1 kB"), (12_400, "12.1 kB"), (3_500_000, "3,418 kB")])
def test_file_sizes(app, size, words):
    from survey.committee.claim_page import file_size

    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert file_size(size) == words
