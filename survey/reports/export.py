"""The report as CSV, safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator

#: a cell starting with one of these is a formula to Excel, LibreOffice and Sheets (the
#: full-width forms too: an East Asian spreadsheet may read them as the others)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
#: what a spreadsheet may skip before a formula: every kind of space, and the invisible ones
_LEADING = " \u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b\u202f\u205f\u3000\ufeff"


def neutralise(value) -> str:
    """The cell's text, with a leading apostrophe if a spreadsheet would run it (also
    after leading spaces, which some spreadsheets skip). A number the report computed
    (an eNPS of -20) stays a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    text = "" if value is None else str(value)
    return "'" + text if text.lstrip(_LEADING).startswith(FORMULA_STARTS) else text


def _rate_row(section: str, item: str, rate: dict | None, prefix: str = "") -> list:
    """A rate's row: the measure says numerator/denominator, then the value and its interval."""
    if not rate:
        return [section, item, prefix.strip(), "", "", ""]
    low, high = (f"{bound:.4f}" for bound in rate["ci95"]) if rate["ci95"] else ("", "")
    value = "" if rate["value"] is None else f"{rate['value']:.4f}"
    return [section, item, f"{prefix}{rate['numerator']}/{rate['denominator']}", value, low, high]


def _rows(document: dict) -> Iterator[list]:
    data = document["figures"]
    yield ["section", "item", "measure", "value", "ci95_low", "ci95_high"]
    yield ["cohort", "all", "invited", data["invited"], "", ""]
    yield ["cohort", "all", "responded", data["responded"], "", ""]
    for name in ("response_rate", "knowledge_rate", "career_outcomes_rate", "proven_rate",
                 "proven_among_respondents"):
        yield _rate_row("rate", name, data[name])
    for activity, count in sorted(data["activities"].items()):
        yield ["activity", activity, "respondents", count, "", ""]
    for outcome, counts in data["outcomes"].items():
        for measure, count in counts.items():
            yield ["outcome", outcome, measure, count, "", ""]
    for attribute, groups in document["breakdowns"].items():
        for group in groups:
            for measure in ("invited", "responded", "proven_people"):
                yield [f"by {attribute}", group["value"], measure, group.get(measure, "suppressed"), "", ""]
    yield from _employee_rows(document.get("employee"))
    for warning in data["warnings"]:
        yield ["warning", "", "", warning, "", ""]


def _employee_rows(employee: dict | None) -> Iterator[list]:
    """Employee-survey aggregates (never comments: a spreadsheet travels further than a page)."""
    if not employee:
        return
    yield ["employees", "all", "respondents", employee["respondents"], "", ""]
    for scale in employee["scales"]:
        yield ["scale", scale["question"], "answers", scale["n"], "", ""]
        yield ["scale", scale["question"], "mean", "" if scale["mean"] is None else scale["mean"], "", ""]
        yield _rate_row("scale", scale["question"], scale.get("favourable"), prefix="favourable ")
        for point, count in scale["distribution"]:
            yield ["scale", scale["question"], f"answered {point}", count, "", ""]
    for enps in employee["enps"]:
        for measure in ("n", "promoters", "passives", "detractors", "score"):
            yield ["eNPS", enps["question"], measure, "" if enps[measure] is None else enps[measure], "", ""]
    for attribute, groups in employee["by"].items():
        for group in groups:
            if group.get("suppressed"):
                yield [f"employees by {attribute}", group["value"], "respondents", "suppressed", "", ""]
                continue
            yield [f"employees by {attribute}", group["value"], "respondents", group["n"], "", ""]
            for question, mean in sorted(group["means"].items()):
                yield [f"employees by {attribute}", group["value"], f"mean {question}",
                       "" if mean is None else mean, "", ""]
            for question, score in sorted(group["enps"].items()):
                yield [f"employees by {attribute}", group["value"], f"eNPS {question}",
                       "" if score is None else score, "", ""]


def document_csv(document: dict) -> str:
    """One row per figure: section, item, measure, value and, for rates, the 95% interval.
    Every cell is neutralised: group names come from imported files."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in _rows(document):
        writer.writerow([neutralise(cell) for cell in row])
    return out.getvalue()
