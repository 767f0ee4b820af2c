"""Publishing a report: the chair freezes the figures, with what it takes to check them.

A snapshot stores the published document as canonical JSON bytes (served as they
are, so they can be hashed and compared byte for byte), the hash of the inputs the
figures came from, the code version that computed them, the audit chain's head as it
stood (an anchor outside the database: anyone who kept the report can tell whether the
trail before it was rewritten since), and its trace: one row per claim behind the
figures, pseudonymised, as it stood at publication. Nothing of a
snapshot changes afterwards; a correction is a new snapshot that names the one it
replaces and says why.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import subprocess
from collections.abc import Iterable, Iterator
from importlib import metadata

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.exc import DBAPIError

from config import BASE_DIR
from survey.accounts.models import User
from survey.audiences.models import Stakeholder
from survey.audit.chain import GENESIS, record
from survey.audit.models import AuditEvent, AuditHead
from survey.campaigns.models import Invitation, Response
from survey.claims.models import Claim, Evidence, Review
from survey.core.errors import InvalidState, PermissionDenied, ValidationFailed
from survey.core.types import utcnow
from survey.extensions import db
from survey.reports.document import Selection, build
from survey.reports.models import ReportSnapshot, SnapshotClaim

#: rows written per INSERT when freezing a trace
TRACE_BATCH = 1000


def new_slug() -> str:
    """96 random bits, URL-safe, never starting with "-": ``flask reports verify SLUG``
    would read such a slug as an option (one slug in 64 did)."""
    while (slug := secrets.token_urlsafe(12)).startswith("-"):
        pass
    return slug


def publish(user: User, selection: Selection, title: str, *, replaces: ReportSnapshot | None = None,
            reason: str = "") -> ReportSnapshot:
    """Freeze the report of ``selection`` as a new snapshot (a correction of ``replaces``)."""
    if user.role != "chair":
        raise PermissionDenied(_l("Only the committee chair publishes reports."))
    title, reason = title.strip(), reason.strip()
    if not title:
        raise ValidationFailed(_l("Give the report a title."), field="title")
    if replaces is not None:
        if successor_of(replaces) is not None:
            raise InvalidState(_l("This version has already been corrected: correct the latest version."))
        if not reason:
            raise ValidationFailed(_l("Say what the correction changes and why."), field="reason")
    campaign_ids = selection.campaign_ids()
    if not campaign_ids:
        raise ValidationFailed(_l("No campaign was sent in this period: there is nothing to publish."))

    slug = new_slug()
    document = build(campaign_ids, selection.breakdowns)
    inputs = inputs_sha256(campaign_ids, selection.breakdowns)
    head = audit_head()
    snapshot = ReportSnapshot(
        slug=slug, title=title, version=replaces.version + 1 if replaces else 1, replaces=replaces,
        correction_reason=reason or None, parameters={**selection.as_dict(), "campaigns": campaign_ids},
        inputs_sha256=inputs, code_version=code_version(), published_at=utcnow(), published_by_id=user.id,
        audit_head_id=head["event"], audit_head_hash=head["hash"],
    )
    snapshot.content = canonical_json({
        "title": title, "version": snapshot.version, "replaces": replaces.slug if replaces else None,
        "correction_reason": snapshot.correction_reason,
        "published_at": snapshot.published_at.isoformat(timespec="seconds"),
        "parameters": snapshot.parameters, "code_version": snapshot.code_version, "inputs_sha256": inputs,
        "audit_head": head, "report": document,
    })
    snapshot.content_sha256 = hashlib.sha256(snapshot.content).hexdigest()
    db.session.add(snapshot)
    db.session.flush()
    _freeze_trace(snapshot, campaign_ids)
    record("publish", f"report:{slug}", actor=user, reason=snapshot.correction_reason or "",
           data={"version": snapshot.version, "replaces": replaces.slug if replaces else None,
                 "campaigns": campaign_ids, "content_sha256": snapshot.content_sha256, "inputs_sha256": inputs})
    return snapshot


def audit_head() -> dict:
    """The audit chain's last event and its hash, as this transaction sees them (before the
    publication's own event): ``{"event": 0, "hash": GENESIS}`` for an empty trail."""
    head = db.session.execute(select(AuditHead.last_id, AuditHead.last_hash).where(AuditHead.id == 1)).one_or_none()
    return {"event": head.last_id, "hash": head.last_hash} if head is not None else {"event": 0, "hash": GENESIS}


def anchors_not_held() -> tuple[int, list[ReportSnapshot]]:
    """How many published reports recorded the audit chain's head, and those whose recorded
    event is no longer in the trail with that hash (the trail was rewritten since)."""
    anchored = db.session.execute(
        select(ReportSnapshot, AuditEvent.hash)
        .outerjoin(AuditEvent, AuditEvent.id == ReportSnapshot.audit_head_id)
        .where(ReportSnapshot.audit_head_id.is_not(None)).order_by(ReportSnapshot.id)).all()
    return len(anchored), [snapshot for snapshot, now in anchored
                           if snapshot.audit_head_id > 0 and now != snapshot.audit_head_hash]


def read_consistently() -> None:
    """Start a transaction that sees one state of the database throughout, so that
    the figures and the trace of a snapshot agree even while the committee votes.
    Ends the current transaction; call it before publishing."""
    db.session.commit()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


#: times a publication is made again after PostgreSQL refused its commit (see below)
PUBLISH_ATTEMPTS = 3


def publish_consistently(user: User, selection: Selection, title: str, **options) -> ReportSnapshot:
    """``publish`` in a transaction that reads one state of the database (``read_consistently``),
    committed. Anything audited meanwhile (a vote, a new claim, an evidence download) moves
    the audit chain's head, which the publication moves too: PostgreSQL then refuses its
    commit (a serialization failure, once a 500 for the chair). The publication is then
    made again, from the database as it now stands, up to PUBLISH_ATTEMPTS times."""
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        read_consistently()
        try:
            snapshot = publish(user, selection, title, **options)
            db.session.commit()
            return snapshot
        except DBAPIError as exc:
            db.session.rollback()
            if getattr(exc.orig, "sqlstate", None) not in ("40001", "40P01") or attempt == PUBLISH_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def successor_of(snapshot: ReportSnapshot) -> ReportSnapshot | None:
    """The correction that replaced this snapshot, if any."""
    return db.session.scalar(select(ReportSnapshot).where(ReportSnapshot.replaces_id == snapshot.id))


def document_of(snapshot: ReportSnapshot) -> dict:
    """The published document, read back from the frozen bytes."""
    return json.loads(snapshot.content)


def canonical_json(data) -> bytes:
    """One byte sequence per value: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def pseudonym(slug: str, stakeholder_id: int) -> str:
    """The same person gets the same pseudonym within a snapshot and unrelated ones
    across snapshots; without the secret key it leads back to nobody."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"snapshot:{slug}:person:{stakeholder_id}".encode(), hashlib.sha256).hexdigest()[:12]


#: the reviews whose votes count, as the policy counts them (survey.claims.services.apply_policy):
#: the active ones, and those whose reviewer declared a conflict after the claim was decided
#: (they were active then). Never the votes of a review taken away before the decision: they
#: did not decide it, and shown, they would contradict it.
_COUNTED = or_(Review.active.is_(True),
               and_(Claim.decided_at.is_not(None), Review.conflict_declared_at > Claim.decided_at))


def _freeze_trace(snapshot: ReportSnapshot, campaign_ids: list[int]) -> None:
    """One row per claim of the campaigns, with the votes that count and its evidence, as they stand."""
    in_campaigns = Claim.campaign_id.in_(campaign_ids)
    votes: dict[int, dict[str, int]] = {}
    for claim_id, verdict, count in db.session.execute(
        select(Review.claim_id, Review.verdict, func.count()).join(Claim, Claim.id == Review.claim_id)
        .where(in_campaigns, Review.verdict.is_not(None), _COUNTED).group_by(Review.claim_id, Review.verdict)
    ):
        votes.setdefault(claim_id, {})[verdict] = count
    evidence: dict[int, dict[str, int]] = {}
    for claim_id, kind, count in db.session.execute(
        select(Evidence.claim_id, Evidence.kind, func.count()).join(Claim, Claim.id == Evidence.claim_id)
        .where(in_campaigns).group_by(Evidence.claim_id, Evidence.kind)
    ):
        evidence.setdefault(claim_id, {})[kind] = count
    claims = db.session.execute(
        select(Claim.id, Claim.stakeholder_id, Claim.outcome_type, Claim.state, Claim.decided_at,
               Claim.decided_by_id).where(in_campaigns).order_by(Claim.id)
    ).yield_per(TRACE_BATCH)
    rows = ({
        "snapshot_id": snapshot.id, "claim_id": claim_id, "person": pseudonym(snapshot.slug, stakeholder_id),
        "outcome_type": outcome, "state": state, "decided_at": decided_at,
        "decided_by": None if decided_at is None else ("chair" if decided_by_id else "policy"),
        "votes": votes.get(claim_id, {}), "evidence": evidence.get(claim_id, {}),
    } for claim_id, stakeholder_id, outcome, state, decided_at, decided_by_id in claims)
    for batch in _batches(rows, TRACE_BATCH):
        db.session.execute(insert(SnapshotClaim), batch)


def _batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def inputs_sha256(campaign_ids: list[int], breakdowns: Iterable[str]) -> str:
    """SHA-256 over every row the figures are computed from, in id order: the
    invitations (who was asked, who answered, their breakdown attributes), the
    submitted answers and the claims with their states. Run again later, it tells
    whether the inputs of a published report have changed since."""
    digest = hashlib.sha256()
    attributes = sorted(breakdowns)

    def feed(section: str, rows) -> None:
        digest.update(section.encode())
        for row in rows:
            digest.update(canonical_json(list(row)) + b"\n")

    feed("invitations", ((i, c, s, done is not None, [attrs.get(a) for a in attributes])
                         for i, c, s, done, attrs in db.session.execute(
        select(Invitation.id, Invitation.campaign_id, Invitation.stakeholder_id, Invitation.completed_at,
               Stakeholder.attributes).join(Stakeholder, Stakeholder.id == Invitation.stakeholder_id)
        .where(Invitation.campaign_id.in_(campaign_ids)).order_by(Invitation.id)).yield_per(TRACE_BATCH)))
    feed("responses", ((str(i), c, answers, segment) for i, c, answers, segment in db.session.execute(
        select(Response.id, Response.campaign_id, Response.answers, Response.segment)
        .where(Response.campaign_id.in_(campaign_ids), Response.submitted_at.is_not(None))
        .order_by(Response.id)).yield_per(TRACE_BATCH)))
    feed("claims", db.session.execute(
        select(Claim.id, Claim.campaign_id, Claim.stakeholder_id, Claim.outcome_type, Claim.state)
        .where(Claim.campaign_id.in_(campaign_ids)).order_by(Claim.id)).yield_per(TRACE_BATCH))
    return digest.hexdigest()


@functools.cache
def code_version() -> str:
    """The code that computes the figures: ATTEST_CODE_VERSION when the deployment
    sets it, else the git commit of a checkout, else the package version."""
    if os.environ.get("ATTEST_CODE_VERSION"):
        return os.environ["ATTEST_CODE_VERSION"][:80]
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=BASE_DIR,
                                   capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        if described:
            return f"git:{described}"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"attest {metadata.version('attest')}" if _installed() else "attest (unknown version)"


def _installed() -> bool:
    try:
        metadata.version("attest")
    except metadata.PackageNotFoundError:
        return False
    return True
