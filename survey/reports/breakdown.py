"""Figures per group (programme, cohort, any imported attribute), with small groups
suppressed.

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
from sqlalchemy import func, select

from survey.audiences.models import Stakeholder
from survey.campaigns.models import Invitation
from survey.claims.models import Claim
from survey.extensions import db

#: the label of people whose file gave no value for the attribute
NOT_GIVEN = "(not given)"


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
    """Everyone invited to the campaigns, counted whole and per value of each attribute."""

    invited: int
    responded: int
    #: distinct people with at least one proven outcome
    proven_people: int
    #: attribute → its groups, small ones suppressed
    groups: dict[str, list[Group]]


def people(campaign_ids: list[int], attributes: tuple[str, ...], threshold: int | None = None) -> People:
    """Every breakdown at once, in two GROUP BYs over all the attributes together,
    summed per attribute here: the invitations and their people (one pass over the
    campaigns' people), and the people with a proven outcome (a pass over the few who
    have one, each counted once whatever their claims). Each person has one value of
    each attribute, so the combined groups partition the people, and the counts add up."""
    threshold = threshold or current_app.config["REPORT_MIN_GROUP"]
    values = [func.coalesce(Stakeholder.attributes[attribute].as_string(), NOT_GIVEN) for attribute in attributes]
    invitations = db.session.execute(
        select(*values, func.count(Invitation.id), func.count(Invitation.completed_at))
        .join(Stakeholder, Stakeholder.id == Invitation.stakeholder_id)
        .where(Invitation.campaign_id.in_(campaign_ids))
        .group_by(*values)
    ).all()
    proven = db.session.execute(
        select(*values, func.count())
        .where(Stakeholder.id.in_(select(Claim.stakeholder_id)
                                  .where(Claim.campaign_id.in_(campaign_ids), Claim.state == "proven")))
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
    in the employee survey (survey/reports/employee.py)."""
    for group in groups:
        if size(group) < threshold:
            group.suppressed = "small"
    hidden = [g for g in groups if g.suppressed]
    if len(hidden) == 1:
        shown = sorted((g for g in groups if not g.suppressed), key=lambda g: (size(g), g.value))
        if shown:
            shown[0].suppressed = "complementary"
    return groups
