"""``flask --app wsgi audience import FILE --kind alumnus|employee``."""
from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from survey.audiences.models import KINDS
from survey.core.errors import ServiceError
from survey.extensions import db

audience_cli = AppGroup("audience", help="Audiences: the alumni and employees we survey.")


@audience_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(KINDS), required=True)
def import_command(file: Path, kind: str) -> None:
    """Create or update stakeholders from a CSV file; rejected lines are listed, not fatal."""
    from survey.audiences.services import import_audience

    try:
        report = import_audience(file.read_bytes(), kind)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc  # the English text
    db.session.commit()
    click.echo(f"created {report.created}, updated {report.updated}, "
               f"rejected {len(report.rejected)}")
    for rejection in report.rejected:
        click.echo(f"line {rejection['line']}: {rejection['reason']}")


def register(app: Flask) -> None:
    app.cli.add_command(audience_cli)
