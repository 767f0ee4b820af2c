"""``flask --app wsgi reports verify SLUG``: check a published report.

It checks what an auditor wants to hear: the stored bytes still hash to the
published SHA-256; the inputs hash recomputed now (equal: nothing the figures were
computed from has changed since; different: later decisions or answers exist, and
the published figures describe the earlier state); the audit trail still holds the
head the report recorded, after a chain that verifies (a trail rewritten and rehashed
since, which its own verification cannot see, does not); each audit sample's seed
draws exactly the claims that were checked.
"""
from __future__ import annotations

import hashlib

import click
from flask.cli import AppGroup
from sqlalchemy import select

from survey.audit.chain import verify
from survey.audit.models import AuditEvent
from survey.extensions import db
from survey.reports.models import AuditSample, ReportSnapshot
from survey.reports.publishing import document_of, inputs_sha256
from survey.reports.sampling import draw, population

reports_cli = AppGroup("reports", help="Published reports: verify a snapshot.")


@reports_cli.command("verify")
@click.argument("slug")
def verify_snapshot(slug: str) -> None:
    """Check a published report's hashes and its audit samples (exit 1 if tampered with)."""
    snapshot = db.session.scalar(select(ReportSnapshot).where(ReportSnapshot.slug == slug))
    if snapshot is None:
        raise click.ClickException(f"No published report has the address {slug}.")
    ok = hashlib.sha256(snapshot.content).hexdigest() == snapshot.content_sha256
    click.echo(f"{snapshot.title}, version {snapshot.version}, published {snapshot.published_at:%Y-%m-%d %H:%M} UTC")
    click.echo(f"content  {snapshot.content_sha256}  {'OK' if ok else 'DOES NOT MATCH the stored bytes'}")
    now = inputs_sha256(snapshot.parameters["campaigns"], snapshot.parameters.get("breakdowns") or [])
    click.echo(f"inputs   {snapshot.inputs_sha256}  "
               + ("unchanged since publication" if now == snapshot.inputs_sha256
                  else f"changed since publication (now {now})"))
    anchor = document_of(snapshot).get("audit_head") if ok else None
    if anchor is not None:
        same = _trail_holds(anchor["event"], anchor["hash"])
        ok &= same
        click.echo(f"audit    event {anchor['event']} {anchor['hash']}  "
                   + ("the trail still holds it" if same else "NOT IN THE TRAIL: it was rewritten since publication"))
    ids = population(snapshot)
    for sample in db.session.scalars(select(AuditSample).where(AuditSample.snapshot_id == snapshot.id)):
        drawn = [check.snapshot_claim_id for check in sample.checks]
        same = draw(sample.seed, ids, sample.size) == drawn
        ok &= same
        click.echo(f"sample {sample.id} (seed {sample.seed}): {'the seed draws these claims' if same else 'DOES NOT MATCH its seed'}")
    if not ok:
        raise SystemExit(1)


def _trail_holds(event_id: int, digest: str) -> bool:
    """Whether the chain verifies and its event ``event_id`` still has hash ``digest``."""
    if not verify().ok:
        return False
    if event_id == 0:
        return True
    return db.session.scalar(select(AuditEvent.hash).where(AuditEvent.id == event_id)) == digest
