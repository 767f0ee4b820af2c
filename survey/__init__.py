"""Attest: outcome surveys, committee review and impact reports.

``create_app`` builds the Flask application; extensions live unbound in
``survey.extensions`` and are bound here.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask, g, has_request_context, request, session
from flask_babel import lazy_gettext as _l
from flask_smorest.spec.plugins import integerconverter2paramschema
from sqlalchemy import event
from sqlalchemy.engine import Engine

from config import BASE_DIR, INSTANCE_DIR, Config
from survey.core.routing import IdConverter

# `rest_api`, not `api`: importing the survey.api package rebinds survey.api to it.
from survey.extensions import api as rest_api
from survey.extensions import babel, csrf, db, login_manager, migrate


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.url_map.converters["int"] = IdConverter
    app.config.from_object(Config)
    if overrides:
        app.config.update(overrides)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path))

    from survey.privacy.logs import keep_personal_data_out_of_logs

    keep_personal_data_out_of_logs(app)
    from survey.accounts.services import hasher

    with app.app_context():
        hasher()  # argon2 parameters under ASVS's minimum stop the start, not a later login
    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = _l("Please log in to open this page.")  # Flask-Login's own is English
    login_manager.login_message_category = "info"
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    rest_api.init_app(app)
    rest_api.register_converter(IdConverter, integerconverter2paramschema)

    from survey import models  # noqa: F401  (every table registered with the metadata)
    from survey.accounts.views import bp as accounts_bp
    from survey.api import register_api
    from survey.audiences.views import bp as audiences_bp
    from survey.audit.views import bp as audit_bp
    from survey.campaigns.views import bp as campaigns_bp
    from survey.claims.views import bp as evidence_bp
    from survey.committee.views import bp as committee_bp
    from survey.mail.optout_views import bp as optout_bp
    from survey.mail.views import bp as mail_bp
    from survey.questionnaires.views import bp as questionnaires_bp
    from survey.reports.views import bp as reports_bp
    from survey.respond.views import bp as respond_bp

    for bp in (accounts_bp, audiences_bp, campaigns_bp, committee_bp, mail_bp, optout_bp, questionnaires_bp,
               reports_bp, respond_bp):
        app.register_blueprint(bp)
    app.register_blueprint(evidence_bp)  # the respondent's /e/<token>
    app.register_blueprint(audit_bp)
    register_api(app)

    from survey.cli import register_cli

    register_cli(app)

    from survey.reports.charts import register_report_helpers
    from survey.web import register_web

    register_web(app)
    register_report_helpers(app)

    from workflows import celery_init_app

    celery_init_app(app)
    return app


def select_locale() -> str:
    """The respondent's record first, then an explicit choice, then the browser.

    The API is English only, whatever the caller's browser says; so is whatever runs
    outside a request (the CLI, the workers), where messages go to a terminal or a log."""
    languages = ("fr", "en")
    if not has_request_context():
        return "en"
    forced = getattr(g, "locale", None)
    if forced in languages:
        return forced
    if request.path.startswith("/api/"):
        return "en"
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages) or "fr"


def _instance_secret(instance: Path) -> str:
    """A random key kept in instance/ for the embedded default; never in the repo."""
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        os.chmod(path, 0o600)
    return path.read_text().strip()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    """Web, worker and beat share one SQLite file: WAL and a busy timeout let them."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # WAL + NORMAL: a commit survives a killed process (what matters for the
        # outbox); only a power cut may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
