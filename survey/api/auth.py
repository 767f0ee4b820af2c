"""Bearer API keys: every API route requires one, and the action must be one the
authorisation table gives to API keys (survey.core.authorisation)."""
from __future__ import annotations

from functools import wraps

from flask import abort, g, request

from survey.accounts.services import api_key_for
from survey.core.authorisation import can, roles_for
from survey.extensions import db


def _authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    api_key = api_key_for(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
    if api_key is None:
        abort(401, description="A valid API key is required: Authorization: Bearer <key>.")
    db.session.commit()  # last_used_at
    g.api_key = api_key
    return api_key


def api_allowed(action: str, kind: str):
    """A valid key (else 401) whose scope covers (action, kind) in the policy table (else 403)."""
    roles_for(action, kind)  # an unknown (action, kind) fails at import

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not can(_authenticate(), action, kind):
                abort(403, description="This API key may not do this.")
            return view(*args, **kwargs)

        wrapped.permission = (action, kind)
        return wrapped

    return decorator
