"""The report as CSV, safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator

#: a cell starting with one of these is a formula to Excel, LibreOffice and Sheets
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value) -> str:
    """The cell's text, with a leading apostrophe if a spreadsheet would run it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _rows(figures, groups_by_attribute: dict[str, list]) -> Iterator[list]:
    data = figures.as_dict()
    yield ["section", "item", "measure", "value", "ci95_low", "ci95_high"]
    yield ["cohort", "all", "invited", data["invited"], "", ""]
    yield ["cohort", "all", "responded", data["responded"], "", ""]
    for name in ("response_rate", "knowledge_rate", "career_outcomes_rate", "proven_rate",
                 "proven_among_respondents"):
        rate = data[name]
        low, high = (f"{bound:.4f}" for bound in rate["ci95"]) if rate["ci95"] else ("", "")
        value = "" if rate["value"] is None else f"{rate['value']:.4f}"
        yield ["rate", name, f"{rate['numerator']}/{rate['denominator']}", value, low, high]
    for activity, count in sorted(data["activities"].items()):
        yield ["activity", activity, "respondents", count, "", ""]
    for outcome, counts in data["outcomes"].items():
        for measure, count in counts.items():
            yield ["outcome", outcome, measure, count, "", ""]
    for attribute, groups in groups_by_attribute.items():
        for group in groups:
            row = group.as_dict()
            for measure in ("invited", "responded", "proven_people"):
                yield [f"by {attribute}", row["value"], measure, row.get(measure, "suppressed"), "", ""]
    for warning in data["warnings"]:
        yield ["warning", "", "", warning, "", ""]


def figures_csv(figures, groups_by_attribute: dict[str, list]) -> str:
    """One row per figure: section, item, measure, value and, for rates, the 95% interval.
    Every cell is neutralised: group names come from imported files."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in _rows(figures, groups_by_attribute):
        writer.writerow([neutralise(cell) for cell in row])
    return out.getvalue()
