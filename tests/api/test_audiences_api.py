"""POST /api/v1/audiences/import?kind=…"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from survey.extensions import db

URL = "/api/v1/audiences/import"


def _people():
    from survey.audiences.models import Stakeholder

    return {p.email: p for p in db.session.scalars(select(Stakeholder))}


def test_csv_body_creates_updates_and_rejects_with_line_numbers(client, auth, create_stakeholder):
    create_stakeholder(kind="alumnus", email="known@example.org", cohort="2022")
    csv_body = (
        "email,first_name,last_name,cohort\n"
        "new@example.org,Grace,Hopper,2024\n"
        "KNOWN@example.org,Ada,Lovelace,2023\n"
        "not-an-email,Alan,Turing,2024\n"
        "new@example.org,Grace,Again,2024\n"
    )
    response = client.post(f"{URL}?kind=alumnus", data=csv_body.encode(), content_type="text/csv", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    report = response.get_json()
    assert set(report) == {"created", "updated", "rejected", "rejected_total"}
    assert report["created"] == 1
    assert report["updated"] == 1
    assert [r["line"] for r in report["rejected"]] == [4, 5]
    assert report["rejected_total"] == 2
    assert all(set(r) == {"line", "reason"} and r["reason"] for r in report["rejected"])
    assert "duplicate of line 2" in report["rejected"][1]["reason"]

    db.session.expire_all()
    people = _people()
    assert set(people) == {"new@example.org", "known@example.org"}
    assert people["known@example.org"].attributes["cohort"] == "2023"
    assert people["new@example.org"].kind == "alumnus"


def test_importing_the_same_file_again_updates_instead_of_duplicating(client, auth):
    body = b"email;prenom;nom\nsame@example.org;Marie;Curie\n"
    first = client.post(f"{URL}?kind=alumnus", data=body, content_type="text/csv", headers=auth).get_json()
    second = client.post(f"{URL}?kind=alumnus", data=body, content_type="text/csv", headers=auth).get_json()
    assert (first["created"], first["updated"]) == (1, 0)
    assert (second["created"], second["updated"]) == (0, 1)
    assert len(_people()) == 1


def test_the_employees_export_creates_60_people(client, auth, shared_data):
    from survey.audiences.models import Stakeholder

    body = (shared_data / "employees.csv").read_bytes()
    response = client.post(f"{URL}?kind=employee", data=body, content_type="text/csv", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"created": 60, "updated": 0, "rejected": [], "rejected_total": 0}
    count = db.session.scalar(select(func.count()).select_from(Stakeholder).where(Stakeholder.kind == "employee"))
    assert count == 60


@pytest.mark.parametrize("query", ["", "?kind=", "?kind=robot", "?kind=Alumnus", "?other=alumnus"])
def test_missing_or_wrong_kind_gives_422_json_and_imports_nothing(client, auth, query):
    body = b"email\nsomeone@example.org\n"
    response = client.post(URL + query, data=body, content_type="text/csv", headers=auth)
    assert response.status_code == 422, response.get_data(as_text=True)
    payload = response.get_json()
    assert payload["code"] == 422 and payload["message"]
    assert "kind" in payload["message"]
    assert _people() == {}


@pytest.mark.parametrize("body", [
    b"",
    b"\x00\x01\x02\xff\xfe\xfd garbage",
    b"PK\x03\x04\x14\x00\x06\x00",  # an .xlsx sent instead of CSV
    b"name,phone\nAda,123\n",      # no email column
    b'email\n"unterminated\n',
])
def test_unusable_csv_is_reported_not_a_500(client, auth, body):
    response = client.post(f"{URL}?kind=alumnus", data=body, content_type="text/csv", headers=auth)
    assert response.status_code in (200, 422), response.get_data(as_text=True)[:300]
    assert response.is_json
    payload = response.get_json()
    if response.status_code == 200:
        assert payload["created"] == 0 and payload["rejected"]
        assert all(r["reason"] for r in payload["rejected"])
    assert _people() == {}


def test_a_long_report_lists_the_first_rejections_and_counts_them_all(client, auth):
    body = ("email\n" + "".join(f"nope{n}\n" for n in range(1500)) + "ada@example.org\n").encode()
    report = client.post(f"{URL}?kind=alumnus", data=body, content_type="text/csv", headers=auth).get_json()
    assert (report["created"], report["rejected_total"], len(report["rejected"])) == (1, 1500, 1000)
    assert report["rejected"][-1] == {"line": 1001, "reason": "invalid email address 'nope999'"}


@pytest.mark.parametrize("body", [b"", b"  \r\n"])
def test_a_request_without_a_csv_is_refused(client, auth, body):
    response = client.post(f"{URL}?kind=alumnus", data=body, content_type="text/csv", headers=auth)
    assert response.status_code == 422
    assert "no CSV" in response.get_json()["message"]


@pytest.mark.parametrize("body, reason", [
    (b"name,phone\nAda,123\n", "no email column"),
    (b"PK\x03\x04\x14\x00\x06\x00", "not text"),
])
def test_a_file_that_cannot_be_read_at_all_is_a_422_not_a_report(client, auth, body, reason):
    response = client.post(f"{URL}?kind=alumnus", data=body, content_type="text/csv", headers=auth)
    assert response.status_code == 422
    payload = response.get_json()
    assert reason in payload["message"] and payload["errors"]["rejected"][0]["line"] == 1
    assert _people() == {}


# ------------------------------------------------------------------ the people

PEOPLE = "/api/v1/audiences"


def test_people_are_listed_with_everything_known_about_them(client, auth, create_stakeholder):
    from survey.core.types import utcnow

    create_stakeholder(kind="alumnus", email="ada@example.org", locale="fr", timezone="Asia/Tokyo",
                       cohort="2024", programme="Data")
    gone = create_stakeholder(kind="employee", email="grace@example.org")
    gone.suppressed_at, gone.suppression_reason = utcnow(), "opted_out"
    db.session.commit()

    response = client.get(PEOPLE, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["page"], body["per_page"], body["total"], body["pages"]) == (1, 50, 2, 1)
    ada, grace = body["items"]
    assert ada == {
        "id": ada["id"], "kind": "alumnus", "email": "ada@example.org", "first_name": "Ada", "last_name": "Lovelace",
        "locale": "fr", "timezone": "Asia/Tokyo", "attributes": {"cohort": "2024", "programme": "Data"},
        "suppressed": False, "suppressed_at": None, "suppression_reason": None,
    }
    assert grace["kind"] == "employee"
    assert (grace["suppressed"], grace["suppression_reason"]) == (True, "opted_out") and grace["suppressed_at"]


def test_people_are_paginated_in_the_order_they_were_added(client, auth, create_stakeholder):
    emails = [create_stakeholder(email=f"p{n}@example.org").email for n in range(5)]
    pages = [client.get(f"{PEOPLE}?per_page=2&page={n}", headers=auth).get_json() for n in (1, 2, 3, 4)]
    assert [[p["email"] for p in page["items"]] for page in pages] == [emails[0:2], emails[2:4], emails[4:], []]
    assert {(page["total"], page["pages"]) for page in pages} == {(5, 3)}


def test_people_are_filtered_by_kind_and_by_part_of_the_address(client, auth, create_stakeholder):
    create_stakeholder(kind="alumnus", email="marie.curie@example.org")
    create_stakeholder(kind="employee", email="pierre.curie@example.org")
    create_stakeholder(kind="employee", email="alan_turing@example.org")

    def emails(query):
        body = client.get(f"{PEOPLE}?{query}", headers=auth).get_json()
        assert body["total"] == len(body["items"])
        return [p["email"] for p in body["items"]]

    assert emails("kind=employee") == ["pierre.curie@example.org", "alan_turing@example.org"]
    assert emails("email=CURIE") == ["marie.curie@example.org", "pierre.curie@example.org"]
    assert emails("kind=employee&email=curie") == ["pierre.curie@example.org"]
    assert emails("email=n_t") == ["alan_turing@example.org"]  # "_" is a letter here, not a LIKE wildcard
    assert emails("email=%25") == []
    assert emails("email=") == emails("")


@pytest.mark.parametrize("query", ["kind=robot", "per_page=0", "per_page=101", "page=0", "page=x",
                                   f"page={10**30}", "email=" + "x" * 321])
def test_bad_people_queries_give_422(client, auth, query):
    response = client.get(f"{PEOPLE}?{query}", headers=auth)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert query.split("=")[0] in response.get_json()["message"]


def test_people_need_a_key(client):
    response = client.get(f"{PEOPLE}?per_page=0")
    assert response.status_code == 401 and "API key" in response.get_json()["message"]
