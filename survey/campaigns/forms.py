"""The campaign wizard's three steps: basics, audience, timing (each also edits a draft)."""
from __future__ import annotations

import functools
from datetime import timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import isodate
from flask_babel import format_timedelta
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from survey.campaigns.services import parse_quiet_hours
from survey.core.errors import ValidationFailed
from survey.web import LABELS

PRIVACY_CHOICES = [
    SelectChoice("identified", _l("Identified: answers are linked to the person (needed for claims)")),
    SelectChoice("confidential", _l("Confidential: linked, but only aggregates are ever shown; no claims, "
                                    "so no evidence is asked")),
    SelectChoice("anonymous", _l("Anonymous: answers are never linked to the person; no claims, so no "
                                 "evidence is asked")),
    # (confidential and anonymous campaigns make no claims, so they ask for no evidence:
    # survey.respond.forms.asked_in)
]


class BasicsForm(FlaskForm):
    """Step 1: what is asked, of whom, with what privacy."""
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)],
                       description=_l("Seen by staff only (campaign list, reports, audit trail); respondents see "
                                      "the questionnaire's title. E.g. Alumni 2026"))
    audience_kind = RadioField(_l("Who is it for?"), choices=[SelectChoice("alumnus", _l("Alumni")),
                                                               SelectChoice("employee", _l("Employees"))],
                               default="alumnus")
    questionnaire_id = SelectField(_l("Questionnaire version"), coerce=int,
                                   description=_l("It must be written for the audience chosen above."))
    privacy = RadioField(_l("Privacy"), choices=PRIVACY_CHOICES, default="identified")

    def __init__(self, *args, questionnaires=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.questionnaire_id.choices = [
            SelectChoice(q.id, f"{q.slug} v{q.version} ({LABELS.get(q.kind, q.kind)})") for q in questionnaires
        ]


class AudienceForm(FlaskForm):
    """Step 2: which people of that kind."""
    audience_filters = TextAreaField(
        _l("Only people with these attributes (optional)"), validators=[Optional(), Length(max=2000)],
        description=_l("One per line, as attribute=value, e.g. programme=Data Analyst. Leave blank for everyone."))

    def validate_audience_filters(self, field):
        for line in self.filter_lines():
            if "=" not in line:
                raise ValidationError(_l("Write each filter as attribute=value."))

    def filter_lines(self) -> list[str]:
        return [line.strip() for line in (self.audience_filters.data or "").splitlines() if line.strip()]

    def filters(self) -> dict[str, str]:
        pairs = (line.split("=", 1) for line in self.filter_lines())
        return {key.strip(): value.strip() for key, value in pairs}


@functools.cache
def time_zones() -> tuple[str, ...]:
    """The zones to offer: places ("Europe/Paris") and UTC, not the database's odd entries
    ("Factory", "localtime", "posixrules", "EST5EDT")."""
    return tuple(sorted(name for name in available_timezones()
                        if name == "UTC" or ("/" in name and not name.startswith(("Etc/", "posix/", "right/")))))


class TimingForm(FlaskForm):
    """Step 3: when the invitations and reminders go, and when the survey closes."""
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = [SelectChoice(name, name) for name in time_zones()]

    def validate_quiet_hours(self, field):
        try:
            parse_quiet_hours(field.data)
        except ValidationFailed:
            raise ValidationError(_l("Write quiet hours as two different times, HH:MM-HH:MM "
                                     "(24-hour clock), e.g. 20:00-08:00; or leave the field blank.")) from None

    def validate_send_at(self, field):
        self._exists_once(field)

    def validate_closes_at(self, field):
        self._exists_once(field)

    def _exists_once(self, field) -> None:
        """A local time the clocks skip (spring) or pass twice (autumn) names no moment, or
        two: refused, rather than silently moved an hour."""
        if field.data is None or self.timezone.data not in available_timezones():
            return
        zone = ZoneInfo(self.timezone.data)
        first, second = field.data.replace(tzinfo=zone, fold=0), field.data.replace(tzinfo=zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return
        back = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
        if back != field.data:
            raise ValidationError(_l("%(time)s does not exist in %(zone)s: the clocks go forward then. "
                                     "Choose another time.", time=f"{field.data:%H:%M}", zone=zone.key))
        raise ValidationError(_l("%(time)s happens twice in %(zone)s: the clocks go back then. "
                                 "Choose another time, a little before or after.",
                                 time=f"{field.data:%H:%M}", zone=zone.key))

    def validate_reminders(self, field):
        """A reminder that would come after the close could never be sent: refused here,
        where the admin can change it, rather than left silently unsent."""
        if not (self.send_at.data and self.closes_at.data) or self.closes_at.data <= self.send_at.data:
            return  # the times' own checks speak
        window = self.closes_at.data - self.send_at.data
        for text in self.reminder_list():
            try:
                delay = isodate.parse_duration(text)
            except (isodate.ISO8601Error, ValueError, OverflowError):
                continue  # the service says what is wrong with it
            if isinstance(delay, timedelta) and delay >= window:
                raise ValidationError(_l(
                    "The reminder %(reminder)s would come after the survey closes (it is open for %(open)s): "
                    "make it sooner, or close later.", reminder=text, open=format_timedelta(window)))

    def quiet_hours_value(self):
        """(start, end) local times, or None: reminders at any hour."""
        return parse_quiet_hours(self.quiet_hours.data)

    def reminder_list(self) -> list[str]:
        return [part.strip() for part in (self.reminders.data or "").split(",") if part.strip()]
