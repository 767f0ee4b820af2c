"""Accounts: creating users, checking passwords (argon2id), API keys."""
from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from survey.accounts.models import ROLE_VALUES, ApiKey, User
from survey.accounts.passwords import MIN_PASSWORD_LENGTH, check_password_policy  # noqa: F401  (re-exported)
from survey.audiences.importer import needs_smtputf8
from survey.core.errors import ValidationFailed
from survey.core.tokens import hash_token, new_token
from survey.core.types import utcnow
from survey.extensions import db

#: OWASP ASVS 5 (and the OWASP password storage cheat sheet): argon2id, t=2, 19 MiB, p=1 at least
ASVS_MINIMUM = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}


def hasher() -> PasswordHasher:
    """argon2id with the configured parameters (ARGON2_*: by default argon2-cffi's, RFC 9106's
    low-memory profile, above ASVS's minimum). A hash made with other parameters is redone
    at its owner's next login."""
    from flask import current_app

    config = current_app.config
    return _hasher(config["ARGON2_TIME_COST"], config["ARGON2_MEMORY_KIB"], config["ARGON2_PARALLELISM"])


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    wanted = {"time_cost": time_cost, "memory_cost": memory_cost, "parallelism": parallelism}
    if any(wanted[name] < least for name, least in ASVS_MINIMUM.items()):
        raise RuntimeError(f"ARGON2_* parameters {wanted} are below OWASP ASVS's minimum {ASVS_MINIMUM}")
    return PasswordHasher(**wanted)


@lru_cache(maxsize=4)
def _dummy_hash(chosen: PasswordHasher) -> str:
    """Verified against when the email is unknown, so both paths take the same time."""
    return chosen.hash("not a real password, only for timing")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(email: str, password: str, role: str, name: str = "") -> User:
    email = normalise_email(email)
    if role not in ROLE_VALUES:
        raise ValidationFailed(_l("Unknown role “%(role)s”; use one of %(roles)s.",
                                  role=role, roles=", ".join(ROLE_VALUES)))
    if "@" not in email:
        raise ValidationFailed(_l("“%(email)s” is not an email address.", email=email))
    if needs_smtputf8(email):  # the importer's rule for people: our emails could never reach it
        raise ValidationFailed(_l("“%(email)s” has an accented or other non-ASCII character before the @: "
                                  "our emails cannot be sent to it.", email=email))
    check_password_policy(password, email)
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ValidationFailed(_l("A user with the email %(email)s already exists.", email=email))
    user = User(email=email, name=name, role=role, password_hash=hasher().hash(password))
    db.session.add(user)
    db.session.flush()
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user with these credentials, or None; rehashes outdated hashes."""
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    chosen = hasher()
    try:
        chosen.verify(user.password_hash if user else _dummy_hash(chosen), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if chosen.check_needs_rehash(user.password_hash):
        user.password_hash = chosen.hash(password)
    return user


def verify_password(user: User, password: str) -> bool:
    """Whether ``password`` is this user's; rehashes an outdated hash (the caller commits)."""
    chosen = hasher()
    try:
        chosen.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if chosen.check_needs_rehash(user.password_hash):
        user.password_hash = chosen.hash(password)
    return True


def set_password(user: User, password: str) -> None:
    """A new password under the policy; every session of the user ends (``User.end_sessions``)."""
    check_password_policy(password, user.email)
    user.password_hash = hasher().hash(password)
    user.end_sessions()


def change_password(user: User, current: str, new: str) -> None:
    """The user's own change: the current password first, then the policy."""
    if not verify_password(user, current):
        raise ValidationFailed(_l("This is not your current password."), field="current_password")
    if new == current:
        raise ValidationFailed(_l("The new password is the same as the current one."), field="new_password")
    try:
        set_password(user, new)
    except ValidationFailed as exc:
        exc.details.setdefault("field", "new_password")
        raise


API_KEY_PREFIX = "att_"


def create_api_key(name: str, *, read_only: bool = False) -> tuple[ApiKey, str]:
    """A new key; the plain key is returned once and only its hash is stored."""
    from survey.audit.chain import record

    plain = API_KEY_PREFIX + new_token(32)
    key = ApiKey(name=name, key_hash=hash_token(plain), prefix=plain[:12], read_only=read_only)
    db.session.add(key)
    db.session.flush()
    record("api_key_created", f"api-key:{key.id}", data={"name": name, "prefix": key.prefix, "read_only": read_only})
    return key, plain


def api_key_for(plain: str) -> ApiKey | None:
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_token(plain)))
    if key is None or key.revoked_at is not None:
        return None
    key.last_used_at = utcnow()
    return key
