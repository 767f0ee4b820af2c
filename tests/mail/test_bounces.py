"""Bounces that come back later (RFC 3464 reports, and the non-standard kinds) and
unsubscribe requests mailed to the List-Unsubscribe address: what they change, what
they must not change, and the ``bounces ingest`` command on an mbox and a Maildir.

The campaign is started in-process and its emails marked sent as the sender
would (status, time, Message-ID, the relay's 250 reply); the reports are built
the way Postfix, Gmail, Exchange and Exim write them, around the headers of the
email that was sent.
"""
from __future__ import annotations

import mailbox
from dataclasses import dataclass
from email.utils import make_msgid

import pytest

from survey.audiences.models import Stakeholder
from survey.campaigns import services
from survey.campaigns.models import Campaign, Invitation
from survey.core.types import utcnow
from survey.extensions import db
from survey.mail.addresses import return_path, unsubscribe_mailto
from survey.mail.bounces import ingest_message
from survey.mail.models import OutboxMessage
from tests.campaigns.helpers import invitations, outbox, started_campaign
from tests.conftest import WorkerKilled

DOMAIN = "test.example"  # the MAIL_FROM domain of the test configuration


@dataclass
class Sent:
    """One invitation email that left: the ids a test needs, and its Message-ID."""

    person_id: int
    email: str
    invitation_id: int
    outbox_id: int
    message_id: str

    @classmethod
    def of(cls, row: OutboxMessage) -> Sent:
        person = row.invitation.stakeholder
        return cls(person.id, person.email, row.invitation_id, row.id, row.message_id)


@pytest.fixture
def sent(alumni, create_stakeholder, monkeypatch):
    """A started campaign to two alumni whose invitations the relay accepted (250)."""
    people = [create_stakeholder(email="ada@example.org"), create_stakeholder(email="grace@example.org")]
    campaign = started_campaign(alumni, monkeypatch)
    now = utcnow()
    for row in outbox(campaign.id):
        row.status, row.sent_at, row.lease_until = "sent", now, None
        row.message_id = make_msgid(domain=DOMAIN)
        row.smtp_reply = "250 2.0.0 Ok: queued as 4ZQ1kF2"
        row.invitation.status, row.invitation.sent_at = "sent", now
    db.session.commit()
    rows = {row.invitation.stakeholder_id: row for row in outbox(campaign.id)}
    return campaign.id, [Sent.of(rows[person.id]) for person in people]


# ---------------------------------------------------------------- reports, as servers write them

def original_headers(to: Sent) -> str:
    """The headers of the invitation email, as the bouncing server returns them."""
    return (
        f"Return-Path: <{return_path(to.outbox_id)}>\n"
        "From: Attest <attest@test.example>\n"
        f"To: Ada Lovelace <{to.email}>\n"
        "Subject: Alumni outcomes: a few minutes of your time\n"
        f"Message-ID: {to.message_id}\n"
        "Date: Mon, 02 Nov 2026 09:00:00 +0000\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/alternative; boundary=\"inner\"\n"
    )


def postfix_dsn(to: Sent, *, rcpt_to: str | None = None, action: str = "failed", status: str = "5.1.1",
                diagnostic: str = "smtp; 550 5.1.1 <{email}>: Recipient address rejected: User unknown "
                                  "in virtual mailbox table",
                original: str | None = None) -> bytes:
    """Postfix's bounce: text, message/delivery-status, then the returned headers.

    ``rcpt_to`` is where the report is delivered (the email's envelope sender,
    hence its VERP address, unless a test says otherwise).
    """
    rcpt_to = rcpt_to or return_path(to.outbox_id)
    diagnostic = diagnostic.format(email=to.email)
    subject = ("Delayed Mail (still being retried)" if action == "delayed"
               else "Undelivered Mail Returned to Sender")
    return f"""Return-Path: <>
Delivered-To: {rcpt_to}
X-Original-To: {rcpt_to}
Received: by mx.test.example (Postfix) id 4ZQ1kF2; Mon,  2 Nov 2026 09:00:05 +0000 (UTC)
Date: Mon,  2 Nov 2026 09:00:05 +0000 (UTC)
From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
Subject: {subject}
To: {rcpt_to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4ZQ1kF2.1762074005/mx.example.org"
Message-Id: <20261102090005.4ZQ1kF2@mx.example.org>

This is a MIME-encapsulated message.

--4ZQ1kF2.1762074005/mx.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{to.email}>: host mx.example.org[192.0.2.7] said: {diagnostic.partition("; ")[2]}

--4ZQ1kF2.1762074005/mx.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
X-Postfix-Queue-ID: 4ZQ1kF2
X-Postfix-Sender: rfc822; {return_path(to.outbox_id)}
Arrival-Date: Mon,  2 Nov 2026 09:00:04 +0000 (UTC)

Final-Recipient: rfc822; {to.email}
Original-Recipient: rfc822;{to.email}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: {diagnostic}

--4ZQ1kF2.1762074005/mx.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{original if original is not None else original_headers(to)}
--4ZQ1kF2.1762074005/mx.example.org--
""".encode()


def gmail_dsn(to: Sent) -> bytes:
    """Gmail's report: nested multipart text, the Message-ID repeated as
    X-Original-Message-ID, a multi-line diagnostic, the whole original attached."""
    verp = return_path(to.outbox_id)
    return f"""Return-Path: <>
Delivered-To: {verp}
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {verp}
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
References: {to.message_id}
In-Reply-To: {to.message_id}
X-Failed-Recipients: {to.email}
Message-ID: <6543a1b2.050a0220.abcde.0001.GMR@mx.google.com>
Date: Mon, 02 Nov 2026 01:00:06 -0800 (PST)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000aaa"; report-type=delivery-status

--000000000000aaa
Content-Type: multipart/related; boundary="000000000000bbb"

--000000000000bbb
Content-Type: multipart/alternative; boundary="000000000000ccc"

--000000000000ccc
Content-Type: text/plain; charset="UTF-8"


** Address not found **

Your message wasn't delivered to {to.email} because the address couldn't be found, or is unable to receive mail.

Learn more here: https://support.google.com/mail/?p=NoSuchUser

The response was:

The email account that you tried to reach does not exist.

--000000000000ccc
Content-Type: text/html; charset="UTF-8"

<html><body><h1>Address not found</h1></body></html>

--000000000000ccc--
--000000000000bbb--
--000000000000aaa
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; mx.test.example
Arrival-Date: Mon, 02 Nov 2026 01:00:05 -0800 (PST)
X-Original-Message-ID: {to.message_id}

Final-Recipient: rfc822; {to.email}
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com. (2a00:1450:400c:c0b::1a, the server for the domain example.org.)
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try
 550-5.1.1 double-checking the recipient's email address for typos or
 550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser a1si2 - gsmtp
Last-Attempt-Date: Mon, 02 Nov 2026 01:00:06 -0800 (PST)

--000000000000aaa
Content-Type: message/rfc822

{original_headers(to)}
--inner
Content-Type: text/plain; charset="utf-8"

Hello Ada, a few minutes of your time?
--inner--

--000000000000aaa--
""".encode()


def exchange_dsn(to: Sent) -> bytes:
    """Exchange Online's non-delivery report: a 5.1.10 status, postmaster sender."""
    verp = return_path(to.outbox_id)
    return f"""From: postmaster@outlook.com
To: {verp}
Subject: Undeliverable: Alumni outcomes: a few minutes of your time
Date: Mon, 2 Nov 2026 09:00:07 +0000
Message-ID: <1c2d3e4f-aaaa-bbbb-cccc-000000000000@AM0PR01MB1234.eurprd01.prod.exchangelabs.com>
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="_000_NDR_"

--_000_NDR_
Content-Type: text/plain; charset="us-ascii"

Your message to {to.email} couldn't be delivered.
{to.email.partition("@")[0]} wasn't found at example.org.

Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'

--_000_NDR_
Content-Type: message/delivery-status

Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com
Received-From-MTA: dns;mx.test.example
Arrival-Date: Mon, 2 Nov 2026 09:00:06 +0000

Final-Recipient: rfc822;{to.email}
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup
X-Display-Name: Ada Lovelace

--_000_NDR_
Content-Type: text/rfc822-headers

{original_headers(to)}
--_000_NDR_--
""".encode()


def exim_bounce(to: Sent) -> bytes:
    """Exim's plain-text bounce (no report part): the SMTP reply in the text, the
    original quoted after a separator line."""
    verp = return_path(to.outbox_id)
    return f"""Return-path: <>
Envelope-to: {verp}
From: Mail Delivery System <Mailer-Daemon@mail.example.org>
To: {verp}
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: {to.email}
Auto-Submitted: auto-replied
Message-Id: <E1vXyZ-000123-AB@mail.example.org>
Date: Mon, 02 Nov 2026 09:00:08 +0000

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {to.email}
    host mx.example.org [192.0.2.7]
    SMTP error from remote mail server after RCPT TO:<{to.email}>:
    550 5.1.1 <{to.email}>: Recipient address rejected: User unknown

------ This is a copy of the message, including all the headers. ------

{original_headers(to)}
--inner
Content-Type: text/plain; charset="utf-8"

Hello Ada, a few minutes of your time?
--inner--
""".encode()


def exim_delay_warning(to: Sent) -> bytes:
    """Exim's warning that an email is still queued: no status code, only words."""
    verp = return_path(to.outbox_id)
    return f"""Return-path: <>
Envelope-to: {verp}
From: Mail Delivery System <Mailer-Daemon@mail.example.org>
To: {verp}
Subject: Warning: message 1vXyZ-000123-AB delayed 24 hours
X-Failed-Recipients: {to.email}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mail.example.org.

  {to.email}
    Delay reason: mailbox is full

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered.
""".encode()


def unsubscribe_address(invitation_id: int) -> str:
    """The mailto: address of an invitation's List-Unsubscribe header."""
    invitation = db.session.get(Invitation, invitation_id)
    return unsubscribe_mailto(services.unsubscribe_token(invitation.token_nonce))


def unsubscribe_mail(address: str) -> bytes:
    """What a mail client sends when the person clicks its "Unsubscribe" button."""
    return f"""From: Ada Lovelace <ada@example.org>
To: {address}
Subject: unsubscribe
Date: Mon, 02 Nov 2026 10:00:00 +0000
Message-ID: <CAF=unsub123@mail.gmail.com>
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"

This message was automatically generated by Gmail.
""".encode()


VACATION = b"""Return-Path: <>
From: Ada Lovelace <ada@example.org>
To: bounces@test.example
Subject: Out of office: Alumni outcomes: a few minutes of your time
Auto-Submitted: auto-replied
Date: Mon, 02 Nov 2026 09:01:00 +0000

I am away until Monday 9 November, with no access to my email.
"""


# ---------------------------------------------------------------- what a user notices

def state(item: Sent) -> dict:
    """Everything a report may change about one email and its person."""
    db.session.expire_all()
    row = db.session.get(OutboxMessage, item.outbox_id)
    person = db.session.get(Stakeholder, item.person_id)
    invitation = db.session.get(Invitation, item.invitation_id)
    return {
        "outbox": (row.status, row.bounced_at, row.smtp_reply),
        "invitation": (invitation.status, invitation.opted_out_at),
        "person": (person.suppressed_at, person.suppression_reason),
    }


def ingest(raw: bytes):
    result = ingest_message(raw)
    db.session.commit()
    return result


def second_campaign_people(alumni, monkeypatch) -> set[int]:
    """Who a campaign started now invites."""
    campaign = started_campaign(alumni, monkeypatch, name="Alumni 2027")
    return {invitation.stakeholder_id for invitation in invitations(campaign.id)}


def test_a_postfix_hard_bounce_marks_the_email_bounced_and_suppresses_the_address(sent, alumni, monkeypatch):
    campaign_id, (ada, grace) = sent
    grace_before = state(grace)

    result = ingest(postfix_dsn(ada))

    assert (result.action, result.changed, result.outbox_id) == ("bounce", True, ada.outbox_id)
    assert "5.1.1" in result.detail and ada.email in result.detail
    after = state(ada)
    status, bounced_at, reply = after["outbox"]
    assert status == "bounced" and bounced_at is not None
    # the relay's acceptance is kept; the later report is added below it
    assert reply.startswith("250 2.0.0 Ok") and "5.1.1" in reply and "User unknown" in reply
    assert after["invitation"] == ("bounced", None)
    suppressed_at, reason = after["person"]
    assert suppressed_at is not None
    assert reason.startswith("hard bounce: 5.1.1") and "Recipient address rejected" in reason
    assert services.campaign_counts(campaign_id)["failed"] == 1
    assert state(grace) == grace_before  # the other person is untouched
    # the next campaign leaves the dead address out
    assert second_campaign_people(alumni, monkeypatch) == {grace.person_id}


def test_a_refusal_of_the_email_itself_does_not_suppress_the_address(sent, alumni, monkeypatch):
    """5.7.1 (rejected as spam, policy): this email failed, the address is still good."""
    campaign_id, (ada, grace) = sent

    result = ingest(postfix_dsn(ada, status="5.7.1",
                                diagnostic="smtp; 554 5.7.1 <{email}>: Message rejected by policy"))

    assert (result.action, result.changed) == ("bounce", True)
    after = state(ada)
    assert after["outbox"][0] == "bounced"
    assert after["invitation"] == ("failed", None)
    assert after["person"] == (None, None)
    assert services.campaign_counts(campaign_id)["failed"] == 1
    assert second_campaign_people(alumni, monkeypatch) == {ada.person_id, grace.person_id}


def test_a_late_bounce_after_the_close_leaves_the_frozen_counts_alone(sent):
    campaign_id, (ada, _grace) = sent
    campaign = db.session.get(Campaign, campaign_id)
    campaign.status, campaign.closed_at = "closed", utcnow()
    db.session.commit()
    before = services.campaign_counts(campaign_id)

    ingest(postfix_dsn(ada))

    after = state(ada)
    assert after["outbox"][0] == "bounced"  # the email's own record still says what happened
    assert after["invitation"] == ("sent", None)
    assert after["person"][0] is not None  # and the dead address is still suppressed
    assert services.campaign_counts(campaign_id) == before


def test_ingesting_the_same_report_again_changes_nothing(sent):
    _campaign_id, (ada, _grace) = sent
    dsn = postfix_dsn(ada)
    assert ingest(dsn).changed
    first = state(ada)

    again = ingest(dsn)

    assert (again.action, again.changed) == ("bounce", False)
    assert "already recorded" in again.detail
    assert state(ada) == first


def test_a_delayed_report_is_reported_and_records_nothing(sent, alumni, monkeypatch):
    campaign_id, (ada, grace) = sent
    before = state(ada)

    result = ingest(postfix_dsn(
        ada, action="delayed", status="4.2.2",
        diagnostic="smtp; 452 4.2.2 <{email}>: Mailbox full (in reply to RCPT TO command)"))

    assert (result.action, result.changed, result.outbox_id) == ("transient", False, ada.outbox_id)
    assert "4.2.2" in result.detail and "Mailbox full" in result.detail
    assert state(ada) == before
    assert services.campaign_counts(campaign_id)["failed"] == 0
    assert second_campaign_people(alumni, monkeypatch) == {ada.person_id, grace.person_id}


def test_a_plain_text_delay_warning_is_transient(sent):
    _campaign_id, (ada, _grace) = sent
    before = state(ada)
    result = ingest(exim_delay_warning(ada))
    assert (result.action, result.outbox_id) == ("transient", ada.outbox_id), result.detail
    assert state(ada) == before


def test_a_failure_with_a_temporary_status_is_not_a_hard_bounce(sent):
    """Postfix gives up on a 4.x.x after days in its queue (Action: failed, 4.4.7): the
    address itself was never refused, so it stays usable."""
    _campaign_id, (ada, _grace) = sent
    before = state(ada)
    result = ingest(postfix_dsn(ada, status="4.4.7", diagnostic="X-Postfix; delivery temporarily suspended"))
    assert result.action == "transient"
    assert state(ada) == before


@pytest.mark.parametrize("build", [gmail_dsn, exchange_dsn, exim_bounce], ids=["gmail", "exchange", "exim"])
def test_other_servers_reports_are_understood(sent, build):
    campaign_id, (ada, _grace) = sent

    result = ingest(build(ada))

    assert (result.action, result.changed, result.outbox_id) == ("bounce", True, ada.outbox_id), result.detail
    after = state(ada)
    assert after["outbox"][0] == "bounced"
    assert after["invitation"][0] == "bounced"
    assert after["person"][1].startswith("hard bounce: 5.1.1")
    assert services.campaign_counts(campaign_id)["failed"] == 1


def test_a_forged_bounce_address_changes_nothing(sent, app, monkeypatch):
    """A report that names a real email but was not signed by us (a guessed id, or a
    signature made with another key) never suppresses anyone."""
    campaign_id, (ada, _grace) = sent
    before = state(ada)
    unsigned = f"bounces+{ada.outbox_id}.{'0' * 16}@{DOMAIN}"
    with monkeypatch.context() as patch:
        patch.setitem(app.config, "SECRET_KEY", "not our key")
        other_key = return_path(ada.outbox_id)
    assert other_key != return_path(ada.outbox_id)
    # the returned headers carry a Message-ID we never sent: nothing else ties it to Ada
    unknown_original = original_headers(ada).replace(ada.message_id, "<made.up@attacker.example>")

    for forged in (unsigned, other_key):
        result = ingest(postfix_dsn(ada, rcpt_to=forged, original=unknown_original))
        assert (result.action, result.changed) == ("ignored", False)
        assert "signature is wrong" in result.detail

    assert state(ada) == before
    assert services.campaign_counts(campaign_id)["failed"] == 0


def test_without_the_bounce_address_the_returned_message_id_ties_the_report(sent):
    """A forwarder rewrote the envelope sender: the report reaches the plain bounces
    address, and the Message-ID of the returned headers names the email."""
    _campaign_id, (ada, grace) = sent
    grace_before = state(grace)

    result = ingest(postfix_dsn(ada, rcpt_to=f"bounces@{DOMAIN}"))

    assert (result.action, result.changed, result.outbox_id) == ("bounce", True, ada.outbox_id)
    assert state(ada)["invitation"][0] == "bounced"
    assert state(grace) == grace_before


def test_the_message_id_ties_a_report_even_before_the_email_was_recorded(alumni, create_stakeholder, monkeypatch,
                                                                       smtp_server):
    """The relay took the email, then the worker died before recording it: the row holds
    no Message-ID yet, but the one the email carries is derived from the row, and names
    it. One of the same shape that was made up names nothing."""
    from survey.mail import sending

    create_stakeholder(email="ada@example.org")
    campaign = started_campaign(alumni, monkeypatch)

    def killed(outcomes, now):
        raise WorkerKilled

    monkeypatch.setattr(sending, "_record", killed)
    with pytest.raises(WorkerKilled):
        sending.send_batch(100)
    db.session.rollback()
    [caught] = smtp_server.wait_for(1)
    [row] = outbox(campaign.id)
    assert (row.status, row.message_id) == ("sending", None)
    ada = Sent.of(row)
    ada.message_id = caught["message"]["Message-ID"]

    for made_up in (f"<{row.id}.{'0' * 20}@{DOMAIN}>", f"<{row.id}.{'0' * 20}@exämple.fr>"):
        forged = ingest(postfix_dsn(ada, rcpt_to=f"bounces@{DOMAIN}", original=f"Message-ID: {made_up}\n"))
        assert forged.action == "ignored" and "cannot tell which email" in forged.detail

    result = ingest(postfix_dsn(ada, rcpt_to=f"bounces@{DOMAIN}"))
    assert (result.action, result.changed, result.outbox_id) == ("bounce", True, row.id)
    assert state(ada)["invitation"][0] == "bounced"


def test_a_report_that_names_no_known_email_is_ignored(sent):
    _campaign_id, (ada, _grace) = sent
    before = state(ada)
    result = ingest(postfix_dsn(ada, rcpt_to=f"bounces@{DOMAIN}",
                                original="Message-ID: <someone.else@elsewhere.example>\n"))
    assert result.action == "ignored" and "cannot tell which email" in result.detail
    assert state(ada) == before


def test_a_bounce_after_the_person_opened_the_link_keeps_the_invitation_status(sent):
    """The invitation reached them (they opened it); a later bounce (the mailbox was
    closed since) suppresses the address but does not rewrite what happened."""
    _campaign_id, (ada, _grace) = sent
    invitation = db.session.get(Invitation, ada.invitation_id)
    invitation.status, invitation.opened_at = "opened", utcnow()
    db.session.commit()

    assert ingest(postfix_dsn(ada)).changed

    after = state(ada)
    assert after["invitation"][0] == "opened"
    assert after["outbox"][0] == "bounced"
    assert after["person"][1].startswith("hard bounce")


def test_a_bounced_reminder_suppresses_without_marking_the_invitation(sent):
    _campaign_id, (ada, _grace) = sent
    reminder = OutboxMessage(invitation_id=ada.invitation_id, kind="reminder", sequence=1, status="sent",
                             sent_at=utcnow(), message_id=make_msgid(domain=DOMAIN),
                             smtp_reply="250 2.0.0 Ok")
    db.session.add(reminder)
    db.session.commit()
    item = Sent(ada.person_id, ada.email, ada.invitation_id, reminder.id, reminder.message_id)

    result = ingest(postfix_dsn(item))

    assert (result.action, result.outbox_id) == ("bounce", reminder.id)
    after = state(item)
    assert after["outbox"][0] == "bounced"
    assert after["invitation"][0] == "sent"
    assert after["person"][0] is not None
    assert state(ada)["outbox"][0] == "sent"  # the invitation email itself did arrive


def test_an_unsubscribe_mail_opts_the_person_out_of_everything(sent, alumni, monkeypatch):
    campaign_id, (ada, grace) = sent

    result = ingest(unsubscribe_mail(unsubscribe_address(ada.invitation_id)))

    assert (result.action, result.changed) == ("unsubscribe", True)
    after = state(ada)
    assert after["invitation"][0] == "opted_out" and after["invitation"][1] is not None
    assert after["person"][1] == "opted out"
    assert second_campaign_people(alumni, monkeypatch) == {grace.person_id}

    again = ingest(unsubscribe_mail(unsubscribe_address(ada.invitation_id)))
    assert (again.action, again.changed) == ("unsubscribe", False)
    assert state(ada) == after


def test_an_unsubscribe_mail_with_an_unknown_token_changes_nothing(sent):
    _campaign_id, (ada, _grace) = sent
    before = state(ada)
    result = ingest(unsubscribe_mail(unsubscribe_mailto("f" * 40)))
    assert result.action == "ignored" and "unknown token" in result.detail
    assert state(ada) == before


@pytest.mark.parametrize("raw, reason", [
    (VACATION, "neither a delivery status notification"),
    (b"", "neither a delivery status notification"),
    (b"\x00\xff\xfe garbage \r\n\r\n\x00", "neither a delivery status notification"),
    (b"From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail\n\nSorry, it did not work.\n",
     "gives no delivery status"),
    (b"From: x@y\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n"
     b"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
     b"Final-Recipient: rfc822; a@b\nAction: delivered\nStatus: 2.0.0\n\n--b--\n",
     "without failure (delivered)"),
], ids=["vacation", "empty", "garbage", "bounce-without-status", "delivery-success"])
def test_messages_that_are_not_understood_are_ignored_with_a_reason(sent, raw, reason):
    _campaign_id, (ada, _grace) = sent
    before = state(ada)
    result = ingest(raw)
    assert result.action == "ignored" and reason in result.detail, result.detail
    assert state(ada) == before


def test_round_trip_through_the_real_sender(alumni, create_stakeholder, monkeypatch, smtp_server):
    """The sender's envelope sender, Message-ID and List-Unsubscribe, as a real SMTP
    server received them, are what the bounce and the unsubscribe mail come back to."""
    from survey.mail.sending import send_batch

    create_stakeholder(email="ada@example.org")
    create_stakeholder(email="grace@example.org")
    campaign = started_campaign(alumni, monkeypatch)
    assert send_batch(100) == 2
    caught = {m["to"][0]: m for m in smtp_server.wait_for(2)}
    ada, grace = sorted((Sent.of(row) for row in outbox(campaign.id)), key=lambda sent: sent.email)
    returned = "".join(f"{name}: {value}\n" for name, value in caught[ada.email]["message"].items())
    list_unsubscribe = caught[grace.email]["message"]["List-Unsubscribe"].split(",")
    [mailto] = [part.strip(" <>").removeprefix("mailto:") for part in list_unsubscribe if "mailto:" in part]

    bounce = ingest(postfix_dsn(ada, rcpt_to=caught[ada.email]["from"], original=returned))
    unsubscribe = ingest(unsubscribe_mail(mailto))

    assert (bounce.action, bounce.changed, bounce.outbox_id) == ("bounce", True, ada.outbox_id)
    assert state(ada)["invitation"][0] == "bounced"
    assert (unsubscribe.action, unsubscribe.changed) == ("unsubscribe", True)
    assert state(grace)["person"][1] == "opted out"


# ---------------------------------------------------------------- the command

def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["bounces", "ingest", *args])


def mixed_messages(ada: Sent, grace: Sent) -> list[bytes]:
    forged = postfix_dsn(grace, rcpt_to=f"bounces+{grace.outbox_id}.{'0' * 16}@{DOMAIN}",
                         original="Message-ID: <made.up@attacker.example>\n")
    delayed = postfix_dsn(grace, action="delayed", status="4.2.2", diagnostic="smtp; 452 4.2.2 Mailbox full")
    unsubscribe = unsubscribe_mail(unsubscribe_address(grace.invitation_id))
    return [postfix_dsn(ada), delayed, forged, unsubscribe, VACATION]


def test_the_command_reads_an_mbox_file_and_reports_each_message(app, sent, tmp_path):
    _campaign_id, (ada, grace) = sent
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(str(path))
    for raw in mixed_messages(ada, grace):
        box.add(raw)
    box.close()
    content = path.read_bytes()

    result = run(app, str(path))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("1: bounce applied: outbox") and "5.1.1" in lines[0]
    assert lines[1].startswith("2: delayed") and "4.2.2" in lines[1]
    assert lines[2].startswith("3: ignored: the bounce address's signature is wrong")
    assert lines[3].startswith("4: unsubscribed")
    assert lines[4].startswith("5: ignored: neither")
    assert lines[5] == ("5 messages: bounces applied 1, unsubscribes 1, transient 1, ignored 2, "
                        "already recorded 0")
    assert state(ada)["person"][1].startswith("hard bounce: 5.1.1")
    assert state(grace)["person"][1] == "opted out"
    assert path.read_bytes() == content  # an mbox is only read

    again = run(app, str(path))
    assert again.exit_code == 0, again.output
    # a re-read mailbox is quiet about what it already did
    assert [line.split(":")[0] for line in again.output.splitlines()[:-1]] == ["2", "3", "5"]
    assert again.output.splitlines()[-1] == ("5 messages: bounces applied 0, unsubscribes 0, transient 1, "
                                             "ignored 2, already recorded 2")


def make_maildir(path, messages: list[bytes]) -> mailbox.Maildir:
    box = mailbox.Maildir(str(path))
    for raw in messages:
        box.add(raw)
    return box


def test_the_command_reads_a_maildir_and_leaves_it_alone_without_delete(app, sent, tmp_path):
    _campaign_id, (ada, grace) = sent
    box = make_maildir(tmp_path / "Maildir", mixed_messages(ada, grace))
    keys = set(box.keys())

    result = run(app, str(tmp_path / "Maildir"))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("5 messages: bounces applied 1, unsubscribes 1,")
    assert set(box.keys()) == keys
    assert state(ada)["outbox"][0] == "bounced"


def test_the_command_with_delete_removes_the_messages_it_understood(app, sent, tmp_path):
    _campaign_id, (ada, grace) = sent
    messages = mixed_messages(ada, grace)
    box = make_maildir(tmp_path / "Maildir", messages)

    result = run(app, str(tmp_path / "Maildir"), "--delete")

    assert result.exit_code == 0, result.output
    # the forged report and the out-of-office reply stay, for a person to look at
    kept = sorted(box.get_bytes(key) for key in box.keys())
    assert kept == sorted([messages[2], messages[4]])


def test_a_broken_message_does_not_stop_the_run(app, sent, tmp_path):
    _campaign_id, (ada, _grace) = sent
    broken = (b"From: MAILER-DAEMON@mx.example.org\nContent-Type: multipart/report; boundary=\"x\"\n"
              b"Content-Transfer-Encoding: base64\n\n--x\nContent-Type: message/delivery-status\n"
              b"Content-Transfer-Encoding: quoted-printable\n\n=ZZ\x00\xff\n--x")
    box = make_maildir(tmp_path / "Maildir", [broken, postfix_dsn(ada)])
    assert len(box) == 2

    result = run(app, str(tmp_path / "Maildir"))

    assert result.exit_code == 0, result.output
    assert "bounces applied 1," in result.output.splitlines()[-1]
    assert "ignored: a bounce that gives no delivery status" in result.output
    assert state(ada)["outbox"][0] == "bounced"


def test_a_message_the_email_package_cannot_read_is_ignored_not_raised(sent, monkeypatch):
    """No input found so far makes the stdlib parser raise (a fuzz run of 20,000
    mangled reports did not); should one do it, that message is reported, not fatal."""
    from survey.mail import bounces

    _campaign_id, (ada, _grace) = sent

    def crash(_msg):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(bounces, "_texts", crash)
    result = ingest(postfix_dsn(ada))
    assert result.action == "ignored" and "unreadable message (UnicodeDecodeError" in result.detail
    assert state(ada)["outbox"][0] == "sent"


@pytest.mark.parametrize("args, message", [
    ([], "Give a mailbox PATH"),
    (["--imap", "localhost"], "--imap needs --user"),
    (["--imap", "localhost", "--user", "u", "--plain", "--starttls"], "not both"),
    (["--imap", "imap.example.org", "--user", "u", "--plain"], "only for a server on this machine"),
])
def test_the_command_refuses_incomplete_or_unsafe_options(app, args, message, monkeypatch):
    monkeypatch.setenv("IMAP_PASSWORD", "secret")
    result = run(app, *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_delete_is_refused_for_an_mbox_and_a_plain_directory_is_refused(app, tmp_path):
    path = tmp_path / "bounces.mbox"
    path.write_bytes(b"")
    result = run(app, str(path), "--delete")
    assert result.exit_code == 2 and "only read" in result.output
    result = run(app, str(tmp_path))
    assert result.exit_code == 2 and "not a Maildir" in result.output


def test_imap_without_a_password_in_cron_asks_for_the_variable(app, monkeypatch):
    monkeypatch.delenv("IMAP_PASSWORD", raising=False)
    result = run(app, "--imap", "localhost", "--user", "bounces", "--plain")
    assert result.exit_code == 2 and "IMAP_PASSWORD" in result.output


def test_an_unreachable_imap_server_is_a_clean_error(app, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("IMAP_PASSWORD", "secret")
    result = run(app, "--imap", "127.0.0.1", "--port", str(port), "--user", "bounces", "--plain")
    assert result.exit_code == 1
    assert result.output.startswith("Error: IMAP 127.0.0.1:") and "Traceback" not in result.output
