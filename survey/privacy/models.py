"""What erasure keeps on purpose: a keyed hash of the address of a person erased at their
request, so that the next audience import does not bring them back."""
from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from survey.core.tokens import derive_hex_token
from survey.core.types import UTCDateTime, utcnow
from survey.extensions import db


class ErasedAddress(db.Model):
    """Not the address: an HMAC of it (SECRET_KEY), which only a known address can match."""

    __tablename__ = "erased_addresses"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def address_hash(email: str) -> str:
    """The same for an address whatever its case or surrounding spaces."""
    return derive_hex_token(current_app.config["SECRET_KEY"], "erased-address", email.strip().lower(), 64)
