"""The committee's pages: a member's queue, the list of claims for the chair and the
auditor, the claim page with its forms, and the evidence downloads.

Every claim is read through ``may_see_claim``: a claim the user may not see is a
404, exactly like one that does not exist. Every POST is CSRF-checked (globally),
then the role, then the object, then one service call, a commit and a redirect.
A refused service call changes nothing (rolled back) and shows its message.
"""
from __future__ import annotations

import re

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, send_file, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from survey.accounts.freshness import fresh_login_required
from survey.accounts.models import User
from survey.campaigns.models import Campaign
from survey.campaigns.recipients import page_links
from survey.claims import services
from survey.claims.models import CLAIM_STATES, OUTCOME_TYPES, Claim, Evidence, Review
from survey.committee.claim_page import SOURCES, answer_rows, claim_history, detail_rows, file_size, visible_reviews
from survey.committee.forms import BulkDecideForm, ConflictForm, DecideForm, ReassignForm, RevokeForm, VoteForm
from survey.committee.lists import (
    AWAITING_CHAIR,
    PROGRAMME,
    QUEUE_TABS,
    TAB_STATES,
    Filters,
    claims_page,
    filter_options,
    queue_page,
)
from survey.core.authorisation import allowed, can, require
from survey.core.errors import ServiceError
from survey.core.fetch import from_this_site
from survey.extensions import db
from survey.respond.uploads import evidence_dir
from survey.web import CSP, LABELS, show_refusal
from workflows.claims import OPEN

bp = Blueprint("committee", __name__, template_folder="templates", static_folder="static",
               url_prefix="/committee")

#: the only evidence types shown in the page; anything else is always a download
INLINE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg"})
#: an evidence file is data, never a page: no scripts, no styles, sandboxed
EVIDENCE_CSP = "default-src 'none'; img-src 'self'; object-src 'self'; sandbox; frame-ancestors 'self'"
#: a PDF shown in the claim page: Chromium's PDF viewer refuses to run in a sandboxed
#: document (the <object> stays blank), so no `sandbox` here. The file is a PDF by its
#: first bytes (respond.uploads.sniff_type), served with nosniff: it can only ever be
#: read by the PDF viewer, never as a page of this site.
INLINE_PDF_CSP = "default-src 'none'; object-src 'self'; frame-ancestors 'self'"
#: the claim page embeds its PDF evidence in an <object> from this site
CLAIM_PAGE_CSP = CSP.replace("object-src 'none'", "object-src 'self'")
#: evidence files are stored under random hex names (respond.uploads.store_upload)
STORED_NAME = re.compile(r"[0-9a-f]{16,64}")
CLAIM_FILTER_STATES = CLAIM_STATES + (AWAITING_CHAIR,)


def _visible_claim(claim_id: int, action: str = "view") -> Claim:
    """The claim, if the user may do ``action`` on it (else 404, as if it did not exist)."""
    claim = require("view", db.session.get(Claim, claim_id))
    return require(action, claim) if action != "view" else claim


def _own_review(claim: Claim) -> Review:
    """The member's active review of this claim (404 when it is not in their queue)."""
    review = db.session.scalar(select(Review).where(
        Review.claim_id == claim.id, Review.reviewer_id == current_user.id, Review.active.is_(True)))
    if review is None:
        abort(404)
    return review


# ---------------------------------------------------------------------- lists

@bp.route("/")
@allowed("queue", "claim")
def queue():
    if current_user.role != "committee":
        return redirect(url_for("committee.claims"))
    tab = request.args.get("tab", "todo")
    tab = tab if tab in QUEUE_TABS else "todo"
    filters = Filters.from_args(request.args, TAB_STATES[tab])
    page = queue_page(current_user, tab, filters)
    return render_template(
        "committee/queue.html", page=page, tab=tab, tabs=QUEUE_TABS, states=TAB_STATES[tab],
        outcome_types=OUTCOME_TYPES, options=filter_options(current_user),
        links=page_links(page.page, page.pages))


def _render_claims(filters: Filters, form: BulkDecideForm | None, status: int = 200):
    page = claims_page(filters)
    return render_template(
        "committee/claims.html", page=page, form=form, states=CLAIM_FILTER_STATES,
        awaiting_chair=AWAITING_CHAIR, outcome_types=OUTCOME_TYPES, options=filter_options(),
        links=page_links(page.page, page.pages), selected=set((form.claim_ids.data or []) if form else []),
    ), status


@bp.route("/claims")
@allowed("list", "claim")
def claims():
    filters = Filters.from_args(request.args, CLAIM_FILTER_STATES)
    return _render_claims(filters, BulkDecideForm(formdata=None) if can(current_user, "decide", "claim") else None)


@bp.route("/claims/bulk", methods=["POST"])
@allowed("decide", "claim")
@fresh_login_required(back=lambda: url_for("committee.claims"))
def bulk_decide():
    filters = Filters.from_args(request.form, CLAIM_FILTER_STATES)
    form = BulkDecideForm()
    if not form.validate_on_submit():
        return _render_claims(filters, form, 400)
    wanted = sorted(set(form.claim_ids.data))
    found = {claim.id: claim for claim in db.session.scalars(select(Claim).where(Claim.id.in_(wanted)))}
    done, refused = services.bulk_decide([found[claim_id] for claim_id in wanted if claim_id in found],
                                         form.decision.data, form.reason.data, chair=current_user)
    refused += [_("#%(id)d: no such claim.", id=claim_id) for claim_id in wanted if claim_id not in found]
    db.session.commit()
    if done:
        flash(ngettext("%(num)d claim decided: %(decision)s.", "%(num)d claims decided: %(decision)s.", done,
                       decision=_label(form.decision.data)), "success")
    if refused:
        flash(ngettext("%(num)d claim was not decided: %(reasons)s", "%(num)d claims were not decided: %(reasons)s",
                       len(refused), reasons=" ".join(refused)), "error")
    return redirect(url_for("committee.claims", **filters.args()))


def _label(code: str) -> str:
    return str(LABELS.get(code, code))


# ---------------------------------------------------------------------- the claim page

def _forms(claim: Claim, own: Review | None, chair_excluded) -> dict:
    """The forms this user may use on this claim now (None: not shown). A chair kept
    from this claim (``chair_excluded``: why) is offered none of the chair's."""
    forms = dict.fromkeys(("vote", "conflict", "decide", "revoke", "reassign"))
    if own is not None:
        if claim.state == "in_review" and own.verdict is None and can(current_user, "vote", claim):
            forms["vote"] = VoteForm(prefix="vote", formdata=None)
        if claim.state in OPEN and can(current_user, "declare_conflict", claim):
            forms["conflict"] = ConflictForm(prefix="conflict", formdata=None)
    if chair_excluded is not None:
        return forms
    if claim.state == "in_review" and can(current_user, "decide", claim):
        forms["decide"] = DecideForm(prefix="decide", formdata=None)
    if claim.state == "proven" and can(current_user, "revoke", claim):
        forms["revoke"] = RevokeForm(prefix="revoke", formdata=None)
    if claim.state in OPEN and can(current_user, "reassign", claim):
        forms["reassign"] = _reassign_form(claim, shown=True)
    return forms


def _reassign_form(claim: Claim, *, shown: bool = False) -> ReassignForm:
    """The form as ``shown`` offers to replace the reviewers who have not voted (a vote
    cast is never taken away); as posted, it takes any active one, so that the service
    refuses one who voted meanwhile by name."""
    reviews = [review for review in claim.reviews if review.active and not (shown and review.verdict)]
    return ReassignForm(prefix="reassign", reviews=reviews, candidates=services.eligible_reviewers(claim),
                        **({"formdata": None} if shown else {}))


def _render_claim(claim: Claim, posted: tuple[str, object] | None = None, status: int = 200):
    claim = db.session.scalar(
        select(Claim).where(Claim.id == claim.id).options(
            joinedload(Claim.claimant), joinedload(Claim.response),
            joinedload(Claim.campaign).joinedload(Campaign.questionnaire),
            selectinload(Claim.evidence), selectinload(Claim.reviews).joinedload(Review.reviewer))
        .execution_options(populate_existing=True))
    own = next((review for review in claim.reviews
                if review.reviewer_id == current_user.id and review.active), None)
    chair_excluded = services.chair_excluded(current_user, claim) if can(current_user, "decide", claim) else None
    forms = _forms(claim, own, chair_excluded)
    if posted is not None:
        forms[posted[0]] = posted[1]
    locale = str(get_locale())
    definition = claim.campaign.questionnaire.definition
    decided_by = db.session.get(User, claim.decided_by_id) if claim.decided_by_id else None
    html = render_template(
        "committee/claim.html", claim=claim, own=own, forms=forms, posted=posted[1] if posted else None,
        answers=answer_rows(definition, claim.response.answers or {}, locale),
        details=detail_rows(definition, claim.details, locale),
        programme=(claim.claimant.attributes or {}).get(PROGRAMME),
        reviews=visible_reviews(current_user, claim), history=claim_history(claim, current_user),
        awaiting_chair=services.awaiting_chair(claim), decided_by=decided_by, inline_types=INLINE_TYPES,
        chair_excluded=chair_excluded,
        sources=SOURCES, file_size=file_size,
        attribution_max=next((q.get("max") for q in definition.get("questions", []) if q["id"] == "attribution"),
                             None),
    )
    response = make_response(html, status)
    response.headers["Content-Security-Policy"] = CLAIM_PAGE_CSP
    return response


@bp.route("/claims/<int:claim_id>")
@allowed("view", "claim")
def claim(claim_id: int):
    return _render_claim(_visible_claim(claim_id))


def _back(claim: Claim):
    return redirect(url_for("committee.claim", claim_id=claim.id))


@bp.route("/claims/<int:claim_id>/vote", methods=["POST"])
@allowed("vote", "claim")
@fresh_login_required(back=lambda claim_id: url_for("committee.claim", claim_id=claim_id))
def vote(claim_id: int):
    claim = _visible_claim(claim_id, "vote")
    review = _own_review(claim)
    form = VoteForm(prefix="vote")
    if form.validate_on_submit():
        try:
            services.record_vote(review, form.verdict.data, form.comment.data or "", reviewer=current_user)
        except ServiceError as exc:
            show_refusal(form, exc)
        else:
            db.session.commit()
            if claim.state == "in_review":
                flash(_("Your vote is recorded."), "success")
            else:
                flash(_("Your vote is recorded. The claim is now: %(state)s.", state=_label(claim.state)), "success")
            return _back(claim)
    return _render_claim(claim, ("vote", form), 400)


@bp.route("/claims/<int:claim_id>/conflict", methods=["POST"])
@allowed("declare_conflict", "claim")
def declare_conflict(claim_id: int):
    claim = _visible_claim(claim_id, "declare_conflict")
    review = _own_review(claim)
    form = ConflictForm(prefix="conflict")
    if form.validate_on_submit():
        try:
            services.declare_conflict(review, form.reason.data or "", reviewer=current_user)
        except ServiceError as exc:
            show_refusal(form, exc)
        else:
            db.session.commit()
            flash(_("You have stepped aside from claim #%(id)d: it goes to another member.", id=claim.id),
                  "success")
            return redirect(url_for("committee.queue"))
    return _render_claim(claim, ("conflict", form), 400)


@bp.route("/claims/<int:claim_id>/decide", methods=["POST"])
@allowed("decide", "claim")
@fresh_login_required(back=lambda claim_id: url_for("committee.claim", claim_id=claim_id))
def decide(claim_id: int):
    claim = _visible_claim(claim_id)
    form = DecideForm(prefix="decide")
    if form.validate_on_submit():
        try:
            services.chair_decide(claim, form.decision.data, form.reason.data, chair=current_user)
        except ServiceError as exc:
            show_refusal(form, exc)
        else:
            db.session.commit()
            flash(_("Claim #%(id)d decided: %(state)s.", id=claim.id, state=_label(claim.state)), "success")
            return _back(claim)
    return _render_claim(claim, ("decide", form), 400)


@bp.route("/claims/<int:claim_id>/revoke", methods=["POST"])
@allowed("revoke", "claim")
@fresh_login_required(back=lambda claim_id: url_for("committee.claim", claim_id=claim_id))
def revoke(claim_id: int):
    claim = _visible_claim(claim_id)
    form = RevokeForm(prefix="revoke")
    if form.validate_on_submit():
        try:
            services.revoke(claim, form.reason.data, chair=current_user)
        except ServiceError as exc:
            show_refusal(form, exc)
        else:
            db.session.commit()
            flash(_("Claim #%(id)d revoked.", id=claim.id), "success")
            return _back(claim)
    return _render_claim(claim, ("revoke", form), 400)


@bp.route("/claims/<int:claim_id>/reassign", methods=["POST"])
@allowed("reassign", "claim")
def reassign(claim_id: int):
    claim = _visible_claim(claim_id)
    form = _reassign_form(claim)
    if form.validate_on_submit():
        review = db.session.get(Review, form.review_id.data)
        target = db.session.get(User, form.target_id()) if form.target_id() else None
        try:
            new = services.reassign(claim, review, chair=current_user, to=target)
        except ServiceError as exc:
            show_refusal(form, exc)
        else:
            db.session.commit()
            flash(_("Claim #%(id)d given to %(name)s.", id=claim.id, name=new.reviewer.name or new.reviewer.email),
                  "success")
            return _back(claim)
    return _render_claim(claim, ("reassign", form), 400)


# ---------------------------------------------------------------------- evidence

@bp.route("/evidence/<int:evidence_id>")
@allowed("download", "evidence")
@from_this_site
def evidence(evidence_id: int):
    """An evidence file, as a download (or shown in the page for PDF, PNG and JPEG);
    every download is in the audit trail."""
    item = db.session.get(Evidence, evidence_id)
    if require("download", item).kind != "file":
        abort(404)
    if not STORED_NAME.fullmatch(item.stored_as or ""):
        abort(404)
    path = evidence_dir() / item.stored_as
    if not path.is_file():
        abort(404)
    media_type = item.media_type or "application/octet-stream"
    inline = request.args.get("inline") == "1" and media_type in INLINE_TYPES
    services.record_download(item, user=current_user)
    db.session.commit()
    response = send_file(path, mimetype=media_type, as_attachment=not inline,
                         download_name=item.filename or f"evidence-{item.id}", conditional=False, etag=False)
    response.headers["Content-Type"] = media_type
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Content-Security-Policy"] = (
        INLINE_PDF_CSP if inline and media_type == "application/pdf" else EVIDENCE_CSP)
    # Shown inside the claim page (same site) when inline; never framed otherwise.
    response.headers["X-Frame-Options"] = "SAMEORIGIN" if inline else "DENY"
    return response
