"""Report: one million responses and their claims; the full impact report (every
figure, both default breakdowns, the employee part). Baseline: one raw GROUP BY over
the same invitations and their people, the least a breakdown of them costs.

On the same rows, the pages people open while a campaign that large runs (no goal of
their own, kept so a slower page shows): the admin's campaign page (counts, funnel, a
page of recipients) against one raw pass over the campaign's invitations, and the
chair's list of every claim (400,000 here) against one raw count of the claims."""
from __future__ import annotations

import re
import secrets
import statistics
import time

from bench import data
from bench.harness import Environment, Result

BASELINE = """
    SELECT s.attributes ->> 'programme', count(*), count(i.completed_at)
    FROM invitations i JOIN stakeholders s ON s.id = i.stakeholder_id
    WHERE i.campaign_id = %s GROUP BY 1
"""
RUNS = 5


def run(env: Environment, app, size: int) -> Result:
    import psycopg

    from survey.extensions import db
    from survey.reports.document import build

    questionnaire_id = data.fresh(env, app, size)
    campaign_id = data.campaign(env, questionnaire_id, "open")
    data.invitations(env, campaign_id, completed_share=1.0, reminder_due=False)
    data.responses_and_claims(env, campaign_id)
    env.psql("VACUUM ANALYZE")
    [(responses,)] = env.psql("SELECT count(*) FROM responses")
    [(claims,)] = env.psql("SELECT count(*) FROM claims")

    with psycopg.connect(env.database_url) as conn:
        conn.execute(BASELINE, (campaign_id,)).fetchall()  # warm, as the report is below
        baseline = statistics.median(_timed(lambda: conn.execute(BASELINE, (campaign_id,)).fetchall())
                                     for _ in range(RUNS))
    with app.app_context():
        document = build([campaign_id])
        assert document["figures"]["invited"] == size
        seconds = statistics.median(_timed(lambda: build([campaign_id])) for _ in range(RUNS))
        db.session.rollback()
    goal = 0.5 * size / 1_000_000
    report = Result(
        "Report", "s", seconds, baseline, "one GROUP BY programme over the invitations joined to their people",
        "≤ 2 × baseline and < 0.5 s for 1,000,000 responses", seconds <= 2 * baseline and seconds < goal,
        higher_is_better=False,
        notes=[f"{size:,} invitations, {responses:,} responses, {claims:,} claims; median of {RUNS} runs: "
               f"report {seconds:.3f} s, baseline {baseline:.3f} s"])
    return [report, *_pages(env, app, campaign_id, size, claims)]


PROGRESS = """
    SELECT count(*), count(sent_at), count(opened_at), count(started_at), count(completed_at)
    FROM invitations WHERE campaign_id = %s
"""


def _pages(env: Environment, app, campaign_id: int, size: int, claims: int) -> list[Result]:
    """GET each page as its user (logged in, in process); the median of RUNS."""
    import psycopg

    with psycopg.connect(env.database_url) as conn:
        progress = statistics.median(_timed(lambda: conn.execute(PROGRESS, (campaign_id,)).fetchall())
                                     for _ in range(RUNS))
        counted = statistics.median(_timed(lambda: conn.execute("SELECT count(*) FROM claims").fetchall())
                                    for _ in range(RUNS))
    pages = [("Campaign page", _client(app, "admin"), f"/admin/campaigns/{campaign_id}", progress,
              "one pass over the campaign's invitations (the progress counts), raw psycopg",
              f"{size:,} invitations"),
             ("Chair's list of claims", _client(app, "chair"), "/committee/claims", counted,
              "one count of the claims, raw psycopg", f"{claims:,} claims, a page of 50")]
    results = []
    for name, client, path, baseline, baseline_name, rows in pages:
        assert client.get(path).status_code == 200  # warm, as the baseline is
        seconds = statistics.median(_timed(lambda: client.get(path)) for _ in range(RUNS))
        results.append(Result(name, "s", seconds, baseline, baseline_name, "—", None,
                              higher_is_better=False,
                              notes=[f"{rows}; median of {RUNS} GETs: {seconds:.3f} s, baseline {baseline:.3f} s"]))
    return results


def _client(app, role: str):
    """A test client logged in as a new user of ``role``."""
    from survey.accounts.services import create_user
    from survey.extensions import db

    email, password = f"{role}-{secrets.token_hex(4)}@bench.example", secrets.token_urlsafe(16)
    with app.app_context():
        create_user(email, password, role)
        db.session.commit()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": csrf})
    assert response.status_code == 302, response.status_code
    return client


def _timed(function) -> float:
    started = time.monotonic()
    function()
    return time.monotonic() - started
