"""The analysis workspace in Chromium (issue 5): a researcher runs a built-in inequality
analysis on the real extract and watches its progress, sees its outputs listed but not
their contents; writes a script, runs it on dummy data and reads its log. Jobs run in
the sandbox, started by a thread standing in for the worker, so the page sees them
queued, running and finished."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from sde.analysis import services
from sde.data import synth
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.identity.models import User
from sde.identity.roles import Role
from sde.projects.services import MemberSpec, create_project
from sde.tasks import build_project_extracts_task
from tests import scenarios
from tests.browser.conftest import Tab
from tests.browser.test_access_request_journey import PASSWORD, sign_in
from tests.unit.sde.analysis.conftest import SCOPE
from tests.unit.sde.projects.builders import accredit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCRIPT = """import sdelib
patients = sdelib.read("patients")
print("rows in the dummy patients table:", len(patients))
sdelib.table(patients, by=["sex"], name="people_by_sex", title="People by sex")
"""


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Jobs sent after commit run in a thread (as a worker would), a moment later."""
    threads: list[threading.Thread] = []

    def run_later(job_id: int) -> None:
        def work() -> None:
            time.sleep(1.5)  # long enough for the page to show the job queued
            try:
                services.run_job(job_id=job_id, worker="browser-test")
            finally:
                connection.close()

        thread = threading.Thread(target=work, daemon=True)
        threads.append(thread)
        thread.start()

    monkeypatch.setattr(services, "_enqueue", run_later)
    yield
    for thread in threads:
        thread.join(timeout=120)


def _project(folder: Path, custodian: User) -> tuple[User, int]:
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=300)
    tables = ("patients", "gp_events", "gp_medications", "apc_spells", "ae_attendances", "ndop")
    synth.write_drop(synth.generate(patients=600, seed=7, config=config, tables=tables), folder)
    done = run_ingest(
        ingest=request_ingest(drop_dir=folder, by=custodian, enqueue=False), by=custodian
    )
    assert done.status == Ingest.Status.SUCCEEDED
    researcher = accredit(scenarios.person(Role.RESEARCHER, password=PASSWORD))
    today = timezone.localdate()
    project = create_project(
        title="Emergency admissions and deprivation", lay_summary="Who is admitted, and why.",
        organisation=scenarios.organisation(), scope=SCOPE, start_date=today,
        end_date=today + timedelta(days=200), members=[MemberSpec(researcher, "analyst")],
        by=scenarios.person(Role.IG_OFFICER),
    )  # fmt: skip
    assert build_project_extracts_task(project.pk) == "built"
    return researcher, project.pk


def test_a_researcher_runs_an_inequality_analysis_and_a_script_in_the_workspace(
    tab: Tab, private_data_root: Path, custodian: User, tmp_path: Path, worker: None
) -> None:
    researcher, pk = _project(tmp_path / "drop", custodian)
    page = tab.page
    sign_in(tab, researcher, "workspace-researcher")

    # --- From the project to its workspace ------------------------------------------
    tab.open(f"/projects/{pk}/")
    page.get_by_role("link", name="Open the workspace").click()
    expect(page.locator("h1")).to_have_text("Workspace")
    expect(page.locator("#data-access")).to_contain_text("You can run analyses.")
    expect(page.locator("#extract-real")).to_contain_text("Ready")
    tab.check("workspace")

    # --- A built-in inequality analysis on the real extract ------------------------
    page.locator("#analysis-inequality_gradient summary").click()
    analysis = page.locator("#analysis-inequality_gradient")
    analysis.get_by_label("Real data").check()
    analysis.get_by_label("Index date").fill("2026-01-01")
    analysis.get_by_label("Outcome").select_option(label="Emergency admissions")
    analysis.get_by_role("button", name="Run inequality gradient by deprivation").click()
    expect(page.locator(".notification--success")).to_contain_text("is queued")
    expect(page.locator("h1")).to_have_text("Inequality gradient by deprivation")
    expect(page.locator("#job-summary progress")).to_be_visible()  # queued, then running
    tab.check("workspace-job-queued")
    expect(page.locator("#job-summary")).to_contain_text("Succeeded", timeout=90_000)
    expect(page.locator("#job-summary progress")).to_have_count(0)
    outputs = page.locator("#job-outputs")
    expect(outputs).to_contain_text("emergency_admissions_by_imd_decile")
    expect(outputs).to_contain_text(".evidence.json")
    expect(outputs.get_by_role("link")).to_have_count(0)  # listed, never opened
    expect(page.locator("#real-outputs-note")).to_contain_text("output checking")
    expect(page.locator("#real-log-note")).to_be_visible()
    tab.check("workspace-real-job-done")

    # --- A script, written in the page and run on dummy data ------------------------
    tab.open(f"/projects/{pk}/workspace/")
    page.locator("#new-script summary").click()
    page.get_by_label("Script name").fill("sexes.py")
    page.get_by_label("Script (Python)").fill(SCRIPT)
    page.get_by_role("button", name="Save the script").click()
    expect(page.locator(".notification--success")).to_contain_text("Script sexes.py saved")
    page.get_by_label("Data for sexes.py").select_option("dummy")
    page.get_by_role("button", name=re.compile(r"^Run sexes\.py")).click()
    expect(page.locator("h1")).to_have_text("Script sexes.py")
    expect(page.locator("#job-summary")).to_contain_text("Succeeded", timeout=90_000)
    expect(page.locator("#job-outputs")).to_contain_text("people_by_sex.csv")
    tab.check("workspace-script-done")
    page.get_by_role("link", name="Open the full log").click()
    expect(page.locator("body")).to_contain_text("rows in the dummy patients table:")
    tab.check("workspace-script-log")
