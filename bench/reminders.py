"""Reminders: one million invitations, 30 % completed, the others' reminder due now.

Beat does not write a million outbox rows when they fall due: it sees that reminders
are due (one index probe) and starts the senders, which queue them a batch at a time
as they send (survey/campaigns/reminders.py). So two figures:

- due → sending: beat's whole tick, from the reminders falling due to the senders
  started; the goal is under 5 s. Baseline: the one INSERT … SELECT (and UPDATE) a
  hand-written job would run to queue them all at once, rolled back.
- queueing rate: the senders' queueing of every due reminder, a batch of
  DISPATCH_BATCH_SIZE at a time (without sending), in reminders/s; baseline: the same
  INSERT … SELECT's rate.
"""
from __future__ import annotations

import time

from bench import data
from bench.harness import Environment, Result

BASELINE = """
    INSERT INTO outbox_messages (invitation_id, kind, sequence, status, attempts, next_attempt_at, created_at)
    SELECT i.id, 'reminder', i.reminders_sent + 1, 'queued', 0, now(), now()
    FROM invitations i JOIN campaigns c ON c.id = i.campaign_id JOIN stakeholders s ON s.id = i.stakeholder_id
    WHERE i.next_reminder_at <= now() AND i.status IN ('sent', 'opened', 'started') AND i.completed_at IS NULL
      AND i.opted_out_at IS NULL AND c.status IN ('sending', 'open') AND c.closes_at > now()
      AND s.suppressed_at IS NULL
"""


def run(env: Environment, app, size: int) -> list[Result]:
    import psycopg

    from survey.campaigns.reminders import queue_due_reminders
    from survey.extensions import db
    from workflows import tasks

    questionnaire_id = data.fresh(env, app, size)
    campaign_id = data.campaign(env, questionnaire_id, "open")
    data.invitations(env, campaign_id, completed_share=0.3, reminder_due=True)
    due = size - size // 3  # every third person answered

    with psycopg.connect(env.database_url) as conn:
        started = time.monotonic()
        baseline_queued = conn.execute(BASELINE).rowcount
        conn.execute("UPDATE invitations SET next_reminder_at = NULL WHERE next_reminder_at <= now()")
        baseline = time.monotonic() - started
        conn.rollback()
    env.psql("VACUUM ANALYZE outbox_messages")
    env.psql("VACUUM ANALYZE invitations")

    with app.app_context():
        kicked = []
        original, tasks.kick_senders = tasks.kick_senders, lambda: kicked.append(1)
        try:
            started = time.monotonic()
            tasks.tick.run()  # beat's poll, in this process (the senders' start is noted, not queued)
            tick = time.monotonic() - started
        finally:
            tasks.kick_senders = original
        assert kicked, "beat did not start the senders"

        batch = app.config["DISPATCH_BATCH_SIZE"]
        queued, started = 0, time.monotonic()
        while True:
            added = queue_due_reminders(limit=batch)
            db.session.commit()
            if not added:
                break
            queued += added
        queueing = time.monotonic() - started
    assert queued == baseline_queued == due, (queued, baseline_queued, due)
    return [
        Result("Reminders: due → sending", "s", tick, baseline, "the one INSERT … SELECT + UPDATE queueing them all",
               "< 5 s for 1,000,000 invitations", tick < 5 * max(size, 1) / 1_000_000, higher_is_better=False,
               notes=[f"{size:,} invitations, {size - due:,} completed, {due:,} reminders due: beat's tick took "
                      f"{tick:.3f} s to see them and start the senders; queueing them all in one statement "
                      f"took {baseline:.1f} s"]),
        Result("Reminders: queueing rate", "reminders/s", queued / queueing, baseline_queued / baseline,
               "the same INSERT … SELECT + UPDATE, in one statement", "—", None,
               notes=[f"the senders' share of the work: {queued:,} reminders queued {batch} at a time in "
                      f"{queueing:.1f} s, without sending (sending them is the dispatch scenario's work)"]),
    ]
