"""Secrets handed to people (survey links, API keys) and their stored hashes.

Only a SHA-256 hash of a token is ever stored. Tokens are high-entropy random
values, so a fast hash is enough: there is nothing to brute-force.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token (256 bits by default)."""
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def derive_token(secret_key: str, purpose: str, nonce: str) -> str:
    """A token recomputable from the app secret and a stored random nonce.

    Workers need the survey link when they (re)send an email, yet the database
    holds only the link's hash; the link is derived from SECRET_KEY and a
    per-invitation random nonce, so a database dump alone never yields a link.
    """
    # hmac.digest: OpenSSL's one-shot HMAC, several times faster than an hmac.new object
    # (a campaign start derives two tokens per person)
    digest = hmac.digest(secret_key.encode(), f"{purpose}:{nonce}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def derive_hex_token(secret_key: str, purpose: str, nonce: str, length: int = 40) -> str:
    """Like ``derive_token``, in lower-case hex (160 bits by default), for tokens that
    travel in an email address, where some servers change the case."""
    return hmac.digest(secret_key.encode(), f"{purpose}:{nonce}".encode(), "sha256").hex()[:length]
