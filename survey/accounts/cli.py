"""``flask --app wsgi users create|list|set-password|set-role|set-attribute|deactivate|reactivate``
and ``flask --app wsgi api-keys create|list|revoke``."""
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
    from survey.accounts.services import set_password

    user = _user(email)
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
@click.option("--read-only", is_flag=True, help="The key reads questionnaires, audiences, campaigns and "
              "reports, and changes nothing (a dashboard's).")
def create_api_key_command(name: str, read_only: bool) -> None:
    """Create an API key; it is printed once, on the last line, and stored hashed."""
    from survey.accounts.services import create_api_key

    key, plain = create_api_key(name, read_only=read_only)
    db.session.commit()
    click.echo(f"API key {key.name!r} created; keep it now, it is not shown again:", err=True)
    click.echo(plain)


def _user(email: str):
    from sqlalchemy import select

    from survey.accounts.models import User
    from survey.accounts.services import normalise_email

    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise click.ClickException(f"No user has the email {normalise_email(email)}.")
    return user


@users_cli.command("list")
def list_users_command() -> None:
    """Every staff account: email, name, role, active or not, language, attributes."""
    from sqlalchemy import select

    from survey.accounts.models import User

    for user in db.session.scalars(select(User).order_by(User.role, User.email)):
        attributes = ", ".join(f"{key}={value}" for key, value in sorted((user.attributes or {}).items()))
        click.echo("\t".join((user.email, user.name or "-", user.role, "active" if user.active else "deactivated",
                              user.locale or "-", attributes or "-")))


@users_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(ROLE_VALUES))
def set_role_command(email: str, role: str) -> None:
    """Give a user another role (a member becomes chair, say); their sessions end, so that
    no page open as the old role acts on. Open reviews stay theirs until the chair reassigns
    them, as when someone leaves."""
    from survey.audit.chain import record

    user = _user(email)
    if user.role != role:
        before, user.role = user.role, role
        user.end_sessions()
        record("user_role_changed", f"user:{user.id}", from_state=before, to_state=role)
        db.session.commit()
    click.echo(f"{user.email} is now {role}; their sessions are logged out.")


@users_cli.command("set-attribute")
@click.argument("email")
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
def set_attribute_command(email: str, assignments: tuple[str, ...]) -> None:
    """Set facts about a member that REVIEWER_EXCLUSIONS compares with a claimant's (their
    cohort, their team…); KEY= with no value removes one."""
    from survey.audit.chain import record

    user = _user(email)
    attributes = dict(user.attributes or {})
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not key.strip():
            raise click.BadParameter(f"{assignment!r} is not KEY=VALUE.", param_hint="KEY=VALUE")
        if value.strip():
            attributes[key.strip()] = value.strip()
        else:
            attributes.pop(key.strip(), None)
    if attributes != (user.attributes or {}):
        user.attributes = attributes
        record("user_attributes_changed", f"user:{user.id}", data=attributes)
        db.session.commit()
    shown = ", ".join(f"{key}={value}" for key, value in sorted(attributes.items())) or "none"
    click.echo(f"{user.email}: {shown}")


@users_cli.command("reactivate")
@click.argument("email")
def reactivate_user_command(email: str) -> None:
    """Someone deactivated who comes back: they may log in again (with their password, or
    one given with set-password) and be given claims."""
    from survey.audit.chain import record

    user = _user(email)
    if not user.active:
        user.active = True
        record("user_reactivated", f"user:{user.id}")
        db.session.commit()
    click.echo(f"{user.email} is active.")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_user_command(email: str) -> None:
    """Someone who leaves: they can no longer log in, their sessions end now, no new claim
    is given them (the chair reassigns their open reviews); what they did stays in the trail."""
    from survey.audit.chain import record

    user = _user(email)
    if user.active:
        user.active = False
        user.end_sessions()
        record("user_deactivated", f"user:{user.id}")
        db.session.commit()
    click.echo(f"{user.email} is deactivated; their sessions are logged out.")


@api_keys_cli.command("list")
def list_api_keys_command() -> None:
    """Every key: its id, prefix, name, what it may do, when made, last used, revoked."""
    from sqlalchemy import select

    from survey.accounts.models import ApiKey

    for key in db.session.scalars(select(ApiKey).order_by(ApiKey.id)):
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never used"
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        scope = "read only" if key.read_only else "read and write"
        click.echo(f"{key.id}\t{key.prefix}…\t{key.name}\t{scope}\tcreated {key.created_at:%Y-%m-%d}\t{used}\t{state}")


@api_keys_cli.command("revoke")
@click.argument("key_id", type=int)
def revoke_api_key_command(key_id: int) -> None:
    """Revoke a key (its id, from ``api-keys list``): every request with it is refused from now on."""
    from survey.accounts.models import ApiKey
    from survey.audit.chain import record
    from survey.core.types import utcnow

    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise click.ClickException(f"No API key has the id {key_id}.")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record("api_key_revoked", f"api-key:{key.id}", data={"name": key.name, "prefix": key.prefix})
        db.session.commit()
    click.echo(f"API key {key.id} ({key.name!r}) is revoked.")
