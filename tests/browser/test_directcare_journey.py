"""Direct care re-identification in Chromium (issue 7), from cohort to downloaded list: a
clinician at a GP practice asks for the members of a planning project's cohort registered
at their practice; an IG officer and the Caldicott Guardian each sign the request off in
their pages; a real Celery worker makes the list; the clinician opens it and downloads
the CSV; the IG officer cannot open it (404) but finds every step in the audit log. No
console error or CSP violation on any page on the way.

Only the setup uses services (the data, the project and its cohort found on the real
extract, the practice, the people); everything after is done in the pages, as each
person would."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Locator, Page, expect

from sde.analysis import services as analyses
from sde.analysis.models import Cohort
from sde.data import synth
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.directcare import services
from sde.directcare.models import ReidentificationRequest
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from tests import scenarios
from tests.browser.conftest import Tab, audit_rows
from tests.browser.test_access_request_journey import PASSWORD, sign_in
from tests.integration.conftest import READY_TIMEOUT, TASK_TIMEOUT, WorkerStarter, start_worker
from tests.unit.sde.directcare.conftest import PRACTICES, _cohort, _project
from tests.unit.sde.projects import builders

__all__ = ["start_worker"]  # the integration suite's fixture, used here

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,  # a real worker process makes the list
    pytest.mark.django_db(transaction=True),
]

REASON = "Invite these adults for a structured medication review at the practice."
NHS_NUMBER = re.compile(r"\d{3} \d{3} \d{4}")


@dataclass(frozen=True)
class World:
    project: int
    cohort: Cohort
    clinician: User
    ig: User
    caldicott: User


def _world(folder: Path, custodian: User) -> World:
    """A small synthetic drop of two practices ingested, a planning project with its
    extracts built, and its cohort of adults found by the cohort analysis on the real
    extract (run in this process, not on a broker); a clinician at practice Y99001, an
    IG officer and a Caldicott Guardian, each with a password and an authenticator."""
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=100)
    tables = ("patients", "gp_events", "gp_medications", "apc_spells", "ae_attendances", "ndop")
    synth.write_drop(synth.generate(patients=200, seed=7, config=config, tables=tables), folder)
    done = run_ingest(
        ingest=request_ingest(drop_dir=folder, by=custodian, enqueue=False), by=custodian
    )
    assert done.status == Ingest.Status.SUCCEEDED
    ig = scenarios.person(Role.IG_OFFICER, password=PASSWORD)
    caldicott = scenarios.person(Role.CALDICOTT_GUARDIAN, password=PASSWORD)
    member = builders.researcher()
    icb = scenarios.organisation(Organisation.Kind.ICB)
    project = _project("planning", ig, member, icb)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(analyses, "_enqueue", lambda job_id: None)  # run here, not on a broker
        cohort = _cohort(project, member)
    practice = scenarios.organisation(Organisation.Kind.GP_PRACTICE, PRACTICES[0],
                                      name="North Place Surgery")  # fmt: skip
    clinician = scenarios.person(Role.CLINICIAN, password=PASSWORD)
    identity.add_membership(user=clinician, organisation=practice, by=scenarios.administrator())
    return World(project=project.pk, cohort=cohort, clinician=clinician, ig=ig,
                 caldicott=caldicott)  # fmt: skip


# --- What a person does in the pages ------------------------------------------------------
def notice(page: Page) -> Locator:
    return page.locator(".notification--success")


def direct_care(tab: Tab) -> None:
    page = tab.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Direct care").click()
    expect(page.locator("h1")).to_have_text("Direct care")


def sign_off_as(tab: Tab, reid: int, label: str, said: str, name: str) -> None:
    """From the direct care page: open the request awaiting this person and approve it."""
    page = tab.page
    direct_care(tab)
    expect(page.get_by_role("heading", name="Awaiting your sign-off")).to_be_visible()
    row = page.locator(f"#awaiting-requests-{reid}")
    expect(row).to_contain_text("adults")
    expect(row).to_contain_text("Awaiting both approvals" if "IG" in label else "One approval in")
    row.get_by_role("link", name=str(reid), exact=True).click()
    expect(page.locator("h1")).to_have_text("adults at North Place Surgery")
    expect(page.locator("#reason")).to_have_text(REASON)
    section = page.locator("section", has=page.get_by_role("heading", name=f"Sign off as {label}"))
    section.get_by_role("group", name="Your decision").get_by_label("Approve", exact=True).check()
    tab.check(f"directcare-{name}-signing")
    section.get_by_role("button", name=f"Record your decision as {label}").click()
    expect(notice(page)).to_contain_text(f"You approved request {reid} as {label}. {said}")
    expect(page.locator(f"#decision-{'ig' if 'IG' in label else 'caldicott'}")).to_contain_text(
        "Approved"
    )
    tab.check(f"directcare-{name}-signed")


def wait_for_list(tab: Tab, reid: int) -> None:
    """Reload the clinician's request page until it says the list is ready (bounded)."""
    page = tab.page
    deadline = time.monotonic() + 2 * TASK_TIMEOUT
    tab.open(f"/direct-care/requests/{reid}/")
    while not page.locator("#list-ready").count():
        status = page.locator("#request-status")  # still being made: not failed
        expect(status).to_contain_text("Approved: the list is being made")
        assert time.monotonic() < deadline, "the list was not made in time"
        time.sleep(0.5)
        page.reload()
    expect(page.locator("#request-status")).to_contain_text("List ready")
    expect(page.locator("#list-ready")).to_contain_text("The list is ready")


# --- The journey --------------------------------------------------------------------------
def test_cohort_is_reidentified_for_the_clinician_downloaded_and_audited(
    tab: Tab,
    new_tab: Callable[[], Tab],
    private_data_root: Path,
    custodian: User,
    tmp_path: Path,
    start_worker: WorkerStarter,
) -> None:
    world = _world(tmp_path / "drop", custodian)
    # The worker takes seconds to start: it does so while the people sign in and ask
    # (the approval's message waits in the broker). The fixture stops it at teardown.
    starting = ThreadPoolExecutor(max_workers=1)
    worker_ready = starting.submit(start_worker, env={"SDE_DATA_ROOT": str(settings.SDE_DATA_ROOT)})
    starting.shutdown(wait=False)
    clinician, ig, caldicott = world.clinician, world.ig, world.caldicott
    page = tab.page
    officer, guardian = new_tab(), new_tab()
    sign_in(tab, clinician, "directcare-clinician")
    sign_in(officer, ig, "directcare-ig")
    sign_in(guardian, caldicott, "directcare-caldicott")

    # --- The clinician finds the cohort and asks for its members at their practice -------
    direct_care(tab)
    row = page.locator(f"#cohort-{world.cohort.pk}")
    expect(row).to_contain_text("adults")
    expect(row).to_contain_text("A planning project")
    expect(page.locator("#my-requests")).to_have_text("You have not asked for a list.")
    tab.check("directcare-home")
    row.get_by_role("link", name="Request re-identification of adults").click()
    expect(page.locator("h1")).to_have_text("Request re-identification of “adults”")
    expect(page.locator("#statement")).to_contain_text("for their direct care only")
    practice = page.get_by_label("Your practice")
    expect(practice.locator("option:checked")).to_have_text("North Place Surgery (Y99001)")
    page.get_by_label("The direct care the list is for").fill(REASON)
    tab.check("directcare-request-new")
    page.get_by_role("button", name="Send the request for sign-off").click()
    expect(notice(page)).to_contain_text("Re-identification request ")
    reid = int(re.search(r"/direct-care/requests/(\d+)/$", page.url).group(1))  # type: ignore[union-attr]
    expect(notice(page)).to_contain_text(f"Re-identification request {reid} sent.")
    expect(page.locator("#request-status")).to_contain_text("Awaiting both approvals")
    expect(page.locator("#list-ready")).to_have_count(0)
    tab.check("directcare-requested")

    # --- The IG officer, then the Caldicott Guardian, approve it --------------------------
    sign_off_as(officer, reid, "IG officer",
                "It now needs the Caldicott Guardian's sign-off.", "ig")  # fmt: skip
    sign_off_as(guardian, reid, "Caldicott Guardian",
                "Both sign-offs are in: the list is being made.", "caldicott")  # fmt: skip

    # --- The worker makes the list; the clinician opens it and downloads the CSV --------
    worker = worker_ready.result(timeout=READY_TIMEOUT)
    wait_for_list(tab, reid)
    tab.check("directcare-ready")
    request = ReidentificationRequest.objects.get(pk=reid)
    assert request.status == ReidentificationRequest.Status.READY and request.people
    page.get_by_role("link", name="Open the list").click()
    expect(page.locator("h1")).to_have_text("adults: patients registered at North Place Surgery")
    expect(page.locator("#list-count")).to_have_text(
        f"{request.people} patient{'s' if request.people != 1 else ''}."
    )
    cells = page.locator("#patient-list tbody tr td:first-child")
    expect(cells).to_have_count(request.people)
    shown = cells.all_inner_texts()
    assert all(NHS_NUMBER.fullmatch(number) for number in shown), shown[:5]
    tab.check("directcare-list")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download CSV").click()
    download = downloading.value
    assert download.suggested_filename == f"direct-care-list-{reid}.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    downloaded = {row["NHS number"] for row in rows}
    assert len(rows) == len(downloaded) == request.people
    assert downloaded == {number.replace(" ", "") for number in shown}
    tab.check("directcare-downloaded")

    # --- Nobody else can open it: to the IG officer the list does not exist --------------
    response = officer.open(f"/direct-care/requests/{reid}/list/")
    assert response is not None and response.status == 404
    expect(officer.page.locator("h1")).to_have_text("Page not found")
    expect(officer.page.get_by_text(NHS_NUMBER)).to_have_count(0)
    officer.check("directcare-ig-list-404", expected_errors=("status of 404",))

    # --- The IG officer finds every step in the audit log -------------------------------
    audited = audit_rows(officer, world.project, shot="directcare-audit-log")
    steps = [
        (event, actor)
        for event, actor in audited
        if event.startswith("directcare.") and event != "directcare.cohort_created"
    ]
    asked, system = clinician.display_name, "System"
    assert steps == [
        ("directcare.reid_requested", asked), ("directcare.reid_approved", ig.display_name),
        ("directcare.reid_approved", caldicott.display_name),
        ("directcare.reid_performed", system), ("directcare.list_viewed", asked),
        ("directcare.list_downloaded", asked),
    ]  # fmt: skip

    # The CSV holds exactly the list the service gives the clinician (read last: it is a
    # view of its own, audited).
    listing = services.view_list(request=request, by=clinician)
    assert downloaded == set(listing["nhs_number"].astype(str))
    assert not any(number in worker.log() for number in downloaded)
