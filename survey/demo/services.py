"""Set up the embedded demo: idempotent, so ``make run`` can call it every time."""
from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import select

from survey.accounts.models import User
from survey.accounts.services import create_user
from survey.audiences.services import import_audience
from survey.extensions import db
from survey.questionnaires.services import load_builtin_questionnaires

DEMO_ADMIN = "admin@attest.localhost"
#: the demo's other accounts, so a whole claim can be reviewed, decided and audited
DEMO_STAFF = (("chair@attest.localhost", "chair", "Demo chair"),
              ("member1@attest.localhost", "committee", "Demo member 1"),
              ("member2@attest.localhost", "committee", "Demo member 2"),
              ("auditor@attest.localhost", "auditor", "Demo auditor"))
HERE = Path(__file__).parent


def set_up_demo(password_file: Path) -> tuple[str, str | None]:
    """Create the demo admin and staff (once; one shared password), load built-ins and
    the demo audience.

    Returns the admin's email and, the first time, the generated password (kept
    in ``password_file`` under instance/ so the next start can print it again).
    """
    password = None
    if db.session.scalar(select(User.id).where(User.email == DEMO_ADMIN)) is None:
        password = secrets.token_urlsafe(12)
        create_user(DEMO_ADMIN, password, "admin", name="Demo admin")
        password_file.write_text(password)
        password_file.chmod(0o600)
    elif password_file.exists():
        password = password_file.read_text().strip()
    if password:
        for email, role, name in DEMO_STAFF:
            if db.session.scalar(select(User.id).where(User.email == email)) is None:
                create_user(email, password, role, name=name)
    load_builtin_questionnaires()
    for name, kind in (("alumni.csv", "alumnus"), ("employees.csv", "employee")):
        with (HERE / name).open("rb") as audience:
            import_audience(audience, kind)
    db.session.commit()
    return DEMO_ADMIN, password
