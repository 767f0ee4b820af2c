"""Evidence downloads: only for those who may read the claim, as an attachment unless
shown in the page (PDF, PNG, JPEG only), never sniffed or cached, always audited."""
from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select

from survey.audit.chain import verify
from survey.audit.models import AuditEvent
from survey.claims import services
from survey.extensions import db
from survey.respond.uploads import evidence_dir
from tests.committee.conftest import ANSWERS, PDF, PNG, reload, stored_file

CSP = "default-src 'none'; img-src 'self'; object-src 'self'; sandbox"


@pytest.fixture
def three(create_user):
    return [create_user(role="committee") for _ in range(3)]


@pytest.fixture
def pdf(three, make_claims):
    [claim] = make_claims(with_file=True)
    return next(e for e in claim.evidence if e.kind == "file")


def _downloads(evidence) -> list[AuditEvent]:
    db.session.expire_all()
    return db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "evidence_downloaded", AuditEvent.subject == f"evidence:{evidence.id}")
        .order_by(AuditEvent.id)).all()


def test_a_download_is_an_attachment_never_sniffed_nor_cached(pdf, three, browser):
    response = browser(three[0]).get(f"/committee/evidence/{pdf.id}")
    assert response.status_code == 200
    assert response.data == PDF
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename=contract.pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Content-Security-Policy"].startswith(CSP)
    assert response.headers["X-Frame-Options"] == "DENY"


def test_each_download_is_in_the_audit_trail(pdf, three, browser, create_user):
    member, auditor = three[0], create_user(role="auditor")
    browser(member).get(f"/committee/evidence/{pdf.id}")
    browser(auditor).get(f"/committee/evidence/{pdf.id}?inline=1")
    events = _downloads(pdf)
    assert [(e.actor_id, e.data["claim"], e.data["sha256"]) for e in events] == [
        (member.id, pdf.claim_id, pdf.sha256), (auditor.id, pdf.claim_id, pdf.sha256)]
    assert verify().ok


@pytest.mark.parametrize("site, status", [("cross-site", 403), ("same-site", 403), ("same-origin", 200),
                                          ("none", 200), (None, 200)])
def test_a_link_on_another_site_cannot_make_a_member_download(pdf, three, browser, site, status):
    """A logged-in member's browser sends the session cookie with a link followed from another
    site: the download, and the trail's "downloaded by" them, would be the other site's doing."""
    headers = {"Sec-Fetch-Site": site} if site else {}
    response = browser(three[0]).get(f"/committee/evidence/{pdf.id}", headers=headers)
    assert response.status_code == status
    assert len(_downloads(pdf)) == (1 if status == 200 else 0)
    if status == 403:
        assert "own pages only" in response.get_data(as_text=True)


@pytest.mark.parametrize("data, filename, media_type", [
    (PDF, "contract.pdf", "application/pdf"), (PNG, "payslip.png", "image/png"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 16, "letter.jpg", "image/jpeg"),
])
def test_pdf_png_and_jpeg_can_be_shown_inline(three, make_claims, browser, data, filename, media_type):
    [claim] = make_claims({**ANSWERS, "evidence_file": stored_file(data, filename)})
    [item] = [e for e in claim.evidence if e.kind == "file"]
    response = browser(three[0]).get(f"/committee/evidence/{item.id}?inline=1")
    assert response.status_code == 200 and response.data == data
    assert response.headers["Content-Type"] == media_type
    assert response.headers["Content-Disposition"] == f"inline; filename={filename}"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private, no-store"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    # Chromium's PDF viewer shows nothing in a sandboxed document; images stay sandboxed.
    assert ("sandbox" in policy) == (media_type != "application/pdf")
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_any_other_type_is_always_an_attachment(three, make_claims, browser):
    [claim] = make_claims()
    name = secrets.token_hex(16)
    (evidence_dir() / name).write_bytes(b"<html><script>alert(1)</script></html>")
    item = services.add_file_evidence(claim, {"stored_as": name, "filename": "page.html", "media_type": "text/html",
                                              "size": 38, "sha256": "0" * 64}, actor="respondent")
    db.session.commit()
    response = browser(three[0]).get(f"/committee/evidence/{item.id}?inline=1")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == "attachment; filename=page.html"
    assert response.headers["Content-Type"] == "text/html"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert f'src="/committee/evidence/{item.id}?inline=1"' not in browser(three[0]).get(
        f"/committee/claims/{claim.id}").get_data(as_text=True)


def test_evidence_of_a_claim_one_may_not_read_is_a_404(pdf, three, make_claims, browser, create_user):
    outsider = browser(three[2])  # not a reviewer of this claim
    assert outsider.get(f"/committee/evidence/{pdf.id}").status_code == 404
    assert outsider.get("/committee/evidence/999999").status_code == 404
    assert browser(create_user(role="admin")).get(f"/committee/evidence/{pdf.id}").status_code == 403
    anonymous = browser().get(f"/committee/evidence/{pdf.id}")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    assert _downloads(pdf) == []


def test_a_link_or_a_missing_file_is_a_404_and_not_a_download(pdf, three, browser):
    claim = reload(pdf).claim
    link = next(e for e in claim.evidence if e.kind == "link")
    member = browser(three[0])
    assert member.get(f"/committee/evidence/{link.id}").status_code == 404
    (evidence_dir() / pdf.stored_as).unlink()
    assert member.get(f"/committee/evidence/{pdf.id}").status_code == 404
    assert _downloads(pdf) == [] and _downloads(link) == []
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "evidence_downloaded")) == 0
