"""The submissions baseline: the least a survey POST can cost in the same server set-up
(gunicorn, same workers): read the form, insert one row with raw psycopg, answer 200.
``gunicorn bench.baseline_app:app`` with BENCH_BASELINE_DSN set."""
from __future__ import annotations

import os
from urllib.parse import parse_qs

import psycopg

_connection = None


def app(environ, start_response):
    global _connection
    if _connection is None or _connection.closed:  # one per worker process, reused
        _connection = psycopg.connect(os.environ["BENCH_BASELINE_DSN"], autocommit=True)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    form = parse_qs(environ["wsgi.input"].read(length).decode())
    _connection.execute("INSERT INTO bench_baseline (token, answers) VALUES (%s, %s)",
                        (environ["PATH_INFO"].rsplit("/", 1)[-1], form.get("activity", [""])[0]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"recorded"]
