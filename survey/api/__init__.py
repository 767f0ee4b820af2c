"""REST API v1: JSON, ``Authorization: Bearer <key>``, described at /api/v1/openapi.json."""
from __future__ import annotations

from flask import Flask

from survey.extensions import api, csrf

#: how apispec writes "this schema or null" in OpenAPI 3.0, which has no null type
_ANY_OBJECT_OR_NULL = {"type": "object", "nullable": True}
#: …and what it means: null, and nothing else
_NULL = {"type": "object", "nullable": True, "enum": [None]}


def register_api(app: Flask) -> None:
    from survey.api.reports import reports
    from survey.api.routes import audiences, campaigns, questionnaires

    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    api.ma_plugin.converter.add_attribute_function(_nullable_nested_is_null)
    for blueprint in (questionnaires, audiences, campaigns, reports):
        csrf.exempt(blueprint)  # bearer keys, no cookies: nothing to forge
        api.register_blueprint(blueprint)


def _nullable_nested_is_null(self, field, ret, **_kwargs) -> dict:
    """A nested schema that may be null: apispec documents it as "that schema, or any object
    (or null)", so a client or a test generator would send objects the API refuses. Say
    "that schema, or null"."""
    if "anyOf" in ret:
        ret["anyOf"] = [_NULL if branch == _ANY_OBJECT_OR_NULL else branch for branch in ret["anyOf"]]
    return {}
