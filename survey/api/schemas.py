"""Marshmallow schemas of the API's request and response bodies."""
from datetime import timezone

from marshmallow import Schema, ValidationError, fields, validate

from survey.audiences.models import KINDS
from survey.campaigns.models import PRIVACY_MODES
from survey.core.routing import MAX_ID


def _utc_representable(value) -> None:
    """Times are stored in UTC: 0001-01-01T00:30+01:00 has no UTC equivalent."""
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        raise ValidationError("This date is out of range.") from None


class QuestionnaireOut(Schema):
    id = fields.Int()
    slug = fields.Str()
    version = fields.Int()
    title = fields.Method("get_title")
    kind = fields.Str()
    frozen = fields.Method("get_frozen")

    def get_title(self, obj):
        return obj.definition.get("title", {})

    def get_frozen(self, obj):
        return obj.frozen_at is not None


class KindArgs(Schema):
    kind = fields.Str(required=True, validate=validate.OneOf(KINDS))


class Rejection(Schema):
    line = fields.Int()
    reason = fields.Str()


class ImportReportOut(Schema):
    created = fields.Int()
    updated = fields.Int()
    rejected = fields.List(fields.Nested(Rejection))


class AudienceIn(Schema):
    kind = fields.Str(required=True, validate=validate.OneOf(KINDS))
    filters = fields.Dict(keys=fields.Str(validate=validate.Length(min=1, max=100)),
                          values=fields.Str(validate=validate.Length(max=500)), load_default=dict)


class CampaignIn(Schema):
    name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    questionnaire_id = fields.Int(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    audience = fields.Nested(AudienceIn, required=True)
    privacy = fields.Str(load_default="identified", validate=validate.OneOf(PRIVACY_MODES))
    send_at = fields.AwareDateTime(required=True, validate=_utc_representable)
    closes_at = fields.AwareDateTime(required=True, validate=_utc_representable)
    reminders = fields.List(fields.Str(validate=validate.Length(max=50)), load_default=list,
                            validate=validate.Length(max=20))


class Counts(Schema):
    invited = fields.Int()
    sent = fields.Int()
    failed = fields.Int()
    opened = fields.Int()
    started = fields.Int()
    completed = fields.Int()


class CampaignOut(Schema):
    id = fields.Int()
    name = fields.Str()
    status = fields.Str()
    questionnaire_id = fields.Int()
    audience = fields.Method("get_audience")
    privacy = fields.Str()
    send_at = fields.AwareDateTime()
    closes_at = fields.AwareDateTime()
    reminders = fields.List(fields.Str())
    counts = fields.Nested(Counts)

    def get_audience(self, obj):
        return {"kind": obj.audience_kind, "filters": obj.audience_filters}
