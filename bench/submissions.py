"""Submissions: gunicorn (two sync workers, one per core), 16 respondents at once, each
posting a complete form (CSRF token and session cookie from their own page) to their
own link; the answer claims a promotion, so each POST also creates a claim for the
committee. Baseline: a minimal WSGI endpoint inserting one row with raw psycopg
(bench/baseline_app.py), served the same way, posted the same body."""
from __future__ import annotations

import http.client
import multiprocessing
import os
import re
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

from bench import data
from bench.harness import CpuMeter, Environment, Result, cores_note, free_port, in_group

CONCURRENCY = 16
CLIENT_PROCESSES = 4
WORKERS = 2
#: Attest and the baseline alternate, each posting a share of the respondents per turn
ROUNDS = 3
ANSWERS = [("activity", "employed_full_time"), ("outcomes", "promotion"), ("attribution", "4"),
           ("employer", "Acme"), ("role", "Team lead"), ("start_date", "2026-03-01"), ("salary_change", "12"),
           ("comment", "The course helped me lead a team."), ("consent_contact", "y"), ("submit", "1")]


def run(env: Environment, app, size: int) -> Result:
    tokens = _links(env, app, size)
    env.psql("CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, token text, answers text, "
             "created_at timestamptz DEFAULT now())")
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    servers, ports = [], {}
    for name, target, extra in (("gunicorn", "wsgi:app", None),
                                ("baseline", "bench.baseline_app:app", {"BENCH_BASELINE_DSN": env.database_url})):
        ports[name] = free_port()
        servers.append(env.start(name, [gunicorn, "-w", str(WORKERS), "-b", f"127.0.0.1:{ports[name]}",
                                        "--backlog", "256", target], ready="Booting worker", env=extra))
    _wait_http(ports["gunicorn"], "/")  # (not the baseline's: any request it gets inserts a row)
    # The load generator's processes start once, before anything is timed.
    with ProcessPoolExecutor(CLIENT_PROCESSES, mp_context=multiprocessing.get_context("spawn")) as clients:
        pages = _in_clients(clients, _open_pages, ports["gunicorn"], tokens)  # each opens their link (not timed)
        baseline_pages = [(f"/b/{path.rsplit('/', 1)[-1]}", "", pages[0][2]) for path, _cookie, _body in pages]
        # Attest and the baseline take turns, a share of the respondents each time: a slow
        # spell of the machine (it has them) then falls on both sides, not on one.
        latencies, seconds, baseline_latencies, baseline_seconds = [], 0.0, [], 0.0
        # CPU seconds, all turns together, of each side's server, PostgreSQL and load generator
        # (the autovacuum's work falls in them too, on whichever side it runs)
        cpu = {side: CpuMeter(server=in_group(server.pid), postgres=env.postgres, clients=None)
               for side, server in zip(("gunicorn", "baseline"), servers)}
        with env.autovacuum(("claims", "reviews", "responses", "invitations", "audit_events", "audit_head")):
            for turn in range(ROUNDS):
                for side, share in (("gunicorn", pages[turn::ROUNDS]), ("baseline", baseline_pages[turn::ROUNDS])):
                    with cpu[side].span("server", "postgres", side=side):
                        timed, elapsed, clients_cpu = _timed_posts(clients, ports[side], share)
                    cpu[side].add("clients", clients_cpu)
                    if side == "gunicorn":
                        latencies, seconds = latencies + timed, seconds + elapsed
                    else:
                        baseline_latencies, baseline_seconds = baseline_latencies + timed, baseline_seconds + elapsed
    assert len(latencies) == len(baseline_latencies) == size
    [(responses,)] = env.psql("SELECT count(*) FROM responses WHERE submitted_at IS NOT NULL")
    [(claims,)] = env.psql("SELECT count(*) FROM claims")
    [(rows,)] = env.psql("SELECT count(*) FROM bench_baseline")
    assert responses == claims == rows == size, (responses, claims, rows, size)
    for server in servers:
        env.stop(server)

    rate, baseline_rate = size / seconds, size / baseline_seconds
    p99 = _percentile(latencies, 99) * 1000
    return Result(
        "Submissions", "POST/s", rate, baseline_rate,
        f"a WSGI function inserting one row with raw psycopg, same gunicorn ({WORKERS} sync workers), same body",
        "≥ 0.5 × baseline, p99 < 150 ms at 16 concurrent", rate >= 0.5 * baseline_rate and p99 < 150,
        notes=[f"{size:,} respondents, {CONCURRENCY} at once, each a complete answer with a claim: "
               f"p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99:.0f} ms; "
               f"baseline p50 {statistics.median(baseline_latencies) * 1000:.0f} ms, "
               f"p99 {_percentile(baseline_latencies, 99) * 1000:.0f} ms",
               f"Attest and the baseline took {ROUNDS} turns each, a share of the respondents per turn",
               f"gunicorn {WORKERS} sync workers; the load generator ({CLIENT_PROCESSES} processes × "
               f"{CONCURRENCY // CLIENT_PROCESSES} threads) runs on the same two cores",
               *_cpu_notes(cpu, size, (rate, baseline_rate)),
               *cores_note({"Attest": cpu["gunicorn"].cores("gunicorn"),
                            "the baseline": cpu["baseline"].cores("baseline")})])


def _cpu_notes(cpu: dict[str, CpuMeter], size: int, rates: tuple[float, float]) -> list[str]:
    """CPU time per answer, each side's parts, and the rate that allows on these cores."""
    ms = {side: meter.per_item(size) for side, meter in cpu.items()}
    if None in ms.values():
        return []  # no /proc here
    totals = {side: sum(parts.values()) for side, parts in ms.items()}
    cores = os.cpu_count() or 1
    bounds = (cores / totals["gunicorn"] * 1000, cores / totals["baseline"] * 1000)

    def parts(side: str) -> str:
        return ", ".join(f"{name} {ms[side][name]:.2f}" for name in ("server", "postgres", "clients"))

    return [f"CPU per answer: Attest {totals['gunicorn']:.2f} ms ({parts('gunicorn')}); baseline "
            f"{totals['baseline']:.2f} ms ({parts('baseline')})",
            f"what that allows on {cores} cores: Attest {bounds[0]:,.0f} POST/s, the baseline {bounds[1]:,.0f} "
            f"(a ratio of {bounds[0] / bounds[1]:.2f}); reached: {rates[0] / bounds[0]:.0%} and "
            f"{rates[1] / bounds[1]:.0%} of that"]


def _links(env: Environment, app, size: int) -> list[str]:
    """``size`` people invited to an open campaign; their link tokens."""
    import secrets

    from survey.accounts.services import create_user
    from survey.campaigns.models import Invitation
    from survey.campaigns.services import INVITATION_COLUMNS, invitation_token, unsubscribe_token
    from survey.core.bulk import insert_rows
    from survey.core.tokens import hash_token
    from survey.core.types import utcnow
    from survey.extensions import db

    questionnaire_id = data.fresh(env, app, size)
    with app.app_context():
        for number in range(6):  # each claim is assigned two reviewers as it is created
            create_user(f"member{number}@bench.example", secrets.token_urlsafe(16), "committee")
        db.session.commit()
        campaign_id = data.campaign(env, questionnaire_id, "open")
        now, rows, tokens = utcnow(), [], []
        for stakeholder_id in range(1, size + 1):
            nonce = secrets.token_hex(16)
            tokens.append(invitation_token(nonce))
            rows.append((campaign_id, stakeholder_id, nonce, hash_token(tokens[-1]),
                         hash_token(unsubscribe_token(nonce)), "sent", 0, now))
        insert_rows(Invitation.__table__, INVITATION_COLUMNS, rows)
        db.session.commit()
    return tokens


def _wait_http(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _in_clients(clients: ProcessPoolExecutor, function, port: int, items: list) -> list:
    """``function(port, share)`` in each client process; the results in order."""
    shares = [items[n::CLIENT_PROCESSES] for n in range(CLIENT_PROCESSES)]
    parts = list(clients.map(function, [port] * CLIENT_PROCESSES, shares))
    return [item for part in parts for item in part]


def _open_pages(port: int, tokens: list[str]) -> list[tuple[str, str, str]]:
    """GET each link: (path, session cookie, the form body with its CSRF token)."""
    out = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for token in tokens:
        connection.request("GET", f"/s/{token}")
        response = connection.getresponse()
        page = response.read().decode()
        assert response.status == 200, (response.status, page[:500])
        cookie = response.getheader("Set-Cookie", "").split(";", 1)[0]
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
            re.search(r'name="csrf_token" value="([^"]+)"', page)
        out.append((f"/s/{token}", cookie, urlencode([("csrf_token", csrf.group(1)), *ANSWERS])))
    return out


def _timed_posts(clients: ProcessPoolExecutor, port: int,
                 requests: list[tuple[str, str, str]]) -> tuple[list[float], float, float]:
    """Each request's latency, the seconds they all took, and the CPU seconds of the clients."""
    started = time.monotonic()
    shares = [requests[n::CLIENT_PROCESSES] for n in range(CLIENT_PROCESSES)]
    parts = list(clients.map(_post_all, [port] * CLIENT_PROCESSES, shares))
    elapsed = time.monotonic() - started
    return [latency for latencies, _cpu in parts for latency in latencies], elapsed, sum(cpu for _l, cpu in parts)


def _post_all(port: int, requests: list[tuple[str, str, str]]) -> tuple[list[float], float]:
    """POST each request from CONCURRENCY / CLIENT_PROCESSES threads; each one's latency,
    and the CPU seconds this process spent."""
    cpu = time.process_time()
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    pending = list(reversed(requests))

    def client():
        try:
            send()
        except BaseException as exc:  # noqa: BLE001 (raised again below, in the caller's thread)
            errors.append(exc)

    def send():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if not pending:
                    return
                path, cookie, body = pending.pop()
            started = time.monotonic()
            headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            page = response.read()
            elapsed = time.monotonic() - started
            assert response.status == 200, (response.status, re.sub(rb"\s+", b" ", page)[-1500:])
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY // CLIENT_PROCESSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return latencies, time.process_time() - cpu


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]
