"""Reading audience files (CSV exported from a spreadsheet) into clean stakeholder rows.

Pure parsing: no database. ``parse_audience`` takes an upload (a binary file object, or its
bytes) and streams it: iterating the reader it returns yields, in line order, each row that
can be stored and, for every other line, its physical line number and a reason an admin can
act on. Neither the file nor its rows are ever held whole, so a million-line file costs the
same memory as a small one. It never raises on file content: whatever is wrong becomes a
rejection.

Two rows with the same email are both yielded here: finding duplicates needs every email
read so far, which ``survey.audiences.services`` asks of the database instead of memory.

What is stored is shown on web pages and exported to spreadsheets, so a row is refused when
a cell could run as a spreadsheet formula or carries markup; nothing is escaped or rewritten
behind the admin's back.

Encodings: UTF-8 (with or without a byte order mark), UTF-16 with a byte order mark (Excel's
"Unicode text"), else Windows-1252 (older Excel on Windows). The choice is made on the first
``FIRST_READ_SIZE`` bytes, the whole of most files. If bytes further on do not fit it, a file
that was plain ASCII until there is read as Windows-1252 from there on (exactly what decoding
it whole would give); otherwise the line where decoding fails is rejected with a reason that
says the rest of the file was not read, and the lines before it are kept.

A quoted cell may span lines, but a quote that is never closed, or that takes in lines
reading as rows of their own (or too many lines), is a typing error: that line is rejected
and the lines after it are read on their own, so a stray quote never swallows the rest of
the file. Excel's first line ``sep=;`` names the delimiter; it is not the header.

Reasons are lazy texts (``survey.core.i18n``): the import page reads them in the admin's
language, the API and the CLI in English (as does anything outside a Flask app).
"""
from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from itertools import chain
from typing import BinaryIO, NamedTuple

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l

from survey.core.i18n import LazyText, as_text, lazy_join

#: Longest name we store (the columns are String(200)); longest attribute value we accept.
MAX_NAME_LENGTH = 200
MAX_ATTRIBUTE_LENGTH = 1000
#: Bytes read first: the encoding and the delimiter are decided on them.
FIRST_READ_SIZE = 1 << 20
#: Bytes read at a time after that, and characters split into lines at a time.
READ_SIZE = 256 << 10
#: Lines a quoted cell may run on to after the line it starts on; a quote open longer is a
#: typing error (no cell we store is that long: see ``MAX_ATTRIBUTE_LENGTH``).
MAX_QUOTED_LINES = 100

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
#: What spreadsheets read as the start of a formula (OWASP "CSV injection"); checked on the
#: value as stored, so the white space before it (any kind, stripped) cannot hide it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: What starts like a formula yet cannot be one (no letter, no reference, no function): a plain
#: number, a phone number in international form ("+33 6 12 34 56 78"), a dash for "none".
_PLAIN_NUMBER = re.compile(r"^(?:[+-]?\d+(?:[.,]\d+)?|\+\d[\d .()\-]*\d|-+)$")
#: Dates people type, day first (French habit), and ISO.
_DAY_FIRST = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
#: The first bytes of .xlsx/.ods (zip) and .xls (OLE) files, uploaded instead of CSV.
_SPREADSHEET_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
_UTF8_BOM = codecs.BOM_UTF8
#: Invisible characters that reorder or hide text on a page; stripped like control characters.
_INVISIBLE = {"\ufeff", "\u200b", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
              "\u2066", "\u2067", "\u2068", "\u2069"}


class ParsedRow(NamedTuple):
    line: int
    email: str
    first_name: str
    last_name: str
    locale: str
    timezone: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class Rejection:
    #: physical line number in the file; the header is line 1 (2 after Excel's ``sep=`` line)
    line: int
    #: translated when read
    reason: LazyText

    def __post_init__(self):
        object.__setattr__(self, "reason", as_text(self.reason))


@dataclass
class ParseResult:
    """A whole file's rows and rejections, for files small enough to hold (and tests)."""

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
    source: bytes | BinaryIO, *, default_locale: str = "fr", default_timezone: str = "Europe/Paris",
    progress: Callable[[int, int], None] | None = None,
) -> AudienceReader:
    """Stream an audience file (a binary file object, or bytes); see the module docstring.

    ``progress(bytes_read, lines_read)`` is called as the file is read (before each read of
    ``READ_SIZE`` bytes after the first, and at its end), for a progress bar.
    """
    return AudienceReader(source, default_locale=default_locale, default_timezone=default_timezone,
                          progress=progress)


class AudienceReader:
    """The rows (``ParsedRow``) and rejections (``Rejection``) of one file, in line order.

    Iterate it once. ``bytes_read`` and ``lines_read`` say how far it got; ``unreadable``
    is set, once iterated, when no row at all could be read.
    """

    def __init__(self, source: bytes | BinaryIO, *, default_locale: str, default_timezone: str,
                 progress: Callable[[int, int], None] | None = None):
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(source)
        self._stream = source
        self._defaults = (default_locale, default_timezone)
        self._progress = progress
        self._text: _Text | None = None
        self._started = False
        #: physical lines read so far (a quoted cell may span lines)
        self.lines_read = 0
        #: why the file as a whole could not be read (not text, empty, no email column)
        self.unreadable: LazyText | None = None

    @property
    def bytes_read(self) -> int:
        return self._text.bytes_read if self._text is not None else 0

    def __iter__(self) -> Iterator[ParsedRow | Rejection]:
        if self._started:
            raise RuntimeError("an audience file can be read only once")
        self._started = True
        return self._read()

    def collect(self) -> ParseResult:
        """Every row and rejection in lists: only for files small enough to hold."""
        result = ParseResult()
        for item in self:
            (result.rejected if isinstance(item, Rejection) else result.rows).append(item)
        result.unreadable = self.unreadable
        return result

    def _report_progress(self) -> None:
        if self._progress is not None:
            self._progress(self.bytes_read, self.lines_read)

    def _read(self) -> Iterator[ParsedRow | Rejection]:
        text = self._text = _Text(self._stream, on_read=self._report_progress)
        if text.problem is not None:
            yield self._unreadable(Rejection(1, text.problem))
            self._report_progress()
            return
        yield from self._records(text)
        self._report_progress()

    def _records(self, text: _Text) -> Iterator[ParsedRow | Rejection]:
        delimiter = _excel_separator(text.first)
        lines = chain.from_iterable(_lines(text.chunks()))
        # Cells too long for csv are refused by it: let it say so.
        csv_limit = csv.field_size_limit()
        parse_row = None
        columns: list[Column] | None = None
        last_line = 0
        # Lines to read again (after a stray quote), before the rest: ``source`` is them, then ``lines``.
        again: Iterator[str] = iter(())
        source: Iterator[str] | None = lines
        try:
            if delimiter is not None:
                next(lines, None)  # Excel's "sep=;": it names the delimiter, it is not the header
                last_line = self.lines_read = 1
            else:
                delimiter = _sniff_delimiter(text.first)
            while source is not None:
                read_again = None
                for text_line in source:
                    # A quoted cell may span lines: the record starts just after the previous one ended.
                    line = last_line + 1
                    if '"' in text_line or len(text_line) > csv_limit:
                        cells, taken, stray = _quoted_record(text_line, source, delimiter, columns)
                        if stray is None:
                            last_line = line + len(taken)
                        else:
                            # The quote is a typing error: this line alone is refused (the header
                            # is read without quotes), and the lines it took in are read again.
                            read_again, last_line = taken, line
                            if parse_row is not None:
                                self.lines_read = last_line
                                yield Rejection(line, stray)
                                break
                            cells = text_line.rstrip("\r\n").split(delimiter)
                    else:
                        # Without quotes, csv would split at each delimiter: so does str.split, faster.
                        cells = text_line.rstrip("\r\n").split(delimiter)
                        last_line = line
                    self.lines_read = last_line
                    if parse_row is not None:
                        item = parse_row(line, cells)
                        if item is not None:
                            yield item
                    elif not _is_blank(cells):
                        columns = _map_columns(cells)
                        if not any(c.key == "email" for c in columns):
                            yield self._unreadable(Rejection(line, _no_email_reason(cells)))
                            return
                        parse_row = _row_parser(columns, *self._defaults)
                    if read_again is not None:
                        break
                else:
                    source = None
                if read_again is not None:
                    # What is left of the lines read again comes after the ones just taken.
                    again = iter(read_again + list(again))
                    source = chain(again, lines)
        except csv.Error as exc:
            yield Rejection(last_line + 1, _l("unreadable CSV (%(error)s); the rest of the file was not read",
                                              error=str(exc)))
        except _Undecodable as exc:
            yield Rejection(last_line + 1, exc.reason)
        if parse_row is None:
            yield self._unreadable(Rejection(1, _l("the file is empty: no header line and no rows")))

    def _unreadable(self, rejection: Rejection) -> Rejection:
        self.unreadable = rejection.reason
        return rejection


# --- reading the file -------------------------------------------------------------------


class _Undecodable(Exception):
    """The bytes from here on are not text in the file's encoding."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _decoder(encoding: str) -> Callable[[bytes, bool], tuple[str, int]]:
    """``decode(data, final) -> (text, bytes used)``: an incomplete character at the end
    of ``data`` is left for the next read unless ``final``."""
    if encoding == "cp1252":  # one byte, one character: nothing is ever incomplete
        return lambda data, final: (data.decode("cp1252"), len(data))
    decode = {"utf-8": codecs.utf_8_decode, "utf-16-le": codecs.utf_16_le_decode,
              "utf-16-be": codecs.utf_16_be_decode}[encoding]
    return lambda data, final: decode(data, "strict", final)


_ENCODING_NAMES = {"utf-8": "UTF-8", "cp1252": "Windows-1252", "utf-16-le": "UTF-16", "utf-16-be": "UTF-16"}


class _Text:
    """The text of a binary stream, decoded one read at a time.

    ``problem`` says why the file cannot be read as text at all (decided on the first read);
    otherwise ``first`` is the text of the first read and ``chunks()`` yields it and the rest.
    """

    def __init__(self, stream: BinaryIO, on_read: Callable[[], None]):
        self._stream = stream
        self._on_read = on_read
        self.bytes_read = 0
        self.problem: LazyText | None = None
        self.first = ""
        self._pending = b""  # an incomplete character at the end of the last read
        self._only_ascii = True  # so far: then UTF-8 and Windows-1252 read the same
        data = self._read(FIRST_READ_SIZE)
        self._eof = len(data) < FIRST_READ_SIZE
        self.encoding = "utf-8"
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            # Excel's "Unicode text" export is UTF-16 with a byte order mark.
            self.encoding = "utf-16-le" if data.startswith(b"\xff\xfe") else "utf-16-be"
            data = data[2:]
            if not self._start(data):
                self.problem = as_text(_l("the file claims to be UTF-16 but cannot be decoded"))
        elif data.startswith(_SPREADSHEET_MAGIC):
            self.problem = as_text(_l("the file is not text (an Excel workbook?): "
                                      "save it as CSV (UTF-8) and import that file"))
        else:
            if data.startswith(_UTF8_BOM):
                data = data[len(_UTF8_BOM):]
            if not self._start(data):
                # Older Excel on Windows saves CSV in Windows-1252.
                self.encoding = "cp1252"
                if not self._start(data):
                    self.problem = as_text(_l("the file is neither UTF-8 nor Windows-1252 text: "
                                              "save it as CSV (UTF-8)"))

    def _read(self, wanted: int) -> bytes:
        # A socket or request stream may return less than asked before its end.
        parts, size = [], 0
        while size < wanted:
            part = self._stream.read(wanted - size)
            if not part:
                break
            parts.append(part)
            size += len(part)
        self.bytes_read += size
        return b"".join(parts)

    def _start(self, data: bytes) -> bool:
        """Decode the first read in ``self.encoding``; False if it is not that encoding."""
        try:
            self.first, used = _decoder(self.encoding)(data, self._eof)
        except UnicodeDecodeError:
            return False
        self._pending = data[used:]
        self._only_ascii = self.first.isascii()
        return True

    def chunks(self) -> Iterator[str]:
        """The text, a read at a time; raises ``_Undecodable`` after the last good text."""
        first, self.first = self.first, ""  # not held while the rest is read
        for start in range(0, len(first), READ_SIZE):
            yield first[start:start + READ_SIZE]
        del first
        while not self._eof:
            self._on_read()
            data = self._read(READ_SIZE)
            self._eof = len(data) < READ_SIZE
            text, problem = self._decode(self._pending + data)
            if text:
                yield text
            if problem is not None:
                raise _Undecodable(problem)

    def _decode(self, data: bytes) -> tuple[str, LazyText | None]:
        try:
            text, used = _decoder(self.encoding)(data, self._eof)
        except UnicodeDecodeError as exc:
            good = data[:exc.start].decode(self.encoding)
            if self.encoding == "utf-8" and self._only_ascii and good.isascii():
                # ASCII until here, where UTF-8 and Windows-1252 agree: the file is
                # Windows-1252, as decoding it whole would have found.
                self.encoding = "cp1252"
                rest, problem = self._decode(data[exc.start:])
                return good + rest, problem
            self._pending = b""
            return good, as_text(_l(
                "the text is not %(encoding)s from this line on: the rest of the file was not read; "
                "save it as CSV (UTF-8)", encoding=_ENCODING_NAMES[self.encoding]))
        self._pending = data[used:]
        if self._only_ascii and not text.isascii():
            self._only_ascii = False
        return text, None


def _lines(chunks: Iterator[str]) -> Iterator[list[str]]:
    """The lines of the text as ``io.StringIO(text, newline="")`` splits them (ends kept)."""
    carry = ""
    for chunk in chunks:
        lines = io.StringIO(carry + chunk, newline="").readlines()
        # The last line may go on in the next chunk (a "\r" may be half of "\r\n").
        carry = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        yield lines
    if carry:
        yield [carry]


#: Excel's first line naming the delimiter: ``sep=;`` (as a spreadsheet may save it again:
#: quoted, or followed by more delimiters).
_EXCEL_SEPARATOR = re.compile(r'"?sep=([^\w\s"]|\t)"?\1*[ \t]*(?:\r\n|\r|\n|\Z)', re.IGNORECASE)


def _excel_separator(text: str) -> str | None:
    """The delimiter a first line ``sep=X`` names, if the text starts with one."""
    match = _EXCEL_SEPARATOR.match(text)
    return match.group(1) if match else None


#: Why a line whose quote is a typing error is refused (its following lines are read on their own).
_QUOTE_NEVER_CLOSED = _l('a quote (") opened on this line is never closed; the lines after it are read on their own')
_QUOTE_TAKES_IN_LINES = _l('a quote (") opened on this line is not closed on it and would take in the lines '
                           'after it; they are read on their own')


def _quoted_record(
    first: str, source: Iterator[str], delimiter: str, columns: list[Column] | None
) -> tuple[list[str], list[str], LazyText | None]:
    """The cells of the record that starts with ``first`` (a line with a quote, or too long
    to split), reading on from ``source`` while a quote is open; the lines it read on; and,
    if the quote is a typing error, why ``first`` is refused (the lines read on are then to
    be read again, on their own).

    The quote is a typing error when it is never closed, stays open for more than
    ``MAX_QUOTED_LINES`` lines, or (once the header is known: ``columns``) takes in a line
    that reads as a row of its own (as many cells as the header) or ends a record with the
    wrong number of cells. Only the lines read on are held, ``MAX_QUOTED_LINES`` at most.
    """
    taken: list[str] = []
    ended = None
    width = len(columns) if columns is not None else 0

    def feed() -> Iterator[str]:
        nonlocal ended
        yield first
        for text_line in source:
            taken.append(text_line)
            if len(taken) > MAX_QUOTED_LINES:
                ended = "too long"
                return
            if width and _has_right_width(text_line.rstrip("\r\n").split(delimiter), width):
                ended = "a row"
                return
            yield text_line
        ended = "end of file"

    try:
        cells = next(csv.reader(feed(), delimiter=delimiter))
    except csv.Error:
        if not taken:  # one line, too long for csv: the caller says so
            raise
        return [], taken, as_text(_QUOTE_TAKES_IN_LINES)
    if not taken:
        return cells, taken, None  # an open quote on the last line takes in nothing
    if ended == "end of file":
        return cells, taken, as_text(_QUOTE_NEVER_CLOSED)
    if ended is not None or (width and not _has_right_width(cells, width)):
        return cells, taken, as_text(_QUOTE_TAKES_IN_LINES)
    return cells, taken, None


def _sniff_delimiter(text: str) -> str:
    """The delimiter of the first lines; the most frequent one in the header if unsure."""
    sample = "\n".join(_first_lines(text, 20))
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = next((line for line in _first_lines(text, 20) if line.strip()), None)
        if header is None:
            header = next((line for line in text.splitlines() if line.strip()), "")
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def _first_lines(text: str, count: int) -> list[str]:
    """``text.splitlines()[:count]``, without splitting the whole text."""
    size = 4096
    while True:
        lines = text[:size].splitlines()
        if len(lines) > count or size >= len(text):
            return lines[:count]
        size *= 4


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

#: Separates cells in ``_row_parser``'s checks: printable, and never typed in a spreadsheet.
_CELL_SEPARATOR = "\u2400"
#: A cell starting (after spaces) like a formula, in ``_CELL_SEPARATOR`` + cells joined by it.
_FORMULA_AFTER_SEPARATOR = re.compile(_CELL_SEPARATOR + " *[=+@-]").search
#: Distinct values remembered per column (languages, time zones, dates) in one file.
_MEMO_SIZE = 10_000


def _row_parser(
    columns: list[Column], default_locale: str, default_timezone: str
) -> Callable[[int, list[str]], ParsedRow | Rejection | None]:
    """``parse(line, cells)``: the row, its rejection, or None for a blank line.

    Most lines are plain (printable text, no formula, no markup, well-formed values): those
    take a short path, with the checks of languages, time zones and dates remembered for the
    file. Any other line takes ``_parse_row``, which finds every reason; the short path only
    ever accepts what ``_parse_row`` accepts, and reads it the same way.
    """
    width = len(columns)
    at = {column.key: column.index for column in columns}
    email_at = at["email"]
    first_at, last_at = at.get("first_name"), at.get("last_name")
    locale_at, timezone_at = at.get("locale"), at.get("timezone")
    attribute_columns = [(c.index, c.key, c.key in DATE_ATTRIBUTES) for c in columns if c.is_attribute]
    locales = _memo(lambda value: _locale(value, default_locale))
    timezones = _memo(lambda value: _timezone(value, default_timezone))
    dates = _memo(lambda value: _iso_date(value, ""))
    new_tuple = tuple.__new__  # ParsedRow._make, without its checks
    separator, formula_after_separator = _CELL_SEPARATOR, _FORMULA_AFTER_SEPARATOR
    plain_email, special_use_endings = _PLAIN_EMAIL, _SPECIAL_USE_ENDINGS
    strip = str.strip

    def plain_row(line: int, cells: list[str]) -> ParsedRow | None:
        if len(cells) != width:
            # Blank cells after the last column (trailing delimiters) are ignored, as in _parse_row.
            if len(cells) < width or not _is_blank(cells[width:]):
                return None
            cells = cells[:width]
        raw = separator + separator.join(cells)
        # Printable: no control or invisible character, so ``_clean`` would only strip, and
        # spaces are the only white space.
        if not raw.isprintable() or "<" in raw or ">" in raw or formula_after_separator(raw):
            return None
        values = list(map(strip, cells))
        email = values[email_at]  # ``_fast_email``, inlined
        if len(email) > _MAX_PLAIN_EMAIL_LENGTH or plain_email(email) is None:
            return None
        email = email.lower()
        if email.endswith(special_use_endings):
            return None
        locale, timezone = default_locale, default_timezone
        if locale_at is not None and (value := values[locale_at]):
            locale, problem = locales(value)
            if problem is not None:
                return None
        if timezone_at is not None and (value := values[timezone_at]):
            timezone, problem = timezones(value)
            if problem is not None:
                return None
        first_name = values[first_at] if first_at is not None else ""
        last_name = values[last_at] if last_at is not None else ""
        if len(first_name) > MAX_NAME_LENGTH or len(last_name) > MAX_NAME_LENGTH:
            return None
        attributes = {}
        for index, key, is_date in attribute_columns:
            if value := values[index]:
                if len(value) > MAX_ATTRIBUTE_LENGTH:
                    return None
                if is_date:
                    value, problem = dates(value)
                    if problem is not None:
                        return None
                attributes[key] = value
        return new_tuple(ParsedRow, (line, email, first_name, last_name, locale, timezone, attributes))

    def parse(line: int, cells: list[str]) -> ParsedRow | Rejection | None:
        if (row := plain_row(line, cells)) is not None:
            return row
        if _is_blank(cells):
            return None
        row, reasons = _parse_row(line, cells, columns, default_locale, default_timezone)
        return row if row is not None else Rejection(line, lazy_join("; ", reasons))

    return parse


def _memo(function: Callable[[str], tuple]) -> Callable[[str], tuple]:
    """``function``, remembering its results for up to ``_MEMO_SIZE`` values."""
    results: dict[str, tuple] = {}

    def remembered(value: str) -> tuple:
        result = results.get(value)
        if result is None:
            if len(results) >= _MEMO_SIZE:
                results.clear()
            result = results[value] = function(value)
        return result

    return remembered


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
    if cell.isprintable():
        # No control character, and the invisible ones are all "format" characters, which
        # are not printable either: nothing to remove.
        return cell.strip()
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
    # The value as stored: cleaning strips more than spaces (a non-breaking, zero-width or
    # ideographic space, a line break), and what it leaves is what a spreadsheet reads.
    value = _clean(raw)
    if value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(value):
        return _l("value in column '%(column)s' looks like a spreadsheet formula", column=column.header)
    if (column.is_attribute or column.key in NAME_FIELDS) and ("<" in value or ">" in value):
        return _l("value in column '%(column)s' contains markup (< or >)", column=column.header)
    return None


# An address made only of these, and short enough, is one ``validate_email`` accepts and
# normalises by lower-casing its domain: a dot-atom of RFC 5322 "atext" before the "@"
# (at most 64 characters, what ``strict`` mode allows), then at least two labels of letters,
# digits and single inner hyphens (so no "xn--" Punycode, which it would decode), each at
# most 63 long, the last ending with a letter. Special-use names (.test, .local…) and long
# addresses are left to ``validate_email``; so is anything else.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"
_PLAIN_EMAIL = re.compile(
    rf"(?=[^@]{{1,64}}@){_ATEXT}+(?:\.{_ATEXT}+)*"
    rf"@(?:(?=[A-Za-z0-9-]{{1,63}}\.){_LABEL}\.)+"
    r"(?=[A-Za-z0-9-]{1,63}\Z)(?:[A-Za-z0-9]+-)*[A-Za-z0-9]*[A-Za-z]"
).fullmatch
_SPECIAL_USE_ENDINGS = tuple(f"{at}{name}" for name in SPECIAL_USE_DOMAIN_NAMES for at in ".@")
_MAX_PLAIN_EMAIL_LENGTH = 254


def _fast_email(value: str) -> str | None:
    """The address as ``_email`` stores it, when it is plainly valid; None to ask ``validate_email``."""
    if len(value) > _MAX_PLAIN_EMAIL_LENGTH or _PLAIN_EMAIL(value) is None:
        return None
    email = value.lower()
    return None if email.endswith(_SPECIAL_USE_ENDINGS) else email


def needs_smtputf8(address: str) -> bool:
    """Whether ``address`` has a character beyond ASCII before its "@": mail to it needs
    SMTPUTF8, which Attest does not use (``survey.mail.merge``), so it can never be sent.
    An internationalised domain is fine: it is sent in its ASCII (IDNA) form."""
    return not address.rpartition("@")[0].isascii()


def _email(value: str) -> tuple[str, object]:
    if not value:
        return "", _l("missing email")
    email = _fast_email(value)
    if email is not None:
        return email, None
    try:
        # An address we cannot send to is refused here rather than counted as emailable.
        normalized = validate_email(value, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError:
        if needs_smtputf8(value) and _valid_with_smtputf8(value):
            return "", _l("email address '%(value)s' has an accented or other non-ASCII character before "
                          "the @: our emails cannot be sent to it", value=value)
        return "", _l("invalid email address '%(value)s'", value=value)
    # Lower-cased whole: people type the same address in any case, and we keep one per person.
    return normalized.lower(), None


def _valid_with_smtputf8(value: str) -> bool:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


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
