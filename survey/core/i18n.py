"""Messages that services write for people: translated when read, escaped like any text.

Services mark their messages with ``flask_babel.lazy_gettext`` (``_l``) and let the reader's
language decide: a page renders a message in the page's language, the API and the logs in
English. ``LazyText`` is the form these messages travel in.
"""
from __future__ import annotations

from collections.abc import Iterable

from flask_babel import force_locale
from flask_babel.speaklater import LazyString
from markupsafe import escape


class LazyText(LazyString):
    """A lazily translated text that templates escape.

    flask_babel's ``LazyString`` declares itself markup (its ``__html__`` returns the
    text as is): fine for the application's own labels, not for a message that quotes
    what someone typed or uploaded (an email address, a CSV cell, a YAML snippet).
    """

    def __html__(self) -> str:
        return str(escape(str(self)))


def as_text(message):
    """``message`` as a ``LazyText`` if it is lazy; a plain string stays as it is."""
    if isinstance(message, LazyString) and not isinstance(message, LazyText):
        return LazyText(str, message)
    return message


def lazy_join(separator: str, parts: Iterable) -> LazyText:
    """The parts (texts or lazy texts) joined when read, each in the reader's language."""
    return LazyText(_join, separator, tuple(parts))


def _join(separator: str, parts: tuple) -> str:
    return separator.join(str(part) for part in parts)


def in_english(message) -> str:
    """The message as plain English text: for the API, the logs and the terminal."""
    with force_locale("en"):
        return str(message)
