"""Loading the logged-in user. Who may do what is survey.core.authorisation's business
(its policy table and its ``allowed`` decorator, used by every staff view)."""
from __future__ import annotations

from survey.extensions import db, login_manager


@login_manager.user_loader
def _load_user(user_id: str):
    """The user of a session, if its session token is still the user's (``User.get_id``):
    a logout or a password change replaces the token, which ends every other session."""
    import hmac

    from survey.accounts.models import User

    user_key, _, token = user_id.partition(":")
    if not (user_key.isascii() and user_key.isdigit()) or not token:
        return None  # a session from before session tokens, or a tampered one
    user = db.session.get(User, int(user_key))
    if user is None or not user.active or not hmac.compare_digest(user.session_token, token):
        return None
    return user
