"""Every API route needs a valid, unrevoked key; the OpenAPI document describes them."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from survey.extensions import db

ROUTES = [
    ("GET", "/api/v1/questionnaires"),
    ("POST", "/api/v1/questionnaires"),
    ("POST", "/api/v1/audiences/import?kind=alumnus"),
    ("POST", "/api/v1/audiences/import"),  # the missing kind must not be reported before the key
    ("POST", "/api/v1/campaigns"),
    ("POST", "/api/v1/campaigns/1/schedule"),
    ("GET", "/api/v1/campaigns/1"),
    ("GET", "/api/v1/campaigns"),
    ("PATCH", "/api/v1/campaigns/1"),
    ("POST", "/api/v1/campaigns/1/unschedule"),
    ("GET", "/api/v1/campaigns/1/funnel"),
    ("GET", "/api/v1/questionnaires/1"),
    ("POST", "/api/v1/questionnaires?dry_run=true"),
    ("GET", "/api/v1/audiences"),
]


def _assert_401(response):
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert body["code"] == 401
    assert "errors" in body
    assert "API key" in body["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,path", ROUTES)
def test_no_key_gives_401_json(client, method, path):
    _assert_401(client.open(path, method=method))


@pytest.mark.parametrize("method,path", ROUTES)
def test_no_key_with_a_body_gives_401_not_a_validation_error(client, method, path):
    # An unauthenticated caller learns nothing about what the body should hold.
    _assert_401(client.open(path, method=method, json={"name": ""}))


@pytest.mark.parametrize("method,path", ROUTES)
@pytest.mark.parametrize("header", [
    "Bearer att_not-a-real-key",
    "Bearer ",
    "Bearer",
    "Basic dXNlcjpwYXNz",
    "att_not-a-real-key",
])
def test_wrong_key_gives_401(client, api_key, method, path, header):
    _assert_401(client.open(path, method=method, headers={"Authorization": header}))


@pytest.mark.parametrize("method,path", ROUTES)
def test_a_key_sent_with_another_scheme_gives_401(client, api_key, method, path):
    _assert_401(client.open(path, method=method, headers={"Authorization": f"Basic {api_key}"}))


@pytest.mark.parametrize("method,path", ROUTES)
def test_revoked_key_gives_401(client, api_key, method, path):
    from survey.accounts.models import ApiKey
    from survey.core.types import utcnow

    key = db.session.scalars(select(ApiKey)).one()
    key.revoked_at = utcnow()
    db.session.commit()
    _assert_401(client.open(path, method=method, headers={"Authorization": f"Bearer {api_key}"}))


def test_a_valid_key_works_whatever_the_scheme_case_and_records_its_use(client, api_key):
    from survey.accounts.models import ApiKey

    response = client.get("/api/v1/questionnaires", headers={"Authorization": f"bearer {api_key}"})
    assert response.status_code == 200
    db.session.expire_all()
    assert db.session.scalars(select(ApiKey)).one().last_used_at is not None


def test_the_same_key_stops_working_once_revoked(client, api_key, auth):
    from survey.accounts.models import ApiKey
    from survey.core.types import utcnow

    assert client.get("/api/v1/questionnaires", headers=auth).status_code == 200
    db.session.scalars(select(ApiKey)).one().revoked_at = utcnow()
    db.session.commit()
    _assert_401(client.get("/api/v1/questionnaires", headers=auth))


def test_api_errors_never_send_a_session_cookie(client):
    response = client.get("/api/v1/questionnaires")
    assert "Set-Cookie" not in response.headers


# --------------------------------------------------------------------- OpenAPI

def test_openapi_document_lists_every_route_with_bearer_security(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = json.loads(response.get_data(as_text=True))
    assert spec["openapi"].startswith("3.")
    expected = {
        "/api/v1/questionnaires": {"get", "post"},
        "/api/v1/audiences/import": {"post"},
        "/api/v1/campaigns": {"get", "post"},
        "/api/v1/campaigns/{campaign_id}/schedule": {"post"},
        "/api/v1/campaigns/{campaign_id}/unschedule": {"post"},
        "/api/v1/campaigns/{campaign_id}/funnel": {"get"},
        "/api/v1/campaigns/{campaign_id}": {"get", "patch"},
        "/api/v1/questionnaires/{questionnaire_id}": {"get"},
        "/api/v1/audiences": {"get"},
    }
    for path, methods in expected.items():
        assert path in spec["paths"], f"{path} missing from {sorted(spec['paths'])}"
        assert methods <= set(spec["paths"][path]), path
        for method in methods:
            assert spec["paths"][path][method].get("security") == [{"bearerAuth": []}], (path, method)
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"


def _spec(client) -> dict:
    return json.loads(client.get("/api/v1/openapi.json").get_data(as_text=True))


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "patch", "put", "delete"):
                yield path, method, operation


def test_every_operation_has_an_id_and_documents_its_errors(client):
    spec = _spec(client)
    ids = [operation.get("operationId") for _, _, operation in _operations(spec)]
    assert all(ids) and len(set(ids)) == len(ids)
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        assert "401" in responses, (path, method)
        if "{" in path:
            assert "404" in responses, (path, method)
        error = responses["401"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    campaign = spec["paths"]["/api/v1/campaigns/{campaign_id}"]
    assert {"404", "409", "422"} <= set(campaign["patch"]["responses"])
    assert "409" in spec["paths"]["/api/v1/campaigns/{campaign_id}/unschedule"]["post"]["responses"]
    dry_run = spec["paths"]["/api/v1/questionnaires"]["post"]["responses"]["200"]
    assert dry_run["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/QuestionnairePreviewOut"}


def test_links_lead_from_a_new_campaign_or_questionnaire_to_what_takes_its_id(client):
    spec = _spec(client)
    operations = {operation["operationId"]: (path, operation) for path, _, operation in _operations(spec)}
    created = spec["paths"]["/api/v1/campaigns"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in created.values()} == {
        "getCampaign", "updateCampaign", "scheduleCampaign", "unscheduleCampaign", "listRecipients",
        "getCampaignFunnel"}
    for link in created.values():
        path, _ = operations[link["operationId"]]
        assert link["parameters"] == {"campaign_id": "$response.body#/id"} and "{campaign_id}" in path
    questionnaire = spec["paths"]["/api/v1/questionnaires"]["post"]["responses"]["201"]["links"]
    assert list(questionnaire.values()) == [
        {"operationId": "getQuestionnaire", "parameters": {"questionnaire_id": "$response.body#/id"}}]


def test_the_request_schemas_say_what_the_api_accepts(client):
    schemas = _spec(client)["components"]["schemas"]
    new = schemas["CampaignIn"]["properties"]
    assert new["privacy"]["enum"] == ["identified", "confidential", "anonymous"]
    assert new["send_at"]["format"] == new["closes_at"]["format"] == "date-time"
    assert new["reminders"]["items"]["pattern"].startswith("^P")
    # null or the quiet hours object: not "any object"
    assert new["quiet_hours"]["anyOf"][1] == {"type": "object", "nullable": True, "enum": [None]}
    patch = schemas["CampaignPatchIn"]
    assert "required" not in patch and patch["additionalProperties"] is False
    assert set(patch["properties"]) == set(new)


def test_the_impact_report_documents_its_parameters_and_answers(client):
    operation = _spec(client)["paths"]["/api/v1/reports/impact"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["campaign"]["schema"]["minimum"] == 1
    assert parameters["from"]["schema"]["format"] == parameters["to"]["schema"]["format"] == "date"
    assert "campaign" in operation["description"] and "from" in operation["description"]
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
