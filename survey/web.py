"""Application-wide web behaviour: error pages, security headers, language switch."""
from __future__ import annotations

import time

from flask import Flask, jsonify, make_response, redirect, render_template, request, session, url_for
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from survey.core.authorisation import RoleRefused
from survey.core.errors import ServiceError
from survey.core.fetch import CrossSite
from survey.core.redirects import safe_next
from survey.extensions import db, limiter

#: Stored codes → words people read (statuses, kinds, privacy modes). The statuses are
#: a campaign's, an invitation's or an email's (an invitation or a reminder): feminine nouns
#: in French, and their words agree ("Relance 1 envoyée").
LABELS = {
    "draft": _l("draft"), "scheduled": _l("scheduled"), "sending": _l("sending"), "open": _l("open"),
    "closed": _l("closed"), "queued": _l("queued"), "sent": _l("sent"), "failed": _l("failed"),
    "bounced": _l("bounced"), "opened": _l("opened"), "started": _l("started"),
    "completed": _l("completed"), "opted_out": _l("opted out"), "cancelled": _l("cancelled"),
    "alumnus": _l("alumni"), "employee": _l("employees"),
    "identified": _l("identified"), "confidential": _l("confidential"), "anonymous": _l("anonymous"),
    "invitation": _l("invitation"), "reminder": _l("reminder"), "evidence_request": _l("evidence request"),
    # claims
    "submitted": _l("submitted"), "in_review": _l("in review"), "needs_evidence": _l("needs evidence"),
    "proven": _l("proven"), "rejected": _l("rejected"), "inconclusive": _l("inconclusive"),
    "revoked": _l("revoked"), "withdrawn": _l("withdrawn"),
    "new_job": _l("new job"), "changed_employer": _l("changed employer"), "promotion": _l("promotion"),
    "raise": _l("raise"), "business_created": _l("business created"),
    "approve": _l("approve"), "reject": _l("reject"), "need_evidence": _l("need evidence"),
    "abstain": _l("abstain"),
    "file": _l("file"), "link": _l("link"), "contact": _l("employer contact"),
    # roles
    "admin": _l("admin"), "committee": _l("committee member"), "chair": _l("chair"), "auditor": _l("auditor"),
    # question types
    "single": _l("one choice"), "multi": _l("several choices"), "text": _l("short text"),
    "long_text": _l("long text"), "number": _l("number"), "date": _l("date"), "scale": _l("scale"),
    "consent": _l("tick box"),
}

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def show_refusal(form, exc: ServiceError) -> None:
    """Undo whatever the refused service flushed; show its message by the field it names."""
    from survey.extensions import db

    db.session.rollback()
    name = (exc.details or {}).get("field")
    if name and name in form:
        form[name].errors = [*form[name].errors, exc.message]
    else:
        form.form_errors.append(exc.message)


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, writing a lazily translated message as its text.

    Left to Flask, a ``LazyString`` would go through ``__html__``: HTML-escaped text in JSON."""

    @staticmethod
    def default(o):
        if isinstance(o, LazyString):
            return str(o)
        return DefaultJSONProvider.default(o)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _summarise(messages) -> str | None:
    """"Invalid request: send_at: Not a valid datetime." from webargs' nested messages."""
    if not isinstance(messages, dict):
        return None
    problems: list[str] = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, path if key == "_schema" else path + [str(key)])
        elif isinstance(node, list) and all(isinstance(item, (str, LazyString)) for item in node):
            problems.append(f"{'.'.join(path) or 'body'}: {' '.join(map(str, node))}")
        else:
            problems.append(f"{'.'.join(path) or 'body'}: {node}")

    for location in messages.values():  # {"json": {...}} / {"query": {...}}: the location adds nothing
        walk(location, [])
    return "Invalid request: " + "; ".join(problems) if problems else None


#: the pages of HTTP errors in the reader's language (Werkzeug's own are in English, for developers)
HTTP_ERRORS = {
    400: (_l("Bad request"), _l("The page could not read what was sent. Please go back and try again.")),
    403: (_l("Not allowed"), _l("Your account cannot open this page. Ask an administrator if you need it.")),
    404: (_l("Page not found"), _l("Nothing is at this address. Check the link, or start again from the home page.")),
    405: (_l("Not allowed"), _l("This page cannot be used this way. Please go back and use its buttons.")),
    500: (_l("Something went wrong"), _l("Our error, not yours: nothing was changed. Please try again in a "
                                         "moment; if it happens again, tell us what you were doing.")),
}


def register_web(app: Flask) -> None:
    from survey.accounts.ratelimits import init_rate_limits

    app.json = JSONProvider(app)
    init_rate_limits(app)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if _wants_json():
            data = getattr(exc, "data", None) or {}
            message = data.get("message") or _summarise(data.get("messages")) or exc.description
            body = {"code": exc.code, "status": exc.name, "message": message,
                    # always present, as README documents: {"code", "message", "errors"}
                    "errors": data.get("errors") or data.get("messages") or {}}
            response = jsonify(body)
            response.status_code = exc.code
            if exc.code == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="attest"'
            return response
        title, message = HTTP_ERRORS.get(exc.code, (exc.name, exc.description))
        if isinstance(exc, CrossSite):
            message = exc.description
        elif isinstance(exc, RoleRefused):
            message = _("This page is for the roles: %(roles)s. Your account's role is %(role)s: roles are kept "
                        "apart on purpose, so that no one checks their own work.",
                        roles=", ".join(str(LABELS.get(r, r)) for r in exc.roles), role=LABELS.get(exc.role, exc.role))
        if exc.code == 413:
            title = _("Too large")
            message = _("What was sent is too large: a file, most likely. Go back: what you typed is still on "
                        "the page; choose a file under %(size)s MB, or leave it out and save.",
                        size=f"{app.config['EVIDENCE_MAX_BYTES'] / (1024 * 1024):g}")
        return render_template("errors/error.html", code=exc.code, title=title, message=message), exc.code

    @app.errorhandler(RateLimitExceeded)
    def too_many_requests(exc: RateLimitExceeded):
        """429: what to do and when (Retry-After), as a page or as the API's JSON error."""
        current = limiter.current_limit
        wait = max(1, int(current.reset_at - time.time())) if current else 60
        if _wants_json():
            response = jsonify(code=429, status="Too Many Requests", message=str(exc.description), errors={})
        else:
            response = make_response(render_template("errors/error.html", code=429, title=_("Too many requests"),
                                                     message=exc.description))
        response.status_code = 429
        response.headers["Retry-After"] = str(wait)
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        if request.endpoint == "respond.survey" and request.method == "POST":
            from survey.respond.views import refill_expired_survey

            return refill_expired_survey(request.view_args["token"])  # the answers stay on the page
        message = _("This form has expired or did not come from this site. "
                    "Nothing was saved; please reload the page and try again.")
        return render_template("errors/error.html", code=400, title=_("Form expired"),
                               message=message), 400

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        if _wants_json():
            # the API's locale is English (survey.select_locale); details may hold lazy texts too
            return jsonify(code=exc.status, message=str(exc.message), errors=exc.details or {}), exc.status
        return render_template("errors/error.html", code=exc.status, title=_("Not possible"),
                               message=exc.message), exc.status

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if app.config["BASE_URL"].startswith("https://"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    @app.post("/language")
    def set_language():
        lang = request.form.get("lang")
        if lang in app.config["LANGUAGES"]:
            session["lang"] = lang
            if current_user.is_authenticated and current_user.locale != lang:
                current_user.locale = lang  # a staff member's emails follow
                db.session.commit()
        return redirect(safe_next(request.form.get("next")) or url_for("accounts.home"))

    @app.context_processor
    def template_helpers():
        from flask_babel import get_locale

        from survey.core.authorisation import template_can

        return {"current_locale": str(get_locale()), "languages": app.config["LANGUAGES"],
                # what a page offers follows the same table as what its views allow
                "may": template_can}

    app.jinja_env.filters["label"] = lambda code: LABELS.get(code, code)
    from survey.audit.words import action_words, actor_words, erased_words, reason_words, state_words
    from survey.mail.suppression import suppression_words

    app.jinja_env.globals.update(action_words=action_words, actor_words=actor_words, reason_words=reason_words,
                                 state_words=state_words, suppression_words=suppression_words,
                                 erased_words=erased_words)
