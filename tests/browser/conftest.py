"""Real Chromium for the browser suite: Debian's package driven through Playwright's sync
API, against pytest-django's live server. Never a downloaded browser build.

Without /usr/bin/chromium the suite is skipped on a developer's machine and fails in CI
(``CI=true``), where it must run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    expect,
    sync_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
TIMEOUT_MS = 15_000  # every Playwright wait (navigation, locators) is bounded by this

# Chromium reports CSP violations on the console itself; this makes every violation an
# explicit console error as well, whatever the browser version logs. Init scripts are
# injected by the DevTools protocol, so the page's CSP does not block this one.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium, or make browser-deps)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; the browser suite must run in CI")
        pytest.skip(reason)
    # Playwright's sync API runs an asyncio event loop in this thread, and Django then
    # refuses ORM calls from the tests. Allowed only while the browser runs (this
    # package), so the rest of the suite keeps Django's check.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
            )
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class Tab:
    """A browser page on the live server that records console errors as it goes."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> Response | None:
        return self.page.goto(self.base_url + path)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({self.page.url})")

    def check(self, name: str, *, expected_errors: tuple[str, ...] = ()) -> None:
        """Screenshot the current page to test-results/screenshots/<name>.png, then
        assert that nothing was logged as an error since the last check (CSP violations
        are), apart from messages containing one of ``expected_errors``."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
        unexpected = [
            error
            for error in self.errors
            if not any(expected in error for expected in expected_errors)
        ]
        self.errors.clear()
        assert not unexpected, f"console errors (CSP violations among them) on {name}: {unexpected}"


def open_tab(browser: Browser, base_url: str) -> tuple[Tab, BrowserContext]:
    """A new browser context (a person of their own) with one recording page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.add_init_script(_REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    current = Tab(page=page, base_url=base_url)
    page.on("console", current.on_console)
    page.on("pageerror", lambda error: current.errors.append(f"page error: {error}"))
    return current, context


@pytest.fixture
def tab(browser: Browser, live_server: object) -> Iterator[Tab]:
    current, context = open_tab(browser, str(live_server.url))  # type: ignore[attr-defined]
    try:
        yield current
    finally:
        context.close()


@pytest.fixture
def new_tab(browser: Browser, live_server: object) -> Iterator[Callable[[], Tab]]:
    """More browser contexts on the live server (one per person), set up as ``tab``."""
    contexts = []

    def make() -> Tab:
        current, context = open_tab(browser, str(live_server.url))  # type: ignore[attr-defined]
        contexts.append(context)
        return current

    yield make
    for context in contexts:
        context.close()


def audit_rows(tab: Tab, project: int, *, shot: str) -> list[tuple[str, str]]:
    """The IG officer's search of the audit log for the project: (event, actor) of every
    row over every page, oldest first."""
    page = tab.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    expect(page.locator("h1")).to_have_text("Audit log")
    page.get_by_label("Project id").fill(str(project))
    page.get_by_role("button", name="Search").click()
    rows: list[tuple[str, str]] = []
    while True:
        expect(page.locator("table.audit-table")).to_be_visible()
        expect(page.get_by_text("Tampered", exact=True)).to_have_count(0)
        listed = page.locator("table.audit-table tbody tr").evaluate_all(
            "rows => rows.map(r => [r.cells[2].innerText.trim(), r.cells[3].innerText.trim()])"
        )
        rows += [(event, actor) for event, actor in listed]
        following = page.get_by_role("link", name="Next page")
        if not following.count():
            break
        following.click()
    tab.check(shot)
    return rows[::-1]
