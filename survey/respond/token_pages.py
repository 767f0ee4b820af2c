"""What every page reached by a secret link shares (survey, opt-out, evidence pages):
no Referer and no cache, the person's own language, one "link does not work" page."""
from __future__ import annotations

from flask import Blueprint, g, render_template, session
from flask_babel import gettext as _


def protect_token_pages(bp: Blueprint) -> None:
    """The token is in the URL: never leak it through Referer, never keep the page in a cache."""

    @bp.after_request
    def _no_referrer(response):
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response


def speak_to(person) -> None:
    """The page in the person's language, unless they chose one on this site."""
    if "lang" not in session:
        g.locale = person.locale


def link_does_not_work(hint: str | None = None):
    """The 404 page of an unknown or tampered token; ``hint`` says what to do instead."""
    return render_template(
        "respond/message.html", title=_("This link does not work"),
        message=hint or _("The link may be incomplete or mistyped. Copy the whole link from your email, "
                          "or reply to that email to ask for a new one."),
    ), 404
