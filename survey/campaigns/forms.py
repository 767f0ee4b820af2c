"""The campaign form an admin fills in."""
from __future__ import annotations

from zoneinfo import available_timezones

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from survey.campaigns.services import parse_quiet_hours
from survey.core.errors import ValidationFailed

PRIVACY_CHOICES = [
    ("identified", _l("Identified: answers are linked to the person (needed for claims)")),
    ("confidential", _l("Confidential: linked, but only aggregates are ever shown")),
    ("anonymous", _l("Anonymous: answers are never linked to the person")),
]


class CampaignForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    questionnaire_id = SelectField(_l("Questionnaire version"), coerce=int)
    audience_kind = RadioField(_l("Audience"), choices=[("alumnus", _l("Alumni")), ("employee", _l("Employees"))],
                               default="alumnus")
    audience_filters = TextAreaField(
        _l("Only people with these attributes (optional)"), validators=[Optional(), Length(max=2000)],
        description=_l("One per line, as attribute=value, e.g. programme=Data Analyst"))
    privacy = RadioField(_l("Privacy"), choices=PRIVACY_CHOICES, default="identified")
    timezone = SelectField(_l("Time zone of the times below"))
    send_at = DateTimeLocalField(_l("Send invitations at"), format="%Y-%m-%dT%H:%M",
                                 validators=[DataRequired()])
    closes_at = DateTimeLocalField(_l("Close the survey at"), format="%Y-%m-%dT%H:%M",
                                   validators=[DataRequired()])
    reminders = StringField(
        _l("Reminders (optional)"), validators=[Optional(), Length(max=200)],
        description=_l("Delays after the invitation as ISO 8601 durations, separated by commas: "
                       "P3D, P7D (3 and 7 days) or PT2M (2 minutes, for a demo)"))
    quiet_hours = StringField(
        _l("Quiet hours for reminders (optional)"), validators=[Optional(), Length(max=20)],
        description=_l("No reminder is sent between these times, in each recipient's own time zone: "
                       "HH:MM-HH:MM, e.g. 20:00-08:00. Leave blank to send reminders at any hour."))

    def __init__(self, *args, questionnaires=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.questionnaire_id.choices = [
            (q.id, f"{q.slug} v{q.version} ({q.kind})") for q in questionnaires
        ]
        self.timezone.choices = sorted(available_timezones())

    def validate_audience_filters(self, field):
        for line in self.filter_lines():
            if "=" not in line:
                raise ValidationError(_l("Write each filter as attribute=value."))

    def validate_quiet_hours(self, field):
        try:
            parse_quiet_hours(field.data)
        except ValidationFailed:
            raise ValidationError(_l("Write quiet hours as two different times, HH:MM-HH:MM "
                                     "(24-hour clock), e.g. 20:00-08:00; or leave the field blank.")) from None

    def quiet_hours_value(self):
        """(start, end) local times, or None: reminders at any hour."""
        return parse_quiet_hours(self.quiet_hours.data)

    def filter_lines(self) -> list[str]:
        return [line.strip() for line in (self.audience_filters.data or "").splitlines() if line.strip()]

    def filters(self) -> dict[str, str]:
        pairs = (line.split("=", 1) for line in self.filter_lines())
        return {key.strip(): value.strip() for key, value in pairs}

    def reminder_list(self) -> list[str]:
        return [part.strip() for part in (self.reminders.data or "").split(",") if part.strip()]
