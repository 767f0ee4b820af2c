"""Mail merge: a batch renders each distinct email once, yet every person gets their
own name, links and headers, in their own language, and nothing of anyone else's."""
from __future__ import annotations

import re

import pytest

from survey.campaigns.models import Invitation
from survey.core.tokens import hash_token
from survey.extensions import db
from survey.mail.addresses import unsubscribe_token_from
from survey.mail.sending import send_batch
from tests.campaigns.helpers import outbox, started_campaign


def _people(create_stakeholder):
    people = [create_stakeholder(email=f"p{n}@example.org", locale=("fr", "en")[n % 2],
                                 timezone=("Europe/Paris", "America/Montreal")[n % 3 % 2]) for n in range(6)]
    people[0].first_name, people[0].last_name = "Zoé <b>", "Ñoño, \"Jr\""
    people[1].first_name = "ATTESTMERGELINK"  # a name that happens to be a marker stays as typed
    people[2].first_name = ""  # no first name: greeted by the full name
    people[2].last_name = "Lovelace"
    db.session.commit()
    return people


def test_each_person_gets_their_own_name_links_and_headers(app, alumni, create_stakeholder, smtp_server,
                                                          monkeypatch):
    people = _people(create_stakeholder)
    campaign = started_campaign(alumni, monkeypatch)
    assert send_batch(50) == len(people)
    rows = {row.invitation_id: row for row in outbox(campaign.id)}
    invitations = {i.stakeholder.email: i for i in db.session.query(Invitation).filter_by(campaign_id=campaign.id)}
    assert len(smtp_server.messages) == len(people)
    for caught in smtp_server.messages:
        message = caught["message"]
        [recipient] = caught["to"]
        invitation = invitations[recipient]
        person = invitation.stakeholder
        assert message["To"].addresses[0].addr_spec == person.email
        assert message["To"].addresses[0].display_name == person.display_name
        assert message["Message-ID"] == rows[invitation.id].message_id
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        greeting = person.first_name or person.display_name
        assert text.startswith(("Hello", "Bonjour")) and f" {greeting}," in text.splitlines()[0]
        assert ("Bonjour" in text) == (person.locale == "fr")
        # The survey link is this invitation's, in both parts.
        [link] = set(re.findall(r"https://attest\.test\.example/s/([\w-]+)", text))
        assert hash_token(link) == invitation.token_hash
        assert f"/s/{link}" in html
        # And the unsubscribe token, in the headers and the body.
        mailto = re.search(r"<mailto:([^>]+)>", message["List-Unsubscribe"]).group(1)
        token = unsubscribe_token_from(mailto.removeprefix("mailto:"))
        assert hash_token(token) == invitation.unsubscribe_hash
        assert f"/u/{token}" in text and f"/u/{token}" in html
        # Markup in a name is text in the HTML part.
        if person.first_name.startswith("Zoé"):
            assert "Zoé &lt;b&gt;," in html and "<b>" not in html.split("<body", 1)[1].split("Zo", 1)[1][:20]
    assert len({m["message"]["Message-ID"] for m in smtp_server.messages}) == len(people)


def test_a_later_batch_says_the_closing_time_as_it_is_then(app, alumni, create_stakeholder, smtp_server,
                                                           monkeypatch):
    # Rendered emails are kept from batch to batch; a campaign whose closing time was
    # moved in between sends the new one.
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from babel.dates import format_datetime

    people = [create_stakeholder(email=f"q{n}@example.org", locale="en", timezone="Europe/Paris") for n in range(2)]
    campaign = started_campaign(alumni, monkeypatch)

    def closing(when) -> str:
        return format_datetime(when, "long", tzinfo=ZoneInfo("Europe/Paris"), locale="en")

    first_closing = campaign.closes_at
    assert send_batch(1) == 1
    campaign.closes_at = first_closing + timedelta(days=9)
    db.session.commit()
    assert send_batch(1) == 1
    texts = [m["message"].get_body(("plain",)).get_content() for m in smtp_server.messages]
    assert len(texts) == len(people)
    assert closing(first_closing) in texts[0] and closing(campaign.closes_at) not in texts[0]
    assert closing(campaign.closes_at) in texts[1] and closing(first_closing) not in texts[1]



@pytest.mark.parametrize("privacy, promise", [
    ("identified", "Your answers are linked to you; reports only ever show them in aggregate."),
    ("confidential", "Your answers are confidential: they are only ever shown in aggregate."),
    ("anonymous", "Your answers are anonymous: they are never linked to you."),
])
def test_an_employee_invitation_promises_what_its_privacy_keeps(app, builtin_questionnaires, create_stakeholder,
                                                                smtp_server, monkeypatch, privacy, promise):
    """Found by trying it: every employee invitation said "only ever shown in aggregate", an
    identified campaign's too (the wizard's default), which links each answer to its person."""
    create_stakeholder(kind="employee", locale="en")
    started_campaign(builtin_questionnaires["employee-pulse"], monkeypatch, privacy=privacy)
    assert send_batch(50) == 1
    text = smtp_server.messages[0]["message"].get_body(("plain",)).get_content()
    assert promise in text
    assert "five minutes" not in text  # each questionnaire says its own length
