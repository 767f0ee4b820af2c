"""Employee-survey figures: scales, eNPS and comments, only ever in aggregate.

Every count comes from SQL: one row of ``count(CASE …)`` per point of every scale, for
the whole set of campaigns and then per group (GROUP BY the department, programme…
copied into ``Response.segment`` at submission), so a campaign of hundreds of
thousands of responses is read in one pass per grouping and nothing links an
answer to a person. Means, favourable rates and eNPS are worked out from those
counts (a few dozen numbers), never from the rows.

What is never shown: any figure of fewer than REPORT_MIN_GROUP answers; a group of
fewer respondents (those without a value are a group too), nor the next smallest
group with it when it is the only one hidden (complementary suppression, see
breakdown.py); free-text comments to a question fewer than REPORT_COMMENT_MIN_GROUP
people answered, and comments are listed alphabetically and alone, never in
submission order nor beside a group.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter

from flask import current_app
from sqlalchemy import ColumnElement, case, func, select

from survey.campaigns.models import Campaign, Response
from survey.extensions import db
from survey.questionnaires.models import Questionnaire
from survey.reports.breakdown import NOT_GIVEN, suppress
from survey.reports.stats import Rate

#: eNPS on a 0–10 scale: 9–10 promote, 7–8 are passive, 0–6 detract
PROMOTER_FROM, DETRACTOR_UP_TO = 9, 6
COMMENT_TYPES = ("text", "long_text")
#: the WHERE clauses choosing the submitted responses of the campaigns
Filters = tuple[ColumnElement[bool], ...]


@dataclass
class Scale:
    """A scale question as the campaigns' questionnaires define it (same id: same question)."""

    id: str
    label: dict
    min: int
    max: int

    @property
    def is_enps(self) -> bool:
        return (self.min, self.max) == (0, 10)

    @property
    def points(self) -> range:
        return range(self.min, self.max + 1)


@dataclass
class SegmentGroup:
    """Respondents sharing one value of a segment attribute, with their answer counts."""

    value: str
    n: int
    #: question id → [(point, answers)]
    counts: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    suppressed: str | None = None


def employee_figures(campaign_ids: list[int], *, with_comments: bool = False, threshold: int | None = None,
                     comment_threshold: int | None = None) -> dict | None:
    """The employee-survey section of the report: the employee campaigns among ``campaign_ids``;
    None when there is none, or their questionnaires have no scale. (An alumni questionnaire's
    scales and free texts, such as an employer's name, are never shown this way.)"""
    config = current_app.config
    campaign_ids = list(db.session.scalars(select(Campaign.id).where(
        Campaign.id.in_(campaign_ids), Campaign.audience_kind == "employee")))
    if not campaign_ids:
        return None
    threshold = config["REPORT_MIN_GROUP"] if threshold is None else threshold
    comment_threshold = config["REPORT_COMMENT_MIN_GROUP"] if comment_threshold is None else comment_threshold
    scales, comment_questions = _questions(campaign_ids)
    if not scales:
        return None
    submitted = (Response.campaign_id.in_(campaign_ids), Response.submitted_at.is_not(None))
    columns = _point_columns(scales)
    comment_counts = [func.count(case((Response.answers[q["id"]].as_string() != "", 1)))
                      for q in comment_questions]
    row = db.session.execute(select(func.count(), *columns, *comment_counts).where(*submitted)).one()
    respondents, points, commented = row[0], row[1:1 + len(columns)], row[1 + len(columns):]
    counts = _split(scales, points)
    suppressed = respondents < threshold
    figures: dict = {"respondents": respondents, "threshold": threshold, "comment_threshold": comment_threshold,
                     "suppressed": suppressed, "scales": [], "enps": [], "by": {}, "comments": []}
    if not suppressed:
        figures["scales"] = [_scale(s, counts[s.id], threshold) for s in scales if not s.is_enps]
        figures["enps"] = [_enps(s, counts[s.id], threshold) for s in scales if s.is_enps]
        for attribute in config["REPORT_SEGMENTS"]:
            groups = _groups(attribute, scales, submitted, threshold)
            if groups:
                figures["by"][attribute] = groups
    if with_comments:
        figures["comments"] = [
            _comments(q, n, submitted, shown=not suppressed and n >= comment_threshold)
            for q, n in zip(comment_questions, commented)
        ]
    return figures


def _questions(campaign_ids: list[int]) -> tuple[list[Scale], list[dict]]:
    """Scale and free-text questions of the campaigns' questionnaires, in questionnaire order;
    a question id used by several versions is one question spanning all their points."""
    definitions = db.session.scalars(
        select(Questionnaire.definition).where(Questionnaire.id.in_(
            select(Campaign.questionnaire_id).where(Campaign.id.in_(campaign_ids))))
        .order_by(Questionnaire.id)
    )
    scales: dict[str, Scale] = {}
    comments: dict[str, dict] = {}
    for definition in definitions:
        for question in definition["questions"]:
            qid = question["id"]
            if question["type"] == "scale":
                known = scales.setdefault(qid, Scale(qid, question["label"], question["min"], question["max"]))
                known.min, known.max = min(known.min, question["min"]), max(known.max, question["max"])
            elif question["type"] in COMMENT_TYPES:
                comments.setdefault(qid, question)
    return list(scales.values()), list(comments.values())


def _point_columns(scales: list[Scale]) -> list[ColumnElement[int]]:
    """One ``count(CASE WHEN answer = point …)`` per point of every scale, in order."""
    return [func.count(case((Response.answers[s.id].as_integer() == point, 1)))
            for s in scales for point in s.points]


def _split(scales: list[Scale], values: Iterable[int]) -> dict[str, list[tuple[int, int]]]:
    """The flat counts of :func:`_point_columns` back into [(point, answers)] per question."""
    values = iter(values)
    return {s.id: [(point, int(next(values))) for point in s.points] for s in scales}


def _scale(scale: Scale, counts: list[tuple[int, int]], threshold: int) -> dict:
    n = sum(c for _, c in counts)
    shown = n >= threshold
    midpoint = (scale.min + scale.max) / 2
    favourable = sum(c for point, c in counts if point > midpoint)
    return {"question": scale.id, "label": scale.label, "min": scale.min, "max": scale.max, "n": n,
            "mean": _mean(counts, threshold),
            "distribution": [[point, c] for point, c in counts] if shown else [],
            "favourable": _rounded(Rate(favourable, n).as_dict()) if shown else None}


def _enps(scale: Scale, counts: list[tuple[int, int]], threshold: int) -> dict:
    n = sum(c for _, c in counts)
    figures = {"question": scale.id, "label": scale.label, "n": n,
               "promoters": None, "passives": None, "detractors": None, "score": _enps_score(counts, threshold)}
    if n >= threshold:
        figures["promoters"] = sum(c for point, c in counts if point >= PROMOTER_FROM)
        figures["detractors"] = sum(c for point, c in counts if point <= DETRACTOR_UP_TO)
        figures["passives"] = n - figures["promoters"] - figures["detractors"]
    return figures


def _mean(counts: list[tuple[int, int]], threshold: int) -> float | None:
    n = sum(c for _, c in counts)
    return round(sum(point * c for point, c in counts) / n, 4) if n and n >= threshold else None


def _enps_score(counts: list[tuple[int, int]], threshold: int) -> int | None:
    n = sum(c for _, c in counts)
    if not n or n < threshold:
        return None
    promoters = sum(c for point, c in counts if point >= PROMOTER_FROM)
    detractors = sum(c for point, c in counts if point <= DETRACTOR_UP_TO)
    return round(100 * (promoters - detractors) / n)


def _groups(attribute: str, scales: list[Scale], submitted: Filters, threshold: int) -> list[dict]:
    """Means and eNPS per value of ``attribute``; none when no response has a value.

    Responses without a value (none in the file, or, in an anonymous campaign, a value
    too few people shared: respond.services.segment_of) are a group of their own,
    NOT_GIVEN, hidden like any other: left out of every group but kept in the totals, they
    would be the totals minus the groups, one person's answers when they are one."""
    value = func.coalesce(Response.segment[attribute].as_string(), NOT_GIVEN)
    rows = db.session.execute(
        select(value, func.count(), *_point_columns(scales))
        .where(*submitted)
        .group_by(value)
    ).all()
    if all(row[0] == NOT_GIVEN for row in rows):
        return []  # no one has a value: the only group would be the totals again
    # One row per group (a few dozen at most); sorted here so both databases agree on the order.
    groups = sorted((SegmentGroup(str(row[0]), int(row[1]), _split(scales, row[2:])) for row in rows),
                    key=attrgetter("value"))
    suppress(groups, threshold, size=attrgetter("n"))
    return [{"value": g.value, "suppressed": g.suppressed} if g.suppressed else {
        "value": g.value, "n": g.n,
        # within a shown group, a question few of its members answered still shows nothing
        "means": {s.id: _mean(g.counts[s.id], threshold) for s in scales if not s.is_enps},
        "enps": {s.id: _enps_score(g.counts[s.id], threshold) for s in scales if s.is_enps},
    } for g in groups]


def _comments(question: dict, n: int, submitted: Filters, *, shown: bool) -> dict:
    items: list[str] = []
    if shown:
        text = Response.answers[question["id"]].as_string()
        items = [str(item) for item in db.session.scalars(select(text).where(*submitted, text != ""))]
        # Alphabetical, never the order people answered in (which could match who answered when);
        # sorted here so PostgreSQL's and SQLite's collations cannot disagree.
        items.sort(key=lambda item: (item.casefold(), item))
    return {"question": question["id"], "label": question["label"], "n": n, "shown": shown, "items": items}


def _rounded(rate: dict) -> dict:
    """A Rate's dict with its floats to 4 decimals, so the published JSON is stable."""
    return {**rate, "value": None if rate["value"] is None else round(rate["value"], 4),
            "ci95": None if rate["ci95"] is None else [round(bound, 4) for bound in rate["ci95"]]}
