"""What every scenario needs: a fresh PostgreSQL database migrated from empty, the
app, Redis, real Celery workers, a counting SMTP sink, and a place for results. The
PostgreSQL server and Redis are the run's own unless given (bench/servers.py).

The environment is set before the app is imported (config.py reads it then).
"""
from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    scenario: str
    #: what the figure measures, e.g. "emails/s"
    unit: str
    figure: float
    baseline: float | None
    #: what the baseline is
    baseline_name: str
    #: the goal, as text; ``met`` says whether this run reached it
    goal: str
    met: bool | None
    #: True when a higher figure is better (rates), False for durations
    higher_is_better: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not self.baseline or not self.figure:
            return None
        return self.figure / self.baseline if self.higher_is_better else self.figure / self.baseline


class Environment:
    """One bench run's services. ``setup()`` before importing the app."""

    def __init__(self, pg_url: str | None = None, redis_url: str | None = None):
        """``pg_url`` and ``redis_url``: running servers to use; None starts the run's own."""
        self.pg_url = pg_url.rstrip("/") if pg_url else None
        self.redis_url = redis_url
        self.servers: list[servers.Server] = []
        #: picks PostgreSQL's processes for ``CpuMeter``: the own cluster's, or any "postgres…"
        self.postgres = postgres
        servers.remove_left_behind()
        self.folder = servers.run_folder("run")
        self.dbname = f"attest_bench_{uuid.uuid4().hex[:8]}"
        self.smtp_port = free_port()
        self.queue = f"attest-bench-{uuid.uuid4().hex[:8]}"
        self.processes: list[subprocess.Popen] = []

    def setup(self) -> None:
        import psycopg

        try:
            if self.pg_url is None:
                self.servers.append(servers.start_postgresql())
                self.pg_url, self.postgres = self.servers[-1].url, self.servers[-1].contains
            if self.redis_url is None:
                self.servers.append(servers.start_redis())
                self.redis_url = self.servers[-1].url
        except BaseException:
            for server in self.servers:
                server.stop()
            raise
        self.database_url = self.pg_url.rsplit("/", 1)[0] + "/" + self.dbname
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        os.environ.update(
            ATTEST_INSTANCE_DIR=str(self.folder / "instance"),
            DATABASE_URL=self.database_url,
            SECRET_KEY=secrets.token_hex(32),
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(self.smtp_port),
            SMTP_STARTTLS="",
            MAIL_FROM="Attest <attest@bench.example>",
            BASE_URL="https://attest.bench.example",
            CELERY_BROKER_URL=self.redis_url,
            CELERY_QUEUE=self.queue,
            DEFAULT_QUIET_HOURS="",
            # the load generator is one address posting thousands of answers a minute: what
            # the limits exist to stop; they are measured by tests, not here
            RATELIMIT_ENABLED="false",
        )

    def app(self):
        from flask_migrate import upgrade

        from survey import create_app

        app = create_app()
        with app.app_context():
            upgrade()
        return app

    def psql(self, sql: str, *params) -> list:
        """Run one statement on the bench database (autocommit); its rows, if any."""
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []

    def autovacuum(self, tables: tuple[str, ...], every: float = 5.0):
        """A context in which these tables are vacuumed and analysed every ``every`` seconds,
        as autovacuum would, sooner: its one-minute naptime is longer than a turn, and tables
        that grow from empty while measured would keep the plans of empty tables (a server
        given with --pg may even run without it, as this machine's own does)."""
        import contextlib
        import threading

        @contextlib.contextmanager
        def running():
            stop = threading.Event()

            def loop():
                while not stop.wait(every):
                    for table in tables:
                        self.psql(f"VACUUM ANALYZE {table}")

            thread = threading.Thread(target=loop, daemon=True)
            thread.start()
            try:
                yield
            finally:
                stop.set()
                thread.join()
        return running()

    def start(self, name: str, args: list[str], ready: str | None = None, env: dict | None = None,
              timeout: float = 60) -> subprocess.Popen:
        """A subprocess of the run (a worker, gunicorn…), its output in the run's folder;
        waits until ``ready`` appears in that output."""
        log_path = self.folder / f"{name}-{len(self.processes)}.log"
        proc = subprocess.Popen(servers.dies_with_the_run(args), cwd=ROOT, env={**os.environ, **(env or {})},
                                stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log_path
        self.processes.append(proc)
        deadline = time.monotonic() + timeout
        while ready and ready not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        return proc

    def worker(self, processes: int = 2, **env) -> subprocess.Popen:
        celery = str(Path(sys.executable).parent / "celery")
        return self.start("worker", [celery, "-A", "wsgi:celery_app", "worker", "--pool", "prefork",
                                     "--concurrency", str(processes), "--loglevel", "WARNING",
                                     "--without-gossip", "--without-mingle", "--without-heartbeat",
                                     "-Q", self.queue],
                          ready=None, env={k: str(v) for k, v in env.items()})

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def teardown(self, failed: bool = False) -> None:
        import psycopg

        for proc in self.processes:
            self.stop(proc)
            if failed:
                kept = Path(tempfile.gettempdir()) / f"{self.dbname}-{proc.log_path.name}"
                shutil.copy(proc.log_path, kept)
                print(f"--- {proc.log_path.name} (whole: {kept})\n{proc.log_path.read_text(errors='replace')[-3000:]}")
        if not any(server.name == "postgresql" for server in self.servers):
            with psycopg.connect(self.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        for server in self.servers:  # an own server goes whole, its database with it
            server.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def described(self) -> dict[str, str]:
        """The servers and their versions, for the results' machine section."""
        import psycopg
        import redis

        own = {server.name: server.version for server in self.servers}
        if "postgresql" not in own:
            with psycopg.connect(self.pg_url) as conn:
                [(version,)] = conn.execute("SELECT version()").fetchall()
            own["postgresql"] = f"{version} (given: {_without_password(self.pg_url)})"
        if "redis" not in own:
            version = redis.Redis.from_url(self.redis_url).info("server")["redis_version"]
            own["redis"] = f"Redis {version} (given: {_without_password(self.redis_url)})"
        return own


def _without_password(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


# ---------------------------------------------------------------------- the SMTP sink

#: whether the sink offers PIPELINING (RFC 2920), as Postfix and the big relays do; Attest
#: uses it, smtplib (the dispatch baseline) does not. BENCH_SINK_PIPELINING=0 turns it off.
#: Offering it, the sink groups its replies as RFC 2920 (3.2) asks and Postfix does (_grouping_smtp).
SINK_PIPELINING = os.environ.get("BENCH_SINK_PIPELINING", "1") != "0"


class Sink:
    """A real SMTP server (aiosmtpd) in its own process that counts what it accepts."""

    def __init__(self, port: int):
        self.port = port
        self.count = multiprocessing.Value("q", 0, lock=True)
        self.size = multiprocessing.Value("q", 0, lock=True)
        self.process = multiprocessing.get_context("fork").Process(
            target=_serve_sink, args=(port, self.count, self.size), daemon=True)

    def __enter__(self) -> "Sink":
        self.process.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(5)

    def reset(self) -> None:
        with self.count.get_lock():
            self.count.value = 0
            self.size.value = 0

    @property
    def received(self) -> int:
        return self.count.value

    @property
    def average_size(self) -> int:
        return self.size.value // max(self.count.value, 1)

    def wait_for(self, count: int, timeout: float, stalled=None) -> float:
        """Seconds until ``count`` messages arrived; raises if they do not within ``timeout``."""
        start = time.monotonic()
        while self.count.value < count:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"the sink got {self.count.value} of {count} messages in {timeout:.0f} s")
            if stalled is not None:
                stalled()
            time.sleep(0.01)
        return time.monotonic() - start


def _serve_sink(port: int, count, size) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    class Counter:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if SINK_PIPELINING:
                responses.insert(-1, "250-PIPELINING")
            return responses

        async def handle_DATA(self, server, session, envelope):
            with count.get_lock():
                count.value += len(envelope.rcpt_tos)
                size.value += len(envelope.content)
            return "250 OK"

    grouping = _grouping_smtp()

    class GroupingController(Controller):
        def factory(self):  # one server per connection
            return grouping(self.handler, **self.SMTP_kwargs)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:  # it stands for a relay on its own machine: it must not queue behind the system measured
        os.nice(-10)
    except OSError:
        pass
    controller = (GroupingController if SINK_PIPELINING else Controller)(Counter(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        asyncio.run(asyncio.sleep(10 ** 9))
    finally:
        controller.stop()


def _grouping_smtp():
    """aiosmtpd's server, replying as RFC 2920 (3.2) asks of one that offers PIPELINING, and
    as Postfix does: the replies to pipelined commands are held while more of the client's
    commands wait to be read, and sent together once none does (aiosmtpd writes each reply
    at once: four writes where one would do, each a wake-up of the client). Never held: the
    354 that asks for the message, and the replies to EHLO, HELO, NOOP, QUIT, VRFY, EXPN. A
    client that waits for each reply (smtplib) gets each at once, as before."""
    from aiosmtpd.smtp import SMTP

    class Grouping(SMTP):
        _held, _at_once = b"", False

        async def push(self, status):
            reply = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") if isinstance(status, str) else status
            self._held += reply + b"\r\n"
            # (asyncio.StreamReader keeps what it has read, not yet consumed, in _buffer)
            if self._at_once or reply.startswith(b"354") or not self._reader._buffer:
                self._writer.write(self._held)
                self._held = b""
                await self._writer.drain()

    def at_once(name: str):
        command = getattr(SMTP, name)

        @functools.wraps(command)  # (aiosmtpd reads its syntax for HELP off the method)
        async def replied_at_once(self, arg):
            self._at_once = True
            try:
                return await command(self, arg)
            finally:
                self._at_once = False
        return replied_at_once

    for name in ("smtp_EHLO", "smtp_HELO", "smtp_NOOP", "smtp_QUIT", "smtp_VRFY", "smtp_EXPN"):
        setattr(Grouping, name, at_once(name))
    return Grouping


class DelayedRelay:
    """A TCP relay in front of the sink that holds each reply back ``delay`` seconds: the
    sink as if across a network, ``delay`` of round trip away (an asyncio thread)."""

    def __init__(self, target_port: int, delay: float):
        self.target_port, self.delay = target_port, delay
        self.port = 0
        self.loop = None

    def __enter__(self) -> "DelayedRelay":
        import asyncio
        import threading

        ready = threading.Event()

        async def serve():
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await server.serve_forever()

        def run():
            self.loop = asyncio.new_event_loop()
            self._serving = self.loop.create_task(serve())
            with contextlib.suppress(asyncio.CancelledError):
                self.loop.run_until_complete(self._serving)
            rest = asyncio.all_tasks(self.loop)  # the connections' tasks: ended, not left pending
            for task in rest:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
            self.loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the delaying relay did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self._serving.cancel)
        self._thread.join(10)

    async def _handle(self, client_reader, client_writer) -> None:
        import asyncio

        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        loop = asyncio.get_running_loop()

        async def up():
            while data := await client_reader.read(65536):
                server_writer.write(data)
            server_writer.close()

        async def down():
            while data := await server_reader.read(65536):
                loop.call_later(self.delay, client_writer.write, data)
            loop.call_later(self.delay, client_writer.close)

        try:
            await asyncio.gather(up(), down(), return_exceptions=True)
        except asyncio.CancelledError:
            pass  # the relay stops: the connection ends with it, quietly


# ---------------------------------------------------------------------- CPU time

def cpu_seconds(chosen) -> float | None:
    """CPU time (user + system) used so far by the live processes ``chosen(pid, name,
    process group, parent pid)`` picks, from /proc; None where there is no /proc. A
    process that ends takes its count with it: measure processes that outlive the
    measurement."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if chosen(int(entry.name), name, int(fields[2]), int(fields[1])):  # fields: state, ppid, pgrp, …
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / tick


def machine_ticks() -> tuple[int, int, int] | None:
    """Clock ticks of all the cores so far: (all, idle, interrupts); None without /proc."""
    try:
        # user, nice, system, idle, iowait, irq, softirq, steal
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(fields), fields[3] + fields[4], fields[5] + fields[6]


def cores_note(sides: dict[str, tuple[float, float] | None]) -> list[str]:
    """How the whole machine's cores spent each side's turns (``CpuMeter.cores``): a
    side's processes reaching less than its CPU bound left them idle, or the kernel's
    interrupt work, which no process is charged with, took the rest."""
    if not sides or None in sides.values():
        return []
    return ["the cores, machine-wide, during each side's turns: " + "; ".join(
        f"{name} {idle:.0%} idle, {interrupts:.0%} on interrupts" for name, (idle, interrupts) in sides.items())
        + " (interrupts: the kernel's network work, which no process is charged with)"]


def postgres(_pid: int, name: str, _group: int, _parent: int) -> bool:
    """The PostgreSQL server's processes (its backends, writers, checkpointer)."""
    return name.startswith("postgres")


def in_group(group: int):
    """The processes of a process group (a subprocess started by ``Environment.start``)."""
    return lambda _pid, _name, process_group, _parent: process_group == group


def one_process(pid: int):
    return lambda process_id, _name, _group, _parent: process_id == pid


class CpuMeter:
    """CPU seconds of named sets of processes (``cpu_seconds``' choices), summed over the
    spans measured; a name's total is None where there is no /proc. A name chosen as None
    is counted by hand (``add``): processes that report their own CPU time."""

    def __init__(self, **chosen):
        self.chosen = chosen
        self.used: dict[str, float | None] = dict.fromkeys(chosen, 0.0)
        #: side → the machine's clock ticks over its spans: (all, idle, interrupts)
        self.machine: dict[str, list[int]] = {}

    def add(self, name: str, seconds: float | None) -> None:
        previous = self.used.get(name, 0.0)
        self.used[name] = None if previous is None or seconds is None else previous + seconds

    @contextlib.contextmanager
    def span(self, *names: str, side: str | None = None):
        """Counts what the processes of ``names`` use during the block, and with ``side``
        what the whole machine's cores did meanwhile (``cores``)."""
        before = {name: cpu_seconds(self.chosen[name]) for name in names}
        ticks = machine_ticks()
        yield
        for name in names:
            after = cpu_seconds(self.chosen[name])
            self.add(name, None if after is None or before[name] is None else after - before[name])
        now = machine_ticks()
        if side is not None and ticks is not None and now is not None:
            total = self.machine.setdefault(side, [0, 0, 0])
            for index, (start, end) in enumerate(zip(ticks, now)):
                total[index] += end - start

    def cores(self, side: str) -> tuple[float, float] | None:
        """Over ``side``'s spans: the share of the cores' time left idle, and the share
        spent on interrupts (the kernel's network work, charged to no process)."""
        ticks = self.machine.get(side)
        if not ticks or not ticks[0]:
            return None
        return ticks[1] / ticks[0], ticks[2] / ticks[0]

    def per_item(self, count: int) -> dict[str, float] | None:
        """Milliseconds per item, by name; None if some total is unknown."""
        if any(value is None for value in self.used.values()):
            return None
        return {name: seconds * 1000 / count for name, seconds in self.used.items()}


# ---------------------------------------------------------------------- the machine

def machine() -> dict[str, str]:
    """What the figures ran on (the servers: ``Environment.described``)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass

    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": memory, "os": platform.platform(),
            "python": platform.python_version()}
