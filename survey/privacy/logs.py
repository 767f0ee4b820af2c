"""Keeping personal data out of the logs.

Log calls name rows by id, never by address or name, and Celery tasks take ids (the
worker logs a task's arguments). Three things would still write personal data whatever
the code says, and are closed here:

- SQL statements logged with their parameters and result rows (the ``sqlalchemy.engine``
  logger, which any root logger at INFO or DEBUG enables): held at WARNING unless
  SQLALCHEMY_ECHO asks for them on purpose; and SQL errors quoting their parameters
  (``hide_parameters`` in SQLALCHEMY_ENGINE_OPTIONS, config.py).
- Errors that quote a value anyway, e.g. PostgreSQL's "Key (email)=(…) already exists",
  logged with their traceback by Flask (a 500) or Celery (a failed task).
- Request paths holding a link's secret token (/s/, /u/, /e/), in those same messages
  and in the development server's access log.

For the last two, every log record of the process is made without them (a record
factory, so no logger can be missed and ``logging.config`` cannot undo it): email
addresses become ``[email]``, link tokens ``[token]``, in the message and the traceback.
"""
from __future__ import annotations

import logging
import re

from flask import Flask

#: anything shaped like an address (any script in the local part, as the importer accepts)
EMAIL = re.compile(r"[^\s@<>()\[\]{}'\",;:=]+@[^\s@<>()\[\]{}'\",;:=]+\.[^\s@<>()\[\]{}'\",;:=.]+")
#: the secret part of a survey, opt-out or evidence link
LINK_TOKEN = re.compile(r"(/[sue]/)[A-Za-z0-9_-]{16,}")


def redact(text: str) -> str:
    return LINK_TOKEN.sub(r"\1[token]", EMAIL.sub("[email]", text))


def _redacting(factory):
    def make(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        except Exception:  # noqa: BLE001 — a record that cannot be formatted is logging's to report
            pass
        return record

    make.redacts = True
    return make


def keep_personal_data_out_of_logs(app: Flask) -> None:
    if not app.config.get("SQLALCHEMY_ECHO"):
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "redacts", False):
        logging.setLogRecordFactory(_redacting(factory))
