"""The report's figures on a fixture with known counts, checked against values
computed by hand (Wilson bounds to 4 decimals)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from survey.claims.models import Claim
from survey.extensions import db
from survey.reports.figures import compute
from survey.reports.stats import Rate, wilson


@pytest.mark.parametrize("successes, n, low, high", [
    (3, 10, 0.1078, 0.6032),   # the textbook example
    (0, 5, 0.0, 0.4345),       # z²/(n+z²) at the top
    (5, 5, 0.5655, 1.0),
    (6, 10, 0.3127, 0.8318),
])
def test_wilson_intervals(successes, n, low, high):
    assert [round(bound, 4) for bound in wilson(successes, n)] == [low, high]


def test_no_one_to_count_has_no_rate():
    assert wilson(0, 0) is None
    assert Rate(0, 0).value is None and Rate(0, 0).as_dict()["ci95"] is None
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_the_figures_of_a_known_cohort(cohort):
    figures = compute([cohort.id])
    assert (figures.invited, figures.responded, figures.known) == (10, 6, 5)
    assert figures.activities == {"employed_full_time": 2, "self_employed": 1, "continuing_education": 1,
                                  "seeking": 1, "unknown": 1}
    out = figures.as_dict()
    assert out["response_rate"] == {"numerator": 6, "denominator": 10, "value": 0.6,
                                    "ci95": pytest.approx([0.3127, 0.8318], abs=5e-5)}
    assert out["knowledge_rate"]["value"] == 0.5
    assert out["career_outcomes_rate"] == {"numerator": 4, "denominator": 5, "value": 0.8,
                                           "ci95": pytest.approx([0.3755, 0.9638], abs=5e-5)}
    # Two people have a proven outcome (one of them two claims, one proven): over the cohort,
    # then over the respondents.
    assert out["proven_rate"] == {"numerator": 2, "denominator": 10, "value": 0.2,
                                  "ci95": pytest.approx([0.0567, 0.5098], abs=5e-5)}
    assert out["proven_among_respondents"]["ci95"] == pytest.approx([0.0968, 0.7000], abs=5e-5)
    assert figures.outcomes["new_job"] == {"claimed": 3, "pending": 0, "proven": 1, "rejected": 1,
                                           "inconclusive": 0, "withdrawn": 1, "revoked": 0}
    assert figures.outcomes["raise"]["proven"] == 1
    assert figures.outcomes["business_created"] == {"claimed": 1, "pending": 1, "proven": 0, "rejected": 0,
                                                    "inconclusive": 0, "withdrawn": 0, "revoked": 0}
    # Half the cohort's outcome is known: under the 65% floor, the report says so.
    assert len(figures.warnings) == 1 and "65%" in figures.warnings[0]


def test_a_revoked_claim_is_not_proven_any_more(cohort):
    claim = db.session.scalar(select(Claim).where(Claim.outcome_type == "raise"))
    claim.state, claim.revoked_reason = "revoked", "the payslip was not theirs"
    db.session.commit()
    figures = compute([cohort.id])
    assert figures.outcomes["raise"]["revoked"] == 1 and figures.outcomes["raise"]["proven"] == 0
    assert figures.proven_people == 1


def test_a_person_proven_in_two_campaigns_counts_once(cohort, alumni, monkeypatch):
    """Figures over a period: everyone invited again, and one of the two already proven
    answers again and proves another outcome; the cohort is still 10 people (20
    invitations), 6 respondents (7 answers) and 2 proven people."""
    from survey.campaigns.models import Invitation, Response
    from survey.core.types import utcnow
    from survey.reports.breakdown import people
    from tests.campaigns.helpers import started_campaign

    again = started_campaign(alumni, monkeypatch)
    proven = db.session.scalar(select(Claim).where(Claim.campaign_id == cohort.id, Claim.state == "proven"))
    invitation = db.session.scalar(select(Invitation).where(Invitation.campaign_id == again.id,
                                                            Invitation.stakeholder_id == proven.stakeholder_id))
    invitation.completed_at, invitation.status = utcnow(), "completed"
    response = Response(campaign_id=again.id, invitation_id=invitation.id, locale="en", submitted_at=utcnow(),
                        answers={"activity": "employed_full_time"})
    db.session.add(response)
    db.session.flush()
    db.session.add(Claim(response_id=response.id, campaign_id=again.id, stakeholder_id=proven.stakeholder_id,
                         outcome_type="promotion", state="proven", token_nonce="n", token_hash="f" * 64,
                         decided_at=utcnow()))
    db.session.commit()

    figures = compute([cohort.id, again.id])
    assert (figures.invited, figures.responded, figures.proven_people) == (10, 6, 2)
    assert figures.known == 5 and sum(figures.activities.values()) == 6
    [group] = people([cohort.id, again.id], ("programme",), threshold=1).groups["programme"]
    assert (group.invited, group.responded, group.proven_people) == (10, 6, 2)
