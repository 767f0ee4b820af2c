"""API v1: the impact report's figures, as JSON or CSV."""
from __future__ import annotations

from flask import Response, g
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from survey.api.auth import api_key_required
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
                          metadata={"description": "one campaign"})
    from_ = fields.Date(data_key="from", metadata={"description": "campaigns sent from this day…"})
    to = fields.Date(metadata={"description": "…to this day (inclusive)"})
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


@reports.route("/impact", methods=["GET"])
@api_key_required
@reports.doc(security=[{"bearerAuth": []}])
@reports.arguments(ImpactArgs, location="query")
def impact(args):
    """The figures of one campaign or of a period's campaigns; `format=csv` for a spreadsheet."""
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
