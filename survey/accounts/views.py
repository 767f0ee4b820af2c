"""Login and logout, password confirmation (fresh login) and password change."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from survey.accounts.forms import ChangePasswordForm, ConfirmPasswordForm, LoginForm
from survey.accounts.freshness import mark_fresh
from survey.accounts.ratelimits import password_attempts_limited
from survey.accounts.services import authenticate, verify_password
from survey.accounts.services import change_password as change_own_password
from survey.core.errors import ServiceError
from survey.core.redirects import safe_next
from survey.extensions import db, login_manager

bp = Blueprint("accounts", __name__, template_folder="templates")
#: where Flask-Login's ``needs_refresh`` sends a user (survey.accounts.freshness)
login_manager.refresh_view = "accounts.confirm_password"

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
@password_attempts_limited
def login():
    if current_user.is_authenticated:
        return redirect(_home_url())
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is None:
            flash(_("Wrong email or password."), "error")
        else:
            # the language of the login page (chosen there, else the browser's): their emails' too
            user.locale, chosen = str(get_locale()), session.get("lang")
            db.session.commit()  # keeps a rehashed password, and the language
            session.clear()  # a fresh session on login: nothing from before carries over...
            if chosen:
                session["lang"] = chosen  # ...but a language chosen on the login page
            login_user(user)
            mark_fresh()
            return redirect(safe_next(request.args.get("next")) or _home_url())
    return render_template("accounts/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    current_user.end_sessions()  # this session and every other one of this user
    db.session.commit()
    logout_user()
    session.clear()
    flash(_("You are logged out."), "info")
    return redirect(url_for("accounts.login"))


@bp.route("/confirm-password", methods=["GET", "POST"])
@login_required
@password_attempts_limited
def confirm_password():
    """"Confirm your password": renews the login's freshness, then back to ``next``."""
    form = ConfirmPasswordForm()
    if form.validate_on_submit():
        if verify_password(current_user, form.password.data):
            db.session.commit()  # keeps a rehashed password
            mark_fresh()
            flash(_("Your password is confirmed."), "success")
            return redirect(safe_next(request.args.get("next")) or _home_url())
        form.password.errors.append(_("Wrong password."))
    return render_template("accounts/confirm_password.html", form=form), 200 if not form.errors else 400


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@password_attempts_limited
def change_password():
    """Change one's own password; every other session of the user ends, this one stays."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            change_own_password(user, form.current_password.data, form.new_password.data)
        except ServiceError as exc:
            from survey.web import show_refusal

            show_refusal(form, exc)
        else:
            db.session.commit()
            login_user(user)  # this session now holds the new session token
            mark_fresh()
            flash(_("Your password is changed. Your other sessions are logged out."), "success")
            return redirect(_home_url())
    return render_template("accounts/change_password.html", form=form), 200 if not form.errors else 400


