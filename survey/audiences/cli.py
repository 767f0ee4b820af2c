"""``flask --app wsgi audience import FILE --kind alumnus|employee``."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from flask_babel import lazy_gettext as _l

from survey.audiences.models import KINDS
from survey.core.errors import ServiceError
from survey.core.i18n import in_english
from survey.extensions import db

audience_cli = AppGroup("audience", help="Audiences: the alumni and employees we survey.")


@audience_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(KINDS), required=True)
def import_command(file: Path, kind: str) -> None:
    """Create or update stakeholders from a CSV file; rejected lines are listed, not fatal.
    A file that cannot be read at all (not a CSV, no email column) is fatal: nothing is
    stored, and the exit status is 1.

    The file is read as it goes, whatever its size; on a terminal, a progress bar shows how
    far it got, in lines per second.
    """
    from survey.audiences.services import import_audience

    # The bar goes to stderr, and only to a terminal: stdout keeps just the report.
    terminal = _terminal()
    size = file.stat().st_size
    speed = _Speed()
    with file.open("rb") as stream, click.progressbar(
        length=size, label="Importing", file=terminal, hidden=not terminal.isatty(),
        show_percent=True, show_eta=False, item_show_func=speed.describe,
    ) as bar:

        def progress(bytes_read: int, lines_read: int) -> None:
            bar.update(bytes_read - bar.pos, (lines_read, bytes_read >= size))

        try:
            report = import_audience(stream, kind, progress=progress)
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc  # the English text
    if report.unreadable:
        db.session.rollback()
        raise click.ClickException(in_english(_l("This file cannot be imported: %(reason)s. Nothing was changed.",
                                                 reason=report.unreadable)))
    db.session.commit()
    click.echo(f"created {report.created}, updated {report.updated}, "
               f"rejected {report.rejected_total}")
    for rejection in report.rejected:
        click.echo(f"line {rejection['line']}: {rejection['reason']}")
    if report.rejected_unlisted:
        click.echo(f"… and {report.rejected_unlisted} more rejected lines")


def _terminal():
    """Where the progress bar is drawn (tests put a terminal of their own here)."""
    return sys.stderr


class _Speed:
    """The progress bar's text: lines read, and lines per second since the start."""

    def __init__(self):
        self.start = time.monotonic()

    def describe(self, state: tuple[int, bool] | None) -> str | None:
        if state is None:
            return None
        lines_read, whole_file = state
        elapsed = max(time.monotonic() - self.start, 1e-6)
        text = f"{lines_read:,} lines, {lines_read / elapsed:,.0f} lines/s"
        # Once read, the rows are checked and stored in the database: the last, silent step.
        return f"{text}; storing" if whole_file else text


def register(app: Flask) -> None:
    app.cli.add_command(audience_cli)
