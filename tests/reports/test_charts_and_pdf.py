"""How the impact report looks: SVG charts with exact geometry and escaped text, the report
macro (tables beside charts, small groups hidden, trace links, nothing the CSP would block),
and the PDF, which reads only the application's static files and never the network."""
from __future__ import annotations

import io
import re
import socket
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import render_template_string
from jinja2 import ChoiceLoader, FileSystemLoader
from pypdf import PdfReader

from survey.reports import charts
from survey.reports.charts import (
    distribution_bar,
    outcome_bars,
    rate_intervals,
    register_report_helpers,
)
from survey.reports.pdf import REPORT_CSS, STATIC_FOLDERS, RefusedURL, fetcher_for, render_pdf
from survey.reports.stats import Rate

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script>'
REPORT = '{% from "reports/_report.html" import report_body %}{{ report_body(doc, trace) }}'
STATES = ("claimed", "pending", "proven", "rejected", "inconclusive", "withdrawn", "revoked")


def rate(numerator: int, denominator: int) -> dict:
    return Rate(numerator, denominator).as_dict()


def make_figures(**changes) -> dict:
    outcomes = {t: dict.fromkeys(STATES, 0)
                for t in ("new_job", "changed_employer", "promotion", "raise", "business_created")}
    outcomes["new_job"].update(claimed=40, pending=5, proven=30, rejected=3, inconclusive=1, withdrawn=1)
    outcomes["promotion"].update(claimed=10, pending=6, proven=4)
    figures = {"campaigns": [1], "invited": 1200, "responded": 750, "response_rate": rate(750, 1200),
               "activities": {"employed_full_time": 400, "seeking": 100, "unknown": 250},
               "knowledge_rate": rate(500, 1200), "career_outcomes_rate": rate(400, 500),
               "outcomes": outcomes, "proven_rate": rate(33, 1200),
               "proven_among_respondents": rate(33, 750),
               "warnings": ["The knowledge rate is 42%, under the 65% floor."]}
    return figures | changes


def make_doc() -> dict:
    return {
        "figures": make_figures(),
        "breakdowns": {"programme": [
            {"value": "Data", "invited": 1000, "responded": 700, "proven_people": 30},
            # Numbers a suppressed group must never show, even if a document carried them.
            {"value": "Web", "suppressed": "complementary", "invited": 777, "responded": 776},
            {"value": EVIL, "suppressed": "small", "invited": 3, "responded": 2},
        ]},
        "employee": {
            "respondents": 40, "threshold": 5, "comment_threshold": 10, "suppressed": False,
            "scales": [
                {"question": "wellbeing", "label": {"en": "I feel well " + EVIL, "fr": "Je vais bien"},
                 "min": 1, "max": 5, "n": 40, "mean": 3.6,
                 "distribution": [[1, 2], [2, 6], [3, 8], [4, 14], [5, 10]], "favourable": rate(24, 40)},
                {"question": "pay", "label": {"en": "Pay is fair"}, "min": 1, "max": 5, "n": 3, "mean": None,
                 "distribution": [], "favourable": None},
            ],
            "enps": [{"question": "recommend", "label": {"en": "Would recommend us"}, "n": 40,
                      "promoters": 15, "passives": 15, "detractors": 10, "score": 13}],
            "by": {"department": [
                {"value": "Sales", "n": 30, "means": {"wellbeing": 3.5, "pay": None}, "enps": {"recommend": 10}},
                {"value": "HR", "suppressed": "small", "n": 888},
                {"value": "Ops", "suppressed": "complementary", "n": 999},
            ]},
            "comments": [
                {"question": "c1", "label": {"en": "Anything else?"}, "n": 12, "shown": True,
                 "items": ["Great " + EVIL, "ok"]},
                {"question": "c2", "label": {"en": "Ideas?"}, "n": 3, "shown": False, "items": ["never printed"]},
            ],
        },
        "threshold": 5,
    }


@pytest.fixture
def report_app(app, monkeypatch):
    """The app with the report helpers, and the report templates findable: the reports
    blueprint (template_folder="templates") provides them once registered; until then the
    folder is added to the loader here."""
    register_report_helpers(app)
    if "reports" not in app.blueprints:
        folder = Path(charts.__file__).parent / "templates"
        monkeypatch.setattr(app.jinja_env, "loader", ChoiceLoader([app.jinja_env.loader, FileSystemLoader(folder)]))
    return app


@pytest.fixture
def english(report_app):
    with report_app.test_request_context("/", headers={"Accept-Language": "en"}):
        yield report_app


def render(doc, trace=None) -> str:
    return render_template_string(REPORT, doc=doc, trace=trace)


def parse(svg) -> ET.Element:
    """The SVG as XML: parsing at all proves it is well-formed (nothing unescaped broke it)."""
    return ET.fromstring(str(svg))


def by_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [el for el in root.iter() if name in (el.get("class") or "").split()]


# -- charts ---------------------------------------------------------------------------------

def test_outcome_bars_are_proportional_to_the_counts_with_the_largest_full_width(english):
    root = parse(outcome_bars(make_figures()))
    bars = {(group.get("data-outcome"), bar.get("data-state")): float(bar.get("width"))
            for group in by_class(root, "outcome") for bar in by_class(group, "bar")}
    assert bars[("new_job", "claimed")] == pytest.approx(charts.BAR_FULL)
    assert bars[("new_job", "proven")] == pytest.approx(charts.BAR_FULL * 30 / 40, abs=0.01)
    assert bars[("promotion", "claimed")] == pytest.approx(charts.BAR_FULL * 10 / 40, abs=0.01)
    assert bars[("promotion", "proven")] == pytest.approx(charts.BAR_FULL * 4 / 40, abs=0.01)
    assert bars[("raise", "proven")] == 0
    # each bar's count is written beside it
    labels = [el.text for el in by_class(root, "bar-label")]
    assert labels[:4] == ["40", "30", "0", "0"]


def test_outcome_bars_without_any_claim_draw_empty_bars(english):
    figures = make_figures()
    for counts in figures["outcomes"].values():
        counts.update(dict.fromkeys(STATES, 0))
    root = parse(outcome_bars(figures))
    assert {float(bar.get("width")) for bar in by_class(root, "bar")} == {0.0}


def test_rate_intervals_put_the_dot_at_the_value_and_the_whisker_ends_at_the_interval(english):
    figures = make_figures()
    root = parse(rate_intervals(figures))
    rows = {g.get("data-rate"): g for g in by_class(root, "rate")}
    assert list(rows) == ["response_rate", "knowledge_rate", "career_outcomes_rate", "proven_rate",
                          "proven_among_respondents"]

    def x(proportion):
        return charts.AXIS_X + charts.AXIS_W * proportion

    for key, row in rows.items():
        low, high = figures[key]["ci95"]
        [whisker] = by_class(row, "interval")
        assert float(whisker.get("x1")) == pytest.approx(x(low), abs=0.01)
        assert float(whisker.get("x2")) == pytest.approx(x(high), abs=0.01)
        [dot] = by_class(row, "value")
        assert float(dot.get("cx")) == pytest.approx(x(figures[key]["value"]), abs=0.01)
    # the 65% floor is marked on the knowledge rate's row only
    [floor] = by_class(root, "floor")
    assert floor in list(rows["knowledge_rate"])
    assert float(floor.get("x1")) == float(floor.get("x2")) == pytest.approx(x(0.65), abs=0.01)
    # the axis runs from 0% to 100%
    ticks = [el.text for el in root.iter(f"{SVG}text") if el.text and el.text.endswith("%")
             and el.get("text-anchor") == "middle"]
    assert ticks == ["0%", "25%", "50%", "75%", "100%"]


def test_a_rate_without_a_denominator_says_no_data_instead_of_a_dot(english):
    root = parse(rate_intervals(make_figures(career_outcomes_rate=rate(0, 0))))
    row = next(g for g in by_class(root, "rate") if g.get("data-rate") == "career_outcomes_rate")
    assert by_class(row, "value") == [] and by_class(row, "interval") == []
    assert [el.text for el in by_class(row, "no-data")] == ["no data"]


def test_distribution_bar_segments_share_the_full_width_by_their_counts(english):
    scale = {"question": "wellbeing", "label": {"en": "I feel well"}, "min": 1, "max": 5, "n": 40,
             "distribution": [[1, 2], [2, 0], [3, 8], [4, 20], [5, 10]]}
    root = parse(distribution_bar(scale))
    segments = by_class(root, "segment")
    assert [s.get("data-point") for s in segments] == ["1", "3", "4", "5"]  # nobody chose 2: no room
    widths = [float(s.get("width")) for s in segments]
    assert widths == pytest.approx([charts.WIDTH * c / 40 for c in (2, 8, 20, 10)], abs=0.01)
    assert sum(widths) == pytest.approx(charts.WIDTH, abs=0.05)
    # contiguous, left to right
    xs = [float(s.get("x")) for s in segments]
    assert xs[0] == 0
    for x, previous, width in zip(xs[1:], xs, widths):
        assert x == pytest.approx(previous + width, abs=0.02)


def test_a_scale_nobody_answered_draws_an_empty_bar(english):
    root = parse(distribution_bar({"question": "q", "label": "Q", "min": 1, "max": 5, "distribution": []}))
    assert by_class(root, "segment") == [] and [el.text for el in by_class(root, "no-data")] == ["no answers"]


def test_every_chart_is_an_image_named_by_its_title_and_description(english):
    doc = make_doc()
    for svg in (outcome_bars(doc["figures"]), rate_intervals(doc["figures"]),
                distribution_bar(doc["employee"]["scales"][0])):
        root = parse(svg)
        assert root.tag == f"{SVG}svg" and root.get("role") == "img"
        title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
        assert root.get("aria-labelledby").split() == [title.get("id"), desc.get("id")]
        assert title.text and desc.text
        assert root.get("style") is None and "<script" not in str(svg)


def test_hostile_names_are_escaped_in_the_charts(english):
    figures = make_figures()
    figures["outcomes"] = {EVIL: dict.fromkeys(STATES, 3)}
    scale = {"question": EVIL, "label": {"en": EVIL}, "min": 1, "max": 5, "distribution": [[1, 1], [5, 4]]}
    for svg in (outcome_bars(figures), distribution_bar(scale)):
        assert "<script" not in str(svg)
        root = parse(svg)
        texts = " ".join(el.text or "" for el in root.iter())
        assert EVIL in texts  # shown as text, which is what it is
        assert all(re.fullmatch(r"[A-Za-z0-9_-]+", el.get("id")) for el in root.iter() if el.get("id"))


def test_register_report_helpers_can_be_called_twice(report_app):
    register_report_helpers(report_app)
    register_report_helpers(report_app)
    assert report_app.jinja_env.globals["outcome_bars"] is outcome_bars


# -- the report macro ---------------------------------------------------------------------

class Page(HTMLParser):
    """Every tag with its attributes, and the text of every table row's cells."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def row(self, first_cell: str) -> list[str]:
        return next(row for row in self.rows if row and row[0] == first_cell)


def test_the_report_obeys_the_content_security_policy_and_escapes_imported_text(english):
    html = render(make_doc())
    page = Page(html)
    assert "<script" not in html.lower() and "<style" not in html.lower()
    assert not [tag for tag, attrs in page.tags if "style" in attrs]
    assert not [tag for tag, attrs in page.tags if any(name.startswith("on") for name in attrs)]
    assert "&lt;script&gt;alert(" in html  # the group, the question and the comment, as text
    assert EVIL in page.row(EVIL)[0]


def test_every_chart_sits_beside_a_table_of_the_same_figures(english):
    page = Page(render(make_doc()))
    svgs = [attrs for tag, attrs in page.tags if tag == "svg"]
    assert len(svgs) == 3  # rates, outcomes, one distribution (the other scale is not shown)
    assert page.row("Response rate people who answered, out of everyone invited")[1:] == [
        "62.5%", "750 / 1,200", "59.7% to 65.2%"]
    assert page.row("new job")[1:] == ["40", "5", "30", "3", "1", "1", "0"]
    assert page.row("4")[1:] == ["14", "35.0%"]
    assert all(attrs.get("scope") in ("col", "row") for tag, attrs in page.tags if tag == "th")
    assert sum(tag == "caption" for tag, _attrs in page.tags) == sum(tag == "table" for tag, _attrs in page.tags)


def test_suppressed_groups_never_show_their_numbers(english):
    html = render(make_doc())
    page = Page(html)
    assert page.row("Web") == ["Web", "hidden so a small group cannot be worked out"]
    assert page.row(EVIL) == [EVIL, "fewer than 5 people"]
    assert page.row("HR") == ["HR", "fewer than 5 people"]
    assert page.row("Ops") == ["Ops", "hidden so a small group cannot be worked out"]
    for number in ("777", "776", "888", "999"):
        assert number not in html
    # a scale and comments too few answered
    assert page.row("Pay is fair") == ["Pay is fair", "fewer than 5 answers: not shown"]
    assert "fewer than 10 answers: not shown" in html and "never printed" not in html
    assert "Great &lt;script&gt;" in html


def test_the_warnings_come_first(english):
    html = render(make_doc())
    assert html.index("Read these figures with care") < html.index("Who answered")
    assert "The knowledge rate is 42%, under the 65% floor." in html


def test_a_suppressed_employee_section_shows_no_figure(english):
    doc = make_doc()
    doc["employee"] = {"respondents": 3, "threshold": 5, "comment_threshold": 10, "suppressed": True,
                       "scales": [], "enps": [], "by": {}, "comments": []}
    html = render(doc)
    assert "Fewer than 5 employees answered: their answers are not shown." in html
    assert "employees answered</li>" not in html
    assert "Employees" not in render(make_doc() | {"employee": None})


def test_counts_link_to_the_claims_behind_them_only_when_a_trace_is_given(english):
    assert "<a " not in render(make_doc())

    html = render(make_doc(), trace=lambda outcome, state: f"/trace?outcome={outcome}&state={state}")
    links = [attrs["href"] for tag, attrs in Page(html).tags if tag == "a"]
    for state in STATES:
        assert f"/trace?outcome=new_job&state={state}" in links
    assert "/trace?outcome=None&state=proven" in links  # all proven people
    # 5 outcome types × 7 states, the headline and the two proven rates
    assert len(links) == 5 * 7 + 3
    assert '<a href="/trace?outcome=new_job&amp;state=proven">30</a>' in html


def test_numbers_follow_the_readers_language(report_app):
    with report_app.test_request_context("/", headers={"Accept-Language": "fr"}):
        html = render(make_doc())
    assert "62,5\xa0%" in html and "1\u202f200" in html


# -- the PDF --------------------------------------------------------------------------------

def page_html(body: str, extra: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Impact report 2025</title>'
            f'<link rel="stylesheet" href="/static/app.css"></head>'
            f"<body><h1>Impact report 2025</h1>{body}{extra}</body></html>")


def test_the_pdf_holds_the_figures_and_its_title(english):
    pdf = render_pdf(page_html(render(make_doc())))
    assert pdf.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.metadata.title == "Impact report 2025"
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    for expected in ("Impact report 2025", "Response rate", "62.5%", "1,200", "59.7% to 65.2%",
                     "Data", "hidden so a small group cannot be worked out", "Read these figures with care"):
        assert expected in text, expected
    assert "777" not in text
    assert len(reader.pages) >= 2
    # page numbers in the footer (report.css: @bottom-center)
    assert reader.pages[0].extract_text().split()[-3:] == ["1", "/", str(len(reader.pages))]


@pytest.fixture
def listener():
    """A TCP port on this machine that records whether anything connected to it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield server


def connected(server: socket.socket) -> bool:
    try:
        connection, _address = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def test_the_pdf_never_fetches_anything_over_the_network(english, listener, tmp_path):
    port = listener.getsockname()[1]
    outside = tmp_path / "x.png"
    outside.write_bytes(b"\x89PNG\r\n\x1a\n")
    extra = (f'<img src="http://127.0.0.1:{port}/x.png" alt="">'
             f'<link rel="stylesheet" href="http://127.0.0.1:{port}/x.css">'
             f'<img src="https://127.0.0.1:{port}/y.png" alt="">'
             f'<img src="{outside.as_uri()}" alt="">')
    pdf = render_pdf(page_html("<p>Figures</p>", extra))
    assert pdf.startswith(b"%PDF")
    assert not connected(listener)


def test_the_fetcher_serves_only_the_static_folders(english):
    fetcher = fetcher_for(english)
    base = english.config["BASE_URL"].rstrip("/")
    app_css = STATIC_FOLDERS[0] / "app.css"
    assert fetcher.local_path(f"{base}/static/app.css") == app_css.resolve()
    assert fetcher.local_path(app_css.as_uri()) == app_css.resolve()
    assert fetcher.local_path(REPORT_CSS.as_uri()) == REPORT_CSS.resolve()
    assert fetcher.fetch(f"{base}/static/app.css").read() == app_css.read_bytes()
    if "reports" in english.blueprints:
        assert fetcher.local_path(f"{base}/reports/static/report.css") == REPORT_CSS.resolve()
    assert fetcher.fetch("data:text/plain;base64,aGk=").read() == b"hi"
    for refused in (
        "http://127.0.0.1:1/x.png",
        "https://elsewhere.example/static/app.css",          # our path, another origin
        f"{base}/static/%2e%2e/reports/pdf.py",              # out of the folder
        f"{base}/static/../__init__.py",
        f"{base}/reports/views",                              # a page, not a static file
        "file:///etc/passwd",
        (STATIC_FOLDERS[0].parent / "web.py").as_uri(),      # the package, outside static/
        "ftp://127.0.0.1/x",
    ):
        assert fetcher.local_path(refused) is None, refused
        with pytest.raises(RefusedURL):
            fetcher.fetch(refused)


def test_the_knowledge_floor_warning_reads_in_the_readers_language(report_app):
    """The document keeps it in English (the API's language, and a snapshot's bytes); a
    French reader of the page, a published one included, reads it in French."""
    warning = ("The knowledge rate is 42%, under the 65% floor: the other rates may not describe "
               "the whole cohort.")
    doc = make_doc()
    doc["figures"]["warnings"] = [warning]
    with report_app.test_request_context("/", headers={"Accept-Language": "fr"}):
        html = render(doc)
    assert warning not in html
    assert re.search(r"Le taux de connaissance est de 42\s?%, sous le plancher de 65\s?%", html)
    with report_app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert warning in render(doc)
