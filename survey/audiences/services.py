"""Audience services: importing a file of stakeholders, and selecting an audience.

``import_audience`` upserts by email in chunks, with one SELECT, one bulk INSERT and one
bulk UPDATE per chunk, so a file of thousands of people costs a handful of queries. It
flushes but does not commit: the caller (a view, the CLI) owns the transaction.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, Select, func, insert, select, update

from survey.audiences.importer import ParsedRow, parse_audience
from survey.audiences.models import KINDS, Stakeholder
from survey.core.errors import ValidationFailed
from survey.core.i18n import LazyText
from survey.core.types import utcnow
from survey.extensions import db

#: Rows per SELECT / INSERT / UPDATE; well under SQLite's 32,766 bound parameters.
CHUNK_SIZE = 500


@dataclass
class ImportReport:
    """What an import did. The reasons are lazy texts: the import page reads them in the
    admin's language; ``as_dict`` (the API's report) gives them in English."""

    created: int = 0
    updated: int = 0
    #: ``{"line": n, "reason": "…"}`` for every line that was not stored
    rejected: list[dict] = field(default_factory=list)
    #: why the file as a whole could not be read, if it could not (then nothing was stored)
    unreadable: LazyText | None = None

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON, in English."""
        with force_locale("en"):
            rejected = [{"line": r["line"], "reason": str(r["reason"])} for r in self.rejected]
        return {"created": self.created, "updated": self.updated, "rejected": rejected}


def import_audience(data: bytes, kind: str) -> ImportReport:
    """Create or update one stakeholder per valid row of ``data`` (an audience CSV file)."""
    _check_kind(kind)
    # A blank language or time zone means "not given": a new person gets the configured
    # default, a known person keeps what we have.
    parsed = parse_audience(data, default_locale="", default_timezone="")
    defaults = {"locale": current_app.config["BABEL_DEFAULT_LOCALE"],
                "timezone": current_app.config["DEFAULT_TIMEZONE"]}
    report = ImportReport(rejected=[{"line": r.line, "reason": r.reason} for r in parsed.rejected],
                          unreadable=parsed.unreadable)
    now = utcnow()
    for chunk in _chunks(parsed.rows, CHUNK_SIZE):
        existing = _existing_by_email([row.email for row in chunk])
        new_rows = [_insert_values(row, kind, now, defaults) for row in chunk if row.email not in existing]
        changes = [_update_values(row, kind, now, existing[row.email])
                   for row in chunk if row.email in existing]
        if new_rows:
            db.session.execute(insert(Stakeholder), new_rows)
        if changes:
            db.session.execute(update(Stakeholder), changes)
            _expire_loaded(change["id"] for change in changes)
        report.created += len(new_rows)
        report.updated += len(changes)
    db.session.flush()
    return report


def matching_stakeholders(kind: str, filters: dict[str, Any]) -> Select:
    """The stakeholders of ``kind`` whose attributes equal every ``filters`` value, by id."""
    return select(Stakeholder).where(*audience_conditions(kind, filters)).order_by(Stakeholder.id)


def audience_size(kind: str, filters: dict[str, Any]) -> int:
    """How many stakeholders ``matching_stakeholders`` would return."""
    statement = select(func.count()).select_from(Stakeholder).where(*audience_conditions(kind, filters))
    return db.session.execute(statement).scalar_one()


# --- helpers ----------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValidationFailed(
            _l("Unknown audience kind “%(kind)s”; use one of %(kinds)s.", kind=kind, kinds=", ".join(KINDS)),
            kind=kind,
        )


def audience_conditions(kind: str, filters: dict[str, Any], *, reachable_only: bool = False
                        ) -> list[ColumnElement[bool]]:
    """WHERE clauses for an audience; ``reachable_only`` leaves out the opted-out and bounced."""
    _check_kind(kind)
    # ``as_string`` reads the JSON value as text on both SQLite (JSON) and PostgreSQL (JSONB).
    conditions = [Stakeholder.kind == kind] + [
        Stakeholder.attributes[key].as_string() == str(value) for key, value in filters.items()
    ]
    if reachable_only:
        conditions.append(Stakeholder.suppressed_at.is_(None))
    return conditions


def _chunks(rows: Sequence[ParsedRow], size: int) -> Iterator[Sequence[ParsedRow]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _existing_by_email(emails: list[str]) -> dict[str, Any]:
    """The stored rows (id, names, attributes) for these emails, in one SELECT."""
    statement = select(
        Stakeholder.id, Stakeholder.email, Stakeholder.first_name, Stakeholder.last_name,
        Stakeholder.locale, Stakeholder.timezone, Stakeholder.attributes,
    ).where(Stakeholder.email.in_(emails))
    return {row.email: row for row in db.session.execute(statement)}


def _insert_values(row: ParsedRow, kind: str, now, defaults: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": kind, "email": row.email, "first_name": row.first_name,
        "last_name": row.last_name, "locale": row.locale or defaults["locale"],
        "timezone": row.timezone or defaults["timezone"],
        "attributes": dict(row.attributes), "created_at": now, "updated_at": now,
    }


def _update_values(row: ParsedRow, kind: str, now, stored) -> dict[str, Any]:
    # Suppression (opt-out, bounce) is never touched: a re-import must not resurrect anyone.
    return {
        "id": stored.id,
        "kind": kind,
        # A blank cell in the file (or no such column) keeps the value we have.
        "first_name": row.first_name or stored.first_name,
        "last_name": row.last_name or stored.last_name,
        "locale": row.locale or stored.locale,
        "timezone": row.timezone or stored.timezone,
        # The file's keys win; keys it does not mention are kept.
        "attributes": {**(stored.attributes or {}), **row.attributes},
        "updated_at": now,
    }


def _expire_loaded(ids) -> None:
    """Bulk UPDATE by primary key bypasses loaded objects: make them reload."""
    ids = set(ids)
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Stakeholder) and obj.id in ids:
            db.session.expire(obj)
