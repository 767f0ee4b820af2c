"""The admin's list of people in the audiences, one page at a time."""
from __future__ import annotations

import pytest

from survey.extensions import db


@pytest.fixture
def client(english_client):
    return english_client


@pytest.fixture
def admin(client, create_user, login):
    login(create_user(role="admin"))
    return client


def test_the_people_list_is_paginated(admin, app_ctx):
    from sqlalchemy import insert

    from survey.audiences.models import Stakeholder

    db.session.execute(insert(Stakeholder), [
        {"kind": "alumnus", "email": f"p{n:03d}@example.org", "first_name": "Ada", "last_name": "L",
         "locale": "en", "timezone": "Europe/Paris", "attributes": {}} for n in range(120)])
    db.session.commit()
    first = admin.get("/admin/audiences/").get_data(as_text=True)
    assert "p000@example.org" in first and "p050@example.org" not in first and "Page 1 of 3" in first
    last = admin.get("/admin/audiences/?page=3").get_data(as_text=True)
    assert "p119@example.org" in last and "p099@example.org" not in last and 'rel="next"' not in last
    assert "p119@example.org" in admin.get("/admin/audiences/?page=99999999999").get_data(as_text=True)


def test_a_long_import_report_lists_the_first_rejections_and_counts_the_others(admin, app_ctx):
    import io

    from tests.factories import token

    body = "Email\r\n" + "".join(f"nope{n}\r\n" for n in range(1200)) + "ada@example.org\r\n"
    response = admin.post("/admin/audiences/", data={
        "csrf_token": token(admin, "/admin/audiences/"), "kind": "alumnus",
        "file": (io.BytesIO(body.encode()), "people.csv")}, content_type="multipart/form-data")

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Import done: 1 added, 0 updated. 1200 lines rejected." in page
    assert page.count("invalid email address") == 1000
    assert "… and 200 more rejected lines, not listed." in page
