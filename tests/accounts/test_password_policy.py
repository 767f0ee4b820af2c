"""The password policy (length, common passwords, not only the email or the product's name),
argon2id parameters and rehashing, and ``users set-password``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import select, text

from survey.extensions import db
from tests.factories import PASSWORD, csrf_token

ROOT = Path(__file__).resolve().parents[2]


def _stored_hash(email: str) -> str:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT password_hash FROM users WHERE email = :e"), {"e": email}).scalar_one()


def _refused(password: str, email: str = "someone@staff.example") -> str:
    from survey.accounts.models import User
    from survey.accounts.services import create_user
    from survey.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        create_user(email, password, "admin")
    db.session.rollback()
    assert db.session.scalar(select(User).where(User.email == email)) is None
    return str(refused.value)


# ------------------------------------------------------------- common passwords

def test_the_common_password_list_is_a_real_one(app_ctx):
    from survey.accounts.passwords import common_passwords

    passwords = common_passwords()
    assert len(passwords) >= 10_000
    assert {"123456", "password", "qwerty", "iloveyou"} <= passwords


@pytest.mark.parametrize("password", ["password1234", "PASSWORD1234", "Password1234", "QwertyUiop123",
                                      "LeaveMeAlone", " 1q2w3e4r5t6y "])
def test_a_common_password_is_refused_whatever_its_case(app_ctx, password):
    assert "on a list of common passwords" in _refused(password)


@pytest.mark.parametrize("email, password", [
    ("ada.lovelace@staff.example", "ada.lovelace2026"),
    ("ada.lovelace@staff.example", "LovelaceAda!!!!"),
    ("ada.lovelace@staff.example", "adaadaadaada"),
    ("someone@staff.example", "Attest2026!!"),
    ("someone@staff.example", "attest attest attest"),
    ("someone@staff.example", "Someone-Attest-1"),
])
def test_a_password_made_only_of_the_email_or_the_product_name_is_refused(app_ctx, email, password):
    assert "only of your email address or the name of this application" in _refused(password, email)


def test_a_passphrase_that_merely_contains_the_name_is_accepted(create_user):
    user = create_user(email="ada.lovelace@staff.example", password="ada attests her engine works")
    assert user.id


def test_users_create_refuses_a_common_password_clearly(app, app_ctx):
    from survey.accounts.models import User

    result = app.test_cli_runner().invoke(args=["users", "create", "cli@staff.example", "--role", "admin"],
                                          input="Password1234\n")
    assert result.exit_code != 0
    assert "on a list of common passwords" in result.output and "Traceback" not in result.output
    assert db.session.scalar(select(User).where(User.email == "cli@staff.example")) is None


# ------------------------------------------------------------------ users set-password

def test_users_set_password_applies_the_policy_and_ends_sessions(app, create_user, browser):
    user = create_user(role="admin", email="reset@staff.example")
    client = browser(user)
    before = _stored_hash(user.email)
    runner = app.test_cli_runner()

    for weak, message in [("short", "12 characters"), ("Password1234", "list of common passwords"),
                          ("reset2026reset", "only of your email address")]:
        result = runner.invoke(args=["users", "set-password", "Reset@staff.example"], input=weak + "\n")
        assert result.exit_code != 0 and message in result.output, result.output
        assert _stored_hash(user.email) == before
    assert client.get("/admin/campaigns/").status_code == 200  # a refused change ends nothing

    result = runner.invoke(args=["users", "set-password", "reset@staff.example"], input="a brand new passphrase\n")
    assert result.exit_code == 0, result.output
    assert "a brand new passphrase" not in result.output
    assert _stored_hash(user.email) != before and _stored_hash(user.email).startswith("$argon2id$")
    assert client.get("/admin/campaigns/").status_code == 302  # that session is over
    fresh = browser()
    response = fresh.post("/login", data={"email": user.email, "password": "a brand new passphrase",
                                          "csrf_token": csrf_token(fresh)})
    assert response.status_code == 302


def test_users_set_password_for_an_unknown_email_fails_clearly(app, app_ctx):
    result = app.test_cli_runner().invoke(args=["users", "set-password", "ghost@staff.example"],
                                          input="a brand new passphrase\n")
    assert result.exit_code != 0
    assert "No user has the email ghost@staff.example." in result.output and "Traceback" not in result.output


# ----------------------------------------------------------------------- argon2id

def test_argon2id_parameters_are_at_least_asvs():
    """What config.py gives when the environment says nothing (the suite itself runs
    cheaper parameters, which only TESTING allows)."""
    from argon2 import extract_parameters

    from survey.accounts.services import ASVS_MINIMUM, _hasher

    environment = {k: v for k, v in os.environ.items() if not k.startswith("ARGON2_")}
    defaults = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, config; c = config.Config; "
         "print(json.dumps([c.ARGON2_TIME_COST, c.ARGON2_MEMORY_KIB, c.ARGON2_PARALLELISM]))"],
        env=environment, capture_output=True, text=True, check=True, cwd=ROOT).stdout)
    parameters = extract_parameters(_hasher(*defaults).hash("any password at all"))
    assert parameters.type is Type.ID
    # OWASP ASVS 5 / OWASP cheat sheet: argon2id, at least 19 MiB, t=2, p=1
    assert ASVS_MINIMUM == {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (3, 64 * 1024, 4)


def test_parameters_under_asvs_stop_the_app_from_starting():
    from survey import create_app

    with pytest.raises(RuntimeError, match="below OWASP ASVS"):
        create_app({"TESTING": True, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 19 * 1024,
                    "ARGON2_PARALLELISM": 1})


def test_an_outdated_hash_is_replaced_at_the_next_login(create_user, browser):
    """When the parameters change, each user's hash is redone with them at their next login."""
    from argon2 import extract_parameters

    from survey.accounts.services import hasher

    user = create_user(role="admin", email="old@staff.example")
    other = PasswordHasher(time_cost=3, memory_cost=19 * 1024, parallelism=1)  # not the configured ones
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE users SET password_hash = :h WHERE email = :e"),
                     {"h": other.hash(PASSWORD), "e": user.email})
    assert extract_parameters(_stored_hash(user.email)).time_cost == 3

    browser(user)  # logs in with the password (asserts success)

    rehashed = _stored_hash(user.email)
    assert extract_parameters(rehashed) == extract_parameters(hasher().hash("x"))
    assert not hasher().check_needs_rehash(rehashed)
    assert browser(user)  # and the new hash still opens the account
