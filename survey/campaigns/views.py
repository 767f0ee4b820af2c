"""Admin pages for campaigns: list, create step by step, change a draft, schedule, follow progress."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from survey.audiences.models import Stakeholder
from survey.campaigns import services
from survey.campaigns.forms import AudienceForm, BasicsForm, TimingForm
from survey.campaigns.models import INVITATION_STATUSES, Campaign
from survey.campaigns.progress import funnel_by_day, funnel_chart, sending_progress, tally
from survey.campaigns.recipients import (
    campaign_quiet_hours,
    page_links,
    recipients_page,
)
from survey.campaigns.services import TRANSITIONS
from survey.core.authorisation import allowed
from survey.core.errors import ServiceError
from survey.core.pagination import MAX_PAGE, paginate
from survey.core.types import utcnow
from survey.extensions import db
from survey.questionnaires.models import Questionnaire
from survey.web import show_refusal

bp = Blueprint("campaigns", __name__, template_folder="templates", url_prefix="/admin/campaigns")

PAGE_SIZE = 50


@bp.route("/")
@allowed("read", "campaign")
def index():
    status = request.args.get("status", "")
    status = status if status in TRANSITIONS else ""
    statement = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())
    if status:
        statement = statement.where(Campaign.status == status)
    campaigns = paginate(statement, PAGE_SIZE)
    counts = services.campaign_counts_many(c.id for c in campaigns.items)
    return render_template("campaigns/index.html", campaigns=campaigns, counts=counts, status=status,
                           statuses=list(TRANSITIONS))


# ------------------------------------------------------------------ the wizard
# Step 1 creates the draft (with a default timing); steps 2 and 3 change it; the
# draft's own page is the last step: check everything, then schedule. Every step
# also edits a draft later ("Change" links on its page).

def _questionnaires() -> list[Questionnaire]:
    return db.session.scalars(
        select(Questionnaire).order_by(Questionnaire.slug, Questionnaire.version.desc())).all()


def _default_timing() -> dict:
    """What step 1 starts a draft with; step 3 shows it for the admin to change."""
    zone = ZoneInfo(current_app.config["DEFAULT_TIMEZONE"])
    send_at = utcnow().astimezone(zone).replace(second=0, microsecond=0)
    try:
        quiet_hours = services.default_quiet_hours()
    except ServiceError:  # a DEFAULT_QUIET_HOURS the parser refuses: none
        quiet_hours = None
    return {"send_at": send_at, "closes_at": send_at + timedelta(days=30), "reminders": ["P3D", "P7D"],
            "quiet_hours": quiet_hours}


def _draft(campaign_id: int):
    """The draft to edit, or a redirect to its page saying why it cannot be changed."""
    campaign = db.get_or_404(Campaign, campaign_id)
    if campaign.status != "draft":
        flash(_("Only a draft can be changed: put the campaign back to draft first."), "error")
        return campaign, redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    return campaign, None


@bp.route("/new", methods=["GET", "POST"])
@allowed("write", "campaign")
def new():
    return _basics(None)


@bp.route("/<int:campaign_id>/edit", methods=["GET", "POST"])
@allowed("write", "campaign")
def edit(campaign_id: int):
    campaign, refused = _draft(campaign_id)
    return refused or _basics(campaign)


def _basics(campaign: Campaign | None):
    form = BasicsForm(questionnaires=_questionnaires())
    if request.method == "GET" and campaign is not None:
        form.name.data, form.audience_kind.data = campaign.name, campaign.audience_kind
        form.questionnaire_id.data, form.privacy.data = campaign.questionnaire_id, campaign.privacy
    if form.validate_on_submit():
        chosen = {"name": form.name.data, "questionnaire": db.session.get(Questionnaire, form.questionnaire_id.data),
                  "audience_kind": form.audience_kind.data, "privacy": form.privacy.data}
        try:
            if campaign is None:
                campaign = services.create_campaign(**chosen, audience_filters={}, **_default_timing(),
                                                    created_by=current_user)
            else:
                services.update_campaign(campaign, **chosen)
        except ServiceError as exc:
            show_refusal(form, exc)
        else:
            db.session.commit()
            return redirect(url_for("campaigns.audience", campaign_id=campaign.id))
    return render_template("campaigns/step_basics.html", form=form, campaign=campaign, step=1)


@bp.route("/<int:campaign_id>/audience", methods=["GET", "POST"])
@allowed("write", "campaign")
def audience(campaign_id: int):
    campaign, refused = _draft(campaign_id)
    if refused:
        return refused
    form = AudienceForm()
    if request.method == "GET":
        form.audience_filters.data = "\n".join(f"{k}={v}" for k, v in campaign.audience_filters.items())
    if form.validate_on_submit():
        try:
            services.update_campaign(campaign, audience_filters=form.filters())
        except ServiceError as exc:
            show_refusal(form, exc)
        else:
            db.session.commit()
            if "count" in request.form:  # "Save and count again": stay on this step
                return redirect(url_for("campaigns.audience", campaign_id=campaign.id))
            return redirect(url_for("campaigns.timing", campaign_id=campaign.id))
    return render_template("campaigns/step_audience.html", form=form, campaign=campaign, step=2,
                           reachable=services.audience_count(campaign),
                           examples=_attribute_examples(campaign.audience_kind))


def _attribute_examples(kind: str, sample: int = 500, per_attribute: int = 5) -> dict[str, list[str]]:
    """The attributes imported for this kind of people, with their most common values
    among a sample: what the admin can filter on."""
    seen: dict[str, Counter] = {}
    rows = db.session.scalars(select(Stakeholder.attributes).where(Stakeholder.kind == kind).limit(sample))
    for attributes in rows:
        for key, value in (attributes or {}).items():
            seen.setdefault(str(key), Counter())[str(value)] += 1
    return {key: [value for value, _count in counts.most_common(per_attribute)]
            for key, counts in sorted(seen.items())}


@bp.route("/<int:campaign_id>/timing", methods=["GET", "POST"])
@allowed("write", "campaign")
def timing(campaign_id: int):
    campaign, refused = _draft(campaign_id)
    if refused:
        return refused
    form = TimingForm()
    if request.method == "GET":
        zone = ZoneInfo(current_app.config["DEFAULT_TIMEZONE"])
        form.timezone.data = zone.key
        form.send_at.data = campaign.send_at.astimezone(zone).replace(tzinfo=None)
        form.closes_at.data = campaign.closes_at.astimezone(zone).replace(tzinfo=None)
        form.reminders.data = ", ".join(campaign.reminders)
        form.quiet_hours.data = campaign_quiet_hours(campaign)
    if form.validate_on_submit():
        zone = ZoneInfo(form.timezone.data)
        try:
            services.update_campaign(
                campaign, send_at=form.send_at.data.replace(tzinfo=zone),
                closes_at=form.closes_at.data.replace(tzinfo=zone), reminders=form.reminder_list(),
                quiet_hours=form.quiet_hours_value())
        except ServiceError as exc:
            show_refusal(form, exc)
        else:
            db.session.commit()
            flash(_("Draft saved. Check it, then schedule it."), "success")
            return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    return render_template("campaigns/step_timing.html", form=form, campaign=campaign, step=3)


@bp.route("/<int:campaign_id>")
@allowed("read", "campaign")
def detail(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    status = request.args.get("status", "")
    status = status if status in INVITATION_STATUSES else ""
    email = request.args.get("email", "").strip()[:320]
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    counted = tally(campaign)  # the counts, the funnel and the number of recipients, in one pass
    counts = sending_progress(campaign, counted.counts)  # the same figures as the JSON ``progress`` below
    if email:
        total = None  # a search by address is counted with its page
    else:
        total = counted.by_status.get(status, 0) if status else counts["invited"]
    filters = {"per_page": PAGE_SIZE, "status": status or None, "email": email, "total": total}
    recipients = recipients_page(campaign.id, page=page, **filters)
    if not recipients.items and recipients.page > recipients.pages:  # past the end: the last page
        recipients = recipients_page(campaign.id, page=recipients.pages, **filters)
    audience = services.audience_count(campaign) if campaign.status in ("draft", "scheduled") else None
    funnel = funnel_by_day(campaign, counted) if counts["invited"] else []
    return render_template(
        "campaigns/detail.html", campaign=campaign, counts=counts,
        poll_seconds=current_app.config["PROGRESS_POLL_SECONDS"],
        funnel=funnel, funnel_chart=funnel_chart(funnel, counts["invited"]) if funnel else None,
        recipients=recipients, links=page_links(recipients.page, recipients.pages),
        statuses=INVITATION_STATUSES, status=status, email=email,
        quiet_hours=campaign_quiet_hours(campaign), audience=audience,
    )


@bp.route("/<int:campaign_id>/progress")
@allowed("read", "campaign")
def progress(campaign_id: int):
    """The campaign's progress as JSON: what the campaign page's script polls for while
    invitations go out (the same figures as the page's "Progress")."""
    campaign = db.get_or_404(Campaign, campaign_id)
    response = jsonify(campaign_id=campaign.id, **sending_progress(campaign))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:campaign_id>/schedule", methods=["POST"])
@allowed("schedule", "campaign")
def schedule(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    services.schedule_campaign(campaign)
    db.session.commit()
    flash(_("Campaign scheduled."), "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/unschedule", methods=["POST"])
@allowed("schedule", "campaign")
def unschedule(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    services.unschedule_campaign(campaign)
    db.session.commit()
    flash(_("Campaign back to draft."), "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
