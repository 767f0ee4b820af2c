"""Celery tasks: each takes ids, calls one idempotent service, commits.

Beat runs ``tick`` every BEAT_INTERVAL seconds; everything that is due lives in
the database, so a lost task or a restarted broker costs at most one tick.
"""
from __future__ import annotations

from celery import shared_task
from flask import current_app

from survey.extensions import db


@shared_task(name="workflows.tasks.tick")
def tick() -> None:
    """Start due campaigns, recover abandoned sends, open and close campaigns, and start
    the senders when emails or reminders are due (the senders queue the reminders, a
    batch at a time); ask for the audit chain's check when one is due. Every step is
    idempotent: two beats running at once do no harm."""
    from survey.audit.checks import check_due, start_check
    from survey.campaigns import services as campaigns
    from survey.mail import sending

    for campaign_id in campaigns.campaigns_due_to_start():
        start_campaign.delay(campaign_id)
    for campaign_id in campaigns.campaigns_to_resume_inviting():
        invite_audience.delay(campaign_id)
    if check_due():
        check = start_check("beat")
        db.session.commit()
        check_audit_chain.delay(check.id)
    sending.release_expired_leases()
    campaigns.close_due_campaigns()  # first: a closed campaign gets no more reminders
    campaigns.open_sent_campaigns()
    db.session.commit()
    waiting = sending.work_waiting()  # emails or reminders due, and nobody sending
    db.session.commit()
    if waiting:
        kick_senders()


@shared_task(name="workflows.tasks.committee_reminders")
def committee_reminders() -> None:
    """Hourly: this week's reminders to reviewers with overdue reviews, and the chair's digest."""
    from survey.claims.reminders import queue_committee_reminders
    from survey.core.types import utcnow

    if queue_committee_reminders(utcnow()):
        db.session.commit()
        kick_senders()


@shared_task(name="workflows.tasks.apply_retention")
def apply_retention() -> None:
    """Daily: the retention policy (survey/privacy/retention.py), in committed batches;
    a run killed midway is finished by the next, and a second run finds nothing to do."""
    from survey.privacy.retention import purge

    removed = purge().counts
    current_app.logger.info("retention policy applied: %s", ", ".join(f"{k} {v}" for k, v in removed.items()))


@shared_task(name="workflows.tasks.check_audit_chain")
def check_audit_chain(check_id: int) -> None:
    """Check the whole audit chain from its first event and keep the result (beat asks
    for one every AUDIT_CHECK_INTERVAL); the trail's page builds on the last one."""
    from survey.audit.checks import run_check

    run_check(check_id)


@shared_task(name="workflows.tasks.start_campaign")
def start_campaign(campaign_id: int) -> None:
    from survey.campaigns.services import refresh_queue_statistics
    from survey.campaigns.services import start_campaign as start

    started = start(campaign_id)
    db.session.commit()
    if started:
        refresh_queue_statistics()
        kick_senders()  # the first chunk's emails go out while the rest are invited
        invite_audience(campaign_id)


@shared_task(name="workflows.tasks.invite_audience")
def invite_audience(campaign_id: int) -> None:
    """Invite the rest of a sending campaign's audience, a chunk per transaction (each
    chunk's emails can go as soon as it commits); resumed by beat if the worker dies."""
    from survey.campaigns.services import add_invitations

    while add_invitations(campaign_id):
        db.session.commit()
    db.session.commit()


#: batches a sending task sends, and seconds after which it takes no more, before another
#: task takes over (other tasks, such as a campaign's start, get a worker in between)
BATCHES_PER_TASK, SECONDS_PER_TASK = 10, 20.0


@shared_task(name="workflows.tasks.send_due_emails")
def send_due_emails() -> None:
    """Send due emails, a batch at a time, each batch after queueing a batch's worth of
    due reminders; after BATCHES_PER_TASK batches or SECONDS_PER_TASK seconds, while there
    is work, another task takes over."""
    from survey.campaigns.reminders import queue_due_reminders
    from survey.campaigns.services import open_sent_campaigns
    from survey.mail.sending import send_batches

    size = current_app.config["DISPATCH_BATCH_SIZE"]
    if send_batches(size, BATCHES_PER_TASK, SECONDS_PER_TASK, before=lambda: queue_due_reminders(limit=size)):
        send_due_emails.delay()
    else:  # the queue ran dry: campaigns whose invitations are all out are now open
        open_sent_campaigns()
        db.session.commit()


@shared_task(name="workflows.tasks.send_message")
def send_message(outbox_id: int) -> None:
    """Send one email now (e.g. a notice that should not wait for the next batch);
    running it twice, or fifty times at once, sends it once."""
    from survey.mail.sending import send_message as send

    send(outbox_id)


def kick_senders() -> None:
    """Start as many sending chains as there are workers to run them."""
    for _ in range(current_app.config["DISPATCH_PARALLELISM"]):
        send_due_emails.delay()
