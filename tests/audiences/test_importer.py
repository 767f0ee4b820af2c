"""The audience file parser: what it keeps, what it refuses, and the reason it gives.

Emails given twice are found by the import, in the database (tests/audiences/test_services.py):
the parser yields both rows.
"""
from __future__ import annotations

import io
import string

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.audiences import importer
from survey.audiences.importer import parse_audience

HEADER = "Email;Prénom;Nom;Parcours;Promotion;Date de fin;Langue;Fuseau horaire"
GOOD = "ada@example.org;Ada;Lovelace;Data Analyst;2024-02;05/11/2025;en;Europe/London"


def parse(*lines: str, encoding: str = "utf-8", newline: str = "\r\n", **options):
    return parse_audience(newline.join(lines).encode(encoding), **options).collect()


def rejected(result) -> dict[int, str]:
    return {r.line: r.reason for r in result.rejected}


# --- the shared sample files ------------------------------------------------------------


@pytest.fixture
def alumni(shared_data):
    return parse_audience((shared_data / "alumni_fr_excel.csv").read_bytes()).collect()


def test_french_excel_export_keeps_every_valid_row(alumni):
    # 240 data lines (2-241); 6 refused; 242 (empty) and 243 (only ';') are skipped silently.
    # Lines 7 and 63 repeat the email of lines 6 and 62: the import refuses them.
    assert len(alumni.rows) == 234
    assert rejected(alumni) == {
        19: "invalid email address 'not-an-email'",
        35: "missing email",
        79: "impossible date '31/02/2025' in column 'Date de fin'",
        92: "unknown time zone 'Mars/Olympus'",
        103: "value in column 'Prénom' looks like a spreadsheet formula",
        120: "value in column 'Nom' contains markup (< or >)",
    }


def test_french_export_rows_are_normalised(alumni):
    by_line = {row.line: row for row in alumni.rows}
    first = by_line[2]
    assert (first.email, first.first_name, first.last_name) == (
        "karim.kowalski0@example.fr", "Karim", "Kowalski")
    assert first.locale == "en"
    assert first.timezone == "Europe/Paris"  # empty cell: the default
    assert first.attributes == {
        "programme": "UX Designer", "cohort": "2024-02", "completion_date": "2025-11-05"}
    assert (by_line[3].locale, by_line[3].timezone) == ("fr", "Europe/London")  # fr-FR
    assert by_line[4].locale == "en"  # EN
    assert by_line[9].locale == "fr"  # empty: the default
    assert by_line[5].last_name == "García-López"


def test_french_export_same_email_in_two_cases_reads_as_one_address(alumni):
    same = [row for row in alumni.rows if row.email == "lodie.dubois4@example.fr"]
    assert [(row.line, row.first_name) for row in same] == [(6, "Élodie"), (7, "Zoë")]


def test_french_export_spaces_around_email_are_trimmed(alumni):
    row = next(row for row in alumni.rows if row.line == 50)
    assert row.email == "sren.nguyn48@example.fr"


def test_french_export_internationalised_domain_is_accepted(alumni):
    row = next(row for row in alumni.rows if row.line == 132)
    assert row.email == "jean.dupont@exämple.fr"


def test_french_export_stores_nothing_dangerous(alumni):
    for row in alumni.rows:
        for value in (row.email, row.first_name, row.last_name, *row.attributes.values()):
            assert "<" not in value and ">" not in value
            assert not value.startswith(("=", "+", "@"))


def test_employees_file_keeps_department_and_gender(shared_data):
    result = parse_audience((shared_data / "employees.csv").read_bytes()).collect()
    assert result.rejected == []
    assert len(result.rows) == 60
    first = result.rows[0]
    assert first.email == "employee0@company.example"
    assert first.attributes == {"department": "Engineering", "gender": "X"}
    departments = {row.attributes["department"] for row in result.rows}
    assert departments == {"Engineering", "Pedagogy", "Mentoring", "Sales", "Operations", "Legal"}


# --- encodings and delimiters -----------------------------------------------------------


def test_windows_1252_file_is_decoded():
    result = parse(HEADER, "helene@example.org;Hélène;Lefèvre;;;;;", encoding="cp1252")
    assert result.rejected == []
    assert (result.rows[0].first_name, result.rows[0].last_name) == ("Hélène", "Lefèvre")


def test_utf8_bom_is_not_part_of_the_first_header():
    result = parse_audience(b"\xef\xbb\xbf" + f"{HEADER}\r\n{GOOD}".encode()).collect()
    assert result.rejected == []
    assert result.rows[0].email == "ada@example.org"


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"])
def test_delimiter_is_detected(delimiter):
    lines = [line.replace(";", delimiter) for line in (HEADER, GOOD, "bob@example.org;Bob;;;;;;")]
    result = parse(*lines, newline="\n")
    assert result.rejected == []
    assert [row.email for row in result.rows] == ["ada@example.org", "bob@example.org"]
    assert result.rows[0].attributes["programme"] == "Data Analyst"


def test_english_header_and_quoted_comma():
    result = parse(
        "E-mail,First name,Last name,Language,Time zone,Program,Cohort,Completion date,Gender",
        'ada@example.org,Ada,"Lovelace, Countess",English,america/new_york,'
        "Data,2024-02,2025-11-05,F",
        newline="\n",
    )
    assert result.rejected == []
    row = result.rows[0]
    assert (row.first_name, row.last_name) == ("Ada", "Lovelace, Countess")
    assert (row.locale, row.timezone) == ("en", "America/New_York")
    assert row.attributes == {
        "programme": "Data", "cohort": "2024-02", "completion_date": "2025-11-05", "gender": "F"}


@pytest.mark.parametrize("header", ["Courriel", "Adresse e-mail", "mail", "EMAIL", "e_mail"])
def test_email_header_spellings(header):
    result = parse(f"{header};Nom", "ada@example.org;Lovelace")
    assert [row.email for row in result.rows] == ["ada@example.org"]
    assert result.rows[0].last_name == "Lovelace"


def test_other_columns_become_snake_case_attributes():
    result = parse("Email;Année d'entrée;Service", "ada@example.org;2019;Pédagogie")
    assert result.rows[0].attributes == {"annee_d_entree": "2019", "department": "Pédagogie"}


def test_line_numbers_count_a_quoted_cell_spanning_two_lines():
    result = parse("Email;Nom", 'ada@example.org;"Love\nlace"', "not-an-email;Bob")
    assert result.rows[0].last_name == "Love lace"
    assert rejected(result) == {4: "invalid email address 'not-an-email'"}


# --- values -----------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("fr", "fr"), ("FR", "fr"), ("fr-FR", "fr"), ("français", "fr"), ("French", "fr"),
    ("en", "en"), ("EN", "en"), ("en-GB", "en"), ("English", "en"), ("anglais", "en"),
])
def test_locale_spellings(value, expected):
    assert parse("Email;Langue", f"ada@example.org;{value}").rows[0].locale == expected


def test_unknown_locale_is_rejected():
    result = parse("Email;Langue", "ada@example.org;de")
    assert result.rows == []
    assert rejected(result) == {2: "unknown language 'de' (expected fr or en)"}


def test_defaults_apply_to_empty_locale_and_time_zone():
    result = parse("Email;Langue;Fuseau horaire", "ada@example.org;;",
                   default_locale="en", default_timezone="Africa/Dakar")
    assert (result.rows[0].locale, result.rows[0].timezone) == ("en", "Africa/Dakar")


def test_bad_time_zone_is_rejected():
    result = parse("Email;Fuseau horaire", "ada@example.org;Mars/Base", "bob@example.org;UTC")
    assert rejected(result) == {2: "unknown time zone 'Mars/Base'"}
    assert result.rows[0].timezone == "UTC"


@pytest.mark.parametrize(
    "value", ["05/11/2025", "2025-11-05", "05-11-2025", "05.11.2025", "5/11/2025"])
def test_completion_date_formats(value):
    result = parse("Email;Date de fin", f"ada@example.org;{value}")
    assert result.rows[0].attributes["completion_date"] == "2025-11-05"


def test_bad_dates_are_rejected():
    result = parse("Email;Date de fin", "a@example.org;31/02/2025", "b@example.org;next year")
    assert result.rows == []
    assert rejected(result) == {
        2: "impossible date '31/02/2025' in column 'Date de fin'",
        3: "date 'next year' in column 'Date de fin' is not a date (expected DD/MM/YYYY)",
    }


def test_email_is_lower_cased_and_checked():
    result = parse("Email", "  Ada.Lovelace@EXAMPLE.ORG ", "ada@", "")
    assert [row.email for row in result.rows] == ["ada.lovelace@example.org"]
    assert list(rejected(result)) == [3]
    assert rejected(result)[3].startswith("invalid email address 'ada@'")


def test_a_later_row_is_kept_when_the_first_with_its_email_was_rejected():
    result = parse("Email;Langue", "ada@example.org;klingon", "ADA@example.org;en")
    assert [(row.line, row.email) for row in result.rows] == [(3, "ada@example.org")]
    assert list(rejected(result)) == [2]


# --- safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\t=1", " =1", "+33 6 12+A1", "-1-1",
                                  "+1)|cmd"])
def test_formula_cells_are_rejected(cell):
    result = parse("Email;Nom;Note", f'ada@example.org;Lovelace;"{cell}"')
    assert result.rows == []
    assert rejected(result) == {2: "value in column 'Note' looks like a spreadsheet formula"}


def test_formula_in_the_email_column_is_rejected():
    result = parse("Email", "=cmd@example.org")
    assert rejected(result) == {2: "value in column 'Email' looks like a spreadsheet formula"}


@pytest.mark.parametrize("cell", ["-3", "+33", "-1.5", "-0,5", "+33 6 12 34 56 78", "+44 (0)20 7946-0958", "-"])
def test_plain_numbers_phone_numbers_and_dashes_are_fine(cell):
    """They start like a formula, but with no letter they can call nothing nor refer to any cell;
    rejecting the whole row for a phone number would lose the person."""
    result = parse("Email;Score", f"ada@example.org;{cell}")
    assert result.rejected == []
    assert result.rows[0].attributes == {"score": cell}


@pytest.mark.parametrize("column", ["Prénom", "Nom", "Parcours"])
def test_markup_in_names_and_attributes_is_rejected(column):
    result = parse(f"Email;{column}", "ada@example.org;<b>Ada</b>")
    assert rejected(result) == {2: f"value in column '{column}' contains markup (< or >)"}


def test_control_characters_are_stripped():
    result = parse("Email;Prénom", "ada@example.org;A\x00d\x07a\u202e")
    assert result.rows[0].first_name == "Ada"


def test_name_longer_than_the_column_is_rejected():
    result = parse("Email;Nom", "ada@example.org;" + "x" * 201)
    assert rejected(result) == {2: "value in column 'Nom' is too long (more than 200 characters)"}


# --- shape of the file ------------------------------------------------------------------


def test_blank_lines_and_delimiter_only_lines_are_skipped():
    result = parse(HEADER, "", GOOD, ";;;;;;;", "  ;  ;;;;;;", "")
    assert result.rejected == []
    assert len(result.rows) == 1


def test_wrong_number_of_columns_is_rejected():
    result = parse("Email;Prénom;Nom", "ada@example.org;Ada", "bob@example.org;Bob;Smith;extra")
    assert result.rows == []
    assert rejected(result) == {
        2: "wrong number of columns: 2 instead of 3",
        3: "wrong number of columns: 4 instead of 3",
    }


def test_a_trailing_empty_cell_is_tolerated():
    result = parse("Email;Nom", "ada@example.org;Lovelace;")
    assert result.rejected == []
    assert result.rows[0].last_name == "Lovelace"


def test_no_email_column_rejects_the_file():
    result = parse("Prénom;Nom", "Ada;Lovelace")
    assert result.rows == []
    assert len(result.rejected) == 1
    assert result.rejected[0].line == 1
    assert "no email column" in result.rejected[0].reason
    assert "'Prénom', 'Nom'" in result.rejected[0].reason


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n", b"\xef\xbb\xbf", b";;;\r\n"])
def test_empty_file_is_a_clear_rejection(data):
    result = parse_audience(data).collect()
    assert result.rows == []
    assert [(r.line, r.reason) for r in result.rejected] == [
        (1, "the file is empty: no header line and no rows")]


def test_header_only_file_has_nothing_to_report():
    result = parse(HEADER)
    assert (result.rows, result.rejected) == ([], [])


def test_binary_file_is_a_clear_rejection():
    result = parse_audience(b"PK\x03\x04\x14\x00\x06\x00binary\xff\xfe").collect()
    assert result.rows == []
    assert result.rejected[0].line == 1
    assert "not text" in result.rejected[0].reason


def test_bytes_neither_utf8_nor_cp1252_are_a_clear_rejection():
    result = parse_audience(b"Email\r\nada@example.org\x81\x8d").collect()
    assert result.rows == []
    assert "neither UTF-8 nor Windows-1252" in result.rejected[0].reason


def test_utf16_excel_unicode_text_is_read():
    data = "Email\tNom\r\nada@example.org\tLøvelace\r\n".encode("utf-16")
    result = parse_audience(data).collect()
    assert [(row.email, row.last_name) for row in result.rows] == [("ada@example.org", "Løvelace")]


@pytest.mark.parametrize("data", [
    b'Email\r\n"ada@example.org',  # unterminated quote
    b"Email;Nom\r\n\"a\"b\"@x.org;\"\"\"",
    "Email;Nom\r\n" + "é" * 200_000,
    b"Email\r\n" + bytes(range(1, 256)),
])
def test_never_raises_on_odd_content(data):
    if isinstance(data, str):
        data = data.encode()
    result = parse_audience(data).collect()
    assert all(row.email for row in result.rows)
    assert all(r.line >= 1 and r.reason for r in result.rejected)


# --- streaming --------------------------------------------------------------------------


class TrickleStream(io.RawIOBase):
    """A stream that returns a few bytes per read, as a socket may."""

    def __init__(self, data: bytes, step: int = 7):
        self._data, self._step, self._at = data, step, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._step if size < 0 else min(size, self._step)
        chunk = self._data[self._at:self._at + size]
        self._at += len(chunk)
        return chunk


def test_a_file_object_reads_like_its_bytes(shared_data):
    path = shared_data / "alumni_fr_excel.csv"
    with path.open("rb") as stream:
        from_file = parse_audience(stream).collect()
    assert from_file == parse_audience(path.read_bytes()).collect()
    assert parse_audience(TrickleStream(path.read_bytes())).collect() == from_file


def read_in_pieces(monkeypatch, size: int, first: int = 300) -> None:
    """Make the reader decide on ``first`` bytes, then read ``size`` at a time."""
    monkeypatch.setattr(importer, "FIRST_READ_SIZE", first)
    monkeypatch.setattr(importer, "READ_SIZE", size)


@pytest.mark.parametrize("read_size", [1, 2, 3, 5, 64, 4099])
@pytest.mark.parametrize("name", ["alumni_fr_excel.csv", "employees.csv"])
def test_reading_in_small_pieces_changes_nothing(shared_data, monkeypatch, name, read_size):
    # Reads split characters (é is two bytes in UTF-8), "\r\n" and quoted cells.
    data = (shared_data / name).read_bytes()
    whole = parse_audience(data).collect()
    read_in_pieces(monkeypatch, read_size)
    assert parse_audience(data).collect() == whole


@pytest.mark.parametrize("read_size", [1, 3, 64])
def test_utf16_and_spanning_cells_in_small_pieces(monkeypatch, read_size):
    text = 'Email\tNom\r\nada@example.org\t"Løve\r\nlace 😀"\r\nnope\tBob\rbob@example.org\tBob\n'
    for data in (text.encode("utf-16"), text.encode("utf-16-be").join([b"\xfe\xff", b""]), text.encode()):
        whole = parse_audience(data).collect()
        assert [(row.line, row.last_name) for row in whole.rows] == [(2, "Løve  lace 😀"), (5, "Bob")]
        assert [r.line for r in whole.rejected] == [4]
        read_in_pieces(monkeypatch, read_size, first=40)  # the header, for the delimiter
        assert parse_audience(data).collect() == whole
        monkeypatch.undo()


def test_ascii_then_windows_1252_further_on_reads_as_windows_1252(monkeypatch):
    data = (b"Email;Nom\r\n" + b"".join(b"p%d@example.org;Smith\r\n" % n for n in range(50))
            + "helene@example.org;Hélène Lefèvre\r\n".encode("cp1252"))
    read_in_pieces(monkeypatch, 64, first=64)  # the first read is plain ASCII
    result = parse_audience(data).collect()
    assert result.rejected == []
    assert result.rows[-1].last_name == "Hélène Lefèvre"
    assert result.rows[-1].line == 52


def test_text_that_stops_being_utf8_further_on_rejects_the_rest(monkeypatch):
    data = ("Email;Nom\r\nzoe@example.org;Zoé\r\n".encode()
            + b"".join(b"p%d@example.org;Smith\r\n" % n for n in range(20))
            + "helene@example.org;Hélène\r\ncarl@example.org;Carl\r\n".encode("cp1252"))
    read_in_pieces(monkeypatch, 64, first=64)  # "Zoé" is in the first read: UTF-8
    result = parse_audience(data).collect()
    assert [row.line for row in result.rows] == list(range(2, 23))
    assert result.rows[0].last_name == "Zoé"
    assert rejected(result) == {23: "the text is not UTF-8 from this line on: the rest of the file was not read; "
                                    "save it as CSV (UTF-8)"}
    assert result.unreadable is None  # the lines before it were read


def test_a_whole_file_that_is_not_utf8_reads_as_windows_1252():
    # Decided on the first read (here, the whole file), as before streaming.
    data = "Email;Nom\r\nzoe@example.org;Zoé\r\n".encode() + "helene@example.org;Hélène\r\n".encode("cp1252")
    result = parse_audience(data).collect()
    assert [row.last_name for row in result.rows] == ["ZoÃ©", "Hélène"]


def test_progress_is_reported_as_the_file_is_read(monkeypatch):
    data = ("Email\r\n" + "".join(f"p{n}@example.org\r\n" for n in range(1000))).encode()
    calls = []
    read_in_pieces(monkeypatch, 4096, first=4096)
    reader = parse_audience(data, progress=lambda *done: calls.append(done))
    assert sum(1 for _ in reader) == 1000
    assert len(calls) > 4
    assert calls == sorted(calls)
    assert calls[-1] == (len(data), 1001) == (reader.bytes_read, reader.lines_read)


def test_a_reader_is_read_once():
    reader = parse_audience(b"Email\r\nada@example.org\r\n")
    assert len(list(reader)) == 1
    with pytest.raises(RuntimeError):
        list(reader)


# --- the short path for plain rows and addresses ----------------------------------------

_ROW_HEADER = ["Email", "Prénom", "Nom", "Langue", "Fuseau horaire", "Date de fin", "Note"]
_CELLS = st.one_of(
    st.sampled_from([
        "", " ", "ada@example.org", " Ada.L@EXAMPLE.org ", "ada@exämple.fr", "ada@", "a@b.test", "a@b.c0",
        "Ada", "Zoé", "García-López", " =1", "=SUM(A1)", "-3", "+33", "@x", "-x", "<b>", "a>b", "\t=1",
        "A\x00da", "Ada\u202e", "\u00a0Ada\u00a0", "fr", "EN", "fr-FR", "klingon", "Europe/Paris", "utc",
        "Mars/Base", "05/11/2025", "31/02/2025", "2025-11-05", "next year", "x" * 201, "y" * 1001,
        "line\nbreak", "\u2400=1",
    ]),
    st.text(max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_CELLS, min_size=5, max_size=9))
def test_the_short_path_reads_rows_as_the_full_checks_do(cells):
    columns = importer._map_columns(_ROW_HEADER)
    got = importer._row_parser(columns, "fr", "Europe/Paris")(5, cells)
    if importer._is_blank(cells):
        assert got is None
        return
    row, reasons = importer._parse_row(5, cells, columns, "fr", "Europe/Paris")
    if row is not None:
        assert got == row
    else:
        assert isinstance(got, importer.Rejection)
        assert (got.line, str(got.reason)) == (5, "; ".join(str(reason) for reason in reasons))


_LABELS = st.one_of(
    st.sampled_from([
        "example", "com", "fr", "org", "EXAMPLE", "Co", "test", "local", "localhost", "invalid", "onion",
        "arpa", "TEST", "xn--exmple-cua", "xn--", "xn--a", "a-b", "-a", "a-", "a--b", "ab--cd", "123", "1a",
        "a1", "0", "exämple", "ü", "a" * 63, "b" * 64, "",
    ]),
    st.text(alphabet=string.ascii_letters + string.digits + "-", max_size=70),
)
_LOCAL_PARTS = st.one_of(
    st.sampled_from(["ada", "Ada.Lovelace", "a.b.c", ".ada", "ada.", "a..b", "o'neil", "x+tag", "POSTMASTER",
                     '"quoted"', "é", "a b", "", "a" * 64, "a" * 65]),
    st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.\"(),:;<>@[\\] é",
            max_size=70),
)
_PLAIN_ADDRESSES = st.builds(  # mostly valid, near the edges of the fast path
    lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
    st.from_regex(r"[A-Za-z0-9._%+'=-]{1,66}", fullmatch=True),
    st.lists(st.from_regex(r"[A-Za-z0-9-]{1,65}", fullmatch=True), min_size=1, max_size=4),
    st.one_of(st.sampled_from(["com", "org", "fr", "Co", "io", "test", "local", "localhost", "invalid", "onion",
                               "arpa", "c0", "123", "a1", "x-y", "x--y", "-x", "x-"]),
              st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,64}", fullmatch=True)),
)
_ADDRESSES = st.one_of(
    _PLAIN_ADDRESSES,
    st.builds(lambda local, labels, before, after: f"{local}@{before}{'.'.join(labels)}{after}",
              _LOCAL_PARTS, st.lists(_LABELS, min_size=1, max_size=6),
              st.sampled_from(["", "."]), st.sampled_from(["", ".", ".."])),
    st.text(max_size=40),
)


def _validated(value: str) -> str | None:
    """The address as the importer stores it: email-validator's, refusing what needs SMTPUTF8."""
    try:
        return validate_email(value, check_deliverability=False, allow_smtputf8=False).normalized.lower()
    except EmailNotValidError:
        return None


@settings(max_examples=2000, deadline=None)
@given(_ADDRESSES)
def test_the_fast_email_check_only_accepts_what_email_validator_accepts(value):
    fast = importer._fast_email(value)
    if fast is not None:
        assert fast == _validated(value)
    email, problem = importer._email(value.strip())
    expected = _validated(value.strip()) if value.strip() else None
    assert (email or None) == expected
    assert (problem is None) == (expected is not None)


@pytest.mark.parametrize("value, expected", [
    ("Ada.Lovelace@Example.ORG", "ada.lovelace@example.org"),
    ("o'neil+news@mail.univ-lyon.example.fr", "o'neil+news@mail.univ-lyon.example.fr"),
    ("x@a1.co", "x@a1.co"),
])
def test_plain_addresses_take_the_fast_path(value, expected):
    assert importer._fast_email(value) == expected == _validated(value)


@pytest.mark.parametrize("value", [
    "ada@example.test", "ada@localhost", "ada@x.local", "ada@x.invalid", "ada@x.onion", "ada@1.2.3.4",
    "ada@example.c0", "ada@xn--exmple-cua.fr", "ada@exämple.fr", ".ada@example.org", "a..b@example.org",
    "ada@example..org", "ada@-example.org", "ada@example.org.", f"{'a' * 65}@example.org",
    f"ada@{'b' * 64}.org", "ada@ab--cd.org",
])
def test_unusual_addresses_are_left_to_email_validator(value):
    assert importer._fast_email(value) is None


# --- a stray quote never swallows the lines after it ------------------------------------

QUOTE_NEVER_CLOSED = 'a quote (") opened on this line is never closed; the lines after it are read on their own'
QUOTE_TAKES_IN_LINES = ('a quote (") opened on this line is not closed on it and would take in the lines after it; '
                        "they are read on their own")


def people(count: int, stray: dict[int, str] | None = None) -> list[str]:
    """A header and ``count`` rows p0…; ``stray`` replaces some lines (by line number)."""
    lines = ["Email;Prénom;Nom", *(f"p{n}@example.org;P{n};N{n}" for n in range(count))]
    for line, text in (stray or {}).items():
        lines[line - 1] = text
    return lines


def test_a_stray_opening_quote_rejects_its_line_and_keeps_every_line_after_it():
    result = parse(*people(1999, {11: 'p9@example.org;"P9;N9'}))
    assert rejected(result) == {11: QUOTE_TAKES_IN_LINES}
    assert [row.line for row in result.rows] == [*range(2, 11), *range(12, 2001)]
    assert (result.rows[-1].email, result.rows[-1].first_name) == ("p1998@example.org", "P1998")


def test_a_quote_closed_lines_later_by_another_stray_quote_loses_no_line_between():
    result = parse(*people(30, {11: 'p9@example.org;"P9;N9', 14: 'p12@example.org;P12";N12'}))
    assert rejected(result) == {11: QUOTE_TAKES_IN_LINES}
    assert [row.line for row in result.rows] == [n for n in range(2, 32) if n != 11]
    assert next(row for row in result.rows if row.line == 14).first_name == 'P12"'  # as typed


def test_a_quote_open_until_the_end_of_the_file_rejects_its_line_only():
    result = parse("Email;Nom", 'ada@example.org;"Love', "lace", "", "bob@example.org")
    assert rejected(result) == {2: QUOTE_NEVER_CLOSED,
                                3: "wrong number of columns: 1 instead of 2",
                                5: "wrong number of columns: 1 instead of 2"}
    assert result.rows == []


@pytest.mark.parametrize("more_notes_than_allowed, reason", [
    (50, QUOTE_TAKES_IN_LINES),  # given up on before the end of the file
    (-50, QUOTE_NEVER_CLOSED),
])
def test_a_quote_open_over_lines_that_are_not_rows_is_given_up_on(more_notes_than_allowed, reason):
    # One cell where three are expected: the lines do not read as rows, and are taken in
    # until the end of the file or MAX_QUOTED_LINES, then read again on their own.
    notes = getattr(importer, "MAX_QUOTED_LINES", 100) + more_notes_than_allowed
    result = parse("Email;Prénom;Nom", 'p0@example.org;"P0;N0', *["just a note"] * notes)
    each_note = {n: "wrong number of columns: 1 instead of 3" for n in range(3, notes + 3)}
    assert rejected(result) == {2: reason, **each_note}
    assert result.rows == []


def test_a_quoted_cell_spanning_lines_into_the_wrong_number_of_columns_loses_no_line():
    result = parse("Email;Nom", 'ada@example.org;"Love', 'lace";extra', "bob@example.org;Bob")
    assert rejected(result) == {2: QUOTE_TAKES_IN_LINES, 3: "invalid email address 'lace\"'"}
    assert [(row.line, row.email) for row in result.rows] == [(4, "bob@example.org")]


def test_a_stray_quote_in_the_header_does_not_swallow_the_file():
    result = parse('Email;"Prénom;Nom', "ada@example.org;Ada;Lovelace", "bob@example.org;Bob;Smith")
    assert result.rejected == []
    assert [(row.line, row.first_name, row.last_name) for row in result.rows] == [
        (2, "Ada", "Lovelace"), (3, "Bob", "Smith")]


@pytest.mark.parametrize("read_size", [1, 7, 64])
def test_stray_quotes_read_in_small_pieces(monkeypatch, read_size):
    data = "\r\n".join(people(300, {11: 'p9@example.org;"P9;N9', 40: '"p38@example.org;P38;N38',
                                    200: 'p198@example.org;"P198;N198', 201: ""})).encode()
    whole = parse_audience(data).collect()
    assert rejected(whole) == {11: QUOTE_TAKES_IN_LINES, 40: QUOTE_TAKES_IN_LINES, 200: QUOTE_TAKES_IN_LINES}
    assert len(whole.rows) == 300 - 4
    read_in_pieces(monkeypatch, read_size, first=40)
    assert parse_audience(data).collect() == whole


_LINE_KINDS = st.sampled_from(["row", "row", "row", "opening quote", "closing quote", "quoted email", "blank",
                               "note", "spanning cell", "bad row", "bad row closing a quote"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE_KINDS, max_size=60))
def test_no_line_is_ever_lost_silently(kinds):
    texts = {
        "row": "p{n}@example.org;P{n};N{n}", "opening quote": 'p{n}@example.org;"P{n};N{n}',
        "closing quote": 'p{n}@example.org;P{n}";N{n}', "quoted email": '"p{n}@example.org;P{n};N{n}',
        "blank": "", "note": "a note", "spanning cell": 'p{n}@example.org;"P\r\n{n}";N{n}',
        "bad row": "nope{n};X;Y", "bad row closing a quote": 'nope{n};X";Y',
    }
    lines, plain, second_lines = ["Email;Prénom;Nom"], set(), set()
    physical = 1
    for n, kind in enumerate(kinds):
        lines.append(texts[kind].format(n=n))
        if kind == "row":
            plain.add(physical + 1)
        elif kind == "spanning cell":
            second_lines.add(physical + 2)
        physical += 1 + (kind == "spanning cell")
    result = parse(*lines)
    imported = {row.line for row in result.rows}
    said = imported | {r.line for r in result.rejected}
    # Every row typed plainly is imported, and every other line is said something of: a
    # blank line, or the second line of a cell that spans two, read with its first, excepted.
    assert plain <= imported
    typed = {n for n, text in enumerate("\r\n".join(lines).split("\r\n"), 1) if text.strip()}
    assert {n for n in typed - said if not (n in second_lines and n - 1 in said)} == {1}


# --- what hides a formula, an address we cannot send to, Excel's "sep=" line -----------------


@pytest.mark.parametrize("before", [
    "\u00a0",  # non-breaking space
    "\u200b",  # zero-width space
    "\u3000",  # ideographic space
    "\u2028",  # line separator
    " \t",
    "\r\n",  # a line break inside the quotes
])
def test_a_formula_behind_white_space_that_cleaning_strips_is_rejected(before):
    cell = f'{before}=HYPERLINK("http://x.invalid","click")'.replace('"', '""')
    result = parse("Email;Prénom;Nom;Service", f'a@example.org;"{cell}";B;Sales')
    assert result.rows == []
    assert rejected(result) == {2: "value in column 'Prénom' looks like a spreadsheet formula"}


def test_the_formula_from_the_review_is_rejected_unquoted():
    result = parse("Email;Prénom;Nom;Service", 'a@example.org;\u00a0=HYPERLINK("http://x.invalid","click");B;Sales')
    assert result.rows == []
    assert rejected(result) == {2: "value in column 'Prénom' looks like a spreadsheet formula"}


def test_a_formula_behind_a_non_breaking_space_in_the_email_column_is_rejected():
    result = parse("Email", "\u00a0=cmd@example.org")
    assert rejected(result) == {2: "value in column 'Email' looks like a spreadsheet formula"}


def test_white_space_that_cleaning_strips_before_a_plain_value_is_fine():
    result = parse("Email;Prénom;Score", "a@example.org;\u00a0Ada;\u200b-3")
    assert result.rejected == []
    assert (result.rows[0].first_name, result.rows[0].attributes) == ("Ada", {"score": "-3"})


NOT_SENDABLE = ("email address '{}' has an accented or other non-ASCII character before the @: "
                "our emails cannot be sent to it")


@pytest.mark.parametrize("address", ["élodie@example.fr", "Zoë.Martin@example.org", "josé@exämple.fr", "用户@例子.广告"])
def test_an_address_with_non_ascii_before_the_at_is_rejected_with_the_reason(address):
    result = parse("Email;Nom", f"{address};Dubois", "ada@example.org;Lovelace")
    assert rejected(result) == {2: NOT_SENDABLE.format(address)}
    assert [row.email for row in result.rows] == ["ada@example.org"]


def test_an_internationalised_domain_is_still_accepted():
    result = parse("Email", "jean.dupont@exämple.fr")
    assert [row.email for row in result.rows] == ["jean.dupont@exämple.fr"]


def test_an_invalid_address_with_non_ascii_is_still_just_invalid():
    result = parse("Email", "élodie@@example.fr")
    assert rejected(result) == {2: "invalid email address 'élodie@@example.fr'"}


def test_needs_smtputf8_looks_before_the_at_only():
    assert importer.needs_smtputf8("élodie@example.fr")
    assert not importer.needs_smtputf8("elodie@exämple.fr")
    assert not importer.needs_smtputf8("ada@example.org")


@pytest.mark.parametrize("first", ["sep=;", "SEP=;", '"sep=;"', '"sep=;";;', "sep=;;;"])
def test_excel_sep_line_names_the_delimiter_and_is_not_the_header(first):
    result = parse(first, "Email;Nom", "ada@example.org;Lovelace", "nope;Bob")
    assert result.unreadable is None
    assert [(row.line, row.email, row.last_name) for row in result.rows] == [(3, "ada@example.org", "Lovelace")]
    assert rejected(result) == {4: "invalid email address 'nope'"}  # the line in the file, sep= being line 1


@pytest.mark.parametrize("delimiter", [",", "\t", "|"])
def test_excel_sep_line_with_other_delimiters(delimiter):
    # The cells hold the other delimiters: only the "sep=" line says which one it is.
    note = "a{0}b{0}c".format("".join(d for d in ",;|" if d != delimiter))
    result = parse(f"sep={delimiter}", delimiter.join(["Email", "Nom", "Note"]),
                   delimiter.join(["ada@example.org", "Lovelace", note]))
    assert result.rejected == []
    assert [(row.email, row.attributes) for row in result.rows] == [("ada@example.org", {"note": note})]


def test_excel_sep_line_after_a_byte_order_mark_in_windows_1252_or_utf16():
    text = "sep=;\r\nEmail;Nom\r\nhelene@example.org;Lefèvre\r\n"
    for data in (b"\xef\xbb\xbf" + text.encode(), text.encode("cp1252"), text.encode("utf-16")):
        result = parse_audience(data).collect()
        assert result.rejected == []
        assert [(row.line, row.last_name) for row in result.rows] == [(3, "Lefèvre")]


def test_a_file_of_only_a_sep_line_is_empty():
    result = parse_audience(b"sep=;\r\n").collect()
    assert result.unreadable is not None
    assert rejected(result) == {1: "the file is empty: no header line and no rows"}


def test_a_quote_closed_by_a_line_that_is_not_an_address_loses_it_neither():
    # "nope;X";Y" closes the quote with the right number of cells: it is a row of its own
    # (rejected for its address), never part of line 2's first name.
    result = parse("Email;Prénom;Nom", 'p0@example.org;"P0;N0', 'nope;X";Y', "p1@example.org;P1;N1")
    assert rejected(result) == {2: QUOTE_TAKES_IN_LINES, 3: "invalid email address 'nope'"}
    assert [row.line for row in result.rows] == [4]
