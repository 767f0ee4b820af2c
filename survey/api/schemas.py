"""Marshmallow schemas of the API's request and response bodies."""
from datetime import timezone

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from survey.audiences.models import KINDS
from survey.campaigns.models import INVITATION_STATUSES, PRIVACY_MODES
from survey.campaigns.recipients import MAX_PER_PAGE, PER_PAGE
from survey.campaigns.services import parse_quiet_hours
from survey.core.errors import ValidationFailed
from survey.core.routing import MAX_ID
from survey.mail.models import OUTBOX_KINDS, OUTBOX_STATUSES

#: a later page than this is refused (422) rather than overflowing the database's OFFSET
MAX_PAGE = 10**9


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


_CLOCK_TIME = validate.Regexp(r"^[0-9]{1,2}:[0-9]{2}\Z", error="Write a time as HH:MM, e.g. 20:00.")


class QuietHoursIn(Schema):
    start = fields.Str(required=True, validate=_CLOCK_TIME, metadata={"example": "20:00"})
    end = fields.Str(required=True, validate=_CLOCK_TIME, metadata={"example": "08:00"})

    @validates_schema(skip_on_field_errors=True)
    def _valid_range(self, data, **_):
        try:
            parse_quiet_hours(f"{data['start']}-{data['end']}")
        except ValidationFailed as exc:
            raise ValidationError(exc.message) from None

    @post_load
    def _to_times(self, data, **_):
        return parse_quiet_hours(f"{data['start']}-{data['end']}")


class CampaignIn(Schema):
    name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    questionnaire_id = fields.Int(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    audience = fields.Nested(AudienceIn, required=True)
    privacy = fields.Str(load_default="identified", validate=validate.OneOf(PRIVACY_MODES))
    send_at = fields.AwareDateTime(required=True, validate=_utc_representable)
    closes_at = fields.AwareDateTime(required=True, validate=_utc_representable)
    reminders = fields.List(fields.Str(validate=validate.Length(max=50)), load_default=list,
                            validate=validate.Length(max=20))
    quiet_hours = fields.Nested(
        QuietHoursIn, allow_none=True,
        metadata={"description": "No reminder is sent between these local times of each recipient "
                                 "(their own time zone). null: reminders at any hour; "
                                 "absent: the service's default (DEFAULT_QUIET_HOURS)."})


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
    quiet_hours = fields.Method(
        "get_quiet_hours",
        metadata={"type": "object", "nullable": True,
                  "properties": {"start": {"type": "string", "example": "20:00"},
                                 "end": {"type": "string", "example": "08:00"}},
                  "description": "Local times of each recipient with no reminder; null: any hour."})
    counts = fields.Nested(Counts)

    def get_audience(self, obj):
        return {"kind": obj.audience_kind, "filters": obj.audience_filters}

    def get_quiet_hours(self, obj):
        if obj.quiet_hours_start is None or obj.quiet_hours_end is None:
            return None
        return {"start": f"{obj.quiet_hours_start:%H:%M}", "end": f"{obj.quiet_hours_end:%H:%M}"}


class RecipientsArgs(Schema):
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Int(load_default=PER_PAGE, validate=validate.Range(min=1, max=MAX_PER_PAGE))
    status = fields.Str(validate=validate.OneOf(INVITATION_STATUSES),
                        metadata={"description": "Only invitations in this status."})
    email = fields.Str(validate=validate.Length(max=320),
                       metadata={"description": "Only addresses containing this text."})


class EmailOut(Schema):
    """One email of the outbox: the invitation (sequence 0) or a reminder (1, 2…)."""

    kind = fields.Str(metadata={"enum": list(OUTBOX_KINDS)})
    sequence = fields.Int()
    status = fields.Str(metadata={"enum": list(OUTBOX_STATUSES)})
    attempts = fields.Int()
    queued_at = fields.AwareDateTime(attribute="created_at")
    next_attempt_at = fields.Method(
        "get_next_attempt_at",
        metadata={"type": "string", "format": "date-time", "nullable": True,
                  "description": "When a queued email will next be tried; null otherwise."})
    sent_at = fields.AwareDateTime(allow_none=True)
    bounced_at = fields.AwareDateTime(allow_none=True)
    smtp_reply = fields.Str(allow_none=True, metadata={"description": "The SMTP server's last answer."})
    message_id = fields.Str(allow_none=True)

    def get_next_attempt_at(self, obj):
        if obj.status != "queued" or obj.next_attempt_at is None:
            return None
        return obj.next_attempt_at.isoformat()


class RecipientOut(Schema):
    invitation_id = fields.Int(attribute="invitation.id")
    email = fields.Str(attribute="person.email")
    first_name = fields.Str(attribute="person.first_name")
    last_name = fields.Str(attribute="person.last_name")
    timezone = fields.Str(attribute="person.timezone")
    status = fields.Str(attribute="invitation.status", metadata={"enum": list(INVITATION_STATUSES)})
    reminders_sent = fields.Int(attribute="invitation.reminders_sent")
    next_reminder_at = fields.AwareDateTime(attribute="invitation.next_reminder_at", allow_none=True)
    opted_out_at = fields.AwareDateTime(attribute="invitation.opted_out_at", allow_none=True)
    suppressed_at = fields.AwareDateTime(attribute="person.suppressed_at", allow_none=True,
                                         metadata={"description": "Opted out of everything, or hard bounce."})
    suppression_reason = fields.Str(attribute="person.suppression_reason", allow_none=True)
    emails = fields.List(fields.Nested(EmailOut))


class RecipientsPageOut(Schema):
    items = fields.List(fields.Nested(RecipientOut))
    page = fields.Int()
    per_page = fields.Int()
    total = fields.Int(metadata={"description": "Recipients matching the filters, on every page."})
    pages = fields.Int()
