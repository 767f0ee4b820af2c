"""The auditor's view of the trail: read-only, newest first, filtered by subject and action,
with the chain's verification at the top (the last whole-chain check, and the events after
it recomputed now: survey.audit.checks). Claims themselves are read on the committee pages."""
from __future__ import annotations

import json
import re

from flask import Blueprint, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from survey.accounts.models import User
from survey.audiences.models import ERASED, Stakeholder
from survey.audit.checks import current
from survey.audit.models import AuditEvent
from survey.audit.words import shown_reason
from survey.campaigns.recipients import page_links
from survey.claims.models import Claim
from survey.core.authorisation import allowed
from survey.extensions import db
from survey.reports.publishing import anchors_not_held

bp = Blueprint("audit", __name__, template_folder="templates", url_prefix="/audit")

PAGE_SIZE = 100
#: a larger ?page= is read as the last page (and never overflows the database's OFFSET)
MAX_PAGE = 10**9

#: ``verify``'s problems, in words the page can translate (anything else is shown as it is)
PROBLEMS = {
    "its previous hash does not match the event before": _l("its previous hash does not match the event before"),
    "its content does not match its hash": _l("its content does not match its hash"),
    "its reason does not match its hash": _l("its reason does not match its hash"),
    "its reason was deleted, and no erasure says so": _l("its reason was deleted, and no erasure says so"),
    "events after it are missing (the chain's head is further on)":
        _l("events after it are missing (the chain's head is further on)"),
}
MISSING = re.compile(r"event (\d+) is missing")
#: who ran a stored whole-chain check (AuditCheck.run_by), in words the page can translate
RUN_BY = {"beat": _l("scheduled"), "cli": _l("flask audit verify")}


def explain(problem: str) -> str:
    missing = MISSING.fullmatch(problem)
    if missing:
        return _("event %(id)s is missing", id=missing.group(1))
    return str(PROBLEMS.get(problem, problem))


@bp.route("/")
@allowed("read", "audit")
def trail():
    chain = current()  # the last stored check, and the events after it
    verification = chain.verification
    subject = request.args.get("subject", "").strip()[:100]
    action = request.args.get("action", "").strip()[:40]
    conditions = []
    if subject:
        conditions.append(AuditEvent.subject == subject)
    if action:
        conditions.append(AuditEvent.action == action)
    total = db.session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions)) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE, pages)
    events = db.session.scalars(
        select(AuditEvent).where(*conditions).order_by(AuditEvent.id.desc())
        .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    actor_ids = {event.actor_id for event in events if event.actor_id is not None}
    emails = dict(db.session.execute(select(User.id, User.email).where(User.id.in_(actor_ids))).all()) \
        if actor_ids else {}
    actions = db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all()
    # What people wrote about an erased person's claim is not shown (it went with their data).
    claim_ids = {int(e.subject[6:]) for e in events if e.subject.startswith("claim:") and e.subject[6:].isdigit()}
    erased = {f"claim:{claim_id}" for claim_id in db.session.scalars(
        select(Claim.id).join(Stakeholder, Stakeholder.id == Claim.stakeholder_id)
        .where(Claim.id.in_(claim_ids), Stakeholder.suppression_reason == ERASED))} if claim_ids else set()
    hidden = {e.id for e in events if shown_reason(e, e.subject in erased) is None}
    anchored, not_held = anchors_not_held()
    return render_template(
        "audit/trail.html", events=events, emails=emails, hidden=hidden, anchored=anchored, not_held=not_held,
        actions=actions, subject=subject, action=action,
        details={event.id: json.dumps(event.data, ensure_ascii=False, sort_keys=True) for event in events},
        total=total, page=page, pages=pages, links=page_links(page, pages),
        verification=verification, check=chain.check, since=chain.since,
        check_by=RUN_BY.get(chain.check.run_by, chain.check.run_by) if chain.check else "",
        problem=explain(verification.problem) if not verification.ok else "",
    )
