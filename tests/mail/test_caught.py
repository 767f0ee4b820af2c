"""The embedded mail catcher's inbox (``make run``): what an admin trying Attest reads."""
from __future__ import annotations

import re
from pathlib import Path

import pytest


@pytest.fixture
def admin(client, create_user, login):
    login(create_user(role="admin"))
    return client


def _catch(folder: Path, key: str, subject: str) -> None:
    for part in ("new", "cur", "tmp"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    (folder / "new" / key).write_bytes(
        f"To: ada@example.org\r\nSubject: {subject}\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\nHello\r\n".encode())


def test_the_newest_email_comes_first_to_the_microsecond(app, admin, tmp_path, monkeypatch):
    """Maildir keys carry microseconds without zero-padding: as text, 0.098 s sorts after 0.716 s."""
    monkeypatch.setitem(app.config, "MAIL_CATCHER_DIR", str(tmp_path))
    _catch(tmp_path, "1796378400.M715951P10Q1.attest", "older")
    _catch(tmp_path, "1796378401.M98000P10Q2.attest", "newest")
    _catch(tmp_path, "1796378400.M98000P10Q3.attest", "oldest")
    page = admin.get("/admin/mail/").get_data(as_text=True)
    assert re.findall(r"(newest|older|oldest)", page) == ["newest", "older", "oldest"]


def test_the_date_reads_in_the_admin_s_language(app, admin, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_CATCHER_DIR", str(tmp_path))
    _catch(tmp_path, "1796378400.M715951P10Q1.attest", "hello")
    page = admin.get("/admin/mail/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Fri, 04 Dec 2026" not in page and "4 déc. 2026" in page
