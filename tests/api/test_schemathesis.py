"""Schemathesis against the OpenAPI document, over HTTP on the live server: generated
requests to every operation, valid and invalid, find no server error and no response
that breaks the schema (status codes, content types, bodies), and invalid data is
refused. Its command line is used rather than its pytest plugin, which does not run
under pytest 9."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,negative_data_rejection")


def test_the_api_keeps_the_promises_of_its_openapi_document(live_server, api_key, builtin_questionnaires,
                                                            tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a test dependency (pyproject.toml)"
    result = subprocess.run(
        [st, "run", f"{live_server}/api/v1/openapi.json", "--header", f"Authorization: Bearer {api_key}",
         "--checks", CHECKS, "--max-examples", "25", "--seed", "1", "--generation-deterministic",
         "--workers", "1", "--request-timeout", "20", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
