"""Every spreadsheet the app produces (the impact report's CSV, from the staff page and from
the API) neutralises the cells a spreadsheet would run: =, +, -, @, tab, CR, LF, also after
leading spaces; the report's own numbers stay numbers."""
from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from survey.campaigns.models import Invitation
from survey.core.types import utcnow
from survey.extensions import db
from survey.reports.export import FORMULA_STARTS, document_csv, neutralise
from tests.campaigns.helpers import started_campaign

DANGEROUS = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
             "\t=1+1", "\r=1+1", "\n=1+1", "  =1+1"]


def _runnable(cell: str) -> bool:
    return cell.lstrip(" ").startswith(FORMULA_STARTS)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_no_text_comes_out_runnable(text):
    cell = neutralise(text)
    assert not _runnable(cell)
    assert cell in (text, "'" + text)  # nothing lost but an apostrophe


@pytest.mark.parametrize("number, cell", [(-20, "-20"), (0.125, "0.125"), (12, "12")])
def test_the_reports_numbers_stay_numbers(number, cell):
    assert neutralise(number) == cell


def test_a_document_with_formulas_everywhere_gives_a_safe_sheet():
    rate = {"numerator": 1, "denominator": 2, "value": 0.5, "ci95": [0.1, 0.9]}
    figures = {"invited": 2, "responded": 1, "activities": {value: 1 for value in DANGEROUS},
               "outcomes": {value: {"claimed": 1} for value in DANGEROUS}, "warnings": DANGEROUS}
    figures |= {name: rate for name in ("response_rate", "knowledge_rate", "career_outcomes_rate", "proven_rate",
                                         "proven_among_respondents")}
    document = {"figures": figures,
                "breakdowns": {"programme": [{"value": value, "invited": 5} for value in DANGEROUS]},
                "employee": {"respondents": 6, "scales": [], "enps": [{"question": DANGEROUS[0], "n": 6, "promoters": 1,
                                                                         "passives": 1, "detractors": 4, "score": -50}],
                             "by": {"department": [{"value": value, "suppressed": "small"} for value in DANGEROUS]}}}
    rows = list(csv.reader(io.StringIO(document_csv(document), newline="")))
    cells = [cell for row in rows for cell in row]
    assert [cell for cell in cells if _runnable(cell)] == ["-50"]  # the eNPS, a number
    assert "'" + DANGEROUS[0] in cells


@pytest.fixture
def hostile_programmes(alumni, create_stakeholder, monkeypatch):
    """People whose imported programme is a formula (created directly: the importer refuses them)."""
    for value in DANGEROUS:
        create_stakeholder(programme=value)
    for _ in range(6):
        create_stakeholder(programme="Data")
    campaign = started_campaign(alumni, monkeypatch)
    for invitation in db.session.scalars(select(Invitation).where(Invitation.campaign_id == campaign.id)):
        invitation.completed_at, invitation.status = utcnow(), "completed"
    db.session.commit()
    return campaign


def _check_sheet(response):
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers.get("Content-Disposition", "attachment").startswith("attachment")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if _runnable(cell)]
    assert "'" + DANGEROUS[0] in cells  # there, but inert


def test_the_staff_csv_is_safe(hostile_programmes, create_user, browser):
    client = browser(create_user(role="admin"))
    _check_sheet(client.get(f"/reports/report.csv?campaign={hostile_programmes.id}&by=programme"))


def test_the_api_csv_is_safe(hostile_programmes, client):
    from survey.accounts.services import create_api_key

    _key, secret = create_api_key("exports")
    db.session.commit()
    _check_sheet(client.get(f"/api/v1/reports/impact?campaign={hostile_programmes.id}&by=programme&format=csv",
                            headers={"Authorization": f"Bearer {secret}"}))
