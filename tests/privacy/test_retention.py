"""The retention policy: due data goes, in committed batches; published counts stay."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from survey.audiences.models import Stakeholder
from survey.audit.chain import verify
from survey.audit.models import AuditEvent
from survey.campaigns.models import Campaign, Invitation, Response
from survey.claims.models import Claim, Evidence
from survey.core.types import utcnow
from survey.extensions import db
from survey.privacy import retention
from survey.reports.document import Selection, build
from survey.reports.models import ReportSnapshot
from survey.reports.publishing import publish
from survey.respond.uploads import evidence_dir
from tests.privacy.conftest import EMAIL, SECRETS, answer, stored_text
from workflows.claims import transition

DAY = timedelta(days=1)


def _decide(claim_id: int, days_ago: int) -> None:
    claim = db.session.get(Claim, claim_id)
    transition(claim, "proven", actor="policy")
    db.session.flush()
    claim.decided_at = utcnow() - days_ago * DAY
    db.session.commit()


def _age_response(response_id, days: int) -> None:
    db.session.execute(update(Response).where(Response.id == response_id)
                       .values(submitted_at=utcnow() - days * DAY))
    db.session.commit()


def _close(campaign: Campaign) -> None:
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id).values(status="closed", closed_at=utcnow()))
    db.session.commit()


def _counts(result) -> dict:
    return {kind: count for kind, count in result.counts.items() if count}


@pytest.fixture
def aged(story, create_stakeholder, member):
    """The story, its claim decided and its answer given 800 days ago, its other
    campaign closed; one person silent for four years; a report published."""
    _decide(story.claim.id, 800)
    _age_response(story.claim.response_id, 800)
    _close(story.other_campaign)
    silent = create_stakeholder(email="silent@example.org")
    long_known = db.session.scalar(select(Invitation.stakeholder_id).where(
        Invitation.campaign_id == story.campaign.id, Invitation.completed_at.is_not(None),
        Invitation.stakeholder_id != story.person.id))
    db.session.execute(update(Stakeholder).where(Stakeholder.id.in_([silent.id, long_known]))
                       .values(created_at=utcnow() - 4 * 365 * DAY))
    snapshot = publish(member("chair"), Selection(campaign_id=story.campaign.id), "Impact")
    db.session.commit()
    return {"silent": silent.id, "long_known": long_known, "snapshot": (snapshot.id, bytes(snapshot.content)),
            "figures": build([story.campaign.id], ())}


def test_the_policy_removes_what_is_due_and_keeps_the_rest(story, aged):
    before = stored_text()
    dry = retention.purge(dry_run=True)
    assert stored_text() == before  # counted, nothing changed
    expected = {"free-text answers": 1, "claim details": 1, "evidence items": 3, "drafts": 1, "people": 1}
    assert _counts(dry) == expected

    done = retention.purge()
    assert _counts(done) == expected
    db.session.expire_all()
    # Answers: free text and files of the old answer gone, its closed answers kept; a recent one untouched.
    old = db.session.get(Response, story.claim.response_id)
    assert set(old.answers) == {"activity", "outcomes", "attribution"}
    assert db.session.scalar(select(func.count()).select_from(Response).where(
        Response.answers["comment"].as_string() == "someone else")) == 1
    # Evidence: rows and file gone; the claim's state stays.
    assert db.session.scalar(select(func.count()).select_from(Evidence)) == 0
    assert not (evidence_dir() / story.stored_file).exists()
    assert db.session.get(Claim, story.claim.id).state == "proven"
    assert db.session.get(Claim, story.claim.id).details == {}
    # The draft of the closed campaign is gone.
    assert db.session.scalar(select(func.count()).select_from(Response).where(Response.submitted_at.is_(None))) == 0
    # People: the silent one erased; one known for long but who answered recently, and the story's person, kept.
    assert db.session.get(Stakeholder, aged["silent"]).suppression_reason == "erased"
    assert db.session.get(Stakeholder, aged["long_known"]).suppression_reason is None
    assert db.session.get(Stakeholder, story.person.id).email == EMAIL
    text = stored_text()
    assert [s for s in (SECRETS["comment"], SECRETS["employer"], SECRETS["contact"], SECRETS["draft"],
                        "silent@example.org") if s in text] == []
    # Nothing published changed, nor the live counts; the audit chain holds.
    snapshot_id, content = aged["snapshot"]
    assert bytes(db.session.get(ReportSnapshot, snapshot_id).content) == content
    assert build([story.campaign.id], ()) == aged["figures"]
    assert verify().ok
    # The claim's trail says where its evidence and details went: the auditor who samples it
    # finds a reason, not a silence.
    trail = {event.action: event for event in db.session.scalars(
        select(AuditEvent).where(AuditEvent.subject == f"claim:{story.claim.id}"))}
    assert trail["evidence_purged"].actor == "retention"
    assert sorted(item["kind"] for item in trail["evidence_purged"].data["evidence"]) == ["contact", "file", "link"]
    assert [item["sha256"] for item in trail["evidence_purged"].data["evidence"] if item["kind"] == "file"]
    assert "details_purged" in trail
    # A second run finds nothing to do.
    assert _counts(retention.purge()) == {}


def test_the_daily_run_reads_each_answer_once_not_the_whole_history_again(story, aged):
    """An old answer with nothing left to remove is marked as such, like a stripped one:
    the purge's daily work follows what has come due, not how much history there is."""
    silent = db.session.scalar(select(Stakeholder).join(Invitation, Invitation.stakeholder_id == Stakeholder.id)
                               .where(Invitation.campaign_id == story.campaign.id,
                                      Invitation.completed_at.is_(None)).limit(1))
    answer(story.campaign, silent, {"activity": "seeking", "outcomes": ["none"]})  # nothing personal in it
    db.session.execute(update(Response).where(Response.submitted_at.is_not(None))
                       .values(submitted_at=utcnow() - 800 * DAY))
    db.session.commit()
    old = db.session.scalar(select(func.count(Response.id)).where(Response.submitted_at.is_not(None)))
    assert retention.purge().counts["free-text answers"] == old - 1

    read = []

    def loaded(target, context):
        read.append(target.id)

    db.session.remove()
    event.listen(Response, "load", loaded)
    try:
        assert _counts(retention.purge()) == {}
    finally:
        event.remove(Response, "load", loaded)
    assert read == []


def test_a_claim_under_review_keeps_its_evidence_and_recent_data_stays(story):
    _age_response(story.claim.response_id, 800)  # old answer, but its claim is still in review
    result = retention.purge()
    assert _counts(result) == {}
    assert (evidence_dir() / story.stored_file).exists()
    assert db.session.get(Response, story.claim.response_id).answers["comment"] == SECRETS["comment"]


@pytest.mark.parametrize("setting, kinds", [
    ("RETENTION_ANSWERS_DAYS", ("free-text answers", "claim details")),
    ("RETENTION_EVIDENCE_DAYS", ("evidence items",)),
    ("RETENTION_CONTACT_DAYS", ("people",)),
])
def test_zero_days_keeps_a_kind_forever(story, aged, app, monkeypatch, setting, kinds):
    monkeypatch.setitem(app.config, setting, 0)
    counts = retention.purge(dry_run=True).counts
    assert [counts[kind] for kind in kinds] == [0] * len(kinds)
    assert sum(counts.values()) > 0  # the other kinds still go


def test_a_run_killed_midway_is_finished_by_the_next(story, app, monkeypatch):
    _decide(story.claim.id, 400)  # its three evidence items are due, nothing else
    real_done, batches = retention._done, []

    def killed_after_one_batch(result):
        if batches:
            raise RuntimeError("worker killed")
        batches.append(1)
        real_done(result)

    monkeypatch.setattr(retention, "_done", killed_after_one_batch)
    with pytest.raises(RuntimeError):
        retention.purge(batch=1)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Evidence)) == 2  # the first batch is kept

    monkeypatch.setattr(retention, "_done", real_done)
    assert _counts(retention.purge(batch=1)) == {"evidence items": 2}
    assert db.session.scalar(select(func.count()).select_from(Evidence)) == 0
    assert not (evidence_dir() / story.stored_file).exists()
    assert verify().ok


def test_beat_runs_the_policy_daily_through_the_task(story, aged, app):
    from workflows import tasks

    entry = app.extensions["celery"].conf.beat_schedule["retention"]
    assert entry == {"task": "workflows.tasks.apply_retention", "schedule": 86400.0}
    tasks.apply_retention()
    db.session.expire_all()
    assert db.session.get(Stakeholder, aged["silent"]).suppression_reason == "erased"
    assert db.session.scalar(select(func.count()).select_from(Evidence)) == 0


def test_the_purge_command_and_its_dry_run(story, aged, cli):
    dry = cli("people", "purge", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Would remove:" in dry.output and "evidence items: 3" in dry.output
    assert db.session.scalar(select(func.count()).select_from(Evidence)) == 3
    done = cli("people", "purge")
    assert done.exit_code == 0 and "Removed:" in done.output and "people: 1" in done.output
    assert db.session.scalar(select(func.count()).select_from(Evidence)) == 0


def test_an_old_answer_keeps_a_file_that_is_evidence_of_a_recent_decision(story):
    _decide(story.claim.id, 10)  # decided ten days ago: its evidence is kept for a year
    _age_response(story.claim.response_id, 800)  # but the answer is older than every retention
    result = retention.purge()
    assert _counts(result) == {"free-text answers": 1}
    assert "evidence_file" not in db.session.get(Response, story.claim.response_id).answers
    assert (evidence_dir() / story.stored_file).exists()
    assert db.session.scalar(select(func.count()).select_from(Evidence)) == 3
