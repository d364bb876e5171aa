"""The README's "A first walk through" (steps 1-7) in Chromium, end to end, as the demo
users that ``make run`` creates (issue 8 item 1).

The setup is what ``make run`` does before it serves the pages (scripts/run.sh):
``seed_demo``, ``synth`` (a smaller population than the demo's default), ``ingest`` and
``verify_audit``; and a real Celery worker. Everything after that is done in the pages,
as each demo user would: sign in with the demo password and the code the demo MFA page
shows; the administrator manages people and organisations; the IG officer reads the
audit chain; the custodian reads the catalogue and uploads a drop; the researcher
applies, both IG officers approve, the researcher analyses real data and asks for a
release that two output checkers approve, then downloads it; the analyst's planning
project finds a cohort that the clinician asks to re-identify, the IG officer and the
Caldicott Guardian sign it off and the clinician opens and downloads the list; the IG
officer finds it all in the audit log. No 5xx response, page error, console error or
CSP violation on any page on the way.

With ``SDE_SCREENSHOTS_DIR`` set (``make screenshots``) a PNG of each main page is saved
there, numbered in walk order (docs/screenshots/README.md lists them)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from PIL import Image
from playwright.sync_api import FloatRect, Locator, Page, Response, ViewportSize, expect

from tests.browser.conftest import SCREENSHOTS, Tab, audit_rows
from tests.integration.conftest import READY_TIMEOUT, TASK_TIMEOUT, WorkerStarter, start_worker

__all__ = ["start_worker"]  # the integration suite's fixture, used here

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,  # a real worker builds extracts, runs jobs, makes the list
    pytest.mark.django_db(transaction=True),
]

DEMO_PATIENTS = 2000  # make run's default is 20,000; two practices either way
SCREENSHOTS_VARIABLE = "SDE_SCREENSHOTS_DIR"
VIEWPORT = ViewportSize(width=1280, height=800)
MAX_SHOT_HEIGHT = 2400  # the top of a longer page
MAX_SHOT_BYTES = 250_000
JOB_TIMEOUT_MS = 90_000

TODAY = timezone.localdate()
PATIENT_FIELDS = ("person_id", "birth_month", "sex", "ethnicity", "lsoa_code", "imd_decile",
                  "practice_ods", "pcn_code", "place", "registration_start",
                  "registration_end", "date_of_death")  # fmt: skip
WHY = "Needed to count, age and place each registered person for the analysis."
SCRIPT = """import sdelib
patients = sdelib.read("patients")
print("people in the patients table:", len(patients))
sdelib.table(patients, by=["sex"], name="people_by_sex", title="People by sex")
"""
TABLE = "people_by_sex.csv"
RELEASE_TITLE = "Registered people by sex"
COHORT_NAME = "Aged 75 and over"
CARE = "Invite these patients for an annual frailty review at the practice."


@dataclass(frozen=True)
class Application:
    """What the walkthrough's applicant answers (the same sections A-I for both)."""

    username: str
    organisation: str
    title: str
    purpose: str  # the label's start
    article9: str
    schedule1: str
    ethics: str


RESEARCH = Application(
    "researcher", "University of Demoshire", "Who is registered in Demoshire, by sex",
    "Research", "Article 9(2)(j)", "Paragraph 4: research", "Favourable REC opinion",
)  # fmt: skip
PLANNING = Application(
    "analyst", "North Place", "Older people to invite for a frailty review",
    "Planning", "Article 9(2)(h)", "Paragraph 2: health or social care purposes",
    "Not required",
)  # fmt: skip


# --- The walk: one signed-in browser context per demo user, and the screenshots ---------
@dataclass
class Walk:
    new_tab: Callable[[], Tab]
    shots: Path | None
    tabs: dict[str, Tab] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            for old in self.shots.glob("[0-9][0-9]-*.png"):
                old.unlink()

    def visitor(self) -> Tab:
        """A browser of its own, signed in as nobody (viewport and 5xx recording set)."""
        tab = self.new_tab()
        tab.page.set_viewport_size(VIEWPORT)
        tab.page.on("response", lambda response: self._record(tab, response))
        return tab

    def as_user(self, username: str) -> Tab:
        """The demo user's own browser, signed in through the pages the first time."""
        if username not in self.tabs:
            tab = self.visitor()
            sign_in(tab, username)
            self.tabs[username] = tab
        return self.tabs[username]

    def failure_screenshots(self) -> None:
        """Where each person's browser was when the walk failed, under test-results/."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for username, tab in self.tabs.items():
            tab.page.screenshot(path=SCREENSHOTS / f"walkthrough-failed-{username}.png")

    def _record(self, tab: Tab, response: Response) -> None:
        if response.status >= 500:
            problem = f"{response.status} from {response.url}"
            self.server_errors.append(problem)
            tab.errors.append(problem)

    @staticmethod
    def check(tab: Tab, name: str) -> None:
        """Nothing was logged as an error since the last check: console errors, page
        errors, CSP violations, 5xx responses."""
        unexpected = list(tab.errors)
        tab.errors.clear()
        assert not unexpected, f"errors (CSP violations among them) on {name}: {unexpected}"

    def shot(self, tab: Tab, name: str) -> None:
        """Check the page and, when asked for, save it as the next numbered screenshot."""
        self.check(tab, name)
        if self.shots is None:
            return
        page = tab.page
        path = self.shots / f"{len(self.saved) + 1:02d}-{name}.png"
        height = page.evaluate("document.documentElement.scrollHeight")
        clip = FloatRect(x=0, y=0, width=VIEWPORT["width"], height=min(height, MAX_SHOT_HEIGHT))
        data = compact_png(page.screenshot(full_page=True, type="png", clip=clip))
        assert len(data) <= MAX_SHOT_BYTES, f"{path.name} is {len(data):,} bytes"
        path.write_bytes(data)
        self.saved.append(path)


def compact_png(data: bytes) -> bytes:
    """The screenshot in 256 colours (pages are flat colours and anti-aliased text: it
    looks the same at a third of the size)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, dither=Image.Dither.NONE).save(out, format="PNG", optimize=True)
    return out.getvalue()


def heading(page: Page) -> Locator:
    return page.locator("h1")


def notice(page: Page) -> Locator:
    return page.locator(".notification--success")


def nav(tab: Tab, label: str, title: str) -> None:
    """Follow a link of the main navigation to the page it names."""
    page = tab.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name=label).click()
    expect(heading(page)).to_have_text(title)


def card(page: Page, title: str) -> Locator:
    return page.locator("li.card").filter(has=page.get_by_role("heading", name=title))


def sign_in(tab: Tab, username: str) -> None:
    """As the README says: the demo password from the sign-in page, the code from the
    demo MFA page (the MFA check itself is the real one)."""
    page = tab.page
    tab.open("/accounts/login/")
    accounts = page.locator("section", has=page.locator("#demo-accounts"))
    expect(accounts.locator("tbody")).to_contain_text(username)
    password = accounts.locator("p code").inner_text()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()
    expect(heading(page)).to_have_text("Enter your code")
    page.get_by_label("Code").fill(page.locator("[data-demo-code]").inner_text())
    page.get_by_role("button", name="Continue").click()
    expect(heading(page)).to_have_text("Dashboard")


def reload_until(tab: Tab, locator: Callable[[], Locator], text: str, what: str) -> None:
    """Reload the page until ``locator`` contains ``text`` (a worker's work, bounded)."""
    deadline = time.monotonic() + 2 * TASK_TIMEOUT
    while text not in locator().inner_text():
        assert time.monotonic() < deadline, f"{what} did not happen in time"
        time.sleep(0.5)
        tab.page.reload()


# --- Step 4 and 7: an application, sections A-I, checked and submitted ------------------
def save_section(page: Page, letter: str, following: str) -> None:
    page.get_by_role("button", name="Save and continue").click()
    expect(notice(page)).to_contain_text(f"Section {letter} is saved and complete.")
    expect(heading(page)).to_have_text(following)


def apply(walk: Walk, app: Application, shots: str = "") -> int:
    """Fill in and submit an application; its number. ``shots``: a name prefix for the
    screenshots of the form (none when empty)."""
    tab = walk.as_user(app.username)
    page = tab.page
    start, end = TODAY, TODAY + timedelta(days=365)
    nav(tab, "Applications", "Your applications")
    page.get_by_role("link", name="Start an application").click()
    expect(heading(page)).to_have_text("Start an application")
    page.get_by_label("Which organisation are you applying for?").select_option(
        label=app.organisation
    )
    page.get_by_label("Title of the project").fill(app.title)
    page.get_by_role("button", name="Start the application").click()
    expect(heading(page)).to_have_text("A. About the request")
    number = int(re.search(r"/applications/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    page.get_by_label("CAG reference").fill("25/CAG/0042")
    page.get_by_label("Requested start date").fill(start.isoformat())
    page.get_by_label("Requested end date").fill(end.isoformat())
    save_section(page, "A", "B. Safe people")

    page.locator("#id_organisations-0-organisation_id").select_option(label=app.organisation)
    page.locator("#id_organisations-0-role").select_option(label="Data controller")
    page.locator("#id_organisations-0-ico_number").fill("ZA654321")
    page.locator("#id_organisations-0-dspt_status").fill("Standards met")
    page.locator("#id_organisations-0-dspt_expiry").fill((end + timedelta(days=90)).isoformat())
    page.locator("#id_organisations-0-country").fill("England")
    page.locator("#id_members-0-username").fill(app.username)
    page.locator("#id_members-0-role").select_option(label="Principal investigator")
    save_section(page, "B", "C. Safe project")

    # Section C asks an objective per dataset chosen in E: choose the data first.
    tab.open(f"/applications/{number}/data/")
    expect(heading(page)).to_have_text("E. Safe data")
    page.locator("summary", has_text="Registered patients").click()
    for name in PATIENT_FIELDS:
        page.get_by_label(f"Why you need {name} (Registered patients)", exact=True).fill(WHY)
        page.get_by_label(f"Ask for {name} (Registered patients)", exact=True).check()
    page.get_by_label("Youngest age (years)").fill("18")
    page.get_by_label("Record-level, pseudonymised").check()
    if shots:
        walk.shot(tab, f"{shots}-data")
    save_section(page, "E", "F. Safe settings")

    tab.open(f"/applications/{number}/project/")
    expect(heading(page)).to_have_text("C. Safe project")
    page.get_by_label("Lay summary").fill(f"{app.title}: counts of registered people.")
    page.get_by_label(re.compile(f"^{app.purpose}")).check()
    page.get_by_label("Aims and objectives").fill("Count the registered population by group.")
    page.get_by_label("Registered patients", exact=True).fill("The registered population.")
    page.get_by_label("Public benefit").fill("Services planned for the people who need them.")
    page.get_by_label("No", exact=True).check()
    save_section(page, "C", "D. Legal basis")

    page.get_by_label("Article 6(1)(e)", exact=True).check()
    page.get_by_label(app.article9, exact=True).check()
    page.get_by_label("DPA 2018 Schedule 1 condition").fill(app.schedule1)
    page.get_by_label("Section 251 support (CAG)", exact=True).check()
    page.get_by_label("Regulation 5", exact=True).check()
    page.get_by_label("Section 251 support: expiry date").fill(end.isoformat())
    page.get_by_label(app.ethics, exact=True).check()
    if app.ethics == "Not required":
        page.get_by_label("Why ethics approval is not required").fill("Service planning.")
    else:
        page.get_by_label("Date of the favourable REC opinion").fill(
            (TODAY - timedelta(days=30)).isoformat()
        )
    save_section(page, "D", "E. Safe data")

    tab.open(f"/applications/{number}/settings/")
    expect(heading(page)).to_have_text("F. Safe settings")
    page.get_by_label("Only inside this environment, in the UK").check()
    save_section(page, "F", "G. Safe outputs")
    page.get_by_label("Tables", exact=True).check()
    page.get_by_label("Publication plan").fill("A report to the ICB.")
    page.get_by_label("The environment's default rules").check()
    save_section(page, "G", "H. Retention and closure")
    page.get_by_label("Retain until").fill((end + timedelta(days=365)).isoformat())
    save_section(page, "H", "I. Declarations")
    page.get_by_label("I accept the user agreement").check()
    save_section(page, "I", app.title)  # the last section leads to the overview
    expect(page.locator("main")).to_contain_text("You have completed 9 of 9 sections")
    # The opt-out treatment the legal basis implies (section 251: the NDOP applies).
    treatment = page.locator("#optout-treatment")
    ndop = treatment.locator("div").filter(has=page.locator("dt", has_text="National data opt-out"))
    expect(ndop.locator("dd")).to_have_text("Applied")
    if shots:
        walk.shot(tab, f"{shots}-overview")

    page.get_by_role("link", name="Check and submit").click()
    expect(heading(page)).to_have_text("Check and submit")
    expect(page.locator("main")).to_contain_text("Every section is complete.")
    page.get_by_role("button", name="Submit the application").click()
    expect(notice(page)).to_contain_text("Your application is submitted.")
    expect(page.locator("#application-summary")).to_contain_text("Submitted")
    if shots:
        walk.shot(tab, f"{shots}-submitted")
    return number


def approve(walk: Walk, username: str, app: Application, *, first: bool, shot: str = "") -> None:
    """An IG officer approves the application from the review queue (the first one
    starts the review)."""
    tab = walk.as_user(username)
    page = tab.page
    nav(tab, "Review queue", "Applications to review")
    page.locator("#review-queue").get_by_role("link", name=app.title).click()
    expect(heading(page)).to_have_text(app.title)
    if first:
        page.get_by_role("button", name="Start the review").click()
        expect(notice(page)).to_contain_text("Review started")
    expect(page.locator("#review-summary")).to_contain_text("In review")
    if shot:
        walk.shot(tab, shot)
    page.locator("#approve").get_by_role("button", name="Approve").click()
    said = "Your approval is recorded. Still needed:" if first else "Approved. Project"
    expect(notice(page)).to_contain_text(said)


def open_project(walk: Walk, username: str, app: Application) -> int:
    """From the approved application to its project, once the worker built its extracts."""
    tab = walk.as_user(username)
    page = tab.page
    nav(tab, "Applications", "Your applications")
    row = page.get_by_role("row").filter(has_text=app.title)
    expect(row).to_contain_text("Approved")
    row.get_by_role("link", name=re.compile(r"^Go to project \d+$")).click()
    expect(heading(page)).to_have_text(app.title)
    project = int(re.search(r"/projects/(\d+)/$", page.url).group(1))  # type: ignore[union-attr]
    expect(page.locator("#project-status")).to_contain_text("Active")
    expect(page.locator("#approved-datasets")).to_contain_text("Registered patients")
    reload_until(tab, lambda: page.locator("#extract-real"), "Ready", "the real extract build")
    reload_until(tab, lambda: page.locator("#extract-dummy"), "Ready", "the dummy extract build")
    return project


def run_builtin(tab: Tab, name: str, title: str, fields: dict[str, str] | None = None) -> None:
    """Run a built-in analysis on the real extract (the form's defaults apart from
    ``fields``, label -> value) and wait for it to succeed."""
    page = tab.page
    page.locator(f"#analysis-{name} summary").click()
    form = page.locator(f"#analysis-{name}")
    form.get_by_label("Real data").check()
    for label, value in (fields or {}).items():
        form.get_by_label(label).fill(value)
    form.get_by_role("button", name=f"Run {title.lower()}").click()
    expect(notice(page)).to_contain_text("is queued")
    expect(heading(page)).to_have_text(title)
    expect(page.locator("#job-summary")).to_contain_text("Succeeded", timeout=JOB_TIMEOUT_MS)


def file_section(page: Page, name: str) -> Locator:
    return page.locator("section.release-file").filter(
        has=page.get_by_role("heading", name=name, exact=True)
    )


def check_release(walk: Walk, username: str, release: int, shot: str, said: str) -> None:
    """An output checker reviews the request from the queue and approves the table."""
    tab = walk.as_user(username)
    page = tab.page
    nav(tab, "Output checking", "Output checking")
    row = page.locator(f"#queue-{release}")
    expect(row).to_contain_text(RELEASE_TITLE)
    if shot:
        walk.shot(tab, f"{shot}-queue")
    row.get_by_role("button", name=re.compile(r"^Start review")).click()
    expect(notice(page)).to_contain_text(f"You are reviewing release request {release}.")
    expect(heading(page)).to_have_text(RELEASE_TITLE)
    section = file_section(page, TABLE)
    expect(section.locator("details summary")).to_contain_text("sexes.py")  # the script
    section.get_by_role("group", name="Decision").get_by_label("Approve", exact=True).check()
    if shot:
        walk.shot(tab, f"{shot}-review")
    section.get_by_role("button", name=f"Record the decision on {TABLE}").click()
    expect(notice(page)).to_contain_text(f"Your decision on {TABLE} is recorded.")
    page.get_by_role("button", name="Submit review").click()
    expect(notice(page)).to_contain_text(said)


def sign_off(walk: Walk, username: str, reid: int, label: str, said: str, shot: str) -> None:
    """From Direct care: open the request awaiting this person and approve it."""
    tab = walk.as_user(username)
    page = tab.page
    nav(tab, "Direct care", "Direct care")
    row = page.locator(f"#awaiting-requests-{reid}")
    expect(row).to_contain_text(COHORT_NAME)
    row.get_by_role("link", name=str(reid), exact=True).click()
    expect(page.locator("#reason")).to_have_text(CARE)
    section = page.locator("section", has=page.get_by_role("heading", name=f"Sign off as {label}"))
    section.get_by_role("group", name="Your decision").get_by_label("Approve", exact=True).check()
    walk.shot(tab, shot)
    section.get_by_role("button", name=f"Record your decision as {label}").click()
    expect(notice(page)).to_contain_text(f"You approved request {reid} as {label}. {said}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- The walk, step by step as the README numbers them ----------------------------------
def step_1_admin(walk: Walk) -> None:
    """People, a role, an accreditation; an organisation with a member."""
    admin = walk.as_user("admin")
    page = admin.page
    people = card(page, "People")
    expect(people).to_contain_text("0 locked out now")
    expect(people).to_contain_text("0 suspended")
    walk.shot(admin, "admin-dashboard")
    nav(admin, "People", "People")
    expect(page.locator("table")).to_contain_text("ig.officer2")
    walk.shot(admin, "admin-people")
    page.get_by_role("link", name="Create an account").click()
    expect(heading(page)).to_have_text("Create an account")
    page.get_by_label("Username").fill("pat.practice")
    page.get_by_label("First name").fill("Pat")
    page.get_by_label("Last name").fill("Practice")
    page.get_by_label("Email").fill("pat.practice@demo.invalid")
    page.get_by_label("Initial password").fill("amber-kestrel-orchard-5120")
    page.get_by_role("button", name="Create account").click()
    expect(notice(page)).to_contain_text("Account pat.practice created.")
    expect(heading(page)).to_have_text("Pat Practice")
    page.get_by_label("Grant a role").select_option(label="Clinician (direct care)")
    granting = page.locator("form", has=page.get_by_role("button", name="Grant role"))
    granting.get_by_label("Reason").fill("GP at the new practice.")
    granting.get_by_role("button", name="Grant role").click()
    expect(notice(page)).to_contain_text("Clinician (direct care) granted to Pat Practice.")
    page.locator("summary", has_text="Record an accreditation").click()
    page.get_by_label("Accreditation", exact=True).select_option(
        label="Data security awareness training"
    )
    page.get_by_label("Issued on").fill((TODAY - timedelta(days=10)).isoformat())
    page.get_by_label("Expires on").fill((TODAY + timedelta(days=355)).isoformat())
    page.get_by_label("Certificate reference").fill("DSPT-2026-118")
    page.get_by_role("button", name="Record accreditation").click()
    expect(notice(page)).to_contain_text("Accreditation recorded.")
    expect(page.locator("main")).to_contain_text("DSPT-2026-118")
    walk.shot(admin, "admin-person")
    # Nobody grants themselves a role: the administrator's own page offers no grant.
    page.get_by_role("link", name="People", exact=True).first.click()
    page.get_by_role("link", name="Ada Ministrator").click()
    expect(heading(page)).to_have_text("Ada Ministrator")
    expect(page.get_by_label("Grant a role")).to_have_count(0)
    nav(admin, "Organisations", "Organisations")
    page.get_by_label("Name", exact=True).fill("Brookside Surgery")
    page.get_by_label("Type").select_option(label="GP practice")
    page.get_by_label("ODS code").fill("Y99003")
    page.get_by_label("Part of").select_option(label="Riverside PCN (U99001)")
    page.get_by_role("button", name="Add organisation").click()
    expect(notice(page)).to_contain_text("Brookside Surgery added.")
    page.get_by_label("Username").fill("pat.practice")
    page.get_by_label("Job title").fill("GP partner")
    page.get_by_role("button", name="Add member").click()
    expect(notice(page)).to_contain_text("Pat Practice added to Brookside Surgery.")
    walk.shot(admin, "admin-organisation")


def step_2_ig_officer(walk: Walk) -> None:
    """The chain's last verification; the audit log searched and exported."""
    ig = walk.as_user("ig.officer")
    page = ig.page
    expect(card(page, "Audit log")).to_contain_text("Last verification passed")
    walk.shot(ig, "ig-dashboard")
    nav(ig, "Audit log", "Audit log")
    page.get_by_label("Event type").select_option(label="Role granted")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.audit-table tbody tr")
    expect(rows.filter(has_text="Ada Ministrator").first).to_contain_text("identity.role_granted")
    expect(page.get_by_text("Tampered", exact=True)).to_have_count(0)
    expect(rows.first.get_by_text("Verified", exact=True)).to_be_visible()
    walk.shot(ig, "ig-audit-log")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Export CSV").click()
    exported = Path(downloading.value.path()).read_text(encoding="utf-8")
    assert "identity.role_granted" in exported and "identity.mfa_verified" not in exported


def step_3_custodian(walk: Walk, drop: Path) -> None:
    """The catalogue's nine datasets; a drop uploaded (the demo's own: no new version)
    and its quarantine report."""
    custodian = walk.as_user("custodian")
    page = custodian.page
    nav(custodian, "Data catalogue", "Data catalogue")
    expect(page.locator("main table tbody tr")).to_have_count(9)
    walk.shot(custodian, "custodian-catalogue")
    page.get_by_role("link", name="Registered patients").click()
    expect(heading(page)).to_have_text("Registered patients")
    expect(page.locator("main")).to_contain_text("date_of_death")
    walk.shot(custodian, "custodian-dataset")
    nav(custodian, "Ingestion", "Ingestion")
    page.get_by_label("Label").fill("The demo drop, again")
    page.get_by_label("Files").set_input_files(sorted(drop.iterdir()))
    page.get_by_role("button", name="Upload and ingest").click()
    expect(page.locator(".notifications")).to_contain_text("This drop was already ingested")
    expect(heading(page)).to_have_text(re.compile(r"^Ingest #\d+: Demo synthetic ICS drop$"))
    expect(page.locator("#ingest-status")).to_contain_text("Succeeded")
    walk.shot(custodian, "custodian-ingest")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="download the quarantine report").click()
    report = Path(downloading.value.path()).read_text(encoding="utf-8").splitlines()
    assert len(report) > 1  # the demo drop's deliberate faults, one row each


def step_4_application(walk: Walk) -> int:
    """The researcher applies; both IG officers approve; the project (its number) is
    set up and the public register lists it."""
    apply(walk, RESEARCH, shots="researcher-application")
    approve(walk, "ig.officer", RESEARCH, first=True, shot="ig-review")
    approve(walk, "ig.officer2", RESEARCH, first=False)
    project = open_project(walk, "researcher", RESEARCH)
    walk.shot(walk.as_user("researcher"), "researcher-project")
    visitor = walk.visitor()
    visitor.open("/register/")
    expect(heading(visitor.page)).to_have_text("Transparency register")
    listed = visitor.page.get_by_role("row").filter(has_text=RESEARCH.title)
    expect(listed).to_contain_text("University of Demoshire")
    walk.check(visitor, "the register")
    return project


def step_5_workspace(walk: Walk, project: int) -> None:
    """A built-in analysis on real data; a script run on dummy data (its log read), then
    on real data."""
    researcher = walk.as_user("researcher")
    page = researcher.page
    page.get_by_role("link", name="Open the workspace").click()
    expect(heading(page)).to_have_text("Workspace")
    expect(page.locator("#data-access")).to_contain_text("You can run analyses.")
    expect(page.locator("#isolation")).to_have_count(0)  # real runs are isolated here
    walk.shot(researcher, "researcher-workspace")
    run_builtin(researcher, "population_profile", "Population profile")
    outputs = page.locator("#job-outputs")
    expect(outputs).to_contain_text("people_by_age_band_and_sex.csv")
    expect(outputs.get_by_role("link")).to_have_count(0)  # listed, never opened
    expect(page.locator("#real-outputs-note")).to_contain_text("output checking")
    walk.shot(researcher, "researcher-analysis")
    researcher.open(f"/projects/{project}/workspace/")
    page.locator("#new-script summary").click()
    page.get_by_label("Script name").fill("sexes.py")
    page.get_by_label("Script (Python)").fill(SCRIPT)
    page.get_by_role("button", name="Save the script").click()
    expect(notice(page)).to_contain_text("Script sexes.py saved")
    page.get_by_label("Data for sexes.py").select_option("dummy")
    page.get_by_role("button", name=re.compile(r"^Run sexes\.py")).click()
    expect(heading(page)).to_have_text("Script sexes.py")
    expect(page.locator("#job-summary")).to_contain_text("Succeeded", timeout=JOB_TIMEOUT_MS)
    page.get_by_role("link", name="Open the full log").click()
    expect(page.locator("body")).to_contain_text("people in the patients table:")
    researcher.open(f"/projects/{project}/workspace/")
    page.get_by_label("Data for sexes.py").select_option("real")
    page.get_by_role("button", name=re.compile(r"^Run sexes\.py")).click()
    expect(page.locator("#job-summary")).to_contain_text("Succeeded", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-outputs")).to_contain_text(TABLE)
    walk.shot(researcher, "researcher-script-real")


def step_6_release(walk: Walk, project: int) -> None:
    """From the finished real run: a release request; checker and checker2 approve; the
    researcher downloads the exact bytes shown; the register counts the file."""
    researcher = walk.as_user("researcher")
    page = researcher.page
    page.get_by_role("link", name="Request release of these outputs").click()
    expect(heading(page)).to_have_text("Release requests")
    page.get_by_label("Title").fill(RELEASE_TITLE)
    page.get_by_role("button", name="Create the request").click()
    expect(heading(page)).to_have_text(RELEASE_TITLE)
    release = int(re.search(r"/releases/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    form = page.locator("form", has=page.get_by_role("button", name="Add the file"))
    form.get_by_label("File", exact=True).select_option(label=TABLE)
    form.get_by_label("What it shows").fill("Registered people by sex.")
    form.get_by_label("What was done to make it safe").fill("Counts of distinct people.")
    form.get_by_role("button", name="Add the file and run the checks").click()
    expect(notice(page)).to_contain_text(f"{TABLE} added; the automated checks say: pass.")
    page.get_by_role("button", name="Submit for output checking").click()
    expect(notice(page)).to_contain_text("Submitted for output checking (round 1).")
    walk.shot(researcher, "researcher-release-submitted")
    check_release(walk, "checker", release, "checker",
                  "Your review is in; the request waits for a second checker.")  # fmt: skip
    check_release(walk, "checker2", release, "",
                  "Both reviews are in: the approved files are released.")  # fmt: skip
    researcher.open(f"/projects/{project}/releases/{release}/")
    expect(page.locator("#release-status")).to_contain_text("Released")
    shown = file_section(page, TABLE).locator("dd", has_text="Download").locator("code.hash")
    walk.shot(researcher, "researcher-released")
    with page.expect_download() as downloading:
        page.get_by_role("link", name=f"Download {TABLE}").click()
    table = downloading.value
    assert table.suggested_filename == TABLE
    assert sha256(Path(table.path()).read_bytes()) == shown.inner_text().strip()
    visitor = walk.visitor()
    visitor.open("/register/")
    listed = visitor.page.get_by_role("row").filter(has_text=RESEARCH.title)
    expect(listed.locator("td.numeric")).to_have_text("1")  # one released file
    walk.shot(visitor, "public-register")


def step_7_direct_care(walk: Walk) -> int:
    """The analyst's planning project finds a cohort; the clinician asks for its members
    at their practice; ig.officer and caldicott sign off; the worker makes the list; the
    clinician opens and downloads it. The project's number."""
    apply(walk, PLANNING)
    approve(walk, "ig.officer", PLANNING, first=True)
    approve(walk, "ig.officer2", PLANNING, first=False)
    project = open_project(walk, "analyst", PLANNING)
    analyst = walk.as_user("analyst")
    page = analyst.page
    page.get_by_role("link", name="Open the workspace").click()
    definition = {"Cohort definition": '{"age": {"min": 75}}', "Name of the cohort": COHORT_NAME}
    run_builtin(analyst, "cohort", "Case finding: a cohort", definition)
    expect(page.locator("#job-cohort")).to_contain_text(f"Saved the cohort {COHORT_NAME}")
    analyst.open(f"/projects/{project}/workspace/#cohorts")
    cohort_row = page.locator("#cohorts + table tbody tr").filter(has_text=COHORT_NAME)
    expect(cohort_row).to_contain_text('"definition": {"age": {"min": 75}}')
    expect(cohort_row).to_contain_text("Clinicians can request re-identification")
    size = cohort_row.locator("td").nth(2).inner_text()
    walk.shot(analyst, "analyst-cohort")

    clinician = walk.as_user("clinician")
    page = clinician.page
    nav(clinician, "Direct care", "Direct care")
    page.get_by_role("link", name=f"Request re-identification of {COHORT_NAME}").click()
    expect(page.get_by_label("Your practice").locator("option:checked")).to_have_text(
        "Riverside Medical Centre (Y99001)"
    )
    page.get_by_label("The direct care the list is for").fill(CARE)
    walk.shot(clinician, "clinician-request")
    page.get_by_role("button", name="Send the request for sign-off").click()
    reid = int(re.search(r"/direct-care/requests/(\d+)/$", page.url).group(1))  # type: ignore[union-attr]
    expect(notice(page)).to_contain_text(f"Re-identification request {reid} sent.")
    sign_off(walk, "ig.officer", reid, "IG officer",
             "It now needs the Caldicott Guardian's sign-off.", "ig-sign-off")  # fmt: skip
    sign_off(walk, "caldicott", reid, "Caldicott Guardian",
             "Both sign-offs are in: the list is being made.", "caldicott-sign-off")  # fmt: skip
    clinician.open(f"/direct-care/requests/{reid}/")
    reload_until(clinician, lambda: page.locator("#request-status"), "List ready",
                 "the re-identification")  # fmt: skip
    page.get_by_role("link", name="Open the list").click()
    expect(heading(page)).to_have_text(
        f"{COHORT_NAME}: patients registered at Riverside Medical Centre"
    )
    count = int(page.locator("#list-count strong").inner_text())
    expect(page.locator("#patient-list tbody tr")).to_have_count(count)
    assert 0 < count and (size == "fewer than 10" or count <= int(size.replace(",", "")))
    walk.shot(clinician, "clinician-list")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download CSV").click()
    listing = Path(downloading.value.path()).read_text(encoding="utf-8")
    assert len(list(csv.DictReader(io.StringIO(listing)))) == count
    return project


def step_7_audit(walk: Walk, research: int, planning: int) -> None:
    """ig.officer finds the release and the re-identification in the audit log, and an
    event's hash and link verify."""
    ig = walk.as_user("ig.officer")
    audited = audit_rows(ig, research, shot="walkthrough-ig-audit-research")
    events = [event for event, _ in audited]
    for expected in ("project.created", "analysis.job_finished",
                     "outputs.request_submitted", "outputs.approved", "outputs.released",
                     "outputs.file_downloaded"):  # fmt: skip
        assert expected in events, f"{expected} not in the audit log of project {research}"
    audited = audit_rows(ig, planning, shot="walkthrough-ig-audit-direct-care")
    steps = [
        (event, actor)
        for event, actor in audited
        if event.startswith("directcare.") and event != "directcare.cohort_created"
    ]
    assert steps == [
        ("directcare.reid_requested", "Dr Clare Nician"),
        ("directcare.reid_approved", "Iggy Officer"),
        ("directcare.reid_approved", "Carl Guardian"),
        ("directcare.reid_performed", "System"),
        ("directcare.list_viewed", "Dr Clare Nician"),
        ("directcare.list_downloaded", "Dr Clare Nician"),
    ]
    page = ig.page
    walk.shot(ig, "ig-audit-direct-care")
    page.locator("table.audit-table tbody tr").first.get_by_role("link").click()
    expect(page.locator(".notification--success")).to_contain_text(
        "This event's hash and its link to the previous event verify."
    )
    walk.shot(ig, "ig-audit-event")


def make_run_setup(drop: Path) -> None:
    """What ``make run`` does before it serves the pages (scripts/run.sh)."""
    quiet = io.StringIO()
    call_command("seed_demo", stdout=quiet)
    call_command("synth", "--patients", str(DEMO_PATIENTS), "--seed", "2026",
                 "--out", str(drop), stdout=quiet)  # fmt: skip
    call_command("ingest", str(drop), "--label", "Demo synthetic ICS drop",
                 stdout=quiet, stderr=quiet)  # fmt: skip
    call_command("verify_audit", stdout=quiet)


def test_the_readme_walkthrough_takes_every_role_through_its_main_job(
    new_tab: Callable[[], Tab],
    private_data_root: Path,
    tmp_path: Path,
    settings: pytest.FixtureRequest,
    start_worker: WorkerStarter,
) -> None:
    settings.SDE_DEMO_MODE = True  # type: ignore[attr-defined]
    make_run_setup(tmp_path / "demo-drop")
    # The worker takes seconds to start: it does so while the first people walk through
    # (what they queue waits in the broker). The fixture stops it at teardown.
    starting = ThreadPoolExecutor(max_workers=1)
    worker = starting.submit(start_worker, env={"SDE_DATA_ROOT": str(private_data_root)})
    starting.shutdown(wait=False)
    folder = os.environ.get(SCREENSHOTS_VARIABLE)
    walk = Walk(new_tab=new_tab, shots=Path(folder) if folder else None)
    try:
        step_1_admin(walk)
        step_2_ig_officer(walk)
        step_3_custodian(walk, tmp_path / "demo-drop")
        worker.result(timeout=READY_TIMEOUT)
        research = step_4_application(walk)
        step_5_workspace(walk, research)
        step_6_release(walk, research)
        planning = step_7_direct_care(walk)
        step_7_audit(walk, research, planning)
        for username, tab in walk.tabs.items():
            walk.check(tab, f"{username}'s last page")
    except BaseException:
        walk.failure_screenshots()
        raise
    assert walk.server_errors == []
