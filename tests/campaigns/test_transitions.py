"""Campaign life cycle: the transition table, reminders, creation, scheduling, starting."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from survey.campaigns import services
from survey.campaigns.models import CAMPAIGN_STATUSES, Campaign
from survey.campaigns.services import CampaignTransitionRefused, parse_reminders
from survey.core.errors import ValidationFailed
from survey.extensions import db
from tests.campaigns.helpers import invitations, make_campaign, now, outbox, schedule, started_campaign
from workflows import tasks

ALLOWED = {
    ("draft", "scheduled"),
    ("scheduled", "draft"),
    ("scheduled", "sending"),
    ("scheduled", "closed"),  # never started (workers down) before its closing time
    ("sending", "open"),
    ("sending", "closed"),
    ("open", "closed"),
}


# ------------------------------------------------------------------------ transitions

def test_the_table_is_the_documented_life_cycle():
    assert set(services.TRANSITIONS) == set(CAMPAIGN_STATUSES)
    assert {(a, b) for a, targets in services.TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize("status_from,status_to", list(itertools.product(CAMPAIGN_STATUSES, repeat=2)))
def test_every_pair_of_statuses(status_from, status_to):
    campaign = Campaign(name="c", status=status_from, scheduled_at=None)
    if (status_from, status_to) in ALLOWED:
        services.transition(campaign, status_to)
        assert campaign.status == status_to
        stamp = {"scheduled": campaign.scheduled_at, "sending": campaign.sending_started_at,
                 "closed": campaign.closed_at}
        if status_to in stamp:
            assert stamp[status_to] is not None
        if status_to == "draft":
            assert campaign.scheduled_at is None
    else:
        with pytest.raises(CampaignTransitionRefused) as refused:
            services.transition(campaign, status_to)
        assert campaign.status == status_from  # nothing changed
        assert refused.value.status == 409
        assert refused.value.details == {"status_from": status_from, "status_to": status_to}


# -------------------------------------------------------------------------- reminders

def test_reminders_accepted_and_sorted():
    assert parse_reminders(["P3D", "PT30S", "PT2M"]) == ["PT30S", "PT2M", "P3D"]
    assert parse_reminders([" P7D ", "P1D"]) == ["P1D", "P7D"]
    assert parse_reminders(None) == []
    assert parse_reminders([]) == []


@pytest.mark.parametrize("reminders", [
    ["P3X"],           # not a duration
    ["P1M"],           # months have no fixed length
    ["P1Y"],           # nor do years
    ["-P1D"],          # before the invitation
    ["PT0S"],          # at the same time as the invitation
    ["P3D", "P3D"],    # twice the same
    ["P1D", "PT24H"],  # the same delay written twice
    [""],
])
def test_reminders_refused(reminders):
    with pytest.raises(ValidationFailed) as refused:
        parse_reminders(reminders)
    assert refused.value.details.get("field") == "reminders"


# ---------------------------------------------------------------------------- create

def _create(questionnaire, **overrides):
    arguments = dict(name="Alumni 2025", questionnaire=questionnaire, audience_kind="alumnus",
                     audience_filters=None, privacy="identified", send_at=now(),
                     closes_at=now() + timedelta(days=1), reminders=["P3D"])
    arguments.update(overrides)
    return services.create_campaign(**arguments)


def test_create_campaign_makes_a_draft(app_ctx, builtin_questionnaires):
    campaign = _create(builtin_questionnaires["alumni-outcomes"], name="  Alumni 2025  ",
                       audience_filters={"cohort": 2023}, reminders=["P7D", "P3D"])
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Campaign, campaign.id)
    assert (stored.status, stored.name, stored.reminders) == ("draft", "Alumni 2025", ["P3D", "P7D"])
    assert stored.audience_filters == {"cohort": "2023"}


@pytest.mark.parametrize("overrides,field", [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"closes_at": "send_at"}, "closes_at"),  # closes when it is sent
    ({"closes_at": "before"}, "closes_at"),  # closes before it is sent
    ({"send_at": datetime(2030, 1, 1, 9, 0)}, "send_at"),  # naive
    ({"closes_at": datetime(2030, 1, 1, 9, 0)}, "closes_at"),  # naive
    ({"audience_kind": "employee"}, "questionnaire_id"),  # an alumni questionnaire for employees
    ({"audience_kind": "robot"}, "audience"),
    ({"privacy": "public"}, "privacy"),
    ({"reminders": ["P1M"]}, "reminders"),
])
def test_create_campaign_refusals(app_ctx, builtin_questionnaires, overrides, field):
    overrides = dict(overrides)
    send_at = datetime(2030, 1, 1, 9, 0, tzinfo=timezone.utc)
    overrides.setdefault("closes_at", send_at + timedelta(days=1))
    if overrides.get("closes_at") == "send_at":
        overrides["closes_at"] = send_at
    elif overrides.get("closes_at") == "before":
        overrides["closes_at"] = send_at - timedelta(hours=1)
    overrides.setdefault("send_at", send_at)
    with pytest.raises(ValidationFailed) as refused:
        _create(builtin_questionnaires["alumni-outcomes"], **overrides)
    assert refused.value.details.get("field") == field
    db.session.rollback()
    assert db.session.scalars(select(Campaign)).all() == []


def test_employee_questionnaire_for_alumni_refused(app_ctx, builtin_questionnaires):
    with pytest.raises(ValidationFailed, match="employee"):
        _create(builtin_questionnaires["employee-pulse"], audience_kind="alumnus")


# -------------------------------------------------------------------------- schedule

def test_scheduling_freezes_the_questionnaire_version(app_ctx, builtin_questionnaires, create_stakeholder,
                                                      monkeypatch):
    questionnaire = builtin_questionnaires["alumni-outcomes"]
    assert questionnaire.frozen_at is None
    create_stakeholder()
    campaign = make_campaign(questionnaire, send_at=now() + timedelta(hours=1))
    queued = schedule(campaign, monkeypatch)
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "scheduled"
    frozen_at = db.session.get(type(questionnaire), questionnaire.id).frozen_at
    assert frozen_at is not None
    assert queued == []  # not due yet: nothing starts

    # A second campaign on the same version keeps the first freezing date.
    second = make_campaign(questionnaire, send_at=now() + timedelta(hours=1), name="again")
    schedule(second, monkeypatch)
    db.session.expire_all()
    assert db.session.get(type(questionnaire), questionnaire.id).frozen_at == frozen_at


def test_scheduling_a_due_campaign_starts_it_after_commit(app_ctx, builtin_questionnaires, create_stakeholder,
                                                          monkeypatch):

    create_stakeholder()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"])
    queued = []
    monkeypatch.setattr(tasks.start_campaign, "apply_async",
                        lambda args=(), kwargs=None, **_: queued.append(tuple(args)))
    services.schedule_campaign(campaign)
    assert queued == []  # not before the commit: the worker could not see the campaign
    db.session.commit()
    assert queued == [(campaign.id,)]


def test_scheduling_rolled_back_queues_nothing(app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):

    create_stakeholder()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"])
    queued = []
    monkeypatch.setattr(tasks.start_campaign, "apply_async",
                        lambda args=(), kwargs=None, **_: queued.append(tuple(args)))
    services.schedule_campaign(campaign)
    db.session.rollback()
    db.session.commit()
    assert queued == []
    assert db.session.get(Campaign, campaign.id).status == "draft"


def test_scheduling_an_empty_audience_is_refused(app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):
    create_stakeholder(kind="employee")  # not the campaign's kind
    create_stakeholder(programme="UX Design")  # not the campaign's filter
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"], filters={"programme": "Data Analyst"})
    with pytest.raises(ValidationFailed, match="No one"):
        schedule(campaign, monkeypatch)
    db.session.rollback()
    assert db.session.get(Campaign, campaign.id).status == "draft"


def test_scheduling_an_audience_of_suppressed_people_is_refused(app_ctx, builtin_questionnaires,
                                                               create_stakeholder, monkeypatch):
    person = create_stakeholder()
    person.suppressed_at, person.suppression_reason = now(), "opted out"
    db.session.commit()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"])
    with pytest.raises(ValidationFailed):
        schedule(campaign, monkeypatch)


def test_scheduling_after_the_closing_time_is_refused(app_ctx, builtin_questionnaires, create_stakeholder,
                                                      monkeypatch):
    create_stakeholder()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"], send_at=now() - timedelta(days=2),
                             closes_at=now() - timedelta(minutes=1))
    with pytest.raises(ValidationFailed, match="closing time"):
        schedule(campaign, monkeypatch)
    db.session.rollback()
    campaign = db.session.get(Campaign, campaign.id)
    assert campaign.status == "draft"
    assert campaign.questionnaire.frozen_at is None


def test_scheduling_twice_is_refused(app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):
    create_stakeholder()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"], send_at=now() + timedelta(hours=1))
    schedule(campaign, monkeypatch)
    with pytest.raises(CampaignTransitionRefused):
        schedule(campaign, monkeypatch)


def test_unscheduling_goes_back_to_draft(app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):
    create_stakeholder()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"], send_at=now() + timedelta(hours=1))
    schedule(campaign, monkeypatch)
    services.unschedule_campaign(campaign)
    db.session.commit()
    assert (campaign.status, campaign.scheduled_at) == ("draft", None)
    assert services.start_campaign(campaign.id) is False


# ----------------------------------------------------------------------------- start

def test_suppressed_people_get_no_invitation(app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):
    reachable = create_stakeholder()
    bounced = create_stakeholder()
    bounced.suppressed_at, bounced.suppression_reason = now(), "hard bounce: 550 5.1.1"
    opted_out = create_stakeholder()
    opted_out.suppressed_at, opted_out.suppression_reason = now(), "opted out"
    db.session.commit()
    campaign = started_campaign(builtin_questionnaires["alumni-outcomes"], monkeypatch)
    assert [i.stakeholder_id for i in invitations(campaign.id)] == [reachable.id]
    assert len(outbox(campaign.id)) == 1
    assert services.campaign_counts(campaign.id)["invited"] == 1


def test_attribute_filters_select_the_right_people(app_ctx, builtin_questionnaires, create_stakeholder,
                                                   monkeypatch):
    match_1 = create_stakeholder(programme="Data Analyst", cohort="2023")
    match_2 = create_stakeholder(programme="Data Analyst", cohort="2023", city="Lyon")
    create_stakeholder(programme="Data Analyst", cohort="2024")  # other cohort
    create_stakeholder(programme="UX Design", cohort="2023")  # other programme
    create_stakeholder(cohort="2023")  # no programme at all
    create_stakeholder(kind="employee", programme="Data Analyst", cohort="2023")  # not an alumnus
    campaign = started_campaign(builtin_questionnaires["alumni-outcomes"], monkeypatch,
                                filters={"programme": "Data Analyst", "cohort": "2023"})
    assert sorted(i.stakeholder_id for i in invitations(campaign.id)) == sorted([match_1.id, match_2.id])


def test_employee_campaign_reaches_employees_only(app_ctx, builtin_questionnaires, create_stakeholder,
                                                  monkeypatch):
    employee = create_stakeholder(kind="employee", department="Sales")
    create_stakeholder(kind="alumnus", department="Sales")
    campaign = started_campaign(builtin_questionnaires["employee-pulse"], monkeypatch,
                                filters={"department": "Sales"})
    assert [i.stakeholder_id for i in invitations(campaign.id)] == [employee.id]


def test_starting_twice_invites_once(app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):
    people = [create_stakeholder() for _ in range(3)]
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"])
    schedule(campaign, monkeypatch)
    assert services.start_campaign(campaign.id) is True
    db.session.commit()
    assert services.start_campaign(campaign.id) is False
    db.session.commit()
    rows = invitations(campaign.id)
    assert sorted(i.stakeholder_id for i in rows) == sorted(p.id for p in people)
    assert len(outbox(campaign.id)) == 3
    assert {(m.kind, m.sequence, m.status) for m in outbox(campaign.id)} == {("invitation", 0, "queued")}
    assert len({i.token_hash for i in rows}) == 3
    assert db.session.get(Campaign, campaign.id).status == "sending"
    assert services.campaign_counts(campaign.id) == {
        "invited": 3, "sent": 0, "failed": 0, "queued": 3, "opened": 0, "started": 0, "completed": 0}


def test_people_added_after_the_start_are_not_invited(app_ctx, builtin_questionnaires, create_stakeholder,
                                                      monkeypatch):
    create_stakeholder()
    campaign = started_campaign(builtin_questionnaires["alumni-outcomes"], monkeypatch)
    create_stakeholder()
    assert services.start_campaign(campaign.id) is False
    assert len(invitations(campaign.id)) == 1


def test_a_campaign_due_later_does_not_start(app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):
    create_stakeholder()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"], send_at=now() + timedelta(hours=1))
    schedule(campaign, monkeypatch)
    assert services.campaigns_due_to_start() == []
    assert services.start_campaign(campaign.id) is False
    db.session.commit()
    assert invitations(campaign.id) == []
    assert db.session.get(Campaign, campaign.id).status == "scheduled"


def test_a_campaign_whose_closing_time_passed_before_it_started_does_not_start(
        app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):
    # Scheduled for later; the workers were down until after it should have closed.
    create_stakeholder()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"], send_at=now() + timedelta(hours=1))
    schedule(campaign, monkeypatch)
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id).values(
        send_at=now() - timedelta(hours=2), closes_at=now() - timedelta(minutes=1)))
    db.session.commit()
    assert services.campaigns_due_to_start() == []
    assert services.start_campaign(campaign.id) is False
    db.session.commit()
    assert invitations(campaign.id) == []
    assert outbox(campaign.id) == []


def test_a_draft_does_not_start(app_ctx, builtin_questionnaires, create_stakeholder):
    create_stakeholder()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"])
    assert services.campaigns_due_to_start() == []
    assert services.start_campaign(campaign.id) is False
    assert services.start_campaign(999_999) is False
    assert invitations(campaign.id) == []


def test_a_due_scheduled_campaign_is_listed_for_start(app_ctx, builtin_questionnaires, create_stakeholder,
                                                      monkeypatch):
    create_stakeholder()
    campaign = make_campaign(builtin_questionnaires["alumni-outcomes"])
    schedule(campaign, monkeypatch)
    assert services.campaigns_due_to_start() == [campaign.id]
    services.start_campaign(campaign.id)
    db.session.commit()
    assert services.campaigns_due_to_start() == []


def test_more_people_than_one_insert_chunk(app_ctx, builtin_questionnaires, create_stakeholder, monkeypatch):
    monkeypatch.setitem(app_ctx.config, "INVITE_CHUNK", 2)
    people = [create_stakeholder() for _ in range(5)]
    campaign = started_campaign(builtin_questionnaires["alumni-outcomes"], monkeypatch)
    assert len(invitations(campaign.id)) == 2  # the first chunk; the rest a chunk per transaction
    tasks.invite_audience(campaign.id)
    assert sorted(i.stakeholder_id for i in invitations(campaign.id)) == sorted(p.id for p in people)
    assert len(outbox(campaign.id)) == 5
