"""The admin's questionnaire pages: the list, and the preview of the form as respondents see it."""
from __future__ import annotations


def test_the_preview_shows_every_option_and_what_it_claims(builtin_questionnaires, create_user, browser):
    admin = browser(create_user(role="admin"))
    alumni = builtin_questionnaires["alumni-outcomes"]
    page = admin.get(f"/admin/questionnaires/{alumni.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Employed full-time" in html or "employed full-time" in html.lower()
    assert "claims new job" in html  # the outcome in words, not its code
    assert admin.get("/admin/questionnaires/").status_code == 200
    assert admin.get("/admin/questionnaires/99999").status_code == 404


def _definition(slug="exit-survey", title="Leaving us", **changes) -> dict:
    return {"slug": slug, "kind": "employee", "title": {"en": title, "fr": "Votre départ"},
            "questions": [{"id": "why", "type": "single", "required": True,
                           "label": {"en": "Why are you leaving?", "fr": "Pourquoi partez-vous ?"},
                           "options": [{"value": "pay", "label": {"en": "Pay", "fr": "Salaire"}},
                                       {"value": "<b>bold</b>", "label": {"en": "<b>Other</b>", "fr": "Autre"}}]}],
            **changes}


def _versions(slug: str) -> list[int]:
    from sqlalchemy import select

    from survey.extensions import db
    from survey.questionnaires.models import Questionnaire

    db.session.expire_all()
    return db.session.scalars(select(Questionnaire.version).where(Questionnaire.slug == slug)
                              .order_by(Questionnaire.version)).all()


def _hidden_definition(html: str) -> str:
    import html as html_module
    import re

    match = re.search(r'<input id="definition" name="definition" type="hidden" value="([^"]*)"', html)
    assert match, html[:3000]
    return html_module.unescape(match.group(1))


def test_an_upload_is_previewed_in_both_languages_and_saved_only_when_confirmed(app_ctx, create_user, browser):
    import json

    from tests.factories import token

    admin = browser(create_user(role="admin"))
    response = admin.post("/admin/questionnaires/", data={
        "csrf_token": token(admin, "/admin/questionnaires/"), "text": json.dumps(_definition())})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Check before saving" in html and "Why are you leaving?" in html and "Pourquoi partez-vous" in html
    assert "a new questionnaire, exit-survey version 1" in html
    assert "&lt;b&gt;Other&lt;/b&gt;" in html and "<b>Other</b>" not in html
    assert _versions("exit-survey") == []  # nothing saved by the preview

    response = admin.post("/admin/questionnaires/save", data={
        "csrf_token": token(admin, "/admin/questionnaires/"), "definition": _hidden_definition(html)})
    assert response.status_code == 302
    assert _versions("exit-survey") == [1]

    # The same file again: the preview says so, and saving keeps version 1.
    html = admin.post("/admin/questionnaires/", data={
        "csrf_token": token(admin, "/admin/questionnaires/"), "text": json.dumps(_definition())}).get_data(as_text=True)
    assert "exactly version 1, already saved" in html
    # A changed one becomes version 2; version 1 stays as it was.
    html = admin.post("/admin/questionnaires/", data={
        "csrf_token": token(admin, "/admin/questionnaires/"),
        "text": json.dumps(_definition(title="Leaving us, v2"))}).get_data(as_text=True)
    assert "saved as version 2 of exit-survey" in html
    admin.post("/admin/questionnaires/save", data={
        "csrf_token": token(admin, "/admin/questionnaires/"), "definition": _hidden_definition(html)})
    assert _versions("exit-survey") == [1, 2]


def test_a_tampered_or_missing_definition_is_refused_on_save(app_ctx, create_user, browser):
    import json

    from tests.factories import token

    admin = browser(create_user(role="admin"))
    broken = _definition()
    broken["questions"][0]["type"] = "teleport"
    for definition in (json.dumps(broken), "{not json", ""):
        response = admin.post("/admin/questionnaires/save", data={
            "csrf_token": token(admin, "/admin/questionnaires/"), "definition": definition})
        assert response.status_code == 422, definition
        assert 'class="error-summary"' in response.get_data(as_text=True)
    response = admin.post("/admin/questionnaires/save", data={"definition": json.dumps(_definition())})
    assert response.status_code == 400  # no CSRF token
    assert _versions("exit-survey") == []
