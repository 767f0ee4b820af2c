"""REST API v1: JSON, ``Authorization: Bearer <key>``, described at /api/v1/openapi.json."""
from __future__ import annotations

from flask import Flask

from survey.extensions import api, csrf


def register_api(app: Flask) -> None:
    from survey.api.reports import reports
    from survey.api.routes import audiences, campaigns, questionnaires

    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    for blueprint in (questionnaires, audiences, campaigns, reports):
        csrf.exempt(blueprint)  # bearer keys, no cookies: nothing to forge
        api.register_blueprint(blueprint)
