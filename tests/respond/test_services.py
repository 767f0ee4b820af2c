"""Respond services: find, open, save, submit, called directly."""
from __future__ import annotations

from datetime import time, timedelta, timezone

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from survey.campaigns.models import Campaign, Invitation, Response
from survey.extensions import db
from survey.respond import services
from tests.campaigns.helpers import invitations, link_path, now, started_campaign
from tests.conftest import at_once


@pytest.fixture
def invitation(builtin_questionnaires, create_stakeholder, monkeypatch):
    def make(privacy="identified"):
        create_stakeholder()
        campaign = started_campaign(builtin_questionnaires["alumni-outcomes"], monkeypatch, privacy=privacy)
        return invitations(campaign.id)[0]

    return make


def _responses(campaign_id):
    db.session.expire_all()
    return db.session.scalars(select(Response).where(Response.campaign_id == campaign_id)).all()


def test_find_invitation(invitation):
    found = invitation()
    token = link_path(found).removeprefix("/s/")
    assert services.find_invitation(token).id == found.id
    for bad in ("", "x", token[:-1], token + "x", "A" * (services.MAX_TOKEN_LENGTH + 1), token.upper()):
        assert services.find_invitation(bad) is None


def test_open_keeps_the_first_time_and_never_goes_backwards(invitation):
    invited = invitation()
    services.open_invitation(invited)
    db.session.commit()
    first = invited.opened_at
    assert (invited.status, first is not None) == ("opened", True)
    services.open_invitation(invited)
    db.session.commit()
    assert invited.opened_at == first
    services.save_draft(invited, {"activity": "seeking"}, "en")
    db.session.commit()
    services.open_invitation(invited)
    assert invited.status == "started"  # opening again does not undo "started"


def test_a_second_tab_opening_at_the_same_instant_keeps_the_first_time(invitation):
    invited = invitation()
    services.open_invitation(invited)  # the other tab
    db.session.commit()
    first = invited.opened_at
    set_committed_value(invited, "opened_at", None)  # this tab read the invitation before that
    services.open_invitation(invited)
    db.session.commit()
    db.session.expire_all()
    assert (invited.opened_at, invited.status) == (first, "opened")


def test_save_draft_keeps_one_response_and_the_first_start(invitation):
    invited = invitation()
    first = services.save_draft(invited, {"activity": "seeking"}, "en")
    db.session.commit()
    started_at = first.started_at
    second = services.save_draft(invited, {"activity": "volunteering"}, "fr")
    db.session.commit()
    [response] = _responses(invited.campaign_id)
    assert response.id == first.id == second.id
    assert (response.answers, response.locale, response.started_at) == ({"activity": "volunteering"}, "fr",
                                                                         started_at)
    assert response.submitted_at is None
    stored = db.session.get(Invitation, invited.id)
    assert stored.status == "started" and stored.opened_at is not None and stored.started_at is not None


def test_submit_once(invitation):
    invited = invitation()
    services.save_draft(invited, {"activity": "seeking"}, "en")
    db.session.commit()
    response = services.submit_response(invited, {"activity": "volunteering", "outcomes": ["none"]}, "en")
    db.session.commit()
    assert response.submitted_at is not None and response.invitation_id == invited.id
    stored = db.session.get(Invitation, invited.id)
    assert stored.status == "completed" and stored.completed_at is not None

    with pytest.raises(services.AlreadySubmitted):
        services.submit_response(invited, {"activity": "seeking"}, "en")
    with pytest.raises(services.AlreadySubmitted):
        services.save_draft(invited, {"activity": "seeking"}, "en")
    db.session.rollback()
    [response] = _responses(invited.campaign_id)
    assert response.answers == {"activity": "volunteering", "outcomes": ["none"]}


def test_submit_with_a_stale_invitation_is_refused(app, invitation):
    """Another request submitted meanwhile: the conditional UPDATE refuses this one."""
    invited = invitation()
    assert invited.completed_at is None  # loaded here, then completed elsewhere
    with app.app_context():
        other = db.session.get(Invitation, invited.id)
        services.submit_response(other, {"activity": "seeking"}, "en")
        db.session.commit()
    assert invited.completed_at is None  # still stale in this session
    with pytest.raises(services.AlreadySubmitted):
        services.submit_response(invited, {"activity": "volunteering"}, "en")
    [response] = _responses(invited.campaign_id)
    assert response.answers == {"activity": "seeking"}


def test_a_save_that_comes_after_a_submit_is_refused_and_changes_nothing(app, invitation):
    """Two tabs: this one read the invitation, the other submitted meanwhile; saving here must
    not write the draft's answers over the submitted ones, nor make the invitation "started"."""
    invited = invitation()
    services.save_draft(invited, {"activity": "seeking"}, "en")
    db.session.commit()
    assert invited.completed_at is None  # loaded here, then completed elsewhere
    with app.app_context():
        other = db.session.get(Invitation, invited.id)
        services.submit_response(other, {"activity": "volunteering"}, "en")
        db.session.commit()
    with pytest.raises(services.AlreadySubmitted):
        services.save_draft(invited, {"activity": "not_seeking"}, "fr")
    db.session.rollback()
    [response] = _responses(invited.campaign_id)
    assert (response.answers, response.locale) == ({"activity": "volunteering"}, "en")
    stored = db.session.get(Invitation, invited.id)
    assert (stored.status, stored.completed_at is not None) == ("completed", True)


def test_a_save_and_a_submit_at_once_leave_one_submitted_answer(app, invitation):
    """Whichever goes first, the submitted answers are the ones kept, once."""
    invited = invitation()
    outcomes = []

    def act(name, call, answers):
        def run(ready) -> None:
            mine = db.session.get(Invitation, invited.id)
            mine.campaign  # noqa: B018  (loaded before the race)
            ready()
            try:
                call(mine, answers, "en")
                db.session.commit()
                outcomes.append((name, "ok"))
            except services.AlreadySubmitted:
                outcomes.append((name, "refused"))
        return run

    for _round in range(3):
        outcomes.clear()
        assert at_once(app, act("save", services.save_draft, {"activity": "seeking"}),
                       act("submit", services.submit_response, {"activity": "volunteering"}), timeout=60) == []
        assert ("submit", "ok") in outcomes
        [response] = _responses(invited.campaign_id)
        assert response.answers == {"activity": "volunteering"} and response.submitted_at is not None
        assert db.session.get(Invitation, invited.id).status == "completed"
        # again, on a fresh invitation
        invited = invitation()


@pytest.mark.parametrize("started_before", [False, True], ids=["not-started", "started"])
def test_a_draft_saved_elsewhere_after_the_page_was_read_becomes_the_answer(app, invitation, started_before):
    """The page read the invitation with no draft; a save (another tab) committed before the
    submit: the submit completes that draft, not a second response beside it."""
    invited = invitation()
    if started_before:  # started long ago, its draft gone: read again all the same
        invited.started_at = now() - timedelta(days=1)
        db.session.commit()
    token = link_path(invited).removeprefix("/s/")
    db.session.expire_all()
    page = services.find_invitation(token)
    assert page.draft is None
    with app.app_context():
        other = db.session.get(Invitation, invited.id)
        saved = services.save_draft(other, {"activity": "seeking"}, "fr")
        db.session.commit()
        saved_id = saved.id
    response = services.submit_response(page, {"activity": "volunteering"}, "en")
    db.session.commit()
    [stored] = _responses(invited.campaign_id)
    assert stored.id == response.id == saved_id
    assert (stored.answers, stored.locale) == ({"activity": "volunteering"}, "en")
    assert stored.submitted_at is not None


def test_two_simultaneous_submits_store_one_answer(app, invitation):
    invited = invitation()
    results = []

    def submit(value):
        def run(ready) -> None:
            mine = db.session.get(Invitation, invited.id)
            mine.campaign  # noqa: B018  (loaded before the race)
            ready()
            try:
                services.submit_response(mine, {"activity": value}, "en")
                db.session.commit()
                results.append(("ok", value))
            except services.AlreadySubmitted:
                results.append(("refused", value))
        return run

    assert at_once(app, submit("seeking"), submit("volunteering"), timeout=60) == []
    assert sorted(kind for kind, _ in results) == ["ok", "refused"]
    winner = next(value for kind, value in results if kind == "ok")
    [response] = _responses(invited.campaign_id)
    assert response.answers == {"activity": winner}


def test_closed_campaign_refuses_saving_and_submitting(invitation):
    invited = invitation()
    db.session.execute(update(Campaign).where(Campaign.id == invited.campaign_id)
                       .values(closes_at=now() - timedelta(seconds=1)))
    db.session.commit()
    db.session.expire_all()
    for call in (services.save_draft, services.submit_response):
        with pytest.raises(services.CampaignClosed) as closed:
            call(invited, {"activity": "seeking"}, "en")
        assert closed.value.status == 410
    db.session.rollback()
    assert _responses(invited.campaign_id) == []


def test_anonymous_submission_is_cut_from_the_invitation(invitation):
    invited = invitation(privacy="anonymous")
    services.save_draft(invited, {"activity": "seeking"}, "en")
    db.session.commit()
    response = services.submit_response(invited, {"activity": "volunteering"}, "fr")
    db.session.commit()
    [stored] = _responses(invited.campaign_id)
    assert stored.id == response.id
    assert (stored.invitation_id, stored.started_at) == (None, None)
    assert stored.submitted_at.tzinfo is not None
    assert stored.submitted_at.astimezone(timezone.utc).time() == time(0)
    # Not even the day it was given: every answer carries the day the campaign was sent.
    assert stored.submitted_at.date() == invited.campaign.send_at.astimezone(timezone.utc).date()
    assert (stored.answers, stored.locale) == ({"activity": "volunteering"}, "fr")
    assert services.draft_for(db.session.get(Invitation, invited.id)) is None
    assert db.session.get(Invitation, invited.id).status == "completed"
