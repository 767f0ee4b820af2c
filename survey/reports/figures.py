"""The impact report's figures for a set of campaigns, each from one SQL aggregate.

Definitions (NACE first-destination, HESA Graduate Outcomes, DESIGN.md):
- cohort: everyone invited; respondents: those who submitted;
- knowledge rate: respondents whose activity is known, over the cohort (65% is the floor);
- career-outcomes rate: those employed, self-employed, in further education or
  volunteering, over those whose activity is known;
- per outcome type: claims made, pending, proven, rejected, inconclusive, withdrawn, revoked;
- proven rate: people with at least one proven positive outcome, over the whole cohort;
  proven among respondents: the same people over the respondents.
Every rate carries its denominator and a 95% Wilson interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from survey.campaigns.models import Response
from survey.claims.models import OUTCOME_TYPES, Claim
from survey.extensions import db
from survey.reports.breakdown import People, people
from survey.reports.stats import Rate

#: the activity categories (the alumni questionnaire's ``activity`` question)
ACTIVITIES = ("employed_full_time", "employed_part_time", "self_employed", "continuing_education",
              "volunteering", "seeking", "not_seeking")
#: the categories that count as a career outcome (NACE)
CAREER_OUTCOMES = ("employed_full_time", "employed_part_time", "self_employed", "continuing_education",
                   "volunteering")
PENDING = ("submitted", "in_review", "needs_evidence")
#: the floor under which the knowledge rate makes the other rates unreliable
KNOWLEDGE_FLOOR = 0.65


@dataclass
class Figures:
    campaign_ids: list[int]
    invited: int
    responded: int
    #: activity → respondents; "unknown" for those who did not say
    activities: dict[str, int]
    #: outcome type → {claimed, pending, proven, rejected, inconclusive, withdrawn, revoked}
    outcomes: dict[str, dict[str, int]]
    #: people with at least one proven outcome
    proven_people: int
    warnings: list[str] = field(default_factory=list)

    @property
    def known(self) -> int:
        return sum(count for activity, count in self.activities.items() if activity in ACTIVITIES)

    @property
    def response_rate(self) -> Rate:
        return Rate(self.responded, self.invited)

    @property
    def knowledge_rate(self) -> Rate:
        return Rate(self.known, self.invited)

    @property
    def career_outcomes_rate(self) -> Rate:
        return Rate(sum(self.activities.get(a, 0) for a in CAREER_OUTCOMES), self.known)

    @property
    def proven_rate(self) -> Rate:
        return Rate(self.proven_people, self.invited)

    @property
    def proven_among_respondents(self) -> Rate:
        return Rate(self.proven_people, self.responded)

    def as_dict(self) -> dict:
        return {
            "campaigns": self.campaign_ids, "invited": self.invited, "responded": self.responded,
            "response_rate": self.response_rate.as_dict(), "activities": self.activities,
            "knowledge_rate": self.knowledge_rate.as_dict(),
            "career_outcomes_rate": self.career_outcomes_rate.as_dict(), "outcomes": self.outcomes,
            "proven_rate": self.proven_rate.as_dict(),
            "proven_among_respondents": self.proven_among_respondents.as_dict(), "warnings": self.warnings,
        }


def compute(campaign_ids: list[int], counted: People | None = None) -> Figures:
    """The figures of these campaigns together (a campaign, or a period's campaigns);
    ``counted``: their people, when the caller counted them already (breakdown.people)."""
    ids = sorted(set(campaign_ids))
    if counted is None:
        counted = people(ids, ())
    activity = Response.answers["activity"].as_string()
    activities: dict[str, int] = {}
    for value, count in db.session.execute(
        select(activity, func.count(Response.id))
        .where(Response.campaign_id.in_(ids), Response.submitted_at.is_not(None))
        .group_by(activity)
    ):
        key = value if value in ACTIVITIES else "unknown"
        activities[key] = activities.get(key, 0) + count
    outcomes = {outcome: {"claimed": 0, "pending": 0, "proven": 0, "rejected": 0, "inconclusive": 0,
                          "withdrawn": 0, "revoked": 0} for outcome in OUTCOME_TYPES}
    for outcome, state, count in db.session.execute(
        select(Claim.outcome_type, Claim.state, func.count(Claim.id))
        .where(Claim.campaign_id.in_(ids)).group_by(Claim.outcome_type, Claim.state)
    ):
        row = outcomes[outcome]
        row["claimed"] += count
        row["pending" if state in PENDING else state] += count
    figures = Figures(ids, counted.invited, counted.responded, activities, outcomes, counted.proven_people)
    knowledge = figures.knowledge_rate.value
    if knowledge is not None and knowledge < KNOWLEDGE_FLOOR:
        figures.warnings.append(
            f"The knowledge rate is {knowledge:.0%}, under the {KNOWLEDGE_FLOOR:.0%} floor: "
            "the other rates may not describe the whole cohort.")
    return figures
