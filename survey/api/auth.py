"""Bearer API keys: every API route requires one."""
from __future__ import annotations

from functools import wraps

from flask import abort, g, request

from survey.accounts.services import api_key_for
from survey.extensions import db


def api_key_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        api_key = api_key_for(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
        if api_key is None:
            abort(401, description="A valid API key is required: Authorization: Bearer <key>.")
        db.session.commit()  # last_used_at
        g.api_key = api_key
        return view(*args, **kwargs)

    return wrapped
