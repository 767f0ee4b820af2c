"""The respondent's pages in a real browser: every state passes axe-core (WCAG 2.1 AA),
the form works by keyboard alone, with JavaScript off, and on a 320 px phone."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from survey.campaigns.models import Campaign, Response
from survey.core.types import utcnow
from survey.extensions import db
from tests.browser.conftest import assert_accessible, submit

pytestmark = pytest.mark.browser


def _fits(page, width: int) -> None:
    """Nothing wider than the screen: no sideways scrolling."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url}: {scroll_width}px wide on a {width}px screen"


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_every_state_of_the_survey_is_accessible(open_survey, open_page, locale):
    invitation, path = open_survey(locale=locale)
    page = open_page(locale=f"{locale}-FR")
    page.goto(path)
    assert_accessible(page, "empty")
    # Submitting with required questions unanswered: an error summary linked to the fields.
    submit(page.locator("button[name=submit], input[name=submit]"))
    summary = page.locator(".error-summary")
    assert summary.is_visible()
    assert_accessible(page, "with errors")
    first_link = summary.locator("a").first
    target = first_link.get_attribute("href")
    first_link.click()
    assert page.evaluate("document.activeElement.id") == target.lstrip("#") or page.locator(target).is_visible()
    # Saved, then resumed.
    page.locator("input[name=activity]").first.check()
    submit(page.locator("button[name=save], input[name=save]"))
    assert page.locator("input[name=activity]").first.is_checked()
    assert_accessible(page, "saved")
    # Submitted.
    page.goto(path)
    _answer_everything(page)
    submit(page.locator("button[name=submit], input[name=submit]"))
    assert _submitted(invitation) and not page.locator(".error-summary").count()
    assert_accessible(page, "submitted")
    page.goto(path)
    assert_accessible(page, "already answered")


def _answer_everything(page) -> None:
    """The alumni questionnaire's required answers, for someone seeking work (no claims)."""
    page.locator("input[name=activity][value=seeking]").check()
    page.locator("input[name=outcomes][value=none]").check()


def _submitted(invitation) -> bool:
    db.session.expire_all()
    return db.session.scalar(select(Response.submitted_at).where(
        Response.campaign_id == invitation.campaign_id)) is not None


def test_closed_and_broken_links_are_accessible(open_survey, open_page):
    invitation, path = open_survey()
    page = open_page()
    page.goto(path[:-4] + "xxxx")
    assert_accessible(page, "link does not work")
    db.session.execute(update(Campaign).where(Campaign.id == invitation.campaign_id)
                       .values(closes_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    page.goto(path)
    assert_accessible(page, "closed")


def test_the_survey_by_keyboard_alone(open_survey, open_page):
    invitation, path = open_survey()
    page = open_page()
    page.goto(path)
    # The first Tab reaches the skip link; it leads to the main content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('skip-link')")
    page.keyboard.press("Enter")
    # Every control can be reached by Tab, and the focused one is visibly marked.
    seen = set()
    for _ in range(200):
        page.keyboard.press("Tab")
        info = page.evaluate("""() => { const e = document.activeElement;
            const s = getComputedStyle(e);
            return {name: e.name || e.id || e.tagName, tag: e.tagName,
                    outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0,
                    shadow: s.boxShadow !== 'none'}; }""")
        if info["tag"] == "BODY":
            break
        assert info["outline"] or info["shadow"], f"no visible focus on {info['name']}"
        seen.add(info["name"])
    assert {"activity", "submit", "save"} <= seen
    # Answer with the keyboard: arrows move within a radio group, space checks a box.
    page.locator("input[name=activity]").first.focus()
    page.keyboard.press("ArrowDown")
    checked = page.locator("input[name=activity]:checked")
    assert checked.count() == 1


def test_the_survey_works_with_javascript_off(open_survey, open_page):
    invitation, path = open_survey()
    page = open_page(javascript=False)
    page.goto(path)
    _answer_everything(page)
    submit(page.locator("button[name=submit], input[name=submit]"))
    assert _submitted(invitation)
    response = db.session.scalar(select(Response).where(Response.campaign_id == invitation.campaign_id))
    assert response.answers["activity"] == "seeking"


def test_without_javascript_follow_ups_are_shown_before_submitting(open_survey, open_page):
    """Without the script, "new job" cannot show the employer and evidence questions as it is
    ticked: the page comes back with them instead of taking a final answer without them."""
    invitation, path = open_survey()
    page = open_page(javascript=False)
    page.goto(path)
    page.locator("input[name=activity][value=employed_full_time]").check()
    page.locator("input[name=outcomes][value=new_job]").check()
    submit(page.locator("button[name=submit], input[name=submit]"))
    assert not _submitted(invitation)
    assert "Your answers lead to more questions" in page.locator("[role=status]").inner_text()
    assert page.locator("input[name=outcomes][value=new_job]").is_checked()
    page.locator("input[name=attribution][value='4']").check()
    page.locator("#employer").fill("ACME")
    submit(page.locator("button[name=submit], input[name=submit]"))
    assert _submitted(invitation)
    response = db.session.scalar(select(Response).where(Response.campaign_id == invitation.campaign_id))
    assert response.answers["employer"] == "ACME"


@pytest.mark.parametrize("width", [320])
def test_the_survey_fits_a_small_phone(open_survey, open_page, width):
    invitation, path = open_survey()
    page = open_page(width=width)
    page.goto(path)
    _fits(page, width)
    submit(page.locator("button[name=submit], input[name=submit]"))
    _fits(page, width)
    assert_accessible(page, f"{width}px with errors")


def test_the_survey_at_200_percent_zoom(open_survey, open_page):
    # 200% zoom of a 1280px window lays the page out in 640 CSS pixels.
    invitation, path = open_survey()
    page = open_page(width=640)
    page.goto(path)
    _fits(page, 640)


def _text(en: str) -> dict:
    return {"en": en, "fr": en}


def test_follow_ups_show_as_the_server_decides(open_survey, open_page):
    """The page's script and the server agree: a scale's 1 is the definition's 1, and a
    follow-up of a question that hid is hidden too (the server drops its answer)."""
    choice = [{"value": "yes", "label": _text("Yes")}, {"value": "no", "label": _text("No")}]
    definition = {"slug": "follow-ups", "kind": "alumnus", "title": _text("Follow-ups"), "questions": [
        {"id": "mood", "type": "scale", "min": 1, "max": 5, "required": True, "label": _text("How are you?")},
        {"id": "why", "type": "long_text", "required": True, "label": _text("What is wrong?"),
         "show_if": {"question": "mood", "any_of": [1, 2]}},
        {"id": "working", "type": "single", "label": _text("Working?"), "options": choice},
        {"id": "salaried", "type": "single", "label": _text("Salaried?"), "options": choice,
         "show_if": {"question": "working", "equals": "yes"}},
        {"id": "employer", "type": "text", "label": _text("Employer?"),
         "show_if": {"question": "salaried", "equals": "yes"}},
    ]}
    _invitation, path = open_survey(definition=definition)
    page = open_page()
    page.goto(path)
    page.locator("input[name=mood][value='1']").check()
    assert page.locator("#why").is_visible()
    page.locator("input[name=mood][value='4']").check()
    assert not page.locator("#why").is_visible()
    page.locator("input[name=working][value=yes]").check()
    page.locator("input[name=salaried][value=yes]").check()
    assert page.locator("#employer").is_visible()
    page.locator("input[name=working][value=no]").check()
    assert not page.locator("#salaried-0").is_visible() and not page.locator("#employer").is_visible()


def test_none_of_these_unticks_the_outcomes_and_the_other_way_round(open_survey, open_page):
    _invitation, path = open_survey()
    page = open_page()
    page.goto(path)
    page.locator("input[name=outcomes][value=new_job]").check()
    page.locator("input[name=outcomes][value=raise]").check()
    page.locator("input[name=outcomes][value=none]").check()
    assert page.locator("input[name=outcomes]:checked").evaluate_all("els => els.map(e => e.value)") == ["none"]
    assert not page.locator("#employer").is_visible()
    page.locator("input[name=outcomes][value=promotion]").check()
    assert page.locator("input[name=outcomes]:checked").evaluate_all("els => els.map(e => e.value)") == ["promotion"]
    assert page.locator("#employer").is_visible()


def test_a_file_too_large_is_refused_in_the_page_with_the_answers_kept(app, open_survey, open_page, monkeypatch):
    """The server refuses a request over its limit before reading it (413, a page of its
    own): the page's script stops such a file first, and nothing typed is lost."""
    monkeypatch.setitem(app.config, "EVIDENCE_MAX_BYTES", 1024)
    _invitation, path = open_survey()
    page = open_page()
    page.goto(path)
    page.locator("input[name=activity][value=employed_full_time]").check()
    page.locator("input[name=outcomes][value=new_job]").check()
    page.locator("#employer").fill("ACME")
    page.locator("#evidence_file").set_input_files(
        files=[{"name": "scan.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n" + b"0" * 4096}])
    url = page.url
    page.locator("button[name=save], input[name=save]").click()
    note = page.locator("#evidence_file-too-large")
    note.wait_for()
    assert "The file is larger than" in note.inner_text()
    assert page.url == url and page.locator("#employer").input_value() == "ACME"
    assert page.evaluate("document.activeElement.id") == "evidence_file"
    assert "evidence_file-too-large" in page.locator("#evidence_file").get_attribute("aria-describedby")



def test_a_page_with_errors_starts_from_its_summary(open_survey, open_page):
    _invitation, path = open_survey()
    page = open_page()
    page.goto(path)
    submit(page.locator("button[name=submit], input[name=submit]"))
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    assert page.title().startswith("Error: ")
