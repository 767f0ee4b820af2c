"""What services refuse, said in the reader's language: French pages read French, the API,
the logs and the terminal read English, and a message quoting what someone typed stays text.

The French tests compare the page with the catalogue's translation of the very message the
service raises, so they say "not translated into French yet" until the catalogue has it.
"""
from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from flask import render_template_string
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from markupsafe import escape

from survey.core.errors import ValidationFailed
from survey.core.i18n import in_english
from survey.extensions import db
from tests.api.helpers import CAMPAIGNS, campaign_body
from tests.campaigns.helpers import make_campaign, now
from tests.conftest import IsolatedClient
from tests.factories import token

FR = {"Accept-Language": "fr"}
HEADER = "Email;Prénom;Nom;Langue"


def french(message) -> str:
    """What a French reader sees of ``message``; fails while the catalogue lacks it."""
    with force_locale("fr"):
        text = str(message)
    assert text != in_english(message), f"not translated into French yet: {in_english(message)!r}"
    return text


def on_page(text: str) -> str:
    """``text`` as a template writes it (escaped)."""
    return str(escape(text))


@pytest.fixture
def admin(create_user, browser):
    return browser(create_user(role="admin"))


@pytest.fixture
def api(app, app_ctx):
    from survey.accounts.services import create_api_key

    _, key = create_api_key("tests")
    db.session.commit()
    client = IsolatedClient(app, app.response_class, use_cookies=False)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr"  # a French integrator's HTTP library
    return client


def _upload(client, csv: str, headers=None):
    return client.post("/admin/audiences/", headers=headers, data={
        "csrf_token": token(client, "/admin/audiences/"), "kind": "alumnus",
        "file": (io.BytesIO(csv.encode()), "people.csv")}, content_type="multipart/form-data")


def _timing(client, campaign, headers=None, **changes):
    url = f"/admin/campaigns/{campaign.id}/timing"
    data = {"csrf_token": token(client, url), "timezone": "Europe/Paris", "send_at": "2031-03-01T09:00",
            "closes_at": "2031-04-01T09:00", "reminders": "P3D", "quiet_hours": "20:00-08:00", **changes}
    return client.post(url, data=data, headers=headers)


# ------------------------------------------------------------------ the admin's pages

def test_a_french_admin_reads_why_the_campaign_timing_is_refused_in_french(admin, alumni):
    campaign = make_campaign(alumni, send_at=now() + timedelta(days=1), closes_at=now() + timedelta(days=9))
    expected = french(_l("The campaign must close after it is sent."))
    response = _timing(admin, campaign, FR, send_at="2031-03-01T09:00", closes_at="2031-02-01T09:00")
    page = response.get_data(as_text=True)
    assert on_page(expected) in page
    assert "The campaign must close after it is sent." not in page


def test_an_english_admin_reads_the_same_refusal_in_english(admin, alumni):
    campaign = make_campaign(alumni, send_at=now() + timedelta(days=1), closes_at=now() + timedelta(days=9))
    page = _timing(admin, campaign, closes_at="2031-02-01T09:00").get_data(as_text=True)
    assert "The campaign must close after it is sent." in page
    page = _timing(admin, campaign, reminders="P3X").get_data(as_text=True)
    assert on_page("“P3X” is not an ISO 8601 duration such as P3D or PT12H.") in page


def test_a_french_admin_reads_the_import_rejections_in_french(admin):
    expected = [french(_l("invalid email address '%(value)s'", value="not-an-email")),
                french(_l("unknown language '%(value)s' (expected fr or en)", value="klingon"))]
    csv = "\r\n".join([HEADER, "not-an-email;Ada;Lovelace;fr", "bob@example.org;Bob;Smith;klingon"])
    page = _upload(admin, csv, FR).get_data(as_text=True)
    assert all(on_page(reason) in page for reason in expected)
    assert "invalid email address" not in page and "unknown language" not in page


def test_an_english_admin_reads_the_import_rejections_in_english_and_as_text(admin):
    csv = "\r\n".join([HEADER, "not-an-email;Ada;Lovelace;fr", "<img src=x onerror=alert(1)>;Eve;Doe;en",
                       "ada@example.org;Ada;Lovelace;klingon", "ada@example.org;Ada;Lovelace;en"])
    page = _upload(admin, csv).get_data(as_text=True)
    assert on_page("invalid email address 'not-an-email'") in page
    assert "unknown language &#39;klingon&#39; (expected fr or en)" in page
    # a reason quotes the file: it is shown as text, never as markup
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page


def test_a_french_admin_reads_what_is_wrong_with_a_questionnaire_in_french(admin, builtin_questionnaires):
    from survey.questionnaires.services import builtin_definitions

    definition = builtin_definitions()[0]
    first = definition["questions"][0]
    definition["questions"].append(dict(first))
    where = f"questions[{len(definition['questions']) - 1}] ({first['id']})"
    expected = french(_l("%(where)s: the id '%(id)s' is already used by an earlier question",
                         where=where, id=first["id"]))
    response = admin.post("/admin/questionnaires/", headers=FR, data={
        "csrf_token": token(admin, "/admin/questionnaires/"), "text": json.dumps(definition)})
    page = response.get_data(as_text=True)
    assert on_page(expected) in page
    assert "is already used by an earlier question" not in page


# ------------------------------------------------------------------ English where it must be

def test_the_api_answers_in_english_whatever_the_caller_s_language(api, alumni):
    response = api.post("/api/v1/audiences/import?kind=alumnus", content_type="text/csv",
                        data="\r\n".join([HEADER, "not-an-email;Ada;Lovelace;fr"]).encode())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["rejected"] == [{"line": 2, "reason": "invalid email address 'not-an-email'"}]

    response = api.post(CAMPAIGNS, json=campaign_body(alumni.id, closes_at="2031-01-01T00:00:00Z",
                                                      send_at="2031-02-01T00:00:00Z"))
    assert response.status_code == 422
    assert response.get_json()["message"] == "The campaign must close after it is sent."

    response = api.post(CAMPAIGNS, json=campaign_body(alumni.id, reminders=["P1M"]))
    assert response.status_code == 422
    assert "&#" not in response.get_data(as_text=True)  # JSON carries text, not HTML


def test_an_unreadable_csv_is_explained_in_english_by_the_api(api):
    response = api.post("/api/v1/audiences/import?kind=alumnus", content_type="text/csv",
                        data="Prénom;Nom\r\nAda;Lovelace\r\n".encode())
    assert response.status_code == 422
    body = response.get_json()
    assert body["message"].startswith("The CSV cannot be read: no email column found in the header")
    assert body["errors"]["rejected"][0]["reason"].startswith("no email column found")


def test_an_error_is_english_as_a_string_and_text_in_a_template(app):
    with app.test_request_context("/admin/", headers=FR):
        error = ValidationFailed(_l("“%(text)s” must be after the invitation.", text="<b>P0D</b>"))
        assert str(error) == "“<b>P0D</b>” must be after the invitation."  # logs, tracebacks, the CLI
        assert "&lt;b&gt;P0D&lt;/b&gt;" in error.message.__html__()  # what it quotes is escaped
        assert "&lt;b&gt;" in render_template_string("{{ message }}", message=error.message)


def test_an_error_message_reads_in_the_page_s_language(app):
    with app.test_request_context("/admin/", headers=FR):
        error = ValidationFailed(_l("“%(text)s” must be after the invitation.", text="P0D"))
        assert str(error.message) == french(error.message)


def test_outside_a_request_messages_are_english(app_ctx):
    from survey.accounts.services import create_user

    with pytest.raises(ValidationFailed) as refused:
        create_user("nobody", "a long enough password", "admin")
    assert refused.value.message == "“nobody” is not an email address."
