"""Reading audience files (CSV exported from a spreadsheet) into clean stakeholder rows.

Pure parsing: no database. ``parse_audience`` takes the raw bytes of an upload and returns
the rows that can be stored and, for every other line, its physical line number and a reason
an admin can act on. It never raises on file content: whatever is wrong becomes a rejection.

What is stored is shown on web pages and exported to spreadsheets, so a row is refused when
a cell could run as a spreadsheet formula or carries markup; nothing is escaped or rewritten
behind the admin's back.

Reasons are lazy texts (``survey.core.i18n``): the import page reads them in the admin's
language, the API and the CLI in English (as does anything outside a Flask app).
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l

from survey.core.i18n import LazyText, as_text, lazy_join

#: Longest name we store (the columns are String(200)); longest attribute value we accept.
MAX_NAME_LENGTH = 200
MAX_ATTRIBUTE_LENGTH = 1000

#: Header names as they appear in French and English exports, compared after ``_compact``
#: (lower case, no accents, no spaces, underscores or hyphens).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "courriel", "adresseemail", "adressecourriel", "emailaddress", "mail",
              "adressemail"),
    "first_name": ("prenom", "firstname", "givenname"),
    "last_name": ("nom", "nomdefamille", "lastname", "surname", "familyname"),
    "locale": ("langue", "language", "locale", "lang"),
    "timezone": ("fuseauhoraire", "timezone", "tz"),
    # attributes with a canonical key
    "programme": ("parcours", "programme", "program", "formation"),
    "cohort": ("promotion", "cohorte", "cohort", "promo"),
    "completion_date": ("datedefin", "completiondate", "enddate", "datefin"),
    "department": ("departement", "service", "department"),
}
PERSON_FIELDS = ("email", "first_name", "last_name", "locale", "timezone")
NAME_FIELDS = ("first_name", "last_name")
DATE_ATTRIBUTES = ("completion_date",)

LOCALE_ALIASES = {
    "fr": "fr", "francais": "fr", "french": "fr",
    "en": "en", "anglais": "en", "english": "en",
}
#: ``fr-FR``, ``en_GB``…: a language with a region is that language.
_LOCALE_WITH_REGION = re.compile(r"^(fr|en)[-_][a-z]{2,3}$")

DELIMITERS = ",;\t|"
#: What spreadsheets read as the start of a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
#: Dates people type, day first (French habit), and ISO.
_DAY_FIRST = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
#: The first bytes of .xlsx/.ods (zip) and .xls (OLE) files, uploaded instead of CSV.
_SPREADSHEET_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
#: Invisible characters that reorder or hide text on a page; stripped like control characters.
_INVISIBLE = {"\ufeff", "\u200b", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
              "\u2066", "\u2067", "\u2068", "\u2069"}


@dataclass(frozen=True)
class ParsedRow:
    line: int
    email: str
    first_name: str
    last_name: str
    locale: str
    timezone: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    #: physical line number in the file; the header is line 1
    line: int
    #: translated when read
    reason: LazyText

    def __post_init__(self):
        object.__setattr__(self, "reason", as_text(self.reason))


@dataclass
class ParseResult:
    rows: list[ParsedRow] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    #: why no row at all could be read (not text, empty, no email column); None if rows could
    unreadable: LazyText | None = None


@dataclass(frozen=True)
class Column:
    index: int
    header: str  # as written in the file, for messages
    key: str  # a person field (``email``…) or an attribute key

    @property
    def is_attribute(self) -> bool:
        return self.key not in PERSON_FIELDS


def parse_audience(
    data: bytes, *, default_locale: str = "fr", default_timezone: str = "Europe/Paris"
) -> ParseResult:
    """Parse an audience file; see the module docstring."""
    result = ParseResult()
    text, problem = _decode(data)
    if problem is not None:
        result.rejected.append(Rejection(1, problem))
        result.unreadable = problem
        return result

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text))
    columns: list[Column] | None = None
    seen: dict[str, int] = {}  # email -> line of the row kept
    last_line = 0
    while True:
        # A quoted cell may span lines: the record starts just after the previous one ended.
        line = last_line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.rejected.append(
                Rejection(line, _l("unreadable CSV (%(error)s); the rest of the file was not read", error=str(exc)))
            )
            break
        last_line = reader.line_num
        if _is_blank(cells):
            continue
        if columns is None:
            columns = _map_columns(cells)
            if not any(c.key == "email" for c in columns):
                result.rejected.append(Rejection(line, _no_email_reason(cells)))
                result.unreadable = result.rejected[-1].reason
                return result
            continue
        row, reasons = _parse_row(line, cells, columns, default_locale, default_timezone)
        if row is not None and row.email in seen:
            reasons.append(_l("duplicate of line %(line)d (same email)", line=seen[row.email]))
        if reasons:
            result.rejected.append(Rejection(line, lazy_join("; ", reasons)))
        else:
            seen[row.email] = line
            result.rows.append(row)

    if columns is None:
        result.rejected.append(Rejection(1, _l("the file is empty: no header line and no rows")))
        result.unreadable = result.rejected[-1].reason
    return result


# --- reading the file -------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str, LazyText | None]:
    """The file's text, or a reason it cannot be read as text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Excel's "Unicode text" export is UTF-16 with a byte order mark.
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError:
            return "", as_text(_l("the file claims to be UTF-16 but cannot be decoded"))
    if data.startswith(_SPREADSHEET_MAGIC):
        return "", as_text(_l("the file is not text (an Excel workbook?): "
                              "save it as CSV (UTF-8) and import that file"))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Older Excel on Windows saves CSV in Windows-1252.
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            return "", as_text(_l("the file is neither UTF-8 nor Windows-1252 text: save it as CSV (UTF-8)"))
    if not text.strip():
        return "", as_text(_l("the file is empty: no header line and no rows"))
    return text, None


def _sniff_delimiter(text: str) -> str:
    """The delimiter of the first lines; the most frequent one in the header if unsure."""
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = next((line for line in text.splitlines() if line.strip()), "")
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def _is_blank(cells: list[str]) -> bool:
    """An empty line, or one made only of delimiters (spreadsheets leave those at the end)."""
    return all(not _clean(cell) for cell in cells)


# --- the header -------------------------------------------------------------------------


def _slug(text: str) -> str:
    """``"Année d'entrée"`` -> ``"annee_d_entree"``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


def _compact(text: str) -> str:
    """The form header names are compared in: ``"Adresse e-mail"`` -> ``"adresseemail"``."""
    return _slug(text).replace("_", "")


@lru_cache(maxsize=1)
def _alias_table() -> dict[str, str]:
    return {alias: key for key, aliases in FIELD_ALIASES.items() for alias in aliases}


def _map_columns(header: list[str]) -> list[Column]:
    """Known headers get their field; any other column is kept as an attribute."""
    aliases = _alias_table()
    columns: list[Column] = []
    used: set[str] = set()
    for index, raw in enumerate(header):
        name = _clean(raw)
        key = aliases.get(_compact(name))
        if key is None or key in used:
            # Unknown column, or a second column for the same field: keep it, by its own name.
            key = _unique_key(_slug(name) or f"column_{index + 1}", used)
        used.add(key)
        columns.append(Column(index, name or f"column {index + 1}", key))
    return columns


def _unique_key(key: str, used: set[str]) -> str:
    # A custom column must never shadow a person field or another column.
    candidate, n = key, 2
    while candidate in used or candidate in PERSON_FIELDS:
        candidate, n = f"{key}_{n}", n + 1
    return candidate


def _no_email_reason(header: list[str]):
    names = ", ".join(f"'{_clean(h)}'" for h in header if _clean(h))
    return _l("no email column found in the header (%(names)s); name one column Email, E-mail or Courriel",
              names=names)


# --- one row ----------------------------------------------------------------------------


def _parse_row(
    line: int, cells: list[str], columns: list[Column], default_locale: str, default_timezone: str
) -> tuple[ParsedRow | None, list]:
    """The row, or ``None`` and the reasons (lazy texts) it cannot be stored."""
    if not _has_right_width(cells, len(columns)):
        return None, [_l("wrong number of columns: %(found)d instead of %(expected)d",
                         found=len(cells), expected=len(columns))]

    reasons = [r for column in columns if (r := _unsafe_cell(column, cells[column.index])) is not None]
    values = {column.key: _clean(cells[column.index]) for column in columns}
    if reasons:
        return None, reasons

    email, problem = _email(values["email"])
    reasons.append(problem)
    locale, problem = _locale(values.get("locale", ""), default_locale)
    reasons.append(problem)
    timezone, problem = _timezone(values.get("timezone", ""), default_timezone)
    reasons.append(problem)
    attributes, problems = _attributes(values, columns)
    reasons.extend(problems)
    reasons.extend(_too_long_names(values, columns))

    reasons = [r for r in reasons if r is not None]
    if reasons:
        return None, reasons
    return ParsedRow(
        line=line, email=email, first_name=values.get("first_name", ""),
        last_name=values.get("last_name", ""), locale=locale, timezone=timezone,
        attributes=attributes,
    ), []


def _has_right_width(cells: list[str], width: int) -> bool:
    # A stray empty cell after the last column (a trailing delimiter) is harmless.
    return len(cells) == width or (len(cells) > width and _is_blank(cells[width:]))


def _clean(cell: str) -> str:
    """Trimmed, control and invisible characters removed (line breaks become spaces)."""
    out = []
    for char in cell:
        if char in "\r\n\t":
            out.append(" ")
        elif char in _INVISIBLE or unicodedata.category(char) == "Cc":
            continue
        else:
            out.append(char)
    return "".join(out).strip()


def _unsafe_cell(column: Column, raw: str):
    """Why this cell must not be stored, if it could run in a spreadsheet or on a page."""
    stripped = raw.lstrip(" ")
    value = _clean(raw)
    if stripped.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(value):
        return _l("value in column '%(column)s' looks like a spreadsheet formula", column=column.header)
    if (column.is_attribute or column.key in NAME_FIELDS) and ("<" in value or ">" in value):
        return _l("value in column '%(column)s' contains markup (< or >)", column=column.header)
    return None


def _email(value: str) -> tuple[str, object]:
    if not value:
        return "", _l("missing email")
    try:
        normalized = validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return "", _l("invalid email address '%(value)s'", value=value)
    # Lower-cased whole: people type the same address in any case, and we keep one per person.
    return normalized.lower(), None


def _locale(value: str, default: str) -> tuple[str, object]:
    if not value:
        return default, None
    key = _slug(value).replace("_", "-")
    if key in LOCALE_ALIASES:
        return LOCALE_ALIASES[key], None
    if match := _LOCALE_WITH_REGION.match(key):
        return match.group(1), None
    return "", _l("unknown language '%(value)s' (expected fr or en)", value=value)


@lru_cache(maxsize=1)
def _timezones() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def _timezone(value: str, default: str) -> tuple[str, object]:
    if not value:
        return default, None
    name = _timezones().get(value.lower())
    if name is None:
        return "", _l("unknown time zone '%(value)s'", value=value)
    return name, None


def _attributes(values: dict[str, str], columns: list[Column]) -> tuple[dict[str, str], list]:
    """The non-empty attribute cells; empty ones are left out so they erase nothing."""
    attributes: dict[str, str] = {}
    problems: list = []
    for column in columns:
        value = values[column.key]
        if not column.is_attribute or not value:
            continue
        if len(value) > MAX_ATTRIBUTE_LENGTH:
            problems.append(_too_long(column, MAX_ATTRIBUTE_LENGTH))
            continue
        if column.key in DATE_ATTRIBUTES:
            value, problem = _iso_date(value, column.header)
            if problem is not None:
                problems.append(problem)
                continue
        attributes[column.key] = value
    return attributes, problems


def _too_long_names(values: dict[str, str], columns: list[Column]) -> list:
    return [
        _too_long(c, MAX_NAME_LENGTH)
        for c in columns
        if c.key in NAME_FIELDS and len(values[c.key]) > MAX_NAME_LENGTH
    ]


def _too_long(column: Column, limit: int):
    return _l("value in column '%(column)s' is too long (more than %(max)d characters)",
              column=column.header, max=limit)


def _iso_date(value: str, header: str) -> tuple[str, object]:
    """``05/11/2025``, ``05-11-2025``, ``05.11.2025`` or ``2025-11-05`` -> ``2025-11-05``."""
    if match := _ISO_DATE.match(value):
        year, month, day = match.groups()
    elif match := _DAY_FIRST.match(value):
        day, _, month, year = match.groups()
    else:
        return "", _l("date '%(value)s' in column '%(column)s' is not a date (expected DD/MM/YYYY)",
                      value=value, column=header)
    try:
        return date(int(year), int(month), int(day)).isoformat(), None
    except ValueError:
        return "", _l("impossible date '%(value)s' in column '%(column)s'", value=value, column=header)
