"""What an admin sees after importing a messy file: on the import page, from the CLI and the
API. Bad input gets a clear error and loses nothing; a file that cannot be read at all is
an error, never a success; an address our emails cannot reach is not counted as emailable.
"""
from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from survey.audiences.cli import audience_cli
from survey.audiences.models import Stakeholder
from survey.audiences.services import audience_size, import_audience
from survey.core.errors import ValidationFailed
from survey.extensions import db
from tests.conftest import IsolatedClient
from tests.factories import token

#: the first bytes of an .xlsx workbook (a zip file)
XLSX = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00binary workbook\xff\xfe"
NOT_TEXT = "the file is not text (an Excel workbook?): save it as CSV (UTF-8) and import that file"


def csv(*lines: str) -> bytes:
    return "\r\n".join(lines).encode()


def stored() -> dict[str, Stakeholder]:
    db.session.expire_all()
    return {s.email: s for s in db.session.scalars(select(Stakeholder))}


@pytest.fixture
def client(english_client):
    return english_client


@pytest.fixture
def admin(client, create_user, login):
    login(create_user(role="admin"))
    return client


def upload(client, data: bytes, name: str = "people.csv"):
    return client.post("/admin/audiences/", data={
        "csrf_token": token(client, "/admin/audiences/"), "kind": "alumnus",
        "file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def run_cli(app, tmp_path, data: bytes, name: str = "audience.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return app.test_cli_runner().invoke(audience_cli, ["import", str(path), "--kind", "alumnus"])


# --- a stray quote ------------------------------------------------------------------------


def two_thousand_lines_with_a_stray_quote_on_line_11() -> bytes:
    rows = [f"p{n}@example.org;P{n};N{n}" for n in range(1999)]
    rows[9] = 'p9@example.org;"P9;N9'  # line 11
    return csv("Email;Prénom;Nom", *rows)


def test_a_stray_quote_costs_its_own_line_only(app_ctx):
    report = import_audience(two_thousand_lines_with_a_stray_quote_on_line_11(), "alumnus")
    db.session.commit()

    assert (report.created, report.updated, report.rejected_total) == (1998, 0, 1)
    assert [(r["line"], str(r["reason"])) for r in report.rejected] == [
        (11, 'a quote (") opened on this line is not closed on it and would take in the lines after it; '
             "they are read on their own")]
    people = stored()
    assert len(people) == 1998
    assert "p9@example.org" not in people
    assert people["p10@example.org"].first_name == "P10"
    assert people["p1998@example.org"].last_name == "N1998"


def test_the_page_counts_every_line_after_a_stray_quote(admin, app_ctx):
    page = upload(admin, two_thousand_lines_with_a_stray_quote_on_line_11()).get_data(as_text=True)
    assert "Import done: 1998 added, 0 updated. 1 line rejected." in page
    assert "a quote (&#34;) opened on this line is not closed on it" in page


# --- a formula behind a non-breaking space ------------------------------------------------


def test_a_formula_behind_a_non_breaking_space_is_never_stored(app_ctx):
    report = import_audience(csv("Email;Prénom;Nom;Service",
                                 'a@example.org;\u00a0=HYPERLINK("http://x.invalid","click");B;Sales',
                                 "b@example.org;\u200b+cmd;C;Sales"), "alumnus")
    assert report.created == 0
    assert [(r["line"], str(r["reason"])) for r in report.rejected] == [
        (2, "value in column 'Prénom' looks like a spreadsheet formula"),
        (3, "value in column 'Prénom' looks like a spreadsheet formula")]
    assert stored() == {}


# --- an address our emails cannot reach ---------------------------------------------------


def test_an_address_needing_smtputf8_is_rejected_not_counted_as_emailable(app_ctx):
    report = import_audience(csv("Email;Prénom", "élodie@example.fr;Élodie", "ada@example.org;Ada",
                                 "jean@exämple.fr;Jean"), "alumnus")
    db.session.commit()
    assert (report.created, report.rejected_total) == (2, 1)
    assert [(r["line"], str(r["reason"])) for r in report.rejected] == [
        (2, "email address 'élodie@example.fr' has an accented or other non-ASCII character before the @: "
            "our emails cannot be sent to it")]
    assert set(stored()) == {"ada@example.org", "jean@exämple.fr"}
    assert audience_size("alumnus", {}) == 2


def test_a_user_whose_address_needs_smtputf8_is_refused(app_ctx):
    from survey.accounts.services import create_user

    with pytest.raises(ValidationFailed) as refused:
        create_user("élodie@example.fr", "correct horse battery staple 42", "committee")
    assert str(refused.value) == ("“élodie@example.fr” has an accented or other non-ASCII character before the @: "
                                  "our emails cannot be sent to it.")
    # An internationalised domain is sent in its ASCII form: fine.
    user = create_user("elodie@exämple.fr", "correct horse battery staple 42", "committee")
    assert user.email == "elodie@exämple.fr"


# --- a file that cannot be read at all ----------------------------------------------------


def test_uploading_a_workbook_shows_an_error_not_a_success(admin, app_ctx):
    response = upload(admin, XLSX, "people.xlsx")
    page = response.get_data(as_text=True)

    assert response.status_code == 422
    assert "Import done" not in page and "flash-success" not in page
    assert 'role="alert"' in page and "There is a problem" in page
    assert f"This file cannot be imported: {NOT_TEXT}. Nothing was changed." in page
    assert stored() == {}


def test_a_file_without_an_email_column_shows_an_error_and_changes_nothing(admin, app_ctx, create_stakeholder):
    create_stakeholder(kind="employee", email="known@example.org")
    db.session.commit()
    response = upload(admin, csv("Prénom;<b>Nom</b>", "Ada;Lovelace"))
    page = response.get_data(as_text=True)

    assert response.status_code == 422
    assert "Import done" not in page
    assert "This file cannot be imported: no email column found in the header" in page
    assert "&lt;b&gt;Nom&lt;/b&gt;" in page and "<b>Nom" not in page  # the header quoted as text
    assert [(p.email, p.kind) for p in stored().values()] == [("known@example.org", "employee")]


def test_a_file_whose_rows_are_all_rejected_is_still_an_import(admin, app_ctx):
    response = upload(admin, csv("Email", "nope"))
    assert response.status_code == 200
    assert "Import done: 0 added, 0 updated. 1 line rejected." in response.get_data(as_text=True)


def test_the_cli_fails_on_a_workbook(app, app_ctx, tmp_path):
    result = run_cli(app, tmp_path, XLSX, "people.xlsx")

    assert result.exit_code == 1
    assert result.stdout == ""  # no "created 0, updated 0" report
    assert result.stderr.strip() == f"Error: This file cannot be imported: {NOT_TEXT}. Nothing was changed."
    assert stored() == {}


def test_the_cli_fails_on_an_empty_file(app, app_ctx, tmp_path):
    result = run_cli(app, tmp_path, b"")
    assert result.exit_code == 1
    assert "the file is empty" in result.stderr


def test_the_api_still_refuses_a_workbook(app, app_ctx):
    from survey.accounts.services import create_api_key

    _, key = create_api_key("tests")
    db.session.commit()
    client = IsolatedClient(app, app.response_class, use_cookies=False)
    response = client.post("/api/v1/audiences/import?kind=alumnus", data=XLSX, content_type="text/csv",
                           headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 422
    assert NOT_TEXT in response.get_json()["message"]


# --- Excel's "sep=" line ------------------------------------------------------------------


def test_a_file_starting_with_sep_imports_from_the_page(admin, app_ctx):
    data = b"\xef\xbb\xbf" + csv("sep=;", "Email;Prénom;Nom", "ada@example.org;Ada;Lovelace", "nope;Bob;Smith")
    page = upload(admin, data).get_data(as_text=True)
    assert "Import done: 1 added, 0 updated. 1 line rejected." in page
    assert stored()["ada@example.org"].last_name == "Lovelace"


def test_a_file_starting_with_sep_imports_from_the_cli(app, app_ctx, tmp_path):
    result = run_cli(app, tmp_path, csv("sep=,", "Email,Nom", "ada@example.org,Lovelace", "nope,Bob"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["created 1, updated 0, rejected 1", "line 4: invalid email address 'nope'"]
