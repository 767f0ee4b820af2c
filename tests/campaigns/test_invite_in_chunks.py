"""A large audience is invited a chunk per transaction while the first emails go out:
a million people take a minute to invite, too long to send nothing and too long for
one transaction. A campaign is open only once all its invitations exist and are out,
and a worker that dies half-way is replaced by beat, inviting nobody twice."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from survey.campaigns import services
from survey.campaigns.models import Campaign
from survey.campaigns.progress import sending_progress
from survey.extensions import db
from survey.mail.sending import send_batch
from tests.campaigns.helpers import invitations, make_campaign, now, outbox, schedule
from tests.conftest import at_once
from workflows import tasks


@pytest.fixture
def five_in_chunks_of_two(app, app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):
    monkeypatch.setitem(app.config, "INVITE_CHUNK", 2)
    people = [create_stakeholder() for _ in range(5)]
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"])
    schedule(campaign, monkeypatch)
    return campaign, people


def _invited(campaign_id: int) -> list[int]:
    return sorted(i.stakeholder_id for i in invitations(campaign_id))


def test_the_first_emails_go_while_the_rest_are_invited(five_in_chunks_of_two, smtp_server, browser, create_user):
    campaign, people = five_in_chunks_of_two
    assert services.start_campaign(campaign.id) is True
    db.session.commit()
    assert _invited(campaign.id) == [p.id for p in people[:2]]
    assert campaign.status == "sending" and campaign.invitations_made_at is None
    progress = sending_progress(campaign)
    assert progress["preparing"] is True
    assert progress["text"] == "0 invitations sent; still inviting the audience (2 so far)"

    assert send_batch(100) == 2  # the first chunk's emails go at once
    assert services.open_sent_campaigns() == 0  # its queue ran dry, but the audience is not all invited
    db.session.commit()
    # Every invitation made so far is out, yet not every invitation: never 100%, and the
    # page's bar is indeterminate (its total is not known yet).
    progress = sending_progress(campaign)
    assert (progress["percent"], progress["text"]) == (99, "2 invitations sent; still inviting the audience (2 so far)")
    page = browser(create_user(role="admin")).get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    bar = re.search(r"<progress id=\"sending-bar\"[^>]*>", page).group(0)
    assert "value=" not in bar

    tasks.invite_audience(campaign.id)
    db.session.refresh(campaign)
    assert _invited(campaign.id) == sorted(p.id for p in people)
    assert len(outbox(campaign.id)) == 5
    assert campaign.invitations_made_at is not None and campaign.invitations_lease_until is None
    assert sending_progress(campaign)["text"] == "2 of 5 invitations sent (40%)"
    assert send_batch(100) == 3
    assert sorted(m["to"][0] for m in smtp_server.messages) == sorted(p.email for p in people)
    assert services.open_sent_campaigns() == 1
    db.session.commit()
    assert campaign.status == "open"


def test_a_worker_that_died_while_inviting_is_replaced_by_beat(five_in_chunks_of_two, monkeypatch):
    campaign, people = five_in_chunks_of_two
    assert services.start_campaign(campaign.id) is True
    db.session.commit()
    assert services.add_invitations(campaign.id) is True
    db.session.commit()
    # ...and the worker dies here, four people invited. Its hold on the campaign is live:
    assert services.campaigns_to_resume_inviting() == []
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(invitations_lease_until=now() - timedelta(seconds=1)))
    db.session.commit()

    queued = []
    monkeypatch.setattr(tasks.invite_audience, "apply_async",
                        lambda args=(), kwargs=None, **_: queued.append(tuple(args)))
    monkeypatch.setattr(tasks, "kick_senders", lambda: None)
    tasks.tick()
    assert queued == [(campaign.id,)]
    tasks.invite_audience(*queued[0])
    tasks.invite_audience(*queued[0])  # a second beat's copy finds nothing left to do
    rows = invitations(campaign.id)
    assert _invited(campaign.id) == sorted(p.id for p in people)  # each person once
    assert len({i.token_hash for i in rows}) == 5
    assert len(outbox(campaign.id)) == 5
    assert services.campaigns_to_resume_inviting() == []


def test_a_campaign_closed_while_inviting_invites_no_more(five_in_chunks_of_two, monkeypatch):
    campaign, _people = five_in_chunks_of_two
    assert services.start_campaign(campaign.id) is True
    db.session.commit()
    services.transition(campaign, "closed")
    db.session.commit()
    assert services.add_invitations(campaign.id) is False
    db.session.commit()
    tasks.invite_audience(campaign.id)
    assert len(invitations(campaign.id)) == 2
    db.session.execute(update(Campaign).values(invitations_lease_until=now() - timedelta(seconds=1)))
    assert services.campaigns_to_resume_inviting() == []  # beat leaves a closed campaign alone


def test_an_audience_of_exactly_one_chunk_is_all_invited_at_the_start(app, five_in_chunks_of_two, monkeypatch):
    campaign, people = five_in_chunks_of_two
    monkeypatch.setitem(app.config, "INVITE_CHUNK", 5)
    assert services.start_campaign(campaign.id) is True
    db.session.commit()
    # A full chunk may have a next one: the next call finds no one left and says so.
    assert campaign.invitations_made_at is None
    assert services.add_invitations(campaign.id) is False
    db.session.commit()
    assert campaign.invitations_made_at is not None
    assert _invited(campaign.id) == sorted(p.id for p in people)


def test_two_workers_inviting_the_same_campaign_at_once_invite_each_person_once(app, app_ctx, builtin_questionnaires,
                                                                                create_stakeholder, monkeypatch):
    # Beat may hand a campaign to a second worker while the first still invites (it
    # thought the first dead): they take turns on the campaign, chunk by chunk.
    monkeypatch.setitem(app.config, "INVITE_CHUNK", 3)
    people = [create_stakeholder() for _ in range(40)]
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"])
    schedule(campaign, monkeypatch)
    assert services.start_campaign(campaign.id) is True
    db.session.commit()
    campaign_id = campaign.id  # read here: the threads have sessions of their own

    def worker(ready):
        ready()
        tasks.invite_audience(campaign_id)

    assert at_once(app, worker, worker) == []
    db.session.expire_all()
    assert _invited(campaign_id) == sorted(p.id for p in people)
    assert len(outbox(campaign_id)) == 40
    assert db.session.get(Campaign, campaign_id).invitations_made_at is not None
