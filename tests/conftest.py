"""Shared fixtures: a migrated database, a real SMTP server, a real Celery worker.

The database is built by ``alembic upgrade`` from empty, never by create_all.
Set ``TEST_DATABASE_URL`` (PostgreSQL) and ``TEST_REDIS_URL`` to run against the
real servers, as .ci/run does; without them the suite runs on SQLite with a
filesystem Celery broker.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

_tmp = Path(tempfile.mkdtemp(prefix="attest-test-"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_pg_url = os.environ.get("TEST_DATABASE_URL")
_pg_dbname = None
if _pg_url:
    import psycopg

    _pg_dbname = f"attest_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{_pg_dbname}"')
    _database_url = _pg_url.rsplit("/", 1)[0] + "/" + _pg_dbname
else:
    _database_url = f"sqlite:///{_tmp / 'test.sqlite3'}"

# The app under test and the worker subprocesses read the same environment.
os.environ.update(
    ATTEST_INSTANCE_DIR=str(_tmp / "instance"),
    DATABASE_URL=_database_url,
    SECRET_KEY=secrets.token_hex(32),
    SMTP_HOST="127.0.0.1",
    SMTP_PORT=str(_free_port()),
    SMTP_STARTTLS="",
    MAIL_FROM="Attest <attest@test.example>",
    BASE_URL="https://attest.test.example",
    CELERY_QUEUE=f"attest-test-{uuid.uuid4().hex[:8]}",
    BEAT_INTERVAL="1",
    MAIL_CATCHER_DIR=str(_tmp / "caught"),
    # Password hashes at OWASP ASVS's minimum (~20 ms) rather than the default profile
    # (~120 ms): the suite logs in thousands of times. test_password_policy checks the defaults.
    ARGON2_TIME_COST="2",
    ARGON2_MEMORY_KIB="19456",
    ARGON2_PARALLELISM="1",
)
if os.environ.get("TEST_REDIS_URL"):
    os.environ["CELERY_BROKER_URL"] = os.environ["TEST_REDIS_URL"]
else:
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("REDIS_URL", None)

from flask_migrate import upgrade  # noqa: E402

from survey import create_app  # noqa: E402
from survey.claims.services import forget_reviewer_load  # noqa: E402
from survey.committee.lists import forget_filter_options  # noqa: E402
from survey.extensions import db  # noqa: E402

pytest_plugins = ["tests.factories"]


@pytest.fixture(scope="session")
def app():
    app = create_app({"TESTING": True})
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()
    if _pg_dbname:
        import psycopg

        with psycopg.connect(_pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{_pg_dbname}" WITH (FORCE)')


def wipe_tables() -> None:
    """Empty every table (the schema stays, as migrated). Needs an app context."""
    db.session.remove()
    forget_reviewer_load()  # a count of the rows about to go
    forget_filter_options()
    with db.engine.begin() as conn:
        postgresql = conn.dialect.name == "postgresql"
        if postgresql:
            # The append-only triggers (audit trail, published reports) refuse deletes, by
            # design; a replica session fires no trigger. DELETE, not TRUNCATE: on tables of a
            # few rows it is ten times faster, and the suite wipes after every test.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())
        if postgresql:
            sequences = conn.exec_driver_sql(
                "SELECT quote_ident(sequencename) FROM pg_sequences WHERE schemaname = current_schema()")
            for (name,) in sequences.all():
                conn.exec_driver_sql(f"ALTER SEQUENCE {name} RESTART")


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """Each test starts from an empty (migrated) schema."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        wipe_tables()


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app
        db.session.remove()


class IsolatedClient(FlaskClient):
    """Each request in its own app context, as behind a real WSGI server: nothing cached
    in ``flask.g`` (Flask-Login's user, the CSRF token, Babel's locale) carries over."""

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def english_client(app, app_ctx):
    """An isolated test client reading pages in English."""
    client = IsolatedClient(app, app.response_class, use_cookies=True)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def client(app, app_ctx):
    return app.test_client()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing; CI always has ../shared")
        pytest.skip("../shared/data is not beside this clone (CI always has it)")
    return SHARED_DATA


class CaughtMail:
    """What a real aiosmtpd server received, with scriptable replies; it offers
    PIPELINING (RFC 2920) if asked to, as Postfix and the big relays do."""

    def __init__(self, pipelining: bool = False):
        self.pipelining = pipelining
        self.messages: list = []
        self.replies: list[str] = []  # consumed one per RCPT; empty means 250

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.replies:
            reply = self.replies.pop(0)
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        msg = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from, "message": msg})
        return "250 Message accepted"

    def wait_for(self, count: int, timeout: float = 60) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


def at_once(app, *functions, timeout: float = 120) -> list[BaseException]:
    """Run each function in a thread of its own, in an app context (so a database session)
    of its own. Each is given ``ready``, to call where the race starts: they are let go
    together from there. Returns what they raised."""
    barrier, errors = threading.Barrier(len(functions)), []

    def run(function) -> None:
        with app.app_context():
            try:
                function(barrier.wait)
            except Exception as exc:  # noqa: BLE001 (returned to the test)
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(function,)) for function in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return errors


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even an ``except Exception``."""


def serve_smtp(handler):
    """Run a real aiosmtpd server with ``handler`` on the port the app sends to
    (a generator for fixtures: yields the handler, stops the server after)."""
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=int(os.environ["SMTP_PORT"]))
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def smtp_server():
    """A real SMTP server on the port the app is configured to use."""
    yield from serve_smtp(CaughtMail())


class Background:
    """Real ``celery worker`` and ``celery beat`` subprocesses on this run's queue and
    database; each can take extra environment (another broker, a short lease…)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list[subprocess.Popen] = []

    def _start(self, name: str, args: list[str], ready: str, env: dict) -> subprocess.Popen:
        log_path = self.folder / f"{name}-{len(self.processes)}.log"
        log = log_path.open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "wsgi:celery_app", *args],
            cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        )
        proc.log_path, proc.log_file, proc.role = log_path, log, name
        self.processes.append(proc)
        deadline = time.monotonic() + 60
        while ready not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"celery {name} did not start:\n" + log_path.read_text())
            time.sleep(0.1)
        return proc

    def worker(self, concurrency: int = 2, pool: str = "threads", **env) -> subprocess.Popen:
        return self._start("worker", [
            "worker", "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", os.environ["CELERY_QUEUE"],
        ], "ready.", env)

    def beat(self, **env) -> subprocess.Popen:
        schedule = self.folder / f"beat-{len(self.processes)}-schedule"
        return self._start("beat", ["beat", "--loglevel", "INFO", "--schedule", str(schedule)],
                           "beat: Starting", env)

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:  # beat keeps nothing worth a clean stop; workers finish their task
                proc.kill() if proc.role == "beat" else proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            proc.log_file.close()
            # Shown by pytest only when the test failed: what each process was doing.
            tail = proc.log_path.read_text(errors="replace").splitlines()[-40:]
            print(f"--- last lines of {proc.log_path.name}", *tail, sep="\n")


@pytest.fixture
def background(app, tmp_path):
    processes = Background(tmp_path)
    yield processes
    processes.stop()


@pytest.fixture
def celery_worker_process(background):
    """One real ``celery worker`` subprocess."""
    return background.worker()
