"""The audience file parser: what it keeps, what it refuses, and the reason it gives."""
from __future__ import annotations

import pytest

from survey.audiences.importer import parse_audience

HEADER = "Email;Prénom;Nom;Parcours;Promotion;Date de fin;Langue;Fuseau horaire"
GOOD = "ada@example.org;Ada;Lovelace;Data Analyst;2024-02;05/11/2025;en;Europe/London"


def parse(*lines: str, encoding: str = "utf-8", newline: str = "\r\n", **options):
    return parse_audience(newline.join(lines).encode(encoding), **options)


def rejected(result) -> dict[int, str]:
    return {r.line: r.reason for r in result.rejected}


# --- the shared sample files ------------------------------------------------------------


@pytest.fixture
def alumni(shared_data):
    return parse_audience((shared_data / "alumni_fr_excel.csv").read_bytes())


def test_french_excel_export_keeps_every_valid_row(alumni):
    # 240 data lines (2-241); 8 refused; 242 (empty) and 243 (only ';') are skipped silently.
    assert len(alumni.rows) == 232
    assert rejected(alumni) == {
        7: "duplicate of line 6 (same email)",
        19: "invalid email address 'not-an-email'",
        35: "missing email",
        63: "duplicate of line 62 (same email)",
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


def test_french_export_first_of_a_case_duplicate_is_kept(alumni):
    kept = [row for row in alumni.rows if row.email == "lodie.dubois4@example.fr"]
    assert [(row.line, row.first_name) for row in kept] == [(6, "Élodie")]


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
    result = parse_audience((shared_data / "employees.csv").read_bytes())
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
    result = parse_audience(b"\xef\xbb\xbf" + f"{HEADER}\r\n{GOOD}".encode())
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


@pytest.mark.parametrize("cell", ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\t=1", " =1"])
def test_formula_cells_are_rejected(cell):
    result = parse("Email;Nom;Note", f'ada@example.org;Lovelace;"{cell}"')
    assert result.rows == []
    assert rejected(result) == {2: "value in column 'Note' looks like a spreadsheet formula"}


def test_formula_in_the_email_column_is_rejected():
    result = parse("Email", "=cmd@example.org")
    assert rejected(result) == {2: "value in column 'Email' looks like a spreadsheet formula"}


@pytest.mark.parametrize("cell", ["-3", "+33", "-1.5", "-0,5"])
def test_plain_negative_numbers_are_fine(cell):
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
    result = parse_audience(data)
    assert result.rows == []
    assert [(r.line, r.reason) for r in result.rejected] == [
        (1, "the file is empty: no header line and no rows")]


def test_header_only_file_has_nothing_to_report():
    result = parse(HEADER)
    assert (result.rows, result.rejected) == ([], [])


def test_binary_file_is_a_clear_rejection():
    result = parse_audience(b"PK\x03\x04\x14\x00\x06\x00binary\xff\xfe")
    assert result.rows == []
    assert result.rejected[0].line == 1
    assert "not text" in result.rejected[0].reason


def test_bytes_neither_utf8_nor_cp1252_are_a_clear_rejection():
    result = parse_audience(b"Email\r\nada@example.org\x81\x8d")
    assert result.rows == []
    assert "neither UTF-8 nor Windows-1252" in result.rejected[0].reason


def test_utf16_excel_unicode_text_is_read():
    data = "Email\tNom\r\nada@example.org\tLøvelace\r\n".encode("utf-16")
    result = parse_audience(data)
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
    result = parse_audience(data)
    assert all(row.email for row in result.rows)
    assert all(r.line >= 1 and r.reason for r in result.rejected)
