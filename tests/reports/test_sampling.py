"""The auditor's sample: drawn at random from a snapshot's proven claims, drawn again
identically from its seed, each claim re-checked, the confirmation rate published
with its interval; `flask reports verify` checks hashes and draws."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from survey.claims import services as claims
from survey.claims.models import Claim
from survey.core.errors import InvalidState, PermissionDenied, ValidationFailed
from survey.extensions import db
from survey.reports.document import Selection
from survey.reports.models import AuditSample, ReportSnapshot, SampleCheck
from survey.reports.publishing import publish
from survey.reports.sampling import check, draw, draw_sample, population
from tests.factories import token


@pytest.fixture
def snapshot(cohort, chair):
    snapshot = publish(chair, Selection(campaign_id=cohort.id), "Impact report 2026")
    db.session.commit()
    return snapshot


def test_the_same_seed_draws_the_same_claims():
    ids = list(range(1, 101))
    assert draw("3f2a", ids, 10) == draw("3f2a", ids, 10)
    assert draw("3f2a", ids, 10) != draw("3f2b", ids, 10)
    assert sorted(draw("seed", ids[:3], 10)) == ids[:3]  # never more than there are


def test_the_auditor_draws_a_reproducible_sample_of_proven_claims(snapshot, auditor, chair):
    with pytest.raises(PermissionDenied):
        draw_sample(chair, snapshot, 1)
    with pytest.raises(ValidationFailed):
        draw_sample(auditor, snapshot, 0)
    sample = draw_sample(auditor, snapshot, 5)
    db.session.commit()
    # Only two claims are proven: the sample is both, in the order the seed draws them.
    assert sample.size == 2
    drawn = [c.snapshot_claim_id for c in sample.checks]
    assert drawn == draw(sample.seed, population(snapshot), 5)
    assert {c.claim.state for c in sample.checks} == {"proven"}


def test_a_report_with_nothing_proven_cannot_be_sampled(cohort, chair, auditor):
    for claim in db.session.scalars(select(Claim).where(Claim.state == "proven")):
        claims.revoke(claim, "revoked for the test", chair=chair)
    empty = publish(chair, Selection(campaign_id=cohort.id), "Nothing proven")
    with pytest.raises(InvalidState):
        draw_sample(auditor, empty, 10)


def test_checks_give_the_confirmation_rate_with_its_interval(snapshot, auditor, browser):
    client = browser(auditor)
    page = client.get(f"/reports/published/{snapshot.id}").get_data(as_text=True)
    assert "Draw a sample" in page
    response = client.post(f"/reports/published/{snapshot.id}/samples",
                           data={"size": 2, "csrf_token": token(client, "/")})
    assert response.status_code == 302
    sample = db.session.scalar(select(AuditSample))
    url = f"/reports/samples/{sample.id}"
    fresh = client.get(url).get_data(as_text=True)
    assert "None checked yet." in fresh and "0 of 0" not in fresh
    # "Not confirmed" needs a reason: refused, nothing saved.
    refused = client.post(f"{url}/checks/1", data={"check1-verdict": "not_confirmed", "check1-note": "",
                                                   "csrf_token": token(client, url)})
    assert refused.status_code == 422 and "Say why the claim is not confirmed." in refused.get_data(as_text=True)
    assert db.session.scalar(select(SampleCheck).where(SampleCheck.position == 1)).verdict is None
    client.post(f"{url}/checks/1", data={"check1-verdict": "confirmed", "csrf_token": token(client, url)})
    client.post(f"{url}/checks/2", data={"check2-verdict": "not_confirmed",
                                         "check2-note": "The contract is unsigned.", "csrf_token": token(client, url)})
    page = client.get(url).get_data(as_text=True)
    # 1 of 2 confirmed: Wilson 95% interval 9.5% – 90.5%.
    assert "Confirmed: 1 of 2 checked" in page and "9.5%" in page and "90.5%" in page
    assert "The contract is unsigned." in page
    public = browser().get(f"/p/{snapshot.slug}").get_data(as_text=True)
    assert "Independent verification" in public and "50.0%" in public and sample.seed in public


def test_only_the_auditor_draws_and_checks(snapshot, auditor, chair, create_user, browser):
    sample = draw_sample(auditor, snapshot, 1)
    db.session.commit()
    with pytest.raises(PermissionDenied):
        check(chair, sample.checks[0], "confirmed", "")
    for user in (chair, create_user(role="admin")):
        client = browser(user)
        csrf = token(client, "/")
        assert client.post(f"/reports/published/{snapshot.id}/samples", data={"size": 1, "csrf_token": csrf}).status_code == 403
        assert client.post(f"/reports/samples/{sample.id}/checks/1",
                           data={"check1-verdict": "confirmed", "csrf_token": csrf}).status_code == 403
    assert browser(chair).get(f"/reports/samples/{sample.id}").status_code == 200  # the chair reads it
    assert browser(create_user(role="admin")).get(f"/reports/samples/{sample.id}").status_code == 403
    assert browser(auditor).get(f"/reports/samples/{sample.id}/checks/9").status_code == 405
    assert db.session.scalar(select(SampleCheck)).verdict is None


def test_verify_checks_the_hashes_and_the_draws(app, snapshot, auditor, chair):
    draw_sample(auditor, snapshot, 2)
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reports", "verify", snapshot.slug])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "unchanged since publication" in result.output
    assert "the seed draws these claims" in result.output
    # A later decision changes the inputs, not the published report.
    claims.revoke(db.session.scalar(select(Claim).where(Claim.state == "proven")), "late finding", chair=chair)
    db.session.commit()
    result = runner.invoke(args=["reports", "verify", snapshot.slug])
    assert result.exit_code == 0 and "changed since publication" in result.output
    # Tampering with a drawn claim is caught (SQLite lets us; PostgreSQL refuses the UPDATE).
    if db.engine.dialect.name == "sqlite":
        for old, new in ((1, 99), (2, 1), (99, 2)):  # swap the order of the draw
            db.session.execute(update(SampleCheck).where(SampleCheck.position == old).values(position=new))
        db.session.execute(update(ReportSnapshot).values(content=b"{}"))
        db.session.commit()
        result = runner.invoke(args=["reports", "verify", snapshot.slug])
        assert result.exit_code == 1
        assert "DOES NOT MATCH the stored bytes" in result.output and "DOES NOT MATCH its seed" in result.output
    assert runner.invoke(args=["reports", "verify", "nope"]).exit_code == 1


def test_a_slug_never_starts_like_a_command_line_option(monkeypatch):
    """``flask reports verify SLUG`` read a slug starting with "-" as an option (one in 64)."""
    from survey.reports import publishing

    drawn = iter(["-Ab3xYz0123456789", "--Zz", "Ab3xYz0123456789"])
    monkeypatch.setattr(publishing.secrets, "token_urlsafe", lambda n: next(drawn))
    assert publishing.new_slug() == "Ab3xYz0123456789"
