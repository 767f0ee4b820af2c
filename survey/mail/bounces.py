"""Mail that comes back: asynchronous bounces (RFC 3464) and unsubscribe requests.

Many dead addresses are not refused while we send: the relay accepts the email
and a server further on returns it later, as a delivery status notification
(DSN) written to the email's envelope sender. Each email is sent from its own
signed VERP address (``bounces+<outbox id>.<signature>@domain``, see
``addresses.py``), so a DSN names the outbox row it is about whatever the
bouncing server writes in its report. When the VERP is lost (a forwarder
rewrote it) the Message-ID of the returned original, which is random and known
only to the recipient's servers, ties it instead. An address whose signature is
wrong is never trusted: anyone can write a DSN, and a forged one must not cut
someone off.

A permanent failure marks the outbox row and (for an invitation not yet acted
on) the invitation ``bounced`` and suppresses the address for every campaign; a
delayed delivery is only reported, as the relay keeps trying. The mailto: half
of List-Unsubscribe (``unsubscribe+<token>@domain``) reaches the same mailbox
and opts the person out of everything.

``ingest_message`` reads one message and records it in the session; its caller
commits. The ``flask --app wsgi bounces ingest`` command feeds it from an mbox
file, a Maildir or an IMAP folder and commits after each message.
"""
from __future__ import annotations

import email
import hmac
import imaplib
import ipaddress
import mailbox
import os
import re
import ssl
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Protocol

import click
from flask.cli import AppGroup
from sqlalchemy import func, select, update

from survey.campaigns.models import Invitation
from survey.core.tokens import hash_token
from survey.core.types import utcnow
from survey.extensions import db
from survey.mail.addresses import message_id_for, outbox_id_from, outbox_id_in_message_id, unsubscribe_token_from
from survey.mail.models import OutboxMessage
from survey.mail.suppression import HARD_BOUNCE, means_dead_address, opt_out, suppress_address

#: Headers of a received message that name the address it was delivered to:
#: To as written by the bouncing server, the others as added by the receiving
#: servers (Postfix: Delivered-To, X-Original-To; Exim: Envelope-To).
RECIPIENT_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To")
#: Where the VERP may be: the recipient headers and, when a forwarder kept it, Return-Path.
VERP_HEADERS = RECIPIENT_HEADERS + ("Return-Path",)
#: Invitation statuses a bounce of the invitation email no longer changes: the
#: person has the link (a reminder, or a copy, bounced) or has opted out.
ENGAGED = ("opened", "started", "completed", "opted_out")

# An address shaped like our VERP (…+<digits>.<something>@), to tell a forged or
# stale signature ("ignored: signature wrong") from an address that is not ours.
_VERP_SHAPE = re.compile(r"\+\d+\.[^@]*@")
# An enhanced status code (RFC 3463), not part of an IP address or version number.
_STATUS_CODE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
# A basic SMTP reply code at the start of a reply ("550 " or "550-").
_REPLY_CODE = re.compile(r"(?<!\d)([45])\d\d(?=[ -])")
_MESSAGE_ID = re.compile(r"^message-id:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
# Lines after which a plain-text bounce quotes the returned email (Exim, qmail, old
# Gmail, Sendmail): what follows is the original, not the explanation.
_ORIGINAL_FOLLOWS = re.compile(
    r"^[ \t]*-{2,}[ \t]*(this is a copy of|original message|below this line is a copy|"
    r"the original message|undelivered message|returned message)",
    re.IGNORECASE | re.MULTILINE,
)
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "mail-daemon")
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed|incomplete)|"
    r"returned mail|failure notice|mail delivery (failed|failure|system)|non[- ]?delivery",
    re.IGNORECASE,
)
_PERMANENT_WORDS = re.compile(
    r"permanent (error|failure)|failed permanently|could not be delivered|"
    r"user unknown|does not exist|no such user|address rejected",
    re.IGNORECASE,
)
_DELAY_WORDS = re.compile(
    r"not yet been delivered|delayed|will (continue|retry|keep trying)|temporar",
    re.IGNORECASE,
)
#: Longest diagnostic kept in smtp_reply and shown in the command's output.
DIAGNOSTIC_LIMIT = 500
#: At most this many Message-IDs of a returned original are looked up.
MESSAGE_ID_LIMIT = 10
#: Seconds an IMAP server may stay silent before the run gives up (a cron job must end).
IMAP_TIMEOUT = 60


# ---------------------------------------------------------------- reading a message

@dataclass(frozen=True)
class Recipient:
    """One per-recipient block of a delivery report (or what a plain-text bounce says)."""

    action: str  # failed | delayed | delivered | relayed | expanded, or "" when absent
    status: str  # the enhanced status code, e.g. "5.1.1"; "" when none could be read
    address: str  # Final-Recipient (or Original-Recipient, X-Failed-Recipients)
    diagnostic: str

    @property
    def permanent(self) -> bool:
        return self.action == "failed" and self.status.startswith("5.")

    @property
    def transient(self) -> bool:
        return not self.permanent and (self.action == "delayed" or self.status.startswith("4."))

    def describe(self) -> str:
        return " ".join(part for part in (self.status, self.diagnostic) if part)


@dataclass(frozen=True)
class Notice:
    """What one received message says, read without touching the database."""

    #: a DSN, or a message that looks like a non-standard bounce
    is_bounce: bool
    recipients: tuple[Recipient, ...]
    #: addresses from the VERP headers; the signed one names the outbox row
    verp_candidates: tuple[str, ...]
    #: Message-IDs of the returned original email
    original_ids: tuple[str, ...]
    #: the token of an unsubscribe+<token>@ address it was sent to
    unsubscribe_token: str | None


def read_message(message: bytes | Message) -> Notice:
    """Everything ``ingest_message`` needs from a message; pure parsing, no database."""
    msg = message if isinstance(message, Message) else email.message_from_bytes(message)
    report_blocks = _delivery_status_blocks(msg)
    is_bounce = report_blocks is not None or _looks_like_bounce(msg)
    explanation, quoted = _texts(msg)
    if report_blocks is not None:
        recipients = _recipients_from_report(report_blocks)
    elif is_bounce:
        recipients = _recipients_from_text(msg, explanation)
    else:
        recipients = ()
    original_ids = _original_message_ids(msg, report_blocks or [], quoted) if is_bounce else ()
    unsubscribe = None
    if not is_bounce:
        tokens = map(unsubscribe_token_from, _addresses(msg, RECIPIENT_HEADERS))
        unsubscribe = next(filter(None, tokens), None)
    return Notice(
        is_bounce=is_bounce,
        recipients=recipients,
        verp_candidates=tuple(_addresses(msg, VERP_HEADERS)),
        original_ids=original_ids,
        unsubscribe_token=unsubscribe,
    )


def _addresses(msg: Message, headers: tuple[str, ...]) -> list[str]:
    values = [str(value) for header in headers for value in msg.get_all(header, [])]
    return [address for _name, address in getaddresses(values) if address]


def _parts(msg: Message) -> Iterator[Message]:
    """The parts of a message, without descending into attached messages
    (message/rfc822, the blocks of message/delivery-status): those are read apart."""
    yield msg
    if msg.is_multipart() and msg.get_content_maintype() != "message":
        for part in msg.get_payload():
            yield from _parts(part)


def _delivery_status_blocks(msg: Message) -> list[Message] | None:
    """The header blocks of the report's delivery-status part (the first is about
    the message, the others each about one recipient), or None if there is none.

    The part is looked for in any multipart, not only in multipart/report with
    report-type=delivery-status: some servers (older Exchange, some appliances)
    send it in a multipart/mixed.
    """
    for part in _parts(msg):
        content_type = part.get_content_type()
        if content_type not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        payload = part.get_payload()
        if content_type == "message/delivery-status" and isinstance(payload, list):
            return [block for block in payload if isinstance(block, Message)]  # parsed into blocks
        # message/global-delivery-status (RFC 6533, UTF-8): the email package reads it as
        # one message (first block as headers, the rest as body): split its text ourselves.
        text = "".join(map(str, payload)) if isinstance(payload, list) else _decoded(part)
        return [HeaderParser().parsestr(block.strip() + "\n") for block in re.split(r"\n\s*\n", text)
                if block.strip()]
    return None


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:  # an unknown charset name
        return payload.decode("latin-1")


def _unfold(value: object) -> str:
    return " ".join(str(value or "").split())


def _field_value(block: Message, name: str) -> str:
    """``rfc822; ada@example.org`` → ``ada@example.org``: the value without its type."""
    value = _unfold(block.get(name))
    return (value.split(";", 1)[1] if ";" in value else value).strip()


def _recipients_from_report(blocks: list[Message]) -> tuple[Recipient, ...]:
    recipients = []
    for block in blocks[1:]:
        diagnostic = _field_value(block, "Diagnostic-Code")
        # Action and Status are required by RFC 3464, yet some servers give only one
        # of them, or only an SMTP reply: each is then inferred from the other.
        status = (_status_in(_field_value(block, "Status")) or _status_in(diagnostic)
                  or _status_from_reply(diagnostic))
        action = (_field_value(block, "Action").split() or [""])[0].lower()
        action = action or {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[:1], "")
        address = (_field_value(block, "Final-Recipient")
                   or _field_value(block, "Original-Recipient")).strip("<>")
        recipients.append(Recipient(action, status, address, diagnostic[:DIAGNOSTIC_LIMIT]))
    return tuple(recipients)


def _status_in(text: str) -> str:
    match = _STATUS_CODE.search(text)
    return ".".join(match.groups()) if match else ""


def _status_from_reply(text: str) -> str:
    match = _REPLY_CODE.search(text)
    return f"{match.group(1)}.0.0" if match else ""


def _looks_like_bounce(msg: Message) -> bool:
    """A bounce that is not an RFC 3464 report (Exim and qmail plain text, old Gmail).

    The sender or X-Failed-Recipients decides, not the subject alone: vacation
    auto-replies also come back with an empty Return-Path, to the same mailbox.
    """
    if msg.get("X-Failed-Recipients"):
        return True
    sender = _addresses(msg, ("From",))
    local = sender[0].partition("@")[0].lower() if sender else ""
    if local in _BOUNCE_SENDERS:
        return True
    null_sender = _unfold(msg.get("Return-Path")) == "<>"
    return null_sender and bool(_BOUNCE_SUBJECT.search(_unfold(msg.get("Subject"))))


def _texts(msg: Message) -> tuple[str, str]:
    """The bounce's own words, and the returned email when it is quoted in the text."""
    explanation, quoted = [], []
    for part in _parts(msg):
        if part.get_content_type() != "text/plain" or part.get_content_disposition() == "attachment":
            continue
        text = _decoded(part)
        marker = _ORIGINAL_FOLLOWS.search(text)
        explanation.append(text[:marker.start()] if marker else text)
        quoted.append(text[marker.start():] if marker else "")
    return "\n".join(explanation), "\n".join(quoted)


def _recipients_from_text(msg: Message, text: str) -> tuple[Recipient, ...]:
    """One recipient from a plain-text bounce: permanent only on a 5.x.x code, or
    on a 5xx reply in a text that says the failure is permanent."""
    failed = _addresses(msg, ("X-Failed-Recipients",))
    codes = list(_STATUS_CODE.finditer(text))
    # A report may list several codes (one per attempt or recipient): a permanent one wins.
    code = next((m for m in codes if m.group(1) == "5"), None) or next(iter(codes), None)
    reply = _REPLY_CODE.search(text)
    delay = _DELAY_WORDS.search(text)
    if code:
        status, where = ".".join(code.groups()), code
    elif reply and reply.group(1) == "5" and _PERMANENT_WORDS.search(text):
        status, where = "5.0.0", reply
    elif reply and reply.group(1) == "4":
        status, where = "4.0.0", reply
    elif delay:
        status, where = "4.0.0", delay
    else:
        return ()
    # the line that gave the status is the diagnostic
    line_start = text.rfind("\n", 0, where.start()) + 1
    line_end = text.find("\n", where.start())
    diagnostic = _unfold(text[line_start:line_end if line_end >= 0 else None])[:DIAGNOSTIC_LIMIT]
    action = "failed" if status.startswith("5.") else "delayed"
    return (Recipient(action, status, failed[0] if failed else "", diagnostic),)


def _original_message_ids(msg: Message, blocks: list[Message], quoted: str) -> tuple[str, ...]:
    """The Message-ID of the email that bounced, wherever the report carries it."""
    ids = []
    for part in _parts(msg):
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global", "message/global-headers"):
            # the email package parses these into the returned message (or its headers)
            payload = part.get_payload()
            original = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(original, Message):
                ids.append(_unfold(original.get("Message-ID")))
        elif content_type == "text/rfc822-headers":
            ids.append(_unfold(HeaderParser().parsestr(_decoded(part)).get("Message-ID")))
    if blocks:  # Gmail repeats it in the per-message block of its reports
        ids.append(_unfold(blocks[0].get("X-Original-Message-ID")))
    ids.extend(_MESSAGE_ID.findall(quoted))
    unique = dict.fromkeys(i for i in ids if i.startswith("<") and i.endswith(">"))
    return tuple(unique)[:MESSAGE_ID_LIMIT]


# ---------------------------------------------------------------- acting on it

@dataclass(frozen=True)
class Result:
    """What ingesting one message did, for the command's report."""

    action: str  # bounce | transient | unsubscribe | ignored
    detail: str
    #: False when there was nothing left to do (the same message ingested again)
    changed: bool = False
    outbox_id: int | None = None


def ingest_message(message: bytes | Message) -> Result:
    """Classify one received message and record what it says in the current
    transaction (flushed, not committed: the caller commits)."""
    try:
        notice = read_message(message)
    except Exception as exc:  # noqa: BLE001 — the email package raises many types on broken input
        return Result("ignored", f"unreadable message ({type(exc).__name__}: {exc})")
    if notice.is_bounce:
        return _ingest_bounce(notice)
    if notice.unsubscribe_token:
        return _ingest_unsubscribe(notice.unsubscribe_token)
    return Result("ignored", "neither a delivery status notification nor an unsubscribe request")


def _ingest_bounce(notice: Notice) -> Result:
    failure = next((r for r in notice.recipients if r.permanent), None)
    delay = next((r for r in notice.recipients if r.transient), None)
    if failure is None and delay is None:
        if not notice.recipients:
            return Result("ignored", "a bounce that gives no delivery status")
        actions = ", ".join(sorted({r.action or "no action" for r in notice.recipients}))
        return Result("ignored", f"a delivery report without failure ({actions})")
    row, unknown = _outbox_row(notice)
    if failure is None:  # the relay keeps trying; a later report says how it ended
        where = f"outbox {row.id}" if row else "an unknown email"
        # The command's report names emails by id, never by address (it ends up in cron logs).
        return Result("transient", f"delayed, {where}: {delay.describe()}; nothing recorded",
                      outbox_id=row.id if row else None)
    if row is None:
        return Result("ignored", unknown)
    return _record_bounce(row, failure)


def _outbox_row(notice: Notice) -> tuple[OutboxMessage | None, str]:
    """The outbox row a report is about, or None and why it cannot be told."""
    forged = False
    for address in notice.verp_candidates:
        outbox_id = outbox_id_from(address)
        if outbox_id is None:
            forged = forged or bool(_VERP_SHAPE.search(address))
        elif (row := db.session.get(OutboxMessage, outbox_id)) is not None:
            return row, ""
    for original in notice.original_ids:
        if (row := _row_of_derived_message_id(original)) is not None:
            return row, ""
    if notice.original_ids:  # a Message-ID given before they were derived from the row, as stored
        row = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.message_id.in_(notice.original_ids))
            .order_by(OutboxMessage.id).limit(1)
        ).first()
        if row is not None:
            return row, ""
    if forged:
        return None, ("the bounce address's signature is wrong (forged, or signed with another "
                      "SECRET_KEY) and no known Message-ID is attached; nothing changed")
    return None, "cannot tell which email it is about (no signed bounce address, no known Message-ID)"


def _row_of_derived_message_id(message_id: str) -> OutboxMessage | None:
    """The row whose Message-ID this is, by primary key (the id derived from the row, even
    before its outcome was recorded); a made-up one, whose keyed hash does not match the
    row it names, names none."""
    outbox_id = outbox_id_in_message_id(message_id)
    row = db.session.get(OutboxMessage, outbox_id) if outbox_id is not None else None
    # compared as bytes: compare_digest refuses str with non-ASCII characters, which a report may carry
    if row is None or not hmac.compare_digest(message_id_for(row.id, row.created_at).encode(), message_id.encode()):
        return None
    return row


def _record_bounce(row: OutboxMessage, failure: Recipient) -> Result:
    invitation = row.invitation
    note = f"bounce report: {failure.describe()}"
    # One conditional UPDATE, so that two runs reading the same report at once
    # (overlapping cron jobs) record it once: the second one matches no row.
    recorded = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row.id, OutboxMessage.bounced_at.is_(None))
        .values(status="bounced", bounced_at=utcnow(),
                smtp_reply=func.coalesce(OutboxMessage.smtp_reply + "\n", "") + note)
    ).rowcount
    if not recorded:
        return Result("bounce", f"already recorded: outbox {row.id}", outbox_id=row.id)
    dead = means_dead_address(failure.status)
    # A closed campaign's counts are frozen: the late report is kept on the email only.
    if row.kind == "invitation" and invitation.campaign.status != "closed":
        db.session.execute(
            update(Invitation).where(Invitation.id == invitation.id, Invitation.status.not_in(ENGAGED))
            .values(status="bounced" if dead else "failed")
        )
    if dead:  # a refusal of this one email (5.7.1 policy…) leaves the address usable
        suppress_address(invitation.stakeholder_id, f"{HARD_BOUNCE}{failure.describe()}")
    return Result("bounce", f"bounce applied: outbox {row.id}: {failure.describe()}",
                  changed=True, outbox_id=row.id)


def _ingest_unsubscribe(token: str) -> Result:
    invitation = db.session.scalar(select(Invitation).where(Invitation.unsubscribe_hash == hash_token(token)))
    if invitation is None:
        return Result("ignored", "an unsubscribe request with an unknown token")
    if not opt_out(invitation, everything=True):
        return Result("unsubscribe", f"already recorded: opt-out of invitation {invitation.id}")
    return Result("unsubscribe", f"unsubscribed: invitation {invitation.id}, no more email of any campaign",
                  changed=True)


# ---------------------------------------------------------------- where messages come from

class Source(Protocol):
    """A mailbox to read: yields (key, raw message) and is told what became of each."""

    def __iter__(self) -> Iterator[tuple[str, bytes]]: ...

    def processed(self, key: str, *, remove: bool) -> None: ...

    def close(self) -> None: ...


class MboxSource:
    """An mbox file, read only: the MTA may be appending to it while we read."""

    def __init__(self, path: Path):
        self.box = mailbox.mbox(str(path), create=False)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for key in self.box.iterkeys():
            yield str(key + 1), self.box.get_bytes(key)

    def processed(self, key: str, *, remove: bool) -> None:
        """Nothing: the file is never rewritten (``--delete`` is refused for mbox)."""

    def close(self) -> None:
        self.box.close()


class MaildirSource:
    """A Maildir; with ``--delete`` the messages understood are removed."""

    def __init__(self, path: Path):
        self.box = mailbox.Maildir(str(path), factory=None, create=False)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for key in sorted(self.box.keys()):
            try:
                raw = self.box.get_bytes(key)
            except (KeyError, FileNotFoundError):  # removed by another reader meanwhile
                continue
            yield key, raw

    def processed(self, key: str, *, remove: bool) -> None:
        if remove:
            self.box.discard(key)

    def close(self) -> None:
        self.box.close()


class ImapSource:
    """The unseen messages of an IMAP folder; each processed one is flagged \\Seen,
    or \\Deleted (removed when the folder is closed) with ``--delete``.

    Messages are fetched with BODY.PEEK, which leaves \\Seen alone, and flagged
    only after their result is committed: a run that stops half-way leaves the
    rest unseen for the next run, and one already ingested is a no-op anyway.
    """

    def __init__(self, host: str, port: int | None, user: str, password: str, folder: str,
                 security: str):
        if security == "tls":
            self.imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                host, port or 993, ssl_context=ssl.create_default_context(), timeout=IMAP_TIMEOUT)
        else:
            self.imap = imaplib.IMAP4(host, port or 143, timeout=IMAP_TIMEOUT)
        try:
            if security == "starttls":
                self.imap.starttls(ssl_context=ssl.create_default_context())
            self.imap.login(user, password)
            status, detail = self.imap.select(_quoted_mailbox(folder))
            if status != "OK":
                raise imaplib.IMAP4.error(f"cannot open folder {folder!r}: {_text(detail)}")
        except Exception:  # not logged in, or no such folder: hang up before reporting it
            try:
                self.imap.shutdown()
            except OSError:  # a failed STARTTLS handshake has already closed the socket
                pass
            raise

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        status, data = self.imap.uid("SEARCH", None, "UNSEEN UNDELETED")
        if status != "OK":
            raise imaplib.IMAP4.error(f"SEARCH failed: {_text(data)}")
        for uid in (data[0] or b"").split():
            status, fetched = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            # no body: another reader expunged it since the search
            if status == "OK" and raw is not None:
                yield uid.decode(), raw

    def processed(self, key: str, *, remove: bool) -> None:
        self.imap.uid("STORE", key, "+FLAGS.SILENT", r"(\Deleted)" if remove else r"(\Seen)")

    def close(self) -> None:
        # Also after a lost connection, where these fail: nothing is lost then, as
        # messages not yet flagged are read again next time, and ingesting is idempotent.
        for step in (self.imap.close, self.imap.logout):  # CLOSE expunges those flagged \Deleted
            try:
                step()
            except (OSError, imaplib.IMAP4.error):
                pass


def _quoted_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: list) -> str:
    return " ".join(item.decode(errors="replace") if isinstance(item, bytes) else str(item) for item in data)


def ingest_source(source: Source, *, delete: bool, echo: Callable[[str], None]) -> Counter:
    """Ingest every message of a source, committing after each one; returns the counts.
    The report names emails by id: it is read in cron logs, where no address belongs.

    A message that was not understood is kept (flagged seen on IMAP) even with
    ``delete``: it may be a person writing to us, for someone to read.
    """
    from survey.privacy.logs import redact

    counts: Counter = Counter()
    for key, raw in source:
        result = ingest_message(raw)
        db.session.commit()
        if result.action in ("bounce", "unsubscribe") and not result.changed:
            counts["already recorded"] += 1  # a re-read mailbox: silent, nothing happened
        else:
            counts[result.action] += 1
            label = "ignored: " if result.action == "ignored" else ""
            echo(redact(f"{key}: {label}{result.detail}"))  # a relay's diagnostic may quote the address
        source.processed(key, remove=delete and result.action != "ignored")
    return counts


# ---------------------------------------------------------------- the command

bounces_cli = AppGroup("bounces", help="Bounces and unsubscribe requests that come back by email.")


@bounces_cli.command("ingest")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--imap", "imap_host", metavar="HOST", help="Read an IMAP folder instead of PATH.")
@click.option("--port", type=click.IntRange(1, 65535),
              help="IMAP port (default 993, or 143 with --starttls/--plain).")
@click.option("--user", help="IMAP login; the password comes from IMAP_PASSWORD, or is asked for.")
@click.option("--folder", default="INBOX", show_default=True, help="IMAP folder.")
@click.option("--starttls", is_flag=True, help="Plain IMAP upgraded with STARTTLS, instead of IMAP over TLS.")
@click.option("--plain", is_flag=True, help="No encryption at all; only for a server on this machine.")
@click.option("--delete", is_flag=True,
              help="Delete the messages understood (IMAP, Maildir); others are kept for a person to read.")
def ingest_command(path: Path | None, imap_host: str | None, port: int | None, user: str | None,
                   folder: str, starttls: bool, plain: bool, delete: bool) -> None:
    """Apply the bounces and unsubscribe requests in an mbox file, a Maildir or an IMAP folder.

    One line per message acted on or not understood, then a summary. Each message
    is committed on its own, and ingesting one again changes nothing.
    """
    if (path is None) == (imap_host is None):
        raise click.UsageError("Give a mailbox PATH (mbox file or Maildir) or --imap HOST, not both.")
    if path is not None:
        source = _local_source(path, delete)
    else:
        source = _imap_source(imap_host, port, user, folder, starttls, plain)
    try:
        counts = ingest_source(source, delete=delete, echo=click.echo)
    except (OSError, imaplib.IMAP4.error) as exc:  # e.g. the IMAP connection lost mid-run
        raise click.ClickException(f"stopped: {exc}; the messages reported above are recorded") from exc
    finally:
        source.close()
    click.echo(f"{sum(counts.values())} messages: bounces applied {counts['bounce']}, "
               f"unsubscribes {counts['unsubscribe']}, transient {counts['transient']}, "
               f"ignored {counts['ignored']}, already recorded {counts['already recorded']}")


def _local_source(path: Path, delete: bool) -> Source:
    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
            raise click.UsageError(f"{path} is a directory but not a Maildir (no cur/, new/, tmp/).")
        return MaildirSource(path)
    if delete:
        # Rewriting an mbox the MTA may append to at the same moment can lose mail.
        raise click.UsageError("--delete works with a Maildir or IMAP; an mbox file is only read.")
    return MboxSource(path)


def _imap_source(host: str, port: int | None, user: str | None, folder: str, starttls: bool,
                 plain: bool) -> Source:
    if not user:
        raise click.UsageError("--imap needs --user.")
    if starttls and plain:
        raise click.UsageError("Choose --starttls or --plain, not both.")
    if plain and not _is_loopback(host):
        raise click.UsageError("--plain would send the password unencrypted: it is only for a "
                               "server on this machine (localhost); use TLS or --starttls.")
    password = os.environ.get("IMAP_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():  # cron, systemd: nobody to answer a prompt
            raise click.UsageError("Set IMAP_PASSWORD: there is no terminal to ask for the password.")
        password = click.prompt(f"IMAP password for {user}", hide_input=True)
    security = "starttls" if starttls else "plain" if plain else "tls"
    try:
        return ImapSource(host, port, user, password, folder, security)
    except (OSError, imaplib.IMAP4.error) as exc:  # ssl.SSLError is an OSError
        # imaplib's LOGIN error carries the server's reply as bytes
        reason = _text(list(exc.args)) if isinstance(exc, imaplib.IMAP4.error) else exc
        raise click.ClickException(f"IMAP {host}: {reason}") from exc


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
