"""Real Chromium for the browser suite: Debian's package driven through Playwright's sync
API, against pytest-django's live server. Never a downloaded browser build.

Without /usr/bin/chromium the suite is skipped on a developer's machine and fails in CI
(``CI=true``), where it must run.
"""

from __future__ import annotations

import contextlib
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
from playwright.sync_api import (
    Error as PlaywrightError,
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
        """Assert that nothing was logged as an error since the last check (CSP violations
        are), apart from messages containing one of ``expected_errors``; if something was,
        the page is saved first as test-results/screenshots/<name>.png."""
        unexpected = [
            error
            for error in self.errors
            if not any(expected in error for expected in expected_errors)
        ]
        self.errors.clear()
        if unexpected:
            self.screenshot(name)
        assert not unexpected, f"console errors (CSP violations among them) on {name}: {unexpected}"

    def screenshot(self, name: str) -> None:
        """The page as test-results/screenshots/<name>.png, if the browser can still
        give one (a failure must not be hidden by a second one)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PlaywrightError):
            self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[object]:
    """Each phase's report on its test, so that the tabs' teardown knows it failed."""
    report = yield
    setattr(item, f"sde_report_{call.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "sde_report_call", None)
    return report is None or report.failed  # None: the test never ran (its setup failed)


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
def tab(request: pytest.FixtureRequest, browser: Browser, live_server: object) -> Iterator[Tab]:
    """A browser context on the live server. Its page is saved (test-results/screenshots/)
    when the test fails: only then, as a full-page screenshot at every check costs
    Chromium's encoder more CPU than the rest of the check."""
    current, context = open_tab(browser, str(live_server.url))  # type: ignore[attr-defined]
    try:
        yield current
    finally:
        if _failed(request):
            current.screenshot(f"{request.node.name}-failed")
        context.close()


@pytest.fixture
def new_tab(
    request: pytest.FixtureRequest, browser: Browser, live_server: object
) -> Iterator[Callable[[], Tab]]:
    """More browser contexts on the live server (one per person), set up as ``tab``."""
    tabs: list[tuple[Tab, BrowserContext]] = []

    def make() -> Tab:
        current, context = open_tab(browser, str(live_server.url))  # type: ignore[attr-defined]
        tabs.append((current, context))
        return current

    yield make
    for n, (current, context) in enumerate(tabs, start=1):
        if _failed(request):
            current.screenshot(f"{request.node.name}-failed-{n}")
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
