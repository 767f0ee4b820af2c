"""The impact report's pages.

Staff (admin, chair, auditor) read the live report of a campaign or a period, as a
page or a PDF. The chair publishes it; a published snapshot has a public read-only
page (``/p/<slug>``, its JSON and its PDF), rendered from its frozen bytes. The
auditor and the chair follow each figure of a snapshot to the pseudonymised claims
behind it; the auditor draws samples and records their checks.
"""
from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from survey.accounts.freshness import fresh_login_required
from survey.audit.chain import record
from survey.campaigns.models import Campaign
from survey.claims.models import OUTCOME_TYPES
from survey.core.authorisation import allowed, can
from survey.core.errors import ServiceError
from survey.core.fetch import from_this_site
from survey.core.routing import MAX_ID
from survey.extensions import db
from survey.reports import publishing, sampling
from survey.reports.document import build
from survey.reports.export import document_csv
from survey.reports.forms import CheckForm, PublishForm, ReportForm, SampleForm
from survey.reports.models import AuditSample, ReportSnapshot, SampleCheck, SnapshotClaim
from survey.reports.pdf import render_pdf
from survey.web import show_refusal

bp = Blueprint("reports", __name__, template_folder="templates", static_folder="static",
               static_url_path="/reports/static")

#: the figures a trace can be asked for: a claim state, "claimed" (all), "pending"
TRACE_STATES = ("claimed", "pending", "proven", "rejected", "inconclusive", "withdrawn", "revoked")
PENDING = ("submitted", "in_review", "needs_evidence")
TRACE_PAGE = 100


def _campaigns() -> list[Campaign]:
    return list(db.session.scalars(select(Campaign).where(Campaign.status != "draft").order_by(Campaign.send_at.desc())))


@bp.route("/reports/")
@allowed("read", "report")
def index():
    """The live report of the chosen campaign or period (a GET form: bookmarkable)."""
    form = ReportForm(request.args, campaigns=_campaigns())
    document = None
    if request.args and form.validate():
        ids = form.selection().campaign_ids()
        if ids:
            document = build(ids, form.selection().breakdowns, with_comments=True)
        else:
            form.campaign.errors.append(_("No campaign was sent in this period."))
    return render_template("reports/index.html", form=form, document=document, query=request.args)


def _chosen_document() -> dict:
    """The report of the campaigns the query string names (for the downloads)."""
    form = ReportForm(request.args, campaigns=_campaigns())
    if not form.validate() or not (ids := form.selection().campaign_ids()):
        abort(400, _("Choose a campaign or a period first."))
    document = build(ids, form.selection().breakdowns)
    record("export", "report:impact", actor=current_user, data={"campaigns": ids, "format": request.path[-3:]})
    db.session.commit()
    return document


@bp.route("/reports/report.pdf")
@allowed("export", "report")
@from_this_site
def pdf():
    html = render_template("reports/print.html", document=_chosen_document(), title=_("Impact report"), meta=None)
    return _pdf_response(html, "impact-report.pdf")


@bp.route("/reports/report.csv")
@allowed("export", "report")
@from_this_site
def csv():
    return Response(document_csv(_chosen_document()), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="impact-report.csv"'})


@bp.route("/reports/publish", methods=["GET", "POST"])
@allowed("publish", "report")
@fresh_login_required()
def publish():
    """Publish the report of a campaign or a period; ``?replaces=<id>`` publishes a correction."""
    replaces = None
    if request.values.get("replaces"):
        wanted = request.values.get("replaces", type=int) or 0
        replaces = db.session.get(ReportSnapshot, wanted) if 0 < wanted <= MAX_ID else None
        if replaces is None:
            abort(404)
    # From the report page's "Publish this report" (?campaign=1, or a period, and "by"): the
    # same choice, filled in.
    chosen = request.args if request.method == "GET" and replaces is None and request.args else None
    form = PublishForm(chosen, campaigns=_campaigns()) if chosen else PublishForm(campaigns=_campaigns())
    if replaces is not None and request.method == "GET":
        previous = replaces.parameters
        form.title.data = replaces.title
        form.campaign.data = previous.get("campaign")
        if previous.get("period"):
            form.start.data, form.end.data = (date.fromisoformat(previous["period"]["from"]),
                                          date.fromisoformat(previous["period"]["to"]))
        form.by.data = ", ".join(previous.get("breakdowns") or [])
    if form.validate_on_submit():
        try:
            snapshot = publishing.publish_consistently(current_user, form.selection(), form.title.data,
                                                       replaces=replaces, reason=form.reason.data or "")
        except ServiceError as exc:
            db.session.rollback()
            show_refusal(form, exc)
        else:
            flash(_("Published: version %(version)d of “%(title)s”.", version=snapshot.version, title=snapshot.title),
                  "success")
            return redirect(url_for("reports.snapshot", snapshot_id=snapshot.id))
    return render_template("reports/publish.html", form=form, replaces=replaces)


@bp.route("/reports/published")
@allowed("read", "report")
def published():
    snapshots = list(db.session.scalars(select(ReportSnapshot).order_by(ReportSnapshot.published_at.desc(),
                                                                       ReportSnapshot.id.desc())))
    replaced = {s.replaces_id for s in snapshots if s.replaces_id}
    return render_template("reports/published.html", snapshots=snapshots, replaced=replaced)


@bp.route("/reports/published/<int:snapshot_id>")
@allowed("read", "report")
def snapshot(snapshot_id: int):
    """A published report for staff: the public page, with its trace links and samples."""
    snap = db.get_or_404(ReportSnapshot, snapshot_id)
    may_trace = can(current_user, "trace", snap)
    trace = ((lambda outcome, state: url_for("reports.trace", snapshot_id=snap.id, outcome=outcome, state=state))
             if may_trace else None)
    samples = list(db.session.scalars(select(AuditSample).where(AuditSample.snapshot_id == snap.id)
                                      .order_by(AuditSample.id)))
    return render_template("reports/snapshot.html", snapshot=snap, published=publishing.document_of(snap),
                           successor=publishing.successor_of(snap), trace=trace, samples=_with_rates(samples),
                           sample_form=SampleForm() if can(current_user, "draw", "sample") else None)


def _with_rates(samples: list[AuditSample]) -> list[tuple[AuditSample, object, int]]:
    return [(sample, *sampling.confirmation(sample)) for sample in samples]


@bp.route("/reports/published/<int:snapshot_id>/trace")
@allowed("trace", "report")
def trace(snapshot_id: int):
    """The pseudonymised claims behind one figure of a snapshot, as they stood when published."""
    snap = db.get_or_404(ReportSnapshot, snapshot_id)
    outcome = request.args.get("outcome") or None
    state = request.args.get("state", "proven")
    if state not in TRACE_STATES or (outcome and outcome not in OUTCOME_TYPES):
        abort(404)
    query = select(SnapshotClaim).where(SnapshotClaim.snapshot_id == snap.id)
    if outcome:
        query = query.where(SnapshotClaim.outcome_type == outcome)
    if state == "pending":
        query = query.where(SnapshotClaim.state.in_(PENDING))
    elif state != "claimed":
        query = query.where(SnapshotClaim.state == state)
    behind = query.subquery()
    total, people = db.session.execute(select(func.count(), func.count(func.distinct(behind.c.person)))).one()
    pages = max(1, -(-total // TRACE_PAGE))
    page = min(max(1, request.args.get("page", 1, type=int)), pages)
    rows = db.session.scalars(query.order_by(SnapshotClaim.id).limit(TRACE_PAGE).offset((page - 1) * TRACE_PAGE))
    return render_template("reports/trace.html", snapshot=snap, rows=list(rows), outcome=outcome, state=state,
                           total=total, people=people, page=page, pages=pages)


@bp.route("/reports/published/<int:snapshot_id>/samples", methods=["POST"])
@allowed("draw", "sample")
def draw(snapshot_id: int):
    snap = db.get_or_404(ReportSnapshot, snapshot_id)
    form = SampleForm()
    if form.validate_on_submit():
        try:
            sample = sampling.draw_sample(current_user, snap, form.size.data)
        except ServiceError as exc:
            db.session.rollback()
            flash(exc.message, "error")
        else:
            db.session.commit()
            return redirect(url_for("reports.sample", sample_id=sample.id))
    for errors in form.errors.values():
        for error in errors:
            flash(error, "error")
    return redirect(url_for("reports.snapshot", snapshot_id=snap.id))


@bp.route("/reports/samples/<int:sample_id>")
@allowed("read", "sample")
def sample(sample_id: int):
    item = db.get_or_404(AuditSample, sample_id)
    rate, unchecked = sampling.confirmation(item)
    forms = {check.position: CheckForm(prefix=f"check{check.position}", verdict=check.verdict, note=check.note)
             for check in item.checks} if can(current_user, "check", item) else {}
    return render_template("reports/sample.html", sample=item, rate=rate, unchecked=unchecked, forms=forms)


@bp.route("/reports/samples/<int:sample_id>/checks/<int:position>", methods=["POST"])
@allowed("check", "sample")
def check(sample_id: int, position: int):
    item = db.get_or_404(AuditSample, sample_id)
    check_row = db.session.scalar(select(SampleCheck).where(SampleCheck.sample_id == item.id,
                                                            SampleCheck.position == position))
    if check_row is None:
        abort(404)
    form = CheckForm(prefix=f"check{position}")
    if form.validate_on_submit():
        try:
            sampling.check(current_user, check_row, form.verdict.data, form.note.data or "")
        except ServiceError as exc:
            db.session.rollback()
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash(_("Claim %(position)d: finding saved.", position=position), "success")
            return redirect(url_for("reports.sample", sample_id=item.id, _anchor=f"check-{position}"))
    rate, unchecked = sampling.confirmation(item)
    forms = {c.position: (form if c.position == position else
                          CheckForm(prefix=f"check{c.position}", verdict=c.verdict, note=c.note, formdata=None))
             for c in item.checks}
    return render_template("reports/sample.html", sample=item, rate=rate, unchecked=unchecked, forms=forms), 422


# --- the public pages of a published report -------------------------------------------------------------

def _public(slug: str) -> ReportSnapshot:
    snap = db.session.scalar(select(ReportSnapshot).where(ReportSnapshot.slug == slug)) if len(slug) <= 32 else None
    if snap is None:
        abort(404)
    return snap


@bp.route("/p/<slug>")
def public(slug: str):
    snap = _public(slug)
    samples = list(db.session.scalars(select(AuditSample).where(AuditSample.snapshot_id == snap.id)
                                      .order_by(AuditSample.id)))
    return render_template("reports/public.html", snapshot=snap, published=publishing.document_of(snap),
                           successor=publishing.successor_of(snap), samples=_with_rates(samples))


@bp.route("/p/<slug>.json")
def public_json(slug: str):
    """The published bytes, exactly: their SHA-256 is the one the page shows."""
    snap = _public(slug)
    return Response(snap.content, mimetype="application/json",
                    headers={"Content-Disposition": f'inline; filename="report-{snap.slug}-v{snap.version}.json"',
                             "Cache-Control": "public, max-age=86400, immutable"})


@bp.route("/p/<slug>.pdf")
def public_pdf(slug: str):
    snap = _public(slug)
    published = publishing.document_of(snap)
    html = render_template("reports/print.html", document=published["report"], title=snap.title,
                           meta=published | {"content_sha256": snap.content_sha256, "slug": snap.slug,
                                             "published_on": snap.published_at})
    return _pdf_response(html, f"report-{snap.slug}-v{snap.version}.pdf")


def _pdf_response(html: str, filename: str) -> Response:
    return Response(render_pdf(html), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
