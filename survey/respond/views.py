"""The survey link: open, save, resume, submit. No account, no cookie needed
beyond the CSRF session."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from survey.campaigns.services import unsubscribe_token
from survey.core.errors import ValidationFailed
from survey.extensions import db
from survey.respond import services
from survey.respond.forms import ask_for_files_again, asked_in, build_form, extract_answers, questions_not_seen
from survey.respond.token_pages import link_does_not_work, protect_token_pages, speak_to
from survey.respond.uploads import attach_files, forget_unnamed

bp = Blueprint("respond", __name__, template_folder="templates")


protect_token_pages(bp)


def _page(template: str, status: int = 200, **context):
    return render_template(template, **context), status


def _message(status: int, title: str, message: str):
    return _page("respond/message.html", status, title=title, message=message)


def _already_answered():
    return _message(409, _("Thank you, your answers are in"),
                    _("You have already answered this survey; nothing more is needed."))


def refill_expired_survey(token: str):
    """The survey page again, filled with what an expired form sent (see ``survey``):
    what the CSRF error handler shows for a survey link, instead of losing the answers."""
    return _survey(token, expired=True)


@bp.route("/s/<token>", methods=["GET", "POST"])
def survey(token: str):
    return _survey(token)


def _survey(token: str, expired: bool = False):
    invitation = services.find_invitation(token)
    if invitation is None:
        return link_does_not_work()
    person = invitation.stakeholder
    speak_to(person)
    campaign = invitation.campaign
    try:
        services.check_open(invitation)
    except services.AlreadySubmitted:
        return _already_answered()
    except services.CampaignClosed:
        return _message(410, _("This survey is closed"),
                        _("It no longer accepts answers. Thank you for your interest."))

    locale = str(get_locale())
    definition = asked_in(campaign.questionnaire.definition, campaign.privacy)
    draft = invitation.draft
    saved = draft.answers if draft else {}

    def show_form(form, status=200, **extra):
        return _page("respond/survey.html", status, form=form, campaign=campaign,
                     definition=definition, locale=locale, token=token,
                     unsubscribe_token=unsubscribe_token(invitation.token_nonce), **extra)

    if request.method == "GET":
        services.open_invitation(invitation)
        # Rendered before the commit, which expires what the page reads: read after it, the
        # invitation came back from the database with its person, campaign and questionnaire
        # (a fifth of the page's time, for values already in hand).
        page = show_form(build_form(definition, locale, answers=saved),
                         saved=request.args.get("saved") == "1" and draft is not None)
        db.session.commit()
        return page

    form = build_form(definition, locale, answers=saved)
    if expired:
        # The page's CSRF token no longer matches (the browser dropped its session cookie,
        # say, while the phone slept): nothing is saved, as CSRF requires, but the answers
        # come back filled in, with a token that works, to be sent again.
        form.validate_for("save")  # what shows, given the answers; their own errors too
        form.csrf_token.errors = []
        ask_for_files_again(form)
        return show_form(form, 400, expired=True)
    action = form.action
    if not form.validate_for(action):
        ask_for_files_again(form)
        return show_form(form, 422)
    if action == "submit" and (unseen := questions_not_seen(form)):
        # Without the page's script, follow-ups show only once the page comes back: the
        # answers just given open questions the respondent has not seen. Submitting is final,
        # so the page comes back first, with them.
        ask_for_files_again(form)
        return show_form(form, 200, follow_ups=unseen)
    answers = extract_answers(form, definition)
    try:
        answers.update(attach_files(form, saved))
    except ValidationFailed as exc:
        form[exc.details["field"]].errors.append(exc.message)
        ask_for_files_again(form)
        return show_form(form, 422)
    try:
        if action == "save":
            services.save_draft(invitation, answers, locale)
            db.session.commit()
            forget_unnamed(saved, answers, recorded=True)
            # Post/redirect/get: reloading the page never re-sends the answers.
            return redirect(url_for("respond.survey", token=token, saved=1), 303)
        services.submit_response(invitation, answers, locale)
        db.session.commit()
        forget_unnamed(saved, answers, recorded=True)
    except services.AlreadySubmitted:
        db.session.rollback()
        forget_unnamed(saved, answers, recorded=False)
        return _already_answered()
    except services.CampaignClosed:
        db.session.rollback()
        forget_unnamed(saved, answers, recorded=False)
        return _message(410, _("This survey is closed"),
                        _("It closed before your answers were sent, so they were not recorded."))
    return _message(200, _("Thank you, your answers are in"),
                    _("Your answers have been recorded. You can close this page."))
