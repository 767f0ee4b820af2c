"""A NUL character (\\u0000) anywhere in a request is a 422: PostgreSQL stores no text
holding one, and the request would otherwise fail there with a 500."""
from __future__ import annotations

import copy

import pytest

from tests.api.helpers import (
    CAMPAIGNS,
    assert_json_error,
    campaign_body,
    create_campaign,
)


@pytest.fixture
def alumni(builtin_questionnaires):
    return builtin_questionnaires["alumni-outcomes"]


@pytest.mark.parametrize("changes", [
    {"name": "Alumni\x00 2024"},
    {"audience": {"kind": "alumnus", "filters": {"cohort": "2024\x00"}}},
    {"audience": {"kind": "alumnus", "filters": {"co\x00hort": "2024"}}},
], ids=["name", "filter value", "filter key"])
def test_campaign_bodies_with_a_nul_are_refused(client, auth, alumni, changes):
    payload = assert_json_error(client.post(CAMPAIGNS, json=campaign_body(alumni.id, **changes), headers=auth), 422)
    assert "NUL" in payload["message"]
    campaign_id = create_campaign(client, auth, alumni.id)
    assert_json_error(client.patch(f"{CAMPAIGNS}/{campaign_id}", json=changes, headers=auth), 422)
    assert client.get(f"{CAMPAIGNS}/{campaign_id}", headers=auth).get_json()["name"] == "Alumni 2024, six months on"


@pytest.mark.parametrize("dry_run", ["false", "true"])
def test_a_definition_with_a_nul_is_refused(client, auth, alumni, dry_run):
    definition = copy.deepcopy(alumni.definition)
    definition["title"]["en"] = "What changed\x00"
    response = client.post(f"/api/v1/questionnaires?dry_run={dry_run}", json=definition, headers=auth)
    assert "NUL" in assert_json_error(response, 422)["message"]


@pytest.mark.parametrize("path", ["/api/v1/audiences?email=a%00", "/api/v1/campaigns?status=%00",
                                  "/api/v1/campaigns/{id}/recipients?email=%00"])
def test_queries_with_a_nul_are_refused(client, auth, alumni, path):
    path = path.format(id=create_campaign(client, auth, alumni.id))
    assert "NUL" in assert_json_error(client.get(path, headers=auth), 422)["message"]
