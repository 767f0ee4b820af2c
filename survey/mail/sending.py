"""Sending the outbox: claim due rows under a lease, send them over one SMTP
connection, record each server reply.

A row is claimed by setting it to ``sending`` with a lease (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so concurrent workers never take the same row); a worker
that dies leaves its rows to ``release_expired_leases``. Temporary failures
(4xx, lost connection) are retried with growing delays; permanent ones (5xx) are
not, and a hard bounce suppresses the address for every later campaign.
"""
from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime as rfc2822_date
from email.utils import formataddr, make_msgid, parseaddr
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import current_app, render_template
from flask_babel import force_locale, gettext as _
from sqlalchemy import exists, select, update

from survey.audiences.models import Stakeholder
from survey.campaigns.models import Campaign, Invitation
from survey.core.types import utcnow
from survey.extensions import db
from survey.mail.models import OutboxMessage

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 6


@dataclass
class Outcome:
    status: str  # sent | retry | failed
    reply: str
    hard_bounce: bool = False


def survey_link(token: str) -> str:
    """Links are built from BASE_URL, never from a request's Host header."""
    return f"{current_app.config['BASE_URL']}/s/{token}"


def claim_due(limit: int) -> list[int]:
    """Take up to ``limit`` due rows for this worker; no two workers get the same row.

    Two statements, not ``UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP
    LOCKED)``: PostgreSQL may run that subquery again for each row it updates
    (a nested-loop semi-join), and each run skips the rows just updated, so one
    worker took the whole queue whatever the limit. Here the SELECT locks at most
    ``limit`` rows (on PostgreSQL; SQLite has one writer at a time), and the UPDATE
    only takes those still queued, so a row is claimed once even without locks.
    """
    now = utcnow()
    due = db.session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not due:
        db.session.commit()
        return []
    ids = db.session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due), OutboxMessage.status == "queued")
        .values(status="sending", lease_until=now + LEASE, attempts=OutboxMessage.attempts + 1)
        .returning(OutboxMessage.id)
    ).all()
    db.session.commit()
    return sorted(ids)


def release_expired_leases() -> int:
    """Rows whose worker died mid-send go back to the queue."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == "sending", OutboxMessage.lease_until < utcnow())
        .values(status="queued", lease_until=None)
    )
    return result.rowcount


def work_waiting() -> bool:
    """Due rows and no live lease: nobody is sending, so beat should start a sender."""
    now = utcnow()
    due = exists().where(OutboxMessage.status == "queued", OutboxMessage.next_attempt_at <= now)
    busy = exists().where(OutboxMessage.status == "sending", OutboxMessage.lease_until >= now)
    return bool(db.session.scalar(select(due & ~busy)))


def send_batch(limit: int) -> int:
    """Send up to ``limit`` due emails over one SMTP connection; returns how many were claimed."""
    ids = claim_due(limit)
    if not ids:
        return 0
    rows = db.session.execute(
        select(OutboxMessage, Invitation, Stakeholder, Campaign)
        .join(Invitation, Invitation.id == OutboxMessage.invitation_id)
        .join(Stakeholder, Stakeholder.id == Invitation.stakeholder_id)
        .join(Campaign, Campaign.id == Invitation.campaign_id)
        .where(OutboxMessage.id.in_(ids))
        .order_by(OutboxMessage.id)
    ).all()

    from survey.campaigns.services import is_accepting_answers

    to_send, cancelled = [], []
    for message, invitation, person, campaign in rows:
        if person.suppressed_at is not None or not is_accepting_answers(campaign):
            cancelled.append(message.id)
            continue
        if message.message_id is None:
            message.message_id = make_msgid(domain=_mail_domain())
        to_send.append((message, invitation, person, campaign))
    if cancelled:
        db.session.execute(
            update(OutboxMessage).where(OutboxMessage.id.in_(cancelled))
            .values(status="cancelled", lease_until=None)
        )
    db.session.commit()  # Message-IDs are stored before anything is sent

    outcomes = _deliver([(m, _build_or_fail(m, i, p, c)) for m, i, p, c in to_send])
    _record(to_send, outcomes)
    db.session.commit()
    return len(ids)


def _mail_domain() -> str:
    return parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"


def _build_or_fail(message, invitation, person, campaign) -> EmailMessage | Outcome:
    """The email, or a permanent failure when this row cannot make one.

    One unbuildable row (an address whose local part is not ASCII, which needs
    SMTPUTF8) must not crash the whole batch: that would leave every row of the
    batch in ``sending`` and resend, after the lease, those already delivered.
    """
    try:
        return build_email(message, invitation, person, campaign)
    except (ValueError, LookupError) as exc:
        current_app.logger.warning("outbox %s: cannot build the email: %s", message.id, exc)
        return Outcome("failed", f"not sent: cannot build the email ({exc})")


def build_email(message: OutboxMessage, invitation: Invitation, person: Stakeholder,
                campaign: Campaign) -> EmailMessage:
    from survey.campaigns.services import invitation_token

    locale = person.locale
    closes = format_datetime(campaign.closes_at, "long", tzinfo=ZoneInfo(person.timezone), locale=locale)
    context = {
        "person": person, "campaign": campaign, "link": survey_link(invitation_token(invitation.token_nonce)),
        "closes": closes, "title": campaign.questionnaire.title(locale), "kind": message.kind,
    }
    with force_locale(locale):
        subject = _("%(title)s: a few minutes of your time", title=context["title"])
        text = render_template("mail/invitation.txt", **context)
        html = render_template("mail/invitation.html", subject=subject, locale=locale, **context)
    email = EmailMessage()
    email["Subject"] = subject
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = formataddr((person.display_name, ascii_address(person.email)))
    email["Message-ID"] = message.message_id
    email["Date"] = rfc2822_date(utcnow())
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


def _deliver(batch: list[tuple[OutboxMessage, EmailMessage | Outcome]]) -> list[Outcome]:
    """Send each message on one connection; reconnect once if the server drops us.

    A relay that cannot be reached (refused, silent until the timeout, or dropping
    us a second time) is not tried again for the rest of the batch: those rows go
    back to the queue at once. Trying each row would cost one timeout per email,
    enough to outlive the batch's lease and let another worker send the rows too.
    """
    outcomes: list[Outcome] = []
    smtp = None
    connections = 0
    unreachable = None  # the reason the rest of the batch is not tried
    try:
        for _message, email in batch:
            if isinstance(email, Outcome):  # could not be built: nothing to send
                outcomes.append(email)
                continue
            if smtp is None and unreachable is None and connections == 2:
                unreachable = "connection error: the server dropped the connection twice"
            if unreachable is not None:
                outcomes.append(Outcome("retry", unreachable))
                continue
            if smtp is None:
                connections += 1
                try:
                    smtp = _connect()
                except OSError as exc:  # smtplib's errors and socket.timeout are OSErrors
                    unreachable = f"connection error: {exc}"
                    outcomes.append(Outcome("retry", unreachable))
                    continue
            try:
                outcomes.append(_send_one(smtp, email))
            except smtplib.SMTPResponseException as exc:  # a refusal raised, not returned (DATA)
                outcomes.append(_classify(exc.smtp_code, exc.smtp_error))
                try:
                    smtp.rset()
                except OSError:
                    _close(smtp)
                    smtp = None
            except OSError as exc:
                _close(smtp)
                smtp = None
                outcomes.append(Outcome("retry", f"connection error: {exc}"))
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                _close(smtp)
    return outcomes


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except OSError:
        pass


def _send_one(smtp: smtplib.SMTP, email: EmailMessage) -> Outcome:
    sender = parseaddr(email["From"])[1]
    recipient = parseaddr(email["To"])[1]
    code, reply = smtp.mail(sender)
    if code >= 400:
        smtp.rset()
        return _classify(code, reply)
    code, reply = smtp.rcpt(recipient)
    if code >= 400:
        smtp.rset()
        return _classify(code, reply)
    code, reply = smtp.data(email.as_bytes(policy=SMTP_POLICY))  # CRLF line ends, as SMTP requires
    if code >= 400:
        smtp.rset()  # leave the session clean for the next message of the batch
    return _classify(code, reply)


def _classify(code: int, reply: bytes | str) -> Outcome:
    text = f"{code} {reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else reply}".strip()
    if 200 <= code < 300:
        return Outcome("sent", text)
    if 400 <= code < 500:
        return Outcome("retry", text)
    # 550 5.1.1 (no such user) and other 5.1.x / 5.2.1 codes mean the address is dead.
    hard = code in (550, 551, 553) and any(s in text for s in (" 5.1.", " 5.2.1"))
    return Outcome("failed", text, hard_bounce=hard)


def _retry_delay(attempts: int) -> timedelta:
    base = float(current_app.config.get("MAIL_RETRY_BASE_SECONDS", 60))
    return timedelta(seconds=base * (2 ** (attempts - 1)))


def _record(sent: list, outcomes: list[Outcome]) -> None:
    now = utcnow()
    delivered, failed, bounced = [], [], []
    for (message, invitation, person, _campaign), outcome in zip(sent, outcomes):
        message.smtp_reply = outcome.reply[:2000]
        message.lease_until = None
        if outcome.status == "sent":
            message.status, message.sent_at = "sent", now
            delivered.append(invitation.id)
        elif outcome.status == "retry" and message.attempts < MAX_ATTEMPTS:
            message.status, message.next_attempt_at = "queued", now + _retry_delay(message.attempts)
        else:
            message.status = "failed"
            (bounced if outcome.hard_bounce else failed).append(invitation.id)
            if outcome.hard_bounce and person.suppressed_at is None:
                person.suppressed_at, person.suppression_reason = now, f"hard bounce: {outcome.reply[:150]}"
    if delivered:
        db.session.execute(
            update(Invitation)
            .where(Invitation.id.in_(delivered), Invitation.status.in_(("queued", "failed")))
            .values(status="sent", sent_at=now)
        )
    for status, ids in (("failed", failed), ("bounced", bounced)):
        if ids:
            db.session.execute(
                update(Invitation).where(Invitation.id.in_(ids), Invitation.status == "queued")
                .values(status=status)
            )
