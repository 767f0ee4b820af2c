"""Where a "next" parameter may send someone: a path on this site, never elsewhere."""
from __future__ import annotations

from urllib.parse import urlsplit


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None. Browsers (and werkzeug, building
    the Location header) drop tabs and line breaks and read a backslash as a slash, so
    "/\\t/evil.example" or "/\\\\evil.example" would become "//evil.example", another site:
    anything holding those is refused before the usual checks."""
    if not target or any(ord(char) < 32 or char in "\\\x7f" for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
