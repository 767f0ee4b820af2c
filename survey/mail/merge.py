"""Invitations and reminders by mail merge.

A batch sends the same email to hundreds of people, who differ only by their name,
their two links and a few headers. Rendering both templates and serialising the
MIME tree costs milliseconds per email, more than the SMTP exchange itself; so each
distinct email of a batch (campaign, kind, language, time zone, started or not) is
rendered and serialised once, by Jinja and the email library, with markers where a
person's values go, and each person's copy replaces the markers in those bytes.
Bodies are base64 (7-bit clean on any relay, lines of 76 characters), encoded per
person; markers are plain letters, which neither HTML escaping nor header folding
changes.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime as rfc2822_date
from email.utils import formataddr
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import escape

from survey.core.types import utcnow
from survey.mail.addresses import unsubscribe_mailto

NAME = "ATTESTMERGENAME"
LINK_TOKEN = "ATTESTMERGELINK"
UNSUBSCRIBE_TOKEN = "ATTESTMERGEUNSUB"
MESSAGE_ID = "<ATTESTMERGEID@merge.invalid>"
TO = "ATTESTMERGETO"
TEXT_BODY = "ATTESTMERGEBODYPLAIN"
HTML_BODY = "ATTESTMERGEBODYHTML"


@dataclass(frozen=True)
class _Skeleton:
    head: bytes  # the headers and both part headers, up to the text body
    text: str  # the text body, with markers
    html: str
    middle: bytes  # between the two bodies
    tail: bytes


#: skeletons kept per process, from batch to batch (a campaign's batches render the same
#: emails); past this many distinct ones, they are rendered afresh
KEPT_SKELETONS = 256


class Merge:
    """Builds a batch's invitations and reminders.

    Skeletons are kept in the app (``attest.mail_skeletons``) across batches, keyed by
    everything they are rendered from: the campaign's audience, closing time and
    questionnaire version, the kind of email, the person's language and time zone,
    and the addresses and base URL configured.
    """

    def __init__(self):
        self._skeletons: dict[tuple, _Skeleton] = current_app.extensions.setdefault("attest.mail_skeletons", {})

    def email(self, kind: str, invitation, person, campaign, message_id: str) -> tuple[str, bytes]:
        """The recipient's address and the email's bytes, ready for SMTP (CRLF line ends)."""
        from survey.campaigns.services import invitation_token, unsubscribe_token
        from survey.mail.sending import ascii_address

        recipient = ascii_address(person.email)
        if not recipient.isascii():  # a non-ASCII local part needs SMTPUTF8, which we do not use
            raise ValueError(f"the address {person.email!r} needs SMTPUTF8")
        started = kind == "reminder" and invitation.started_at is not None
        config = current_app.config
        key = (campaign.id, campaign.audience_kind, campaign.closes_at, campaign.questionnaire_id, kind, started,
               person.locale, person.timezone, config["MAIL_FROM"], config["BASE_URL"],
               config["MAIL_UNSUBSCRIBE_ADDRESS"])
        skeleton = self._skeletons.get(key)
        if skeleton is None:
            if len(self._skeletons) >= KEPT_SKELETONS:
                self._skeletons.clear()  # one step, safe beside another sending thread
            skeleton = self._skeletons[key] = _skeleton(kind, started, person.locale, person.timezone, campaign)
        name = person.first_name or person.display_name
        link, opt_out = invitation_token(invitation.token_nonce), unsubscribe_token(invitation.token_nonce)

        def body(template: str, person_name: str) -> bytes:
            # The name last: a name that happened to contain a marker stays as typed.
            filled = template.replace(LINK_TOKEN, link).replace(UNSUBSCRIBE_TOKEN, opt_out).replace(NAME, person_name)
            # Text is encoded in its canonical form, CRLF line ends (RFC 2045), as SMTP carries it.
            canonical = filled.replace("\r\n", "\n").replace("\n", "\r\n").encode()
            return base64.encodebytes(canonical).replace(b"\n", b"\r\n")

        head = (skeleton.head.replace(TO.encode(), formataddr((person.display_name, recipient), "utf-8").encode())
                .replace(MESSAGE_ID.encode(), message_id.encode())
                .replace(UNSUBSCRIBE_TOKEN.encode(), opt_out.encode()))
        date = f"Date: {rfc2822_date(utcnow())}\r\n".encode()
        return recipient, b"".join((date, head, body(skeleton.text, name), skeleton.middle,
                                    body(skeleton.html, str(escape(name))), skeleton.tail))


def _skeleton(kind: str, started: bool, locale: str, timezone: str, campaign) -> _Skeleton:
    """Render the email once for these people, markers in place of their values."""
    from survey.mail.sending import survey_link, unsubscribe_link

    subject, text, html = content(
        kind, started, locale, timezone, campaign, SimpleNamespace(first_name=NAME, display_name=NAME),
        survey_link(LINK_TOKEN), unsubscribe_link(UNSUBSCRIBE_TOKEN))
    email = EmailMessage()
    email["Subject"] = subject
    email["From"] = current_app.config["MAIL_FROM"]
    email["To"] = TO
    email["Message-ID"] = MESSAGE_ID
    email["List-Unsubscribe"] = (f"<{unsubscribe_link(UNSUBSCRIBE_TOKEN)}>, "
                                 f"<mailto:{unsubscribe_mailto(UNSUBSCRIBE_TOKEN)}>")
    email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    email["Auto-Submitted"] = "auto-generated"
    email.set_content("", charset="utf-8", cte="base64")
    email.add_alternative("", subtype="html", charset="utf-8", cte="base64")
    plain, rich = email.iter_parts()
    plain.set_payload(TEXT_BODY)
    rich.set_payload(HTML_BODY)
    serialised = email.as_bytes(policy=SMTP_POLICY)
    head, rest = serialised.split(TEXT_BODY.encode() + b"\r\n")
    middle, tail = rest.split(HTML_BODY.encode() + b"\r\n")
    return _Skeleton(head, text, html, middle, tail)


def content(kind: str, started: bool, locale: str, timezone: str, campaign, person, link: str,
            opt_out_link: str) -> tuple[str, str, str]:
    """The subject, text and HTML of an invitation or a reminder ("finish your answers"
    for someone who started), in ``locale``, with the closing time in ``timezone``."""
    title = campaign.questionnaire.title(locale)
    closes = format_datetime(campaign.closes_at, "long", tzinfo=ZoneInfo(timezone), locale=locale)
    context = {"person": person, "campaign": campaign, "link": link, "unsubscribe_link": opt_out_link,
               "closes": closes, "title": title, "kind": kind, "started": started}
    with force_locale(locale):
        if kind == "reminder" and started:
            subject = _("Finish your answers: %(title)s", title=title)
        elif kind == "reminder":
            subject = _("Reminder: %(title)s", title=title)
        else:
            subject = _("%(title)s: a few minutes of your time", title=title)
        text = render_template("mail/invitation.txt", **context)
        html = render_template("mail/invitation.html", subject=subject, locale=locale, **context)
    return subject, text, html
