"""``flask --app wsgi audit verify|export``: check the chain, or hand it to an auditor.

The export is one JSON object per line, in chain order, with everything an auditor
needs to recompute every hash without this code::

    fields = [id, at, actor_id, actor, action, subject, from, to, reason, data]
    if reason_hash is not None:
        fields.append(reason_hash)
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    hash = sha256(f"{prev_hash}\\n{body}".encode()).hexdigest()

(``at`` exactly as exported; the first event's ``prev_hash`` is 64 zeros; each
event's ``prev_hash`` is the ``hash`` of the one before). What a person wrote about a
claim is kept apart from its event: ``reason`` is then empty, ``reason_hash`` is
``sha256(f"{salt}\\n{text}")`` and ``reason_kept`` holds ``{"salt", "text"}``, or null
once the person was erased (the text went; the chain still verifies, and the ``erasure``
event's ``data.reasons_erased`` lists the events whose reason it deleted: a reason gone
that no erasure lists was deleted behind the chain's back). The export is itself
recorded in the trail (action ``export``) with the number of events, the last
hash and the SHA-256 of the exported bytes.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import select

from survey.audit.chain import record
from survey.audit.checks import run_check, start_check
from survey.audit.models import AuditEvent, AuditHead
from survey.extensions import db

audit_cli = AppGroup("audit", help="The audit trail: verify the chain, export it.")

BATCH = 5000


def export_line(event: AuditEvent) -> str:
    """One event as a JSON line; ``at`` as the hash covers it."""
    return json.dumps({
        "id": event.id, "at": event.at.isoformat(timespec="microseconds"), "actor_id": event.actor_id,
        "actor": event.actor, "action": event.action, "subject": event.subject, "from": event.from_state,
        "to": event.to_state, "reason": event.reason, "data": event.data, "prev_hash": event.prev_hash,
        "hash": event.hash, "reason_hash": event.reason_hash,
        "reason_kept": {"salt": event.kept.salt, "text": event.kept.text} if event.kept is not None else None,
    }, ensure_ascii=False, sort_keys=True, default=str)


def export_trail(out) -> dict:
    """Write every event committed so far to the text stream ``out``; returns what was written."""
    head = db.session.get(AuditHead, 1)
    # The head as committed when we start: events appended meanwhile belong to the next export.
    last_id = head.last_id if head is not None else 0
    digest, count, last_hash, after = hashlib.sha256(), 0, None, 0
    while after < last_id:
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.id > after, AuditEvent.id <= last_id)
            .order_by(AuditEvent.id).limit(BATCH)
        ).all()
        if not events:
            break
        for event in events:
            line = export_line(event) + "\n"
            out.write(line)
            digest.update(line.encode())
            count, last_hash = count + 1, event.hash
        after = events[-1].id
        db.session.expire_all()
    return {"events": count, "last_id": after, "last_hash": last_hash, "sha256": digest.hexdigest()}


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in a bare container: the export is recorded all the same
        return ""


@audit_cli.command("verify")
def verify_command() -> None:
    """Recompute every hash from the first event; exit 1 at the first broken link. The
    result is kept: the trail's page builds on it, as on beat's daily check."""
    check = start_check("cli")
    db.session.commit()
    result = run_check(check.id)
    if result.ok:
        click.echo(f"audit chain OK: {result.checked} events")
        return
    click.echo(f"audit chain BROKEN at event {result.broken_id}: {result.problem}")
    sys.exit(1)


@audit_cli.command("export")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file (default: standard output).")
def export_command(out_path: Path | None) -> None:
    """Every event as JSON lines (id, at, actor_id, actor, action, subject, from, to,
    reason, data, reason_hash, reason_kept, prev_hash, hash), to re-verify the chain
    independently."""
    if out_path is None:
        summary = export_trail(sys.stdout)
    else:
        with out_path.open("w", encoding="utf-8", newline="\n") as out:
            summary = export_trail(out)
    record("export", "audit:trail", actor="cli", data={
        **summary, "to": str(out_path) if out_path else "stdout", "os_user": _os_user()})
    db.session.commit()
    click.echo(f"exported {summary['events']} audit events"
               + (f" to {out_path}" if out_path else "") + f" (sha256 {summary['sha256']})", err=True)
