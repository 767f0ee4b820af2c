"""Users who log in, and keys that integrators use for the API."""
from __future__ import annotations

import enum
import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from survey.core.types import JSONType, UTCDateTime, utcnow
from survey.extensions import db


class Role(str, enum.Enum):
    #: writes questionnaires, imports audiences, runs campaigns
    admin = "admin"
    #: reviews claims and votes
    committee = "committee"
    #: settles split votes, revokes, publishes
    chair = "chair"
    #: reads everything, changes nothing
    auditor = "auditor"


ROLE_VALUES = tuple(r.value for r in Role)


def new_session_token() -> str:
    return secrets.token_urlsafe(24)


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLE_VALUES!r}", name="role_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: lower-cased login
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    #: argon2id hash, never the password
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(default=True)
    #: facts the reviewer-exclusion rules compare with a claimant's (e.g. cohort, team)
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: a random value inside every session cookie of this user (``get_id``); replaced on
    #: logout and on a password change, which ends every session that holds the old one
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)
    #: the language they use the service in (at their last login, or chosen since with the
    #: language switch); their emails are in it. NULL: not logged in yet (the default language)
    locale: Mapped[str | None] = mapped_column(String(8))

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        """Flask-Login's "alternative token": the id and the session token, so a session
        whose token has since been replaced no longer loads its user (accounts.access)."""
        return f"{self.id}:{self.session_token}"

    def end_sessions(self) -> None:
        """Every session of this user stops working (the caller logs this one in again if needed)."""
        self.session_token = new_session_token()


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: SHA-256 of the key; the key itself is shown once and never stored
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: first characters of the key, so an admin can tell keys apart
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: reads only (questionnaires, audiences, campaigns, reports): a dashboard's key
    read_only: Mapped[bool] = mapped_column(default=False)
