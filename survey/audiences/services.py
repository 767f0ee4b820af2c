"""Audience services: importing a file of stakeholders, and selecting an audience.

``import_audience`` streams the file (``survey.audiences.importer``) into a temporary
staging table, a chunk of ``CHUNK_ROWS`` rows at a time, and works on it in SQL:

- each chunk's people are created with one INSERT … SELECT … ON CONFLICT (email) DO NOTHING,
  in line order: an email already there (a person we know, or one an earlier line of the
  file created) is left for later, so the first line with an email is the one that counts.
  On PostgreSQL a chunk is first COPYed straight into the people's table (the first line of
  each email in the chunk, under a savepoint): when none of them is there yet, the usual
  case for new people, that is all (COPY writes whole pages at a time; the INSERT's
  conflict check and row-at-a-time writes took over a quarter more of the database's time);
  when one is, the COPY is rolled back and the INSERT does the chunk;
- once the file is read, one query finds the lines whose email an earlier line gave (they
  are rejected), and, if some emails were people we already had, one UPDATE … FROM merges
  their first line into them.

Memory stays the same whatever the size of the file, and so does the number of statements
per chunk. On PostgreSQL the rows go in with COPY, and the database works on a chunk (in a
thread that waits on it) while the next one is read and checked: the file is read at the
speed of the database rather than before it.

It flushes but does not commit: the caller (a view, the CLI) owns the transaction, so an
import that fails half-way leaves nothing behind once the caller rolls back.
"""
from __future__ import annotations

import heapq
import queue
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from json.encoder import encode_basestring
from typing import IO, Any, BinaryIO

import psycopg
from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, Connection, Select, bindparam, func, select, text

from survey.audiences.importer import ParsedRow, Rejection, parse_audience
from survey.audiences.models import KINDS, Stakeholder
from survey.audit.chain import acting, record
from survey.core.errors import ValidationFailed
from survey.core.i18n import LazyText
from survey.core.types import UTCDateTime, utcnow
from survey.extensions import db
from survey.privacy.models import ErasedAddress, address_hash

#: Why the row of a person erased at their request is left out.
ERASED_AT_THEIR_REQUEST = _l("this person's data was erased at their request: they are not imported again")
#: Rejected lines listed in a report; ``ImportReport.rejected_total`` counts them all.
MAX_REPORTED_REJECTIONS = 1000
#: Rows staged, then created, at a time.
CHUNK_ROWS = 50_000
#: Rows per INSERT into the staging table on SQLite (PostgreSQL streams them with COPY).
STAGING_BATCH = 5000
#: Bytes of a chunk's COPY data held in memory on PostgreSQL; the rest waits in a temporary file.
SPOOL_IN_MEMORY = 1 << 20

#: ``progress(bytes_read, lines_read)``: how far into the file the import is (called as the
#: file is read, and at its end; the database then finishes its work).
Progress = Callable[[int, int], None]

#: The temporary tables of an import (in the connection's own schema of temporary tables,
#: never to be mistaken for a table of the application): the valid rows, and the lines
#: whose email an earlier line gave.
_ROWS = "audience_import"
_DUPLICATES = "audience_import_duplicates"
_ROW_COLUMNS = "line, email, first_name, last_name, locale, timezone, attributes"


@dataclass
class ImportReport:
    """What an import did. The reasons are lazy texts: the import page reads them in the
    admin's language; ``as_dict`` (the API's report) gives them in English."""

    created: int = 0
    updated: int = 0
    #: ``{"line": n, "reason": "…"}`` for the first ``MAX_REPORTED_REJECTIONS`` lines that
    #: were not stored, in line order
    rejected: list[dict] = field(default_factory=list)
    #: how many lines were not stored in all, listed or not
    rejected_total: int = 0
    #: why the file as a whole could not be read, if it could not (then nothing was stored)
    unreadable: LazyText | None = None

    @property
    def rejected_unlisted(self) -> int:
        """Rejected lines left out of ``rejected``."""
        return self.rejected_total - len(self.rejected)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON, in English."""
        with force_locale("en"):
            rejected = [{"line": r["line"], "reason": str(r["reason"])} for r in self.rejected]
        return {"created": self.created, "updated": self.updated, "rejected": rejected,
                "rejected_total": self.rejected_total}


def import_audience(source: bytes | BinaryIO, kind: str, *, progress: Progress | None = None) -> ImportReport:
    """Create or update one stakeholder per valid row of ``source``, an audience CSV file
    (a binary file object, read as it goes, or its bytes).

    Merge rules for a person we know (same email, whatever its case): a blank cell keeps
    the stored value; the file's attributes win, attributes it does not mention are kept;
    the kind is the file's; suppression (opt-out, bounce) is never touched.
    """
    _check_kind(kind)
    # A blank language or time zone means "not given": a new person gets the configured
    # default, a known person keeps what we have.
    reader = parse_audience(source, default_locale="", default_timezone="", progress=progress)
    db.session.flush()  # what the session holds must be in the tables the SQL below reads
    last_id = db.session.execute(select(func.coalesce(func.max(Stakeholder.id), 0))).scalar_one()
    merge = _Merge(kind, utcnow(), last_id, locale=current_app.config["BABEL_DEFAULT_LOCALE"],
                   timezone=current_app.config["DEFAULT_TIMEZONE"])
    rejections = _Rejections()
    # People erased at their request (``people erase``) stay out; usually there are none,
    # and then no row pays for the check.
    erased = set(db.session.scalars(select(ErasedAddress.address_hash)))
    with _Staging(db.session.connection(), merge) as staging:
        for item in reader:
            if item.__class__ is ParsedRow:
                if erased and address_hash(item.email) in erased:
                    rejections.add(Rejection(item.line, ERASED_AT_THEIR_REQUEST))
                else:
                    staging.add(item)
            else:
                rejections.add(item)
    # Every valid row created its person: no email came twice, and none was known.
    duplicates = staging.remove_duplicates() if merge.not_created else _Rejections()
    if merge.not_created > duplicates.total:  # some of the emails were people we had
        merge.updated = staging.update_known()
        _expire_loaded_stakeholders()
    staging.drop()

    report = ImportReport(created=merge.created, updated=merge.updated, unreadable=reader.unreadable)
    listed = heapq.merge(rejections.first, duplicates.first, key=lambda rejection: rejection.line)
    report.rejected = [{"line": r.line, "reason": r.reason} for r in islice(listed, MAX_REPORTED_REJECTIONS)]
    report.rejected_total = rejections.total + duplicates.total
    if not reader.unreadable:  # (an unreadable file changes nothing: its caller rolls back)
        record("audience_import", f"audience:{kind}", actor=acting(),
               data={"created": report.created, "updated": report.updated, "rejected": report.rejected_total})
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


class _Rejections:
    """The first ``MAX_REPORTED_REJECTIONS`` rejections, in line order, and how many in all."""

    def __init__(self, first: list[Rejection] | None = None, total: int = 0):
        self.first = first or []
        self.total = total

    def add(self, rejection: Rejection) -> None:
        self.total += 1
        if len(self.first) < MAX_REPORTED_REJECTIONS:
            self.first.append(rejection)


def _json_object(attributes: dict[str, str]) -> str:
    """``json.dumps`` of a flat object of strings, without its per-call overhead."""
    if not attributes:
        return "{}"
    return "{" + ",".join([f"{encode_basestring(k)}:{encode_basestring(v)}" for k, v in attributes.items()]) + "}"


def _copy_lines(row: ParsedRow, merge: _Merge, suffix: str) -> tuple[str, str]:
    """The row in COPY's text format: as staged (with its line), and as a new person
    (``_PERSON_COLUMNS``: the defaults for a blank language or time zone, then ``suffix``).
    No value holds a tab, a line break or any other control character (the importer
    removes them, JSON escapes them), so only the backslash needs escaping."""
    attributes = _json_object(row[6])
    staged = f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]}\t{row[4]}\t{row[5]}\t{attributes}\n"
    person = f"{row[1]}\t{row[2]}\t{row[3]}\t{row[4] or merge.locale}\t{row[5] or merge.timezone}\t{attributes}{suffix}"
    if "\\" in staged:
        return staged.replace("\\", "\\\\"), person.replace("\\", "\\\\")
    return staged, person


#: the columns of a chunk's people COPYed straight into the table
_PERSON_COLUMNS = "email, first_name, last_name, locale, timezone, attributes, kind, created_at, updated_at"


@dataclass
class _Merge:
    """How the rows of a file become stakeholders, and what that did so far."""

    kind: str
    #: the time of the import: ``created_at`` of the people it creates
    now: datetime
    #: the highest stakeholder id before the import: the people it creates have higher ones
    last_id: int
    #: for new people whose line gives none
    locale: str
    timezone: str
    created: int = 0
    #: valid rows whose email was there already: a person we had, or a repeat in the file
    not_created: int = 0
    updated: int = 0


@dataclass
class _Chunk:
    first_line: int
    last_line: int
    rows: int
    #: PostgreSQL: the rows in COPY's text format
    spool: IO[bytes] | None = None
    #: PostgreSQL: the chunk's people, the first line of each email in it, in COPY's text
    #: format (``_PERSON_COLUMNS``)
    people: IO[bytes] | None = None
    people_count: int = 0
    emails: set[str] = field(default_factory=set)

    def close(self) -> None:
        """Let go of the spooled lines (the chunk will not be copied)."""
        for spool in (self.spool, self.people):
            if spool is not None:
                spool.close()


class _Staging:
    """The temporary table of one import's valid rows, filled a chunk at a time; the people
    of each chunk are created as it is staged.

    Use it as a context manager: leaving it normally finishes the last chunk; leaving it on
    an error stops the work (the caller's rollback undoes it).
    """

    def __init__(self, connection: Connection, merge: _Merge):
        self.connection = connection
        self.merge = merge
        self.postgresql = connection.dialect.name == "postgresql"
        schema = "pg_temp" if self.postgresql else "temp"
        self.rows, self.duplicates = f"{schema}.{_ROWS}", f"{schema}.{_DUPLICATES}"
        self.on_commit = " ON COMMIT DROP" if self.postgresql else ""
        self._chunk: _Chunk | None = None
        self._pending: list = []  # PostgreSQL: COPY lines; SQLite: rows to insert
        self._people: list[str] = []  # PostgreSQL: the chunk's people as COPY lines
        now = merge.now.isoformat()
        self._person_suffix = f"\t{merge.kind}\t{now}\t{now}\n"
        self._worker = _Worker(self._copy_and_create) if self.postgresql else None
        self._analysed = False

    def __enter__(self) -> _Staging:
        # A temporary table outlives a rollback on SQLite (created outside a transaction).
        self._execute(f"DROP TABLE IF EXISTS {self.rows}")
        self._execute(f"DROP TABLE IF EXISTS {self.duplicates}")
        attributes = "JSONB" if self.postgresql else "TEXT"
        # The line is the key: each chunk is read back by its lines, in their order.
        self._execute(
            f"CREATE TEMPORARY TABLE {self.rows} (line INTEGER PRIMARY KEY, email TEXT NOT NULL, "
            "first_name TEXT NOT NULL, last_name TEXT NOT NULL, locale TEXT NOT NULL, "
            f"timezone TEXT NOT NULL, attributes {attributes} NOT NULL){self.on_commit}")
        if self._worker is not None:
            self._worker.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            try:
                self._end_chunk()
                if self._worker is not None:
                    self._worker.finish()
                return
            except BaseException:
                self._abandon()
                raise
        self._abandon()

    def _abandon(self) -> None:
        """Stop on an error: the work done so far is the caller's to roll back."""
        if self._worker is not None:
            self._worker.stop()
        if self._chunk is not None:
            self._chunk.close()

    def _execute(self, sql: str, **parameters):
        return self.connection.execute(text(sql), parameters)

    # --- staging and creating, a chunk at a time ---

    def add(self, row: ParsedRow) -> None:
        """Stage a row (a ``ParsedRow`` has the staging table's columns, in its order)."""
        chunk = self._chunk
        if chunk is None:
            chunk = self._chunk = _Chunk(row[0], row[0], 0)
        chunk.last_line = row[0]
        chunk.rows += 1
        pending = self._pending
        if self.postgresql:
            staged, person = _copy_lines(row, self.merge, self._person_suffix)
            pending.append(staged)
            if row[1] not in chunk.emails:  # a repeat in the chunk is staged only (and rejected)
                chunk.emails.add(row[1])
                self._people.append(person)
            if len(pending) == STAGING_BATCH:
                self._spool(chunk)
        else:
            pending.append((*row[:6], _json_object(row[6])))
            if len(pending) == STAGING_BATCH:
                self._insert_pending()
        if chunk.rows == CHUNK_ROWS:
            self._end_chunk()

    def _spool(self, chunk: _Chunk) -> None:
        if chunk.spool is None:
            chunk.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
            chunk.people = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        chunk.spool.write("".join(self._pending).encode())
        chunk.people.write("".join(self._people).encode())
        self._pending.clear()
        self._people.clear()

    def _insert_pending(self) -> None:
        self.connection.exec_driver_sql(
            f"INSERT INTO {self.rows} ({_ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", self._pending)
        self._pending.clear()

    def _end_chunk(self) -> None:
        chunk, self._chunk = self._chunk, None
        if chunk is None:
            return
        if self.postgresql:
            self._spool(chunk)
            chunk.people_count, chunk.emails = len(chunk.emails), set()  # one person per email in the chunk
            self._worker.submit(chunk)  # copied and created while the next chunk is read
        else:
            if self._pending:
                self._insert_pending()
            self._create(chunk)

    def _copy_and_create(self, chunk: _Chunk) -> None:
        """In the worker: COPY the chunk (psycopg, on the session's connection and in its
        transaction), then create its people."""
        driver = self.connection.connection.driver_connection
        with chunk.spool as spool, driver.cursor() as cursor:
            _copy(cursor, f"COPY {self.rows} ({_ROW_COLUMNS}) FROM STDIN", spool)
        if not self._analysed:
            # No autovacuum for a temporary table: without statistics PostgreSQL guesses a
            # few thousand rows per chunk and sorts what the primary key gives in order
            # (5 % of the INSERTs' time at a million rows). Once is enough: lines only grow.
            self._execute(f"ANALYZE {self.rows}")
            self._analysed = True
        if not self._copy_people(chunk, driver):
            self._create(chunk)

    def _copy_people(self, chunk: _Chunk, driver) -> bool:
        """COPY the chunk's people straight into the table, if none of their emails is
        there yet (a person we had, or one an earlier chunk created): under a savepoint,
        rolled back at the first one that is. Returns whether the chunk's people are created."""
        with chunk.people as people, driver.cursor() as cursor:
            cursor.execute("SAVEPOINT audience_chunk")
            try:
                _copy(cursor, f"COPY {Stakeholder.__tablename__} ({_PERSON_COLUMNS}) FROM STDIN", people)
            except psycopg.errors.UniqueViolation:
                cursor.execute("ROLLBACK TO SAVEPOINT audience_chunk")
                return False
            cursor.execute("RELEASE SAVEPOINT audience_chunk")
        self.merge.created += chunk.people_count
        self.merge.not_created += chunk.rows - chunk.people_count
        return True

    def _create(self, chunk: _Chunk) -> None:
        """Create the people of the chunk's rows whose email is not there yet, in line order."""
        merge = self.merge
        statement = text(
            f"INSERT INTO {Stakeholder.__tablename__} (kind, email, first_name, last_name, locale, "
            "timezone, attributes, created_at, updated_at) "
            "SELECT :kind, s.email, s.first_name, s.last_name, COALESCE(NULLIF(s.locale, ''), :locale), "
            "COALESCE(NULLIF(s.timezone, ''), :timezone), s.attributes, :now, :now "
            f"FROM {self.rows} AS s WHERE s.line BETWEEN :first_line AND :last_line ORDER BY s.line "
            "ON CONFLICT (email) DO NOTHING"
        ).bindparams(bindparam("now", type_=UTCDateTime()))
        created = self.connection.execute(statement, {
            "kind": merge.kind, "now": merge.now, "locale": merge.locale, "timezone": merge.timezone,
            "first_line": chunk.first_line, "last_line": chunk.last_line,
        }).rowcount
        merge.created += created
        merge.not_created += chunk.rows - created

    # --- once the file is read ---

    def remove_duplicates(self) -> _Rejections:
        """Take out the rows whose email an earlier row has: they are rejected."""
        self._execute(
            f"CREATE TEMPORARY TABLE {self.duplicates}{self.on_commit} AS "
            f"SELECT s.line, f.first_line FROM {self.rows} AS s JOIN (SELECT email, min(line) AS first_line "
            f"FROM {self.rows} GROUP BY email HAVING count(*) > 1) AS f ON f.email = s.email "
            "WHERE s.line <> f.first_line")
        total = self._execute(f"SELECT count(*) FROM {self.duplicates}").scalar_one()
        if not total:
            return _Rejections()
        self._execute(f"DELETE FROM {self.rows} WHERE line IN (SELECT line FROM {self.duplicates})")
        first = self._execute(f"SELECT line, first_line FROM {self.duplicates} ORDER BY line LIMIT :limit",
                              limit=MAX_REPORTED_REJECTIONS)
        return _Rejections(
            [Rejection(line, _l("duplicate of line %(line)d (same email)", line=first_line))
             for line, first_line in first],
            total)

    def update_known(self) -> int:
        """Merge the first line of each email into the person we had with it; how many."""
        if self.postgresql:
            merged = "(CASE WHEN jsonb_typeof(t.attributes) = 'object' THEN t.attributes ELSE '{}' END) || s.attributes"
        else:  # RFC 7396 merge: a stored value that is not an object counts as {}
            merged = "json_patch(COALESCE(t.attributes, '{}'), s.attributes)"
        statement = text(
            # Suppression (opt-out, bounce) is not touched: a re-import must not resurrect anyone.
            f"UPDATE {Stakeholder.__tablename__} AS t SET kind = :kind, "
            # A blank cell in the file (or no such column) keeps the value we have.
            "first_name = COALESCE(NULLIF(s.first_name, ''), t.first_name), "
            "last_name = COALESCE(NULLIF(s.last_name, ''), t.last_name), "
            "locale = COALESCE(NULLIF(s.locale, ''), t.locale), "
            "timezone = COALESCE(NULLIF(s.timezone, ''), t.timezone), "
            # The file's keys win; keys it does not mention are kept.
            f"attributes = {merged}, updated_at = :now "
            f"FROM {self.rows} AS s WHERE t.email = s.email "
            # The people this import created (its time, and ids above any before it) are
            # left as they are.
            "AND NOT (t.created_at = :now AND t.id > :last_id)"
        ).bindparams(bindparam("now", type_=UTCDateTime()))
        merge = self.merge
        return self.connection.execute(
            statement, {"kind": merge.kind, "now": merge.now, "last_id": merge.last_id}).rowcount

    def drop(self) -> None:
        self._execute(f"DROP TABLE IF EXISTS {self.duplicates}")
        self._execute(f"DROP TABLE {self.rows}")


class _Worker:
    """A thread that runs ``work(chunk)`` for each chunk submitted, in order, with one
    chunk waiting at most. The submitting thread must not use the connection meanwhile."""

    def __init__(self, work: Callable[[_Chunk], None]):
        self._work = work
        self._chunks: queue.Queue[_Chunk | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="audience-import", daemon=True)
        self._error: BaseException | None = None
        self._stopped = False

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self._error is not None or self._stopped:
                chunk.close()
                continue
            try:
                self._work(chunk)
            except BaseException as exc:  # handed to the submitting thread
                self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, chunk: _Chunk) -> None:
        self._raise_error()
        self._chunks.put(chunk)

    def finish(self) -> None:
        """Wait for the chunks submitted; raise what went wrong in them."""
        self._chunks.put(None)
        self._thread.join()
        self._raise_error()

    def stop(self) -> None:
        """Skip the chunks not started yet, and wait for the one under way."""
        if self._thread.is_alive():
            self._stopped = True
            self._chunks.put(None)
            self._thread.join()


def _copy(cursor, statement: str, spool: IO[bytes]) -> None:
    """COPY a spool's lines (written from its start) with ``statement``."""
    spool.seek(0)
    with cursor.copy(statement) as copy:
        while data := spool.read(1 << 20):
            copy.write(data)


def _expire_loaded_stakeholders() -> None:
    """A bulk UPDATE bypasses loaded objects: make them reload."""
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Stakeholder):
            db.session.expire(obj)
