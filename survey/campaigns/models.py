"""Campaigns, invitations (one per person and campaign) and responses."""
from __future__ import annotations

import uuid
from datetime import datetime, time

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Time,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from survey.audiences.models import Stakeholder
from survey.core.types import JSONType, UTCDateTime, utcnow
from survey.extensions import db
from survey.questionnaires.models import Questionnaire

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "open", "closed")
PRIVACY_MODES = ("identified", "confidential", "anonymous")
INVITATION_STATUSES = (
    "queued", "sent", "failed", "bounced", "opened", "started", "completed", "opted_out",
)


class Campaign(db.Model):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(f"status IN {CAMPAIGN_STATUSES!r}", name="status_known"),
        CheckConstraint(f"privacy IN {PRIVACY_MODES!r}", name="privacy_known"),
        CheckConstraint("closes_at > send_at", name="closes_after_send"),
        CheckConstraint("status = 'draft' OR scheduled_at IS NOT NULL", name="scheduled_has_time"),
        CheckConstraint("(quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)", name="quiet_hours_whole"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    questionnaire_id: Mapped[int] = mapped_column(ForeignKey("questionnaires.id"))
    #: which stakeholders: their kind, and attribute values they must all have
    audience_kind: Mapped[str] = mapped_column(String(20))
    audience_filters: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: ``identified``, ``confidential`` (linked, aggregates only) or ``anonymous``
    privacy: Mapped[str] = mapped_column(String(20), default="identified")
    #: when invitations go out, and when links stop accepting answers
    send_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: ISO 8601 durations after the invitation, e.g. ["P3D", "P7D"]
    reminders: Mapped[list] = mapped_column(JSONType, default=list)
    #: no reminder goes out between these local times of the recipient (e.g. 20:00 → 08:00);
    #: both NULL: reminders at any hour
    quiet_hours_start: Mapped[time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[time | None] = mapped_column(Time)
    #: draft → scheduled → sending → open → closed (see campaigns/services.py)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when sending started: the first invitations were created and queued
    sending_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when every invitation existed (a large audience is invited a chunk per transaction,
    #: while the first emails go out); NULL while they are still being made
    invitations_made_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: a worker making the invitations holds the campaign until then; past it, beat resumes
    invitations_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    questionnaire: Mapped[Questionnaire] = relationship()


class Invitation(db.Model):
    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("campaign_id", "stakeholder_id"),
        CheckConstraint(f"status IN {INVITATION_STATUSES!r}", name="status_known"),
        Index("ix_invitations_campaign_status", "campaign_id", "status"),
        Index("ix_invitations_next_reminder_at", "next_reminder_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    stakeholder_id: Mapped[int] = mapped_column(ForeignKey("stakeholders.id"))
    #: random per invitation; with SECRET_KEY it derives the link token
    token_nonce: Mapped[str] = mapped_column(String(32))
    #: SHA-256 of the link token: the only trace of the token we keep
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: SHA-256 of the opt-out token in the List-Unsubscribe link (derived like the link token)
    unsubscribe_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: the latest of: queued, sent, failed, bounced, opened, started, completed, opted_out
    status: Mapped[str] = mapped_column(String(20), default="queued")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: reminders already sent
    reminders_sent: Mapped[int] = mapped_column(default=0)
    #: when the next reminder falls due; NULL while one is queued, and when none is left
    next_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when the person asked for no more email about this campaign (or at all)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    campaign: Mapped[Campaign] = relationship()
    stakeholder: Mapped[Stakeholder] = relationship()
    #: the saved, not yet submitted answers, if any (read with the invitation: the survey
    #: page needs both); written through the services, never through this attribute
    draft: Mapped[Response | None] = relationship(
        "Response", primaryjoin="and_(Response.invitation_id == Invitation.id, Response.submitted_at.is_(None))",
        foreign_keys="Response.invitation_id", uselist=False, viewonly=True)


class Response(db.Model):
    """Answers to one campaign.

    In ``anonymous`` campaigns the link to the invitation is cut at submission
    and only the day of submission is kept; the invitation keeps "has answered".
    """

    __tablename__ = "responses"
    __table_args__ = (
        CheckConstraint("submitted_at IS NOT NULL OR invitation_id IS NOT NULL", name="draft_is_linked"),
        # the daily purge's queue: answers at one level, oldest first (privacy.retention)
        Index("ix_responses_retention", "retention_level", "submitted_at", "id"),
    )

    #: random, so row ids say nothing about who answered when
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    #: NULL once an anonymous response is submitted
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id"), unique=True)
    #: question id → value, as validated against the questionnaire version
    answers: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: the language the respondent answered in
    locale: Mapped[str] = mapped_column(String(5))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the groups the respondent belonged to when answering ({"department": "Sales"}), copied at
    #: submission so aggregates need no link to the person; in anonymous campaigns a group
    #: smaller than the reporting threshold is not kept
    segment: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: how far the retention policy has stripped the answer (privacy.retention): 0 not yet,
    #: 1 its files, 2 its free text and files; the daily purge reads only answers whose age
    #: asks for more than they have had, never the whole history again
    retention_level: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
