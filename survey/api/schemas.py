"""Marshmallow schemas of the API's request and response bodies."""
import json
from datetime import timezone

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from survey.audiences.models import KINDS
from survey.audiences.services import MAX_REPORTED_REJECTIONS
from survey.campaigns.models import (
    CAMPAIGN_STATUSES,
    INVITATION_STATUSES,
    PRIVACY_MODES,
)
from survey.campaigns.recipients import MAX_PER_PAGE, PER_PAGE
from survey.campaigns.services import parse_quiet_hours
from survey.core.errors import ValidationFailed
from survey.core.routing import MAX_ID
from survey.mail.models import OUTBOX_KINDS, OUTBOX_STATUSES
from survey.questionnaires.services import SCHEMA_PATH

#: a later page than this is refused (422) rather than overflowing the database's OFFSET
MAX_PAGE = 10**9
#: the most items on one page of the campaigns and of the people
MAX_LIST_PER_PAGE = 100
#: the languages a person's emails and pages can be in (the stakeholders' CHECK constraint)
LOCALES = ("fr", "en")


def _utc_representable(value) -> None:
    """Times are stored in UTC: 0001-01-01T00:30+01:00 has no UTC equivalent."""
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        raise ValidationError("This date is out of range.") from None


_TITLE = {"type": "object", "additionalProperties": {"type": "string"},
          "description": "The title in each language, e.g. {\"fr\": \"…\", \"en\": \"…\"}."}


class QuestionnaireOut(Schema):
    id = fields.Int()
    slug = fields.Str()
    version = fields.Int()
    title = fields.Method("get_title", metadata=_TITLE)
    kind = fields.Str(metadata={"enum": list(KINDS)})
    frozen = fields.Method("get_frozen", metadata={
        "type": "boolean", "description": "Used by a campaign: this version never changes."})

    def get_title(self, obj):
        return obj.definition.get("title", {})

    def get_frozen(self, obj):
        return obj.frozen_at is not None


_DEFINITION = {"description": "The definition as stored (validated, JSON); see docs/questionnaires.md."}


class QuestionnaireDetailOut(QuestionnaireOut):
    """One version with everything needed to show or reuse it."""

    definition = fields.Dict(metadata=_DEFINITION)
    created_at = fields.AwareDateTime()
    frozen_at = fields.AwareDateTime(allow_none=True,
                                     metadata={"description": "When a campaign first used it; null: never."})


class QuestionnairePreviewOut(Schema):
    """What ``POST /questionnaires?dry_run=true`` would store."""

    slug = fields.Str()
    version = fields.Int(metadata={"description": "The version it would be stored as."})
    kind = fields.Str(metadata={"enum": list(KINDS)})
    title = fields.Method("get_title", metadata=_TITLE)
    definition = fields.Dict(metadata=_DEFINITION)
    new_version = fields.Bool(metadata={
        "description": "false: the definition is the same as the latest version, which is kept as it is."})
    id = fields.Int(allow_none=True, metadata={
        "description": "That latest version's id when nothing would change; null for a new version."})

    def get_title(self, obj):
        return obj["definition"].get("title", {})


def definition_json_schema() -> dict:
    """The top of the definition's JSON Schema in OpenAPI 3.0 terms: its keys and their simple
    rules. A question's structure (Draft 2020-12 conditionals) is left to the full schema,
    survey/questionnaires/schema.json, and the API's 422 names what is wrong."""
    full = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

    def shallow(node: dict) -> dict:
        if "$ref" in node:  # "#/$defs/text"
            node = full["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        node = {key: value for key, value in node.items() if not key.startswith("x-")}
        if "items" in node:
            node["items"] = {"type": "object", "description": "A question: see docs/questionnaires.md."}
        return node

    return {"type": "object", "description": "A questionnaire definition: see docs/questionnaires.md.",
            "required": full["required"], "additionalProperties": full["additionalProperties"],
            "properties": {name: shallow(node) for name, node in full["properties"].items()}}


#: a small valid definition, as the OpenAPI document shows it
DEFINITION_EXAMPLE = {
    "slug": "six-month-check", "kind": "alumnus",
    "title": {"fr": "Six mois après", "en": "Six months on"},
    "questions": [
        {"id": "employed", "type": "single", "required": True,
         "label": {"fr": "Êtes-vous en emploi ?", "en": "Are you employed?"},
         "options": [{"value": "yes", "label": {"fr": "Oui", "en": "Yes"}},
                     {"value": "no", "label": {"fr": "Non", "en": "No"}}]},
    ],
}


class DryRunArgs(Schema):
    dry_run = fields.Bool(load_default=False, metadata={
        "description": "true: validate the definition and answer 200 with what would be stored, storing nothing."})


class KindArgs(Schema):
    kind = fields.Str(required=True, validate=validate.OneOf(KINDS))


class PageArgs(Schema):
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE),
                      metadata={"description": "1 for the first; past the last page, an empty page."})
    per_page = fields.Int(load_default=PER_PAGE, validate=validate.Range(min=1, max=MAX_LIST_PER_PAGE))


class PeopleArgs(PageArgs):
    kind = fields.Str(validate=validate.OneOf(KINDS), metadata={"description": "Only people of this kind."})
    email = fields.Str(validate=validate.Length(max=320),
                       metadata={"description": "Only addresses containing this text (any case)."})


class PersonOut(Schema):
    """Someone in the audiences, as imported (and suppressed if they opted out or bounced)."""

    id = fields.Int()
    kind = fields.Str(metadata={"enum": list(KINDS)})
    email = fields.Str()
    first_name = fields.Str()
    last_name = fields.Str()
    locale = fields.Str(metadata={"enum": list(LOCALES),
                                  "description": "The language of their emails and survey pages."})
    timezone = fields.Str(metadata={"description": "IANA name, e.g. Europe/Paris (for quiet hours)."})
    attributes = fields.Dict(keys=fields.Str(), values=fields.Str(),
                             metadata={"description": "Cohort, programme, department… as imported."})
    suppressed = fields.Function(lambda person: person.suppressed_at is not None, metadata={
        "type": "boolean", "description": "true: no email is sent to them any more."})
    suppressed_at = fields.AwareDateTime(allow_none=True)
    suppression_reason = fields.Str(allow_none=True, metadata={
        "description": "Why they are suppressed (opted out, hard bounce…); null when they are not. "
                       "\"erased\": their personal data was erased; the email is a placeholder "
                       "(erased-<id>@erased.invalid) and the names are empty."})


class Rejection(Schema):
    line = fields.Int()
    reason = fields.Str()


class ImportReportOut(Schema):
    created = fields.Int()
    updated = fields.Int()
    rejected = fields.List(fields.Nested(Rejection), metadata={
        "description": f"The first {MAX_REPORTED_REJECTIONS:,} lines that were not stored, in line order, "
                       "each with its reason."})
    rejected_total = fields.Int(metadata={
        "description": "How many lines were not stored in all, listed in `rejected` or not."})


class AudienceIn(Schema):
    kind = fields.Str(required=True, validate=validate.OneOf(KINDS))
    filters = fields.Dict(keys=fields.Str(validate=validate.Length(min=1, max=100)),
                          values=fields.Str(validate=validate.Length(max=500)), load_default=dict)


_CLOCK_TIME = validate.Regexp(r"^[0-9]{1,2}:[0-9]{2}\Z", error="Write a time as HH:MM, e.g. 20:00.")
#: ISO 8601 durations in weeks, days, hours, minutes or seconds (months and years have no fixed
#: length); four digits at most in each part, so that no delay overflows a date.
_REMINDER = validate.Regexp(
    r"^P(?:[0-9]{1,4}W|(?:[0-9]{1,4}D)?(?:T(?:[0-9]{1,4}H)?(?:[0-9]{1,4}M)?(?:[0-9]{1,4}S)?)?)$",
    error="{input!r} is not an ISO 8601 duration in days, hours, minutes or seconds, such as P3D or PT12H.")
_MOMENT = {"description": "RFC 3339 date and time with its offset, e.g. 2031-03-01T09:00:00+01:00.",
           "example": "2031-03-01T09:00:00+01:00"}


class QuietHoursIn(Schema):
    start = fields.Str(required=True, validate=_CLOCK_TIME, metadata={"example": "20:00"})
    end = fields.Str(required=True, validate=_CLOCK_TIME, metadata={"example": "08:00"})

    @validates_schema(skip_on_field_errors=True)
    def _valid_range(self, data, **_):
        try:
            parse_quiet_hours(f"{data['start']}-{data['end']}")
        except ValidationFailed as exc:
            raise ValidationError(str(exc.message)) from None

    @post_load
    def _to_times(self, data, **_):
        return parse_quiet_hours(f"{data['start']}-{data['end']}")


def _campaign_fields(*, partial: bool) -> dict:
    """The settings of a campaign, as POST takes them (required, with defaults) or as PATCH
    takes them (each optional; what is not sent stays as it is)."""
    required = {} if partial else {"required": True}

    def default(value):
        return {} if partial else {"load_default": value}

    return {
        "name": fields.Str(**required, validate=validate.Length(min=1, max=200)),
        "questionnaire_id": fields.Int(**required, strict=True, validate=validate.Range(min=1, max=MAX_ID)),
        "audience": fields.Nested(AudienceIn, **required, metadata={
            "description": "Who it goes to: a kind, and attribute values they must all have."}),
        "privacy": fields.Str(**default("identified"), validate=validate.OneOf(PRIVACY_MODES)),
        "send_at": fields.AwareDateTime(**required, validate=_utc_representable, metadata=_MOMENT),
        "closes_at": fields.AwareDateTime(**required, validate=_utc_representable, metadata=_MOMENT),
        "reminders": fields.List(fields.Str(validate=_REMINDER, metadata={"example": "P3D"}),
                                 **default(list), validate=validate.Length(max=20), metadata={
                                     "description": "Delays after the invitation, e.g. [\"P3D\", \"P7D\"]."}),
        "quiet_hours": fields.Nested(
            QuietHoursIn, allow_none=True,
            metadata={"description": "No reminder is sent between these local times of each recipient "
                                     "(their own time zone). null: reminders at any hour; "
                                     + ("absent: unchanged." if partial else
                                        "absent: the service's default (DEFAULT_QUIET_HOURS).")}),
    }


#: a new campaign, as the OpenAPI document shows it (questionnaire 1: the first one loaded)
CAMPAIGN_EXAMPLE = {
    "name": "Alumni 2024, six months on", "questionnaire_id": 1,
    "audience": {"kind": "alumnus", "filters": {"cohort": "2024"}}, "privacy": "confidential",
    "send_at": "2031-03-01T09:00:00+01:00", "closes_at": "2031-03-31T18:00:00+02:00",
    "reminders": ["P3D", "P7D"], "quiet_hours": {"start": "20:00", "end": "08:00"},
}


# (No Meta.description: apispec would then leave out "additionalProperties": false.)
class CampaignIn(Schema.from_dict(_campaign_fields(partial=False))):
    """A new draft campaign."""


class CampaignPatchIn(Schema.from_dict(_campaign_fields(partial=True))):
    """Settings of a draft to change; what is not sent stays as it is. An audience is
    replaced as a whole (kind and filters)."""


class CampaignsArgs(PageArgs):
    status = fields.Str(validate=validate.OneOf(CAMPAIGN_STATUSES),
                        metadata={"description": "Only campaigns in this status."})


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
    status = fields.Str(metadata={"enum": list(CAMPAIGN_STATUSES)})
    questionnaire_id = fields.Int()
    audience = fields.Method("get_audience", metadata={
        "type": "object",
        "properties": {"kind": {"type": "string", "enum": list(KINDS)},
                       "filters": {"type": "object", "additionalProperties": {"type": "string"}}}})
    privacy = fields.Str(metadata={"enum": list(PRIVACY_MODES)})
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
    message_id = fields.Str(allow_none=True, metadata={
        "description": "The email's Message-ID, from the first recorded attempt on; null before."})

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
    suppression_reason = fields.Str(attribute="person.suppression_reason", allow_none=True, metadata={
        "description": "As a person's: \"erased\" means the email is a placeholder and the names are empty."})
    emails = fields.List(fields.Nested(EmailOut))


class _PageOut(Schema):
    """One page of a list: its items, and where it stands among the others."""

    page = fields.Int()
    per_page = fields.Int()
    total = fields.Int(metadata={"description": "Items matching the filters, on every page."})
    pages = fields.Int(metadata={"description": "How many pages there are (at least 1)."})


class RecipientsPageOut(_PageOut):
    items = fields.List(fields.Nested(RecipientOut))
    total = fields.Int(metadata={"description": "Recipients matching the filters, on every page."})


class CampaignsPageOut(_PageOut):
    items = fields.List(fields.Nested(CampaignOut), metadata={"description": "Newest first."})
    total = fields.Int(metadata={"description": "Campaigns matching the filter, on every page."})


class PeoplePageOut(_PageOut):
    items = fields.List(fields.Nested(PersonOut), metadata={"description": "In the order they were added."})
    total = fields.Int(metadata={"description": "People matching the filters, on every page."})


class FunnelDayOut(Schema):
    """By the end of one day (UTC), how many people had reached each stage."""

    day = fields.Date()
    sent = fields.Int(attribute="totals.sent")
    opened = fields.Int(attribute="totals.opened")
    started = fields.Int(attribute="totals.started")
    completed = fields.Int(attribute="totals.completed")


class FunnelOut(Schema):
    campaign_id = fields.Int()
    days = fields.List(fields.Nested(FunnelDayOut), metadata={
        "description": "Cumulative counts, one item per day from the first invitation sent to today or "
                       "the close (the last 120 days at most); empty until an invitation is sent."})
