"""Small groups are never shown, nor recoverable from totals; the report by API, as
JSON or as a CSV that no spreadsheet will execute."""
from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from survey.audit.models import AuditEvent
from survey.campaigns.models import Invitation
from survey.core.types import utcnow
from survey.extensions import db
from survey.reports.breakdown import Group, breakdown, suppress
from survey.reports.export import neutralise
from tests.campaigns.helpers import started_campaign


def _groups(*sizes):
    return [Group(f"g{n}", size, size, 0) for n, size in enumerate(sizes)]


@pytest.mark.parametrize("sizes, hidden", [
    ((20, 12, 7), []),                      # every group large enough
    ((20, 12, 3), ["g2", "g1"]),            # one small group: the next smallest goes with it
    ((20, 2, 3), ["g1", "g2"]),             # two small groups already protect each other
    ((3,), ["g0"]),                         # nothing else to hide with it
])
def test_small_groups_and_their_complement_are_hidden(sizes, hidden):
    groups = suppress(_groups(*sizes), threshold=5)
    assert sorted(g.value for g in groups if g.suppressed) == sorted(hidden)


def test_a_hidden_group_cannot_be_worked_out_from_the_total():
    sizes = (20, 12, 3)
    groups = suppress(_groups(*sizes), threshold=5)
    total = sum(sizes)
    visible = sum(g.invited for g in groups if not g.suppressed)
    hidden = [g for g in groups if g.suppressed]
    # What subtraction gives is the sum of at least two hidden groups, never one of them.
    assert len(hidden) >= 2
    assert total - visible not in {g.invited for g in hidden}
    assert all("invited" not in g.as_dict() for g in hidden)


@pytest.fixture
def programmes(alumni, create_stakeholder, monkeypatch):
    """12 people in Data, 6 in Web, 2 in UX; everyone in Data answered."""
    people = ([create_stakeholder(programme="Data") for _ in range(12)]
              + [create_stakeholder(programme="Web") for _ in range(6)]
              + [create_stakeholder(programme="=HYPERLINK(\"http://evil\")") for _ in range(2)])
    campaign = started_campaign(alumni, monkeypatch)
    for invitation in db.session.scalars(select(Invitation).where(Invitation.campaign_id == campaign.id)):
        if invitation.stakeholder.attributes["programme"] == "Data":
            invitation.completed_at, invitation.status = utcnow(), "completed"
    db.session.commit()
    return campaign


def test_breakdown_by_programme_hides_the_small_group_and_its_complement(programmes):
    groups = {g.value: g.as_dict() for g in breakdown([programmes.id], "programme")}
    assert groups["Data"] == {"value": "Data", "invited": 12, "responded": 12, "proven_people": 0}
    assert groups["Web"] == {"value": "Web", "suppressed": "complementary"}
    assert groups['=HYPERLINK("http://evil")'] == {"value": '=HYPERLINK("http://evil")', "suppressed": "small"}


@pytest.mark.parametrize("value, safe", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("Data", "Data"), ("", ""), (None, ""), (12, "12"),
    # behind any space a spreadsheet may skip, or in full width (found in review)
    ("\u00a0=1+2", "'\u00a0=1+2"), ("\u200b=1+2", "'\u200b=1+2"), ("\u3000@SUM(A1)", "'\u3000@SUM(A1)"),
    ("\uff1dHYPERLINK(1)", "'\uff1dHYPERLINK(1)"),
])
def test_cells_a_spreadsheet_would_run_are_neutralised(value, safe):
    assert neutralise(value) == safe


@pytest.fixture
def api(client, app_ctx):
    from survey.accounts.services import create_api_key

    _key, secret = create_api_key("reports")
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_the_report_as_json_and_as_safe_csv(client, api, programmes):
    report = client.get(f"/api/v1/reports/impact?campaign={programmes.id}", headers=api)
    assert report.status_code == 200
    body = report.get_json()
    assert (body["invited"], body["responded"]) == (20, 12)
    assert body["response_rate"]["denominator"] == 20
    assert {g["value"]: g.get("suppressed") for g in body["breakdowns"]["programme"]}["Web"] == "complementary"

    sheet = client.get(f"/api/v1/reports/impact?campaign={programmes.id}&format=csv", headers=api)
    assert sheet.status_code == 200 and sheet.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(sheet.get_data(as_text=True))))
    assert rows[0] == ["section", "item", "measure", "value", "ci95_low", "ci95_high"]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
    assert ["by programme", "'=HYPERLINK(\"http://evil\")", "invited", "suppressed", "", ""] in rows
    # Each export is on the audit trail.
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "export", AuditEvent.subject == "report:impact")) == 2


@pytest.mark.parametrize("query, status", [
    ("", 422), ("campaign=1&from=2026-01-01&to=2026-12-31", 422), ("from=2026-01-01", 422),
    ("from=2026-12-31&to=2026-01-01", 422), ("campaign=abc", 422), ("campaign=99999", 404),
    ("campaign=1&format=xlsx", 422), ("campaign=1&by=a%20b", 422),
])
def test_bad_queries_are_clear_errors(client, api, programmes, query, status):
    response = client.get(f"/api/v1/reports/impact?{query}", headers=api)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["message"]


def test_a_period_covers_its_campaigns_and_a_key_is_required(client, api, programmes):
    # The day it was sent where the organisation is (DEFAULT_TIMEZONE), not in UTC.
    zone = ZoneInfo(client.application.config["DEFAULT_TIMEZONE"])
    day = programmes.send_at.astimezone(zone).date().isoformat()
    body = client.get(f"/api/v1/reports/impact?from={day}&to={day}", headers=api).get_json()
    assert body["campaigns"] == [programmes.id]
    assert client.get(f"/api/v1/reports/impact?campaign={programmes.id}").status_code == 401
