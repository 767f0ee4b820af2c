"""Sending the outbox: claim due rows under a lease, send them over the sending
thread's SMTP connection (kept open from batch to batch), record the server's replies.

A row is claimed by setting it to ``sending`` with a lease (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so concurrent workers never take the same row), renewed
while the worker sends; a worker that dies leaves its rows to
``release_expired_leases``, and one that stalled past its lease leaves alone the
rows another worker took since. Replies are committed in one bulk update every
DISPATCH_MARK_EVERY emails (50 by default; 1 commits each reply as it comes), so a
worker killed mid-batch resends at most those; and with the Message-ID derived
from the row (survey/mail/addresses.py), a resend is the same email, which
mailboxes fold: exactly once in effect. Temporary failures (4xx, lost connection)
are retried with growing delays; permanent ones (5xx) are not, and a hard bounce
suppresses the address for every later campaign.

Invitations and reminders are built by mail merge (survey/mail/merge.py). Just
before sending, each row is checked again: the person opted out, bounced or
answered, or the campaign closed, and the email is cancelled instead; a reminder
that would land in the recipient's quiet hours waits for their end.
"""
from __future__ import annotations

import re
import smtplib
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime as rfc2822_date
from email.utils import formataddr, parseaddr
from typing import NamedTuple

from flask import current_app, render_template
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from sqlalchemy import case, exists, select, text, tuple_, update
from sqlalchemy.orm import Bundle

from survey.audiences.models import Stakeholder, display_name
from survey.campaigns.models import Campaign, Invitation
from survey.core.types import utcnow
from survey.extensions import db
from survey.mail.addresses import message_id_for, return_path, unsubscribe_mailto
from survey.mail.merge import Merge
from survey.mail.models import OutboxMessage
from survey.mail.suppression import HARD_BOUNCE, means_dead_address, not_sent, suppress_address


@dataclass
class Outcome:
    status: str  # sent | retry | failed
    reply: str
    hard_bounce: bool = False


@dataclass
class Job:
    """One claimed email, as plain values: recording its outcome needs no ORM object."""

    outbox_id: int
    #: None for an email to staff
    invitation_id: int | None
    stakeholder_id: int | None
    kind: str
    sequence: int
    attempts: int
    #: the delay before the next reminder once this email is out; None when none follows
    next_gap: timedelta | None
    #: the email's Message-ID (derived from the row: the same at every attempt)
    message_id: str = ""
    #: the address the email goes to, and the email as SMTP sends it
    recipient: str = ""
    data: bytes = b""
    #: set when no email could be built for this row
    unbuildable: Outcome | None = None


def max_attempts() -> int:
    return current_app.config["MAIL_MAX_ATTEMPTS"]


def survey_link(token: str) -> str:
    """Links are built from BASE_URL, never from a request's Host header."""
    return f"{current_app.config['BASE_URL']}/s/{token}"


def unsubscribe_link(token: str) -> str:
    return f"{current_app.config['BASE_URL']}/u/{token}"


def claim_due(limit: int, only_id: int | None = None) -> list[int]:
    """Take up to ``limit`` due rows (or just ``only_id``), first due first, for this
    worker; no two workers get the same row.

    One statement: a CTE picks and locks the rows (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL; SQLite has one writer at a time) and the UPDATE joins it by primary
    key. The CTE is MATERIALIZED so that it runs once: as ``WHERE id IN (subquery)``
    PostgreSQL may run the subquery again for each row it updates, each run skipping
    the rows just updated, and one worker took the whole queue whatever the limit.
    Both halves read an index and stop after ``limit`` rows, however many are queued
    and whatever the planner believes of them: the queue fills faster than autovacuum
    analyses it, and as ``WHERE id IN (…) AND status = 'queued'`` the planner, told
    that few rows are queued, read every queued row for each batch (85 ms a batch
    with 100,000 queued).
    """
    now = utcnow()
    due = select(OutboxMessage.id).where(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now)
    if only_id is not None:
        due = due.where(OutboxMessage.id == only_id)
    due = (due.order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit)
           .with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED"))
    lease_until = now + timedelta(seconds=current_app.config["MAIL_LEASE_SECONDS"])
    claimed = db.session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id == due.c.id)
        .values(status="sending", lease_until=lease_until, attempts=OutboxMessage.attempts + 1)
        .returning(OutboxMessage.id),
        execution_options={"synchronize_session": False},  # the commit below expires the session's rows
    ).all()
    db.session.commit()
    return sorted(claimed)


def release_expired_leases() -> int:
    """Rows whose worker died mid-send go back to the queue, or fail after the last attempt.

    An email that kills every worker that tries it must not loop for ever.
    """
    now = utcnow()
    expired = (OutboxMessage.status == "sending", OutboxMessage.lease_until < now)
    given_up = db.session.scalars(
        update(OutboxMessage)
        .where(*expired, OutboxMessage.attempts >= max_attempts())
        .values(status="failed", lease_until=None,
                smtp_reply=f"not sent: gave up after {max_attempts()} attempts (the sending worker stopped)")
        .returning(OutboxMessage.invitation_id)
    ).all()
    if given_up:
        db.session.execute(
            update(Invitation).where(Invitation.id.in_(given_up), Invitation.status == "queued")
            .values(status="failed")
        )
    result = db.session.execute(
        update(OutboxMessage).where(*expired).values(status="queued", lease_until=None)
    )
    return result.rowcount + len(given_up)


def work_waiting() -> bool:
    """Due rows or due reminders, and no live lease: nobody is sending, so beat should
    start a sender."""
    now = utcnow()
    due = exists().where(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now)
    reminders = exists().where(Invitation.next_reminder_at <= now)
    busy = exists().where(OutboxMessage.status == "sending", OutboxMessage.lease_until >= now)
    return bool(db.session.scalar(select((due | reminders) & ~busy)))


def send_batch(limit: int) -> int:
    """Send up to ``limit`` due emails over one SMTP connection; returns how many were claimed."""
    jobs, claimed, count = _claim_and_build(limit)
    _send(jobs, claimed)
    return count


def send_batches(limit: int, most: int, seconds: float, before: Callable[[], int] = lambda: 0) -> bool:
    """Send up to ``most`` batches of ``limit`` due emails, one after the other over this
    thread's SMTP connection, taking no new batch after ``seconds`` (a slow relay must not
    keep a worker from its warm shutdown for long); returns whether work may remain (the
    last batch was full, or ``before`` found some).

    Each next batch is claimed and built in a helper thread, with a database session of
    its own, while this one's emails go out: the connection would otherwise stand idle
    for the third of the time that claiming, loading and merging a batch take. ``before``
    runs first in each of those turns (the sending task queues due reminders there) and
    commits; it returns how many emails it queued. A worker that dies holds two batches'
    rows instead of one until their lease ends.
    """
    app = current_app._get_current_object()
    deadline = time.monotonic() + seconds

    def claim_and_build() -> tuple[list[Job], float, bool]:
        with app.app_context():
            queued = before()
            db.session.commit()
            jobs, claimed, count = _claim_and_build(limit)
            return jobs, claimed, bool(queued) or count == limit

    with ThreadPoolExecutor(1, thread_name_prefix="attest-next-batch") as helper:
        batch, turns = helper.submit(claim_and_build), 1
        while True:
            jobs, claimed, more = batch.result()
            go_on = more and turns < most and time.monotonic() < deadline
            if go_on:  # the next batch is built while these go out
                batch, turns = helper.submit(claim_and_build), turns + 1
            _send(jobs, claimed)
            if not go_on:
                return more


def send_message(outbox_id: int) -> bool:
    """Send one outbox row now if it is still queued and due; whoever calls it how many
    times at once, only one caller sends it."""
    jobs, claimed, count = _claim_and_build(1, only_id=outbox_id)
    _send(jobs, claimed)
    return count == 1


def _claim_and_build(limit: int, only_id: int | None = None) -> tuple[list[Job], float, int]:
    """Claim due rows and build their emails: the emails to send, when they were claimed
    (``time.monotonic()``, where their lease starts) and how many rows were claimed."""
    claimed = time.monotonic()
    ids = claim_due(limit, only_id)
    return (_prepare(ids) if ids else []), claimed, len(ids)


def _send(jobs: list[Job], claimed: float) -> None:
    """Send built emails and record what happened to each."""
    if jobs:
        recorder = _Recorder(current_app.config["DISPATCH_MARK_EVERY"])
        _deliver(jobs, recorder.add, _Lease(jobs, claimed).holds)
        recorder.flush()


class _Person(NamedTuple):
    """What sending needs of a person (see _prepare)."""

    id: int | None
    email: str
    first_name: str
    last_name: str
    locale: str
    timezone: str
    suppressed_at: datetime | None
    suppression_reason: str | None

    @property
    def display_name(self) -> str:
        return display_name(self.first_name, self.last_name, self.email)


class _PersonBundle(Bundle):
    """Reads its columns into a _Person."""

    def create_row_processor(self, query, procs, labels):
        return lambda row: _Person(*(proc(row) for proc in procs))


#: the kinds of email built by mail merge (survey/mail/merge.py), from plain rows alone
MERGED_KINDS = ("invitation", "reminder")

#: What sending needs of an outbox row, its invitation and its person, read as plain
#: rows: the ORM's objects (identity map, change tracking, expiry at commit) cost a
#: fifth of a batch's time, for values that are only read.
_MESSAGE = Bundle("message", OutboxMessage.id, OutboxMessage.kind, OutboxMessage.sequence, OutboxMessage.attempts,
                  OutboxMessage.message_id, OutboxMessage.created_at)
_INVITATION = Bundle("invitation", Invitation.id, Invitation.token_nonce, Invitation.started_at,
                     Invitation.completed_at, Invitation.opted_out_at)
_PERSON = _PersonBundle("person", Stakeholder.id, Stakeholder.email, Stakeholder.first_name, Stakeholder.last_name,
                        Stakeholder.locale, Stakeholder.timezone, Stakeholder.suppressed_at,
                        Stakeholder.suppression_reason)


def _prepare(ids: list[int]) -> list[Job]:
    """Load the claimed rows, cancel or postpone those no longer wanted now, and build
    the emails; commits (the rows cancelled or postponed)."""
    from survey.campaigns.reminders import gap_before, quiet_until
    from survey.campaigns.services import is_accepting_answers

    now = utcnow()
    rows = db.session.execute(
        select(_MESSAGE, _INVITATION, _PERSON, Invitation.campaign_id)
        .outerjoin(Invitation, Invitation.id == OutboxMessage.invitation_id)
        .outerjoin(Stakeholder, Stakeholder.id == Invitation.stakeholder_id)
        .where(OutboxMessage.id.in_(ids))
        .order_by(OutboxMessage.id)
    ).all()
    # A batch's emails are mostly of one campaign, or a few: each is read once, not with
    # every one of its rows.
    campaign_ids = {row.campaign_id for row in rows} - {None}
    campaigns = {campaign.id: campaign for campaign in db.session.scalars(
        select(Campaign).where(Campaign.id.in_(campaign_ids)))} if campaign_ids else {}
    jobs, stopped = [], []
    never_invited = []  # invitations whose email is cancelled before it went out
    merge = Merge()
    for message, invitation, person, campaign_id in rows:
        campaign = campaigns.get(campaign_id)
        if invitation.id is None:
            invitation = None
        if message.kind not in MERGED_KINDS:  # these read the claim or the user
            message = db.session.get(OutboxMessage, message.id)
            person = person if person.id is None else db.session.get(Stakeholder, person.id)
        if invitation is None:  # an email to staff
            reason = _staff_not_wanted(message)
        else:
            reason = _not_wanted(message, invitation, person, campaign, is_accepting_answers(campaign))
        if reason:
            stopped.append({"id": message.id, "status": "cancelled", "lease_until": None,
                            "smtp_reply": f"not sent: {reason}"})
            if message.kind == "invitation":
                never_invited.append(invitation.id)
            continue
        if message.kind == "reminder":
            until = quiet_until(now, person.timezone, campaign.quiet_hours_start, campaign.quiet_hours_end)
            if until is not None:  # not an attempt: back to the queue until the person's morning
                stopped.append({"id": message.id, "status": "queued", "lease_until": None,
                                "next_attempt_at": until, "attempts": message.attempts - 1})
                continue
        job = Job(message.id, getattr(invitation, "id", None), getattr(person, "id", None), message.kind,
                  message.sequence, message.attempts,
                  next_gap=gap_before(campaign, message.sequence + 1) if campaign else None,
                  # rows sent before Message-IDs were derived keep the one they were given
                  message_id=message.message_id or message_id_for(message.id, message.created_at))
        try:
            if message.kind in MERGED_KINDS:
                job.recipient, job.data = merge.email(message.kind, invitation, person, campaign, job.message_id)
            else:
                email = (build_staff_email(message, job.message_id) if invitation is None
                         else _evidence_request_email(message, job.message_id, invitation, person, campaign))
                job.recipient = parseaddr(email["To"])[1]
                job.data = email.as_bytes(policy=SMTP_POLICY)  # CRLF line ends, as SMTP requires
        except (ValueError, LookupError) as exc:
            # One unbuildable row (a local part that is not ASCII needs SMTPUTF8) must
            # not crash the batch, leaving the others to be resent after the lease.
            # Logged by id only: the reason can hold the address (it is kept in smtp_reply).
            current_app.logger.warning("outbox %s: cannot build the email (%s)", message.id, type(exc).__name__)
            job.unbuildable = Outcome("failed", f"not sent: cannot build the email ({exc})")
        jobs.append(job)
    if stopped:
        db.session.execute(update(OutboxMessage), stopped)
    if never_invited:
        not_sent(never_invited)
    db.session.commit()
    return jobs


def _not_wanted(message, invitation, person, campaign, accepting: bool) -> str | None:
    if person.suppressed_at is not None:
        return f"the address is suppressed ({person.suppression_reason})"
    if invitation.opted_out_at is not None:
        return "the person opted out of this campaign"
    if message.kind == "evidence_request":  # about a claim, whose review outlives the campaign
        return None if message.claim.state == "needs_evidence" else "the claim no longer needs evidence"
    if not accepting:
        return "the campaign is closed"
    if message.kind == "reminder" and invitation.completed_at is not None:
        return "the person has already answered"
    return None


def _staff_not_wanted(message) -> str | None:
    from survey.claims.reminders import chair_digest, overdue_reviews
    from survey.claims.services import REVIEWER_ROLE

    user = message.user
    wanted_role = REVIEWER_ROLE if message.kind == "review_reminder" else "chair"
    if not user.active or user.role != wanted_role:
        return f"the user is no longer {wanted_role}"
    # Checked again now: reviews voted or digests emptied since queueing send nothing.
    if message.kind == "review_reminder":
        if not any(item.reviewer.id == user.id for item in overdue_reviews(utcnow())):
            return "no review is overdue any more"
    elif chair_digest(utcnow()).empty:
        return "nothing waits for the chair any more"
    return None


def build_staff_email(message: OutboxMessage, message_id: str) -> EmailMessage:
    """A reviewer's overdue reviews or the chair's digest, in the language they use the
    service in (the default language until their first login)."""
    from survey.claims.reminders import chair_digest, overdue_reviews

    user = message.user
    locale = user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]
    base = current_app.config["BASE_URL"]
    now = utcnow()
    with force_locale(locale):
        if message.kind == "review_reminder":
            mine = next(item for item in overdue_reviews(now) if item.reviewer.id == user.id)
            context = {"user": user, "reviews": mine.reviews, "base": base,
                       "deadline": current_app.config["REVIEW_DEADLINE_DAYS"]}
            subject = ngettext("Impact committee: %(num)d claim waits for your review",
                               "Impact committee: %(num)d claims wait for your review", len(mine.reviews))
            template = "mail/review_reminder"
        else:
            context = {"user": user, "digest": chair_digest(now), "base": base}
            subject = _("Impact committee: this week's overdue reviews and decisions")
            template = "mail/chair_digest"
        text = render_template(f"{template}.txt", **context)
        html = render_template(f"{template}.html", subject=subject, locale=locale, **context)
    email = EmailMessage()
    email["Subject"] = subject
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = formataddr((user.name or user.email, ascii_address(user.email)))
    email["Message-ID"] = message_id
    email["Date"] = rfc2822_date(now)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(text)
    email.add_alternative(html, subtype="html")
    return email


def _evidence_request_email(message, message_id: str, invitation, person, campaign) -> EmailMessage:
    """The committee asks the respondent for more evidence about one claim."""
    from survey.campaigns.services import unsubscribe_token
    from survey.claims.services import claim_token, what_the_committee_asked

    locale = person.locale
    claim = message.claim
    opt_out_token = unsubscribe_token(invitation.token_nonce)
    context = {"person": person, "claim": claim, "reason": what_the_committee_asked(claim),
               "link": f"{current_app.config['BASE_URL']}/e/{claim_token(claim.token_nonce)}",
               "unsubscribe_link": unsubscribe_link(opt_out_token),
               "title": campaign.questionnaire.title(locale)}
    with force_locale(locale):
        subject = _("Your answer to “%(title)s”: could you add evidence?", title=context["title"])
        text = render_template("mail/evidence_request.txt", **context)
        html = render_template("mail/evidence_request.html", subject=subject, locale=locale, **context)
    return _email(message_id, person, subject, text, html, opt_out_token)


def _email(message_id: str, person, subject: str, text: str, html: str, opt_out_token: str) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = subject
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = formataddr((person.display_name, ascii_address(person.email)))
    email["Message-ID"] = message_id
    email["Date"] = rfc2822_date(utcnow())
    email["List-Unsubscribe"] = f"<{unsubscribe_link(opt_out_token)}>, <mailto:{unsubscribe_mailto(opt_out_token)}>"
    email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(text)
    email.add_alternative(html, subtype="html")
    return email


def ascii_address(address: str) -> str:
    """An internationalised domain in its IDNA (punycode) form, which every relay accepts."""
    local, _at, domain = address.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def _connect() -> smtplib.SMTP:
    config = current_app.config
    smtp = smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=config["SMTP_TIMEOUT"])
    smtp.ehlo()
    if config["SMTP_STARTTLS"]:
        smtp.starttls()
        smtp.ehlo()
    if config["SMTP_USER"]:
        smtp.login(config["SMTP_USER"], config["SMTP_PASSWORD"] or "")
    return smtp


#: each sending thread's open SMTP connection, kept from one batch to the next
_kept = threading.local()


def _relay() -> tuple:
    config = current_app.config
    return (config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_USER"], config["SMTP_STARTTLS"])


def _kept_connection() -> smtplib.SMTP | None:
    """The connection this thread kept after its last batch, if it is to the configured
    relay and still answers (relays close idle connections after a few minutes)."""
    smtp, relay = getattr(_kept, "smtp", None), getattr(_kept, "relay", None)
    _kept.smtp = None
    if smtp is None:
        return None
    if relay == _relay():
        try:
            if smtp.noop()[0] == 250:
                return smtp
        except (smtplib.SMTPException, OSError):
            pass
    _close(smtp)
    return None


def _keep(smtp: smtplib.SMTP) -> None:
    _kept.smtp, _kept.relay = smtp, _relay()


def _deliver(jobs: list[Job], record, holds=lambda job: True) -> None:
    """Send each email on this thread's connection (kept open for its next batch), calling
    ``record(job, outcome)`` for each as its outcome is known; reconnect once if the
    server drops us. A row ``holds`` says is no longer ours is left alone: another worker
    has it now.

    A relay that cannot be reached (refused, silent until the timeout, or dropping
    us a second time) is not tried again for the rest of the batch: those rows go
    back to the queue at once. Trying each row would cost one timeout per email,
    enough to outlive the batch's lease and let another worker send the rows too.
    """
    smtp = _kept_connection()  # one connection per sending thread, kept between batches
    relay = _Relay(smtp) if smtp is not None else None
    connections, finished = 0, False
    unreachable = None  # the reason the rest of the batch is not tried
    try:
        for job in jobs:
            if not holds(job):
                continue
            if job.unbuildable is not None:
                record(job, job.unbuildable)
                continue
            if _UNSAFE_IN_COMMAND.search(job.recipient):
                record(job, Outcome("failed", "not sent: the address holds characters an SMTP command cannot carry"))
                continue
            if relay is None and unreachable is None and connections == 2:
                unreachable = "connection error: the server dropped the connection twice"
            if unreachable is not None:
                record(job, Outcome("retry", unreachable))
                continue
            if relay is None:
                connections += 1
                try:
                    relay = _Relay(_connect())
                except OSError as exc:  # smtplib's errors and socket.timeout are OSErrors
                    unreachable = f"connection error: {exc}"
                    record(job, Outcome("retry", unreachable))
                    continue
            for done, outcome in relay.send(job):
                record(done, outcome)
            if relay.broken:
                _close(relay.smtp)
                relay = None
        if relay is not None:
            for done, outcome in relay.finish():
                record(done, outcome)
            finished = True
    finally:
        if relay is not None and finished and not relay.broken:
            _keep(relay.smtp)
        elif relay is not None:
            _close(relay.smtp)  # stopped mid-batch, perhaps mid-email: the session is not reused


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except OSError:
        pass


#: what may not appear in an address written into MAIL FROM/RCPT TO (beyond ASCII needs
#: SMTPUTF8, which Attest does not use)
_UNSAFE_IN_COMMAND = re.compile(r"[<>\s]|[^\x00-\x7f]")


class _Relay:
    """A connection to the relay, sending one email after another.

    The envelope sender is each row's own VERP address: a later bounce names the email.
    Both addresses are plain ASCII addr-specs already (return_path, ascii_address, and
    _deliver refuses what could break a command), so the commands are written as they
    are: smtplib's mail()/rcpt() would parse each address again, a sixth of the worker's
    time per email.

    A relay that offers PIPELINING (RFC 2920; Postfix and the big relays do) gets one
    write per email: the end of the email before (its message, or RSET after a refusal)
    then this one's MAIL, RCPT and DATA; the replies are read after, in order, and the
    message follows at the next write, once its DATA got 354. One round trip per email
    instead of four, with the writes and reads on both sides cut to match. A refused
    MAIL or RCPT is the email's outcome; a DATA the relay accepts anyway is ended by a
    lone dot, carrying nothing (RFC 2920, 3.1). Other relays get one command at a time.

    A lost connection is an outcome too (a retry) for each email on the wire, and marks
    the relay ``broken``; replies read before it keep theirs.
    """

    def __init__(self, smtp: smtplib.SMTP):
        self.smtp = smtp
        self.pipelining = smtp.has_extn("pipelining")
        self.broken = False
        #: on a pipelining relay, the email whose envelope is answered and whose message is not yet sent
        self.in_flight: Job | None = None
        self._refused: Outcome | None = None  # the in-flight email's refusal, if any
        self._data_accepted = False  # its DATA got 354: the relay waits for the message

    def send(self, job: Job) -> list[tuple[Job, Outcome]]:
        """Put one email on the wire; the outcomes known now: its own, or on a relay that
        pipelines, the email's before (its own comes with the next, or ``finish``)."""
        if self.pipelining:
            return self._turn(job)
        try:
            return [(job, self._lockstep(job))]
        except OSError as exc:
            self.broken = True
            return [(job, Outcome("retry", f"connection error: {exc}"))]

    def finish(self) -> list[tuple[Job, Outcome]]:
        """The email still in flight goes out; its outcome."""
        return self._turn(None) if self.in_flight is not None else []

    def _lockstep(self, job: Job) -> Outcome:
        for command in _envelope(job):
            code, reply = self.smtp.docmd(command)
            if code >= 400:
                self._reset()
                return _classify(code, reply)
        try:
            code, reply = self.smtp.data(job.data)
        except smtplib.SMTPResponseException as exc:  # DATA answered with anything but 354
            if exc.smtp_code < 400:
                self._reset()
                return _data_not_taken(exc.smtp_code, exc.smtp_error)
            code, reply = exc.smtp_code, exc.smtp_error
        if code >= 400:
            self._reset()  # leave the session clean for the next message of the batch
        return _classify(code, reply)

    def _reset(self) -> None:
        try:
            self.smtp.rset()
        except OSError:
            self.broken = True  # the refusal stands; the connection is not used again

    def _turn(self, job: Job | None) -> list[tuple[Job, Outcome]]:
        """One write: the in-flight email's end, then ``job``'s envelope; then their replies."""
        before, refused, accepted = self.in_flight, self._refused, self._data_accepted
        self.in_flight = None
        if before is None:
            ending = b""
        elif not accepted:
            ending = b"RSET\r\n"  # the relay may hold a half-made transaction
        elif refused is not None:
            ending = b".\r\n"
        else:
            ending = _dot_stuffed(before.data) + b".\r\n"
        start = "".join(f"{command}\r\n" for command in (*_envelope(job), "DATA")).encode() if job else b""
        done = []
        try:
            self.smtp.send(ending + start)
            if before is not None:
                code, reply = self.smtp.getreply()
                done.append((before, refused or _classify(code, reply)))
                before = None
            if job is not None:
                replies = [self.smtp.getreply() for _ in range(3)]
                code, reply = replies[2]
                self._data_accepted = code == 354
                self._refused = next((_classify(*one) for one in replies[:2] if one[0] >= 400), None)
                if self._refused is None and not self._data_accepted:
                    self._refused = _classify(code, reply) if code >= 400 else _data_not_taken(code, reply)
                self.in_flight = job
        except OSError as exc:
            self.broken = True
            if before is not None and refused is not None:  # refused already: that stands
                done.append((before, refused))
                before = None
            lost = Outcome("retry", f"connection error: {exc}")
            done += [(one, lost) for one in (before, job) if one is not None]
        return done


def _data_not_taken(code: int, reply: bytes) -> Outcome:
    """DATA answered with neither 354 nor a refusal (a relay that breaks the protocol): the
    message was never carried, so it is not "sent"; it is tried again later."""
    return Outcome("retry", f"not sent: the relay answered DATA with {_classify(code, reply).reply}, not 354")


def _envelope(job: Job) -> tuple[str, str]:
    return f"MAIL FROM:<{return_path(job.outbox_id)}>", f"RCPT TO:<{job.recipient}>"


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321, 4.5.2): a line that begins with a dot gets
    another, and the message ends with a line end. (A replace, not a multi-line regex,
    which took 19 µs an email scanning its 4 kB for line starts; this, 3.4.)"""
    stuffed = (b"." + data if data.startswith(b".") else data).replace(b"\n.", b"\n..")
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


def _classify(code: int, reply: bytes | str) -> Outcome:
    text = f"{code} {reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else reply}".strip()
    if 200 <= code < 300:
        return Outcome("sent", text)
    if 400 <= code < 500:
        return Outcome("retry", text)
    # 550 5.1.1 (no such user) and other 5.1.x / 5.2.1 codes mean the address is dead.
    enhanced = re.match(r"\d{3} (5\.\d{1,3}\.\d{1,3})\b", text)
    return Outcome("failed", text, hard_bounce=bool(enhanced) and means_dead_address(enhanced.group(1)))


def _retry_delay(attempts: int) -> timedelta:
    base = float(current_app.config.get("MAIL_RETRY_BASE_SECONDS", 60))
    return timedelta(seconds=base * (2 ** (attempts - 1)))


class _Lease:
    """Keeps a batch's rows this worker's while it sends them.

    The lease is renewed every third of MAIL_LEASE_SECONDS, so a worker that is slow
    but alive keeps its rows. One that stalled past its lease (a paused process, a
    starved machine) may find, at its next renewal, that beat gave some rows back to
    the queue and another worker claimed them (their ``attempts`` moved on): it skips
    those instead of sending them a second time.
    """

    def __init__(self, jobs: list[Job], claimed: float):
        self.seconds = current_app.config["MAIL_LEASE_SECONDS"]
        self.ours = {job.outbox_id: job.attempts for job in jobs}
        self.renewed = claimed  # the lease runs from the claim (a batch built ahead waited)

    def holds(self, job: Job) -> bool:
        if time.monotonic() - self.renewed >= self.seconds / 3:
            self._renew()
        return job.outbox_id in self.ours

    def _renew(self) -> None:
        kept = db.session.scalars(
            update(OutboxMessage)
            .where(tuple_(OutboxMessage.id, OutboxMessage.attempts).in_(list(self.ours.items())),
                   OutboxMessage.status == "sending")
            .values(lease_until=utcnow() + timedelta(seconds=self.seconds))
            .returning(OutboxMessage.id)
        ).all()
        db.session.commit()
        self.ours = {outbox_id: self.ours[outbox_id] for outbox_id in kept}
        self.renewed = time.monotonic()


class _Recorder:
    """Collects outcomes and writes them every ``every`` emails, in one transaction."""

    def __init__(self, every: int):
        self.every = max(1, every)
        self.pending: list[tuple[Job, Outcome]] = []

    def add(self, job: Job, outcome: Outcome) -> None:
        self.pending.append((job, outcome))
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            _record(self.pending, utcnow())
            self.pending = []
        db.session.commit()


def _record(outcomes: list[tuple[Job, Outcome]], now: datetime) -> None:
    """Write what happened to each email, and what follows for its invitation."""
    rows: list[tuple] = []  # (outbox id, status, Message-ID, reply, next attempt)
    invited: dict[timedelta | None, list[int]] = defaultdict(list)  # next gap → invitation ids
    reminded: dict[tuple[int, timedelta | None], list[int]] = defaultdict(list)  # (sequence, gap) → ids
    failed: dict[str, list[int]] = defaultdict(list)  # invitation status → ids
    bounced: list[tuple[int, str]] = []
    for job, outcome in outcomes:
        reply = outcome.reply[:2000]
        if outcome.status == "retry" and job.attempts < max_attempts():
            rows.append((job.outbox_id, "queued", job.message_id, reply, now + _retry_delay(job.attempts)))
            continue
        rows.append((job.outbox_id, "sent" if outcome.status == "sent" else "failed", job.message_id, reply, None))
        if outcome.hard_bounce:
            bounced.append((job.stakeholder_id, outcome.reply))
        if job.kind == "invitation" and outcome.status == "sent":
            invited[job.next_gap].append(job.invitation_id)
        elif job.kind == "invitation":
            failed["bounced" if outcome.hard_bounce else "failed"].append(job.invitation_id)
        elif job.kind == "reminder" and not outcome.hard_bounce:
            # A reminder that failed for good still moves the schedule on.
            reminded[(job.sequence, job.next_gap)].append(job.invitation_id)
    _update_outbox(rows, now)
    # Nothing in the session to update: the commit that follows expires whatever it holds.
    unsynchronised = {"synchronize_session": False}
    for gap, ids in invited.items():
        db.session.execute(
            update(Invitation)
            .where(Invitation.id.in_(ids), Invitation.sent_at.is_(None))
            .values(sent_at=now, next_reminder_at=now + gap if gap else None,
                    status=case((Invitation.status.in_(("queued", "failed")), "sent"),
                                else_=Invitation.status)),
            execution_options=unsynchronised,
        )
    for (sequence, gap), ids in reminded.items():
        db.session.execute(
            update(Invitation)
            .where(Invitation.id.in_(ids), Invitation.reminders_sent < sequence)
            .values(reminders_sent=sequence, next_reminder_at=_next_reminder(now, gap)),
            execution_options=unsynchronised,
        )
    for status, ids in failed.items():
        db.session.execute(
            update(Invitation).where(Invitation.id.in_(ids), Invitation.status == "queued").values(status=status),
            execution_options=unsynchronised,
        )
    for stakeholder_id, reply in bounced:
        if stakeholder_id is not None:  # a staff address is the admins' business, not a suppression
            suppress_address(stakeholder_id, f"{HARD_BOUNCE}{reply[:150]}")


def _update_outbox(rows: list[tuple], now: datetime) -> None:
    """Write each email's outcome: (outbox id, status, Message-ID, reply, next attempt).

    On PostgreSQL in one statement, the values as arrays: a statement per row was the
    database's largest share of a campaign's sending (6 s of 100,000 emails; 1.8 s
    this way), and arrays keep the statement's text the same from batch to batch,
    where a VALUES list would be compiled afresh each time. Elsewhere (SQLite, for
    development) a statement per row.
    """
    if not rows:
        return
    if db.session.get_bind().dialect.name != "postgresql":
        db.session.execute(update(OutboxMessage), [
            {"id": outbox_id, "status": status, "message_id": message_id, "smtp_reply": reply, "lease_until": None,
             **({"sent_at": now} if status == "sent" else {}),
             **({"next_attempt_at": next_attempt} if next_attempt else {})}
            for outbox_id, status, message_id, reply, next_attempt in rows])
        return
    ids, statuses, message_ids, replies, next_attempts = (list(values) for values in zip(*rows))
    db.session.execute(text("""
        UPDATE outbox_messages
        SET status = outcome.status, lease_until = NULL, message_id = outcome.message_id,
            smtp_reply = outcome.smtp_reply,
            sent_at = CASE WHEN outcome.status = 'sent' THEN :now ELSE outbox_messages.sent_at END,
            next_attempt_at = COALESCE(outcome.next_attempt_at, outbox_messages.next_attempt_at)
        FROM unnest(CAST(:ids AS integer[]), CAST(:statuses AS varchar[]), CAST(:message_ids AS varchar[]),
                    CAST(:replies AS text[]), CAST(:next_attempts AS timestamptz[]))
             AS outcome (id, status, message_id, smtp_reply, next_attempt_at)
        WHERE outbox_messages.id = outcome.id"""),
        {"now": now, "ids": ids, "statuses": statuses, "message_ids": message_ids, "replies": replies,
         "next_attempts": next_attempts})


def _next_reminder(now: datetime, gap: timedelta | None):
    """When the next reminder falls due: none past the schedule, nor for someone who
    answered or opted out while this email was on its way."""
    if gap is None:
        return None
    still_wanted = Invitation.completed_at.is_(None) & Invitation.opted_out_at.is_(None)
    return case((still_wanted, now + gap), else_=None)
