"""The bench's own PostgreSQL and Redis, started for the run and gone after it.

``make bench`` needs nothing running beforehand: it makes a PostgreSQL cluster with
initdb in a temporary folder and starts a redis-server that keeps nothing on disk, each
on a free port of 127.0.0.1, and stops and removes both at the end. Nothing else uses
them, so what they spend is the run's alone (the CPU figures count the cluster's own
processes), and a run that breaks half-way leaves no database behind on a shared
server. ``--pg`` and ``--redis`` (BENCH_PG_URL, BENCH_REDIS_URL) use running servers
instead.

The cluster has initdb's defaults (128 MB of shared buffers, autovacuum on, fsync on),
as a new production server would; PostgreSQL refuses to run as root, so as root it
runs as the ``postgres`` user.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: seconds a server has to start answering
START_TIMEOUT = 60
#: the file in each of a run's folders that holds the run's pid
OWNER = ".attest-bench-run"


class ServerError(RuntimeError):
    pass


@dataclass
class Server:
    """A server the run started: its URL, process (a PostgreSQL cluster's postmaster,
    whose backends are its children) and folder."""

    name: str
    url: str
    process: subprocess.Popen
    folder: Path
    log: Path
    version: str

    def contains(self, pid: int, _name: str, _group: int, parent: int) -> bool:
        """Whether a process is one of this server's (for ``CpuMeter``): the server, or one
        of its children (PostgreSQL's backends each lead a process group of their own)."""
        return self.process.pid in (pid, parent)

    def stop(self) -> None:
        """Stop it (PostgreSQL's fast shutdown: SIGINT) and remove its folder."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT if self.name == "postgresql" else signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def dies_with_the_run(args: list[str], signal_name: str = "TERM") -> list[str]:
    """``args`` run so that the process gets SIGTERM (or ``signal_name``) when the run's
    process ends, however it ends (killed included), instead of living on: util-linux's
    setpriv sets Linux's parent-death signal, then runs it. Where there is no setpriv,
    ``args`` as they are."""
    setpriv = shutil.which("setpriv")
    return [setpriv, f"--pdeathsig={signal_name}", "--", *args] if setpriv else args


def run_folder(kind: str) -> Path:
    """A new temporary folder for this run (``attest-bench-<kind>-…``), marked with the
    run's pid so a later run can tell it was left behind (see ``remove_left_behind``)."""
    folder = Path(tempfile.mkdtemp(prefix=f"attest-bench-{kind}-"))
    (folder / OWNER).write_text(str(os.getpid()))
    return folder


def remove_left_behind() -> list[Path]:
    """Remove the folders of earlier runs that ended without removing them (killed
    outright: their processes died with them, their folders did not); the removed ones.
    A folder whose run is still alive, or that carries no run's pid, is left alone; one
    that cannot be removed whole keeps its pid, and the next run tries again."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob("attest-bench-*"):
        try:
            pid = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        try:
            for path in folder.iterdir():
                if path.name != OWNER:
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            shutil.rmtree(folder)
        except OSError as error:
            print(f"left behind by an earlier run, not removed: {folder} ({error})", flush=True)
        else:
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgresql() -> Server:
    """A new cluster (initdb), started; its URL names the ``postgres`` database."""
    bindir = _postgresql_bindir()
    folder = run_folder("pg")
    user = {}
    if os.geteuid() == 0:
        try:
            shutil.chown(folder, "postgres", "postgres")
        except LookupError:
            shutil.rmtree(folder)
            raise ServerError("PostgreSQL does not run as root, and this machine has no 'postgres' user "
                              "to run it as: give the bench a running server with --pg URL") from None
        user = {"user": "postgres", "group": "postgres"}
    data, log = folder / "data", folder / "postgresql.log"
    initdb = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                             "--locale=C.UTF-8", "--no-sync"],
                            cwd=folder, capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}, **user)
    if initdb.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise ServerError(f"initdb failed:\n{initdb.stdout}{initdb.stderr}")
    port = free_port()
    process = subprocess.Popen(
        dies_with_the_run([str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
                           "-c", "listen_addresses=127.0.0.1"], "QUIT"),  # QUIT: its immediate shutdown
        cwd=folder, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, **user)
    version = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()
    server = Server("postgresql", f"postgresql://postgres@127.0.0.1:{port}/postgres", process, folder, log,
                    f"{version} (the bench's own cluster: initdb's defaults, autovacuum on)")
    _wait(server, _postgresql_answers)
    return server


def start_redis() -> Server:
    """A redis-server that keeps nothing on disk; its URL names database 0."""
    folder = run_folder("redis")
    binary = shutil.which("redis-server")
    if binary is None:
        shutil.rmtree(folder)
        raise ServerError("redis-server is not installed: install it, or give the bench a running server "
                          "with --redis URL")
    port, log = free_port(), folder / "redis.log"
    process = subprocess.Popen(
        dies_with_the_run([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                           "--dir", str(folder)]),
        cwd=folder, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    server = Server("redis", f"redis://127.0.0.1:{port}/0", process, folder, log, f"{version} (the bench's own)")
    _wait(server, _redis_answers)
    return server


def _postgresql_bindir() -> Path:
    """Where initdb and postgres are: on the PATH, or Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda path: [int(n) for n in re.findall(r"\d+", path.parent.parent.name)])
    if not versions:
        raise ServerError("PostgreSQL's initdb is not installed: install the server, or give the bench a "
                          "running one with --pg URL")
    return versions[-1].parent


def _wait(server: Server, answers) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not answers(server.url):
        if server.process.poll() is not None or time.monotonic() > deadline:
            said = server.log.read_text(errors="replace")[-3000:]
            server.stop()
            raise ServerError(f"{server.name} did not start:\n{said}")
        time.sleep(0.1)


def _postgresql_answers(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.exceptions.ConnectionError:
        return False
