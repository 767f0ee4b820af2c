"""The audit trail and a claim's history in the reader's language; the codes stay beside them."""
from __future__ import annotations

from survey.audit.chain import record
from survey.extensions import db


def test_the_trail_reads_in_french_with_its_codes_beside(create_user, browser):
    record("transition", "claim:1", actor="policy", from_state="in_review", to_state="proven",
           reason="committee votes: approve, approve")
    record("details_purged", "claim:1", actor="retention", reason="RETENTION_ANSWERS_DAYS (730)")
    db.session.commit()
    auditor = browser(create_user(role="auditor"))
    page = auditor.get("/audit/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "la règle du comité" in page and "la règle de conservation" in page
    assert "réglage de conservation RETENTION_ANSWERS_DAYS (730)" in page
    assert "en examen → prouvée" in page
    assert "votes du comité : approuver, approuver" in page
    assert "<code class=\"hint\">details_purged</code>" in page  # what a search names
    assert "committee votes:" not in page and ">policy<" not in page
