"""A questionnaire version: one row per (slug, version), its definition as JSON."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from survey.core.types import JSONType, UTCDateTime, utcnow
from survey.extensions import db


class Questionnaire(db.Model):
    __tablename__ = "questionnaires"
    __table_args__ = (UniqueConstraint("slug", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: stable name shared by all versions, e.g. ``alumni-outcomes``
    slug: Mapped[str] = mapped_column(String(100))
    #: 1, 2, 3… per slug
    version: Mapped[int]
    #: audience kind it is written for: ``alumnus`` or ``employee``
    kind: Mapped[str] = mapped_column(String(20))
    #: the validated definition (see survey/questionnaires/schema.json)
    definition: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: set when a campaign first uses this version; it never changes afterwards
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def title(self, locale: str) -> str:
        titles = self.definition.get("title", {})
        return titles.get(locale) or titles.get("en") or titles.get("fr") or self.slug

    @property
    def questions(self) -> list[dict]:
        return self.definition["questions"]
