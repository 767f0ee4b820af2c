"""The admin's questionnaire pages: the list, and the preview of the form as respondents see it."""
from __future__ import annotations


def test_the_preview_shows_every_option_and_what_it_claims(builtin_questionnaires, create_user, browser):
    admin = browser(create_user(role="admin"))
    alumni = builtin_questionnaires["alumni-outcomes"]
    page = admin.get(f"/admin/questionnaires/{alumni.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Employed full-time" in html or "employed full-time" in html.lower()
    assert "claims new_job" in html
    assert admin.get("/admin/questionnaires/").status_code == 200
    assert admin.get("/admin/questionnaires/99999").status_code == 404
