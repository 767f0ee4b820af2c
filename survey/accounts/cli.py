"""``flask --app wsgi users create`` and ``flask --app wsgi api-keys create``."""
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

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        user = create_user(email, password, role, name=name)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc  # the English text
    db.session.commit()
    click.echo(f"Created {user.role} {user.email}")


@api_keys_cli.command("create")
@click.argument("name")
def create_api_key_command(name: str) -> None:
    """Create an API key; it is printed once, on the last line, and stored hashed."""
    from survey.accounts.services import create_api_key

    key, plain = create_api_key(name)
    db.session.commit()
    click.echo(f"API key {key.name!r} created; keep it now, it is not shown again:", err=True)
    click.echo(plain)
