"""A release request's whole journey in Chromium (issue 6): a researcher asks to release
two tables a script made from the real extract, one with a cell below the threshold and
an exception request for it; two independent output checkers review it blind, one
approving both and the other requesting changes to the small table, which returns the
request (ADR 0010: either checker's request for changes goes to the researcher); the researcher
reads the decisions, replaces the table with better context and a better exception, and
resubmits; both checkers approve and the files are released; the researcher downloads
the exact bytes the job registered, one file and the zip; the IG officer finds every step
in the audit log. No console error or CSP violation on any page on the way.

Only the setup uses services (the data, the project, the real-data job, the people);
everything after is done in the pages, as each person would."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from sde.analysis import services as analyses
from sde.analysis.models import Job
from sde.data import synth
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.identity.models import User
from sde.identity.roles import Role
from sde.projects.services import MemberSpec, create_project
from sde.tasks import build_project_extracts_task
from tests import scenarios
from tests.browser.conftest import Tab, audit_rows
from tests.browser.test_access_request_journey import PASSWORD, sign_in
from tests.unit.sde.analysis.conftest import PATIENT_FIELDS
from tests.unit.sde.projects.builders import accredit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAFE, SMALL = "people_by_sex.csv", "small_groups.csv"
# Run on the real extract: every sex has well over ten people; the second table has a
# group of three (T1, the threshold rule, does not pass).
SCRIPT = """import sdelib
patients = sdelib.read("patients")
sdelib.table(patients, by=["sex"], name="people_by_sex", title="People by sex")
first = patients.sort_values("person_id").head(40).copy()
first["group"] = ["larger"] * 37 + ["smaller"] * 3
sdelib.table(first, by=["group"], name="small_groups", title="People by group")
"""
TITLE = "People by sex and by study group"
CHANGES = "Say who the smaller group is and why three people in it identify nobody."
BETTER = "The smaller group is the three pilot sites' staff accounts, not patients."


@dataclass(frozen=True)
class World:
    project: int
    job: Job
    researcher: User
    checkers: tuple[User, User]  # independent of the project: A and B
    ig: User


def _world(folder: Path, custodian: User) -> World:
    """Synthetic data ingested, a project with its extracts built, and the script run on
    the real extract through the job services (the sandbox for real)."""
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=150)
    tables = ("patients", "gp_events", "ndop")
    synth.write_drop(synth.generate(patients=300, seed=11, config=config, tables=tables), folder)
    done = run_ingest(
        ingest=request_ingest(drop_dir=folder, by=custodian, enqueue=False), by=custodian
    )
    assert done.status == Ingest.Status.SUCCEEDED
    researcher = accredit(scenarios.person(Role.RESEARCHER, password=PASSWORD))
    ig = scenarios.person(Role.IG_OFFICER, password=PASSWORD)
    today = timezone.localdate()
    project = create_project(
        title="Sex and study groups in North Place", lay_summary="Who is registered, by sex.",
        organisation=scenarios.organisation(), start_date=today,
        end_date=today + timedelta(days=200), members=[MemberSpec(researcher, "analyst")],
        scope={"datasets": {"patients": PATIENT_FIELDS}, "purpose": "research",
               "legal_basis": "s251_standard"},
        by=ig,
    )  # fmt: skip
    assert build_project_extracts_task(project.pk) == "built"
    script = analyses.save_script(project=project, name="groups.py", content=SCRIPT,
                                  by=researcher)  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(analyses, "_enqueue", lambda job_id: None)  # run here, not on a broker
        job = analyses.submit_job(project=project, by=researcher, on_dummy=False, script=script)
    assert analyses.run_job(job_id=job.pk, worker="browser-test") == Job.Status.SUCCEEDED
    checkers = tuple(scenarios.person(Role.OUTPUT_CHECKER, password=PASSWORD) for _ in range(2))
    return World(project=project.pk, job=Job.objects.get(pk=job.pk), researcher=researcher,
                 checkers=checkers, ig=ig)  # type: ignore[arg-type]  # fmt: skip


# --- What a person does in the pages ------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_section(page: Page, name: str) -> Locator:
    return page.locator("section.release-file").filter(
        has=page.get_by_role("heading", name=name, exact=True)
    )


def notice(page: Page) -> Locator:
    return page.locator(".notification--success")


def add_file(tab: Tab, name: str, *, context: str, controls: str) -> str:
    """Add one of the job's outputs; the automated checks' outcome as the page says it."""
    page = tab.page
    form = page.locator("form", has=page.get_by_role("button", name="Add the file"))
    form.get_by_label("File", exact=True).select_option(label=name)
    form.get_by_label("What it shows").fill(context)
    form.get_by_label("What was done to make it safe").fill(controls)
    form.get_by_role("button", name="Add the file and run the checks").click()
    expect(notice(page)).to_contain_text(f"{name} added; the automated checks say: ")
    said = re.search(r"say: (\w+)\.", notice(page).inner_text())
    assert said is not None
    return said.group(1)


def file_exceptions(tab: Tab, name: str, *, reason: str, justification: str) -> list[str]:
    """Answer every rule the checks did not pass for the file; the rules answered."""
    page = tab.page
    rules = []
    section = file_section(page, name)
    for n in range(section.locator(".exception").count()):
        exception = file_section(page, name).locator(".exception").nth(n)
        heading = exception.get_by_role("heading").inner_text()
        rule = re.search(r"Exception request for (\w+)", heading).group(1)  # type: ignore[union-attr]
        exception.get_by_role("group", name="Why it is safe to release").get_by_label(
            reason, exact=True
        ).check()
        exception.get_by_label("Justification").fill(justification)
        exception.get_by_role("button", name=re.compile(r"^Save the exception request")).click()
        expect(notice(page)).to_contain_text(f"Exception request for {rule} on {name} saved.")
        rules.append(rule)
    return rules


def start_review(tab: Tab, release: int) -> None:
    page = tab.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Output checking").click()
    expect(page.locator("h1")).to_have_text("Output checking")
    row = page.locator(f"#queue-{release}")
    expect(row).to_contain_text(TITLE)
    row.get_by_role("button", name=re.compile(r"^Start review")).click()
    expect(notice(page)).to_contain_text(f"You are reviewing release request {release}.")
    expect(page.locator("h1")).to_have_text(TITLE)


def decide(tab: Tab, name: str, decision: str, comment: str = "", *, grant: bool = True) -> None:
    """Record a decision on one file, granting (or refusing) each exception asked for."""
    page = tab.page
    section = file_section(page, name)
    section.get_by_role("group", name="Decision").get_by_label(decision, exact=True).check()
    if comment:
        section.get_by_label("Comment").fill(comment)
    exceptions = section.get_by_role("group", name=re.compile(r"^The exception for "))
    for n in range(exceptions.count()):
        exceptions.nth(n).get_by_label("Grant" if grant else "Refuse", exact=True).check()
    section.get_by_role("button", name=f"Record the decision on {name}").click()
    expect(notice(page)).to_contain_text(f"Your decision on {name} is recorded.")


def submit_review(tab: Tab, said: str) -> None:
    page = tab.page
    page.get_by_role("button", name="Submit review").click()
    expect(notice(page)).to_contain_text(said)


def review_of(checker: User) -> list[tuple[str, str]]:
    """The audit events of a checker's review of the request's two files."""
    who = checker.display_name
    return [("outputs.review_started", who), ("outputs.file_decided", who),
            ("outputs.file_decided", who), ("outputs.review_submitted", who)]  # fmt: skip


# --- The journey --------------------------------------------------------------------------
def test_release_is_checked_returned_resubmitted_approved_downloaded_and_audited(
    tab: Tab,
    new_tab: Callable[[], Tab],
    private_data_root: Path,
    custodian: User,
    tmp_path: Path,
) -> None:
    world = _world(tmp_path / "drop", custodian)
    pk, job = world.project, world.job
    registered = {o.name: o.sha256 for o in job.outputs.all()}
    assert {SAFE, SMALL} <= set(registered)
    page = tab.page
    first, second = (new_tab() for _ in range(2))
    a, b = world.checkers
    sign_in(tab, world.researcher, "release-researcher")
    for checker_tab, checker, name in zip((first, second), world.checkers, "ab",
                                          strict=True):  # fmt: skip
        sign_in(checker_tab, checker, f"release-checker-{name}")

    # --- The researcher asks for the job's two tables ----------------------------------
    tab.open(f"/projects/{pk}/jobs/{job.pk}/")
    expect(page.locator("#real-outputs-note")).to_be_visible()  # real data: not shown
    page.get_by_role("link", name="Request release of these outputs").click()
    expect(page.locator("h1")).to_have_text("Release requests")
    page.get_by_label("Title").fill(TITLE)
    page.get_by_role("button", name="Create the request").click()
    expect(page.locator("h1")).to_have_text(TITLE)
    release = int(re.search(r"/releases/(\d+)/", page.url).group(1))  # type: ignore[union-attr]
    expect(notice(page)).to_contain_text(f"Release request {release} created.")
    expect(page.get_by_label("File", exact=True)).not_to_have_value("")  # the job's first
    tab.check("release-new")

    assert (
        add_file(tab, SAFE, context="Registered patients by sex.",
                 controls="Counts of distinct people; every group is large.")
        == "pass"
    )  # fmt: skip
    assert add_file(tab, SMALL, context="People in each study group.", controls="None.") != "pass"
    small = file_section(page, SMALL)
    expect(small.locator(".findings")).to_contain_text("T1")
    expect(small.locator(".findings")).to_contain_text("Fewer people than the threshold")
    expect(small.locator(".findings")).not_to_contain_text("3 people")  # no real value shown
    expect(file_section(page, SAFE).locator(".exception")).to_have_count(0)
    # Submitting before answering for the failing rule is refused, with the rule named.
    page.get_by_role("button", name="Submit for output checking").click()
    expect(page.locator("#submit-errors")).to_contain_text(f"{SMALL}: No exception request for")
    tab.check("release-submit-refused", expected_errors=("status of 400",))  # the refusal
    rules = file_exceptions(tab, SMALL, reason="Other",
                            justification="Only three people; we think it is fine.")  # fmt: skip
    assert "T1" in rules
    page.get_by_role("button", name="Submit for output checking").click()
    expect(notice(page)).to_contain_text("Submitted for output checking (round 1).")
    expect(page.locator("#release-status")).to_contain_text("Submitted")
    tab.check("release-submitted")

    # --- Round 1: checker A approves both, granting the exception -------------------------
    start_review(first, release)
    review = first.page
    small = file_section(review, SMALL)
    expect(small.locator(".sdc-cell--fail").first).to_be_visible()  # the small cell marked
    expect(small).to_contain_text("The researcher's exception request for T1")
    expect(small).to_contain_text("Only three people; we think it is fine.")
    expect(small.locator("details summary")).to_contain_text("groups.py")  # the script
    expect(review.locator(".warning-text")).to_have_count(0)  # bytes unchanged
    first.check("release-review-a-round-1")
    decide(first, SAFE, "Approve")
    decide(first, SMALL, "Approve", "Three people in a made-up grouping; exception granted.")
    submit_review(first, "Your review is in; the request waits for a second checker.")

    # --- Round 1: checker B, blind to A, requests changes to the small table --------------
    start_review(second, release)
    review = second.page
    expect(review.get_by_text("The other checker's decisions")).to_have_count(0)  # blind
    decide(second, SAFE, "Approve")
    decide(second, SMALL, "Request changes", CHANGES, grant=False)
    submit_review(second, "the request is returned to the researcher for changes")
    expect(file_section(review, SMALL)).to_contain_text("The other checker's decisions")
    second.check("release-review-b-round-1")

    # --- The researcher reads the decisions, replaces the table and resubmits -------------
    tab.open(f"/projects/{pk}/releases/{release}/")
    expect(page.locator("#release-status")).to_contain_text("Returned for changes")
    small = file_section(page, SMALL)
    expect(small).to_contain_text("Round 1, output checker 2: Request changes")
    expect(small).to_contain_text(CHANGES)
    expect(small).to_contain_text("Exception for T1: refused")
    for checker in world.checkers:  # who they were is not shown to the researcher
        expect(page.get_by_text(checker.display_name)).to_have_count(0)
    tab.check("release-returned")
    small.get_by_role("button", name=f"Remove {SMALL} from the request").click()
    expect(notice(page)).to_contain_text(f"{SMALL} removed from the request.")
    controls = "Checked with the study team: no patient is in the smaller group."
    assert add_file(tab, SMALL, context=f"People in each study group. {BETTER}",
                    controls=controls) != "pass"  # the same bytes: the same checks  # fmt: skip
    answered = file_exceptions(tab, SMALL, reason="Not about individuals", justification=BETTER)
    assert answered == rules
    changes = page.locator("#changes")
    expect(changes).to_contain_text("Changes for round 2")
    expect(changes).to_contain_text(f"Added {SMALL}")
    expect(changes).to_contain_text(f"Removed {SMALL}")
    expect(page.locator("#earlier")).to_contain_text("Files of earlier rounds")
    page.get_by_role("button", name="Submit again").click()
    expect(notice(page)).to_contain_text("Submitted for output checking (round 2).")
    tab.check("release-resubmitted")

    # --- Round 2: both checkers approve; the files are released ---------------------------
    start_review(first, release)
    expect(first.page.locator(".caption")).to_contain_text("round 2")
    expect(file_section(first.page, SMALL)).to_contain_text(BETTER)
    decide(first, SAFE, "Approve")
    decide(first, SMALL, "Approve", "Not about patients; exception granted.")
    submit_review(first, "Your review is in; the request waits for a second checker.")
    start_review(second, release)
    decide(second, SAFE, "Approve")
    decide(second, SMALL, "Approve", "The new context answers my question; granted.")
    submit_review(second, "Both reviews are in: the approved files are released.")
    first.check("release-review-a-round-2")
    second.check("release-review-b-round-2")

    # --- The researcher downloads the exact bytes the job registered ---------------------
    tab.open(f"/projects/{pk}/releases/{release}/")
    expect(page.locator("#release-status")).to_contain_text("Released")
    tab.check("release-released")
    small = file_section(page, SMALL)
    expect(small).to_contain_text(registered[SMALL][:16])
    with page.expect_download() as downloading:
        small.get_by_role("link", name=f"Download {SMALL}").click()
    single = downloading.value
    assert single.suggested_filename == SMALL
    assert sha256(Path(single.path()).read_bytes()) == registered[SMALL]
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download every released file (zip)").click()
    bundle = downloading.value
    assert bundle.suggested_filename == f"release-{release}.zip"
    archive = zipfile.ZipFile(io.BytesIO(Path(bundle.path()).read_bytes()))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["release_request"] == release and manifest["round"] == 2
    listed = {entry["name"]: entry for entry in manifest["files"]}
    assert set(listed) == {SAFE, SMALL}
    for name, entry in listed.items():
        assert entry["sha256"] == registered[name]
        assert sha256(archive.read(entry["path"])) == registered[name]
        assert f"{registered[name]}  {entry['path']}" in archive.read("SHA256SUMS").decode()
    tab.check("release-downloaded")

    # --- The IG officer finds every step in the audit log -------------------------------
    auditor = new_tab()
    sign_in(auditor, world.ig, "release-ig")
    rows = audit_rows(auditor, pk, shot="release-audit-log")
    steps = [(event, actor) for event, actor in rows
             if event.startswith("outputs.") and event != "outputs.file_viewed"]  # fmt: skip
    researcher, system = world.researcher.display_name, "System"
    added = [("outputs.file_added", researcher), ("outputs.checks_run", system)]
    expected = [
        ("outputs.request_created", researcher), *added, *added,
        *[("outputs.exception_requested", researcher)] * len(rules),
        ("outputs.request_submitted", researcher),
        *review_of(a), *review_of(b),
        ("outputs.request_returned", b.display_name),
        ("outputs.file_removed", researcher), *added,
        *[("outputs.exception_requested", researcher)] * len(answered),
        ("outputs.request_submitted", researcher),
        *review_of(a), *review_of(b),
        ("outputs.approved", b.display_name), ("outputs.released", system),
        *[("outputs.file_downloaded", researcher)] * 3,  # the file, then both in the zip
    ]  # fmt: skip
    assert steps == expected
    viewers = {actor for event, actor in rows if event == "outputs.file_viewed"}
    assert viewers == {checker.display_name for checker in world.checkers}
