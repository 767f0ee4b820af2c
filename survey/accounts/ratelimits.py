"""Rate limits (Flask-Limiter, counters in Redis when the app has one).

Two kinds of bucket:

* **password attempts**: failed logins, password confirmations and password changes,
  counted per client address (``RATELIMIT_LOGIN_PER_ADDRESS``) and per account tried,
  whatever the address (``RATELIMIT_LOGIN_PER_ACCOUNT``): guessing one account from
  many addresses and many accounts from one address are both stopped. Only failures
  count (a success redirects), so a team behind one address is not locked out by
  its own logins; once a bucket is full, even the right password waits.
* **survey links**: every page of a survey, opt-out or evidence link, per link
  (``RATELIMIT_SURVEY_LINKS``), generous for a person answering; and per client address
  (``RATELIMIT_SURVEY_ADDRESS``), a ceiling far above it: the employees of one company
  answer from behind one address, and must not use up each other's bucket (a link's
  256-bit token cannot be guessed, so the address ceiling only brakes a flood). The
  RFC 8058 one-click opt-out is exempt: mailbox providers post those from a few shared
  servers, and refusing one would lose a person's opt-out.

The address is the connection's, or X-Forwarded-For's only behind a configured
ProxyFix (``PROXY_FIX_X_FOR``): a client cannot pick its own bucket.
"""
from __future__ import annotations

import hashlib

from flask import Flask, current_app, request
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from survey.extensions import limiter

PASSWORD_ADDRESS_SCOPE = "password-attempts-address"
PASSWORD_ACCOUNT_SCOPE = "password-attempts-account"
SURVEY_LINKS_SCOPE = "survey-links"
SURVEY_ADDRESS_SCOPE = "survey-links-address"


def client_address() -> str:
    return "address:" + (request.remote_addr or "unknown")


def survey_link() -> str:
    """The link a survey, opt-out or evidence page was opened with; its hash, since the
    counters' keys are stored (in Redis) and a link is a secret."""
    token = (request.view_args or {}).get("token")
    if not token:
        return client_address()
    return "link:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def attempted_account() -> str:
    """The account a password is tried on: the logged-in user's (confirming or changing
    their password), else the login form's email. Never a form's email for a logged-in
    user: an extra "email" field, new at each try, would give each guess a fresh bucket."""
    from survey.accounts.services import normalise_email

    if current_user.is_authenticated:
        email = current_user.email
    else:
        email = request.form.get("email")
    return "account:" + normalise_email(email or "")


def _failed_attempt(response) -> bool:
    """A password form that did not redirect was refused (wrong password, bad form);
    a request the limiter itself refused (429) costs nothing more."""
    return response.status_code not in (301, 302, 303, 429)


def _password_refusal() -> str:
    return _("Too many failed attempts. For the safety of the account, wait a few minutes "
             "before trying again.")


def _survey_address_refusal() -> str:
    return _("Too many requests from your connection. Please wait a minute, then reload the page: "
             "answers you saved are kept.")


def _survey_link_refusal() -> str:
    return _("Too many requests with this link. Please wait a minute, then reload the page: "
             "answers you saved are kept.")


def password_attempts_limited(view):
    """Limit the POSTs of a password form (both buckets); GETs are free."""
    common = {"methods": ["POST"], "deduct_when": _failed_attempt, "error_message": _password_refusal}
    view = limiter.shared_limit(lambda: current_app.config["RATELIMIT_LOGIN_PER_ADDRESS"],
                                scope=PASSWORD_ADDRESS_SCOPE, key_func=client_address, **common)(view)
    view = limiter.shared_limit(lambda: current_app.config["RATELIMIT_LOGIN_PER_ACCOUNT"],
                                scope=PASSWORD_ACCOUNT_SCOPE, key_func=attempted_account, **common)(view)
    return view


def _one_click_opt_out() -> bool:
    return request.endpoint == "optout.one_click"


_limited_blueprints: set[str] = set()


def limit_survey_links(*blueprints) -> None:
    """Shared buckets per link and per address over every page of these blueprints (once each:
    the limiter is module-wide, while apps may be created more than once)."""
    for bp in blueprints:
        if bp.name in _limited_blueprints:
            continue
        limiter.shared_limit(lambda: current_app.config["RATELIMIT_SURVEY_LINKS"], scope=SURVEY_LINKS_SCOPE,
                             key_func=survey_link, exempt_when=_one_click_opt_out,
                             error_message=_survey_link_refusal)(bp)
        limiter.shared_limit(lambda: current_app.config["RATELIMIT_SURVEY_ADDRESS"], scope=SURVEY_ADDRESS_SCOPE,
                             key_func=client_address, exempt_when=_one_click_opt_out,
                             error_message=_survey_address_refusal)(bp)
        _limited_blueprints.add(bp.name)


def init_rate_limits(app: Flask) -> None:
    """Bind the limiter. Its hooks are always installed; ``RATELIMIT_ENABLED`` (default:
    on, off under TESTING) switches them, so a test can turn the limits on for itself."""
    from survey.claims.views import bp as evidence_bp
    from survey.mail.optout_views import bp as optout_bp
    from survey.respond.views import bp as respond_bp

    hops = app.config.get("PROXY_FIX_X_FOR", 0)
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)
    enabled = app.config.get("RATELIMIT_ENABLED")
    if enabled is None:
        enabled = not app.testing
    app.config["RATELIMIT_ENABLED"] = True
    # Redis unreachable: count in this process's memory rather than refuse every page.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    limiter.init_app(app)
    limiter.enabled = app.config["RATELIMIT_ENABLED"] = bool(enabled)
    limit_survey_links(respond_bp, optout_bp, evidence_bp)
