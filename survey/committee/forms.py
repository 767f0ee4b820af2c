"""The committee's forms: a vote, a declared conflict, the chair's decisions.

Each form on the claim page has its own prefix (``vote-comment``, ``decide-reason``…)
so that several can sit on one page with unique field ids. The services check the
rules again (a comment for a rejection, a reason for a decision); the forms only
spare a round trip.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from survey.core.routing import MAX_ID

VERDICT_CHOICES = [
    SelectChoice("approve", _l("Approve: the evidence shows the outcome")),
    SelectChoice("reject", _l("Reject: the evidence does not show it")),
    SelectChoice("need_evidence", _l("Need evidence: ask the respondent for more")),
    SelectChoice("abstain", _l("Abstain")),
]
DECISION_CHOICES = [
    SelectChoice("proven", _l("Proven")),
    SelectChoice("rejected", _l("Rejected")),
    SelectChoice("inconclusive", _l("Inconclusive")),
]
#: at most this many claims in one bulk decision (two pages of the list)
BULK_MAX = 100


class VoteForm(FlaskForm):
    verdict = RadioField(_l("Your verdict"), choices=VERDICT_CHOICES,
                         validators=[DataRequired(_l("Choose a verdict."))])
    comment = TextAreaField(
        _l("Comment"), validators=[Optional(), Length(max=5000)],
        description=_l("Required when you reject or ask for evidence: the chair and the respondent act on it."))


class ConflictForm(FlaskForm):
    reason = TextAreaField(
        _l("Why (optional)"), validators=[Optional(), Length(max=2000)],
        description=_l("Only the chair and the auditor read it. You will not be given this person's claims again."))


class DecideForm(FlaskForm):
    decision = RadioField(_l("Decision"), choices=DECISION_CHOICES,
                          validators=[DataRequired(_l("Choose a decision."))])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Give the reason for the decision.")),
                                                     Length(max=5000)])


class RevokeForm(FlaskForm):
    reason = TextAreaField(_l("Reason for revoking"),
                           validators=[DataRequired(_l("Give the reason for revoking the claim.")),
                                       Length(max=5000)])


class ReassignForm(FlaskForm):
    review_id = SelectField(_l("Take the claim from"), coerce=int)
    to = SelectField(_l("Give it to"), coerce=str)

    def __init__(self, *args, reviews=(), candidates=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.review_id.choices = [SelectChoice(review.id, review.reviewer.name or review.reviewer.email)
                                  for review in reviews]
        self.to.choices = [SelectChoice("", _l("The next available member"))] + [
            SelectChoice(str(user.id), user.name or user.email) for user in candidates]

    def target_id(self) -> int | None:
        return int(self.to.data) if self.to.data else None


class BulkDecideForm(FlaskForm):
    claim_ids = SelectMultipleField(_l("Claims"), coerce=int, validate_choice=False)
    decision = RadioField(_l("Decision"), choices=DECISION_CHOICES,
                          validators=[DataRequired(_l("Choose a decision."))])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Give the reason for the decision.")),
                                                     Length(max=5000)])

    def validate_claim_ids(self, field):
        if not field.data:
            raise ValidationError(_l("Select at least one claim."))
        if len(field.data) > BULK_MAX:
            raise ValidationError(_l("Select at most %(num)d claims at once.", num=BULK_MAX))
        if any(not 1 <= claim_id <= MAX_ID for claim_id in field.data):
            raise ValidationError(_l("Select claims from the list."))
