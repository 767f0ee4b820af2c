"""The opt-out pages behind every email's List-Unsubscribe link (RFC 8058).

``/u/<token>`` carries the invitation's opt-out token (``unsubscribe_token``,
40 lower-case hex); only its hash is stored (``Invitation.unsubscribe_hash``).

- ``POST /u/<token>``: the one-click opt-out a mail provider sends for the
  person (their "Unsubscribe" button). No cookie, no CSRF token, no login: the
  secret token is the authority. It stops *all* emails to the person at once,
  answers 200 with a short page, never redirects, and is idempotent.
  RFC 8058 says the body is ``List-Unsubscribe=One-Click``; we are liberal and
  accept any POST body (or none): only a deliberate POST reaches this view
  (link scanners and prefetchers GET), a cross-site form cannot know the token,
  and refusing a sloppy provider would leave someone receiving emails they asked
  to stop.
- ``GET /u/<token>``: the link a person follows from the email or the survey
  page. It changes nothing (scanners follow links); it offers the choices as
  forms with a CSRF token, posting to ``/u/<token>/choose``, and, once opted
  out, the way back (``/u/<token>/resubscribe``).
"""
from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import HiddenField
from wtforms.validators import AnyOf, InputRequired

from survey.campaigns.models import Invitation
from survey.core.tokens import hash_token
from survey.extensions import csrf, db
from survey.mail.suppression import OPTED_OUT, opt_in, opt_out
from survey.respond.token_pages import link_does_not_work, protect_token_pages, speak_to

bp = Blueprint("optout", __name__, template_folder="templates")

#: ``unsubscribe_token`` is 40 lower-case hex; a mail server may upper-case it.
TOKEN = re.compile(r"[0-9a-f]{40}")
ALL, SURVEY = "all", "survey"


class ChoiceForm(FlaskForm):
    """One of the two opt-out choices; each is its own small form in the page,
    with the CSRF token and a hidden ``scope``."""

    scope = HiddenField(validators=[InputRequired(), AnyOf((ALL, SURVEY))])


protect_token_pages(bp)


def find_invitation(token: str) -> Invitation | None:
    token = (token or "").lower()
    if not TOKEN.fullmatch(token):
        return None
    return db.session.scalar(select(Invitation).where(Invitation.unsubscribe_hash == hash_token(token)))


def _load(token: str) -> Invitation | None:
    """The invitation of this token, with the page in the person's language
    (unless they chose one on this site)."""
    invitation = find_invitation(token)
    if invitation is not None:
        speak_to(invitation.stakeholder)
    return invitation


def _not_found():
    return link_does_not_work(_("The link may be incomplete or mistyped. Copy the whole link from your "
                                "email, or reply to that email and ask us to stop writing to you."))


def _state(invitation: Invitation) -> dict:
    person = invitation.stakeholder
    return {
        "everything": person.suppression_reason == OPTED_OUT,
        "this_survey": invitation.opted_out_at is not None,
        # a hard bounce (or any suppression that is not an opt-out): only we can lift it
        "undeliverable": person.suppressed_at is not None and person.suppression_reason != OPTED_OUT,
    }


@bp.post("/u/<token>")
@csrf.exempt
def one_click(token: str):
    """RFC 8058 one-click: stop every email to this person, answer 200, never redirect."""
    invitation = _load(token)
    if invitation is None:
        return _not_found()
    opt_out(invitation, everything=True)
    db.session.commit()
    return render_template("optout/one_click.html", token=token.lower()), 200


@bp.get("/u/<token>")
def confirm(token: str):
    """The choices (or, once opted out, the way back). Changes nothing."""
    invitation = _load(token)
    if invitation is None:
        return _not_found()
    return render_template(
        "optout/confirm.html", token=token.lower(), person=invitation.stakeholder,
        survey_title=invitation.campaign.questionnaire.title(str(get_locale())),
        ALL=ALL, SURVEY=SURVEY, **_state(invitation),
    )


@bp.post("/u/<token>/choose")
def choose(token: str):
    invitation = _load(token)
    if invitation is None:
        return _not_found()
    form = ChoiceForm()
    if not form.validate():  # CSRF failures never get here: CSRFProtect answers 400 first
        return render_template("respond/message.html", title=_("Choose one of the buttons"),
                               message=_("Nothing was changed. Go back and choose one of the buttons.")), 400
    everything = form.scope.data == ALL
    opt_out(invitation, everything=everything)
    db.session.commit()
    flash(_("Done: you will get no more emails from us.") if everything
          else _("Done: you will get no more emails about this survey."), "success")
    # Post/redirect/get: reloading the result page never posts again.
    return redirect(url_for("optout.confirm", token=token.lower()), 303)


@bp.post("/u/<token>/resubscribe")
def resubscribe(token: str):
    invitation = _load(token)
    if invitation is None:
        return _not_found()
    # CSRFProtect has checked the form's token before this view runs.
    opt_in(invitation)
    db.session.commit()
    flash(_("Done: your opt-out is cancelled."), "success")
    return redirect(url_for("optout.confirm", token=token.lower()), 303)
