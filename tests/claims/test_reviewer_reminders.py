"""Which reviews are overdue (per reviewer) and what the chair's digest holds."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from survey.accounts.models import User
from survey.campaigns.models import Invitation
from survey.claims import services
from survey.claims.models import Claim, Review
from survey.claims.reminders import chair_digest, overdue_reviews
from survey.core.types import utcnow
from survey.extensions import db
from survey.respond import services as respond
from tests.campaigns.helpers import started_campaign

DAY = timedelta(days=1)
_seq = itertools.count(1)


@pytest.fixture
def member(app_ctx):
    def make(role="committee", active=True) -> User:
        user = User(email=f"{role}{next(_seq)}@staff.example", name="", role=role, password_hash="-", active=active)
        db.session.add(user)
        db.session.commit()
        return user

    return make


@pytest.fixture
def submit(alumni, create_stakeholder, monkeypatch):
    """A new person answers a new identified campaign, claiming ``outcomes``; their claims."""

    def do(outcomes=("new_job",)) -> list[Claim]:
        person = create_stakeholder()
        campaign = started_campaign(alumni, monkeypatch, name=f"Alumni {next(_seq)}")
        invitation = db.session.scalar(select(Invitation).where(
            Invitation.campaign_id == campaign.id, Invitation.stakeholder_id == person.id))
        respond.submit_response(invitation, {"activity": "employed_full_time", "outcomes": list(outcomes)}, "en")
        db.session.commit()
        return db.session.scalars(select(Claim).where(Claim.stakeholder_id == person.id).order_by(Claim.id)).all()

    return do


def _review(claim: Claim, user: User) -> Review:
    return db.session.scalar(select(Review).where(Review.claim_id == claim.id, Review.reviewer_id == user.id))


def _vote(claim: Claim, user: User, verdict: str, comment: str = "because") -> None:
    services.record_vote(_review(claim, user), verdict, comment, reviewer=user)
    db.session.commit()


def _assigned_ago(claim: Claim, days: float) -> None:
    db.session.execute(update(Review).where(Review.claim_id == claim.id)
                       .values(assigned_at=utcnow() - timedelta(days=days)))
    db.session.commit()
    db.session.expire_all()


def _selection(now) -> dict[int, list[int]]:
    """{reviewer id: [claim ids, oldest first]}"""
    return {item.reviewer.id: [review.claim_id for review in item.reviews] for item in overdue_reviews(now)}


# ---------------------------------------------------------------------- overdue reviews

def test_a_review_is_overdue_only_after_the_deadline(member, submit):
    a, b = member(), member()
    [claim] = submit()
    now = utcnow()
    assert overdue_reviews(now) == []
    assert overdue_reviews(now + 6.9 * DAY) == []  # REVIEW_DEADLINE_DAYS is 7
    assert _selection(now + 7.1 * DAY) == {a.id: [claim.id], b.id: [claim.id]}
    [first, _second] = overdue_reviews(now + 8 * DAY)
    [review] = first.reviews
    assert (review.review_id, review.outcome_type) == (_review(claim, first.reviewer).id, "new_job")
    assert review.waiting_since == review.assigned_at


def test_the_deadline_is_configurable(app, member, submit, monkeypatch):
    monkeypatch.setitem(app.config, "REVIEW_DEADLINE_DAYS", 1)
    a, b = member(), member()
    [claim] = submit()
    assert _selection(utcnow() + 1.5 * DAY) == {a.id: [claim.id], b.id: [claim.id]}


def test_a_voted_review_is_not_overdue(member, submit):
    a, b = member(), member()
    [claim] = submit()
    _vote(claim, a, "approve")
    assert _selection(utcnow() + 8 * DAY) == {b.id: [claim.id]}


def test_a_review_given_up_for_a_conflict_is_not_overdue_its_replacement_is(member, submit):
    a, b, c = member(), member(), member()
    [claim] = submit()
    assert {r.reviewer_id for r in claim.reviews} == {a.id, b.id}
    _assigned_ago(claim, 10)
    services.declare_conflict(_review(claim, a), "my cousin", reviewer=a)
    db.session.commit()
    now = utcnow()
    assert _selection(now) == {b.id: [claim.id]}  # c was just assigned
    assert _selection(now + 8 * DAY) == {b.id: [claim.id], c.id: [claim.id]}


@pytest.mark.parametrize("end", ["withdrawn", "proven", "needs_evidence"])
def test_only_claims_in_review_have_overdue_reviews(member, submit, end):
    a, b = member(), member()
    [claim] = submit()
    if end == "withdrawn":
        services.withdraw(claim)
        db.session.commit()
    elif end == "proven":
        _vote(claim, a, "approve")
        _vote(claim, b, "approve")
    else:
        _vote(claim, a, "need_evidence")
        _vote(claim, b, "approve")
    assert claim.state == end
    assert overdue_reviews(utcnow() + 30 * DAY) == []


def test_new_evidence_restarts_the_wait(member, submit):
    a, b = member(), member()
    [claim] = submit()
    _vote(claim, a, "need_evidence")
    _vote(claim, b, "approve")
    _assigned_ago(claim, 30)
    services.add_link_evidence(claim, "https://profile.example/ada", actor="respondent")
    db.session.commit()
    assert claim.state == "in_review"
    resumed = utcnow()

    assert overdue_reviews(resumed + 3 * DAY) == []  # assigned 33 days before, but the new round is 3 days old
    groups = overdue_reviews(resumed + 8 * DAY)
    assert {item.reviewer.id for item in groups} == {a.id, b.id}
    for item in groups:
        [review] = item.reviews
        assert review.assigned_at < resumed - 29 * DAY
        assert abs(review.waiting_since - resumed) < timedelta(seconds=30)


def test_inactive_members_and_former_members_get_no_reminder(member, submit):
    a, b = member(), member()
    [claim] = submit()
    db.session.execute(update(User).where(User.id == a.id).values(active=False))
    db.session.execute(update(User).where(User.id == b.id).values(role="admin"))
    db.session.commit()
    assert overdue_reviews(utcnow() + 8 * DAY) == []


def test_reviews_are_grouped_per_reviewer_oldest_first(member, submit):
    a, b = member(), member()
    older, newer = submit(("new_job", "raise"))
    _assigned_ago(older, 20)
    _assigned_ago(newer, 10)
    [third] = submit()
    groups = overdue_reviews(utcnow() + 8 * DAY)
    assert [item.reviewer.id for item in groups] == [a.id, b.id]
    for item in groups:
        assert [review.claim_id for review in item.reviews] == [older.id, newer.id, third.id]
        assert [review.outcome_type for review in item.reviews] == ["new_job", "raise", "new_job"]


# ---------------------------------------------------------------------- the chair's digest

def test_the_chair_digest(app, member, submit):
    a, b = member(), member()
    split, pending, proven, needing = submit(), submit(), submit(), submit()
    split, pending, proven, needing = split[0], pending[0], proven[0], needing[0]
    _vote(split, a, "approve")
    _vote(split, b, "reject", "no contract")  # the policy leaves it to the chair
    _vote(pending, a, "approve")  # b has not voted yet
    _vote(proven, a, "approve")
    _vote(proven, b, "approve")
    _vote(needing, a, "need_evidence")
    _vote(needing, b, "abstain")
    assert [c.state for c in (split, pending, proven, needing)] == ["in_review", "in_review", "proven",
                                                                    "needs_evidence"]
    assert services.awaiting_chair(split) and not services.awaiting_chair(pending)

    now = utcnow()
    digest = chair_digest(now + 8 * DAY)
    assert [claim.id for claim in digest.awaiting_chair] == [split.id]
    assert [(item.reviewer.id, [r.claim_id for r in item.reviews]) for item in digest.overdue] == [
        (b.id, [pending.id])]
    assert digest.overdue_count == 1 and digest.deadline_days == 7 and not digest.empty
    assert digest.short_of_reviewers == []

    # too small a committee: the next claim gets one reviewer of two
    db.session.execute(update(User).where(User.id == b.id).values(active=False))
    db.session.commit()
    [short] = submit()
    assert [claim.id for claim in chair_digest(now).short_of_reviewers] == [short.id]


def test_an_empty_digest(member):
    member("chair")
    digest = chair_digest(utcnow())
    assert digest.empty and digest.overdue_count == 0


# ---------------------------------------------------------------------- sending them

def _staff_outbox():
    from survey.mail.models import OutboxMessage

    db.session.expire_all()
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.user_id.is_not(None))
                              .order_by(OutboxMessage.id)).all()


def test_overdue_reviewers_and_the_chair_get_one_email_each_per_week(app, member, submit, smtp_server, monkeypatch):
    from survey.claims.reminders import queue_committee_reminders, week_number
    from survey.mail.sending import send_batch

    monkeypatch.setitem(app.config, "BABEL_DEFAULT_LOCALE", "en")  # staff emails use the service's language

    a, b = member(), member()
    chair = member(role="chair")
    first, second = submit(("new_job", "raise"))
    _assigned_ago(first, 8)
    _assigned_ago(second, 9)

    assert queue_committee_reminders(utcnow()) == 3  # a, b and the chair
    db.session.commit()
    assert queue_committee_reminders(utcnow()) == 0  # however often beat runs it, once a week
    assert {(row.user_id, row.kind, row.sequence) for row in _staff_outbox()} == {
        (a.id, "review_reminder", week_number(utcnow())), (b.id, "review_reminder", week_number(utcnow())),
        (chair.id, "chair_digest", week_number(utcnow()))}

    send_batch(50)  # the survey invitations too
    caught = {message["to"][0]: message["message"] for message in smtp_server.messages
              if message["to"][0].endswith("@staff.example")}
    assert set(caught) == {a.email, b.email, chair.email}
    reminder = caught[a.email]
    assert reminder["Subject"] == "Impact committee: 2 claims wait for your review"
    body = reminder.get_body(("plain",)).get_content()
    assert f"/committee/claims/{second.id}" in body and f"/committee/claims/{first.id}" in body
    assert body.index(f"#{second.id}") < body.index(f"#{first.id}")  # the longest wait first
    digest = caught[chair.email].get_body(("plain",)).get_content()
    assert "Overdue reviews: 4" in digest
    assert "List-Unsubscribe" not in caught[chair.email]  # staff emails are part of the job


def test_each_member_s_email_is_in_the_language_they_use_the_service_in(app, member, submit, smtp_server,
                                                                        monkeypatch):
    from survey.claims.reminders import queue_committee_reminders
    from survey.mail.sending import send_batch

    monkeypatch.setitem(app.config, "BABEL_DEFAULT_LOCALE", "en")
    french, english, never_logged_in = member(), member(), member()
    french.locale, english.locale = "fr", "en"  # as their last login recorded (tests/accounts)
    for claim in submit(("new_job", "raise", "promotion")):
        _assigned_ago(claim, 8)
    queue_committee_reminders(utcnow())
    db.session.commit()

    send_batch(50)
    subjects = {message["to"][0]: message["message"]["Subject"] for message in smtp_server.messages}
    assert subjects[french.email].startswith("Comité d’impact :")
    assert subjects[english.email].startswith("Impact committee")
    assert subjects[never_logged_in.email].startswith("Impact committee")  # the default language


def test_a_reminder_queued_before_the_vote_is_not_sent_after_it(member, submit, smtp_server):
    from survey.claims.reminders import queue_committee_reminders
    from survey.mail.sending import send_batch

    a, b = member(), member()
    [claim] = submit()
    _assigned_ago(claim, 8)
    queue_committee_reminders(utcnow())
    db.session.commit()
    _vote(claim, a, "approve")

    send_batch(50)
    assert [message["to"][0] for message in smtp_server.messages
            if message["to"][0].endswith("@staff.example")] == [b.email]
    cancelled = [row for row in _staff_outbox() if row.user_id == a.id]
    assert cancelled[0].status == "cancelled" and "overdue" in cancelled[0].smtp_reply
