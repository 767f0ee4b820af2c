"""Fuzzing every form and API route with Hypothesis: random text and bytes, 1 MB values,
NUL characters, numbers where text goes and text where numbers go, HTML and script, in
every field of every form each role can open (with the session's valid CSRF token) and in
every API request body (with a key). No request may end in a server error, and whatever
was stored is shown as text afterwards.

The forms are found by reading the pages themselves (every <form> on each page a role
can open), so a new form or field is fuzzed without touching this file. schemathesis
(tests/api/test_schemathesis.py) already checks the API against its schema; here the API
gets what a schema-driven generator does not send: markup to be shown on the admin pages,
NUL characters, 1 MB strings, bodies of random bytes and wrong content types.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import token

MARKUP = ('<script>alert("fuzz-xss")</script>', '"><img src=x onerror=alert("fuzz-xss")>',
          "<b onmouseover=alert('fuzz-xss')>b</b>", "</textarea><svg onload=alert('fuzz-xss')>")
HUGE = "x" * 1_000_000
ODD = ("", " ", "\x00", "a\x00b", "-1", "0", "1e309", "NaN", "99999999999999999999999", "2026-13-45",
       "P3D", "PT0S", "20:00-08:00", "true", "null", "[]", "{}", "../../etc/passwd", "%00", "\r\n", "\u202e",
       "😀", "é" * 300)
SETTINGS = settings(max_examples=6, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))

text_values = st.one_of(
    st.sampled_from(MARKUP), st.sampled_from(ODD), st.text(max_size=40), st.just(HUGE),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=10).map(lambda t: t + "\x00" + t),
)


@dataclass
class Form:
    page: str
    action: str
    method: str
    multipart: bool
    fields: dict[str, dict] = field(default_factory=dict)  # name -> {"type", "options"}


class _FormReader(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.page, self.forms, self._form, self._select = page, [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._form = Form(self.page, urljoin(self.page, attrs.get("action") or self.page),
                              (attrs.get("method") or "get").upper(),
                              attrs.get("enctype") == "multipart/form-data")
            self.forms.append(self._form)
        elif self._form is not None and tag in ("input", "select", "textarea", "button") and attrs.get("name"):
            entry = self._form.fields.setdefault(attrs["name"], {"type": attrs.get("type", tag), "options": []})
            if attrs.get("value") is not None:
                entry["options"].append(attrs["value"])
            self._select = entry if tag == "select" else None
        elif tag == "option" and self._select is not None and attrs.get("value") is not None:
            self._select["options"].append(attrs["value"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def forms_on(client, pages) -> list[Form]:
    found = {}
    for page in pages:
        response = client.get(page, follow_redirects=True)
        assert response.status_code < 500, page
        reader = _FormReader(page)
        reader.feed(response.get_data(as_text=True))
        for form in reader.forms:
            if urlsplit(form.action).path in ("/logout",):
                continue  # ends the session the fuzzing runs in
            found.setdefault((form.action, form.method, tuple(sorted(form.fields))), form)
    return list(found.values())


def value_for(spec: dict):
    if spec["type"] == "file":
        content = st.one_of(st.binary(max_size=300), st.just(b"%PDF-1.4\n<script>alert(1)</script>"),
                            st.just(b"<html><script>alert(1)</script></html>"), st.just(b"\x89PNG\r\n\x1a\n" + b"\0" * 9))
        return st.tuples(content, st.one_of(st.sampled_from(MARKUP), st.text(max_size=30))).map(
            lambda pair: (io.BytesIO(pair[0]), pair[1] + ".pdf"))
    options = [st.sampled_from(spec["options"])] if spec["options"] else []
    return st.one_of(*options, text_values, st.lists(text_values, max_size=3))


def _send(client, form: Form, values: dict):
    path = urlsplit(form.action).path + (f"?{urlsplit(form.action).query}" if urlsplit(form.action).query else "")
    if form.method == "GET":
        flat = {k: v for k, v in values.items() if not isinstance(v, tuple)}
        return client.get(path, query_string=flat)
    return client.post(path, data=values,
                       content_type="multipart/form-data" if form.multipart else None)


def fuzz_forms(client, forms: list[Form], csrf: str) -> list[str]:
    failures = []
    for form in forms:
        @SETTINGS
        @given(st.data())
        def run(data):
            values = {}
            for name, spec in form.fields.items():
                if name == "csrf_token":
                    values[name] = csrf
                elif data.draw(st.booleans(), label=f"send {name}") or spec["type"] in ("hidden", "submit"):
                    values[name] = data.draw(value_for(spec), label=name)
            if data.draw(st.booleans(), label="an unknown field"):
                values["zz_unknown"] = data.draw(text_values)
            response = _send(client, form, values)
            if response.status_code >= 500:
                failures.append(f"{form.method} {form.action} {sorted(values)}: {response.status_code}")
            assert response.status_code < 500, (form.method, form.action, {k: str(v)[:80] for k, v in values.items()})

        run()
    return failures


def assert_nothing_shown_as_markup(client, pages):
    for page in pages:
        response = client.get(page, follow_redirects=True)
        assert response.status_code < 500, page
        body = response.get_data().decode("utf-8", "replace")
        for payload in MARKUP:
            assert payload not in body, f"{page} shows {payload} as markup"


def _pages(world):
    draft, mine, snap, sample = world["draft"].id, world["mine"].id, world["snapshot"].id, world["sample"].id
    tokens = world["tokens"]
    return {
        None: ["/login", f"/s/{tokens['open_survey']}", f"/e/{tokens['evidence']}", f"/e/{tokens['evidence']}/withdraw",
               f"/u/{tokens['open_optout']}"],
        "admin": ["/admin/audiences/", "/admin/questionnaires/", "/admin/campaigns/new",
                  f"/admin/campaigns/{draft}/edit", f"/admin/campaigns/{draft}/audience",
                  f"/admin/campaigns/{draft}/timing", f"/admin/campaigns/{draft}", "/admin/campaigns/",
                  f"/reports/?campaign={world['cohort'].id}"],
        "chair": ["/committee/claims", f"/committee/claims/{mine}", "/reports/publish", f"/reports/published/{snap}",
                  "/audit/"],
        "auditor": [f"/reports/published/{snap}", f"/reports/samples/{sample}", "/committee/claims"],
        "member": [f"/committee/claims/{mine}", "/committee/"],
    }


#: where what was fuzzed in is shown, per reader
SHOWN = {
    "admin": lambda w: ["/admin/audiences/", "/admin/questionnaires/", "/admin/campaigns/",
                        f"/admin/campaigns/{w['draft'].id}", f"/admin/campaigns/{w['cohort'].id}",
                        f"/admin/campaigns/{w['draft'].id}/timing", "/reports/published"],
    "chair": lambda w: ["/committee/claims", f"/committee/claims/{w['mine'].id}", "/audit/", "/reports/published",
                        f"/reports/published/{w['snapshot'].id}", f"/reports/samples/{w['sample'].id}"],
}


@pytest.mark.parametrize("actor", [None, "admin", "chair", "auditor", "member"])
def test_every_form_survives_anything_and_shows_it_as_text(world, browser, actor):
    user = world["users"][actor] if actor else None
    client = browser(user)
    csrf = token(client, "/login") if user is None else token(client, "/")
    forms = forms_on(client, _pages(world)[actor])
    assert len(forms) >= {None: 4, "admin": 6, "chair": 4, "auditor": 2, "member": 2}[actor], [f.action for f in forms]
    fuzz_forms(client, forms, csrf)
    for reader, pages in SHOWN.items():
        assert_nothing_shown_as_markup(browser(world["users"][reader]), pages(world))
    assert_nothing_shown_as_markup(browser(None), [f"/e/{world['tokens']['evidence']}", f"/p/{world['snapshot'].slug}",
                                                   f"/s/{world['tokens']['open_survey']}"])


# ---------------------------------------------------------------------- the API

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
              st.floats(allow_nan=False), text_values),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(text_values, children, max_size=3)),
    max_leaves=8)

CAMPAIGN_FIELDS = ("name", "questionnaire_id", "audience", "privacy", "send_at", "closes_at", "reminders", "quiet_hours")


def _api_requests(world):
    draft = world["draft"].id
    return [
        ("POST", "/api/v1/campaigns", CAMPAIGN_FIELDS),
        ("PATCH", f"/api/v1/campaigns/{draft}", CAMPAIGN_FIELDS),
        ("POST", f"/api/v1/campaigns/{draft}/schedule", ()),
        ("POST", f"/api/v1/campaigns/{draft}/unschedule", ()),
        ("POST", "/api/v1/questionnaires", ("slug", "title", "kind", "questions", "version")),
        ("POST", "/api/v1/questionnaires?dry_run=true", ("slug", "title", "kind", "questions")),
        ("POST", "/api/v1/audiences/import?kind=alumnus", None),
        ("GET", "/api/v1/audiences", ("email", "kind", "page", "per_page")),
        ("GET", "/api/v1/campaigns", ("status", "page", "per_page")),
        ("GET", f"/api/v1/campaigns/{draft}/recipients", ("status", "page", "per_page", "email")),
        ("GET", "/api/v1/reports/impact", ("campaign", "from", "to", "by", "format")),
    ]


@pytest.fixture
def api(world, client):
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {world['api_key']}"
    return client


def test_every_api_route_survives_anything_and_shows_it_as_text(world, api, browser):
    questionnaire = world["questionnaire"].id
    for method, url, fields in _api_requests(world):
        @SETTINGS
        @given(st.data())
        def run(data):
            kind = data.draw(st.sampled_from(["json", "bytes", "wrong type"] if fields is not None else ["csv", "bytes"]))
            headers = {}
            if method == "GET":
                query = {name: data.draw(text_values) for name in fields if data.draw(st.booleans())}
                response = api.get(url, query_string=query)
            elif kind == "json":
                body = {name: data.draw(json_values) for name in fields if data.draw(st.booleans())}
                if "questionnaire_id" in fields and data.draw(st.booleans()):
                    body["questionnaire_id"] = questionnaire
                if "name" in fields:
                    body["name"] = data.draw(st.one_of(st.sampled_from(MARKUP), text_values))
                response = api.open(url, method=method, json=body)
            elif kind == "csv":
                rows = data.draw(st.lists(st.lists(text_values, min_size=1, max_size=4), max_size=4))
                text = "email,first name,programme\n" + "\n".join(",".join(json.dumps(c) for c in row) for row in rows)
                headers["Content-Type"] = "text/csv"
                response = api.open(url, method=method, data=text.encode("utf-8", "surrogatepass"), headers=headers)
            else:
                content_type = "application/json" if kind == "bytes" else data.draw(st.sampled_from(
                    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/xml"]))
                response = api.open(url, method=method, data=data.draw(st.one_of(st.binary(max_size=200),
                                                                                  st.just(HUGE.encode()))),
                                     headers={"Content-Type": content_type})
            assert response.status_code < 500, (method, url, response.get_data(as_text=True)[:300])
            if response.status_code >= 400:
                assert response.is_json and response.get_json().get("message"), (method, url, response.status_code)

        run()
    assert_nothing_shown_as_markup(browser(world["users"]["admin"]), SHOWN["admin"](world))
