"""Report: one million responses and their claims; the full impact report (every
figure, both default breakdowns, the employee part). Baseline: one raw GROUP BY over
the same invitations and their people, the least a breakdown of them costs."""
from __future__ import annotations

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
    return Result(
        "Report", "s", seconds, baseline, "one GROUP BY programme over the invitations joined to their people",
        "≤ 2 × baseline and < 0.5 s for 1,000,000 responses", seconds <= 2 * baseline and seconds < goal,
        higher_is_better=False,
        notes=[f"{size:,} invitations, {responses:,} responses, {claims:,} claims; median of {RUNS} runs: "
               f"report {seconds:.3f} s, baseline {baseline:.3f} s"])


def _timed(function) -> float:
    started = time.monotonic()
    function()
    return time.monotonic() - started
