"""The alumni report's people, whole and per group (programme, cohort, any imported
attribute), with small groups suppressed.

Only alumni campaigns count here: an employee survey of the same period has its own
section (survey/reports/employee.py) and is never part of the alumni cohort.

Everything is counted in people, never in invitations. A person invited to several
campaigns of a period is one person of the cohort; they **responded** if they answered
at least one of those campaigns, and count once however many they answered; they have
a proven outcome if at least one of their claims in those campaigns is proven. (One
campaign invites a person once, so there the invitations are the people.)

A group of fewer than the threshold people (REPORT_MIN_GROUP, default 5) is never
shown. Hiding one group is not enough when the total is shown: the total minus
the visible groups would give it back. So when exactly one group is hidden, the
next smallest is hidden with it (complementary suppression), and no hidden
cell can be worked out by subtraction.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol, TypeVar

from flask import current_app
from sqlalchemy import case, func, select

from survey.audiences.models import Stakeholder
from survey.campaigns.models import Campaign, Invitation
from survey.claims.models import Claim
from survey.extensions import db

#: the label of people whose file gave no value for the attribute
NOT_GIVEN = "(not given)"
#: the kind of campaign the alumni figures count (an employee survey has its own section)
ALUMNI = "alumnus"


class Suppressible(Protocol):
    """What :func:`suppress` needs of a group: its label, and where to mark it hidden."""

    value: str
    suppressed: str | None


G = TypeVar("G", bound=Suppressible)


@dataclass
class Group:
    value: str
    invited: int
    responded: int
    proven_people: int
    #: "small" (under the threshold) or "complementary" (hidden so "small" cannot be derived)
    suppressed: str | None = None

    def as_dict(self) -> dict:
        if self.suppressed:
            return {"value": self.value, "suppressed": self.suppressed}
        return {"value": self.value, "invited": self.invited, "responded": self.responded,
                "proven_people": self.proven_people}


def breakdown(campaign_ids: list[int], attribute: str, threshold: int | None = None) -> list[Group]:
    """Invited, responded and people with a proven outcome per value of ``attribute``."""
    return people(campaign_ids, (attribute,), threshold).groups[attribute]


@dataclass
class People:
    """Everyone invited to the alumni campaigns, counted whole and per value of each attribute."""

    #: distinct people invited to at least one of the campaigns
    invited: int
    #: distinct people who answered at least one of them
    responded: int
    #: distinct people with at least one proven outcome
    proven_people: int
    #: attribute → its groups, small ones suppressed
    groups: dict[str, list[Group]]


def alumni_campaigns(campaign_ids: list[int]) -> list[int]:
    """The alumni campaigns among ``campaign_ids``, in id order."""
    return list(db.session.scalars(select(Campaign.id).where(
        Campaign.id.in_(campaign_ids), Campaign.audience_kind == ALUMNI).order_by(Campaign.id)))


def people(campaign_ids: list[int], attributes: tuple[str, ...], threshold: int | None = None) -> People:
    """Every breakdown at once, in two GROUP BYs over all the attributes together,
    summed per attribute here: the people invited and those who answered (one pass over
    the alumni campaigns' invitations), and the people with a proven outcome (a pass over
    the few who have one, each counted once whatever their claims). Each person has one
    value of each attribute, so the combined groups partition the people, and the counts
    add up."""
    threshold = threshold or current_app.config["REPORT_MIN_GROUP"]
    ids = alumni_campaigns(campaign_ids)
    if not ids:
        return People(0, 0, 0, {attribute: [] for attribute in attributes})
    values = [func.coalesce(Stakeholder.attributes[attribute].as_string(), NOT_GIVEN) for attribute in attributes]
    if len(ids) == 1:
        # One invitation per person and campaign (a unique constraint): the plain counts are people.
        invited, answered = func.count(Invitation.id), func.count(Invitation.completed_at)
    else:
        # A person invited to several campaigns is one person, who answered if they answered any.
        invited = func.count(func.distinct(Invitation.stakeholder_id))
        answered = func.count(func.distinct(case((Invitation.completed_at.is_not(None), Invitation.stakeholder_id))))
    invitations = db.session.execute(
        select(*values, invited, answered)
        .join(Stakeholder, Stakeholder.id == Invitation.stakeholder_id)
        .where(Invitation.campaign_id.in_(ids))
        .group_by(*values)
    ).all()
    proven = db.session.execute(
        select(*values, func.count())
        .where(Stakeholder.id.in_(select(Claim.stakeholder_id)
                                  .where(Claim.campaign_id.in_(ids), Claim.state == "proven")))
        .group_by(*values)
    ).all()
    width = len(attributes)
    totals: dict[str, dict[str, list[int]]] = {attribute: {} for attribute in attributes}
    for rows, first in ((invitations, 0), (proven, 2)):
        for row in rows:
            counts = [int(n) for n in row[width:]]
            for attribute, value in zip(attributes, row):
                summed = totals[attribute].setdefault(str(value), [0, 0, 0])
                for index, count in enumerate(counts, start=first):
                    summed[index] += count
    groups = {attribute: suppress([Group(value, *counts) for value, counts in sorted(by_value.items())], threshold)
              for attribute, by_value in totals.items()}
    return People(sum(int(row[width]) for row in invitations), sum(int(row[width + 1]) for row in invitations),
                  sum(int(row[width]) for row in proven), groups)


def suppress(groups: list[G], threshold: int, size: Callable[[G], int] = attrgetter("invited")) -> list[G]:
    """Hide groups whose ``size`` is under ``threshold``; if that hides exactly one, hide the
    next smallest too. ``size`` is what the report counts: people invited here, respondents
    in the employee survey (survey/reports/employee.py), where answers without a group's
    value are a group of their own so that they are hidden like any other."""
    for group in groups:
        if size(group) < threshold:
            group.suppressed = "small"
    hidden = [g for g in groups if g.suppressed]
    if len(hidden) == 1:
        shown = sorted((g for g in groups if not g.suppressed), key=lambda g: (size(g), g.value))
        if shown:
            shown[0].suppressed = "complementary"
    return groups
