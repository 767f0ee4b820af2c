"""The report's forms: which campaigns (a GET form), publish, draw a sample, check a claim."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from survey.reports.document import DEFAULT_BREAKDOWNS, Selection
from survey.reports.sampling import MAX_SAMPLE

#: an attribute name as the importer stores it
ATTRIBUTE = r"^[A-Za-z0-9_\-]{1,60}(\s*,\s*[A-Za-z0-9_\-]{1,60}){0,5}$"


class SelectionForm(FlaskForm):
    """One campaign, or the campaigns sent in a period; the groups to break down by."""

    campaign = SelectField(_l("Campaign"), coerce=lambda v: int(v) if v else None, validate_choice=True)
    start = DateField(_l("Sent from"), validators=[Optional()])
    end = DateField(_l("Sent until (inclusive)"), validators=[Optional()])
    by = StringField(_l("Break down by"), default=", ".join(DEFAULT_BREAKDOWNS),
                     validators=[Optional(), Regexp(ATTRIBUTE, message=_l("Attribute names, separated by commas."))],
                     description=_l("Imported attributes, separated by commas: programme, cohort, department…"))

    def __init__(self, *args, campaigns=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign.choices = [SelectChoice("", _l("— or choose a period below —"))] + [
            SelectChoice(str(c.id), c.name) for c in campaigns]

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        has_period = bool(self.start.data or self.end.data)
        if (self.campaign.data is None) != has_period:
            self.campaign.errors.append(_l("Choose a campaign, or a period (both days), not both."))
            return False
        if has_period and not (self.start.data and self.end.data):
            (self.end if self.start.data else self.start).errors.append(_l("A period needs both days."))
            return False
        if has_period and self.start.data > self.end.data:
            self.end.errors.append(_l("The period must end on or after its first day."))
            return False
        return True

    def selection(self) -> Selection:
        names = tuple(n.strip() for n in (self.by.data or "").split(",") if n.strip()) or DEFAULT_BREAKDOWNS
        return Selection(campaign_id=self.campaign.data, start=self.start.data, end=self.end.data,
                         breakdowns=tuple(dict.fromkeys(names)))


class ReportForm(SelectionForm):
    """The report page's choice: a GET form, bookmarkable, so no CSRF token."""

    class Meta:
        csrf = False


class PublishForm(SelectionForm):
    title = StringField(_l("Title"), validators=[DataRequired(_l("Give the report a title.")), Length(max=200)],
                        description=_l("As readers will see it, e.g. “Impact report 2026”."))
    reason = TextAreaField(_l("What this correction changes, and why"), validators=[Optional(), Length(max=5000)])


class SampleForm(FlaskForm):
    size = IntegerField(_l("Claims to draw"), default=20,
                        validators=[DataRequired(_l("Say how many claims to draw.")),
                                    NumberRange(1, MAX_SAMPLE, _l("From 1 to %(max)d claims.", max=MAX_SAMPLE))])


CHECK_CHOICES = [
    SelectChoice("confirmed", _l("Confirmed: the evidence and the decision hold")),
    SelectChoice("not_confirmed", _l("Not confirmed: the evidence does not support the decision")),
]


class CheckForm(FlaskForm):
    verdict = RadioField(_l("Your finding"), choices=CHECK_CHOICES,
                         validators=[DataRequired(_l("Choose a finding."))])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=5000)],
                         description=_l("Required when not confirmed: what is missing or wrong."))

    def validate_note(self, field):
        if self.verdict.data == "not_confirmed" and not (field.data or "").strip():
            raise ValidationError(_l("Say why the claim is not confirmed."))
