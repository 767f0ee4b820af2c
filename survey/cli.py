"""Command-line groups: ``flask --app wsgi users|api-keys|audience|questionnaires|demo|audit|reports|people``."""
from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from survey.extensions import db

questionnaires_cli = AppGroup("questionnaires", help="Questionnaire definitions.")
demo_cli = AppGroup("demo", help="The embedded demo.")


@questionnaires_cli.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load_questionnaire(path: Path) -> None:
    """Add a JSON or YAML definition (a new version if the slug exists)."""
    from survey.core.errors import ValidationFailed
    from survey.questionnaires.services import add_questionnaire, parse_definition

    try:
        questionnaire = add_questionnaire(parse_definition(path.read_bytes(), path.name))
    except ValidationFailed as exc:
        raise click.ClickException(str(exc)) from exc  # the English text
    db.session.commit()
    click.echo(f"{questionnaire.slug} version {questionnaire.version} (id {questionnaire.id})")


@questionnaires_cli.command("load-builtins")
def load_builtins() -> None:
    """Add the built-in questionnaires (nothing changes if they are already there)."""
    from survey.questionnaires.services import load_builtin_questionnaires

    for questionnaire in load_builtin_questionnaires():
        click.echo(f"{questionnaire.slug} version {questionnaire.version} (id {questionnaire.id})")
    db.session.commit()


@demo_cli.command("setup")
def demo_setup() -> None:
    """Demo admin, built-in questionnaires and demo audience; safe to run again."""
    from survey.demo.services import DEMO_STAFF, set_up_demo

    email, password = set_up_demo(Path(current_app.instance_path) / "demo_admin_password")
    base = current_app.config["BASE_URL"]
    click.echo("")
    click.echo(f"  Attest is starting on {base}")
    click.echo(f"  Log in as {email} with password {password or '(set earlier; see instance/)'}")
    staff = ", ".join(f"{address} ({role})" for address, role, _name in DEMO_STAFF)
    click.echo(f"  Same password for the committee demo: {staff}")
    click.echo(f"  Caught emails: {base}/admin/mail/")
    click.echo("")


def register_cli(app: Flask) -> None:
    from survey.accounts.cli import api_keys_cli, users_cli
    from survey.audiences.cli import register as register_audience_cli
    from survey.audit.cli import audit_cli
    from survey.mail.bounces import bounces_cli
    from survey.privacy.cli import people_cli
    from survey.reports.cli import reports_cli

    for group in (users_cli, api_keys_cli, questionnaires_cli, demo_cli):
        app.cli.add_command(group)
    register_audience_cli(app)
    app.cli.add_command(bounces_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(reports_cli)
    app.cli.add_command(people_cli)
