"""Schemathesis against the OpenAPI document, over HTTP on the live server: generated
requests to every operation, valid and invalid, find no server error and no response
that breaks the schema (status codes, content types, bodies), and invalid data is
refused. Its command line is used rather than its pytest plugin, which does not run
under pytest 9."""
from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,negative_data_rejection")


def _config(tmp_path, questionnaire, create_stakeholder) -> Path:
    """Schemathesis' settings: scheduling and unscheduling get a draft that can be scheduled
    (random ids are unknown, and the campaigns it creates itself have nobody in their
    audience), so that it reaches more than the 404."""
    from tests.campaigns.helpers import make_campaign

    create_stakeholder(kind=questionnaire.kind)
    send_at = datetime.now(timezone.utc) + timedelta(days=365)  # never starts during the run
    draft = make_campaign(questionnaire, send_at=send_at, closes_at=send_at + timedelta(days=30))
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join(
        f'[[operations]]\ninclude-operation-id = "{operation_id}"\nparameters = {{ campaign_id = {draft.id} }}\n'
        for operation_id in ("scheduleCampaign", "unscheduleCampaign")))
    return config


def test_the_api_keeps_the_promises_of_its_openapi_document(live_server, api_key, builtin_questionnaires,
                                                            create_stakeholder, tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a test dependency (pyproject.toml)"
    config = _config(tmp_path, builtin_questionnaires["alumni-outcomes"], create_stakeholder)
    result = subprocess.run(
        [st, "--config-file", str(config), "run", f"{live_server}/api/v1/openapi.json",
         "--header", f"Authorization: Bearer {api_key}", "--checks", CHECKS, "--max-examples", "25", "--seed", "1", "--generation-deterministic",
         "--workers", "1", "--request-timeout", "20", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    print(result.stdout, result.stderr, sep="\n")  # the whole report, with `pytest -s`
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
