"""Evidence files: accepted by their content, never by their name; kept out of the web root."""
from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from sqlalchemy import select

from survey.campaigns.models import Response
from survey.extensions import db
from survey.respond.uploads import evidence_dir

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _post(client, path, answers=None, **files):
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    data = {"csrf_token": token, "activity": "employed_full_time", "outcomes": ["new_job"], "save": "1",
            **(answers or {})}
    data.update({name: (io.BytesIO(content), filename) for name, (content, filename) in files.items()})
    return client.post(path, data=data, content_type="multipart/form-data")


def _saved_answers():
    db.session.expire_all()
    return db.session.scalars(select(Response)).one().answers


def test_a_pdf_is_stored_with_its_hash_outside_the_web_root(app, client, open_survey):
    _invitation, path = open_survey()
    response = _post(client, path, evidence_file=(PDF, "contract.pdf"))
    assert response.status_code == 303, response.get_data(as_text=True)
    stored = _saved_answers()["evidence_file"]
    assert stored["media_type"] == "application/pdf"
    assert stored["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert stored["filename"] == "contract.pdf"
    on_disk = Path(app.config["EVIDENCE_DIR"]) / stored["stored_as"]
    assert on_disk.read_bytes() == PDF
    assert not str(on_disk).startswith(app.static_folder)
    assert "contract.pdf" in client.get(path).get_data(as_text=True)  # shown as attached on resume


def test_html_named_pdf_is_refused_and_nothing_is_saved(client, open_survey):
    _invitation, path = open_survey()
    response = _post(client, path, evidence_file=(b"<html><script>alert(1)</script></html>", "cv.pdf"))
    assert response.status_code == 422
    assert "Only PDF, PNG and JPEG files are accepted." in response.get_data(as_text=True)
    assert db.session.scalars(select(Response)).first() is None


def test_an_oversized_file_is_refused(app, client, open_survey, monkeypatch):
    monkeypatch.setitem(app.config, "EVIDENCE_MAX_BYTES", 1024)
    _invitation, path = open_survey()
    response = _post(client, path, evidence_file=(PDF + b"0" * 2048, "big.pdf"))
    assert response.status_code == 422
    assert db.session.scalars(select(Response)).first() is None


def test_a_file_chosen_on_a_page_with_errors_is_asked_for_again(client, open_survey):
    """Nothing is stored from a page with errors, and the browser will not fill the file box
    again: the respondent is told, rather than submitting later without their evidence."""
    _invitation, path = open_survey()
    response = _post(client, path, {"start_date": "30/09/2024"}, evidence_file=(PDF, "contract.pdf"))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Please choose your file again" in body
    assert re.search(r'<div class="error-summary".*href="#evidence_file"', body, re.S)
    assert db.session.scalars(select(Response)).first() is None
    # Chosen again with the date mended, it is kept.
    response = _post(client, path, {"start_date": "2024-09-30"}, evidence_file=(PDF, "contract.pdf"))
    assert response.status_code == 303
    assert _saved_answers()["evidence_file"]["filename"] == "contract.pdf"


def test_a_file_keeps_its_name_as_its_owner_wrote_it(client, open_survey):
    """"Contrat été.pdf" was shown to the committee as "Contrat_ete.pdf"."""
    _invitation, path = open_survey()
    response = _post(client, path, evidence_file=(PDF, "/home/zoé/Contrat e\u0301te\u0301\u200b.pdf"))
    assert response.status_code == 303
    assert _saved_answers()["evidence_file"]["filename"] == "Contrat été.pdf"


def _on_disk() -> set[str]:
    return {path.name for path in evidence_dir().iterdir()} if evidence_dir().exists() else set()


def test_a_file_replaced_by_another_is_removed_from_disk(client, open_survey):
    """Found in review: the replaced payslip stayed on disk, named by no answer, so neither an
    erasure nor the retention purge could ever find it."""
    _invitation, path = open_survey()
    before = _on_disk()
    assert _post(client, path, evidence_file=(PDF + b"A", "first.pdf")).status_code == 303
    first = _saved_answers()["evidence_file"]["stored_as"]
    assert _post(client, path, evidence_file=(PDF + b"B", "second.pdf")).status_code == 303
    second = _saved_answers()["evidence_file"]["stored_as"]
    assert _on_disk() - before == {second}
    # Hidden since ("none of these"), the file's answer goes, and the file with it.
    assert _post(client, path, {"outcomes": ["none"]}).status_code == 303
    assert "evidence_file" not in _saved_answers() and _on_disk() - before == set()
    assert first != second

