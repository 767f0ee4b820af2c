"""Addresses that carry a token: the VERP return path of each email, and the
mailto: address of its List-Unsubscribe header.

A bounce comes back to the envelope sender of the email it is about; giving each
outbox row its own signed envelope sender (``bounces+<id>.<sig>@domain``, VERP)
ties every bounce to one email, hence one invitation, whatever the bouncing
server writes in its report. The signature stops anyone from forging a bounce
for someone else's email by guessing ids.
"""
from __future__ import annotations

import hmac
import re
from datetime import datetime
from email.utils import parseaddr
from functools import lru_cache

from flask import current_app

SIGNATURE_LENGTH = 16


def mail_domain() -> str:
    return _domain(current_app.config["MAIL_FROM"])


@lru_cache(maxsize=8)
def _domain(mail_from: str) -> str:
    """Parsed once per configured sender: the sending loop asks for it twice per email."""
    return parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"


def _split(configured: str, default_local: str) -> tuple[str, str]:
    return _split_address(configured, default_local, current_app.config["MAIL_FROM"])


@lru_cache(maxsize=8)
def _split_address(configured: str, default_local: str, mail_from: str) -> tuple[str, str]:
    """Worked out once per configuration: the sending loop asks for it for every email."""
    address = configured or f"{default_local}@{_domain(mail_from)}"
    local, _at, domain = address.rpartition("@")
    return local, domain


def _signature(outbox_id: int) -> str:
    return _hmac(f"verp:{outbox_id}")[:SIGNATURE_LENGTH]


def _hmac(text: str) -> str:
    return hmac.digest(current_app.config["SECRET_KEY"].encode(), text.encode(), "sha256").hex()


def message_id_for(outbox_id: int, created_at: datetime) -> str:
    """An email's Message-ID, derived from its outbox row: the same at every attempt, so
    a resend (after a worker died before recording that it sent) is the same email,
    which mailboxes fold, without writing the id to the database before sending.

    The row's creation time and the keyed hash keep it unique where ids repeat: another
    install (another SECRET_KEY), or a database restored from a backup whose later ids
    are given again to other emails.
    """
    stamp = _hmac(f"message-id:{outbox_id}:{created_at.isoformat()}")[:20]
    return f"<{outbox_id}.{stamp}@{mail_domain()}>"


_DERIVED_MESSAGE_ID = re.compile(r"<(\d{1,18})\.[0-9a-f]{20}@[^<>@\s]+>")


def outbox_id_in_message_id(message_id: str) -> int | None:
    """The outbox id a Message-ID of ``message_id_for``'s shape names, or None. Only the
    shape: whether it is really that row's is for ``message_id_for`` to say."""
    match = _DERIVED_MESSAGE_ID.fullmatch(message_id or "")
    return int(match.group(1)) if match else None


def return_path(outbox_id: int) -> str:
    """The envelope sender (MAIL FROM) for one outbox row."""
    local, domain = _split(current_app.config["MAIL_BOUNCE_ADDRESS"], "bounces")
    return f"{local}+{outbox_id}.{_signature(outbox_id)}@{domain}"


_VERP = re.compile(r"\+(\d{1,18})\.([0-9a-f]{%d})@" % SIGNATURE_LENGTH, re.IGNORECASE)


def outbox_id_from(address: str) -> int | None:
    """The outbox id in a VERP address, or None if there is none or its signature is wrong."""
    match = _VERP.search(address or "")
    if not match:
        return None
    outbox_id = int(match.group(1))
    if not hmac.compare_digest(match.group(2).lower(), _signature(outbox_id)):
        return None
    return outbox_id


def unsubscribe_mailto(token: str) -> str:
    """The address a mail client writes to when the person clicks "unsubscribe"."""
    local, domain = _split(current_app.config["MAIL_UNSUBSCRIBE_ADDRESS"], "unsubscribe")
    return f"{local}+{token}@{domain}"


_UNSUBSCRIBE = re.compile(r"\+([0-9a-f]{40})@", re.IGNORECASE)


def unsubscribe_token_from(address: str) -> str | None:
    match = _UNSUBSCRIBE.search(address or "")
    return match.group(1).lower() if match else None
