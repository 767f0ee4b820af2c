"""API v1 routes: thin wrappers over the same services the admin pages call."""
from __future__ import annotations

from flask import request
from flask_smorest import Blueprint, abort
from sqlalchemy import select
from webargs.flaskparser import FlaskParser

from survey.api.auth import api_key_required
from survey.api.schemas import (
    CampaignIn,
    CampaignOut,
    ImportReportOut,
    KindArgs,
    QuestionnaireOut,
    RecipientsArgs,
    RecipientsPageOut,
)
from survey.audiences.services import import_audience
from survey.campaigns import services as campaign_services
from survey.campaigns.models import Campaign
from survey.campaigns.recipients import recipients_page
from survey.extensions import db
from survey.questionnaires.models import Questionnaire
from survey.questionnaires.services import add_questionnaire, parse_definition

SECURITY = [{"bearerAuth": []}]
# ``@api_key_required`` sits right under ``route``: the key is checked before the body or
# query is parsed, so a caller without a key gets 401, never a validation message.
MAX_CSV_BYTES = 50 * 1024 * 1024

questionnaires = Blueprint("api_questionnaires", __name__, url_prefix="/api/v1/questionnaires",
                           description="Questionnaire definitions and their versions")
audiences = Blueprint("api_audiences", __name__, url_prefix="/api/v1/audiences",
                      description="Audience imports")
campaigns = Blueprint("api_campaigns", __name__, url_prefix="/api/v1/campaigns",
                      description="Campaigns and their progress")


class _Parser(FlaskParser):
    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError:  # "[[[[…": a 400 like any other unreadable JSON, not a 500
            abort(400, message="The JSON body is nested too deeply.")


for _blueprint in (questionnaires, audiences, campaigns):
    _blueprint.ARGUMENTS_PARSER = _Parser()  # before any @arguments below uses it


def _campaign_or_404(campaign_id: int) -> Campaign:
    return db.session.get(Campaign, campaign_id) or abort(404, message="No such campaign.")


def _campaign_out(campaign: Campaign) -> Campaign:
    campaign.counts = campaign_services.campaign_counts(campaign.id)
    return campaign


@questionnaires.route("", methods=["GET"])
@api_key_required
@questionnaires.doc(security=SECURITY)
@questionnaires.response(200, QuestionnaireOut(many=True))
def list_questionnaires():
    """Every questionnaire version."""
    return db.session.scalars(select(Questionnaire).order_by(Questionnaire.slug, Questionnaire.version)).all()


@questionnaires.route("", methods=["POST"])
@api_key_required
@questionnaires.doc(
    security=SECURITY,
    requestBody={"required": True, "content": {"application/json": {"schema": {"type": "object"}},
                                               "application/yaml": {"schema": {"type": "string"}}}},
)
@questionnaires.response(201, QuestionnaireOut)
def add_questionnaire_version():
    """Add a definition (JSON or YAML body); an existing slug gets its next version."""
    questionnaire = add_questionnaire(parse_definition(request.get_data(cache=False)))
    db.session.commit()
    return questionnaire


@audiences.route("/import", methods=["POST"])
@api_key_required
@audiences.doc(security=SECURITY,
               requestBody={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}})
@audiences.arguments(KindArgs, location="query")
@audiences.response(200, ImportReportOut)
def import_audience_csv(args):
    """Import a CSV body: any delimiter, UTF-8 (with or without BOM) or Windows-1252."""
    if request.content_length and request.content_length > MAX_CSV_BYTES:
        abort(413, message="The CSV is too large for one request.")
    body = request.get_data(cache=False)
    if not body.strip():
        abort(422, message="The request has no CSV: send the file as the body (Content-Type: text/csv).")
    report = import_audience(body, args["kind"])
    if report.unreadable:  # not one row could be read: the request is wrong, not some rows
        db.session.rollback()
        abort(422, message=f"The CSV cannot be read: {report.unreadable}.", errors={"rejected": report.rejected})
    db.session.commit()
    return report.as_dict()


@campaigns.route("", methods=["POST"])
@api_key_required
@campaigns.doc(security=SECURITY)
@campaigns.arguments(CampaignIn)
@campaigns.response(201, CampaignOut)
def create_campaign(data):
    """Create a draft campaign."""
    questionnaire = db.session.get(Questionnaire, data["questionnaire_id"])
    if questionnaire is None:
        abort(422, message="Unknown questionnaire_id.", errors={"json": {"questionnaire_id": ["not found"]}})
    campaign = campaign_services.create_campaign(
        name=data["name"], questionnaire=questionnaire, audience_kind=data["audience"]["kind"],
        audience_filters=data["audience"]["filters"], privacy=data["privacy"], send_at=data["send_at"],
        closes_at=data["closes_at"], reminders=data["reminders"],
        quiet_hours=data.get("quiet_hours", "default"),  # absent: the configured default; null: none
    )
    db.session.commit()
    return _campaign_out(campaign)


@campaigns.route("/<int:campaign_id>", methods=["GET"])
@api_key_required
@campaigns.doc(security=SECURITY)
@campaigns.response(200, CampaignOut)
def get_campaign(campaign_id: int):
    """A campaign with its progress counts."""
    campaign = _campaign_or_404(campaign_id)
    return _campaign_out(campaign)


@campaigns.route("/<int:campaign_id>/recipients", methods=["GET"])
@api_key_required
@campaigns.doc(security=SECURITY)
@campaigns.arguments(RecipientsArgs, location="query")
@campaigns.response(200, RecipientsPageOut)
def list_recipients(args, campaign_id: int):
    """The people invited, each with every email sent to them in this campaign.

    One page at a time, in invitation order; each email with its status, attempts,
    SMTP reply and Message-ID. An unknown campaign is a 404.
    """
    campaign = _campaign_or_404(campaign_id)
    return recipients_page(campaign.id, page=args["page"], per_page=args["per_page"],
                           status=args.get("status"), email=args.get("email"))


@campaigns.route("/<int:campaign_id>/schedule", methods=["POST"])
@api_key_required
@campaigns.doc(security=SECURITY)
@campaigns.response(200, CampaignOut)
def schedule_campaign(campaign_id: int):
    """Schedule a draft; if its send time has passed, sending starts at once."""
    campaign = _campaign_or_404(campaign_id)
    campaign_services.schedule_campaign(campaign)
    db.session.commit()
    return _campaign_out(campaign)
