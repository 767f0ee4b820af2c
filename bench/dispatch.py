"""Dispatch: schedule a campaign to N recipients; time until every invitation is in
the SMTP sink. Baseline: plain smtplib clients, one persistent connection each, as
many as the workers' processes, sending N messages of the same size into the same sink.

Attest and the baseline take turns (TURNS each, a share of the recipients per turn),
so that a slow spell of the machine, which can last a minute here, weighs on both.

A second figure, with no goal of its own: one batch over one connection to a relay
ROUND_TRIP away, against one smtplib connection to the same relay, where what limits a
connection is its round trips (which PIPELINING cuts), not the CPU."""
from __future__ import annotations

import multiprocessing
import os
import smtplib
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

from bench import data
from bench.harness import (
    SINK_PIPELINING,
    CpuMeter,
    DelayedRelay,
    Environment,
    Result,
    Sink,
    cores_note,
    in_group,
    one_process,
)

PROCESSES = 4
TURNS = 3
#: the round trip to the relay in the second figure, and the most emails it sends
ROUND_TRIP = 0.002
ACROSS = 1_000


def run(env: Environment, app, size: int) -> list[Result]:
    shares = _split(size, TURNS)
    attest, baseline, sizes = [], [], []
    with Sink(env.smtp_port) as sink, \
            ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as clients:
        list(clients.map(_ready, range(PROCESSES)))  # the clients' start is not timed
        worker = env.worker(PROCESSES, DISPATCH_PARALLELISM=PROCESSES)
        _wait_until_ready(env, app, worker)
        # CPU seconds, all turns together: Attest's (workers, PostgreSQL, sink), the baseline's (clients, sink)
        cpu = CpuMeter(workers=in_group(worker.pid), postgres=env.postgres, sink=one_process(sink.process.pid),
                       baseline_sink=one_process(sink.process.pid), clients=None)
        for count in shares:
            with cpu.span("workers", "postgres", "sink", side="attest"):
                attest.append(_campaign(env, app, sink, worker, count))
            sizes.append(sink.average_size)
            with cpu.span("baseline_sink", side="baseline"):
                seconds, clients_cpu = _plain(clients, sink, env.smtp_port, count, sink.average_size)
            baseline.append(seconds)
            cpu.add("clients", clients_cpu)
        env.stop(worker)
    seconds, baseline_seconds = sum(attest), sum(baseline)
    rate, baseline_rate = size / seconds, size / baseline_seconds
    mean_size = round(sum(n * s for n, s in zip(shares, sizes)) / size)
    local = Result(
        "Dispatch", "emails/s", rate, baseline_rate,
        f"{PROCESSES} smtplib clients, persistent connections, pre-built {mean_size}-byte messages",
        "≥ 0.8 × baseline", rate >= 0.8 * baseline_rate,
        notes=[f"{size:,} recipients: {seconds:.1f} s from “Schedule” to the last message in the sink "
               f"({PROCESSES} worker processes); baseline {baseline_seconds:.1f} s",
               f"{TURNS} turns each, alternating, {shares[0]:,} recipients a turn: Attest "
               + ", ".join(f"{s:.1f}" for s in attest) + " s; baseline " + ", ".join(f"{s:.1f}" for s in baseline)
               + " s",
               f"mean message size {mean_size:,} bytes (text + HTML, both languages)",
               "the sink offers PIPELINING, as Postfix and the big relays do, and sends the replies to "
               "pipelined commands together, as RFC 2920 asks: each of Attest's writes ends an email and "
               "starts the next, one round trip per email; smtplib (the baseline) waits for each reply, four"
               if SINK_PIPELINING else
               "the sink does not offer PIPELINING (BENCH_SINK_PIPELINING=0): four round trips per email each",
               *_cpu_notes(cpu, size, (rate, baseline_rate)),
               *cores_note({"Attest": cpu.cores("attest"), "the baseline": cpu.cores("baseline")})])
    return [local, _across_a_network(env, app, min(size, ACROSS))]


def _across_a_network(env: Environment, app, count: int) -> Result:
    """One batch of ``count`` emails over one connection to a relay ROUND_TRIP away (the
    sink behind a relay that holds each reply back), in process; the baseline, one smtplib
    connection sending as many messages of the same size to the same relay. Here what
    limits a connection is the round trips, not the CPU."""
    from survey.campaigns import services
    from survey.core.types import utcnow
    from survey.extensions import db
    from survey.mail.sending import send_batch
    from survey.questionnaires.models import Questionnaire

    questionnaire_id = data.fresh(env, app, count)
    with Sink(env.smtp_port) as sink, DelayedRelay(env.smtp_port, ROUND_TRIP) as relay, app.app_context():
        # due a second from now: "Schedule" then queues no start (no worker runs here), and
        # the start below is the one a worker would make
        send_at = utcnow() + timedelta(seconds=1)
        campaign = services.create_campaign(
            name="Bench dispatch across a network", questionnaire=db.session.get(Questionnaire, questionnaire_id),
            audience_kind="alumnus", audience_filters={}, privacy="identified", send_at=send_at,
            closes_at=send_at + timedelta(days=30), reminders=["P3D"], quiet_hours=None)
        services.schedule_campaign(campaign)
        db.session.commit()
        time.sleep(max(0.0, (send_at - utcnow()).total_seconds()))
        assert services.start_campaign(campaign.id)
        db.session.commit()
        configured = app.config["SMTP_PORT"]
        app.config["SMTP_PORT"] = relay.port
        try:
            started = time.monotonic()
            assert send_batch(count) == count
            sink.wait_for(count, timeout=120)
            seconds = time.monotonic() - started
        finally:
            app.config["SMTP_PORT"] = configured
        size = sink.average_size
        sink.reset()
        started = time.monotonic()
        _send_plain(relay.port, count, _message(size))
        sink.wait_for(count, timeout=120)
        baseline = time.monotonic() - started
    offered = "offers" if SINK_PIPELINING else "does not offer"
    return Result(
        f"Dispatch, one connection, relay {ROUND_TRIP * 1000:.0f} ms away", "emails/s", count / seconds,
        count / baseline, f"one smtplib connection to the same relay, pre-built {size}-byte messages", "—", None,
        notes=[f"{count:,} emails in one batch (claimed, built, sent, recorded): {seconds:.2f} s; baseline "
               f"{baseline:.2f} s",
               f"the relay {offered} PIPELINING: Attest makes one round trip per email where it is offered, "
               "smtplib four"])


def _cpu_notes(cpu: CpuMeter, size: int, rates: tuple[float, float]) -> list[str]:
    """CPU time per email, each side's parts, and what that lets each side reach here: the
    cores shared by all, the sink (one asyncio thread) on one of them at most."""
    ms = cpu.per_item(size)
    if ms is None:
        return []  # no /proc here
    attest = ms["workers"] + ms["postgres"] + ms["sink"]
    baseline = ms["clients"] + ms["baseline_sink"]
    cores = os.cpu_count() or 1
    bounds = (min(cores / attest, 1 / ms["sink"]) * 1000, min(cores / baseline, 1 / ms["baseline_sink"]) * 1000)
    return [f"CPU per email: Attest {attest:.2f} ms (workers {ms['workers']:.2f}, PostgreSQL {ms['postgres']:.2f}, "
            f"sink {ms['sink']:.2f}); baseline {baseline:.2f} ms (clients {ms['clients']:.2f}, sink "
            f"{ms['baseline_sink']:.2f})",
            f"what that allows on {cores} cores, the sink on one at most: Attest {bounds[0]:,.0f} emails/s, "
            f"the baseline {bounds[1]:,.0f} (a ratio of {bounds[0] / bounds[1]:.2f}); reached: "
            f"{rates[0] / bounds[0]:.0%} and {rates[1] / bounds[1]:.0%} of that"]


def _campaign(env: Environment, app, sink: Sink, worker, count: int) -> float:
    """Seconds from "Schedule" to the last of ``count`` invitations in the sink."""
    from survey.campaigns import services
    from survey.core.types import utcnow
    from survey.extensions import db
    from survey.questionnaires.models import Questionnaire
    from workflows.tasks import tick

    questionnaire_id = data.fresh(env, app, count)
    with app.app_context():
        questionnaire = db.session.get(Questionnaire, questionnaire_id)
        campaign = services.create_campaign(
            name="Bench dispatch", questionnaire=questionnaire, audience_kind="alumnus", audience_filters={},
            privacy="identified", send_at=utcnow(), closes_at=utcnow() + timedelta(days=30),
            reminders=["P3D"], quiet_hours=None)
        db.session.commit()
        sink.reset()
        started = time.monotonic()
        services.schedule_campaign(campaign)
        db.session.commit()  # after_commit queues the start, as a click on "Schedule" does
        tick.delay()  # and beat's next poll
    sink.wait_for(count, timeout=max(120, count / 50), stalled=_check_alive(worker))
    return time.monotonic() - started


def _plain(clients: ProcessPoolExecutor, sink: Sink, port: int, count: int, size: int) -> tuple[float, float]:
    """Seconds for the baseline's clients to put ``count`` messages of ``size`` bytes in the
    sink, and the CPU seconds the clients used."""
    sink.reset()
    payload = _message(size)
    shares = _split(count, PROCESSES)
    started = time.monotonic()
    used = sum(clients.map(_send_plain, [port] * PROCESSES, shares, [payload] * PROCESSES))
    sink.wait_for(count, timeout=60)
    return time.monotonic() - started, used


def _wait_until_ready(env, app, worker) -> None:
    """The worker answers a ping (its processes are forked and connected)."""
    deadline = time.monotonic() + 60
    celery = app.extensions["celery"]
    while not celery.control.ping(timeout=0.5):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the Celery worker did not start:\n" + worker.log_path.read_text()[-3000:])


def _check_alive(worker):
    def check():
        if worker.poll() is not None:
            raise RuntimeError("the Celery worker stopped:\n" + worker.log_path.read_text()[-3000:])
    return check


def _message(size: int) -> bytes:
    header = (b"From: Attest <attest@bench.example>\r\nTo: someone@bench.example\r\n"
              b"Subject: Baseline\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
    line = b"x" * 76 + b"\r\n"
    body = line * max(1, (size - len(header)) // len(line))
    return header + body


def _split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares that differ by one at most."""
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


def _ready(_n: int) -> None:
    """Nothing: makes the pool start its processes before anything is timed."""


def _send_plain(port: int, count: int, payload: bytes) -> float:
    """Send ``count`` messages over one connection; the CPU seconds it took."""
    started = time.process_time()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for n in range(count):
            smtp.sendmail("bounce@bench.example", [f"person{n}@bench.example"], payload)
    return time.process_time() - started
