"""Sending invitations through a real SMTP server (aiosmtpd), in-process.

``send_batch`` is called directly, as the worker's ``send_due_emails`` task does.
"""
from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from survey.audiences.models import Stakeholder
from survey.campaigns import services
from survey.campaigns.models import Campaign, Invitation
from survey.extensions import db
from survey.mail.models import OutboxMessage
from survey.mail.sending import claim_due, release_expired_leases, send_batch, work_waiting
from tests.campaigns.helpers import invitations, now, outbox, started_campaign
from tests.conftest import CaughtMail, WorkerKilled, _free_port, serve_smtp

BASE = "https://attest.test.example"
TRANSLATIONS = Path(__file__).resolve().parents[2] / "survey" / "translations"


class RecordingMail(CaughtMail):
    """CaughtMail that also notes the connection each message came on and can refuse a
    MAIL or a DATA."""

    def __init__(self, pipelining: bool = False):
        super().__init__(pipelining)
        self.peers: list = []
        self.rcpt_peers: list = []
        self.drops = 0  # how many next RCPTs hang up instead of answering
        self.mail_replies: list[str] = []  # consumed one per MAIL; empty means 250
        self.data_replies: list[str] = []  # consumed one per DATA; empty means accepted
        self.contents: list[bytes] = []  # every DATA the server took, as it came

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_replies:
            return self.mail_replies.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_peers.append(session.peer)
        if self.drops:
            self.drops -= 1
            server.transport.close()
            return "421 4.4.2 gone"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        self.contents.append(envelope.content)
        if self.data_replies:
            return self.data_replies.pop(0)
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)

    @property
    def connections(self) -> int:
        return len(set(self.peers))


@pytest.fixture(params=[False, True], ids=["lockstep", "pipelining"])
def smtp(app, request):
    """The relay, once waiting for each reply before the next command, once offering
    PIPELINING: every test that sends through it runs both ways."""
    yield from serve_smtp(RecordingMail(pipelining=request.param))


@pytest.fixture
def retry_base(app, monkeypatch):
    """Temporary failures are retried after 0.25 s, then 0.5 s, 1 s…"""
    monkeypatch.setitem(app.config, "MAIL_RETRY_BASE_SECONDS", 0.25)
    return 0.25


def _rows(campaign_id):
    db.session.expire_all()
    return outbox(campaign_id)


def _wait_until(moment: datetime) -> None:
    delay = (moment - datetime.now(timezone.utc)).total_seconds()
    assert delay < 2, "the test would sleep too long"
    if delay > 0:
        time.sleep(delay + 0.01)


def _recipient(caught) -> str:
    return caught["to"][0]


# ---------------------------------------------------------------------- the email itself

def test_invitation_in_the_recipients_language(app, alumni, create_stakeholder, smtp, monkeypatch):
    closes = datetime(now().year + 1, 3, 15, 17, 0, tzinfo=timezone.utc)  # 18:00 in Paris
    french = create_stakeholder(email="claire@example.fr", locale="fr", timezone="Europe/Paris")
    english = create_stakeholder(email="jane@example.org", locale="en", timezone="Europe/London")
    started_campaign(alumni, monkeypatch, closes_at=closes)

    assert send_batch(100) == 2
    by_address = {_recipient(m): m["message"] for m in smtp.messages}
    assert set(by_address) == {french.email, english.email}

    for person, message in ((french, by_address[french.email]), (english, by_address[english.email])):
        assert message.get_content_type() == "multipart/alternative"
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        assert plain is not None and html is not None
        assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
        assert f'<html lang="{person.locale}">' in html.get_content()
        assert parseaddr(message["To"])[1] == person.email
        assert "Ada Lovelace" in message["To"]
        assert parseaddr(message["From"])[1] == "attest@test.example"

    fr, en = by_address[french.email], by_address[english.email]
    # The questionnaire's own title is always in the person's language.
    assert alumni.title("fr") in fr["Subject"] and alumni.title("fr").startswith("Qu'est-ce qui a changé")
    assert alumni.title("en") in en["Subject"]
    assert "What has changed" not in fr["Subject"]
    # The closing date is written the person's way, in their time zone.
    year = closes.year
    for part in (fr.get_body(("plain",)).get_content(), fr.get_body(("html",)).get_content()):
        assert f"15 mars {year}" in part
        assert "18:00" in part
        assert "March" not in part
    for part in (en.get_body(("plain",)).get_content(), en.get_body(("html",)).get_content()):
        assert f"March 15, {year}" in part
        assert "5:00:00\u202fPM" in part or "5:00:00 PM" in part
    # The interface text follows the catalogs: once French is compiled, no English is left.
    if list(TRANSLATIONS.glob("fr/LC_MESSAGES/messages.mo")):
        assert "a few minutes of your time" not in fr["Subject"]
        assert "Hello" not in fr.get_body(("plain",)).get_content()
    assert "Hello Ada," in en.get_body(("plain",)).get_content()


def test_names_are_escaped_in_the_html_part(app, alumni, create_stakeholder, smtp, monkeypatch):
    person = create_stakeholder()
    person.first_name = '<img src=x onerror="alert(1)">'
    db.session.commit()
    started_campaign(alumni, monkeypatch)
    assert send_batch(100) == 1
    message = smtp.messages[0]["message"]
    html = message.get_body(("html",)).get_content()
    assert "<img src=x" not in html and "&lt;img src=x" in html
    assert person.first_name in message.get_body(("plain",)).get_content()  # plain text is not HTML


def test_link_comes_from_base_url_never_from_the_request_host(app, client, alumni, create_stakeholder, smtp,
                                                              monkeypatch):
    create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    # Sending while serving a request that came with another Host header.
    with app.test_request_context("/admin/campaigns/", base_url="http://evil.example:8080"):
        assert send_batch(100) == 1
    message = smtp.messages[0]["message"]
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "evil.example" not in plain and "evil.example" not in html
    links = re.findall(r"https?://[^\s\"<]+/s/[A-Za-z0-9_-]+", plain)
    assert len(links) == 1 and links[0].startswith(f"{BASE}/s/")
    assert f'href="{links[0]}"' in html
    # The link works, and is the invitation's own.
    path = links[0].removeprefix(BASE)
    assert client.get(path).status_code == 200
    db.session.expire_all()
    assert invitations(campaign.id)[0].opened_at is not None


def test_a_worker_killed_before_recording_resends_the_same_emails(app, alumni, create_stakeholder, smtp,
                                                                  monkeypatch):
    # The Message-ID is derived from the row, not written before sending: a worker killed
    # after the relay took the emails but before their outcome was recorded leaves them
    # to be sent again, as the same emails (mailboxes fold a repeated Message-ID).
    from survey.mail import sending

    create_stakeholder()
    create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)

    record = sending._record

    def killed(outcomes, now):
        raise WorkerKilled

    monkeypatch.setattr(sending, "_record", killed)
    with pytest.raises(WorkerKilled):
        send_batch(100)
    db.session.rollback()
    first = sorted(m["message"]["Message-ID"] for m in smtp.messages)
    assert len(set(first)) == 2
    assert all(re.fullmatch(r"<[^@<>\s]+@test\.example>", mid) for mid in first)
    assert [(r.status, r.message_id) for r in _rows(campaign.id)] == [("sending", None)] * 2

    monkeypatch.setattr(sending, "_record", record)
    db.session.execute(update(OutboxMessage).values(lease_until=now() - timedelta(seconds=1)))
    assert release_expired_leases() == 2  # beat finds the dead worker's rows
    db.session.commit()
    assert send_batch(100) == 2
    again = sorted(m["message"]["Message-ID"] for m in smtp.messages[2:])
    assert again == first
    # Recorded with the outcome, for bounce reports that quote the Message-ID.
    assert sorted(r.message_id for r in _rows(campaign.id)) == first
    assert {r.status for r in _rows(campaign.id)} == {"sent"}


def test_one_connection_per_batch(app, alumni, create_stakeholder, smtp, monkeypatch):
    for _ in range(5):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    smtp.replies = ["250", "451 4.3.0 try later"]  # a refusal does not cost a new connection
    assert send_batch(100) == 5
    assert len(smtp.messages) == 4
    assert smtp.connections == 1
    statuses = sorted(row.status for row in _rows(campaign.id))
    assert statuses == ["queued", "sent", "sent", "sent", "sent"]


def test_batches_are_limited_and_share_the_threads_connection(app, alumni, create_stakeholder, smtp, monkeypatch):
    for _ in range(5):
        create_stakeholder()
    started_campaign(alumni, monkeypatch)
    assert send_batch(3) == 3
    assert send_batch(3) == 2
    assert send_batch(3) == 0
    assert len(smtp.messages) == 5
    assert len({_recipient(m) for m in smtp.messages}) == 5
    assert smtp.connections == 1  # no connect, EHLO and QUIT per batch


def test_a_kept_connection_the_relay_closed_is_replaced(app, alumni, create_stakeholder, monkeypatch):
    # Relays close idle connections: the next batch finds the kept one dead and opens another.
    for _ in range(4):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    first = RecordingMail()
    for _ in serve_smtp(first):
        assert send_batch(2) == 2
    second = RecordingMail()
    for _ in serve_smtp(second):  # a new server on the same port: the old connection is gone
        assert send_batch(2) == 2
    assert len(first.messages) == len(second.messages) == 2
    assert {row.status for row in _rows(campaign.id)} == {"sent"}


def test_a_kept_connection_is_not_used_once_the_relay_changes(app, alumni, create_stakeholder, smtp, monkeypatch):
    for _ in range(2):
        create_stakeholder()
    started_campaign(alumni, monkeypatch)
    assert send_batch(1) == 1
    other = RecordingMail()
    other_port = _free_port()
    monkeypatch.setitem(app.config, "SMTP_PORT", other_port)
    monkeypatch.setenv("SMTP_PORT", str(other_port))
    for _ in serve_smtp(other):
        assert send_batch(1) == 1
    assert len(smtp.messages) == len(other.messages) == 1


# ------------------------------------------------------------------ temporary failures

def test_temporary_failure_is_retried_later_with_growing_delays(app, alumni, create_stakeholder, smtp,
                                                                retry_base, monkeypatch):
    person = create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    smtp.replies = ["451 4.3.0 try later", "451 4.3.0 try later"]

    delays = []
    for attempt in (1, 2):
        before = now()
        assert send_batch(100) == 1
        after = now()
        [row] = _rows(campaign.id)
        assert (row.status, row.attempts, row.lease_until) == ("queued", attempt, None)
        assert row.smtp_reply.startswith("451") and "try later" in row.smtp_reply
        expected = retry_base * 2 ** (attempt - 1)
        tolerance = timedelta(milliseconds=1)
        assert before + timedelta(seconds=expected) - tolerance <= row.next_attempt_at
        assert row.next_attempt_at <= after + timedelta(seconds=expected) + tolerance
        delays.append(row.next_attempt_at)
        assert send_batch(100) == 0  # not before it is due
        assert smtp.messages == []
        assert invitations(campaign.id)[0].status == "queued"
        assert services.open_sent_campaigns() == 0  # still waiting for it
        _wait_until(row.next_attempt_at)

    message_id = row.message_id
    assert send_batch(100) == 1
    [row] = _rows(campaign.id)
    assert (row.status, row.attempts, row.message_id) == ("sent", 3, message_id)
    assert row.smtp_reply.startswith("250")
    assert [_recipient(m) for m in smtp.messages] == [person.email]
    assert smtp.messages[0]["message"]["Message-ID"] == message_id
    assert invitations(campaign.id)[0].status == "sent"
    assert services.campaign_counts(campaign.id)["sent"] == 1
    time.sleep(0.3)
    assert send_batch(100) == 0
    assert len(smtp.messages) == 1  # delivered once


def test_gives_up_after_the_last_attempt(app, alumni, create_stakeholder, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_RETRY_BASE_SECONDS", 0.01)
    person = create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    smtp.replies = ["451 4.3.0 try later"] * app.config["MAIL_MAX_ATTEMPTS"]
    for _ in range(app.config["MAIL_MAX_ATTEMPTS"]):
        row = _rows(campaign.id)[0]
        _wait_until(row.next_attempt_at)
        assert send_batch(100) == 1
    [row] = _rows(campaign.id)
    assert (row.status, row.attempts) == ("failed", app.config["MAIL_MAX_ATTEMPTS"])
    time.sleep(0.4)
    assert send_batch(100) == 0
    assert smtp.messages == []
    assert invitations(campaign.id)[0].status == "failed"
    assert db.session.get(Stakeholder, person.id).suppressed_at is None  # a full mailbox is not a dead one
    assert services.campaign_counts(campaign.id)["failed"] == 1


# ----------------------------------------------------------------------- hard bounces

def test_each_email_of_a_batch_keeps_its_own_outcome(app, alumni, create_stakeholder, smtp, retry_base,
                                                      monkeypatch):
    # Outcomes are written together (one statement per flush on PostgreSQL): each row must
    # still get its own status, reply, Message-ID and times.
    people = [create_stakeholder() for _ in range(3)]
    campaign = started_campaign(alumni, monkeypatch)
    queued_at = {r.id: r.next_attempt_at for r in _rows(campaign.id)}
    smtp.replies = ["250 OK", "451 4.3.0 try later", "550 5.7.1 refused by policy"]
    before = now()
    assert send_batch(100) == 3
    sent, retried, refused = sorted(_rows(campaign.id), key=lambda r: r.id)
    assert (sent.status, sent.lease_until, sent.next_attempt_at) == ("sent", None, queued_at[sent.id])
    assert sent.sent_at >= before and sent.smtp_reply.startswith("250")
    assert (retried.status, retried.sent_at, retried.attempts) == ("queued", None, 1)
    assert retried.smtp_reply.startswith("451") and retried.next_attempt_at >= before + timedelta(seconds=retry_base)
    assert (refused.status, refused.sent_at, refused.next_attempt_at) == ("failed", None, queued_at[refused.id])
    assert refused.smtp_reply.startswith("550")
    assert len({sent.message_id, retried.message_id, refused.message_id} - {None}) == 3
    assert [_recipient(m) for m in smtp.messages] == [people[0].email]
    assert smtp.messages[0]["message"]["Message-ID"] == sent.message_id
    assert [i.status for i in sorted(invitations(campaign.id), key=lambda i: i.id)] == ["sent", "queued", "failed"]


def test_hard_bounce_fails_at_once_and_suppresses_the_address(app, alumni, create_stakeholder, smtp,
                                                             retry_base, monkeypatch):
    dead = create_stakeholder(email="gone@example.org")
    alive = create_stakeholder(email="here@example.org")
    campaign = started_campaign(alumni, monkeypatch)
    smtp.replies = ["550 5.1.1 no such user"]  # the first RCPT (the first row) only

    assert send_batch(100) == 2
    assert [_recipient(m) for m in smtp.messages] == [alive.email]
    rows = {row.invitation.stakeholder_id: row for row in _rows(campaign.id)}
    bounced = rows[dead.id]
    assert (bounced.status, bounced.attempts) == ("failed", 1)
    assert "550" in bounced.smtp_reply and "5.1.1" in bounced.smtp_reply
    assert rows[alive.id].status == "sent"
    person = db.session.get(Stakeholder, dead.id)
    assert person.suppressed_at is not None
    assert person.suppression_reason.startswith("hard bounce") and "5.1.1" in person.suppression_reason
    assert db.session.get(Stakeholder, alive.id).suppressed_at is None
    status = {i.stakeholder_id: i.status for i in invitations(campaign.id)}
    assert status == {dead.id: "bounced", alive.id: "sent"}
    assert services.campaign_counts(campaign.id)["failed"] == 1

    time.sleep(retry_base + 0.05)
    assert send_batch(100) == 0  # never retried
    assert len(smtp.messages) == 1
    assert services.open_sent_campaigns() == 1

    later = started_campaign(alumni, monkeypatch, name="Alumni 2026")
    assert [i.stakeholder_id for i in invitations(later.id)] == [alive.id]


def test_permanent_refusal_that_is_not_a_dead_address_does_not_suppress(app, alumni, create_stakeholder, smtp,
                                                                        monkeypatch):
    person = create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    smtp.replies = ["550 5.7.1 message refused by policy"]
    assert send_batch(100) == 1
    [row] = _rows(campaign.id)
    assert row.status == "failed"
    assert invitations(campaign.id)[0].status == "failed"
    assert db.session.get(Stakeholder, person.id).suppressed_at is None


# --------------------------------------------------------------------- unreachable relay

def test_server_down_everything_goes_back_to_the_queue(app, alumni, create_stakeholder, retry_base, monkeypatch):
    people = [create_stakeholder() for _ in range(3)]
    campaign = started_campaign(alumni, monkeypatch)
    # Nothing listens on SMTP_PORT.
    assert send_batch(100) == 3
    rows = _rows(campaign.id)
    assert [(r.status, r.attempts, r.lease_until) for r in rows] == [("queued", 1, None)] * 3
    assert all("connection" in r.smtp_reply for r in rows)
    assert all(r.next_attempt_at > now() for r in rows)
    assert {i.status for i in invitations(campaign.id)} == {"queued"}
    assert services.open_sent_campaigns() == 0
    message_ids = [r.message_id for r in rows]

    # The relay comes back: everyone gets the email, once, with the Message-ID fixed at first.
    from aiosmtpd.controller import Controller

    handler = RecordingMail()
    controller = Controller(handler, hostname="127.0.0.1", port=app.config["SMTP_PORT"])
    controller.start()
    try:
        _wait_until(max(r.next_attempt_at for r in rows))
        assert send_batch(100) == 3
    finally:
        controller.stop()
    assert sorted(_recipient(m) for m in handler.messages) == sorted(p.email for p in people)
    assert sorted(m["message"]["Message-ID"] for m in handler.messages) == sorted(message_ids)
    assert [r.status for r in _rows(campaign.id)] == ["sent"] * 3
    assert services.open_sent_campaigns() == 1


@pytest.fixture
def silent_relay(app, monkeypatch):
    """A server that accepts connections and never says a word (a hung relay)."""
    monkeypatch.setitem(app.config, "SMTP_TIMEOUT", 0.3)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", app.config["SMTP_PORT"]))
    listener.listen(50)
    listener.settimeout(0.1)
    accepted, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_hung_relay_costs_one_timeout_per_batch(app, alumni, create_stakeholder, silent_relay, retry_base,
                                                  monkeypatch):
    for _ in range(4):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    started = time.monotonic()
    assert send_batch(100) == 4
    elapsed = time.monotonic() - started
    assert len(silent_relay) == 1  # not one connection (and one timeout) per email
    assert elapsed < 1.0
    assert [(r.status, r.attempts) for r in _rows(campaign.id)] == [("queued", 1)] * 4


def test_a_dropped_connection_is_reopened_once(app, alumni, create_stakeholder, smtp, retry_base, monkeypatch):
    people = [create_stakeholder() for _ in range(3)]
    campaign = started_campaign(alumni, monkeypatch)
    smtp.drops = 1
    assert send_batch(100) == 3
    rows = _rows(campaign.id)
    assert [r.status for r in rows] == ["queued", "sent", "sent"]
    assert "connection" in rows[0].smtp_reply
    assert sorted(_recipient(m) for m in smtp.messages) == sorted(p.email for p in people[1:])
    assert len(set(smtp.rcpt_peers)) == 2


def test_a_server_that_keeps_dropping_us_is_left_alone_for_the_batch(app, alumni, create_stakeholder, smtp,
                                                                     retry_base, monkeypatch):
    for _ in range(4):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    smtp.drops = 10
    assert send_batch(100) == 4
    assert [(r.status, r.attempts) for r in _rows(campaign.id)] == [("queued", 1)] * 4
    assert len(set(smtp.rcpt_peers)) == 2  # the first connection and one more, not one per email
    smtp.drops = 0
    _wait_until(max(r.next_attempt_at for r in _rows(campaign.id)))
    assert send_batch(100) == 4
    assert len(smtp.messages) == 4


def test_data_refused_permanently_is_not_retried(app, alumni, create_stakeholder, smtp, retry_base, monkeypatch):
    refused = create_stakeholder()
    accepted = create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    smtp.data_replies = ["554 5.7.1 message refused"]  # the first email's content is refused
    assert send_batch(100) == 2
    rows = {r.invitation.stakeholder_id: r for r in _rows(campaign.id)}
    assert rows[refused.id].status == "failed" and rows[refused.id].smtp_reply.startswith("554")
    assert rows[accepted.id].status == "sent"
    assert [_recipient(m) for m in smtp.messages] == [accepted.email]
    assert smtp.connections == 1


def test_a_refused_sender_is_retried_and_the_batch_goes_on(app, alumni, create_stakeholder, smtp, retry_base,
                                                          monkeypatch):
    people = [create_stakeholder() for _ in range(3)]
    campaign = started_campaign(alumni, monkeypatch)
    smtp.mail_replies = ["451 4.7.1 slow down"]  # the first MAIL FROM only
    assert send_batch(100) == 3
    rows = sorted(_rows(campaign.id), key=lambda r: r.id)
    assert [r.status for r in rows] == ["queued", "sent", "sent"]
    assert rows[0].smtp_reply.startswith("451 4.7.1")
    assert sorted(_recipient(m) for m in smtp.messages) == sorted(p.email for p in people[1:])
    assert len(smtp.contents) == 2  # nothing was carried for the refused one
    assert len(set(smtp.rcpt_peers)) == 1


class AcceptsDataOfRefused(RecordingMail):
    """A relay that refuses a recipient yet answers 354 to the DATA that follows, which
    RFC 2920 allows: a pipelining client must not send the email then."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return "550 5.1.1 no such user"


def test_a_pipelined_data_accepted_after_a_refused_recipient_carries_nothing(app, alumni, create_stakeholder,
                                                                             monkeypatch):
    dead = create_stakeholder(email="gone@example.org")
    campaign = started_campaign(alumni, monkeypatch)
    handler = AcceptsDataOfRefused(pipelining=True)
    for _ in serve_smtp(handler):
        assert send_batch(100) == 1
    [row] = _rows(campaign.id)
    assert row.status == "failed" and row.smtp_reply.startswith("550 5.1.1")
    assert handler.contents == [b""]  # a lone dot ended the DATA: no email was carried
    assert db.session.get(Stakeholder, dead.id).suppressed_at is not None


class Tap:
    """A TCP relay between the app and the SMTP server that keeps each chunk the app
    writes, as the server reads it."""

    def __init__(self, server_port: int):
        self.server_port = server_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.chunks: list[bytes] = []
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            while True:
                client, _address = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.server_port))
                self.sockets += [client, server]
                threading.Thread(target=self._pump, args=(client, server, self.chunks), daemon=True).start()
                threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()
        except OSError:
            return  # closed

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, kept: list | None) -> None:
        try:
            while data := source.recv(65536):
                if kept is not None:
                    kept.append(data)
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            return

    def close(self) -> None:
        for one in self.sockets:
            one.close()


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_a_relay_that_offers_pipelining_gets_one_write_per_email(app, alumni, create_stakeholder, monkeypatch,
                                                                 pipelining):
    # One round trip per email instead of four: what a relay across a network limits.
    people = [create_stakeholder() for _ in range(3)]
    started_campaign(alumni, monkeypatch)
    handler = RecordingMail(pipelining=pipelining)
    for _ in serve_smtp(handler):
        tap = Tap(app.config["SMTP_PORT"])
        monkeypatch.setitem(app.config, "SMTP_PORT", tap.port)
        try:
            assert send_batch(100) == 3
        finally:
            tap.close()
    assert sorted(_recipient(m) for m in handler.messages) == sorted(p.email for p in people)
    starts = [chunk for chunk in tap.chunks if b"MAIL FROM:" in chunk]
    assert len(starts) == 3
    if pipelining:  # each email's envelope and DATA together, after the end of the email before
        assert all(re.search(rb"MAIL FROM:<[^>]+>\r\nRCPT TO:<[^>]+>\r\nDATA\r\n\Z", chunk) for chunk in starts)
        assert [chunk.startswith(b"MAIL FROM:") for chunk in starts] == [True, False, False]
        assert sum(chunk.endswith(b"\r\n.\r\n") for chunk in tap.chunks) == 1  # the last email's end only
    else:  # each command waited for the reply to the one before
        assert all(chunk.count(b"\r\n") == 1 for chunk in starts)


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_a_staff_address_beyond_ascii_is_refused_and_the_batch_goes_on(app, pipelining):
    # Invitations refuse such addresses when built; a staff email is checked on the way out.
    from survey.mail.sending import Job, _deliver

    def job(n: int, recipient: str) -> Job:
        return Job(n, None, None, "chair_digest", 0, 1, None, message_id=f"<{n}@test>", recipient=recipient,
                   data=b"Subject: digest\r\n\r\nhello\r\n")

    outcomes = []
    handler = RecordingMail(pipelining=pipelining)
    for _ in serve_smtp(handler):
        with app.app_context():
            _deliver([job(1, "chaïr@example.org"), job(2, "chair@example.org")],
                     lambda one, outcome: outcomes.append((one.outbox_id, outcome.status, outcome.reply)))
    assert [(n, status) for n, status, _reply in outcomes] == [(1, "failed"), (2, "sent")]
    assert "characters an SMTP command cannot carry" in outcomes[0][2]
    assert [m["to"] for m in handler.messages] == [["chair@example.org"]]


def _relay_that_answers_data_with_250(port: int, pipelining: bool):
    """A relay that breaks the protocol: it answers DATA with 250 instead of 354 (aiosmtpd
    cannot be made to). Returns the server, and the lines it receives as they come."""
    import socketserver

    received: list[bytes] = []
    connections: list[socket.socket] = []
    replies = {b"EHLO": b"250-relay\r\n250 PIPELINING\r\n" if pipelining else b"250 relay\r\n",
               b"QUIT": b"221 bye\r\n"}

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            connections.append(self.connection)
            self.wfile.write(b"220 relay\r\n")
            for line in self.rfile:
                received.append(line)
                self.wfile.write(replies.get(line[:4].upper(), b"250 OK\r\n"))
                if line[:4].upper() == b"QUIT":
                    return

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = daemon_threads = True

        def server_close(self):  # as a relay that stops: its connections end with it
            super().server_close()
            for connection in connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)  # now, whatever still reads from it

    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_a_data_answered_without_354_is_not_counted_as_sent(app, pipelining):
    from survey.mail.sending import Job, _deliver

    server, received = _relay_that_answers_data_with_250(app.config["SMTP_PORT"], pipelining)
    job = Job(1, None, None, "chair_digest", 0, 1, None, message_id="<1@test>", recipient="chair@example.org",
              data=b"Subject: digest\r\n\r\nhello\r\n")
    outcomes = []
    try:
        with app.app_context():
            _deliver([job], lambda _job, outcome: outcomes.append(outcome))
    finally:
        server.shutdown()
        server.server_close()
    [outcome] = outcomes
    assert outcome.status == "retry"
    assert outcome.reply == "not sent: the relay answered DATA with 250 OK, not 354"
    assert b"hello\r\n" not in received  # the message was never carried


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_lines_that_begin_with_a_dot_arrive_as_written(app, pipelining):
    # A line holding only a dot ends an email on the wire: it is doubled on the way.
    from survey.mail.sending import Job, _deliver

    body = b"Subject: dots\r\n\r\nfirst\r\n.\r\n..two\r\n.last"
    job = Job(1, None, None, "review_reminder", 0, 1, None, message_id="<1@test>", recipient="chair@example.org",
              data=body)
    outcomes = []
    handler = RecordingMail(pipelining=pipelining)
    for _ in serve_smtp(handler):
        with app.app_context():
            _deliver([job, job], lambda _job, outcome: outcomes.append(outcome.status))
    assert outcomes == ["sent", "sent"]
    assert handler.contents == [body + b"\r\n"] * 2


@given(st.lists(st.sampled_from([b".", b"..", b"x", b"\r\n", b"\n", b"\r"]), max_size=40).map(b"".join))
def test_dot_stuffing_doubles_the_dot_that_begins_any_line(data):
    # RFC 5321, 4.5.2, as a multi-line regex: what the faster replace must do, byte for byte
    # (a message's first line included, and lines that end with a bare LF).
    from survey.mail.sending import _dot_stuffed

    expected = re.sub(rb"(?m)^\.", b"..", data)
    assert _dot_stuffed(data) == (expected if expected.endswith(b"\r\n") else expected + b"\r\n")


# ----------------------------------------------------------------------- leases, races

def test_expired_lease_goes_back_to_the_queue(app, alumni, create_stakeholder, smtp, monkeypatch):
    person = create_stakeholder()
    other = create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    # A worker claims both rows and dies before sending anything.
    claimed = claim_due(10)
    assert len(claimed) == 2
    assert {r.status for r in _rows(campaign.id)} == {"sending"}
    assert send_batch(100) == 0  # leased: nobody else takes them
    assert work_waiting() is False
    assert release_expired_leases() == 0  # the leases still run
    # One lease runs out.
    expired_id = min(claimed)
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == expired_id)
                       .values(lease_until=now() - timedelta(seconds=1)))
    db.session.commit()
    assert release_expired_leases() == 1
    db.session.commit()
    rows = {r.id: r for r in _rows(campaign.id)}
    assert (rows[expired_id].status, rows[expired_id].lease_until) == ("queued", None)
    assert rows[max(claimed)].status == "sending"
    assert send_batch(100) == 1
    assert [_recipient(m) for m in smtp.messages] == [
        db.session.get(Invitation, rows[expired_id].invitation_id).stakeholder.email]
    assert {person.email, other.email} >= {_recipient(m) for m in smtp.messages}


def test_a_sender_takes_a_batch_of_the_first_due(app, alumni, create_stakeholder, smtp, monkeypatch):
    [create_stakeholder() for _ in range(5)]
    campaign = started_campaign(alumni, monkeypatch)
    ids = sorted(r.id for r in _rows(campaign.id))
    # The newest row is a retry due an hour ago: it goes before those queued since.
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == ids[-1])
                       .values(next_attempt_at=now() - timedelta(hours=1)))
    db.session.commit()
    assert claim_due(2) == sorted([ids[-1], ids[0]])
    assert claim_due(10) == ids[1:-1]  # the rest, once each
    assert claim_due(10) == []
    assert {r.status for r in _rows(campaign.id)} == {"sending"}


def test_a_worker_stalled_past_its_lease_leaves_the_rows_others_took(app, alumni, create_stakeholder, smtp,
                                                                     monkeypatch):
    from survey.mail import sending

    people = [create_stakeholder() for _ in range(5)]
    started_campaign(alumni, monkeypatch)
    monkeypatch.setitem(app.config, "MAIL_LEASE_SECONDS", 3)
    taken = []
    send_one = sending._Relay.send

    def stalls_on_the_first_email(relay, job):
        if not taken:
            # While this worker hangs, its lease runs out: beat gives the rows back and
            # another worker claims two of them.
            db.session.execute(update(OutboxMessage).where(OutboxMessage.status == "sending")
                               .values(lease_until=now() - timedelta(seconds=1)))
            release_expired_leases()
            db.session.commit()
            taken.extend(claim_due(2))
            time.sleep(1.1)  # more than a third of the lease: the worker checks its lease next
        return send_one(relay, job)

    monkeypatch.setattr(sending._Relay, "send", stalls_on_the_first_email)
    assert send_batch(100) == 5
    # Only the email in flight went out; the rest were left to whoever holds them now.
    assert len(smtp.messages) == 1
    monkeypatch.setattr(sending._Relay, "send", send_one)
    assert len(taken) == 2
    sending._send(sending._prepare(taken), time.monotonic())  # the other worker sends its two
    assert len(smtp.messages) == 3  # (the first was in flight)
    assert send_batch(100) == 3       # the three back in the queue go out once
    by_person = {}
    for message in smtp.messages:
        by_person.setdefault(_recipient(message), set()).add(message["message"]["Message-ID"])
    assert sorted(by_person) == sorted(p.email for p in people)
    # At most the email in flight went twice, and then as the same email.
    assert len(smtp.messages) <= 5 + 1 and all(len(ids) == 1 for ids in by_person.values())


def test_a_slow_worker_keeps_its_lease(app, alumni, create_stakeholder, smtp, monkeypatch):
    from survey.mail import sending

    [create_stakeholder() for _ in range(3)]
    campaign = started_campaign(alumni, monkeypatch)
    monkeypatch.setitem(app.config, "MAIL_LEASE_SECONDS", 3)
    send_one = sending._Relay.send

    released = []

    def slow(relay, job):
        time.sleep(1.1)  # three emails take longer than the lease...
        released.append(release_expired_leases())  # ...and beat looks for dead workers meanwhile
        db.session.commit()
        return send_one(relay, job)

    monkeypatch.setattr(sending._Relay, "send", slow)
    assert send_batch(100) == 3
    assert released == [0, 0, 0]  # the lease was renewed: nothing taken back
    assert len(smtp.messages) == 3
    assert [(r.status, r.attempts) for r in _rows(campaign.id)] == [("sent", 1)] * 3


def test_two_senders_racing_never_send_a_row_twice(app, alumni, create_stakeholder, smtp, monkeypatch):
    people = [create_stakeholder() for _ in range(30)]
    campaign = started_campaign(alumni, monkeypatch)
    barrier = threading.Barrier(3)
    claimed, errors = [[], [], []], []

    def sender(index):
        try:
            with app.app_context():
                barrier.wait()
                while True:
                    count = send_batch(4)
                    if not count:
                        break
                    claimed[index].append(count)
                db.session.remove()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(map(sum, claimed)) == 30
    recipients = [_recipient(m) for m in smtp.messages]
    assert len(recipients) == 30
    assert sorted(recipients) == sorted(p.email for p in people)
    rows = _rows(campaign.id)
    assert [(r.status, r.attempts) for r in rows] == [("sent", 1)] * 30
    assert len({m["message"]["Message-ID"] for m in smtp.messages}) == 30


# ------------------------------------------------------------------- closing, suppression

def test_closing_cancels_what_is_still_queued(app, alumni, create_stakeholder, smtp, monkeypatch):
    for _ in range(3):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    assert send_batch(1) == 1
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(closes_at=now() - timedelta(seconds=1)))
    db.session.commit()
    assert services.close_due_campaigns() == 1
    db.session.commit()
    assert sorted(r.status for r in _rows(campaign.id)) == ["cancelled", "cancelled", "sent"]
    assert db.session.get(Campaign, campaign.id).status == "closed"
    # The two never invited are counted with the emails not sent, not "queued" for ever.
    db.session.expire_all()
    assert sorted(i.status for i in invitations(campaign.id)) == ["failed", "failed", "sent"]
    assert services.campaign_counts(campaign.id)["queued"] == 0
    assert send_batch(100) == 0
    assert len(smtp.messages) == 1
    assert services.close_due_campaigns() == 0


def test_nothing_goes_out_once_the_closing_time_has_passed(app, alumni, create_stakeholder, smtp, monkeypatch):
    # closes_at has passed but the beat has not closed the campaign yet.
    create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(closes_at=now() - timedelta(seconds=1)))
    db.session.commit()
    assert send_batch(100) == 1
    assert smtp.messages == []
    assert [r.status for r in _rows(campaign.id)] == ["cancelled"]
    db.session.expire_all()
    assert [i.status for i in invitations(campaign.id)] == ["failed"]


def test_an_invitation_to_an_address_suppressed_since_is_failed_not_queued(app, alumni, create_stakeholder, smtp,
                                                                            monkeypatch):
    """Bounced in another campaign after this one queued its email: the sender cancels it,
    and the campaign page must not say it is still waiting to go out."""
    person = create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    db.session.execute(update(Stakeholder).where(Stakeholder.id == person.id)
                       .values(suppressed_at=now(), suppression_reason="hard bounce"))
    db.session.commit()
    assert send_batch(100) == 1
    assert smtp.messages == []
    db.session.expire_all()
    [invitation] = invitations(campaign.id)
    assert invitation.status == "failed"
    assert services.campaign_counts(campaign.id)["queued"] == 0


def test_a_campaign_not_due_to_close_keeps_its_queue(app, alumni, create_stakeholder, smtp, monkeypatch):
    create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    assert services.close_due_campaigns() == 0
    assert [r.status for r in _rows(campaign.id)] == ["queued"]


def test_someone_who_opts_out_before_the_send_gets_nothing(app, alumni, create_stakeholder, smtp, monkeypatch):
    leaving = create_stakeholder()
    staying = create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    person = db.session.get(Stakeholder, leaving.id)
    person.suppressed_at, person.suppression_reason = now(), "opted out"
    db.session.commit()
    assert send_batch(100) == 2
    assert [_recipient(m) for m in smtp.messages] == [staying.email]
    rows = {r.invitation.stakeholder_id: r.status for r in _rows(campaign.id)}
    assert rows == {leaving.id: "cancelled", staying.id: "sent"}


def test_an_address_that_cannot_be_sent_does_not_block_the_batch(app, alumni, create_stakeholder, smtp,
                                                                 monkeypatch):
    # The importer accepts internationalised addresses; a non-ASCII local part needs
    # SMTPUTF8. That one row fails; the rest of its batch still goes, once.
    first = create_stakeholder(email="first@example.org")
    unicode_local = create_stakeholder(email="jösé@example.org")
    idn_domain = create_stakeholder(email="ana@exämple.org")
    campaign = started_campaign(alumni, monkeypatch)
    assert send_batch(100) == 3
    assert sorted(_recipient(m) for m in smtp.messages) == sorted([first.email, "ana@xn--exmple-cua.org"])
    rows = {r.invitation.stakeholder_id: r for r in _rows(campaign.id)}
    assert rows[unicode_local.id].status == "failed"
    assert rows[first.id].status == rows[idn_domain.id].status == "sent"
    assert "sending" not in {r.status for r in rows.values()}
    assert {i.stakeholder_id: i.status for i in invitations(campaign.id)}[unicode_local.id] == "failed"
    assert db.session.get(Stakeholder, unicode_local.id).suppressed_at is None
    # Nothing is left to resend later.
    db.session.execute(update(OutboxMessage).values(lease_until=None))
    assert release_expired_leases() == 0


# ------------------------------------------------------------------------- the worker's tasks

def _sending_task(app, alumni, create_stakeholder, monkeypatch, people: int):
    """A started campaign to ``people``, batches of two; the sending task and the list of
    the tasks it chains (counted, not run)."""
    from workflows import tasks

    for _ in range(people):
        create_stakeholder()
    campaign = started_campaign(alumni, monkeypatch)
    chained = []
    monkeypatch.setattr(tasks.send_due_emails, "delay", lambda *a, **k: chained.append(1))
    monkeypatch.setitem(app.config, "DISPATCH_BATCH_SIZE", 2)
    return campaign, tasks, chained


def test_send_due_emails_chains_while_batches_are_full_then_opens(app, alumni, create_stakeholder, smtp,
                                                                  monkeypatch):
    campaign, tasks, chained = _sending_task(app, alumni, create_stakeholder, monkeypatch, 5)
    monkeypatch.setattr(tasks, "BATCHES_PER_TASK", 2)
    tasks.send_due_emails()  # two full batches: another task takes over
    assert (len(smtp.messages), len(chained)) == (4, 1)
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "sending"
    tasks.send_due_emails()  # the last one: the queue ran dry, the campaign opens
    assert (len(smtp.messages), len(chained)) == (5, 1)
    assert len({_recipient(m) for m in smtp.messages}) == 5
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "open"


def test_a_sending_task_takes_no_new_batch_once_its_time_is_up(app, alumni, create_stakeholder, smtp,
                                                               monkeypatch):
    """A slow relay must not keep a worker in one task (and from a warm shutdown) for long."""
    campaign, tasks, chained = _sending_task(app, alumni, create_stakeholder, monkeypatch, 5)
    monkeypatch.setattr(tasks, "SECONDS_PER_TASK", 0.0)
    tasks.send_due_emails()
    assert (len(smtp.messages), len(chained)) == (2, 1)  # one batch, then another task
    assert sorted(row.status for row in _rows(campaign.id)) == ["queued"] * 3 + ["sent"] * 2


def test_the_next_batch_is_claimed_and_built_while_one_goes_out(app, alumni, create_stakeholder, smtp,
                                                                monkeypatch):
    """The SMTP connection does not wait for the database between batches: while the first
    batch's first email is in flight, the second batch is already taken."""
    from survey.mail import sending

    campaign, tasks, _chained = _sending_task(app, alumni, create_stakeholder, monkeypatch, 4)
    taken_while_sending = []
    send_one = sending._Relay.send

    def sending_rows() -> int:
        with db.engine.connect() as connection:  # what is committed, whatever this session holds
            return connection.scalar(select(func.count()).select_from(OutboxMessage)
                                     .where(OutboxMessage.status == "sending"))

    def first_email_waits_for_the_next_batch(relay, job):
        if not taken_while_sending:
            deadline = time.monotonic() + 10
            while sending_rows() < 4 and time.monotonic() < deadline:
                time.sleep(0.02)
            taken_while_sending.append(sending_rows())
        return send_one(relay, job)

    monkeypatch.setattr(sending._Relay, "send", first_email_waits_for_the_next_batch)
    tasks.send_due_emails()
    assert taken_while_sending == [4]
    assert sorted(_recipient(m) for m in smtp.messages) == sorted(
        row.invitation.stakeholder.email for row in _rows(campaign.id))
    assert {row.status for row in _rows(campaign.id)} == {"sent"}


def test_an_address_that_would_break_the_smtp_command_is_not_sent(app, alumni, create_stakeholder, smtp,
                                                                  monkeypatch):
    # The importer refuses such addresses; one stored by other means must still not be
    # written into RCPT TO, where a ">" or a space would change the command.
    first = create_stakeholder(email="first@example.org")
    odd = create_stakeholder(email="odd>x@example.org")
    campaign = started_campaign(alumni, monkeypatch)
    assert send_batch(100) == 2
    assert [_recipient(m) for m in smtp.messages] == [first.email]
    rows = {r.invitation.stakeholder_id: r for r in _rows(campaign.id)}
    assert (rows[first.id].status, rows[odd.id].status) == ("sent", "failed")
    assert "characters an SMTP command cannot carry" in rows[odd.id].smtp_reply
