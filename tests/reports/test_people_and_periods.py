"""A period's report counts people, not invitations; its alumni figures count only the
alumni campaigns; and its days are the organisation's (DEFAULT_TIMEZONE), not UTC's."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from survey.campaigns.models import Campaign, Invitation, Response
from survey.claims.models import Claim
from survey.core.types import utcnow
from survey.extensions import db
from survey.respond import services
from tests.campaigns.helpers import invitations, make_campaign, started_campaign


@pytest.fixture
def api(app_ctx):
    from survey.accounts.services import create_api_key

    _key, secret = create_api_key("reports")
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def _around_today(app) -> tuple[str, str]:
    """Yesterday to tomorrow in the organisation's time zone: a period holding the campaigns
    sent a minute ago, whatever the hour."""
    today = utcnow().astimezone(ZoneInfo(app.config["DEFAULT_TIMEZONE"])).date()
    return (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()


def _period(client, api, app) -> dict:
    start, end = _around_today(app)
    response = client.get(f"/api/v1/reports/impact?from={start}&to={end}&by=programme", headers=api)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _answer(campaign: Campaign, person, activity: str | None, at: datetime) -> Response:
    invitation = db.session.scalar(select(Invitation).where(Invitation.campaign_id == campaign.id,
                                                            Invitation.stakeholder_id == person.id))
    invitation.completed_at, invitation.status = at, "completed"
    response = Response(campaign_id=campaign.id, invitation_id=invitation.id, locale="en", submitted_at=at,
                        answers={"activity": activity} if activity else {})
    db.session.add(response)
    db.session.flush()
    return response


def _prove(response: Response, person, outcome: str = "new_job") -> None:
    db.session.add(Claim(response_id=response.id, campaign_id=response.campaign_id, stakeholder_id=person.id,
                         outcome_type=outcome, state="proven", token_nonce="n", token_hash=secrets.token_hex(32),
                         decided_at=utcnow()))


@pytest.fixture
def two_campaigns(alumni, create_stakeholder, monkeypatch):
    """13 alumni (5 in Data, 5 in Web, 3 in UX) invited to a spring and an autumn campaign
    of the same period. Four of Data answer both, a fifth only the autumn one, one of UX
    only the spring one: 6 people answered (10 answers). One person has a proven outcome."""
    data = [create_stakeholder(programme="Data") for _ in range(5)]
    _web = [create_stakeholder(programme="Web") for _ in range(5)]
    ux = [create_stakeholder(programme="UX") for _ in range(3)]
    spring = started_campaign(alumni, monkeypatch, name="Spring")
    autumn = started_campaign(alumni, monkeypatch, name="Autumn")
    earlier, later = utcnow() - timedelta(seconds=30), utcnow()
    # spring's answer, then autumn's: what each person does is what they said last
    for person, (before, after) in zip(data, [("seeking", "employed_full_time"), ("employed_full_time", None),
                                              ("self_employed", "self_employed"), (None, None)]):
        first = _answer(spring, person, before, earlier)
        _answer(autumn, person, after, later)
        if person is data[0]:
            _prove(first, person)
    _answer(autumn, data[4], "volunteering", later)
    _answer(spring, ux[0], "seeking", earlier)
    db.session.commit()
    return spring, autumn


def test_a_period_counts_each_person_once(app, client, api, two_campaigns):
    body = _period(client, api, app)
    assert body["campaigns"] == sorted(c.id for c in two_campaigns)
    # 13 people, not 26 invitations; 6 of them answered (10 answers); 1 with a proven outcome.
    assert (body["invited"], body["responded"]) == (13, 6)
    assert (body["proven_rate"]["numerator"], body["proven_rate"]["denominator"]) == (1, 13)
    assert body["response_rate"]["denominator"] == 13
    assert (body["proven_among_respondents"]["numerator"], body["proven_among_respondents"]["denominator"]) == (1, 6)
    # Each respondent once, with the last activity they gave (Data's first: seeking, then employed).
    assert body["activities"] == {"employed_full_time": 2, "self_employed": 1, "volunteering": 1, "seeking": 1,
                                  "unknown": 1}
    assert sum(body["activities"].values()) == body["responded"]
    assert (body["knowledge_rate"]["numerator"], body["knowledge_rate"]["denominator"]) == (5, 13)


def test_a_period_hides_the_groups_one_of_its_campaigns_hides(app, client, api, two_campaigns):
    spring, _autumn = two_campaigns
    alone = client.get(f"/api/v1/reports/impact?campaign={spring.id}&by=programme", headers=api).get_json()
    # UX is 3 people, however many campaigns invited them: hidden, with the next smallest (Data).
    expected = [{"value": "Data", "suppressed": "complementary"}, {"value": "UX", "suppressed": "small"},
                {"value": "Web", "invited": 5, "responded": 0, "proven_people": 0}]
    assert alone["breakdowns"]["programme"] == expected
    assert _period(client, api, app)["breakdowns"]["programme"] == expected


@pytest.fixture
def alumni_and_a_pulse(alumni, builtin_questionnaires, create_stakeholder, monkeypatch):
    """An alumni campaign (10 invited, 8 working with a proven outcome) and, the same day,
    an employee pulse of 30 of whom 6 answered."""
    graduates = [create_stakeholder(programme="Data") for _ in range(10)]
    employees = [create_stakeholder(kind="employee", department="Sales") for _ in range(30)]
    campaign = started_campaign(alumni, monkeypatch, name="Alumni")
    for person in graduates[:8]:
        _prove(_answer(campaign, person, "employed_full_time", utcnow()), person)
    db.session.commit()
    pulse = started_campaign(builtin_questionnaires["employee-pulse"], monkeypatch, name="Pulse",
                             privacy="confidential")
    invited = {i.stakeholder_id: i for i in invitations(pulse.id)}
    for person in employees[:6]:
        services.submit_response(invited[person.id], {"pay_fairness": 4, "equality": 4, "wellbeing": 4,
                                                      "enps": 9}, "en")
        db.session.commit()
    return campaign, pulse


def test_an_employee_pulse_does_not_dilute_the_alumni_figures(app, client, api, alumni_and_a_pulse):
    body = _period(client, api, app)
    assert body["campaigns"] == sorted(c.id for c in alumni_and_a_pulse)
    # The same figures as the alumni campaign alone: 8/10 known, 8/10 proven, no false warning.
    assert (body["invited"], body["responded"]) == (10, 8)
    assert (body["knowledge_rate"]["numerator"], body["knowledge_rate"]["denominator"]) == (8, 10)
    assert (body["proven_rate"]["numerator"], body["proven_rate"]["denominator"]) == (8, 10)
    assert body["activities"] == {"employed_full_time": 8}
    assert body["warnings"] == []
    assert body["breakdowns"]["programme"] == [{"value": "Data", "invited": 10, "responded": 8,
                                                "proven_people": 8}]
    # The employees are in their own section.
    assert body["employee"]["respondents"] == 6


def test_the_staff_page_shows_no_false_floor_warning(app, browser, create_user, alumni_and_a_pulse):
    start, end = _around_today(app)
    page = browser(create_user(role="admin")).get(f"/reports/?start={start}&end={end}").get_data(as_text=True)
    assert "<strong>10</strong> people invited" in page and "6</strong> employees answered" in page
    assert "Read these figures with care" not in page and "under the 65% floor" not in page


# (send_at in UTC, the period asked for, whether the campaign is in it) with Europe/Paris:
# UTC+1 in winter, UTC+2 in summer
TIMES = [
    (datetime(2025, 12, 31, 23, 30), ("2026-01-01", "2026-12-31"), True),     # 1 Jan 00:30 in Paris
    (datetime(2025, 12, 31, 23, 30), ("2025-01-01", "2025-12-31"), False),
    (datetime(2025, 12, 31, 22, 59, 59), ("2025-01-01", "2025-12-31"), True),  # 31 Dec 23:59:59
    (datetime(2026, 12, 31, 22, 59, 59, 999999), ("2026-01-01", "2026-12-31"), True),  # the last instant
    (datetime(2026, 12, 31, 23, 0), ("2026-01-01", "2026-12-31"), False),      # 1 Jan 2027, midnight
    (datetime(2026, 6, 30, 22, 30), ("2026-07-01", "2026-07-31"), True),       # 1 Jul 00:30, summer time
    (datetime(2026, 7, 31, 22, 30), ("2026-07-01", "2026-07-31"), False),      # 1 Aug 00:30
]


@pytest.mark.parametrize("sent, period, inside", TIMES)
def test_a_period_is_made_of_the_organisations_days(client, api, alumni, sent, period, inside):
    assert client.application.config["DEFAULT_TIMEZONE"] == "Europe/Paris"
    sent = sent.replace(tzinfo=timezone.utc)
    campaign = make_campaign(alumni, send_at=sent, closes_at=sent + timedelta(days=30), name="New year")
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(status="closed", scheduled_at=sent, closed_at=sent + timedelta(days=30)))
    db.session.commit()
    start, end = period
    body = client.get(f"/api/v1/reports/impact?from={start}&to={end}", headers=api).get_json()
    assert body["campaigns"] == ([campaign.id] if inside else [])


def test_the_period_follows_the_configured_time_zone(app, client, api, alumni, monkeypatch):
    sent = datetime(2026, 1, 1, 2, 30, tzinfo=timezone.utc)  # 31 Dec 2025 21:30 in New York
    campaign = make_campaign(alumni, send_at=sent, closes_at=sent + timedelta(days=30))
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id).values(status="closed", scheduled_at=sent))
    db.session.commit()
    monkeypatch.setitem(app.config, "DEFAULT_TIMEZONE", "America/New_York")
    body = client.get("/api/v1/reports/impact?from=2025-01-01&to=2025-12-31", headers=api).get_json()
    assert body["campaigns"] == [campaign.id]
