"""Stakeholders: alumni and employees, one row per normalised email."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from survey.core.types import JSONType, UTCDateTime, utcnow
from survey.extensions import db

KINDS = ("alumnus", "employee")


#: the suppression reason of a person whose personal data was erased (privacy.erasure)
ERASED = "erased"


def display_name(first_name: str, last_name: str, email: str) -> str:
    """How a person is named in an email: their names, or their address when they have none."""
    return " ".join(part for part in (first_name, last_name) if part) or email


class Stakeholder(db.Model):
    __tablename__ = "stakeholders"
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS!r}", name="kind_known"),
        CheckConstraint("locale IN ('fr', 'en')", name="locale_known"),
        CheckConstraint(
            "(suppressed_at IS NULL) = (suppression_reason IS NULL)", name="suppression_has_reason"
        ),
        Index("ix_stakeholders_kind_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``alumnus`` or ``employee``
    kind: Mapped[str] = mapped_column(String(20))
    #: normalised: trimmed, domain lower-cased (and the local part, see importer)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    #: ``fr`` or ``en``: the language of their emails and survey pages
    locale: Mapped[str] = mapped_column(String(5))
    #: IANA time zone name, used for reminder quiet hours
    timezone: Mapped[str] = mapped_column(String(64))
    #: cohort, programme, completion date, department… as imported
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)
    #: set when the person opted out or hard-bounced; no email is sent then
    suppressed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suppression_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def erased(self) -> bool:
        """Only a stub is left: their personal data was erased (privacy.erasure)."""
        return self.suppression_reason == ERASED

    @property
    def display_name(self) -> str:
        return display_name(self.first_name, self.last_name, self.email)
