"""Login and logout."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from survey.accounts.forms import LoginForm
from survey.accounts.services import authenticate
from survey.extensions import db

bp = Blueprint("accounts", __name__, template_folder="templates")

HOME_BY_ROLE = {"admin": "campaigns.index", "committee": "committee.queue", "chair": "committee.claims",
                "auditor": "committee.claims"}


def _home_url() -> str:
    return url_for(HOME_BY_ROLE.get(getattr(current_user, "role", ""), "accounts.home"))


@bp.route("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login"))
    if current_user.role in HOME_BY_ROLE:
        return redirect(_home_url())
    return render_template("accounts/home.html")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_home_url())
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is None:
            flash(_("Wrong email or password."), "error")
        else:
            db.session.commit()  # keeps a rehashed password
            session.clear()  # a fresh session on login: nothing from before carries over
            login_user(user)
            return redirect(_safe_next(request.args.get("next")) or _home_url())
    return render_template("accounts/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    session.clear()
    flash(_("You are logged out."), "info")
    return redirect(url_for("accounts.login"))


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never an absolute URL an attacker chose."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
