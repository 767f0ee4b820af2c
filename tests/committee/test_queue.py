"""A member's review queue: only their own active reviews, in tabs, filtered, sorted,
paginated, overdue ones marked, in a constant number of queries."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from survey.claims import services
from survey.claims.models import Review
from survey.committee.lists import Filters, queue_page
from survey.core.types import utcnow
from survey.extensions import db
from tests.committee.conftest import ANSWERS, post, reload

QUEUE = "/committee/"


def _claim_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="claim-(\d+)">', html)]


def _page(client, url=QUEUE) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


@pytest.fixture
def three(create_user):
    """Three members: each claim goes to the two least loaded."""
    return [create_user(role="committee") for _ in range(3)]


def _pending(user) -> set[int]:
    return set(db.session.scalars(select(Review.claim_id).where(
        Review.reviewer_id == user.id, Review.active.is_(True), Review.verdict.is_(None))))


def test_the_queue_shows_only_the_members_own_active_reviews(three, make_claims, browser):
    claims = make_claims(*[ANSWERS] * 5)
    assert len(claims) == 5
    seen = {}
    for member in three:
        seen[member.id] = set(_claim_ids(_page(browser(member))))
        assert seen[member.id] == _pending(member)
    # two reviewers per claim, spread over the three members
    assert sum(len(ids) for ids in seen.values()) == 10
    assert all(0 < len(ids) < 5 for ids in seen.values())


def test_a_review_taken_away_leaves_the_queue(three, make_claims, browser, create_user):
    [claim] = make_claims()
    first = next(r for r in claim.reviews if r.active)
    member = db.session.get(type(three[0]), first.reviewer_id)
    assert claim.id in _claim_ids(_page(browser(member)))
    services.reassign(claim, first, chair=create_user(role="chair"))
    db.session.commit()
    assert claim.id not in _claim_ids(_page(browser(member)))
    for tab in ("voted", "closed"):
        assert claim.id not in _claim_ids(_page(browser(member), f"{QUEUE}?tab={tab}"))


def test_voting_moves_a_claim_to_the_voted_tab_then_the_decision_to_closed(committee, make_claims, browser):
    [claim] = make_claims()
    first, second = browser(committee[0]), browser(committee[1])
    assert post(first, f"/committee/claims/{claim.id}/vote", "vote", verdict="approve").status_code == 302
    assert claim.id not in _claim_ids(_page(first))
    voted = _page(first, f"{QUEUE}?tab=voted")
    assert _claim_ids(voted) == [claim.id]
    assert "approve" in voted
    assert post(second, f"/committee/claims/{claim.id}/vote", "vote", verdict="approve").status_code == 302
    assert reload(claim).state == "proven"
    assert _claim_ids(_page(first, f"{QUEUE}?tab=voted")) == []
    closed = _page(first, f"{QUEUE}?tab=closed")
    assert _claim_ids(closed) == [claim.id] and "proven" in closed


def test_filters_by_outcome_programme_campaign_and_state(committee, make_claims, browser):
    data = make_claims({**ANSWERS, "outcomes": ["new_job", "raise"]}, programme="Data Analyst", name="Data 2025")
    ux = make_claims(ANSWERS, programme="UX Design", name="UX 2025")
    member = browser(committee[0])
    every = _claim_ids(_page(member))
    assert set(every) == {c.id for c in data + ux}

    raises = [c.id for c in data if c.outcome_type == "raise"]
    assert _claim_ids(_page(member, f"{QUEUE}?type=raise")) == raises
    assert set(_claim_ids(_page(member, f"{QUEUE}?programme=UX+Design"))) == {c.id for c in ux}
    assert set(_claim_ids(_page(member, f"{QUEUE}?campaign={data[0].campaign_id}"))) == {c.id for c in data}
    assert _claim_ids(_page(member, f"{QUEUE}?state=needs_evidence")) == []
    assert set(_claim_ids(_page(member, f"{QUEUE}?state=in_review"))) == set(every)
    combined = _page(member, f"{QUEUE}?type=new_job&programme=UX+Design")
    assert _claim_ids(combined) == [ux[0].id]
    # the filter form keeps what was chosen; unknown values are ignored, not errors
    assert '<option value="UX Design" selected>' in combined
    assert set(_claim_ids(_page(member, f"{QUEUE}?type=bogus&state=proven&campaign=99999999999&sort=x"))) == set(every)


def test_a_member_is_offered_only_their_own_campaigns_even_after_the_chair_saw_every_one(
        committee, make_claims, browser, create_user):
    data = make_claims(ANSWERS, programme="Data Analyst", name="Data 2025")
    ux = make_claims(ANSWERS, programme="UX Design", name="UX 2025")
    member = committee[0]
    db.session.execute(update(Review).where(Review.reviewer_id == member.id, Review.claim_id == ux[0].id)
                       .values(active=False))  # reassigned: the UX claim is no longer theirs
    db.session.commit()
    chair_page = _page(browser(create_user(role="chair")), "/committee/claims")
    assert f'<option value="{data[0].campaign_id}"' in chair_page and f'<option value="{ux[0].campaign_id}"' in chair_page

    mine = _page(browser(member))  # the chair's choices, just read and kept, are not the member's
    assert f'<option value="{data[0].campaign_id}"' in mine and "UX 2025" not in mine
    assert '<option value="UX Design"' not in mine


def test_sorted_oldest_first_by_default_or_by_type(committee, make_claims, browser):
    claims = make_claims({**ANSWERS, "outcomes": ["raise", "new_job", "promotion"]})
    member = committee[0]
    ages = {"raise": 9, "new_job": 3, "promotion": 5}  # days since assigned
    for claim in claims:
        db.session.execute(update(Review).where(Review.claim_id == claim.id).values(
            assigned_at=utcnow() - timedelta(days=ages[claim.outcome_type])))
    db.session.commit()
    by_type = {c.outcome_type: c.id for c in claims}
    page = _page(browser(member))
    assert _claim_ids(page) == [by_type["raise"], by_type["promotion"], by_type["new_job"]]
    sorted_by_type = _page(browser(member), f"{QUEUE}?sort=type")
    assert _claim_ids(sorted_by_type) == [by_type["new_job"], by_type["promotion"], by_type["raise"]]
    assert "9 days" in page and "3 days" in page


def test_overdue_reviews_are_marked(committee, make_claims, browser, app):
    old, recent = make_claims(ANSWERS, ANSWERS)
    deadline = app.config["REVIEW_DEADLINE_DAYS"]
    db.session.execute(update(Review).where(Review.claim_id == old.id).values(
        assigned_at=utcnow() - timedelta(days=deadline + 1)))
    db.session.commit()
    page = _page(browser(committee[0]))
    rows = dict(re.findall(r'<tr id="claim-(\d+)">(.*?)</tr>', page, re.S))
    assert "Overdue" in rows[str(old.id)]
    assert "Overdue" not in rows[str(recent.id)]


def test_pages_of_the_queue(committee, make_claims):
    claims = make_claims(*[ANSWERS] * 5)
    member = committee[0]
    first = queue_page(member, "todo", Filters(), per_page=2)
    assert (first.total, first.pages, len(first.items)) == (5, 3, 2)
    last = queue_page(member, "todo", Filters(page=3), per_page=2)
    assert [row.claim.id for row in last.items] == [claims[4].id]
    beyond = queue_page(member, "todo", Filters(page=10**9), per_page=2)
    assert beyond.page == 3 and [row.claim.id for row in beyond.items] == [claims[4].id]


def test_the_queue_takes_the_same_number_of_queries_for_two_or_six_claims(committee, make_claims, browser, app,
                                                                         monkeypatch):
    member = browser(committee[0])
    monkeypatch.setitem(app.config, "FILTER_OPTIONS_SECONDS", 0)  # the filter choices read each time too

    def count_queries() -> int:
        statements = []

        def record(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            _page(member)
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        return len(statements)

    make_claims(ANSWERS, ANSWERS)
    few = count_queries()
    make_claims(*[ANSWERS] * 4)
    assert len(_claim_ids(_page(member))) == 6
    assert count_queries() == few


def test_who_reaches_the_queue(app, make_claims, committee, create_user, browser):
    anonymous = browser().get(QUEUE)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    assert browser(create_user(role="admin")).get(QUEUE).status_code == 403
    for role in ("chair", "auditor"):
        response = browser(create_user(role=role)).get(QUEUE)
        assert response.status_code == 302 and response.headers["Location"].endswith("/committee/claims")
    assert browser(committee[0]).get("/committee/claims").status_code == 403


def test_the_nav_links_to_the_committee_pages(committee, create_user, browser):
    assert 'href="/committee/"' in _page(browser(committee[0]))
    chair_page = browser(create_user(role="chair")).get("/committee/claims").get_data(as_text=True)
    assert 'href="/committee/claims"' in chair_page
