"""Evidence uploads: checked by their first bytes whatever the name says, size-limited
with a clear message and nothing stored, and served only as what the bytes are (PDF, PNG,
JPEG), with nosniff, as an attachment or inside the sandboxed claim page; never as a page."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from survey.claims.models import Evidence
from survey.claims.services import claim_token
from survey.extensions import db
from tests.committee.conftest import PDF, PNG

POLYGLOT = b"%PDF-1.4\n<html><body><script>alert(document.cookie)</script></body></html>\n%%EOF\n"
HOSTILE_NAME = '"><script>alert(1)</script>; filename=../../x.html; Set-Cookie: a=b;.pdf'


@pytest.fixture
def claim(committee, make_claims):  # noqa: F811
    [claim] = make_claims()
    return claim


def _stored(app) -> set[str]:
    folder = Path(app.config["EVIDENCE_DIR"])
    return {path.name for path in folder.iterdir()} if folder.exists() else set()


def _files(claim) -> list[Evidence]:
    db.session.expire_all()
    return db.session.scalars(select(Evidence).where(Evidence.claim_id == claim.id, Evidence.kind == "file")
                              .order_by(Evidence.id)).all()


def _upload(browser, claim, content: bytes, name: str):
    client = browser(None)
    path = f"/e/{claim_token(claim.token_nonce)}"
    html = client.get(path).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', html).group(1)
    return client.post(f"{path}/file", data={"csrf_token": csrf, "file": (io.BytesIO(content), name)},
                       content_type="multipart/form-data")


@pytest.mark.parametrize("content, name", [
    (b"<html><script>alert(1)</script></html>", "contract.pdf"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "photo.png"),
    (b"<?xml version='1.0'?><svg onload='alert(1)'/>", "photo.svg"),
    (b"GIF89a\x01\x00\x01\x00", "photo.jpg"),
    (b" %PDF-1.4 but a space first", "contract.pdf"),
    (b"PK\x03\x04 a zip, a docx", "contract.pdf"),
    (b"", "empty.pdf"),
])
def test_only_pdf_png_and_jpeg_bytes_are_kept_whatever_the_name(app, claim, browser, content, name):
    before = _stored(app)
    response = _upload(browser, claim, content, name)
    assert response.status_code == 422
    assert "Only PDF, PNG and JPEG files are accepted." in response.get_data(as_text=True)
    assert _files(claim) == [] and _stored(app) == before


def test_a_file_over_the_limit_is_refused_clearly_and_nothing_is_stored(app, claim, browser, monkeypatch):
    monkeypatch.setitem(app.config, "EVIDENCE_MAX_BYTES", 4096)
    before = _stored(app)
    response = _upload(browser, claim, PDF + b"0" * 5000, "big.pdf")
    assert response.status_code == 422
    assert "The file is larger than" in response.get_data(as_text=True)
    assert _files(claim) == [] and _stored(app) == before


def test_a_request_over_the_server_limit_is_a_413_page_and_nothing_is_stored(app, claim, browser, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 8192)
    before = _stored(app)
    response = _upload(browser, claim, PDF + b"0" * 20000, "huge.pdf")
    assert response.status_code == 413
    assert response.mimetype == "text/html" and "<html" in response.get_data(as_text=True)
    assert _files(claim) == [] and _stored(app) == before


def test_a_pdf_holding_html_is_only_ever_served_as_a_pdf(app, claim, browser):
    assert _upload(browser, claim, POLYGLOT, "cv.pdf").status_code == 303
    [item] = _files(claim)
    assert item.media_type == "application/pdf"
    reviewer = browser(next(r.reviewer for r in claim.reviews if r.active))
    download = reviewer.get(f"/committee/evidence/{item.id}")
    assert download.status_code == 200 and download.data == POLYGLOT
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in download.headers["Content-Security-Policy"]
    inline = reviewer.get(f"/committee/evidence/{item.id}?inline=1")
    assert inline.headers["Content-Type"] == "application/pdf"  # read by the PDF viewer, never as a page
    assert inline.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in inline.headers["Content-Security-Policy"]
    assert "script-src" not in inline.headers["Content-Security-Policy"]


@pytest.mark.parametrize("content, media_type", [(PDF, "application/pdf"), (PNG, "image/png"),
                                                 (b"\xff\xd8\xff\xe0" + b"\x00" * 16, "image/jpeg")])
def test_a_hostile_file_name_is_plain_text_in_the_header_and_the_page(app, claim, browser, content, media_type):
    response = _upload(browser, claim, content, HOSTILE_NAME)
    assert response.status_code == 303, re.findall(r"error\">([^<]*)<", response.get_data(as_text=True))
    [item] = _files(claim)
    assert item.media_type == media_type
    assert not set(item.filename) & set("<>\"\r\n;/\\")
    reviewer = browser(next(r.reviewer for r in claim.reviews if r.active))
    download = reviewer.get(f"/committee/evidence/{item.id}")
    assert download.headers["Content-Type"] == media_type
    disposition = download.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "<" not in disposition
    assert "Set-Cookie" not in download.headers
    page = reviewer.get(f"/committee/claims/{claim.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
