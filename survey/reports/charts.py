"""The impact report's charts, drawn on the server as SVG, and the helpers its templates use.

The same report document (a plain dict) is shown live, from a frozen published snapshot
and in the PDF, so everything here reads the dict and nothing else.

Why SVG strings built here rather than a chart library or JavaScript: the pages run under
``script-src 'self'; style-src 'self'`` (no inline scripts, no ``style=`` attributes), the PDF
renderer runs no JavaScript, and hand-made SVG keeps the geometry exact and testable.
Colours are presentation attributes (``fill=``, ``stroke=``) so a chart keeps its colours
wherever it is shown; class names let report.css restyle it (print, forced colours).

Every chart has ``role="img"``, a ``<title>`` and a ``<desc>`` that says the numbers in words,
and the report always shows the same figures in a table beside it: a chart is never the only
way to read a figure. Every text is escaped: group names and question labels come from
imported files and questionnaires.
"""
from __future__ import annotations

import hashlib
import re
from copy import copy

from babel import Locale
from flask import Flask
from flask_babel import format_decimal, format_percent, get_locale, gettext
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from survey.reports.breakdown import NOT_GIVEN
from survey.reports.figures import ACTIVITIES, KNOWLEDGE_FLOOR
from survey.web import LABELS

#: the rates the report prints, in order: key in the figures, name, what it counts
REPORT_RATES = (
    ("response_rate", _l("Response rate"), _l("people who answered, out of everyone invited")),
    ("knowledge_rate", _l("Knowledge rate"), _l("people whose activity we know, out of everyone invited")),
    ("career_outcomes_rate", _l("Career-outcomes rate"),
     _l("people working, in education or volunteering, out of those whose activity we know")),
    ("proven_rate", _l("Proven rate"), _l("people with a proven outcome, out of everyone invited")),
    ("proven_among_respondents", _l("Proven among respondents"),
     _l("people with a proven outcome, out of those who answered")),
)
#: the columns of the outcomes table: every claim is counted once in "claimed" and once in
#: the state it is in now
OUTCOME_STATES = ("claimed", "pending", "proven", "rejected", "inconclusive", "withdrawn", "revoked")

#: codes the report prints that the application-wide LABELS do not have
REPORT_LABELS = {
    "claimed": _l("claimed"), "pending": _l("pending"),
    "employed_full_time": _l("employed full-time"), "employed_part_time": _l("employed part-time"),
    "self_employed": _l("self-employed or founded a business"),
    "continuing_education": _l("in further education"), "volunteering": _l("volunteering"),
    "seeking": _l("looking for work"), "not_seeking": _l("not looking for work"),
    "unknown": _l("did not say"),
    "programme": _l("programme"), "cohort": _l("cohort"), "department": _l("department"),
}

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
TEXT = "#0b0c0c"
MUTED = "#505a5f"
LINE = "#b1b4b6"
GRID = "#e3e4e5"
ACCENT = "#1d70b8"
PROVEN = "#00703c"
FLOOR = "#d4351c"

def _(string: str, **variables) -> str:
    """gettext that always treats the message as a format string, as Jinja's templates do,
    so a literal percent sign is written "%%" in every message of the report."""
    return gettext(string) % variables


# Widths are in viewBox units; report.css scales the SVG to its column (down to 320 px
# phones), so the charts are drawn narrow and tall rather than wide.
WIDTH = 360


# -- formatting shared by the charts and the templates ----------------------------------

def report_number(value) -> str:
    """A count in the reader's locale: 1,234 in English, 1 234 in French."""
    return format_decimal(value) if value is not None else _("no data")


def _locale() -> Locale:
    """The reader's locale; English outside a request (a shell, a task)."""
    return get_locale() or Locale.parse("en")


def report_percent(value: float | None) -> str:
    """A proportion as a percentage with one decimal place, in the reader's locale
    (62.5% in English, 62,5 % in French); "no data" for a rate without a denominator."""
    if value is None:
        return _("no data")
    locale = _locale()
    # The locale's own percent pattern (spacing, sign position) with exactly one decimal.
    pattern = copy(locale.percent_formats[None])
    pattern.frac_prec = (1, 1)
    return pattern.apply(value, locale)


def report_mean(value: float | None) -> str:
    """A mean with one decimal place (3.8 / 3,8)."""
    return _("no data") if value is None else format_decimal(value, format="#,##0.0")


def report_interval(ci95) -> str:
    """A 95% interval as "52.1% to 71.3%"; "no data" when there was nobody to count."""
    if not ci95:
        return _("no data")
    return _("%(low)s to %(high)s", low=report_percent(ci95[0]), high=report_percent(ci95[1]))


def report_label(code) -> str:
    """Words for a stored code (outcome type, state, activity, attribute); the code itself
    when unknown. Always a plain str, so the template escapes it like any other text."""
    return str(REPORT_LABELS.get(code) or LABELS.get(code) or code)


#: the knowledge-floor warning as figures.compute writes it into the document (in English,
#: as the API and every published snapshot keep it)
_KNOWLEDGE_WARNING = re.compile(r"^The knowledge rate is (\d+)%, under the (\d+)% floor: ")


def report_warning(text: str) -> str:
    """A warning of the figures in the reader's language (a published snapshot's too); one
    this code does not know, as it was written."""
    match = _KNOWLEDGE_WARNING.match(text)
    if match is None:
        return text
    rate, floor = (int(group) / 100 for group in match.groups())
    return _("The knowledge rate is %(rate)s, under the %(floor)s floor: the other rates may not describe "
             "the whole cohort.", rate=format_percent(rate), floor=format_percent(floor))


def outcome_order(outcomes: dict) -> list[str]:
    """The outcome types of a report in the questionnaire's order (a published snapshot's
    JSON has its keys sorted; the live page follows OUTCOME_TYPES); any other after them."""
    from survey.claims.models import OUTCOME_TYPES

    return [t for t in OUTCOME_TYPES if t in outcomes] + sorted(t for t in outcomes if t not in OUTCOME_TYPES)


def report_group(value) -> str:
    """A group's name as the report shows it: the value from the imported file, or words
    for people who have none (NOT_GIVEN is stored as a code, so a published snapshot
    reads in each reader's language)."""
    return _("(not given)") if value == NOT_GIVEN else str(value)


def localised(label) -> str:
    """A questionnaire label {"en": ..., "fr": ...} in the reader's language (else English,
    else any); a plain string as it is."""
    if not isinstance(label, dict):
        return "" if label is None else str(label)
    language = _locale().language
    return str(label.get(language) or label.get("en") or next(iter(label.values()), ""))


def activity_rows(activities: dict) -> list[tuple[str, int]]:
    """(activity, respondents) for every category in the standard order, then "did not
    say", then any other code the document holds."""
    codes = [*ACTIVITIES, "unknown"]
    codes += sorted(code for code in activities if code not in codes)
    return [(code, activities.get(code, 0)) for code in codes]


# -- SVG building blocks ------------------------------------------------------------------

def _num(value: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros (small, stable output)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _attrs(attributes: dict) -> str:
    return "".join(f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"'
                   for name, value in attributes.items() if value is not None)


def _tag(name: str, content: str = "", **attributes) -> str:
    """An element; ``content`` must already be escaped markup."""
    return f"<{name}{_attrs(attributes)}>{content}</{name}>" if content else f"<{name}{_attrs(attributes)}/>"


def _text(x: float, y: float, words, **attributes) -> str:
    return _tag("text", str(escape(words)), x=_num(x), y=_num(y), **attributes)


def _svg(chart_id: str, kind: str, height: float, title: str, desc: str, body: list[str]) -> Markup:
    """The outer <svg>: labelled by its title and description for screen readers."""
    head = (_tag("title", str(escape(title)), id=f"{chart_id}-title")
            + _tag("desc", str(escape(desc)), id=f"{chart_id}-desc"))
    svg = _tag("svg", head + "".join(body), xmlns="http://www.w3.org/2000/svg",
               class_=f"chart {kind}", id=chart_id, role="img",
               aria_labelledby=f"{chart_id}-title {chart_id}-desc",
               viewBox=f"0 0 {WIDTH} {_num(height)}", width=str(WIDTH), height=_num(height),
               font_family=FONT, font_size="13", fill=TEXT)
    return Markup(svg)


def _safe_id(prefix: str, key) -> str:
    """An id attribute from an arbitrary key: readable part plus a short hash (unique)."""
    text = str(key)
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", text)[:40]
    return f"{prefix}-{readable}-{hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:6]}"


# -- outcome_bars --------------------------------------------------------------------------

BAR_X = 2            # room for the claimed bar's outline
BAR_FULL = 290       # the largest count's length; the rest of the width takes its label
BAR_H = 14
LEGEND_H = 26
GROUP_H = 62


def outcome_bars(figures: dict, chart_id: str = "chart-outcomes") -> Markup:
    """Claimed and proven outcomes per type, as horizontal bars side by side.

    Horizontal so that long outcome names and counts fit on a phone. Claimed bars are
    hollow and proven bars solid, so they differ by more than colour. Lengths are
    proportional to the counts, the largest count taking the full length.
    """
    outcomes = figures.get("outcomes") or {}
    largest = max((counts.get(state, 0) for counts in outcomes.values() for state in ("claimed", "proven")),
                  default=0)

    def length(count: int) -> float:
        return BAR_FULL * count / largest if largest else 0

    # legend: the second key starts after the first one's words (a rough 0.6 em per character,
    # as SVG text cannot be measured here), so a longer translation does not overlap it
    proven_x = 22 + 0.6 * 13 * len(_("claimed")) + 20
    body = [
        _tag("rect", x="2", y="6", width="14", height="12", fill="#ffffff", stroke=ACCENT, stroke_width="2",
             class_="bar-claimed"),
        _text(22, 17, _("claimed")),
        _tag("rect", x=_num(proven_x), y="6", width="14", height="12", fill=PROVEN, class_="bar-proven"),
        _text(proven_x + 20, 17, _("proven")),
    ]
    summary = []
    for index, (outcome, counts) in enumerate(outcomes.items()):
        top = LEGEND_H + index * GROUP_H
        name = report_label(outcome)
        claimed, proven = counts.get("claimed", 0), counts.get("proven", 0)
        summary.append(_("%(outcome)s: %(claimed)s claimed, %(proven)s proven", outcome=name,
                         claimed=report_number(claimed), proven=report_number(proven)))
        group = [_text(0, top + 14, name, font_weight="700")]
        for row, (state, count) in enumerate((("claimed", claimed), ("proven", proven))):
            y = top + 20 + row * (BAR_H + 4)
            if state == "claimed":
                paint = {"fill": "#ffffff", "stroke": ACCENT, "stroke_width": "2"}
            else:
                paint = {"fill": PROVEN}
            tooltip = _tag("title", str(escape(_("%(outcome)s: %(count)s %(state)s", outcome=name,
                                                 count=report_number(count), state=report_label(state)))))
            group.append(_tag("rect", tooltip, x=_num(BAR_X), y=_num(y), width=_num(length(count)),
                              height=str(BAR_H), class_=f"bar bar-{state}", data_state=state,
                              data_count=str(count), **paint))
            group.append(_text(BAR_X + length(count) + 6, y + BAR_H - 2, report_number(count),
                               class_="bar-label"))
        body.append(_tag("g", "".join(group), class_="outcome", data_outcome=outcome))
    if not outcomes:
        body.append(_text(0, LEGEND_H + 16, _("no data"), fill=MUTED, class_="no-data"))
    height = LEGEND_H + max(len(outcomes), 1) * GROUP_H
    desc = "; ".join(summary) if summary else _("no data")
    return _svg(chart_id, "chart-outcomes", height, _("Claimed and proven outcomes, by type"), desc, body)


# -- rate_intervals ------------------------------------------------------------------------

AXIS_X = 16          # where 0% is
AXIS_W = 320         # from 0% to 100%
RATE_H = 48
AXIS_H = 30
TICKS = (0, 0.25, 0.5, 0.75, 1)


def _x(proportion: float) -> float:
    """The x of a proportion on the 0–100% axis (clamped: a bad value never leaves the chart)."""
    return AXIS_X + AXIS_W * min(max(proportion, 0.0), 1.0)


def rate_intervals(figures: dict, chart_id: str = "chart-rates") -> Markup:
    """Each rate as a dot at its value and a whisker over its 95% Wilson interval, on one
    0–100% axis; the knowledge rate's row marks the 65% floor. A rate with no denominator
    says "no data" instead of a dot."""
    body = []
    summary = []
    rows_h = len(REPORT_RATES) * RATE_H
    # light vertical grid lines first, so everything else is drawn over them
    for tick in TICKS:
        body.append(_tag("line", x1=_num(_x(tick)), x2=_num(_x(tick)), y1="0", y2=_num(rows_h),
                         stroke=GRID, class_="grid"))
    for index, (key, name, _counts) in enumerate(REPORT_RATES):
        rate = figures.get(key) or {}
        top = index * RATE_H
        line_y = top + 34
        value, ci95 = rate.get("value"), rate.get("ci95")
        shown = report_percent(value)  # "no data" when there is no denominator
        row = []
        if value is None:
            row.append(_text(_x(0.5), line_y + 4, _("no data"), text_anchor="middle", fill=MUTED,
                             class_="no-data"))
        else:
            row.append(_tag("line", x1=_num(_x(0)), x2=_num(_x(1)), y1=_num(line_y), y2=_num(line_y),
                            stroke=LINE, class_="track"))
            if ci95:
                low, high = _x(ci95[0]), _x(ci95[1])
                row.append(_tag("line", x1=_num(low), x2=_num(high), y1=_num(line_y), y2=_num(line_y),
                                stroke=TEXT, stroke_width="2", class_="interval"))
                for end in (low, high):
                    row.append(_tag("line", x1=_num(end), x2=_num(end), y1=_num(line_y - 6),
                                    y2=_num(line_y + 6), stroke=TEXT, stroke_width="2", class_="interval-end"))
            row.append(_tag("circle", cx=_num(_x(value)), cy=_num(line_y), r="5", fill=ACCENT,
                            stroke="#ffffff", stroke_width="1.5", class_="value"))
        heading = str(name)
        if key == "knowledge_rate":
            floor = _x(KNOWLEDGE_FLOOR)
            heading = _("%(rate)s (floor %(floor)s)", rate=name, floor=report_percent(KNOWLEDGE_FLOOR))
            row.append(_tag("line", _tag("title", str(escape(_("the %(floor)s floor",
                                                                 floor=report_percent(KNOWLEDGE_FLOOR))))),
                            x1=_num(floor), x2=_num(floor), y1=_num(line_y - 12), y2=_num(line_y + 12),
                            stroke=FLOOR, stroke_width="2", stroke_dasharray="4 3", class_="floor"))
        if ci95 and value is not None:
            summary.append(_("%(rate)s: %(value)s, 95%% interval %(interval)s", rate=heading, value=shown,
                             interval=report_interval(ci95)))
        else:
            summary.append(_("%(rate)s: %(value)s", rate=heading, value=shown))
        # the name on the left, the value on the right: each fits on a phone, in French too
        row.insert(0, _text(0, top + 15, heading))
        row.insert(1, _text(WIDTH - 2, top + 15, shown, text_anchor="end", font_weight="700", class_="rate-value"))
        body.append(_tag("g", "".join(row), class_="rate", data_rate=key))
    # the shared axis under the rows
    body.append(_tag("line", x1=_num(_x(0)), x2=_num(_x(1)), y1=_num(rows_h + 4), y2=_num(rows_h + 4),
                     stroke=MUTED, class_="axis"))
    for tick in TICKS:
        body.append(_tag("line", x1=_num(_x(tick)), x2=_num(_x(tick)), y1=_num(rows_h + 4),
                         y2=_num(rows_h + 9), stroke=MUTED))
        # axis marks, not figures: no decimals
        body.append(_text(_x(tick), rows_h + 22, format_percent(tick), text_anchor="middle", font_size="11",
                          fill=MUTED))
    title = _("Rates, each with its 95%% confidence interval")
    return _svg(chart_id, "chart-rates", rows_h + AXIS_H, title, "; ".join(summary), body)


# -- distribution_bar ----------------------------------------------------------------------

DIST_H = 28
#: a diverging, colour-blind-safe scale (orange to purple): the low end, the middle, the high end
LOW, MID, HIGH = (179, 88, 6), (216, 218, 235), (84, 39, 136)


def _point_colour(point, low_point, high_point) -> str:
    """The colour of a scale point: orange at the bottom, light in the middle, purple at the top."""
    span = (high_point - low_point) or 1
    t = min(max((point - low_point) / span, 0.0), 1.0)
    start, end, t = (LOW, MID, t * 2) if t <= 0.5 else (MID, HIGH, (t - 0.5) * 2)
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(start, end))


def _text_colour(fill: str) -> str:
    """Black or white, whichever reads better on ``fill`` (WCAG relative luminance)."""
    channels = [int(fill[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return TEXT if luminance > 0.18 else "#ffffff"


def distribution_bar(scale: dict, chart_id: str | None = None) -> Markup:
    """One scale question's answers as a 100% stacked bar: each point's segment is as long
    as its share of the answers; points nobody chose take no room."""
    chart_id = chart_id or _safe_id("chart-scale", scale.get("question"))
    question = localised(scale.get("label")) or str(scale.get("question", ""))
    distribution = [(point, count) for point, count in scale.get("distribution") or []]
    total = sum(count for _point, count in distribution)
    low_point = scale.get("min", min((p for p, _c in distribution), default=0))
    high_point = scale.get("max", max((p for p, _c in distribution), default=1))
    body, summary = [], []
    if not total:
        body.append(_tag("rect", x="0.5", y="0.5", width=_num(WIDTH - 1), height=str(DIST_H), fill="#ffffff",
                         stroke=LINE, class_="segment-empty"))
        body.append(_text(WIDTH / 2, DIST_H / 2 + 5, _("no answers"), text_anchor="middle", fill=MUTED,
                          class_="no-data"))
    x = 0.0
    for point, count in distribution:
        share = count / total if total else 0
        summary.append(_("%(point)s: %(count)s (%(share)s)", point=point, count=report_number(count),
                         share=report_percent(share)))
        if not count:
            continue
        width = WIDTH * share
        fill = _point_colour(point, low_point, high_point)
        tooltip = _tag("title", str(escape(summary[-1])))
        segment = [_tag("rect", tooltip, x=_num(x), y="0", width=_num(width), height=str(DIST_H), fill=fill,
                        stroke="#ffffff", stroke_width="1", class_="segment", data_point=str(point),
                        data_count=str(count))]
        if width >= 16:  # the point's number, where it fits
            segment.append(_text(x + width / 2, DIST_H / 2 + 5, str(point), text_anchor="middle",
                                 fill=_text_colour(fill), font_weight="700"))
        if width >= 44:  # and its share under the bar
            segment.append(_text(x + width / 2, DIST_H + 16, report_percent(share), text_anchor="middle",
                                 font_size="11", fill=MUTED))
        body.append(_tag("g", "".join(segment), class_="point"))
        x += width
    title = _("Answers to “%(question)s”", question=question)
    desc = _("%(answers)s answers on a scale from %(min)s to %(max)s: %(points)s",
             answers=report_number(total), min=low_point, max=high_point,
             points="; ".join(summary)) if total else _("no answers")
    return _svg(chart_id, "chart-distribution", DIST_H + 22, title, desc, body)


# -- registration ----------------------------------------------------------------------------

def register_report_helpers(app: Flask) -> None:
    """Make the charts and formatting helpers callable from any template (including macros
    imported without context). Safe to call more than once: it only sets the same names."""
    app.jinja_env.globals.update(
        outcome_bars=outcome_bars, rate_intervals=rate_intervals, distribution_bar=distribution_bar,
        report_number=report_number, report_percent=report_percent, report_mean=report_mean,
        report_interval=report_interval, report_label=report_label, report_group=report_group,
        report_warning=report_warning, outcome_order=outcome_order,
        localised=localised, activity_rows=activity_rows, report_rates=REPORT_RATES, outcome_states=OUTCOME_STATES,
        knowledge_floor=KNOWLEDGE_FLOOR,
    )
