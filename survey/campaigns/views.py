"""Admin pages for campaigns: list, create, schedule, follow progress."""
from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from survey.accounts.access import role_required
from survey.campaigns import services
from survey.campaigns.forms import CampaignForm
from survey.campaigns.models import INVITATION_STATUSES, Campaign
from survey.campaigns.progress import funnel_by_day, funnel_chart
from survey.campaigns.recipients import campaign_quiet_hours, format_quiet_hours, page_links, recipients_page
from survey.core.errors import ServiceError
from survey.core.types import utcnow
from survey.extensions import db
from survey.questionnaires.models import Questionnaire

bp = Blueprint("campaigns", __name__, template_folder="templates", url_prefix="/admin/campaigns")

PAGE_SIZE = 50
#: a larger ?page= is read as the last page (and never overflows the database's OFFSET)
MAX_PAGE = 10**9


@bp.route("/")
@role_required("admin")
def index():
    campaigns = db.session.scalars(select(Campaign).order_by(Campaign.created_at.desc())).all()
    counts = {c.id: services.campaign_counts(c.id) for c in campaigns}
    return render_template("campaigns/index.html", campaigns=campaigns, counts=counts)


@bp.route("/new", methods=["GET", "POST"])
@role_required("admin")
def new():
    questionnaires = db.session.scalars(
        select(Questionnaire).order_by(Questionnaire.slug, Questionnaire.version.desc())
    ).all()
    form = CampaignForm(questionnaires=questionnaires)
    if request.method == "GET":
        now = utcnow().astimezone(ZoneInfo(current_app.config["DEFAULT_TIMEZONE"]))
        form.timezone.data = current_app.config["DEFAULT_TIMEZONE"]
        form.send_at.data = now.replace(tzinfo=None, second=0, microsecond=0)
        form.closes_at.data = form.send_at.data + timedelta(days=30)
        form.reminders.data = "P3D, P7D"
        try:
            form.quiet_hours.data = format_quiet_hours(*(services.default_quiet_hours() or (None, None)))
        except ServiceError:  # a DEFAULT_QUIET_HOURS the parser refuses: no prefill
            form.quiet_hours.data = ""
    if form.validate_on_submit():
        zone = ZoneInfo(form.timezone.data)
        try:
            campaign = services.create_campaign(
                name=form.name.data,
                questionnaire=db.get_or_404(Questionnaire, form.questionnaire_id.data),
                audience_kind=form.audience_kind.data,
                audience_filters=form.filters(),
                privacy=form.privacy.data,
                send_at=form.send_at.data.replace(tzinfo=zone),
                closes_at=form.closes_at.data.replace(tzinfo=zone),
                reminders=form.reminder_list(),
                quiet_hours=form.quiet_hours_value(),
                created_by=current_user,
            )
        except ServiceError as exc:
            field = getattr(form, exc.details.get("field", ""), None)
            (field.errors.append(exc.message) if field is not None else flash(exc.message, "error"))
        else:
            db.session.commit()
            flash(_("Campaign created as a draft. Check it, then schedule it."), "success")
            return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
    return render_template("campaigns/new.html", form=form)


@bp.route("/<int:campaign_id>")
@role_required("admin")
def detail(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    status = request.args.get("status", "")
    status = status if status in INVITATION_STATUSES else ""
    email = request.args.get("email", "").strip()[:320]
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    filters = {"per_page": PAGE_SIZE, "status": status or None, "email": email}
    recipients = recipients_page(campaign.id, page=page, **filters)
    if not recipients.items and recipients.page > recipients.pages:  # past the end: the last page
        recipients = recipients_page(campaign.id, page=recipients.pages, **filters)
    audience = services.audience_count(campaign) if campaign.status in ("draft", "scheduled") else None
    counts = services.campaign_counts(campaign.id)
    funnel = funnel_by_day(campaign) if counts["invited"] else []
    return render_template(
        "campaigns/detail.html", campaign=campaign, counts=counts,
        funnel=funnel, funnel_chart=funnel_chart(funnel, counts["invited"]) if funnel else None,
        recipients=recipients, links=page_links(recipients.page, recipients.pages),
        statuses=INVITATION_STATUSES, status=status, email=email,
        quiet_hours=campaign_quiet_hours(campaign), audience=audience,
    )


@bp.route("/<int:campaign_id>/schedule", methods=["POST"])
@role_required("admin")
def schedule(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    services.schedule_campaign(campaign)
    db.session.commit()
    flash(_("Campaign scheduled."), "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/unschedule", methods=["POST"])
@role_required("admin")
def unschedule(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    services.unschedule_campaign(campaign)
    db.session.commit()
    flash(_("Campaign back to draft."), "success")
    return redirect(url_for("campaigns.detail", campaign_id=campaign.id))
