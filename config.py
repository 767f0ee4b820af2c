"""Configuration read from the environment, with embedded defaults.

Every setting has a default that runs on one machine with nothing installed
(SQLite, a filesystem Celery broker, a local mail catcher on port 8025).
Production sets the environment variables named below.
"""
from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("ATTEST_INSTANCE_DIR", BASE_DIR / "instance")).resolve()


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def database_url(url: str | None = None) -> str:
    """Normalise a DATABASE_URL so SQLAlchemy uses psycopg 3 for PostgreSQL."""
    url = url or os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'attest.sqlite3'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def broker_settings() -> dict:
    """Celery broker: Redis (or any kombu URL) when set, else a folder on disk."""
    url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
    if url:
        return {"broker_url": url, "broker_transport_options": {}}
    folder = INSTANCE_DIR / "broker"
    return {
        "broker_url": "attestfs://",  # workflows.broker: the filesystem transport, atomic writes
        "broker_transport_options": {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(INSTANCE_DIR / "broker-control"),
            "store_processed": False,
        },
    }


def ratelimit_storage_uri() -> str:
    """Rate-limit counters: the Redis the app already uses (shared by every web server),
    else this process's memory, which is enough for the embedded one-machine default."""
    explicit = os.environ.get("RATELIMIT_STORAGE_URI")
    if explicit:
        return explicit
    for url in (os.environ.get("REDIS_URL"), os.environ.get("CELERY_BROKER_URL")):
        if url and url.startswith(("redis://", "rediss://")):
            return url
    return "memory://"


class Config:
    """Settings shared by every environment; values come from the environment."""

    #: Signs sessions and CSRF tokens and derives survey link tokens. When unset,
    #: a random key is generated once into instance/secret_key (never committed).
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = database_url()
    #: hide_parameters: SQL errors and logs never show the values (emails, names) bound to a query
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True, "hide_parameters": True}

    #: Links in emails are built from this, never from the request's Host header.
    BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/")

    SMTP_HOST = os.environ.get("SMTP_HOST", "127.0.0.1")
    SMTP_PORT = int(os.environ.get("SMTP_PORT", "8025"))
    SMTP_USER = os.environ.get("SMTP_USER") or None
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD") or None
    SMTP_STARTTLS = _bool("SMTP_STARTTLS")
    SMTP_TIMEOUT = float(os.environ.get("SMTP_TIMEOUT", "30"))
    MAIL_FROM = os.environ.get("MAIL_FROM", "Attest <attest@localhost>")

    #: Where the embedded mail catcher stores what it receives (a Maildir);
    #: admins read it in the app. Empty disables the page.
    MAIL_CATCHER_DIR = os.environ.get("MAIL_CATCHER_DIR", str(INSTANCE_DIR / "mail"))

    #: How many people a campaign invites per transaction when it starts: the first chunk's
    #: emails go out while the rest are invited.
    INVITE_CHUNK = int(os.environ.get("INVITE_CHUNK", "5000"))
    #: How many outbox rows one Celery task sends over one SMTP connection.
    DISPATCH_BATCH_SIZE = int(os.environ.get("DISPATCH_BATCH_SIZE", "200"))
    #: How many sending chains run at once (about one per worker process).
    DISPATCH_PARALLELISM = int(os.environ.get("DISPATCH_PARALLELISM", "2"))
    #: A worker owns the emails it claimed this long; after it, they can be sent by
    #: another (the first one is presumed dead). Longer than a batch takes.
    MAIL_LEASE_SECONDS = float(os.environ.get("MAIL_LEASE_SECONDS", "300"))
    #: Replies are committed every this many emails, in one bulk update: a worker killed
    #: mid-batch may resend up to that many (with the same Message-ID, which mailboxes
    #: fold). 1 resends at most the email in flight, at a third of the sending rate
    #: (bench/RESULTS.md).
    DISPATCH_MARK_EVERY = int(os.environ.get("DISPATCH_MARK_EVERY", "50"))
    #: First retry delay after a temporary SMTP failure; it doubles each time.
    MAIL_RETRY_BASE_SECONDS = float(os.environ.get("MAIL_RETRY_BASE_SECONDS", "60"))
    #: Attempts (temporary failures, or workers lost mid-send) before an email fails for good.
    MAIL_MAX_ATTEMPTS = int(os.environ.get("MAIL_MAX_ATTEMPTS", "6"))
    #: Envelope sender of survey emails; each email gets its own VERP form
    #: (bounces+<id>.<signature>@domain), so a bounce names the email it is about.
    #: Default: bounces@ the MAIL_FROM domain. Route plus-addresses to one mailbox.
    MAIL_BOUNCE_ADDRESS = os.environ.get("MAIL_BOUNCE_ADDRESS", "")
    #: The mailto: half of List-Unsubscribe (unsubscribe+<token>@domain); default:
    #: unsubscribe@ the MAIL_FROM domain. `flask bounces ingest` reads both mailboxes.
    MAIL_UNSUBSCRIBE_ADDRESS = os.environ.get("MAIL_UNSUBSCRIBE_ADDRESS", "")
    #: Reminders are not sent between these local times of the recipient, unless a
    #: campaign says otherwise ("" for none).
    DEFAULT_QUIET_HOURS = os.environ.get("DEFAULT_QUIET_HOURS", "20:00-08:00")
    #: How often beat looks for due work, in seconds.
    BEAT_INTERVAL = float(os.environ.get("BEAT_INTERVAL", "10"))
    #: How often a campaign's page asks for its sending progress while invitations go out, in seconds.
    PROGRESS_POLL_SECONDS = float(os.environ.get("PROGRESS_POLL_SECONDS", "3"))

    #: The impact committee: reviewers per claim, the decision policy, review deadline.
    REVIEWERS_PER_CLAIM = int(os.environ.get("REVIEWERS_PER_CLAIM", "2"))
    #: How long a process trusts its count of each member's open reviews (new claims go
    #: to the least loaded) before counting again, in seconds; its own assignments, votes
    #: and decisions show at once.
    REVIEWER_LOAD_SECONDS = float(os.environ.get("REVIEWER_LOAD_SECONDS", "10"))
    #: How long a process reuses the campaigns and programmes offered as filters on the
    #: list of every claim (reading them is a pass over every claim), in seconds.
    FILTER_OPTIONS_SECONDS = float(os.environ.get("FILTER_OPTIONS_SECONDS", "60"))
    POLICY_APPROVALS_TO_PROVE = int(os.environ.get("POLICY_APPROVALS_TO_PROVE", "2"))
    POLICY_REJECTIONS_TO_REJECT = int(os.environ.get("POLICY_REJECTIONS_TO_REJECT", "2"))
    REVIEW_DEADLINE_DAYS = float(os.environ.get("REVIEW_DEADLINE_DAYS", "7"))
    #: How often beat looks for overdue reviews (seconds); each person still gets at most
    #: one reminder or digest a week.
    COMMITTEE_REMINDER_INTERVAL = float(os.environ.get("COMMITTEE_REMINDER_INTERVAL", "3600"))
    #: Reviewer exclusions beyond the claimant and declared conflicts, comma-separated:
    #: "mentor=email" excludes the user whose email is the claimant's "mentor" attribute;
    #: "cohort" excludes users whose "cohort" attribute equals the claimant's.
    REVIEWER_EXCLUSIONS = os.environ.get("REVIEWER_EXCLUSIONS", "mentor=email")

    #: The impact report never shows a group of fewer people than this.
    REPORT_MIN_GROUP = int(os.environ.get("REPORT_MIN_GROUP", "5"))
    #: Free-text comments are shown only when at least this many people wrote one.
    REPORT_COMMENT_MIN_GROUP = int(os.environ.get("REPORT_COMMENT_MIN_GROUP", "10"))
    #: Stakeholder attributes copied into each response at submission, so groups need no link to the person.
    REPORT_SEGMENTS = tuple(name.strip() for name in os.environ.get(
        "REPORT_SEGMENTS", "department,programme,cohort").split(",") if name.strip())

    #: Retention policy (survey/privacy/retention.py), in days; 0 keeps forever. Free-text and
    #: file answers: 2 years after submission. Evidence: 1 year after the claim's decision (the
    #: annual report and its audit). Contact data: erased after 3 years without activity from
    #: the person (the CNIL's rule for people one contacts). Applied daily.
    RETENTION_ANSWERS_DAYS = int(os.environ.get("RETENTION_ANSWERS_DAYS", "730"))
    RETENTION_EVIDENCE_DAYS = int(os.environ.get("RETENTION_EVIDENCE_DAYS", "365"))
    RETENTION_CONTACT_DAYS = int(os.environ.get("RETENTION_CONTACT_DAYS", "1095"))
    #: How often beat applies the retention policy, in seconds (a day).
    RETENTION_INTERVAL = float(os.environ.get("RETENTION_INTERVAL", "86400"))
    #: How often the whole audit chain is checked from its first event (seconds); the trail's
    #: page recomputes only the events after the last check. A check not finished after
    #: AUDIT_CHECK_LEASE seconds had its worker die: beat starts another.
    AUDIT_CHECK_INTERVAL = float(os.environ.get("AUDIT_CHECK_INTERVAL", "86400"))
    AUDIT_CHECK_LEASE = float(os.environ.get("AUDIT_CHECK_LEASE", "3600"))

    CELERY = {
        **broker_settings(),
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": os.environ.get("CELERY_QUEUE", "attest"),
        "beat_schedule_filename": str(INSTANCE_DIR / "celerybeat-schedule"),
        "broker_connection_retry_on_startup": True,
    }

    BABEL_DEFAULT_LOCALE = os.environ.get("DEFAULT_LOCALE", "fr")
    BABEL_DEFAULT_TIMEZONE = os.environ.get("DEFAULT_TIMEZONE", "Europe/Paris")
    LANGUAGES = ("fr", "en")
    DEFAULT_TIMEZONE = os.environ.get("DEFAULT_TIMEZONE", "Europe/Paris")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    #: Survey and opt-out pages send ``Referrer-Policy: no-referrer`` (their URL holds
    #: a token), so browsers post their forms without a Referer; Flask-WTF's strict
    #: HTTPS Referer check would refuse every one. The session-bound CSRF token and
    #: the SameSite cookie protect the forms.
    WTF_CSRF_SSL_STRICT = False
    SESSION_COOKIE_SECURE = BASE_URL.startswith("https://")
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    WTF_CSRF_TIME_LIMIT = None  # a respondent may take hours over a survey

    #: argon2id parameters of password hashes: argon2-cffi's defaults (RFC 9106's low-memory
    #: profile), above OWASP ASVS's minimum (t=2, 19 MiB, p=1), under which the app refuses to
    #: start. Changed, each password is rehashed at its owner's next login.
    ARGON2_TIME_COST = int(os.environ.get("ARGON2_TIME_COST", "3"))
    ARGON2_MEMORY_KIB = int(os.environ.get("ARGON2_MEMORY_KIB", "65536"))
    ARGON2_PARALLELISM = int(os.environ.get("ARGON2_PARALLELISM", "4"))

    # --- Sessions, fresh logins and rate limits (issue 8) ---
    #: Approving, rejecting, revoking and publishing need a login (or a password
    #: confirmation) at most this many minutes old.
    FRESH_LOGIN_MINUTES = float(os.environ.get("FRESH_LOGIN_MINUTES", "15"))
    #: Where rate-limit counters live: Redis when the app has one (shared by every web
    #: server), else this process's memory (the embedded single-machine default).
    RATELIMIT_STORAGE_URI = ratelimit_storage_uri()
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "attest")
    #: On unless set to 0; under TESTING off unless a test turns it on (tests/accounts).
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True) if os.environ.get("RATELIMIT_ENABLED") else None
    #: Failed password attempts (login, password confirmation, password change) per
    #: client address, and per account whatever the address.
    RATELIMIT_LOGIN_PER_ADDRESS = os.environ.get("RATELIMIT_LOGIN_PER_ADDRESS", "10/minute")
    RATELIMIT_LOGIN_PER_ACCOUNT = os.environ.get("RATELIMIT_LOGIN_PER_ACCOUNT", "5/minute;20/hour")
    #: Requests to the pages of survey, opt-out and evidence links, per link; and per client
    #: address, a ceiling far above (one company's employees answer from one address).
    RATELIMIT_SURVEY_LINKS = os.environ.get("RATELIMIT_SURVEY_LINKS", "60/minute")
    RATELIMIT_SURVEY_ADDRESS = os.environ.get("RATELIMIT_SURVEY_ADDRESS", "1000/minute")
    #: How many reverse proxies in front of the app set X-Forwarded-For (werkzeug's
    #: ProxyFix); 0 trusts no such header and uses the connection's address.
    PROXY_FIX_X_FOR = int(os.environ.get("PROXY_FIX_X_FOR", "0"))
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(20 * 1024 * 1024)))
    #: Evidence files: where they are kept (outside the web root) and how large one may be.
    EVIDENCE_DIR = os.environ.get("EVIDENCE_DIR") or str(INSTANCE_DIR / "evidence")
    EVIDENCE_MAX_BYTES = int(os.environ.get("EVIDENCE_MAX_BYTES", str(10 * 1024 * 1024)))

    API_TITLE = "Attest API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
