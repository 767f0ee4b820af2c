"""No personal data in the logs: an import, a send and a submission, logged at DEBUG,
leave no address, name or answer in any log record; Celery tasks take ids."""
from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from survey.audiences.models import Stakeholder
from survey.audiences.services import import_audience
from survey.campaigns import services as campaigns
from survey.campaigns.models import Invitation
from survey.extensions import db
from survey.mail.sending import send_batch
from tests.campaigns.helpers import link_path, make_campaign, schedule
from tests.mail.test_bounces import sent  # noqa: F401  (the fixture)

PEOPLE = [("odalie.fenwick@example.org", "Odalie", "Fenwick"),
          ("bertrand.okonkwo@example.org", "Bertrand", "Okonkwo"),
          ("jösé.unsendable@example.org", "Josépha", "Unsendable")]  # needs SMTPUTF8: fails, and is logged
WORDS = "Les mots secrets d'Odalie"


def _logged(records) -> str:
    """Everything the records would write; the test's own SMTP server (aiosmtpd's
    ``mail.log``) stands for the relay, which is not Attest's."""
    lines = []
    for record in records:
        if record.name.startswith("mail.log"):
            continue
        lines.append(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}")
    return "\n".join(lines)


def test_an_import_a_send_and_a_submission_log_ids_only(app, client, alumni, smtp_server, caplog, monkeypatch,
                                                        create_stakeholder):
    caplog.set_level(logging.DEBUG)
    rows = "\n".join(f"{email};{first};{last};2019" for email, first, last in PEOPLE)
    report = import_audience(f"email;prénom;nom;promotion\n{rows}\n".encode(), "alumnus")
    db.session.commit()
    # The importer refuses an address that needs SMTPUTF8; one stored before it did (or by
    # other means) still reaches the sender, which cannot build its email.
    assert (report.created, [row["line"] for row in report.rejected]) == (2, [4])
    create_stakeholder(email=PEOPLE[2][0], first_name=PEOPLE[2][1], last_name=PEOPLE[2][2])

    campaign = make_campaign(alumni)
    queued = schedule(campaign, monkeypatch)
    assert queued == [(campaign.id,)]  # what a worker would log: an id
    assert campaigns.start_campaign(campaign.id)
    db.session.commit()
    assert send_batch(100) == 3
    assert len(smtp_server.wait_for(2)) == 2

    odalie = db.session.scalar(select(Stakeholder).where(Stakeholder.email == PEOPLE[0][0]))
    invitation = db.session.scalar(select(Invitation).where(Invitation.stakeholder_id == odalie.id))
    path = link_path(invitation)
    page = client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    done = client.post(path, data={"csrf_token": token, "activity": "seeking", "outcomes": ["none"],
                                   "comment": WORDS, "submit": "1"})
    assert done.status_code == 200

    logged = _logged(caplog.records)
    assert "cannot build the email (ValueError)" in logged  # the logs were captured, the failure is in them
    needles = [WORDS, *(part for person in PEOPLE for part in person), "jösé", "example.org"]
    assert [needle for needle in needles if needle.lower() in logged.lower()] == []
    assert path.removeprefix("/s/") not in logged  # nor the link's token


def test_sql_is_not_logged_with_its_values(app, app_ctx, caplog, create_stakeholder):
    caplog.set_level(logging.DEBUG)
    create_stakeholder(email="hidden.value@example.org")
    db.session.scalar(select(Stakeholder).where(Stakeholder.email == "hidden.value@example.org"))
    assert "hidden.value" not in _logged(caplog.records)


def test_an_error_that_quotes_an_address_is_logged_without_it(app, app_ctx, caplog, create_stakeholder):
    caplog.set_level(logging.DEBUG)
    create_stakeholder(email="hidden.value@example.org")
    with pytest.raises(IntegrityError) as failure:  # the unique email; PostgreSQL's DETAIL names it
        create_stakeholder(email="hidden.value@example.org")
    db.session.rollback()
    # As Flask logs an error behind a 500 (the path holds a survey link's token).
    app.logger.error("Exception on /s/%s [POST]", "Abcdefghijklmnop_0123456789-xyz", exc_info=failure.value)
    logged = _logged(caplog.records)
    assert "IntegrityError" in logged and "/s/[token]" in logged
    assert "hidden.value" not in logged and "Abcdefghijklmnop" not in logged


def test_the_bounce_report_names_emails_by_id(app, sent, tmp_path):
    """``bounces ingest`` runs from cron, whose output ends up in a log: each line names
    the email by id, even when the relay's diagnostic quotes the address."""
    import mailbox

    from tests.mail.test_bounces import mixed_messages, run

    _campaign_id, (ada, grace) = sent
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(str(path))
    for raw in mixed_messages(ada, grace):
        box.add(raw)
    box.close()
    result = run(app, str(path))
    assert result.exit_code == 0, result.output
    assert "bounce applied: outbox" in result.output and "unsubscribed: invitation" in result.output
    assert "ada@example.org" not in result.output and "grace@example.org" not in result.output


def _eventually(check, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the worker did not get there"
        time.sleep(0.2)
        db.session.expire_all()


def test_a_real_worker_sends_and_applies_retention_without_logging_anyone(
        app, app_ctx, alumni, create_stakeholder, smtp_server, celery_worker_process):
    """Through a real ``celery worker``: a campaign sent, then the retention task; its log
    (task names, arguments, results) names no one."""
    from datetime import timedelta

    from sqlalchemy import update

    from survey.core.types import utcnow
    from workflows import tasks

    people = [create_stakeholder(email=email) for email, _first, _last in PEOPLE[:2]]
    for person, (_email, first, last) in zip(people, PEOPLE):
        person.first_name, person.last_name = first, last
    silent = create_stakeholder(email="silent.worker@example.org")
    db.session.commit()
    campaign = make_campaign(alumni)
    campaigns.schedule_campaign(campaign)
    db.session.commit()  # the start task goes to the broker now
    assert len(smtp_server.wait_for(3)) == 3  # invited, but silent since: emails sent are not activity
    db.session.execute(update(Stakeholder).where(Stakeholder.id == silent.id)
                       .values(created_at=utcnow() - timedelta(days=4 * 365)))
    db.session.commit()
    tasks.apply_retention.delay()
    _eventually(lambda: db.session.get(Stakeholder, silent.id).suppression_reason == "erased")

    log = celery_worker_process.log_path.read_text()
    assert "workflows.tasks.apply_retention" in log and "retention policy applied: " in log
    needles = ["silent.worker", "example.org", *(part for person in PEOPLE[:2] for part in person)]
    assert [needle for needle in needles if needle.lower() in log.lower()] == []
