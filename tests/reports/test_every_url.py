"""Every report URL, as every role and as an anonymous visitor: who may read the live
report, publish, follow a figure to its claims, draw and check samples; the public
pages of a published report need no login."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from survey.audit.models import AuditEvent
from survey.extensions import db
from survey.reports.document import Selection
from survey.reports.models import ReportSnapshot, SampleCheck
from survey.reports.publishing import publish
from survey.reports.sampling import draw_sample
from tests.factories import token

EVERYONE = (None, "admin", "committee", "chair", "auditor")
#: endpoint → the roles that may use it (None: anonymous visitors)
ALLOWED = {
    "reports.index": {"admin", "chair", "auditor"},
    "reports.pdf": {"admin", "chair", "auditor"},
    "reports.csv": {"admin", "chair", "auditor"},
    "reports.published": {"admin", "chair", "auditor"},
    "reports.snapshot": {"admin", "chair", "auditor"},
    "reports.publish": {"chair"},
    "reports.trace": {"chair", "auditor"},
    "reports.sample": {"chair", "auditor"},
    "reports.draw": {"auditor"},
    "reports.check": {"auditor"},
    "reports.public": set(EVERYONE),
    "reports.public_json": set(EVERYONE),
    "reports.public_pdf": set(EVERYONE),
}


def _rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("reports.") and not rule.endpoint.endswith(".static"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_every_report_rule_is_in_the_table(app):
    assert {rule.endpoint for rule, _ in _rules(app)} == set(ALLOWED)


@pytest.fixture
def world(cohort, create_user):
    chair, auditor = create_user(role="chair"), create_user(role="auditor")
    snapshot = publish(chair, Selection(campaign_id=cohort.id), "Impact report 2026")
    db.session.flush()
    sample = draw_sample(auditor, snapshot, 2)
    db.session.commit()
    return {"chair": chair, "auditor": auditor, "snapshot": snapshot, "sample": sample, "campaign": cohort}


@pytest.mark.parametrize("role", EVERYONE)
def test_each_role_reaches_exactly_its_report_pages(app, world, create_user, browser, role):
    user = {"chair": world["chair"], "auditor": world["auditor"]}.get(role) or (create_user(role=role) if role else None)
    client = browser(user)
    csrf = token(client, "/login") if user is None else token(client, "/")
    values = {"snapshot_id": world["snapshot"].id, "sample_id": world["sample"].id, "position": 1,
              "slug": world["snapshot"].slug}
    before = (db.session.scalar(select(func.count()).select_from(ReportSnapshot)),
              db.session.scalar(select(func.count()).select_from(SampleCheck).where(SampleCheck.verdict.is_not(None))))
    for rule, method in _rules(app):
        url = rule.build({name: values[name] for name in rule.arguments}, append_unknown=False)[1]
        query = f"?campaign={world['campaign'].id}" if rule.endpoint in ("reports.pdf", "reports.csv") else ""
        if method == "GET":
            response = client.get(url + query)
        else:  # a valid request in every way but the role
            response = client.post(url, data={"csrf_token": csrf, "size": 1, "check1-verdict": "confirmed",
                                              "title": "Mine now", "campaign": world["campaign"].id})
        allowed = role in ALLOWED[rule.endpoint]
        where = f"{method} {url} as {role}"
        if allowed:
            assert response.status_code in (200, 302, 422), where
            if response.status_code == 302:
                assert "/login" not in response.headers["Location"], where
        elif user is None:
            assert response.status_code == 302 and "/login" in response.headers["Location"], where
        else:
            assert response.status_code == 403, where
    after = (db.session.scalar(select(func.count()).select_from(ReportSnapshot)),
             db.session.scalar(select(func.count()).select_from(SampleCheck).where(SampleCheck.verdict.is_not(None))))
    # Only the chair's POST published, only the auditor's checked.
    assert after == (before[0] + (role == "chair"), before[1] + (role == "auditor"))
    if role not in ("chair", "auditor"):
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.in_(("publish", "sample_drawn", "sample_checked")))) == 2
