"""Who may see which staff page: one decorator, used by every staff view."""
from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from survey.extensions import db, login_manager


@login_manager.user_loader
def _load_user(user_id: str):
    from survey.accounts.models import User

    return db.session.get(User, int(user_id))


def role_required(*roles: str):
    """Login required, and the user's role must be one of ``roles`` (else 403)."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
