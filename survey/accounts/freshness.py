"""Fresh login: approving, rejecting, revoking and publishing need a recent password.

The time of the last password check (login, or "confirm your password") is kept in the
signed session; past ``FRESH_LOGIN_MINUTES`` the decision is refused, nothing changes,
and the user is sent to confirm their password, then back to the page they were on
(a page to read again, never the POST replayed). Flask-Login's own freshness (``_fresh``,
false after a remember-me restore) is required too, and ``confirm_login`` renews it.
"""
from __future__ import annotations

import time
from functools import wraps

from flask import current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import confirm_login, login_fresh

#: when the password was last checked in this session (seconds since the epoch)
CHECKED_AT = "_password_checked_at"


def mark_fresh() -> None:
    """The password has just been checked (a login or a confirmation)."""
    confirm_login()
    session[CHECKED_AT] = int(time.time())


def login_is_fresh() -> bool:
    checked_at = session.get(CHECKED_AT)
    if not login_fresh() or not isinstance(checked_at, int):
        return False
    age = time.time() - checked_at
    return 0 <= age <= current_app.config["FRESH_LOGIN_MINUTES"] * 60


def _here() -> str:
    return request.full_path if request.query_string else request.path


def fresh_login_required(back=None):
    """Under a login check (``allowed``): a stale login may not run the view.

    ``back(**view_kwargs)`` names the page to return to after a refused POST (by default
    the same URL, for a view that also answers GET)."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if login_is_fresh():
                return view(*args, **kwargs)
            if request.method in ("GET", "HEAD"):
                target = _here()
                flash(_("Please confirm your password to continue: your last login was a while ago."), "info")
            else:
                target = back(**kwargs) if back else _here()
                flash(_("Nothing was changed: this decision needs a recent login. Confirm your password, "
                        "then make the decision again."), "error")
            return redirect(url_for("accounts.confirm_password", next=target))

        return wrapped

    return decorator
