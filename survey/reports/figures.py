"""The impact report's alumni figures for a set of campaigns, each from one SQL aggregate.

Only the alumni campaigns of the set count (an employee survey of the same period has
its own section, survey/reports/employee.py), and everything is counted in people
(survey/reports/breakdown.py): over several campaigns, a person invited to more than one
is one person of the cohort, and a respondent if they answered any of them, once.

Definitions (NACE first-destination, HESA Graduate Outcomes, DESIGN.md):
- cohort: everyone invited; respondents: those who submitted;
- activity: what a respondent said they do; over several campaigns, what the latest of
  their answers that says it gave (an anonymous campaign's answers are linked to nobody,
  so each counts as one respondent's: see _activities);
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

from sqlalchemy import case, func, select

from survey.campaigns.models import Invitation, Response
from survey.claims.models import OUTCOME_TYPES, Claim
from survey.extensions import db
from survey.reports.breakdown import People, alumni_campaigns, people
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
    #: the campaigns of the report (the figures count the alumni campaigns among them)
    campaign_ids: list[int]
    #: people invited, each once
    invited: int
    #: people who answered, each once
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
    """The figures of the alumni campaigns among these (a campaign, or a period's campaigns);
    ``counted``: their people, when the caller counted them already (breakdown.people)."""
    ids = sorted(set(campaign_ids))
    if counted is None:
        counted = people(ids, ())
    alumni = alumni_campaigns(ids)
    outcomes = {outcome: {"claimed": 0, "pending": 0, "proven": 0, "rejected": 0, "inconclusive": 0,
                          "withdrawn": 0, "revoked": 0} for outcome in OUTCOME_TYPES}
    for outcome, state, count in db.session.execute(
        select(Claim.outcome_type, Claim.state, func.count(Claim.id))
        .where(Claim.campaign_id.in_(alumni)).group_by(Claim.outcome_type, Claim.state)
    ):
        row = outcomes[outcome]
        row["claimed"] += count
        row["pending" if state in PENDING else state] += count
    figures = Figures(ids, counted.invited, counted.responded, _activities(alumni), outcomes,
                      counted.proven_people)
    knowledge = figures.knowledge_rate.value
    if knowledge is not None and knowledge < KNOWLEDGE_FLOOR:
        figures.warnings.append(
            f"The knowledge rate is {knowledge:.0%}, under the {KNOWLEDGE_FLOOR:.0%} floor: "
            "the other rates may not describe the whole cohort.")
    return figures


def _activities(ids: list[int]) -> dict[str, int]:
    """Respondents per activity ("unknown" for those who did not say). One campaign has one
    answer per respondent; over several, a person who answered more than one counts once,
    with the latest of their answers that says what they do (else as "unknown"). An answer
    to an anonymous campaign cannot be told apart from its respondent's other answers, so
    it counts on its own: someone who answered it and another campaign of the selection
    is counted twice here (not in ``responded``)."""
    activities: dict[str, int] = {}
    if not ids:
        return activities
    activity = Response.answers["activity"].as_string()
    submitted = (Response.campaign_id.in_(ids), Response.submitted_at.is_not(None))
    if len(ids) == 1:
        queries = [select(activity, func.count(Response.id)).where(*submitted).group_by(activity)]
    else:
        said = case((activity.in_(ACTIVITIES), 0), else_=1)
        latest = (select(activity.label("activity"), func.row_number().over(
                      partition_by=Invitation.stakeholder_id,
                      order_by=(said, Response.submitted_at.desc(), Response.id)).label("rank"))
                  .join(Invitation, Invitation.id == Response.invitation_id).where(*submitted).subquery())
        queries = [select(latest.c.activity, func.count()).where(latest.c.rank == 1).group_by(latest.c.activity),
                   # anonymous answers: linked to nobody, each is one respondent's
                   select(activity, func.count(Response.id))
                   .where(*submitted, Response.invitation_id.is_(None)).group_by(activity)]
    for query in queries:
        for value, count in db.session.execute(query):
            key = value if value in ACTIVITIES else "unknown"
            activities[key] = activities.get(key, 0) + count
    return activities
