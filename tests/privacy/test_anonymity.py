"""Anonymous campaigns: nothing stored tells which answer is whose, not a link column,
not a time, not the order of the rows nor the transaction that wrote them (rowid on
SQLite, xmin and ctid on PostgreSQL)."""
from __future__ import annotations

import io
import os
import uuid

from sqlalchemy import select, text
from werkzeug.datastructures import FileStorage

from survey.audit.models import AuditEvent
from survey.campaigns.models import Invitation, Response
from survey.extensions import db
from survey.respond import services as respond
from survey.respond.uploads import evidence_dir, store_upload
from tests.campaigns.helpers import counted_queries, started_campaign
from tests.conftest import at_once
from tests.privacy.conftest import PDF


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _storage(table: str) -> dict:
    """id → how the row is stored: (xmin, ctid) on PostgreSQL, the rowid on SQLite."""
    if _postgresql():
        rows = db.session.execute(text(f"SELECT id, xmin::text, ctid::text FROM {table}"))
        return {row[0]: (row[1], row[2]) for row in rows}
    return {row[0]: row[1] for row in db.session.execute(text(f"SELECT id, rowid FROM {table}"))}


def _row_ids() -> list[uuid.UUID]:
    return [uuid.UUID(str(key)) for key in _storage("responses")]


def _anonymous(alumni, create_stakeholder, monkeypatch, people: int):
    persons = [create_stakeholder(locale=("fr" if n % 2 else "en"), department="Sales") for n in range(people)]
    campaign = started_campaign(alumni, monkeypatch, privacy="anonymous")
    invitations = {i.stakeholder_id: i for i in db.session.scalars(
        select(Invitation).where(Invitation.campaign_id == campaign.id))}
    return campaign, [invitations[p.id] for p in persons]


def test_two_answers_cannot_be_told_apart_by_what_is_stored(app_ctx, alumni, create_stakeholder, monkeypatch):
    campaign, (first, second) = _anonymous(alumni, create_stakeholder, monkeypatch, 2)
    respond.save_draft(first, {"activity": "seeking"}, "fr")  # a draft, resumed later
    db.session.commit()
    respond.submit_response(first, {"activity": "volunteering", "outcomes": ["none"]}, "fr")
    db.session.commit()
    first_written = _storage("responses")
    first_completion = _storage("invitations")[first.id]
    with counted_queries() as statements:
        respond.submit_response(second, {"activity": "seeking", "outcomes": ["none"]}, "en")
        db.session.commit()

    db.session.expire_all()
    rows = db.session.scalars(select(Response).where(Response.campaign_id == campaign.id)).all()
    assert sorted(r.answers["activity"] for r in rows) == ["seeking", "volunteering"]
    # No link, no time, no language, no draft: every column but the answers is the same.
    same = {(r.invitation_id, r.started_at, r.submitted_at, r.locale, repr(r.segment)) for r in rows}
    assert len(same) == 1
    assert same.pop()[:2] == (None, None)
    assert db.session.scalar(select(Response.id).where(Response.invitation_id.is_not(None))) is None
    # The second submission rewrote the first answer too, in a random order: both rows come
    # from one transaction, and neither is where the first answer was first written.
    # (SQLite gives the new rows the smallest free rowids again: 1 and 2, in a random order.)
    written = [sql for sql in statements if sql.lstrip().upper().startswith(("INSERT INTO RESPONSES",
                                                                             "DELETE FROM RESPONSES"))]
    assert [sql.split()[0].upper() for sql in written] == ["DELETE", "INSERT", "INSERT"]
    stored = _storage("responses")
    if _postgresql():
        assert len({xmin for xmin, _ctid in stored.values()}) == 1
        assert first_completion[0] not in {xmin for xmin, _ctid in stored.values()}
        assert not set(ctid for _x, ctid in stored.values()) & set(ctid for _x, ctid in first_written.values())
    # And the audit trail says nothing about anonymous answers: only the campaign's own
    # events (created, scheduled, sending…), none of an answer, an invitation or a person.
    assert {event.subject.split(":")[0] for event in db.session.scalars(select(AuditEvent))} <= {"campaign"}


def test_the_order_of_rows_says_nothing_of_the_order_of_answers(app_ctx, alumni, create_stakeholder, monkeypatch):
    campaign, invited = _anonymous(alumni, create_stakeholder, monkeypatch, 6)
    for number, invitation in enumerate(invited):
        respond.submit_response(invitation, {"activity": "seeking", "outcomes": ["none"], "salary_change": number},
                                invitation.stakeholder.locale)
        db.session.commit()
    stored = _storage("responses")
    assert len(stored) == 6
    if _postgresql():  # one transaction wrote them all: the last one's
        assert len({xmin for xmin, _ctid in stored.values()}) == 1
    # Every earlier answer was moved by the last submission, so nothing remains of the order
    # in which they came but a random shuffle (the ids are random too).
    responses = db.session.scalars(select(Response).where(Response.campaign_id == campaign.id)).all()
    assert sorted(r.answers["salary_change"] for r in responses) == list(range(6))
    assert all(r.id.version == 4 for r in responses)


def test_an_uploaded_file_keeps_no_time_of_its_own(app_ctx, alumni, create_stakeholder, monkeypatch):
    campaign, (invitation,) = _anonymous(alumni, create_stakeholder, monkeypatch, 1)
    upload = store_upload(FileStorage(io.BytesIO(PDF), filename="proof.pdf"))
    respond.submit_response(invitation, {"activity": "seeking", "outcomes": ["none"], "evidence_file": upload}, "en")
    db.session.commit()
    [response] = db.session.scalars(select(Response).where(Response.campaign_id == campaign.id)).all()
    modified = os.stat(evidence_dir() / upload["stored_as"]).st_mtime
    assert modified == response.submitted_at.timestamp()


def test_identified_answers_are_not_mixed(app_ctx, alumni, create_stakeholder, monkeypatch):
    first, second = create_stakeholder(), create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch, privacy="confidential")
    for person in (first, second):
        invitation = db.session.scalar(select(Invitation).where(
            Invitation.campaign_id == campaign.id, Invitation.stakeholder_id == person.id))
        respond.submit_response(invitation, {"activity": "seeking", "outcomes": ["none"]}, "en")
        db.session.commit()
    assert len(_row_ids()) == 2
    assert db.session.scalar(select(Response.id).where(Response.invitation_id.is_(None))) is None


def test_people_answering_at_once_are_all_stored(app, app_ctx, alumni, create_stakeholder, monkeypatch):
    """Submissions mixing the same earlier answers at the same moment skip each other's
    rows: none fails, none is lost, none is stored twice."""

    campaign, invited = _anonymous(alumni, create_stakeholder, monkeypatch, 8)
    for number, invitation in enumerate(invited[:4]):  # earlier answers to be mixed
        respond.submit_response(invitation, {"activity": "seeking", "outcomes": ["none"], "salary_change": number},
                                "en")
        db.session.commit()
    ids = [invitation.id for invitation in invited[4:]]
    def submit(invitation_id: int, number: int):
        def run(ready) -> None:
            mine = db.session.get(Invitation, invitation_id)
            mine.campaign  # noqa: B018  (loaded before the race)
            db.session.commit()
            ready()
            respond.submit_response(mine, {"activity": "seeking", "outcomes": ["none"],
                                           "salary_change": number}, "en")
            db.session.commit()
        return run

    assert at_once(app, *(submit(i, 4 + n) for n, i in enumerate(ids))) == []
    db.session.expire_all()
    responses = db.session.scalars(select(Response).where(Response.campaign_id == campaign.id)).all()
    assert sorted(r.answers["salary_change"] for r in responses) == list(range(8))
