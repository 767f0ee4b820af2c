"""What every survey email carries besides its text: one-click unsubscribe (RFC 2369,
RFC 8058) and a VERP envelope sender that ties a later bounce to it."""
from __future__ import annotations

import re

import pytest

from survey.campaigns.models import Invitation
from survey.core.tokens import hash_token
from survey.extensions import db
from survey.mail.addresses import outbox_id_from, unsubscribe_token_from
from survey.mail.sending import send_batch
from tests.campaigns.helpers import outbox, started_campaign


@pytest.fixture
def sent(app, builtin_questionnaires, create_stakeholder, smtp_server, monkeypatch):
    create_stakeholder(email="ada@example.org")
    campaign = started_campaign(builtin_questionnaires["alumni-outcomes"], monkeypatch)
    assert send_batch(10) == 1
    [caught] = smtp_server.messages
    [row] = outbox(campaign.id)
    return caught, row


def test_list_unsubscribe_offers_a_one_click_https_link_and_a_mailto(sent):
    caught, row = sent
    message = caught["message"]
    https, mailto = re.fullmatch(r"<([^>]+)>,\s*<([^>]+)>", message["List-Unsubscribe"].strip()).groups()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert https.startswith("https://attest.test.example/u/")
    token = https.rsplit("/", 1)[1]
    invitation = db.session.get(Invitation, row.invitation_id)
    assert invitation.unsubscribe_hash == hash_token(token)  # opaque, stored only as a hash
    assert token not in (invitation.token_hash, invitation.token_nonce)
    assert mailto.startswith("mailto:unsubscribe+")
    assert unsubscribe_token_from(mailto) == token
    # The same link is in the text a person reads.
    assert https in message.get_body(("plain",)).get_content()
    assert https in message.get_body(("html",)).get_content()


def test_the_envelope_sender_names_this_email_and_cannot_be_forged(app, sent):
    caught, row = sent
    assert outbox_id_from(caught["from"]) == row.id
    assert caught["from"].endswith("@test.example")
    forged = caught["from"].replace(f"+{row.id}.", f"+{row.id + 1}.")
    assert outbox_id_from(forged) is None
