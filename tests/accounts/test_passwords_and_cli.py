"""Password storage and policy; the ``users`` and ``api-keys`` commands."""
from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select, text

from survey.extensions import db
from tests.factories import PASSWORD, csrf_token


def _can_log_in(client, email, password) -> bool:
    token = csrf_token(client)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    with client.session_transaction() as session:
        logged_in = session.get("_user_id") is not None
    return response.status_code == 302 and logged_in


def _stored_hash(email: str) -> str:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT password_hash FROM users WHERE email = :e"), {"e": email}).scalar_one()


# ------------------------------------------------------------------- storage

def test_passwords_are_stored_as_argon2id_never_in_clear(app_ctx, create_user):
    user = create_user(role="admin", email="hash@staff.example")
    stored = _stored_hash("hash@staff.example")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM users WHERE id = :id"), {"id": user.id}).mappings().one()
    assert not any(PASSWORD in str(value) for value in row.values())


def test_two_users_with_the_same_password_get_different_hashes(app_ctx, create_user):
    create_user(email="one@staff.example")
    create_user(email="two@staff.example")
    assert _stored_hash("one@staff.example") != _stored_hash("two@staff.example")


def test_a_password_under_12_characters_is_refused(app_ctx):
    from survey.accounts.models import User
    from survey.accounts.services import create_user
    from survey.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="12 characters"):
        create_user("short@staff.example", "x" * 11, "admin")
    db.session.rollback()
    assert db.session.scalar(select(User).where(User.email == "short@staff.example")) is None
    create_user("long@staff.example", "x" * 12, "admin")  # 12 is enough
    db.session.commit()


# ----------------------------------------------------------- users create

def _users_create(app, email, role, password_line):
    return app.test_cli_runner().invoke(args=["users", "create", email, "--role", role], input=password_line)


def test_users_create_reads_the_password_from_stdin_and_the_user_can_log_in(app, client):
    result = _users_create(app, "Cli@Staff.example", "admin", PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "cli@staff.example" in result.output
    assert PASSWORD not in result.output
    assert _stored_hash("cli@staff.example").startswith("$argon2id$")
    assert _can_log_in(client, "cli@staff.example", PASSWORD)


def test_users_create_accepts_a_windows_line_end_on_stdin(app, client):
    result = _users_create(app, "crlf@staff.example", "committee", PASSWORD + "\r\n")
    assert result.exit_code == 0, result.output
    assert _can_log_in(client, "crlf@staff.example", PASSWORD)


def test_users_create_with_an_existing_email_fails_clearly(app, app_ctx):
    from survey.accounts.models import User

    assert _users_create(app, "dup@staff.example", "admin", PASSWORD + "\n").exit_code == 0
    result = _users_create(app, "DUP@staff.example", "chair", "another long password\n")
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert "Traceback" not in result.output
    users = db.session.scalars(select(User).where(User.email == "dup@staff.example")).all()
    assert [u.role for u in users] == ["admin"]


def test_users_create_with_an_unknown_role_is_refused(app, app_ctx):
    from survey.accounts.models import User

    result = _users_create(app, "boss@staff.example", "superuser", PASSWORD + "\n")
    assert result.exit_code != 0
    assert "superuser" in result.output and "admin" in result.output
    assert db.session.scalar(select(User).where(User.email == "boss@staff.example")) is None


def test_users_create_with_a_short_password_is_refused(app, app_ctx):
    from survey.accounts.models import User

    result = _users_create(app, "weak@staff.example", "admin", "short\n")
    assert result.exit_code != 0
    assert "12 characters" in result.output
    assert db.session.scalar(select(User).where(User.email == "weak@staff.example")) is None


# -------------------------------------------------------------- api-keys create

def test_api_keys_create_prints_the_key_last_and_stores_only_its_hash(app, client):
    from survey.accounts.models import ApiKey

    result = app.test_cli_runner().invoke(args=["api-keys", "create", "HR system"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1].strip()
    assert key.startswith("att_") and len(key) >= 40

    stored = db.session.scalars(select(ApiKey)).one()
    assert stored.name == "HR system"
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    with db.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM api_keys")).mappings().one()
    assert not any(key in str(value) for value in row.values())

    response = client.get("/api/v1/questionnaires", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.get_json() == []
    response = client.get("/api/v1/questionnaires", headers={"Authorization": f"Bearer {key}x"})
    assert response.status_code == 401


def test_each_api_key_is_different(app, app_ctx):
    runner = app.test_cli_runner()
    keys = {runner.invoke(args=["api-keys", "create", "k"]).output.strip().splitlines()[-1] for _ in range(3)}
    assert len(keys) == 3


def test_a_leaked_api_key_is_revoked_and_refused_from_then_on(app, client):
    """Found in review: a key's revoked_at was checked, but nothing could set it."""
    from survey.accounts.models import ApiKey
    from survey.audit.models import AuditEvent

    runner = app.test_cli_runner()
    key = runner.invoke(args=["api-keys", "create", "HR system"]).output.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/questionnaires", headers=headers).status_code == 200
    [stored] = db.session.scalars(select(ApiKey)).all()
    listed = runner.invoke(args=["api-keys", "list"]).output
    assert f"{stored.id}\t{stored.prefix}…\tHR system" in listed and "active" in listed and key not in listed
    result = runner.invoke(args=["api-keys", "revoke", str(stored.id)])
    assert result.exit_code == 0, result.output
    assert client.get("/api/v1/questionnaires", headers=headers).status_code == 401
    assert "revoked" in runner.invoke(args=["api-keys", "list"]).output
    assert db.session.scalar(select(AuditEvent.subject).where(AuditEvent.action == "api_key_revoked")) == \
        f"api-key:{stored.id}"
    assert runner.invoke(args=["api-keys", "revoke", "999"]).exit_code != 0


def test_a_read_only_key_reads_and_changes_nothing(app, client, alumni):
    """A dashboard's key: it reads the campaigns and the impact report, and may not create,
    change, import or schedule anything."""
    from survey.accounts.models import ApiKey
    from survey.audit.models import AuditEvent
    from survey.campaigns.models import Campaign
    from tests.campaigns.helpers import make_campaign

    campaign = make_campaign(alumni)
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["api-keys", "create", "Dashboard", "--read-only"])
    assert result.exit_code == 0, result.output
    headers = {"Authorization": f"Bearer {result.output.strip().splitlines()[-1]}"}
    [stored] = db.session.scalars(select(ApiKey)).all()
    assert "Dashboard\tread only" in runner.invoke(args=["api-keys", "list"]).output
    created = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_key_created"))
    assert created.subject == f"api-key:{stored.id}" and created.data["read_only"] is True

    assert client.get("/api/v1/campaigns", headers=headers).status_code == 200
    assert client.get(f"/api/v1/reports/impact?campaign={campaign.id}", headers=headers).status_code == 200
    before = db.session.scalar(select(db.func.count()).select_from(Campaign))
    for method, path, body in (
            ("post", "/api/v1/campaigns", {"name": "x", "questionnaire_id": alumni.id, "audience_kind": "alumnus"}),
            ("post", f"/api/v1/campaigns/{campaign.id}/schedule", {}),
            ("post", "/api/v1/questionnaires", {"definition": {}})):
        response = getattr(client, method)(path, json=body, headers=headers)
        assert response.status_code == 403, (path, response.get_data(as_text=True))
        assert response.get_json()["message"] == "This API key may not do this."
    assert db.session.scalar(select(db.func.count()).select_from(Campaign)) == before


def test_a_deactivated_user_is_logged_out_and_cannot_log_in(app, create_user, browser):
    from survey.accounts.models import User

    user = create_user(role="committee")
    member = browser(user)
    assert member.get("/committee/").status_code == 200
    result = app.test_cli_runner().invoke(args=["users", "deactivate", user.email])
    assert result.exit_code == 0, result.output
    assert member.get("/committee/").status_code == 302  # the session ended
    db.session.expire_all()
    assert db.session.get(User, user.id).active is False


# -------------------------------------------------------------- users list|set-role|set-attribute|reactivate

def test_a_member_becomes_chair_and_their_old_sessions_end(app, create_user, browser):
    from survey.audit.models import AuditEvent

    user = create_user(role="committee", email="sam@staff.example")
    member = browser(user)
    assert member.get("/committee/claims").status_code == 403
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "set-role", "Sam@Staff.example", "chair"])
    assert result.exit_code == 0, result.output
    assert member.get("/committee/").status_code == 302  # logged out: no page acts on as the old role
    assert browser(user).get("/committee/claims").status_code == 200
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user_role_changed"))
    assert (event.subject, event.from_state, event.to_state) == (f"user:{user.id}", "committee", "chair")
    assert "sam@staff.example\t-\tchair\tactive" in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "set-role", "sam@staff.example", "king"]).exit_code != 0
    assert runner.invoke(args=["users", "set-role", "nobody@staff.example", "chair"]).exit_code != 0


def test_a_member_s_attributes_keep_them_from_their_own_cohort_s_claims(app, create_user, create_stakeholder,
                                                                         monkeypatch):
    from survey.accounts.models import User
    from survey.claims.services import excluded

    monkeypatch.setitem(app.config, "REVIEWER_EXCLUSIONS", "cohort,department=team")  # claimant's = member's
    user = create_user(role="committee")
    claimant = create_stakeholder(cohort="2021", department="Sales")
    assert excluded(user, claimant) is None
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "set-attribute", user.email, "cohort=2021", "team=Sales"])
    assert result.exit_code == 0 and "cohort=2021, team=Sales" in result.output, result.output
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert excluded(user, claimant) == "exclusion rule: cohort"
    assert runner.invoke(args=["users", "set-attribute", user.email, "cohort="]).exit_code == 0
    db.session.expire_all()
    assert excluded(db.session.get(User, user.id), claimant) == "exclusion rule: department"
    assert runner.invoke(args=["users", "set-attribute", user.email, "oops"]).exit_code != 0


def test_someone_deactivated_who_comes_back_is_reactivated(app, create_user, browser):
    user = create_user(role="auditor")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["users", "deactivate", user.email]).exit_code == 0
    assert "deactivated" in runner.invoke(args=["users", "list"]).output
    result = runner.invoke(args=["users", "reactivate", user.email])
    assert result.exit_code == 0, result.output
    assert browser(user).get("/audit/").status_code == 200
