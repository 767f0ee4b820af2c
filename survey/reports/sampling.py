"""The auditor's check of a published report: a random, reproducible sample of its
proven claims, each re-checked, and the confirmation rate with its interval.

The draw is ``random.Random(seed).sample(population, size)`` where the population
is the snapshot's proven trace rows in id order. The seed is kept with the sample,
so anyone holding the snapshot can draw the same claims again (``draw``).
"""
from __future__ import annotations

import random
import secrets

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from survey.accounts.models import User
from survey.audit.chain import record
from survey.core.errors import InvalidState, PermissionDenied, ValidationFailed
from survey.core.types import utcnow
from survey.extensions import db
from survey.reports.models import CHECK_VERDICTS, AuditSample, ReportSnapshot, SampleCheck, SnapshotClaim
from survey.reports.stats import Rate

#: the sample sizes offered (20 gives an interval of about ±20 points at worst; 100 about ±10)
MAX_SAMPLE = 500


def population(snapshot: ReportSnapshot) -> list[int]:
    """The trace rows a sample is drawn from: the proven claims, in id order."""
    return list(db.session.scalars(select(SnapshotClaim.id).where(
        SnapshotClaim.snapshot_id == snapshot.id, SnapshotClaim.state == "proven").order_by(SnapshotClaim.id)))


def draw(seed: str, ids: list[int], size: int) -> list[int]:
    """The sample that ``seed`` gives: the same seed and population, the same claims."""
    return random.Random(seed).sample(ids, min(size, len(ids)))


def draw_sample(user: User, snapshot: ReportSnapshot, size: int) -> AuditSample:
    """Draw ``size`` proven claims of ``snapshot`` at random, for the auditor to re-check."""
    if user.role != "auditor":
        raise PermissionDenied(_l("Only the auditor draws samples."))
    if not 1 <= size <= MAX_SAMPLE:
        raise ValidationFailed(_l("A sample has from 1 to %(max)d claims.", max=MAX_SAMPLE), field="size")
    ids = population(snapshot)
    if not ids:
        raise InvalidState(_l("This report has no proven claim to sample."))
    seed = secrets.token_hex(16)
    sample = AuditSample(snapshot_id=snapshot.id, seed=seed, size=min(size, len(ids)), drawn_by_id=user.id,
                         drawn_at=utcnow())
    db.session.add(sample)
    db.session.flush()
    db.session.add_all(SampleCheck(sample_id=sample.id, position=position, snapshot_claim_id=row_id, note="")
                       for position, row_id in enumerate(draw(seed, ids, size), start=1))
    record("sample_drawn", f"report:{snapshot.slug}", actor=user,
           data={"sample": sample.id, "seed": seed, "size": sample.size, "population": len(ids)})
    return sample


def check(user: User, item: SampleCheck, verdict: str, note: str) -> None:
    """Record the auditor's re-check of one drawn claim; a claim not confirmed says why."""
    if user.role != "auditor":
        raise PermissionDenied(_l("Only the auditor checks samples."))
    if verdict not in CHECK_VERDICTS:
        raise ValidationFailed(_l("Say whether the evidence confirms the claim."), field="verdict")
    note = note.strip()
    if verdict == "not_confirmed" and not note:
        raise ValidationFailed(_l("Say why the claim is not confirmed."), field="note")
    before = item.verdict
    item.verdict, item.note, item.checked_at, item.checked_by_id = verdict, note, utcnow(), user.id
    record("sample_checked", f"report:{item.sample.snapshot.slug}", actor=user, from_state=before,
           to_state=verdict, reason=note, data={"sample": item.sample_id, "position": item.position})


def confirmation(sample: AuditSample) -> tuple[Rate, int]:
    """Confirmed over checked, with its interval; and how many are still to check."""
    checked = [c for c in sample.checks if c.verdict]
    confirmed = sum(1 for c in checked if c.verdict == "confirmed")
    return Rate(confirmed, len(checked)), len(sample.checks) - len(checked)
