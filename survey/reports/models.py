"""Published reports and the auditor's samples.

A **snapshot** is a published report, frozen: its figures are stored as the exact
bytes served at ``/p/<slug>.json`` and never change afterwards (PostgreSQL refuses
UPDATE and DELETE on the table). A correction is a new snapshot naming the one it
replaces. Beside the figures, the snapshot freezes its **trace**: one row per claim
behind its figures, pseudonymised, with the decision as it stood at publication.

An **audit sample** is the auditor's random, reproducible draw of proven claims
from a snapshot's trace; each drawn claim gets a check (confirmed or not, a note).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from survey.accounts.models import User
from survey.core.types import JSONType, UTCDateTime, utcnow
from survey.extensions import db

CHECK_VERDICTS = ("confirmed", "not_confirmed")


class ReportSnapshot(db.Model):
    __tablename__ = "report_snapshots"
    __table_args__ = (
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("(replaces_id IS NULL) = (version = 1)", name="correction_names_predecessor"),
        CheckConstraint("replaces_id IS NULL OR correction_reason IS NOT NULL", name="correction_has_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the public address: /p/<slug> (random, so snapshots cannot be enumerated)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    #: 1 for a first publication, n + 1 for the correction of version n
    version: Mapped[int] = mapped_column(default=1)
    #: the snapshot this one corrects (each is corrected at most once)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("report_snapshots.id"), unique=True)
    correction_reason: Mapped[str | None] = mapped_column(Text)
    #: what was asked: campaigns, period, breakdowns, thresholds (also inside ``content``)
    parameters: Mapped[dict] = mapped_column(JSONType)
    #: the published document, canonical JSON, exactly as served
    content: Mapped[bytes] = mapped_column(LargeBinary)
    #: SHA-256 of ``content``
    content_sha256: Mapped[str] = mapped_column(String(64))
    #: SHA-256 over the rows the figures were computed from (invitations, answers, claims)
    inputs_sha256: Mapped[str] = mapped_column(String(64))
    #: the code that computed it (git commit, or the package version)
    code_version: Mapped[str] = mapped_column(String(80))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the audit chain's head at publication (also in ``content``): its last event and hash,
    #: so the trail's page can tell whether the trail still holds it (NULL: published before)
    audit_head_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"))
    audit_head_hash: Mapped[str | None] = mapped_column(String(64))

    published_by: Mapped[User] = relationship()
    replaces: Mapped["ReportSnapshot | None"] = relationship(remote_side=[id])


class SnapshotClaim(db.Model):
    """One claim behind a snapshot's figures, as it stood when the report was published."""

    __tablename__ = "snapshot_claims"
    __table_args__ = (
        UniqueConstraint("snapshot_id", "claim_id"),
        Index("ix_snapshot_claims_figure", "snapshot_id", "outcome_type", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("report_snapshots.id"))
    #: the live claim, for the auditor to open; NULL once the claim is erased
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id", ondelete="SET NULL"))
    #: the claimant, pseudonymised per snapshot: the same person has the same pseudonym
    #: within one snapshot, and unrelated ones across snapshots
    person: Mapped[str] = mapped_column(String(16))
    outcome_type: Mapped[str] = mapped_column(String(30))
    #: the claim's state at publication
    state: Mapped[str] = mapped_column(String(20))
    #: how it was decided: "policy" or "chair"; NULL while pending
    decided_by: Mapped[str | None] = mapped_column(String(10))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the votes of the deciding round: {"approve": 2, "reject": 0, ...}
    votes: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: evidence items at publication, by kind: {"file": 1, "link": 0, "contact": 1}
    evidence: Mapped[dict] = mapped_column(JSONType, default=dict)


class AuditSample(db.Model):
    """A random draw of a snapshot's proven claims: the seed makes it reproducible."""

    __tablename__ = "audit_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("report_snapshots.id"), index=True)
    #: random.Random(seed).sample(proven trace rows in id order, size) gives the draw
    seed: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column()
    drawn_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    drawn_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    snapshot: Mapped[ReportSnapshot] = relationship()
    drawn_by: Mapped[User] = relationship()
    checks: Mapped[list["SampleCheck"]] = relationship(back_populates="sample", order_by="SampleCheck.position")


class SampleCheck(db.Model):
    """The auditor's re-check of one drawn claim."""

    __tablename__ = "sample_checks"
    __table_args__ = (
        UniqueConstraint("sample_id", "position"),
        UniqueConstraint("sample_id", "snapshot_claim_id"),
        CheckConstraint(f"verdict IS NULL OR verdict IN {CHECK_VERDICTS!r}", name="verdict_known"),
        CheckConstraint("(verdict IS NULL) = (checked_at IS NULL)", name="verdict_has_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("audit_samples.id"))
    #: the order of the draw (1 = first drawn)
    position: Mapped[int] = mapped_column()
    snapshot_claim_id: Mapped[int] = mapped_column(ForeignKey("snapshot_claims.id"))
    #: confirmed or not_confirmed; NULL until checked
    verdict: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    sample: Mapped[AuditSample] = relationship(back_populates="checks")
    claim: Mapped[SnapshotClaim] = relationship()
