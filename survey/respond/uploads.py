"""Files a respondent attaches (evidence): checked by content, stored outside the web root.

A file is kept only if its first bytes say PDF, PNG or JPEG, whatever its name
claims; it is stored under a random name in ``instance/evidence`` (never served
by the static route) and recorded in the answers with its SHA-256 and size.
Serving evidence to the committee is the committee area's job.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import FileStorage

from survey.core.errors import ValidationFailed

#: leading bytes → media type; the only kinds accepted
SIGNATURES = {
    b"%PDF-": "application/pdf",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
}


def evidence_dir() -> Path:
    folder = Path(current_app.config.get("EVIDENCE_DIR") or Path(current_app.instance_path) / "evidence")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sniff_type(head: bytes) -> str | None:
    return next((kind for magic, kind in SIGNATURES.items() if head.startswith(magic)), None)


def display_name(name: str) -> str:
    """The file's name as its owner knows it ("Contrat été.pdf"), for pages and downloads
    only (the file is stored under a random name): no folder part, no control or invisible
    characters, at most 100 characters; werkzeug's secure_filename dropped every accent."""
    name = unicodedata.normalize("NFC", re.split(r"[/\\]", name)[-1])
    name = "".join(" " if char.isspace() else char for char in name if unicodedata.category(char)[0] != "C")
    name = " ".join(name.split()).strip(" .")
    return name[:100] or "evidence"


def store_upload(upload: FileStorage) -> dict:
    """Store an uploaded evidence file; returns what the answers keep about it."""
    limit = current_app.config["EVIDENCE_MAX_BYTES"]
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ValidationFailed(_l("The file is larger than %(size)s MB.", size=round(limit / (1024 * 1024), 1)))
    media_type = sniff_type(data[:8])
    if media_type is None:
        raise ValidationFailed(_l("Only PDF, PNG and JPEG files are accepted."))
    stored_as = secrets.token_hex(16)
    (evidence_dir() / stored_as).write_bytes(data)
    return {
        "stored_as": stored_as,
        "filename": display_name(upload.filename or ""),
        "media_type": media_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def attach_files(form, saved: dict) -> dict:
    """Answers for the visible file questions: a new upload, or the file saved before. If
    one upload is refused, those stored before it in this call are removed: no file is
    ever left that no answer names (nothing could find it again, an erasure included)."""
    from survey.privacy.data import remove_files

    files, stored = {}, []
    for field in form.question_fields():
        if field.question["type"] != "file" or not field.visible:
            continue
        upload = field.data
        if isinstance(upload, FileStorage) and upload.filename:
            try:
                files[field.name] = store_upload(upload)
            except ValidationFailed as exc:
                remove_files(stored)
                raise ValidationFailed(exc.message, field=field.name) from None
            stored.append(files[field.name]["stored_as"])
        elif saved.get(field.name):
            files[field.name] = saved[field.name]
    return files


def forget_unnamed(before: dict, sent: dict, recorded: bool) -> None:
    """After the commit of ``sent`` (``recorded``) or its refusal, remove the files that no
    answer or evidence names any more: of the draft saved ``before``, one replaced by another
    or whose question was hidden since; of ``sent``, those stored for answers then not
    recorded. Without it they stayed on disk for ever, found by nothing, an erasure
    included."""
    from sqlalchemy import select

    from survey.claims.models import Evidence
    from survey.extensions import db
    from survey.privacy.data import remove_files, stored_files

    kept = set(stored_files(sent if recorded else before))
    candidates = (set(stored_files(before)) | set(stored_files(sent))) - kept
    if candidates:
        named = set(db.session.scalars(select(Evidence.stored_as).where(Evidence.stored_as.in_(candidates))))
        remove_files(candidates - named)
