"""GET and POST /api/v1/questionnaires."""
from __future__ import annotations

import copy
import json

import pytest
import yaml

URL = "/api/v1/questionnaires"


def small_definition(slug="api-check", title_en="A short check"):
    return {
        "slug": slug,
        "kind": "alumnus",
        "title": {"fr": "Un court point", "en": title_en},
        "questions": [
            {"id": "employed", "type": "single", "required": True,
             "label": {"fr": "En emploi ?", "en": "Employed?"},
             "options": [{"value": "yes", "label": {"fr": "Oui", "en": "Yes"}},
                         {"value": "no", "label": {"fr": "Non", "en": "No"}}]},
            {"id": "employer", "type": "text", "label": {"fr": "Employeur", "en": "Employer"},
             "show_if": {"question": "employed", "equals": "yes"}},
        ],
    }


def test_list_gives_every_version_with_id_slug_version_title(client, auth, builtin_questionnaires):
    response = client.get(URL, headers=auth)
    assert response.status_code == 200
    items = response.get_json()
    assert sorted(item["slug"] for item in items) == ["alumni-outcomes", "employee-pulse"]
    for item in items:
        assert {"id", "slug", "version", "title"} <= set(item)
        stored = builtin_questionnaires[item["slug"]]
        assert item["id"] == stored.id
        assert item["version"] == 1
        assert item["title"] == stored.definition["title"]


def test_list_is_empty_without_questionnaires(client, auth):
    response = client.get(URL, headers=auth)
    assert response.status_code == 200
    assert response.get_json() == []


def test_post_json_creates_version_1_then_listed(client, auth):
    response = client.post(URL, json=small_definition(), headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["slug"] == "api-check" and body["version"] == 1
    assert body["title"] == {"fr": "Un court point", "en": "A short check"}
    listed = client.get(URL, headers=auth).get_json()
    assert [(q["id"], q["slug"], q["version"]) for q in listed] == [(body["id"], "api-check", 1)]


def test_post_for_an_existing_slug_adds_the_next_version_json_and_yaml(client, auth, builtin_questionnaires):
    original = builtin_questionnaires["alumni-outcomes"]
    changed = copy.deepcopy(original.definition)
    changed["title"]["en"] = "What changed since the course? (2025)"

    response = client.post(URL, data=json.dumps(changed), content_type="application/json", headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    v2 = response.get_json()
    assert (v2["slug"], v2["version"]) == ("alumni-outcomes", 2)
    assert v2["id"] != original.id

    changed["title"]["en"] = "What changed since the course? (YAML)"
    yaml_body = yaml.safe_dump(changed, allow_unicode=True, sort_keys=False)
    response = client.post(URL, data=yaml_body.encode(), content_type="application/yaml", headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    v3 = response.get_json()
    assert (v3["slug"], v3["version"]) == ("alumni-outcomes", 3)
    assert v3["title"]["en"] == "What changed since the course? (YAML)"

    versions = [q["version"] for q in client.get(URL, headers=auth).get_json() if q["slug"] == "alumni-outcomes"]
    assert versions == [1, 2, 3]


def test_post_yaml_with_a_text_content_type_works_too(client, auth):
    body = yaml.safe_dump(small_definition(slug="yaml-plain"), allow_unicode=True)
    response = client.post(URL, data=body, content_type="text/plain; charset=utf-8", headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["slug"] == "yaml-plain"


def test_posting_the_same_definition_twice_keeps_one_version(client, auth):
    first = client.post(URL, json=small_definition(), headers=auth)
    second = client.post(URL, json=small_definition(), headers=auth)
    assert first.status_code == 201 and second.status_code in (200, 201)
    assert second.get_json()["id"] == first.get_json()["id"]
    assert len(client.get(URL, headers=auth).get_json()) == 1


def test_invalid_definition_gives_422_with_every_problem(client, auth):
    definition = small_definition()
    definition["questions"].append(dict(definition["questions"][1]))  # duplicate id "employer"
    definition["questions"][0]["options"][1]["value"] = "yes"        # duplicate option value
    response = client.post(URL, json=definition, headers=auth)
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == 422
    assert "2 problems" in body["message"]
    problems = body["errors"]["problems"]
    assert len(problems) == 2
    assert any("employer" in p and "already used" in p for p in problems)
    assert any("'yes'" in p and "more than once" in p for p in problems)
    assert client.get(URL, headers=auth).get_json() == []


def test_structural_problem_names_where_it_is(client, auth):
    definition = small_definition()
    definition["questions"][1]["type"] = "essay"
    response = client.post(URL, json=definition, headers=auth)
    assert response.status_code == 422
    assert any("questions[1] (employer)" in p and "essay" in p for p in response.get_json()["errors"]["problems"])


@pytest.mark.parametrize("body,content_type", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\xff\xfe", "application/octet-stream"),
    (b"\xff\xfe\x00g\x00a\x00r\x00b\x00a\x00g\x00e", "application/json"),
    (b"{\"slug\": ", "application/json"),
    (b"", "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b"\"just a string\"", "application/json"),
    (b"null", "application/json"),
    (b"- a\n- list\n", "application/yaml"),
    (b"a: &x [1]\nb: *x\n", "application/yaml"),
    (b"key: [unclosed", "application/yaml"),
    (b"{\"slug\": NaN}", "application/json"),
    (b"[" * 100_000, "application/json"),
    (b"slug=x&kind=alumnus", "application/x-www-form-urlencoded"),
    (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.json\"\r\n\r\n{}\r\n--b--\r\n",
     "multipart/form-data; boundary=b"),
])
def test_garbage_gives_422_json_never_500(client, auth, body, content_type):
    response = client.post(URL, data=body, content_type=content_type, headers=auth)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert response.is_json
    assert response.get_json()["message"]


# ---------------------------------------------------------------- one version

def test_get_one_version_gives_its_whole_definition(client, auth, builtin_questionnaires):
    stored = builtin_questionnaires["alumni-outcomes"]
    response = client.get(f"{URL}/{stored.id}", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["id"], body["slug"], body["version"], body["kind"]) == (stored.id, "alumni-outcomes", 1, "alumnus")
    assert body["definition"] == stored.definition
    assert body["title"] == stored.definition["title"]
    assert body["frozen"] is False and body["frozen_at"] is None
    assert body["created_at"]


def test_a_frozen_version_says_since_when(client, auth, builtin_questionnaires):
    from survey.extensions import db
    from survey.questionnaires.services import freeze_questionnaire

    stored = builtin_questionnaires["employee-pulse"]
    freeze_questionnaire(stored)
    db.session.commit()
    body = client.get(f"{URL}/{stored.id}", headers=auth).get_json()
    assert body["frozen"] is True and body["frozen_at"]


@pytest.mark.parametrize("questionnaire_id", ["999999", "99999999999999999999"])
def test_an_unknown_version_gives_404(client, auth, questionnaire_id):
    response = client.get(f"{URL}/{questionnaire_id}", headers=auth)
    assert response.status_code == 404 and response.is_json
    if questionnaire_id == "999999":
        assert "questionnaire" in response.get_json()["message"].lower()


def test_one_version_needs_a_key(client, builtin_questionnaires):
    response = client.get(f"{URL}/{builtin_questionnaires['alumni-outcomes'].id}")
    assert response.status_code == 401 and "API key" in response.get_json()["message"]


# -------------------------------------------------------------------- dry run

def test_dry_run_gives_what_would_be_stored_and_stores_nothing(client, auth):
    response = client.post(f"{URL}?dry_run=true", json=small_definition(), headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["slug"], body["version"], body["kind"]) == ("api-check", 1, "alumnus")
    assert body["definition"] == small_definition()
    assert body["title"] == small_definition()["title"]
    assert (body["new_version"], body["id"]) == (True, None)
    assert client.get(URL, headers=auth).get_json() == []

    saved = client.post(URL, json=small_definition(), headers=auth)
    assert saved.status_code == 201 and saved.get_json()["version"] == 1


def test_dry_run_of_a_new_version_gives_its_number(client, auth, builtin_questionnaires):
    changed = copy.deepcopy(builtin_questionnaires["alumni-outcomes"].definition)
    changed["title"]["en"] = "What changed since the course? (2025)"
    yaml_body = yaml.safe_dump(changed, allow_unicode=True, sort_keys=False).encode()
    response = client.post(f"{URL}?dry_run=1", data=yaml_body, content_type="application/yaml", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["slug"], body["version"], body["new_version"], body["id"]) == ("alumni-outcomes", 2, True, None)
    assert body["definition"]["title"]["en"] == "What changed since the course? (2025)"
    versions = [q["version"] for q in client.get(URL, headers=auth).get_json() if q["slug"] == "alumni-outcomes"]
    assert versions == [1]


def test_dry_run_of_the_same_definition_points_to_the_version_kept(client, auth, builtin_questionnaires):
    from survey.extensions import db
    from survey.questionnaires.models import Questionnaire

    stored = builtin_questionnaires["alumni-outcomes"]
    response = client.post(f"{URL}?dry_run=true", json=stored.definition, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["version"], body["new_version"], body["id"]) == (1, False, stored.id)
    db.session.expire_all()
    assert db.session.get(Questionnaire, stored.id).definition == stored.definition


def test_dry_run_of_an_invalid_definition_gives_the_same_422(client, auth):
    definition = small_definition()
    definition["questions"][1]["type"] = "essay"
    dry = client.post(f"{URL}?dry_run=true", json=definition, headers=auth)
    real = client.post(URL, json=definition, headers=auth)
    assert dry.status_code == real.status_code == 422
    assert dry.get_json()["errors"] == real.get_json()["errors"]


@pytest.mark.parametrize("value", ["false", "0"])
def test_dry_run_false_stores(client, auth, value):
    response = client.post(f"{URL}?dry_run={value}", json=small_definition(), headers=auth)
    assert response.status_code == 201
    assert len(client.get(URL, headers=auth).get_json()) == 1


@pytest.mark.parametrize("value", ["maybe", "", "2"])
def test_a_dry_run_that_is_not_a_boolean_gives_422(client, auth, value):
    response = client.post(f"{URL}?dry_run={value}", json=small_definition(), headers=auth)
    assert response.status_code == 422 and "dry_run" in response.get_json()["message"]
    assert client.get(URL, headers=auth).get_json() == []


def test_the_documented_example_definition_is_valid(client, auth):
    from survey.api.schemas import DEFINITION_EXAMPLE

    response = client.post(f"{URL}?dry_run=true", json=DEFINITION_EXAMPLE, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
