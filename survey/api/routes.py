"""API v1 routes: thin wrappers over the same services the admin pages call."""
from __future__ import annotations

from flask import jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import missing
from sqlalchemy import inspect, select
from webargs.flaskparser import FlaskParser, is_json_request

from survey.api.auth import api_allowed
from survey.api.openapi import NO_CAMPAIGN, NOT_JSON, SECURITY, errors, links
from survey.api.pages import campaigns_page, people_page
from survey.api.schemas import (
    CAMPAIGN_EXAMPLE,
    DEFINITION_EXAMPLE,
    CampaignIn,
    CampaignOut,
    CampaignPatchIn,
    CampaignsArgs,
    CampaignsPageOut,
    DryRunArgs,
    FunnelOut,
    ImportReportOut,
    KindArgs,
    PeopleArgs,
    PeoplePageOut,
    QuestionnaireDetailOut,
    QuestionnaireOut,
    QuestionnairePreviewOut,
    RecipientsArgs,
    RecipientsPageOut,
    definition_json_schema,
)
from survey.audiences.services import import_audience
from survey.campaigns import services as campaign_services
from survey.campaigns.models import Campaign
from survey.campaigns.progress import funnel_by_day
from survey.campaigns.recipients import recipients_page
from survey.extensions import db
from survey.questionnaires.models import Questionnaire
from survey.questionnaires.services import add_questionnaire, parse_definition

MAX_CSV_BYTES = 50 * 1024 * 1024
NUL_REFUSED = "Text cannot hold the NUL character (\\u0000)."

# ``@api_allowed`` sits right under ``route``: the key is checked before the body or
# query is parsed, so a caller without a key gets 401 (403 outside its scope), never a validation message.

questionnaires = Blueprint("api_questionnaires", __name__, url_prefix="/api/v1/questionnaires",
                           description="Questionnaire definitions and their versions")
audiences = Blueprint("api_audiences", __name__, url_prefix="/api/v1/audiences",
                      description="The people in the audiences, and imports")
campaigns = Blueprint("api_campaigns", __name__, url_prefix="/api/v1/campaigns",
                      description="Campaigns and their progress")


def _holds_nul(data) -> bool:
    """Whether a NUL character is in any string of ``data`` (keys included). PostgreSQL
    stores no text holding one: such a request is refused, rather than failing there."""
    pending = [data]
    while pending:  # a loop, not recursion: a body may nest as deep as JSON allows
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


class _Parser(FlaskParser):
    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError:  # "[[[[…": a 400 like any other unreadable JSON, not a 500
            abort(400, message="The JSON body is nested too deeply.")

    def load_json(self, req, schema):
        """A route that takes a JSON body refuses a request without one, rather than read it
        as ``{}`` (which a PATCH would take as "change nothing")."""
        data = super().load_json(req, schema)
        if data is missing:
            if req.get_data(cache=True) and not is_json_request(req):
                abort(415, message="Send the body as JSON, with Content-Type: application/json.")
            abort(400, message="The request needs a JSON body.")
        if _holds_nul(data):
            abort(422, message=NUL_REFUSED)
        return data

    def load_querystring(self, req, schema):
        if _holds_nul(req.args.to_dict(flat=False)):
            abort(422, message=NUL_REFUSED)
        return super().load_querystring(req, schema)


for _blueprint in (questionnaires, audiences, campaigns):
    _blueprint.ARGUMENTS_PARSER = _Parser()  # before any @arguments below uses it


#: from any answer that is a campaign, to everything that can be done with it next
CAMPAIGN_LINKS = links("campaign_id", {
    "GetCampaign": "getCampaign", "UpdateCampaign": "updateCampaign", "ScheduleCampaign": "scheduleCampaign",
    "UnscheduleCampaign": "unscheduleCampaign", "ListRecipients": "listRecipients",
    "GetFunnel": "getCampaignFunnel",
})
QUESTIONNAIRE_LINKS = links("questionnaire_id", {"GetQuestionnaire": "getQuestionnaire"})


# ------------------------------------------------------------------------ helpers

def _campaign_or_404(campaign_id: int) -> Campaign:
    return db.session.get(Campaign, campaign_id) or abort(404, message=NO_CAMPAIGN)


def _campaign_out(campaign: Campaign, counts: dict[str, int] | None = None) -> Campaign:
    """``campaign`` with its progress counts: ``counts`` when already known (a list counts
    its whole page in one query), else counted now."""
    campaign.counts = counts if counts is not None else campaign_services.campaign_counts(campaign.id)
    return campaign


def _settings(data: dict) -> dict:
    """The API's campaign fields as the services name them (``create_campaign``'s arguments);
    only those present in ``data``."""
    settings = {key: data[key] for key in ("name", "privacy", "send_at", "closes_at", "reminders", "quiet_hours")
                if key in data}
    if "questionnaire_id" in data:
        settings["questionnaire"] = db.session.get(Questionnaire, data["questionnaire_id"]) or abort(
            422, message="Unknown questionnaire_id.", errors={"json": {"questionnaire_id": ["not found"]}})
    if "audience" in data:
        settings["audience_kind"] = data["audience"]["kind"]
        settings["audience_filters"] = data["audience"]["filters"]
    return settings


# ----------------------------------------------------------------- questionnaires

@questionnaires.route("", methods=["GET"])
@api_allowed("read", "questionnaire")
@questionnaires.doc(security=SECURITY, operationId="listQuestionnaires")
@questionnaires.response(200, QuestionnaireOut(many=True))
@errors(questionnaires, {})
def list_questionnaires():
    """Every questionnaire version."""
    return db.session.scalars(select(Questionnaire).order_by(Questionnaire.slug, Questionnaire.version)).all()


@questionnaires.route("", methods=["POST"])
@api_allowed("write", "questionnaire")
@questionnaires.doc(
    security=SECURITY, operationId="addQuestionnaire",
    requestBody={"required": True, "content": {
        "application/json": {"schema": definition_json_schema(), "example": DEFINITION_EXAMPLE},
        "application/yaml": {"schema": {"type": "string"}}}},
    responses={201: {"links": QUESTIONNAIRE_LINKS}},
)
@questionnaires.arguments(DryRunArgs, location="query")
@questionnaires.response(201, QuestionnaireOut, description="Stored (or, when the definition is the same "
                                                           "as the latest version, that version).")
@questionnaires.alt_response(200, schema=QuestionnairePreviewOut, success=True,
                             description="dry_run=true: what would be stored; nothing is.")
@errors(questionnaires, {})
def add_questionnaire_version(args):
    """Add a definition (JSON or YAML body); an existing slug gets its next version.

    With `dry_run=true`, the definition is checked and the answer says what would be
    stored (slug, version, kind, definition), storing nothing: a preview before saving.
    """
    definition = parse_definition(request.get_data(cache=False))
    if _holds_nul(definition):
        abort(422, message=NUL_REFUSED)
    if args["dry_run"]:
        return jsonify(_preview(definition)), 200
    questionnaire = add_questionnaire(definition)
    db.session.commit()
    return questionnaire


def _preview(definition: dict) -> dict:
    """What ``add_questionnaire`` stores for ``definition``: it runs, then the request's
    transaction is rolled back (the API key's use was committed before the view)."""
    questionnaire = add_questionnaire(definition)  # flushed, never committed
    preview = QuestionnairePreviewOut().dump({
        "id": questionnaire.id, "slug": questionnaire.slug, "version": questionnaire.version,
        "kind": questionnaire.kind, "definition": questionnaire.definition})
    db.session.rollback()
    # A row inserted in the transaction leaves the session with it; the latest version,
    # returned as it was because nothing changed, stays.
    preview["new_version"] = inspect(questionnaire).transient
    if preview["new_version"]:
        preview["id"] = None
    return preview


@questionnaires.route("/<int:questionnaire_id>", methods=["GET"])
@api_allowed("read", "questionnaire")
@questionnaires.doc(security=SECURITY, operationId="getQuestionnaire")
@questionnaires.response(200, QuestionnaireDetailOut)
@errors(questionnaires, {404: "No such questionnaire."})
def get_questionnaire(questionnaire_id: int):
    """One version with its whole definition."""
    return db.session.get(Questionnaire, questionnaire_id) or abort(404, message="No such questionnaire.")


# ---------------------------------------------------------------------- audiences

@audiences.route("", methods=["GET"])
@api_allowed("read", "audience")
@audiences.doc(security=SECURITY, operationId="listPeople")
@audiences.arguments(PeopleArgs, location="query")
@audiences.response(200, PeoplePageOut)
@errors(audiences, {})
def list_people(args):
    """The people in the audiences, in the order they were added, suppressed ones included.

    One page at a time; `kind` and `email` (part of the address, any case) filter them.
    """
    return people_page(page=args["page"], per_page=args["per_page"], kind=args.get("kind"),
                       email=args.get("email"))


@audiences.route("/import", methods=["POST"])
@api_allowed("import", "audience")
@audiences.doc(security=SECURITY, operationId="importAudience",
               requestBody={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}})
@audiences.arguments(KindArgs, location="query")
@audiences.response(200, ImportReportOut)
@errors(audiences, {413: "The CSV is too large for one request."})
def import_audience_csv(args):
    """Import a CSV body: any delimiter, UTF-8 (with or without BOM) or Windows-1252."""
    if request.content_length and request.content_length > MAX_CSV_BYTES:
        abort(413, message="The CSV is too large for one request.")
    body = request.get_data(cache=False)  # at most MAX_CSV_BYTES: held whole, parsed as it goes
    if not body or body.isspace():
        abort(422, message="The request has no CSV: send the file as the body (Content-Type: text/csv).")
    report = import_audience(body, args["kind"])
    if report.unreadable:  # not one row could be read: the request is wrong, not some rows
        db.session.rollback()
        abort(422, message=f"The CSV cannot be read: {report.unreadable}.", errors={"rejected": report.rejected})
    db.session.commit()
    return report.as_dict()


# ---------------------------------------------------------------------- campaigns

@campaigns.route("", methods=["GET"])
@api_allowed("read", "campaign")
@campaigns.doc(security=SECURITY, operationId="listCampaigns")
@campaigns.arguments(CampaignsArgs, location="query")
@campaigns.response(200, CampaignsPageOut)
@errors(campaigns, {})
def list_campaigns(args):
    """Campaigns, newest first, each with its progress counts; one page at a time."""
    page = campaigns_page(page=args["page"], per_page=args["per_page"], status=args.get("status"))
    counts = campaign_services.campaign_counts_many(campaign.id for campaign in page.items)
    page.items = [_campaign_out(campaign, counts[campaign.id]) for campaign in page.items]
    return page


@campaigns.route("", methods=["POST"])
@api_allowed("write", "campaign")
@campaigns.doc(security=SECURITY, operationId="createCampaign", responses={201: {"links": CAMPAIGN_LINKS}})
@campaigns.arguments(CampaignIn, example=CAMPAIGN_EXAMPLE)
@campaigns.response(201, CampaignOut)
@errors(campaigns, {415: NOT_JSON})
def create_campaign(data):
    """Create a draft campaign."""
    campaign = campaign_services.create_campaign(**_settings(data))  # no quiet_hours: the default
    db.session.commit()
    return _campaign_out(campaign)


# GET and PATCH share one URL rule: an id beyond the id range is then a 404 for both (with
# two rules, werkzeug would answer a PATCH with 405, having matched the GET rule's path).
@campaigns.route("/<int:campaign_id>")
class CampaignById(MethodView):
    @api_allowed("read", "campaign")
    @campaigns.doc(security=SECURITY, operationId="getCampaign")
    @campaigns.response(200, CampaignOut)
    @errors(campaigns, {404: NO_CAMPAIGN})
    def get(self, campaign_id: int):
        """A campaign with its progress counts."""
        campaign = _campaign_or_404(campaign_id)
        return _campaign_out(campaign)

    @api_allowed("write", "campaign")
    @campaigns.doc(security=SECURITY, operationId="updateCampaign", responses={200: {"links": CAMPAIGN_LINKS}})
    @campaigns.arguments(CampaignPatchIn, example={"name": "Alumni 2024, seven months on", "reminders": ["P4D"]},
                         description="Only the settings to change. An audience is replaced as a whole "
                                     "(kind and filters); quiet_hours null means reminders at any hour.")
    @campaigns.response(200, CampaignOut)
    @errors(campaigns, {404: NO_CAMPAIGN, 409: "The campaign is not a draft: unschedule it first.",
                        415: NOT_JSON})
    def patch(self, data, campaign_id: int):
        """Change a draft's settings: only the fields sent change, and they are checked together
        with the others as on creation. A scheduled campaign must go back to draft first."""
        campaign = _campaign_or_404(campaign_id)
        campaign_services.update_campaign(campaign, **_settings(data))
        db.session.commit()
        return _campaign_out(campaign)


@campaigns.route("/<int:campaign_id>/recipients", methods=["GET"])
@api_allowed("read", "campaign")
@campaigns.doc(security=SECURITY, operationId="listRecipients")
@campaigns.arguments(RecipientsArgs, location="query")
@campaigns.response(200, RecipientsPageOut)
@errors(campaigns, {404: NO_CAMPAIGN})
def list_recipients(args, campaign_id: int):
    """The people invited, each with every email sent to them in this campaign.

    One page at a time, in invitation order; each email with its status, attempts,
    SMTP reply and Message-ID. An unknown campaign is a 404.
    """
    campaign = _campaign_or_404(campaign_id)
    return recipients_page(campaign.id, page=args["page"], per_page=args["per_page"],
                           status=args.get("status"), email=args.get("email"))


@campaigns.route("/<int:campaign_id>/funnel", methods=["GET"])
@api_allowed("read", "campaign")
@campaigns.doc(security=SECURITY, operationId="getCampaignFunnel")
@campaigns.response(200, FunnelOut)
@errors(campaigns, {404: NO_CAMPAIGN})
def campaign_funnel(campaign_id: int):
    """The funnel over time: by the end of each day (UTC), how many people had been sent
    their invitation, had opened it, started and completed the survey."""
    campaign = _campaign_or_404(campaign_id)
    return {"campaign_id": campaign.id, "days": funnel_by_day(campaign)}


@campaigns.route("/<int:campaign_id>/schedule", methods=["POST"])
@api_allowed("schedule", "campaign")
@campaigns.doc(security=SECURITY, operationId="scheduleCampaign", responses={200: {"links": CAMPAIGN_LINKS}})
@campaigns.response(200, CampaignOut)
@errors(campaigns, {404: NO_CAMPAIGN, 409: "The campaign is not a draft.",
                    422: "Its closing time has passed, or no one in its audience can be emailed."})
def schedule_campaign(campaign_id: int):
    """Schedule a draft; if its send time has passed, sending starts at once."""
    campaign = _campaign_or_404(campaign_id)
    campaign_services.schedule_campaign(campaign)
    db.session.commit()
    return _campaign_out(campaign)


@campaigns.route("/<int:campaign_id>/unschedule", methods=["POST"])
@api_allowed("schedule", "campaign")
@campaigns.doc(security=SECURITY, operationId="unscheduleCampaign", responses={200: {"links": CAMPAIGN_LINKS}})
@campaigns.response(200, CampaignOut)
@errors(campaigns, {404: NO_CAMPAIGN, 409: "The campaign is not scheduled (a draft, or already sending)."})
def unschedule_campaign(campaign_id: int):
    """Back to draft, to change it before it is sent; only a scheduled campaign can."""
    campaign = _campaign_or_404(campaign_id)
    campaign_services.unschedule_campaign(campaign)
    db.session.commit()
    return _campaign_out(campaign)
