"""The password policy: long enough, not a common password, not only the email or the product's name.

The common passwords are Royce Williams' list of the 20,000 most used ones, as Django
ships it (``data/common-passwords.txt.gz``; its README says where it comes from). The
file's hash is checked when it is read, so a truncated or swapped list fails loudly
instead of quietly letting every password through.
"""
from __future__ import annotations

import gzip
import hashlib
import re
from functools import cache
from pathlib import Path

from flask_babel import lazy_gettext as _l

from survey.core.errors import ValidationFailed

MIN_PASSWORD_LENGTH = 12
PRODUCT_NAME = "attest"
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"
COMMON_PASSWORDS_SHA256 = "3c1baed62596de36860824eb3f436d5932d37ca8b06e59df78f5a44ec175afe4"


@cache
def common_passwords() -> frozenset[str]:
    data = COMMON_PASSWORDS_FILE.read_bytes()
    if hashlib.sha256(data).hexdigest() != COMMON_PASSWORDS_SHA256:
        raise RuntimeError(f"{COMMON_PASSWORDS_FILE} is not the expected list (see data/README.md)")
    return frozenset(line.strip() for line in gzip.decompress(data).decode("utf-8").splitlines() if line.strip())


def _letters(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalpha())


def _only_names(password: str, email: str | None) -> bool:
    """Made only of the product's name and the email's local part (or pieces of it),
    once digits, spaces and punctuation are set aside: "Attest2026!!", "ada.lovelace99"."""
    letters = _letters(password)
    if not letters:
        return False
    words = {PRODUCT_NAME}
    if email:
        local = email.split("@", 1)[0]
        words.add(_letters(local))
        words.update(_letters(piece) for piece in re.split(r"[._+\-]+", local))
    words = sorted((w for w in words if len(w) >= 3), key=len, reverse=True)
    return re.fullmatch("(?:" + "|".join(map(re.escape, words)) + ")+", letters) is not None


def check_password_policy(password: str, email: str | None = None) -> None:
    """Refuse, with a message that says why, a password that breaks the policy."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(_l("A password needs at least %(num)d characters.", num=MIN_PASSWORD_LENGTH))
    if password.strip().casefold() in common_passwords():
        raise ValidationFailed(_l("This password is on a list of common passwords, which attackers try first. "
                                  "Choose another one."))
    if _only_names(password, email):
        raise ValidationFailed(_l("A password cannot be made only of your email address or the name of this "
                                  "application. Choose another one."))
