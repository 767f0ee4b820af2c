"""Browser tests: the application served on a free port, driven by Playwright in
Debian's Chromium (``/usr/bin/chromium``; .ci/run installs it, no browser download),
every page checked by axe-core (the npm package, ``make test`` installs it) against
WCAG 2.1 A and AA.

Without Chromium the tests skip, saying why; under CI they fail instead.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.factories import PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: the rules axe runs: WCAG 2.0 and 2.1, levels A and AA
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="session")
def chromium():
    missing = [what for what, path in (("Chromium", CHROMIUM), ("axe-core", AXE)) if not Path(path).exists()]
    if missing:
        reason = f"{' and '.join(missing)} missing (apt-get install chromium; make test runs npm ci)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium, live_server, app_ctx):
    """open_page(user=None, width=1024, javascript=True, locale="en-GB") → a Playwright
    page on the live server, logged in as ``user`` through the login form."""
    contexts = []

    def opener(user=None, *, width=1024, javascript=True, locale="en-GB"):
        context = chromium.new_context(base_url=live_server, locale=locale, java_script_enabled=javascript,
                                       viewport={"width": width, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        if user is not None:
            page.goto("/login")
            page.locator("input[name=email]").fill(user.email)
            page.locator("input[name=password]").fill(PASSWORD)
            submit(page.locator("main form button[type=submit]"))
            assert "/login" not in page.url, f"{user.email} could not log in"
        return page

    yield opener
    for context in contexts:
        context.close()


def submit(control) -> None:
    """Click a form's button (or link) and wait until the page the server answers with
    has loaded: a check made right after a bare click may still see the old page."""
    with control.page.expect_navigation():
        control.click()


def axe_violations(page) -> list[dict]:
    """What axe-core finds on the page as it is now (evaluated by the browser's
    debugging protocol, which the page's Content-Security-Policy does not apply to)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate("rules => axe.run(document, {runOnly: {type: 'tag', values: rules}})", WCAG_AA)
    return result["violations"]


def assert_accessible(page, state: str) -> None:
    violations = axe_violations(page)
    described = [
        f"{v['id']} ({v['impact']}): {v['help']}\n    "
        + "\n    ".join(node["html"][:160] for node in v["nodes"][:5])
        for v in violations
    ]
    assert not violations, f"{page.url} [{state}]: " + "\n".join(described)
