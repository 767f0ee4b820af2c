"""``flask --app wsgi users create|set-password`` and ``flask --app wsgi api-keys create``."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from survey.accounts.models import ROLE_VALUES
from survey.core.errors import ServiceError
from survey.extensions import db

users_cli = AppGroup("users", help="Staff accounts.")
api_keys_cli = AppGroup("api-keys", help="Keys for the REST API.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLE_VALUES), required=True)
@click.option("--name", default="")
def create_user_command(email: str, role: str, name: str) -> None:
    """Create a user; the password is asked for, or read from standard input."""
    from survey.accounts.services import create_user

    password = _read_password()
    try:
        user = create_user(email, password, role, name=name)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc  # the English text
    db.session.commit()
    click.echo(f"Created {user.role} {user.email}")


@users_cli.command("set-password")
@click.argument("email")
def set_password_command(email: str) -> None:
    """Give a user a new password (asked for, or read from standard input) under the
    password policy; every session of that user ends."""
    from sqlalchemy import select

    from survey.accounts.models import User
    from survey.accounts.services import normalise_email, set_password

    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise click.ClickException(f"No user has the email {normalise_email(email)}.")
    password = _read_password()
    try:
        set_password(user, password)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc  # the English text
    db.session.commit()
    click.echo(f"New password set for {user.email}; their sessions are logged out.")


def _read_password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\r\n")


@api_keys_cli.command("create")
@click.argument("name")
def create_api_key_command(name: str) -> None:
    """Create an API key; it is printed once, on the last line, and stored hashed."""
    from survey.accounts.services import create_api_key

    key, plain = create_api_key(name)
    db.session.commit()
    click.echo(f"API key {key.name!r} created; keep it now, it is not shown again:", err=True)
    click.echo(plain)
