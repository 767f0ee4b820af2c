"""`flask demo setup` (run by `make run` at every start): the demo accounts, questionnaires
and audience, created once and printed each time."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from survey.accounts.models import User
from survey.audiences.models import Stakeholder
from survey.extensions import db
from survey.questionnaires.models import Questionnaire


def _run(app):
    result = app.test_cli_runner().invoke(args=["demo", "setup"])
    assert result.exit_code == 0, result.output
    return result.output


def test_demo_setup_creates_every_role_once_and_prints_the_login(app, app_ctx, client):
    first = _run(app)
    password = re.search(r"Log in as admin@attest\.localhost with password (\S+)", first).group(1)
    assert "chair@attest.localhost (chair)" in first and "auditor@attest.localhost (auditor)" in first
    again = _run(app)
    assert f"with password {password}" in again  # printed again on the next start
    db.session.expire_all()
    roles = sorted(db.session.scalars(select(User.role)))
    assert roles == ["admin", "auditor", "chair", "committee", "committee"]
    assert db.session.scalar(select(func.count()).select_from(Stakeholder)) > 0
    assert {q.slug for q in db.session.scalars(select(Questionnaire))} >= {"alumni-outcomes", "employee-pulse"}

    client.get("/login")
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    login = client.post("/login", data={"email": "member1@attest.localhost", "password": password,
                                        "csrf_token": csrf})
    assert login.status_code == 302 and login.headers["Location"] != "/login"
