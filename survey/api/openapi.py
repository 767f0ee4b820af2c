"""What the OpenAPI document says beyond the schemas: security, error answers, links."""
from __future__ import annotations

from flask_smorest import Blueprint
from flask_smorest.error_handler import ErrorSchema

SECURITY = [{"bearerAuth": []}]
NO_KEY = "No valid API key: send `Authorization: Bearer <key>`."
NO_CAMPAIGN = "No such campaign."
NOT_JSON = "The body is not JSON (Content-Type: application/json)."


def errors(blueprint: Blueprint, described: dict[int, str]):
    """Document an operation's error answers (status → when), each a JSON Error, and 401,
    which every route gives without a valid key. (The 422 of ``@arguments`` is documented
    by flask-smorest itself.)"""

    def decorate(view):
        for status, description in {401: NO_KEY, **described}.items():
            view = blueprint.alt_response(status, schema=ErrorSchema, description=description)(view)
        return view

    return decorate


def links(parameter: str, targets: dict[str, str]) -> dict:
    """OpenAPI links from a response's ``id`` to the operations (name → operationId) that
    take it as ``parameter``: how a client, or schemathesis, goes on from a new object."""
    return {name: {"operationId": operation_id, "parameters": {parameter: "$response.body#/id"}}
            for name, operation_id in targets.items()}
