"""The admin campaign pages: quiet hours on the form, and the per-recipient email log."""
from __future__ import annotations

import html
import re
from datetime import time, timedelta

import pytest
from sqlalchemy import event, insert, select

from survey.audiences.models import Stakeholder
from survey.campaigns import services
from survey.campaigns.models import Campaign
from survey.extensions import db
from survey.mail.models import OutboxMessage
from survey.mail.suppression import suppress_address
from tests.campaigns.helpers import counted_queries, invitations, make_campaign, now, outbox, schedule, started_campaign
from tests.conftest import IsolatedClient
from tests.factories import PASSWORD, csrf_token

NEW = "/admin/campaigns/new"


@pytest.fixture
def client(app, app_ctx):
    """Requests as isolated as real ones (see tests/accounts/conftest.py), in English."""
    client = IsolatedClient(app, app.response_class, use_cookies=True)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def admin(client, create_user, login):
    login(create_user(role="admin"))
    return client


def _page(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def _people(count: int, **columns) -> None:
    """``count`` alumni in one INSERT, emails person000@… in id order."""
    start = db.session.query(Stakeholder).count()
    db.session.execute(insert(Stakeholder), [
        {"kind": "alumnus", "email": f"person{start + n:03d}@example.org", "first_name": "Ada",
         "last_name": f"Lovelace{start + n}", "locale": "en", "timezone": "Europe/Paris",
         "attributes": {}, **columns}
        for n in range(count)
    ])
    db.session.commit()


def _recipient_rows(page_html: str) -> list[str]:
    return re.findall(r'<tr id="invitation-\d+">(.*?)</tr>', page_html, re.S)


def _emails_on(page_html: str) -> list[str]:
    return re.findall(r"<strong>([^<]+@[^<]+)</strong>", page_html)


# ------------------------------------------------------------------- the timing step

def _draft(client) -> str:
    """Step 1 of the wizard; returns the draft's timing step (step 3) URL."""
    from survey.questionnaires.models import Questionnaire

    questionnaire = db.session.scalar(select(Questionnaire).where(Questionnaire.slug == "alumni-outcomes"))
    response = client.post(NEW, data={
        "csrf_token": csrf_token(client, NEW), "name": "Alumni 2025", "questionnaire_id": questionnaire.id,
        "audience_kind": "alumnus", "privacy": "identified"})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return response.headers["Location"].replace("/audience", "/timing")


def _timing(client, url, **changes) -> dict:
    data = {"csrf_token": csrf_token(client, url), "timezone": "Europe/Paris", "send_at": "2031-03-01T09:00",
            "closes_at": "2031-04-01T09:00", "reminders": "P3D, P7D", "quiet_hours": "20:00-08:00"}
    data.update(changes)
    return data


def _only_campaign() -> Campaign:
    db.session.expire_all()
    (campaign,) = db.session.scalars(select(Campaign)).all()
    return campaign


def test_the_timing_step_offers_quiet_hours_prefilled_with_the_default(admin, alumni, app, monkeypatch):
    page = _page(admin, _draft(admin))
    assert re.search(r'<input[^>]*id="quiet_hours"[^>]*value="20:00-08:00"', page)
    assert "own time zone" in page  # the hint says whose clock it is
    assert 'aria-describedby="quiet_hours-hint"' in page
    assert re.search(r'<input[^>]*id="reminders"[^>]*value="P3D, P7D"', page)

    monkeypatch.setitem(app.config, "DEFAULT_QUIET_HOURS", "21:30 - 7:00")
    assert re.search(r'id="quiet_hours"[^>]*value="21:30-07:00"', _page(admin, _draft(admin)))
    monkeypatch.setitem(app.config, "DEFAULT_QUIET_HOURS", "")
    assert re.search(r'id="quiet_hours"[^>]*value=""', _page(admin, _draft(admin)))


def test_quiet_hours_from_the_form_are_stored_and_shown(admin, alumni):
    url = _draft(admin)
    response = admin.post(url, data=_timing(admin, url, quiet_hours="21:30-07:00", reminders="P7D, PT12H"))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    campaign = _only_campaign()
    assert (campaign.quiet_hours_start, campaign.quiet_hours_end) == (time(21, 30), time(7, 0))
    assert campaign.reminders == ["PT12H", "P7D"]

    page = _page(admin, response.headers["Location"])
    assert "PT12H, P7D" in page
    assert re.search(r"No reminder between 21:30-07:00, in each recipient(&#39;|')s own time zone", page)


def test_blank_quiet_hours_mean_reminders_at_any_hour(admin, alumni):
    url = _draft(admin)
    response = admin.post(url, data=_timing(admin, url, quiet_hours="  "))
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    campaign = _only_campaign()
    assert (campaign.quiet_hours_start, campaign.quiet_hours_end) == (None, None)
    assert "none: reminders at any hour" in _page(admin, response.headers["Location"])


@pytest.mark.parametrize("value", ["25:00-08:00", "20:00-20:00", "8pm-8am", "20:00", "20:00-08:60",
                                   "<b>20:00</b>-08:00"])
def test_invalid_quiet_hours_are_shown_next_to_the_field(admin, alumni, value):
    url = _draft(admin)
    before = _only_campaign()
    saved = (before.quiet_hours_start, before.quiet_hours_end, before.send_at)
    response = admin.post(url, data=_timing(admin, url, quiet_hours=value, send_at="2031-03-02T09:00"))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    group = re.search(r'<div class="field has-error" id="quiet_hours-group">(.*?)</div>', page, re.S)
    assert group, page[:3000]
    assert 'class="error-message" id="quiet_hours-error"' in group.group(1)
    assert "HH:MM-HH:MM" in group.group(1)
    assert 'href="#quiet_hours"' in page  # and in the summary at the top, linking to it
    assert "<b>20:00</b>" not in page  # what was typed comes back escaped
    after = _only_campaign()  # nothing of the refused step was saved
    assert (after.quiet_hours_start, after.quiet_hours_end, after.send_at) == saved


def test_an_invalid_reminder_is_shown_next_to_its_field(admin, alumni):
    url = _draft(admin)
    response = admin.post(url, data=_timing(admin, url, reminders="P3X"))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert re.search(r'id="reminders-group">.*?id="reminders-error"[^>]*>[^<]*P3X', page, re.S)
    assert _only_campaign().reminders == ["P3D", "P7D"]


# ------------------------------------------------------------ the recipients

@pytest.fixture
def logged_campaign(alumni, create_stakeholder, monkeypatch):
    """A started campaign of three people, with an email history written directly."""
    ada = create_stakeholder(email="ada@example.org", timezone="America/New_York")
    bob = create_stakeholder(email="bob@example.org")
    eve = create_stakeholder(email="eve@example.org")
    campaign = started_campaign(alumni, monkeypatch, reminders=["P3D", "P7D"])
    by_person = {i.stakeholder_id: i for i in invitations(campaign.id)}
    messages = {m.invitation_id: m for m in outbox(campaign.id)}
    sent = now() - timedelta(days=3)

    first = by_person[ada.id]
    invitation_email = messages[first.id]
    invitation_email.status, invitation_email.attempts, invitation_email.sent_at = "sent", 1, sent
    invitation_email.smtp_reply = "250 2.0.0 Ok: queued as 4F2A"
    invitation_email.message_id = "<inv-ada@attest.test>"
    first.status, first.sent_at, first.reminders_sent = "sent", sent, 1
    first.next_reminder_at = now() + timedelta(days=4)
    db.session.add(OutboxMessage(
        invitation_id=first.id, kind="reminder", sequence=1, status="queued", attempts=2,
        next_attempt_at=now() + timedelta(minutes=10), smtp_reply="451 4.7.1 Greylisted, try again later",
        message_id="<rem1-ada@attest.test>"))

    second = by_person[bob.id]
    bounced = messages[second.id]
    bounced.status, bounced.attempts, bounced.sent_at, bounced.bounced_at = "bounced", 1, sent, now()
    bounced.smtp_reply = '550 5.1.1 <script>alert("x")</script> <b>no such user</b>'
    bounced.message_id = "<inv-bob@attest.test>"
    second.status = "bounced"
    bob.suppressed_at, bob.suppression_reason = now(), "hard bounce: <i>550 5.1.1</i>"

    third = by_person[eve.id]
    messages[third.id].status = "cancelled"
    third.status, third.opted_out_at = "opted_out", now()
    db.session.commit()
    return campaign


def _row_of(page_html: str, email: str) -> str:
    rows = [row for row in _recipient_rows(page_html) if f"<strong>{email}</strong>" in row]
    assert len(rows) == 1, f"{email} not on the page once"
    return rows[0]


def test_each_recipient_and_every_email_sent_to_them(admin, logged_campaign):
    page = _page(admin, f"/admin/campaigns/{logged_campaign.id}")
    assert "3 recipients" in page

    ada = _row_of(page, "ada@example.org")
    assert "America/New_York" in ada
    assert "Ada Lovelace" in ada
    assert "1 reminder sent" in ada
    assert "Next reminder due" in ada
    assert ada.index("Invitation</strong>") < ada.index("Reminder 1</strong>")
    assert "250 2.0.0 Ok: queued as 4F2A" in ada
    assert html.escape("<inv-ada@attest.test>") in ada
    assert "451 4.7.1 Greylisted, try again later" in ada
    assert "2 attempts" in ada and "next attempt" in ada
    assert ">sent<" in ada and ">queued<" in ada

    bob = _row_of(page, "bob@example.org")
    assert ">bounced<" in bob
    assert "bounced " in bob  # when the bounce came back
    assert "Not emailed since" in bob
    assert "their address bounced (" in bob  # in words, the relay's reply beside them

    eve = _row_of(page, "eve@example.org")
    assert "Opted out of this campaign" in eve
    assert ">cancelled<" in eve and ">opted out<" in eve


def test_in_french_the_statuses_agree_with_the_invitation_and_the_reminder(admin, logged_campaign):
    page = admin.get(f"/admin/campaigns/{logged_campaign.id}", headers={"Accept-Language": "fr"})
    ada = _row_of(page.get_data(as_text=True), "ada@example.org")
    assert "Invitation</strong>" in ada and ">envoyée<" in ada and ">envoyé<" not in ada


def test_text_from_outside_is_escaped(admin, logged_campaign):
    page = _page(admin, f"/admin/campaigns/{logged_campaign.id}")
    assert "<script>" not in page
    assert "<b>no such user</b>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &lt;b&gt;no such user&lt;/b&gt;" in page
    assert "<i>550" not in page  # the suppression reason too (it is put into a translated sentence)
    assert "their address bounced (&lt;i&gt;550 5.1.1&lt;/i&gt;" in page


def test_times_are_in_the_admins_locale(admin, logged_campaign, client):
    message = outbox(logged_campaign.id)[0]
    english = _page(admin, f"/admin/campaigns/{logged_campaign.id}")
    assert f"{message.sent_at.year}" in english
    assert re.search(r"Queued \w{3} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2}\s?[AP]M", english)
    french = admin.get(f"/admin/campaigns/{logged_campaign.id}", headers={"Accept-Language": "fr"})
    body = french.get_data(as_text=True)
    assert re.search(r"\d{1,2} \w+\.? \d{4}(,| à) \d{2}:\d{2}:\d{2}", body), body[:200]


def test_the_summary_shows_reminders_and_quiet_hours(admin, alumni):
    campaign = make_campaign(alumni, reminders=["P7D", "P3D"])
    page = _page(admin, f"/admin/campaigns/{campaign.id}")
    assert "P3D, P7D" in page
    assert "No reminder between 20:00-08:00" in page  # the configured default
    assert "No one has been invited yet" in page


def test_a_campaign_that_started_with_no_one_to_email_says_so(admin, alumni, monkeypatch):
    """Its only person bounced elsewhere between scheduling and the start: it is open, and
    "not invited yet" would be untrue."""
    _people(1)
    campaign = make_campaign(alumni)
    schedule(campaign, monkeypatch)
    suppress_address(db.session.scalar(select(Stakeholder.id)), "hard bounce: 550 5.1.1 no such user")
    db.session.commit()
    assert services.start_campaign(campaign.id) is True
    db.session.commit()
    page = _page(admin, f"/admin/campaigns/{campaign.id}")
    assert "No one was invited: when the campaign started, no one in its audience could be emailed." in page
    assert "No one has been invited yet" not in page


def test_recipients_are_paginated_fifty_a_page(admin, alumni, monkeypatch):
    _people(123)
    campaign = started_campaign(alumni, monkeypatch)
    url = f"/admin/campaigns/{campaign.id}"

    first = _page(admin, url)
    assert "123 recipients" in first and "page 1 of 3" in first
    assert _emails_on(first) == [f"person{n:03d}@example.org" for n in range(50)]
    assert f'href="{url}?page=2#recipients"' in first
    assert f'href="{url}?page=3#recipients"' in first
    assert 'rel="prev"' not in first

    second = _page(admin, f"{url}?page=2")
    assert _emails_on(second) == [f"person{n:03d}@example.org" for n in range(50, 100)]
    assert 'aria-current="page">2<' in second and 'rel="prev"' in second and 'rel="next"' in second

    last = _page(admin, f"{url}?page=3")
    assert _emails_on(last) == [f"person{n:03d}@example.org" for n in range(100, 123)]
    assert 'rel="next"' not in last
    for beyond in ("99", "99999999999999999999999"):  # past the end: the last page, not an error
        assert _emails_on(_page(admin, f"{url}?page={beyond}")) == _emails_on(last)
    for nonsense in ("0", "-3", "two"):
        assert _emails_on(_page(admin, f"{url}?page={nonsense}")) == _emails_on(first)


def test_recipients_filtered_by_status_and_email(admin, alumni, monkeypatch):
    _people(60)
    campaign = started_campaign(alumni, monkeypatch)
    rows = invitations(campaign.id)
    for invitation in rows[5:58]:
        invitation.status = "completed"
    db.session.commit()
    url = f"/admin/campaigns/{campaign.id}"

    queued = _page(admin, f"{url}?status=queued")
    assert "7 recipients" in queued
    assert _emails_on(queued) == [f"person{n:03d}@example.org" for n in (0, 1, 2, 3, 4, 58, 59)]
    assert '<option value="queued" selected>' in queued

    completed = _page(admin, f"{url}?status=completed")
    assert "53 recipients" in completed
    assert f'href="{url}?page=2&amp;status=completed#recipients"' in completed  # pages keep the filter
    assert _emails_on(_page(admin, f"{url}?status=completed&page=2")) == [
        f"person{n:03d}@example.org" for n in (55, 56, 57)]

    assert _emails_on(_page(admin, f"{url}?email=PERSON04")) == [f"person04{n}@example.org" for n in range(10)]
    assert _emails_on(_page(admin, f"{url}?email=person04&status=queued")) == []
    assert "No recipient matches these filters." in _page(admin, f"{url}?email=person04&status=queued")
    assert _emails_on(_page(admin, f"{url}?email=%25")) == []  # a LIKE wildcard is searched literally
    assert _emails_on(_page(admin, f"{url}?email=_")) == []
    assert "60 recipients" in _page(admin, f"{url}?status=nonsense")  # an unknown status filters nothing


def test_the_emails_of_a_page_are_loaded_in_one_query(admin, alumni, monkeypatch, app):
    _people(40)
    campaign = started_campaign(alumni, monkeypatch)
    for invitation in invitations(campaign.id):
        db.session.add(OutboxMessage(invitation_id=invitation.id, kind="reminder", sequence=1))
    db.session.commit()
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        page = _page(admin, f"/admin/campaigns/{campaign.id}")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(_recipient_rows(page)) == 40
    assert page.count("Reminder 1</strong>") == 40
    assert len([s for s in statements if "outbox_messages" in s]) == 1
    assert len([s for s in statements if "FROM stakeholders" in s or "JOIN stakeholders" in s]) <= 2


@pytest.mark.parametrize("query, passes", [("", 1), ("?status=completed", 1), ("?email=person01", 2)])
def test_the_page_reads_the_campaigns_invitations_once(admin, alumni, monkeypatch, query, passes):
    # Its counts, its funnel and its number of recipients come from one pass over the
    # invitations (a million of them take a quarter of a second each time); a search by
    # address counts its matches with its page.
    _people(30)
    campaign = started_campaign(alumni, monkeypatch)
    for invitation in invitations(campaign.id)[:12]:
        invitation.status, invitation.sent_at = "completed", now()
        invitation.opened_at = invitation.started_at = invitation.completed_at = now()
    db.session.commit()
    with counted_queries() as statements:
        page = _page(admin, f"/admin/campaigns/{campaign.id}{query}")
    assert len([s for s in statements if "count(" in s and "FROM invitations" in s]) == passes
    expected = {"": "30 recipients", "?status=completed": "12 recipients", "?email=person01": "10 recipients"}
    assert expected[query] in page
    assert "12 of 30 invitations sent (40%)" in page
    assert 'class="stage-completed"' in page  # the funnel, drawn from the same pass


# ------------------------------------------------------------------ who sees it

def test_only_admins_see_a_campaign(app, client, create_user, logged_campaign):
    url = f"/admin/campaigns/{logged_campaign.id}"
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    for role in ("committee", "chair", "auditor"):
        user = create_user(role=role)
        visitor = IsolatedClient(app, app.response_class, use_cookies=True)
        logged_in = visitor.post("/login", data={"email": user.email, "password": PASSWORD,
                                                 "csrf_token": csrf_token(visitor)})
        assert logged_in.status_code == 302
        response = visitor.get(url)
        assert response.status_code == 403, role
        assert "ada@example.org" not in response.get_data(as_text=True)


def test_an_unknown_campaign_is_404(admin):
    assert admin.get("/admin/campaigns/999999").status_code == 404
