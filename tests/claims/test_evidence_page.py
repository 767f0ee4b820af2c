"""The respondent's evidence page (/e/<token>): what it shows, adding a file, a link or
an employer contact, withdrawing, and the refusals (bad files, closed claims, wrong
links, missing CSRF token)."""
from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from survey.accounts.models import User
from survey.audit.chain import verify
from survey.audit.models import AuditEvent
from survey.campaigns.models import Invitation
from survey.claims import services
from survey.claims.models import Claim, Evidence, Review
from survey.extensions import db
from survey.respond import services as respond
from tests.campaigns.helpers import started_campaign

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
EN = {"Accept-Language": "en"}
_seq = itertools.count(1)


# ---------------------------------------------------------------------- helpers

@pytest.fixture
def committee(app_ctx):
    """Two committee members (made directly: these tests never log them in)."""
    members = []
    for _ in range(2):
        user = User(email=f"member{next(_seq)}@staff.example", name="", role="committee", password_hash="-")
        db.session.add(user)
        members.append(user)
    db.session.commit()
    return members


@pytest.fixture
def claimed(alumni, create_stakeholder, committee, monkeypatch):
    """A person answers an identified campaign claiming an outcome, the real way;
    returns (claim, the path of its evidence link)."""

    def make(locale="en", outcomes=("new_job",), **answers) -> tuple[Claim, str]:
        person = create_stakeholder(locale=locale)
        campaign = started_campaign(alumni, monkeypatch, name=f"Alumni {next(_seq)}")
        invitation = db.session.scalar(select(Invitation).where(
            Invitation.campaign_id == campaign.id, Invitation.stakeholder_id == person.id))
        answers = {"activity": "employed_full_time", "outcomes": list(outcomes), "employer": "ACME",
                   "role": "Data analyst", **answers}
        respond.submit_response(invitation, answers, locale)
        db.session.commit()
        claim = db.session.scalars(select(Claim).where(Claim.campaign_id == campaign.id,
                                                       Claim.stakeholder_id == person.id).order_by(Claim.id)).first()
        assert claim.state == "in_review"
        return claim, f"/e/{services.claim_token(claim.token_nonce)}"

    return make


def _csrf(client, path) -> str:
    html = client.get(path, headers=EN).get_data(as_text=True)
    return re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', html).group(1)


def _post(client, path, action, data, *, csrf=True):
    if csrf:
        data = {"csrf_token": _csrf(client, path), **data}
    return client.post(f"{path}/{action}", data=data, headers=EN,
                       content_type="multipart/form-data" if action == "file" else None)


def _file(content: bytes, name: str):
    return (io.BytesIO(content), name)


def _vote(claim: Claim, user: User, verdict: str, comment: str = "") -> None:
    review = db.session.scalar(select(Review).where(Review.claim_id == claim.id, Review.reviewer_id == user.id))
    services.record_vote(review, verdict, comment, reviewer=user)
    db.session.commit()


def _evidence(claim: Claim) -> list[Evidence]:
    db.session.expire_all()
    return db.session.scalars(select(Evidence).where(Evidence.claim_id == claim.id).order_by(Evidence.id)).all()


def _state(claim: Claim) -> str:
    db.session.expire_all()
    return db.session.get(Claim, claim.id).state


def _audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent))


def _stored_files(app) -> set[str]:
    folder = Path(app.config["EVIDENCE_DIR"])
    return {path.name for path in folder.iterdir()} if folder.exists() else set()


def _page(client, path) -> str:
    page = client.get(path, headers=EN)
    assert page.status_code == 200, page.get_data(as_text=True)
    return page.get_data(as_text=True)


# ---------------------------------------------------------------------- what it shows

def test_the_page_shows_the_claim_its_state_and_evidence_but_never_the_votes(client, claimed, committee):
    claim, path = claimed(evidence_link="https://profile.example/ada", salary_change=12)
    _vote(claim, committee[0], "approve", "Looks right to MEMBER-COMMENT")

    page = client.get(path, headers=EN)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "Your outcome: new job" in html
    assert "The impact committee is reviewing it." in html
    assert "ACME" in html and "Data analyst" in html
    assert "https://profile.example/ada" in html  # the link given with the answers
    for secret in ("MEMBER-COMMENT", "approve", committee[0].email, committee[1].email):
        assert secret not in html
    for action in ("file", "link", "contact"):
        assert f'action="{path}/{action}"' in html
    assert f'href="{path}/withdraw"' in html


def test_opening_the_page_changes_nothing(client, claimed):
    claim, path = claimed()
    before = _audit_count()
    _page(client, path)
    _page(client, f"{path}/withdraw")
    assert (_state(claim), _audit_count()) == ("in_review", before)


# ---------------------------------------------------------------------- adding evidence

def test_adding_a_file_stores_it_records_it_and_redirects(app, client, claimed):
    claim, path = claimed()
    response = _post(client, path, "file", {"file": _file(PDF, "contract.pdf")})
    assert response.status_code == 303 and response.headers["Location"].endswith(path)

    [evidence] = _evidence(claim)
    assert (evidence.kind, evidence.filename, evidence.media_type, evidence.size) == (
        "file", "contract.pdf", "application/pdf", len(PDF))
    assert (Path(app.config["EVIDENCE_DIR"]) / evidence.stored_as).read_bytes() == PDF
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "evidence_added")).one()
    assert (event.subject, event.actor, event.data["sha256"]) == (f"claim:{claim.id}", "respondent", evidence.sha256)
    html = _page(client, path)
    assert "Thank you: your document “contract.pdf” is added." in html
    assert "contract.pdf" in html
    assert verify().ok


def test_a_png_is_accepted_too(client, claimed):
    claim, path = claimed()
    assert _post(client, path, "file", {"file": _file(PNG, "payslip.png")}).status_code == 303
    assert [e.media_type for e in _evidence(claim)] == ["image/png"]


def test_adding_a_link(client, claimed):
    claim, path = claimed()
    response = _post(client, path, "link", {"url": "https://registry.example/company/42"})
    assert response.status_code == 303
    assert [(e.kind, e.url) for e in _evidence(claim)] == [("link", "https://registry.example/company/42")]
    assert "Thank you: your link is added." in _page(client, path)


@pytest.mark.parametrize("url", ["", "http://plain.example/me", "javascript:alert(1)", "https://", "ftp://x.example",
                                 "https://exa mple.com"])
def test_a_link_that_is_not_https_is_refused_next_to_the_field(client, claimed, url):
    claim, path = claimed()
    before = _audit_count()
    response = _post(client, path, "link", {"url": url})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'id="url-error">Give a web address starting with https://\.<', html)
    assert 'aria-describedby="url-hint url-error"' in html
    assert (_evidence(claim), _audit_count()) == ([], before)


def test_adding_an_employer_contact(client, claimed):
    claim, path = claimed()
    response = _post(client, path, "contact", {"contact": "Jane Roe, HR\njane@acme.example"})
    assert response.status_code == 303
    assert [(e.kind, e.contact) for e in _evidence(claim)] == [("contact", "Jane Roe, HR\njane@acme.example")]
    html = _page(client, path)
    assert "Thank you: the employer contact is added." in html
    assert "Jane Roe, HR<br>jane@acme.example" in html


@pytest.mark.parametrize("contact", ["", "   ", "x" * 1001])
def test_an_empty_or_overlong_contact_is_refused(client, claimed, contact):
    claim, path = claimed()
    response = _post(client, path, "contact", {"contact": contact})
    assert response.status_code == 422
    assert 'id="contact-error"' in response.get_data(as_text=True)
    assert _evidence(claim) == []


def test_html_disguised_as_a_pdf_is_refused_and_nothing_is_stored(app, client, claimed):
    claim, path = claimed()
    before_files, before_events = _stored_files(app), _audit_count()
    response = _post(client, path, "file", {"file": _file(b"<html><script>alert(1)</script></html>", "cv.pdf")})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'id="file-error">Only PDF, PNG and JPEG files are accepted\.<', html)
    assert "There is a problem" in html  # the summary links to the field
    assert (_evidence(claim), _stored_files(app), _audit_count()) == ([], before_files, before_events)


def test_an_oversized_file_is_refused_and_nothing_is_stored(app, client, claimed, monkeypatch):
    monkeypatch.setitem(app.config, "EVIDENCE_MAX_BYTES", 1024)
    claim, path = claimed()
    before = _stored_files(app)
    response = _post(client, path, "file", {"file": _file(PDF + b"0" * 2048, "big.pdf")})
    assert response.status_code == 422
    assert re.search(r'id="file-error">The file is larger than', response.get_data(as_text=True))
    assert (_evidence(claim), _stored_files(app)) == ([], before)


def test_no_file_chosen_is_refused(client, claimed):
    claim, path = claimed()
    response = _post(client, path, "file", {})
    assert response.status_code == 422
    assert 'id="file-error">Choose a file.<' in response.get_data(as_text=True)
    assert _evidence(claim) == []


@pytest.mark.parametrize("action, data", [
    ("file", {"file": _file(PDF, "a.pdf")}),
    ("link", {"url": "https://profile.example/ada"}),
    ("contact", {"contact": "Jane Roe, jane@acme.example"}),
])
def test_evidence_on_a_claim_needing_it_sends_it_back_to_review(client, claimed, committee, action, data):
    claim, path = claimed()
    _vote(claim, committee[0], "need_evidence", "A payslip would help")
    _vote(claim, committee[1], "approve")
    assert _state(claim) == "needs_evidence"
    html = _page(client, path)
    assert "The impact committee needs more evidence before it can decide." in html
    assert "What the committee said: A payslip would help" in html

    assert _post(client, path, action, data).status_code == 303
    assert _state(claim) == "in_review"
    html = _page(client, path)
    assert "The impact committee is reviewing it." in html
    assert "needs more evidence" not in html
    transition = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "transition")
                                    .order_by(AuditEvent.id.desc())).first()
    assert (transition.from_state, transition.to_state, transition.actor) == ("needs_evidence", "in_review",
                                                                              "respondent")


# ---------------------------------------------------------------------- withdrawing

def test_withdrawing_asks_for_confirmation_then_withdraws(client, claimed):
    claim, path = claimed()
    html = _page(client, path)
    assert "Withdraw this outcome…" in html

    confirm = _page(client, f"{path}/withdraw")
    assert "Withdraw this outcome?" in confirm and "This cannot be undone." in confirm
    assert f'action="{path}/withdraw"' in confirm
    assert _state(claim) == "in_review"

    response = _post(client, path, "withdraw", {})
    assert response.status_code == 303 and response.headers["Location"].endswith(path)
    assert _state(claim) == "withdrawn"
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.to_state == "withdrawn")).one()
    assert event.actor == "respondent"

    html = _page(client, path)
    assert "Done: you withdrew this outcome." in html
    assert "You withdrew this outcome." in html
    assert "<form" not in html.split("</header>")[1]  # nothing more to send
    # the confirmation page of a withdrawn claim goes back to the claim
    assert client.get(f"{path}/withdraw", headers=EN).status_code == 303


def test_a_withdrawn_claim_takes_no_evidence_and_is_not_withdrawn_twice(app, client, claimed):
    claim, path = claimed()
    assert _post(client, path, "withdraw", {}).status_code == 303
    before_events, before_files = _audit_count(), _stored_files(app)
    for action, data in (("link", {"url": "https://profile.example/ada"}), ("file", {"file": _file(PDF, "a.pdf")}),
                         ("contact", {"contact": "Jane"}), ("withdraw", {})):
        response = _post(client, path, action, data)
        assert response.status_code == 409
        assert "This outcome can no longer be changed, so nothing was saved." in response.get_data(as_text=True)
    assert (_evidence(claim), _audit_count(), _stored_files(app)) == ([], before_events, before_files)


# ---------------------------------------------------------------------- decided claims

@pytest.mark.parametrize("verdicts, state, words", [
    (("approve", "approve"), "proven", "Proven: the impact committee checked the evidence"),
    (("reject", "reject"), "rejected", "could not confirm this outcome with the evidence given"),
])
def test_a_decided_claim_thanks_and_gives_the_result_without_forms(client, claimed, committee, verdicts, state,
                                                                  words):
    claim, path = claimed()
    for member, verdict in zip(committee, verdicts):
        _vote(claim, member, verdict, "MEMBER-REASON")
    assert _state(claim) == state

    html = _page(client, path)
    assert "Thank you for telling us about it" in html
    assert words in html
    assert "MEMBER-REASON" not in html
    assert "<form" not in html.split("</header>")[1]
    before = _audit_count()
    assert _post(client, path, "link", {"url": "https://profile.example/ada"}).status_code == 409
    assert (_state(claim), _evidence(claim), _audit_count()) == (state, [], before)


# ---------------------------------------------------------------------- links and forms that do not work

def _tampered(path: str) -> list[str]:
    token = path.removeprefix("/e/")
    flipped = ("A" if token[5] != "A" else "B")
    return [f"/e/{token[:5]}{flipped}{token[6:]}", f"/e/{token}A", f"/e/{token[:-1]}", "/e/nope", "/e/" + "A" * 5000]


def test_an_unknown_or_tampered_token_is_a_404_and_changes_nothing(client, claimed):
    claim, path = claimed()
    token = _csrf(client, path)
    before = _audit_count()
    for wrong in _tampered(path):
        page = client.get(wrong, headers=EN)
        assert page.status_code == 404, wrong
        assert "This link does not work" in page.get_data(as_text=True)
        assert page.headers["Referrer-Policy"] == "no-referrer"
        for action, data in (("withdraw", {}), ("link", {"url": "https://profile.example/ada"})):
            assert client.post(f"{wrong}/{action}", data={"csrf_token": token, **data}, headers=EN).status_code == 404
    assert (_state(claim), _evidence(claim), _audit_count()) == ("in_review", [], before)


@pytest.mark.parametrize("action, data", [
    ("withdraw", {}),
    ("link", {"url": "https://profile.example/ada"}),
    ("contact", {"contact": "Jane"}),
    ("file", {"file": _file(PDF, "a.pdf")}),
])
def test_a_post_without_the_csrf_token_is_400_and_changes_nothing(app, client, claimed, action, data):
    claim, path = claimed()
    _page(client, path)  # a session exists
    before_events, before_files = _audit_count(), _stored_files(app)
    response = _post(client, path, action, data, csrf=False)
    assert response.status_code == 400
    assert (_state(claim), _evidence(claim), _audit_count(), _stored_files(app)) == (
        "in_review", [], before_events, before_files)


# ---------------------------------------------------------------------- language and escaping

def test_the_page_is_in_a_french_stakeholders_language(client, claimed):
    _claim, path = claimed(locale="fr")
    html = client.get(path, headers=EN).get_data(as_text=True)  # the browser says English
    assert '<html lang="fr">' in html
    assert "Votre résultat\u00a0: nouvel emploi" in html
    assert "Le comité d’impact l’examine." in html
    assert "Ajouter ce document" in html


def test_what_a_french_respondent_told_us_reads_in_french(client, claimed):
    """Dates and numbers as the respondent writes them, under the questions' own labels."""
    _claim, path = claimed(locale="fr", start_date="2024-09-30", salary_change=12.5)
    html = client.get(path).get_data(as_text=True)
    assert "2024-09-30" not in html and "30 sept. 2024" in html
    assert "<dd>12,5</dd>" in html, html[html.find("<dl"):html.find("</dl>")]  # "De quel pourcentage…"


def test_what_the_respondent_typed_is_shown_escaped(client, claimed):
    claim, path = claimed(employer="<script>alert('e')</script>")
    assert _post(client, path, "contact", {"contact": "<img src=x onerror=alert(1)>"}).status_code == 303
    assert _post(client, path, "link", {"url": 'https://x.example/"><script>alert(2)</script>'}).status_code == 303
    html = _page(client, path)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;e&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="https://x.example/&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"' in html


def test_the_services_refuse_evidence_on_a_closed_claim_too(claimed):
    """The page checks first; the service is the backstop (a withdrawal in between)."""
    from survey.core.errors import InvalidState

    claim, _path = claimed()
    services.withdraw(claim)
    db.session.commit()
    before = _audit_count()
    for call, value in ((services.add_link_evidence, "https://profile.example/ada"),
                        (services.add_contact_evidence, "Jane"),
                        (services.add_file_evidence, {"stored_as": "x", "sha256": "0" * 64})):
        with pytest.raises(InvalidState):
            call(claim, value, actor="respondent")
    db.session.commit()
    assert (_evidence(claim), _audit_count()) == ([], before)
