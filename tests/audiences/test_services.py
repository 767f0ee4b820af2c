"""Importing audiences into the database, and selecting them back."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from survey.audiences.cli import audience_cli
from survey.audiences.models import Stakeholder
from survey.audiences.services import audience_size, import_audience, matching_stakeholders
from survey.core.errors import ValidationFailed
from survey.core.types import utcnow
from survey.extensions import db


def stored() -> dict[str, Stakeholder]:
    db.session.expire_all()
    return {s.email: s for s in db.session.execute(select(Stakeholder)).scalars()}


def csv(*lines: str) -> bytes:
    return "\r\n".join(lines).encode()


# --- the shared sample files ------------------------------------------------------------


def test_french_export_stores_valid_rows_and_reports_the_others(app_ctx, shared_data):
    report = import_audience((shared_data / "alumni_fr_excel.csv").read_bytes(), "alumnus")
    db.session.commit()

    assert (report.created, report.updated) == (232, 0)
    assert [r["line"] for r in report.rejected] == [7, 19, 35, 63, 79, 92, 103, 120]
    people = stored()
    assert len(people) == 232
    assert {p.kind for p in people.values()} == {"alumnus"}
    ada = people["karim.kowalski0@example.fr"]
    assert (ada.first_name, ada.last_name, ada.locale, ada.timezone) == (
        "Karim", "Kowalski", "en", "Europe/Paris")
    assert ada.attributes == {
        "programme": "UX Designer", "cohort": "2024-02", "completion_date": "2025-11-05"}
    # The first of two spellings of the same address is the one kept.
    assert people["lodie.dubois4@example.fr"].first_name == "Élodie"
    assert "sren.nguyn48@example.fr" in people  # spaces trimmed
    assert "jean.dupont@exämple.fr" in people  # internationalised domain
    assert "ukasz.delatour101@example.org" not in people  # formula in the first name
    assert "mathieu.delatour118@example.org" not in people  # markup in the last name
    assert all(p.suppressed_at is None for p in people.values())


def test_reimporting_the_same_file_updates_instead_of_duplicating(app_ctx, shared_data):
    data = (shared_data / "alumni_fr_excel.csv").read_bytes()
    import_audience(data, "alumnus")
    db.session.commit()

    again = import_audience(data, "alumnus")
    db.session.commit()

    assert (again.created, again.updated, len(again.rejected)) == (0, 232, 8)
    assert db.session.execute(select(func.count()).select_from(Stakeholder)).scalar_one() == 232


def test_employees_file_stores_department_and_gender(app_ctx, shared_data):
    report = import_audience((shared_data / "employees.csv").read_bytes(), "employee")
    db.session.commit()

    assert report.as_dict() == {"created": 60, "updated": 0, "rejected": []}
    person = stored()["employee0@company.example"]
    assert person.kind == "employee"
    assert person.attributes == {"department": "Engineering", "gender": "X"}
    assert audience_size("employee", {"department": "Legal"}) == 3
    assert audience_size("employee", {"gender": "F"}) == 21


# --- upsert -----------------------------------------------------------------------------


def test_update_merges_attributes_and_keeps_suppression(app_ctx):
    import_audience(csv("Email;Prénom;Nom;Promotion;Parcours",
                        "ada@example.org;Ada;Lovelace;2024-02;Data Analyst"), "alumnus")
    person = stored()["ada@example.org"]
    person.suppressed_at, person.suppression_reason = utcnow(), "opted out"
    db.session.commit()
    before = person.updated_at

    report = import_audience(csv("E-mail,Last name,Cohort,Department,Language",
                                 "ADA@example.org,King,2025-01,R&D,English"), "employee")
    db.session.commit()

    assert (report.created, report.updated) == (0, 1)
    person = stored()["ada@example.org"]
    assert person.kind == "employee"
    assert (person.first_name, person.last_name) == ("Ada", "King")  # no first-name column: kept
    assert person.locale == "en"
    assert person.attributes == {
        "cohort": "2025-01", "programme": "Data Analyst", "department": "R&D"}
    assert person.suppression_reason == "opted out"
    assert person.suppressed_at is not None
    assert person.updated_at >= before


def test_a_blank_language_or_time_zone_keeps_what_we_know(app_ctx):
    import_audience(csv("Email;Langue;Fuseau horaire", "ada@example.org;English;America/Montreal"), "alumnus")
    import_audience(csv("Email;Langue;Fuseau horaire;Nom", "ada@example.org;;;King"), "alumnus")
    db.session.commit()

    person = stored()["ada@example.org"]
    assert (person.locale, person.timezone, person.last_name) == ("en", "America/Montreal", "King")


def test_new_people_without_language_get_the_configured_defaults(app, app_ctx, monkeypatch):
    monkeypatch.setitem(app.config, "BABEL_DEFAULT_LOCALE", "en")
    monkeypatch.setitem(app.config, "DEFAULT_TIMEZONE", "Africa/Dakar")
    import_audience(csv("Email;Nom", "ada@example.org;Lovelace"), "alumnus")
    person = stored()["ada@example.org"]
    assert (person.locale, person.timezone) == ("en", "Africa/Dakar")


def test_loaded_objects_see_the_update(app_ctx):
    import_audience(csv("Email;Nom", "ada@example.org;Lovelace"), "alumnus")
    person = db.session.execute(select(Stakeholder)).scalar_one()
    assert person.last_name == "Lovelace"

    import_audience(csv("Email;Nom", "ada@example.org;King"), "alumnus")

    assert person.last_name == "King"


def test_import_flushes_but_does_not_commit(app_ctx):
    report = import_audience(csv("Email", "ada@example.org"), "alumnus")
    assert report.created == 1
    assert db.session.execute(select(Stakeholder.email)).scalars().all() == ["ada@example.org"]
    db.session.rollback()
    assert db.session.execute(select(Stakeholder)).first() is None


def test_more_rows_than_one_chunk(app_ctx):
    lines = ["Email;Promotion"] + [f"p{i}@example.org;2024-{i % 12 + 1:02d}" for i in range(1203)]
    assert import_audience(csv(*lines), "alumnus").created == 1203
    lines[1:] = [f"p{i}@example.org;2025-01" for i in range(1300)]
    report = import_audience(csv(*lines), "alumnus")
    assert (report.created, report.updated) == (97, 1203)
    assert audience_size("alumnus", {"cohort": "2025-01"}) == 1300


def test_unknown_kind_is_refused(app_ctx):
    with pytest.raises(ValidationFailed):
        import_audience(csv("Email", "ada@example.org"), "teacher")
    assert db.session.execute(select(Stakeholder)).first() is None


def test_a_file_without_email_column_stores_nothing(app_ctx):
    report = import_audience(csv("Nom;Prénom", "Lovelace;Ada"), "alumnus")
    assert (report.created, report.updated) == (0, 0)
    assert report.rejected[0]["line"] == 1
    assert "no email column" in report.rejected[0]["reason"]


# --- selecting an audience --------------------------------------------------------------


def test_matching_stakeholders_filters_by_kind_and_attributes(app_ctx):
    import_audience(csv("Email;Promotion;Parcours",
                        "a@example.org;2024-02;Data", "b@example.org;2024-02;Web",
                        "c@example.org;2025-01;Data"), "alumnus")
    import_audience(csv("Email;Promotion", "d@example.org;2024-02"), "employee")

    def emails(filters):
        statement = matching_stakeholders("alumnus", filters)
        return [s.email for s in db.session.execute(statement).scalars()]

    assert emails({}) == ["a@example.org", "b@example.org", "c@example.org"]
    assert emails({"cohort": "2024-02"}) == ["a@example.org", "b@example.org"]
    assert emails({"cohort": "2024-02", "programme": "Data"}) == ["a@example.org"]
    assert emails({"cohort": "1999"}) == []
    assert audience_size("alumnus", {"cohort": "2024-02"}) == 2
    assert audience_size("employee", {}) == 1


# --- command line -----------------------------------------------------------------------


def test_cli_imports_commits_and_lists_rejections(app, app_ctx, tmp_path):
    path = tmp_path / "audience.csv"
    path.write_bytes(csv("Email;Nom", "ada@example.org;Lovelace", "nope;Bob"))

    result = app.test_cli_runner().invoke(audience_cli, ["import", str(path), "--kind", "alumnus"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "created 1, updated 0, rejected 1",
        "line 3: invalid email address 'nope'",
    ]
    db.session.rollback()  # what the command stored was committed
    assert list(stored()) == ["ada@example.org"]


def test_cli_refuses_a_wrong_kind_or_a_missing_file(app, app_ctx, tmp_path):
    runner = app.test_cli_runner()
    path = tmp_path / "audience.csv"
    path.write_bytes(csv("Email", "ada@example.org"))
    assert runner.invoke(audience_cli, ["import", str(path), "--kind", "teacher"]).exit_code != 0
    assert runner.invoke(audience_cli, ["import", str(tmp_path / "missing.csv"),
                                        "--kind", "alumnus"]).exit_code != 0
    assert db.session.execute(select(Stakeholder)).first() is None


def test_one_select_and_one_bulk_write_per_chunk(app_ctx):
    from sqlalchemy import event

    lines = ["Email;Nom"] + [f"p{i}@example.org;Old" for i in range(600)]
    import_audience(csv(*lines[:401]), "alumnus")  # 400 exist, 200 will be new
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.split()[0].upper())

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        report = import_audience(csv(*lines), "alumnus")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)

    assert (report.created, report.updated) == (200, 400)
    # chunk 1 (500 rows): 400 to update, 100 new; chunk 2 (100 rows): all new.
    assert statements == ["SELECT", "INSERT", "UPDATE", "SELECT", "INSERT"]
