"""The embedded mail catcher's inbox, for admins trying Attest on one machine."""
from __future__ import annotations

import mailbox
import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template

from survey.core.authorisation import allowed

bp = Blueprint("mail", __name__, template_folder="templates", url_prefix="/admin/mail")


def _maildir() -> mailbox.Maildir | None:
    folder = current_app.config.get("MAIL_CATCHER_DIR")
    if not folder or not Path(folder, "cur").is_dir():
        return None
    return mailbox.Maildir(folder, factory=None, create=False)


def _parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


#: a Maildir key as Python's mailbox writes it: seconds, microseconds (not zero-padded), pid, counter
_KEY = re.compile(r"(\d+)\.M(\d+)P\d+Q(\d+)")


def _delivered(key: str) -> tuple[int, int, int]:
    """When a message was caught, from its key, as numbers: compared as text, 0.098 s came
    after 0.716 s ("M98000" > "M715951")."""
    match = _KEY.match(key)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


@bp.route("/")
@allowed("read", "mail")
def caught():
    box = _maildir()
    messages = []
    if box is not None:
        for key in box.iterkeys():
            with box.get_file(key) as handle:
                headers = BytesParser(policy=policy.default).parse(handle, headersonly=True)
            messages.append({"key": key, "to": headers["To"], "subject": headers["Subject"], "date": headers["Date"]})
        messages.sort(key=lambda m: _delivered(m["key"]), reverse=True)
    return render_template("mail/caught.html", messages=messages[:200], total=len(messages),
                           enabled=box is not None)


@bp.route("/<key>")
@allowed("read", "mail")
def show(key: str):
    box = _maildir()
    if box is None:
        abort(404)
    try:
        with box.get_file(key) as handle:
            message = _parse(handle.read())
    except (KeyError, FileNotFoundError):
        abort(404)
    text = message.get_body(preferencelist=("plain",))
    return render_template("mail/show.html", message=message, text=text.get_content() if text else "")
