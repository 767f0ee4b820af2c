"""The survey link: open, save, resume, submit. No account, no cookie needed
beyond the CSRF session."""
from __future__ import annotations

from flask import Blueprint, g, render_template, request, session
from flask_babel import gettext as _

from survey.extensions import db
from survey.respond import services
from survey.core.errors import ValidationFailed
from survey.respond.forms import build_form, extract_answers
from survey.respond.uploads import attach_files

bp = Blueprint("respond", __name__, template_folder="templates")


@bp.after_request
def no_referrer(response):
    # The token is in the URL: never leak it to another site through Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(template: str, status: int = 200, **context):
    return render_template(template, **context), status


@bp.route("/s/<token>", methods=["GET", "POST"])
def survey(token: str):
    invitation = services.find_invitation(token)
    if invitation is None:
        return _page("respond/message.html", 404, title=_("This link does not work"),
                     message=_("The link may be incomplete or mistyped. Copy the whole link from "
                               "your email, or reply to that email to ask for a new one."))
    person = invitation.stakeholder
    if "lang" not in session:
        g.locale = person.locale
    campaign = invitation.campaign
    try:
        services.check_open(invitation)
    except services.AlreadySubmitted:
        return _page("respond/message.html", 409, title=_("Thank you, your answers are in"),
                     message=_("You have already answered this survey; nothing more is needed."))
    except services.CampaignClosed:
        return _page("respond/message.html", 410, title=_("This survey is closed"),
                     message=_("It no longer accepts answers. Thank you for your interest."))

    from flask_babel import get_locale

    locale = str(get_locale())
    definition = campaign.questionnaire.definition
    draft = services.draft_for(invitation)
    saved = draft.answers if draft else {}

    if request.method == "GET":
        services.open_invitation(invitation)
        db.session.commit()
        form = build_form(definition, locale, answers=saved)
        return _page("respond/survey.html", form=form, campaign=campaign, definition=definition,
                     locale=locale, token=token)

    form = build_form(definition, locale, answers=saved)
    action = form.action
    if not form.validate_for(action):
        return _page("respond/survey.html", 422, form=form, campaign=campaign, definition=definition,
                     locale=locale, token=token)
    answers = extract_answers(form, definition)
    try:
        answers.update(attach_files(form, saved))
    except ValidationFailed as exc:
        form[exc.details["field"]].errors.append(exc.message)
        return _page("respond/survey.html", 422, form=form, campaign=campaign, definition=definition,
                     locale=locale, token=token)
    try:
        if action == "save":
            services.save_draft(invitation, answers, locale)
            db.session.commit()
            form = build_form(definition, locale, answers=answers)
            return _page("respond/survey.html", form=form, campaign=campaign, definition=definition,
                         locale=locale, token=token, saved=True)
        services.submit_response(invitation, answers, locale)
        db.session.commit()
    except services.AlreadySubmitted:
        return _page("respond/message.html", 409, title=_("Thank you, your answers are in"),
                     message=_("You have already answered this survey; nothing more is needed."))
    except services.CampaignClosed:
        return _page("respond/message.html", 410, title=_("This survey is closed"),
                     message=_("It closed before your answers were sent, so they were not recorded."))
    return _page("respond/message.html", title=_("Thank you, your answers are in"),
                 message=_("Your answers have been recorded. You can close this page."))
