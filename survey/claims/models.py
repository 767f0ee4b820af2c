"""Claims, their evidence, the committee's reviews and declared conflicts of interest.

A claim's ``state`` changes only through ``workflows.claims.transition``, which
checks the one table of allowed transitions and writes the audit event.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from survey.accounts.models import User
from survey.audiences.models import Stakeholder
from survey.campaigns.models import Campaign, Response
from survey.core.types import JSONType, UTCDateTime, utcnow
from survey.extensions import db

CLAIM_STATES = ("submitted", "in_review", "needs_evidence", "proven", "rejected", "inconclusive",
                "revoked", "withdrawn")
OUTCOME_TYPES = ("new_job", "changed_employer", "promotion", "raise", "business_created")
VERDICTS = ("approve", "reject", "need_evidence", "abstain")
EVIDENCE_KINDS = ("file", "link", "contact")


class Claim(db.Model):
    __tablename__ = "claims"
    __table_args__ = (
        UniqueConstraint("response_id", "outcome_type"),
        CheckConstraint(f"state IN {CLAIM_STATES!r}", name="state_known"),
        CheckConstraint(f"outcome_type IN {OUTCOME_TYPES!r}", name="outcome_known"),
        CheckConstraint("state NOT IN ('proven', 'rejected', 'inconclusive', 'revoked') OR decided_at IS NOT NULL",
                        name="decision_has_time"),
        CheckConstraint("state <> 'revoked' OR revoked_reason IS NOT NULL", name="revocation_has_reason"),
        Index("ix_claims_state_created_at", "state", "created_at"),
        Index("ix_claims_created_at_id", "created_at", "id"),  # the chair's list, oldest first
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("responses.id"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    #: the person who claims the outcome (claims come from identified responses only)
    stakeholder_id: Mapped[int] = mapped_column(ForeignKey("stakeholders.id"), index=True)
    #: new_job, changed_employer, promotion, raise or business_created
    outcome_type: Mapped[str] = mapped_column(String(30))
    #: what the respondent said about it: employer, role, business, start date, salary change…
    details: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: how much the respondent credits the course (the questionnaire's scale), if given
    attribution: Mapped[int | None] = mapped_column()
    #: submitted → in_review → (needs_evidence → in_review)* → proven | rejected | inconclusive;
    #: proven → revoked; submitted | in_review | needs_evidence → withdrawn
    state: Mapped[str] = mapped_column(String(20), default="submitted")
    #: random per claim; with SECRET_KEY it derives the respondent's evidence link
    token_nonce: Mapped[str] = mapped_column(String(32))
    #: SHA-256 of that link's token
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: the policy's or the chair's decision: when, by whom (NULL: the policy), why
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    revoked_reason: Mapped[str | None] = mapped_column(Text)

    response: Mapped[Response] = relationship()
    campaign: Mapped[Campaign] = relationship()
    claimant: Mapped[Stakeholder] = relationship()
    evidence: Mapped[list["Evidence"]] = relationship(back_populates="claim", order_by="Evidence.id")
    reviews: Mapped[list["Review"]] = relationship(back_populates="claim", order_by="Review.id")

    @property
    def audit_subject(self) -> str:
        """What the audit trail calls it (survey.audit.chain.record)."""
        return f"claim:{self.id}"


class Evidence(db.Model):
    """One piece of evidence: a file, a link or an employer contact."""

    __tablename__ = "evidence"
    __table_args__ = (
        CheckConstraint(f"kind IN {EVIDENCE_KINDS!r}", name="kind_known"),
        CheckConstraint("kind <> 'file' OR stored_as IS NOT NULL", name="file_is_stored"),
        CheckConstraint("kind <> 'link' OR url IS NOT NULL", name="link_has_url"),
        CheckConstraint("kind <> 'contact' OR contact IS NOT NULL", name="contact_is_given"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    #: file, link or contact
    kind: Mapped[str] = mapped_column(String(10))
    #: how it can be verified: "document from the respondent", "public profile", "employer contact"…
    source: Mapped[str] = mapped_column(String(100))
    #: a file: its random name under EVIDENCE_DIR, the name it was sent with, its type (from its bytes), size
    stored_as: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(200))
    media_type: Mapped[str | None] = mapped_column(String(50))
    size: Mapped[int | None] = mapped_column()
    url: Mapped[str | None] = mapped_column(String(2000))
    #: an employer contact: name, role, email or phone, as the respondent gave it
    contact: Mapped[str | None] = mapped_column(Text)
    #: SHA-256 of the file's bytes, or of the link or contact text
    sha256: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    claim: Mapped[Claim] = relationship(back_populates="evidence")


class Review(db.Model):
    """One reviewer's part in one claim: assigned, then a verdict or a declared conflict."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("claim_id", "reviewer_id"),
        CheckConstraint(f"verdict IS NULL OR verdict IN {VERDICTS!r}", name="verdict_known"),
        CheckConstraint("(verdict IS NULL) = (voted_at IS NULL)", name="verdict_has_time"),
        Index("ix_reviews_reviewer_active", "reviewer_id", "active"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: approve, reject, need_evidence or abstain; NULL until the reviewer votes
    verdict: Mapped[str | None] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text, default="")
    voted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: False once the reviewer declared a conflict or the chair reassigned the claim
    active: Mapped[bool] = mapped_column(default=True)
    #: set when the reviewer declared a conflict of interest on this claim
    conflict_declared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: evidence round this verdict is about (a new round starts when evidence is added)
    round: Mapped[int] = mapped_column(default=1)

    claim: Mapped[Claim] = relationship(back_populates="reviews")
    reviewer: Mapped[User] = relationship()


class Conflict(db.Model):
    """A committee member's declared conflict with a person: never their reviewer."""

    __tablename__ = "conflicts"
    __table_args__ = (UniqueConstraint("user_id", "stakeholder_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    stakeholder_id: Mapped[int] = mapped_column(ForeignKey("stakeholders.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
