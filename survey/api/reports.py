"""API v1: the impact report's figures, as JSON or CSV."""
from __future__ import annotations

from flask import Response, g
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from survey.api.auth import api_allowed
from survey.api.openapi import NO_CAMPAIGN, SECURITY, errors
from survey.audit.chain import record
from survey.campaigns.models import Campaign
from survey.core.routing import MAX_ID
from survey.extensions import db
from survey.reports.document import DEFAULT_BREAKDOWNS, Selection, build
from survey.reports.export import document_csv

reports = Blueprint("api_reports", __name__, url_prefix="/api/v1/reports",
                    description="The impact report: claimed and proven, with intervals")


class ImpactArgs(Schema):
    campaign = fields.Int(validate=validate.Range(min=1, max=MAX_ID),
                          metadata={"description": "One campaign (not with from and to).", "example": 1})
    from_ = fields.Date(data_key="from", metadata={
        "description": "Campaigns sent from this day… (with to; not with campaign). Days are the "
                       "organisation's (DEFAULT_TIMEZONE), not UTC's.", "example": "2024-01-01"})
    to = fields.Date(metadata={"description": "…to this day, inclusive, to its last instant in DEFAULT_TIMEZONE "
                                              "(with from; not with campaign)",
                               "example": "2024-12-31"})
    by = fields.List(fields.Str(validate=validate.Regexp(r"^[A-Za-z0-9_\-]{1,60}$")),
                     metadata={"description": "attributes to break down by (default programme, cohort)"})
    format = fields.Str(load_default="json", validate=validate.OneOf(("json", "csv")))

    @validates_schema
    def _one_selection(self, data, **_kwargs):
        has_period = "from_" in data or "to" in data
        if ("campaign" in data) == has_period:
            raise ValidationError("Give either campaign=<id> or from=<day>&to=<day>.")
        if has_period and not ("from_" in data and "to" in data):
            raise ValidationError("A period needs both from and to.")
        if has_period and data["from_"] > data["to"]:
            raise ValidationError("from must not be after to.", "from")


class RateOut(Schema):
    numerator = fields.Int()
    denominator = fields.Int()
    value = fields.Float(allow_none=True, metadata={"description": "null when the denominator is 0"})
    ci95 = fields.List(fields.Float(), allow_none=True, validate=validate.Length(equal=2), metadata={
        "description": "The 95% Wilson score interval [low, high]; null when the denominator is 0."})


class GroupOut(Schema):
    value = fields.Str()
    invited = fields.Int()
    responded = fields.Int()
    proven_people = fields.Int()
    suppressed = fields.Str(validate=validate.OneOf(("small", "complementary")), metadata={
        "description": "Hidden, with no figure: under the threshold, or so that such a group cannot be "
                       "derived from the others."})


class ImpactOut(Schema):
    """The figures (documentation only: the view returns the report's document as built)."""

    campaigns = fields.List(fields.Int())
    invited = fields.Int()
    responded = fields.Int()
    response_rate = fields.Nested(RateOut)
    activities = fields.Dict(keys=fields.Str(), values=fields.Int(),
                             metadata={"description": "activity → respondents (\"unknown\": not said)"})
    knowledge_rate = fields.Nested(RateOut)
    career_outcomes_rate = fields.Nested(RateOut)
    outcomes = fields.Dict(keys=fields.Str(), values=fields.Dict(keys=fields.Str(), values=fields.Int()),
                           metadata={"description": "outcome type → claims by state"})
    proven_rate = fields.Nested(RateOut)
    proven_among_respondents = fields.Nested(RateOut)
    warnings = fields.List(fields.Str())
    breakdowns = fields.Dict(keys=fields.Str(), values=fields.List(fields.Nested(GroupOut)),
                             metadata={"description": "attribute → its groups"})
    employee = fields.Dict(allow_none=True, metadata={
        "description": "The employee survey's figures; null without an employee campaign."})


FIGURES = "The figures: JSON, or with format=csv a spreadsheet-safe CSV."


@reports.route("/impact", methods=["GET"])
@api_allowed("export", "report")
@reports.doc(security=SECURITY, operationId="getImpactReport")
@reports.arguments(ImpactArgs, location="query")
@reports.alt_response(200, schema=ImpactOut, success=True, description=FIGURES)
@reports.alt_response(200, schema={"type": "string"}, content_type="text/csv", success=True, description=FIGURES)
@errors(reports, {404: NO_CAMPAIGN})
def impact(args):
    """The figures of one campaign or of a period's campaigns; `format=csv` for a spreadsheet.

    Give either `campaign=<id>` or both `from=<day>` and `to=<day>` (no later than
    `to`): anything else is a 422. A draft campaign is never counted.
    """
    if "campaign" in args and db.session.get(Campaign, args["campaign"]) is None:
        abort(404, message="No such campaign.")
    selection = Selection(campaign_id=args.get("campaign"), start=args.get("from_"), end=args.get("to"),
                          breakdowns=tuple(args.get("by") or DEFAULT_BREAKDOWNS))
    ids = selection.campaign_ids()
    document = build(ids, selection.breakdowns)
    record("export", "report:impact", actor=f"api-key:{g.api_key.id}",
           data={"campaigns": ids, "format": args["format"]})
    db.session.commit()
    if args["format"] == "csv":
        return Response(document_csv(document), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="impact.csv"'})
    return {**document["figures"], "breakdowns": document["breakdowns"], "employee": document["employee"]}
