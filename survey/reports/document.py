"""The impact report as one plain document: what the page, the PDF, the API and a
published snapshot all render. Building it is the only place that queries; every
rendering reads the dict, so a snapshot renders exactly as it was published."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from survey.campaigns.models import Campaign
from survey.extensions import db
from survey.reports.breakdown import people
from survey.reports.employee import employee_figures
from survey.reports.figures import compute

#: the breakdowns given unless others are asked for
DEFAULT_BREAKDOWNS = ("programme", "cohort")


@dataclass(frozen=True)
class Selection:
    """Which campaigns a report covers: one campaign, or those sent in a period."""

    campaign_id: int | None = None
    start: date | None = None
    end: date | None = None
    breakdowns: tuple[str, ...] = DEFAULT_BREAKDOWNS

    def campaign_ids(self) -> list[int]:
        """The campaigns covered; a draft (never sent) is never part of a report. A period's
        days are the organisation's (DEFAULT_TIMEZONE): from the first day's midnight there
        up to, not including, the midnight after the last day, so its last instant is in."""
        query = select(Campaign.id).where(Campaign.status != "draft").order_by(Campaign.id)
        if self.campaign_id is not None:
            return list(db.session.scalars(query.where(Campaign.id == self.campaign_id)))
        zone = ZoneInfo(current_app.config["DEFAULT_TIMEZONE"])
        start = datetime.combine(self.start, time(0), tzinfo=zone)
        after = datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=zone)
        return list(db.session.scalars(query.where(Campaign.send_at >= start, Campaign.send_at < after)))

    def as_dict(self) -> dict:
        period = {"from": self.start.isoformat(), "to": self.end.isoformat()} if self.start else None
        return {"campaign": self.campaign_id, "period": period, "breakdowns": list(self.breakdowns)}


def build(campaign_ids: list[int], breakdowns=DEFAULT_BREAKDOWNS, *, with_comments: bool = False) -> dict:
    """Every figure of the report for these campaigns. Free-text comments only on
    request: they are for staff pages, never for a published report."""
    threshold = current_app.config["REPORT_MIN_GROUP"]
    everyone = people(campaign_ids, tuple(breakdowns), threshold)
    return {
        "figures": compute(campaign_ids, everyone).as_dict(),
        "breakdowns": {attribute: [group.as_dict() for group in everyone.groups[attribute]]
                       for attribute in breakdowns},
        "employee": employee_figures(campaign_ids, with_comments=with_comments),
        "threshold": threshold,
    }
