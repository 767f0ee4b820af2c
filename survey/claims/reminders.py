"""What the committee's reminders say: the reviews that are overdue, per reviewer, and
the chair's digest. Selection only; the emails go through the outbox (see sending).

A review is overdue when it is active, not voted on, its claim is in review, and it
has been waiting longer than REVIEW_DEADLINE_DAYS. It waits from its assignment or,
when the respondent added evidence since (a new round), from the claim's return to
review: a reviewer is never chased the day after new evidence came in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import String, and_, cast, exists, func, literal, select
from sqlalchemy.orm import selectinload

from survey.accounts.models import User
from survey.audit.models import AuditEvent
from survey.claims.models import Claim, Review
from survey.claims.services import REVIEWER_ROLE, awaiting_chair
from survey.extensions import db


@dataclass
class OverdueReview:
    review_id: int
    claim_id: int
    outcome_type: str
    assigned_at: datetime
    #: the assignment, or the claim's last return to review if later
    waiting_since: datetime


@dataclass
class ReviewerOverdue:
    reviewer: User
    #: oldest first
    reviews: list[OverdueReview] = field(default_factory=list)


@dataclass
class ChairDigest:
    now: datetime
    deadline_days: float
    #: per reviewer, the reviewers with the oldest waits first
    overdue: list[ReviewerOverdue]
    #: claims whose votes are all in and settle nothing: the chair decides (oldest first)
    awaiting_chair: list[Claim]
    #: claims in review with fewer active reviewers than REVIEWERS_PER_CLAIM
    short_of_reviewers: list[Claim]

    @property
    def overdue_count(self) -> int:
        return sum(len(item.reviews) for item in self.overdue)

    @property
    def empty(self) -> bool:
        return not (self.overdue or self.awaiting_chair or self.short_of_reviewers)


def _subject_of_claim():
    """``'claim:' || claims.id``, the audit subject of a claim, in SQL."""
    return literal("claim:", String) + cast(Claim.id, String)


def _back_in_review():
    """When the claim last returned to review (new evidence), as a correlated subquery."""
    return (
        select(func.max(AuditEvent.at))
        .where(AuditEvent.subject == _subject_of_claim(), AuditEvent.action == "transition",
               AuditEvent.from_state == "needs_evidence", AuditEvent.to_state == "in_review")
        .correlate(Claim).scalar_subquery()
    )


def overdue_reviews(now: datetime) -> list[ReviewerOverdue]:
    """The overdue reviews, grouped per reviewer (active committee members only)."""
    cutoff = now - timedelta(days=current_app.config["REVIEW_DEADLINE_DAYS"])
    resumed_since_cutoff = exists().where(
        AuditEvent.subject == _subject_of_claim(), AuditEvent.action == "transition",
        AuditEvent.from_state == "needs_evidence", AuditEvent.to_state == "in_review",
        AuditEvent.at >= cutoff,
    )
    rows = db.session.execute(
        select(Review.id, Review.reviewer_id, Review.assigned_at, Claim.id, Claim.outcome_type,
               _back_in_review().label("resumed_at"))
        .join(Claim, Claim.id == Review.claim_id)
        .join(User, User.id == Review.reviewer_id)
        .where(Review.active.is_(True), Review.verdict.is_(None), Review.assigned_at < cutoff,
               Claim.state == "in_review", ~resumed_since_cutoff,
               User.active.is_(True), User.role == REVIEWER_ROLE)
        .order_by(Review.reviewer_id, Review.assigned_at, Review.id)
    ).all()
    if not rows:
        return []
    reviewers = {user.id: user for user in db.session.scalars(
        select(User).where(User.id.in_({row[1] for row in rows})))}
    grouped: dict[int, ReviewerOverdue] = {}
    for review_id, reviewer_id, assigned_at, claim_id, outcome_type, resumed_at in rows:
        if resumed_at is not None and resumed_at.tzinfo is None:  # a bare subquery skips the column type
            resumed_at = resumed_at.replace(tzinfo=assigned_at.tzinfo)
        waiting_since = max(assigned_at, resumed_at) if resumed_at is not None else assigned_at
        grouped.setdefault(reviewer_id, ReviewerOverdue(reviewers[reviewer_id])).reviews.append(
            OverdueReview(review_id, claim_id, outcome_type, assigned_at, waiting_since))
    for item in grouped.values():
        item.reviews.sort(key=lambda review: (review.waiting_since, review.review_id))
    return sorted(grouped.values(), key=lambda item: (item.reviews[0].waiting_since, item.reviewer.id))


def claims_awaiting_chair() -> list[Claim]:
    """Claims in review whose active reviews have all voted and that the policy leaves to
    the chair (``services.awaiting_chair``, applied to the few candidates SQL finds)."""
    unvoted = exists().where(Review.claim_id == Claim.id, Review.active.is_(True), Review.verdict.is_(None))
    voted = exists().where(Review.claim_id == Claim.id, Review.active.is_(True), Review.verdict.is_not(None))
    candidates = db.session.scalars(
        select(Claim).options(selectinload(Claim.reviews))
        .where(Claim.state == "in_review", voted, ~unvoted)
        .order_by(Claim.created_at, Claim.id)
    ).all()
    return [claim for claim in candidates if awaiting_chair(claim)]


def claims_short_of_reviewers() -> list[Claim]:
    """Claims in review with fewer active reviewers than the policy wants (conflicts,
    exclusions or too small a committee left them short)."""
    wanted = current_app.config["REVIEWERS_PER_CLAIM"]
    active = (
        select(func.count(Review.id)).where(and_(Review.claim_id == Claim.id, Review.active.is_(True)))
        .correlate(Claim).scalar_subquery()
    )
    return db.session.scalars(
        select(Claim).where(Claim.state == "in_review", active < wanted).order_by(Claim.created_at, Claim.id)
    ).all()


def chair_digest(now: datetime) -> ChairDigest:
    """What the chair's digest says at ``now``."""
    return ChairDigest(
        now=now, deadline_days=current_app.config["REVIEW_DEADLINE_DAYS"], overdue=overdue_reviews(now),
        awaiting_chair=claims_awaiting_chair(), short_of_reviewers=claims_short_of_reviewers(),
    )


def week_number(now: datetime) -> int:
    """2026-W48 → 202648: the sequence of a weekly staff email (one per person and week)."""
    year, week, _day = now.isocalendar()
    return year * 100 + week


def queue_committee_reminders(now: datetime) -> int:
    """Queue this week's reminder to each reviewer with overdue reviews, and the chair's
    digest when something waits; at most one of each per person and week, however often
    it runs (the outbox's unique key). Flushes; returns how many were queued."""
    from survey.mail.models import OutboxMessage

    week = week_number(now)
    wanted = [(item.reviewer.id, "review_reminder") for item in overdue_reviews(now)]
    if not chair_digest(now).empty:
        chairs = db.session.scalars(select(User.id).where(User.role == "chair", User.active.is_(True)))
        wanted += [(chair_id, "chair_digest") for chair_id in chairs]
    if not wanted:
        return 0
    already = set(db.session.execute(
        select(OutboxMessage.user_id, OutboxMessage.kind)
        .where(OutboxMessage.sequence == week, OutboxMessage.user_id.in_({user_id for user_id, _ in wanted}))
    ).all())
    queued = 0
    for user_id, kind in wanted:
        if (user_id, kind) not in already:
            db.session.add(OutboxMessage(user_id=user_id, kind=kind, sequence=week, next_attempt_at=now))
            queued += 1
    db.session.flush()
    return queued
