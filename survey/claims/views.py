"""The respondent's evidence page behind ``/e/<token>`` (the link in the evidence-request email).

The token is derived from the claim's nonce (``services.claim_token``); only its
hash is stored. Opening the page changes nothing. While the committee still has
work to do (submitted, in review, needs evidence) the respondent may add a file,
a link or an employer contact, or withdraw the outcome after a confirmation
page. Every POST carries a CSRF token (CSRFProtect answers 400 without one),
makes one service call, commits, then redirects (post/redirect/get). The page
never shows the committee's votes or who reviews the claim.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.datastructures import FileStorage
from wtforms import TextAreaField, URLField
from wtforms.validators import InputRequired, Length, ValidationError

from survey.claims import services
from survey.claims.models import Claim
from survey.committee.claim_page import detail_rows
from survey.core.errors import ValidationFailed
from survey.extensions import db
from survey.respond.token_pages import link_does_not_work, protect_token_pages, speak_to
from survey.respond.uploads import store_upload
from workflows.claims import OPEN

bp = Blueprint("evidence", __name__, template_folder="templates")

#: ``claim_token`` is URL-safe base64 of 32 bytes: 43 characters. Anything else is
#: refused before the database is asked.
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")

#: what each state means, for the person who claimed the outcome
STATE_WORDS = {
    "submitted": _l("Received. The impact committee will review it soon."),
    "in_review": _l("The impact committee is reviewing it."),
    "needs_evidence": _l("The impact committee needs more evidence before it can decide. "
                         "You can add it below."),
    "proven": _l("Proven: the impact committee checked the evidence and confirmed this outcome. "
                 "It counts in our impact report."),
    "rejected": _l("The impact committee could not confirm this outcome with the evidence given, "
                   "so it is not counted in our impact report."),
    "inconclusive": _l("The impact committee could not reach a conclusion on this outcome, "
                       "so it is not counted in our impact report."),
    "revoked": _l("This outcome was confirmed at first, then the committee withdrew its confirmation. "
                  "It is no longer counted in our impact report."),
    "withdrawn": _l("You withdrew this outcome. It is not counted in our impact report, "
                    "and the committee will not review it."),
}


def _https_address(_form, field) -> None:
    parts = urlsplit((field.data or "").strip())
    if parts.scheme.lower() != "https" or not parts.hostname or re.search(r"\s", field.data.strip()):
        raise ValidationError(_("Give a web address starting with https://."))


class FileEvidenceForm(FlaskForm):
    file = FileField(_l("A document (PDF, PNG or JPEG)"), validators=[FileRequired(_l("Choose a file."))],
                     render_kw={"accept": ".pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg"})


class LinkEvidenceForm(FlaskForm):
    url = URLField(_l("A web link (https://…)"),
                   description=_l("For example your public professional profile, a company register entry "
                                  "or an announcement."),
                   validators=[InputRequired(_l("Give a web address starting with https://.")),
                               Length(max=2000), _https_address],
                   render_kw={"autocomplete": "url", "spellcheck": "false"})


class ContactEvidenceForm(FlaskForm):
    contact = TextAreaField(_l("An employer contact"),
                            description=_l("Their name, role, and an email address or phone number. "
                                           "We will only use it to confirm this outcome."),
                            validators=[InputRequired(_l("Give the contact's name and an email or phone number.")),
                                        Length(max=1000)])


protect_token_pages(bp)


def _load(token: str) -> Claim | None:
    """The claim of this link, with the page in the claimant's language (unless they
    chose one on this site)."""
    if not TOKEN.fullmatch(token or ""):
        return None
    claim = services.find_claim_by_token(token)
    if claim is not None:
        speak_to(claim.claimant)
    return claim


def _not_found():
    return link_does_not_work()


def _closed(claim: Claim):
    """A POST to a claim the respondent can no longer change: nothing changes."""
    return _page(claim, token=None, status=409, refused=True)


def _attribution(claim: Claim) -> tuple[int, int | None] | None:
    """(the respondent's rating of the course's part, the scale's top) if they gave one."""
    if claim.attribution is None:
        return None
    for question in claim.campaign.questionnaire.definition.get("questions", []):
        if question.get("id") == "attribution":
            return claim.attribution, question.get("max")
    return claim.attribution, None


def _page(claim: Claim, token: str | None, status: int = 200, refused: bool = False, **forms):
    """The claim, its evidence, and (while it is open and ``token`` is given) the forms."""
    editable = claim.state in OPEN and token is not None
    return render_template(
        "claims/evidence.html", claim=claim, token=token, editable=editable, refused=refused,
        attribution=_attribution(claim),
        max_mb=f"{current_app.config['EVIDENCE_MAX_BYTES'] / (1024 * 1024):g}",
        state_words=STATE_WORDS[claim.state],
        # as the committee reads them: the questions' labels, dates and numbers in the
        # respondent's language ("30 sept. 2024", "12,5 %")
        details=detail_rows(claim.campaign.questionnaire.definition, claim.details, str(get_locale())),
        asked=services.what_the_committee_asked(claim),
        file_form=forms.get("file_form") or FileEvidenceForm(formdata=None),
        link_form=forms.get("link_form") or LinkEvidenceForm(formdata=None),
        contact_form=forms.get("contact_form") or ContactEvidenceForm(formdata=None),
    ), status


@bp.get("/e/<token>")
def show(token: str):
    claim = _load(token)
    if claim is None:
        return _not_found()
    return _page(claim, token)


@bp.post("/e/<token>/file")
def add_file(token: str):
    claim = _load(token)
    if claim is None:
        return _not_found()
    if claim.state not in OPEN:
        return _closed(claim)
    form = FileEvidenceForm()
    if not form.validate():
        return _page(claim, token, 422, file_form=form)
    upload = form.file.data
    if not isinstance(upload, FileStorage):  # pragma: no cover - FileRequired has refused it
        return _page(claim, token, 422, file_form=form)
    try:
        stored = store_upload(upload)  # checks the type by content and the size; refuses before storing
    except ValidationFailed as exc:
        form.file.errors.append(exc.message)
        return _page(claim, token, 422, file_form=form)
    services.add_file_evidence(claim, stored, actor="respondent")
    db.session.commit()
    flash(_("Thank you: your document “%(name)s” is added.", name=stored["filename"]), "success")
    return redirect(url_for("evidence.show", token=token), 303)


@bp.post("/e/<token>/link")
def add_link(token: str):
    claim = _load(token)
    if claim is None:
        return _not_found()
    if claim.state not in OPEN:
        return _closed(claim)
    form = LinkEvidenceForm()
    if not form.validate():
        return _page(claim, token, 422, link_form=form)
    try:
        services.add_link_evidence(claim, form.url.data, actor="respondent")
    except ValidationFailed:
        db.session.rollback()
        form.url.errors.append(_("Give a web address starting with https://."))
        return _page(claim, token, 422, link_form=form)
    db.session.commit()
    flash(_("Thank you: your link is added."), "success")
    return redirect(url_for("evidence.show", token=token), 303)


@bp.post("/e/<token>/contact")
def add_contact(token: str):
    claim = _load(token)
    if claim is None:
        return _not_found()
    if claim.state not in OPEN:
        return _closed(claim)
    form = ContactEvidenceForm()
    if not form.validate() or not form.contact.data.strip():
        if not form.contact.errors:
            form.contact.errors.append(_("Give the contact's name and an email or phone number."))
        return _page(claim, token, 422, contact_form=form)
    services.add_contact_evidence(claim, form.contact.data, actor="respondent")
    db.session.commit()
    flash(_("Thank you: the employer contact is added."), "success")
    return redirect(url_for("evidence.show", token=token), 303)


@bp.get("/e/<token>/withdraw")
def confirm_withdraw(token: str):
    """The confirmation step; changes nothing."""
    claim = _load(token)
    if claim is None:
        return _not_found()
    if claim.state not in OPEN:
        return redirect(url_for("evidence.show", token=token), 303)
    return render_template("claims/evidence_withdraw.html", claim=claim, token=token)


@bp.post("/e/<token>/withdraw")
def withdraw(token: str):
    claim = _load(token)
    if claim is None:
        return _not_found()
    if claim.state not in OPEN:
        return _closed(claim)
    # CSRFProtect has checked the form's token before this view runs.
    services.withdraw(claim)
    db.session.commit()
    flash(_("Done: you withdrew this outcome."), "success")
    return redirect(url_for("evidence.show", token=token), 303)
