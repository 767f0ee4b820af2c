"""``flask --app wsgi people erase|allow|export|purge``: a person's rights, and the retention policy."""
from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import AppGroup

from survey.extensions import db

people_cli = AppGroup("people", help="Personal data: erase or export a person's data, apply the retention policy.")


def _person(email: str):
    from survey.privacy.erasure import UnknownPerson, find_person

    try:
        return find_person(email)
    except UnknownPerson:
        raise click.ClickException(
            f"No one is held under {email.strip()!r} (never imported, or already erased).") from None


@people_cli.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase_command(email: str, yes: bool) -> None:
    """Remove a person's personal data and evidence; published counts and the audit chain stay."""
    from survey.privacy.erasure import erase_person

    person = _person(email)
    if not yes:
        click.confirm(f"Erase the personal data of person {person.id} ({person.email})? This cannot be undone",
                      abort=True)
    report = erase_person(person, keep_out=True)  # they asked: a later import must not bring them back
    db.session.commit()
    click.echo(f"Erased person {report.person_id}:")
    for kind, count in sorted(report.counts.items()):
        click.echo(f"  {kind}: {count}")


@people_cli.command("allow")
@click.argument("email")
def allow_command(email: str) -> None:
    """Let a person erased at their request be imported again, when they ask for it."""
    from survey.privacy.erasure import allow_again

    if not allow_again(email):
        raise click.ClickException(f"No person erased at their request had the address {email.strip()!r}.")
    db.session.commit()
    click.echo("The address may be imported again; the person's erased data does not come back.")


@people_cli.command("export")
@click.argument("email")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the JSON to this file instead of standard output.")
def export_command(email: str, output: Path | None) -> None:
    """Everything held about a person, as JSON (their right of access)."""
    from survey.privacy.export import export_person

    data = export_person(_person(email))
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    db.session.commit()  # the audit event of the export, once it is delivered
    if output is not None:
        click.echo(f"Written to {output}", err=True)


@people_cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
def purge_command(dry_run: bool) -> None:
    """Apply the retention policy now (what the daily task does)."""
    from survey.privacy.retention import purge

    result = purge(dry_run=dry_run)
    click.echo("Would remove:" if dry_run else "Removed:")
    for kind, count in result.counts.items():
        click.echo(f"  {kind}: {count}")
