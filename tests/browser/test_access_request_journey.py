"""An access request's whole journey in Chromium (issue 4): a researcher drafts an
application section by section and submits it; an IG officer returns it with a reason;
the researcher reads it, changes an answer and resubmits; two independent IG officers
approve, which sets up the project; the researcher sees the project with its extract
ready; the public transparency register lists it. No console error or CSP violation on
any page on the way."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from access_requests.models import AccessRequest
from sde import tasks
from sde.data import synth
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.identity.models import User
from sde.identity.roles import Role
from sde.projects.models import Project
from tests import scenarios
from tests.browser.conftest import Tab
from tests.unit.access_requests.builders import applicant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "quiet-harbour-lantern-2718"
TITLE = "Hypertension in North Place"
SUMMARY = "Who is treated for high blood pressure, and who is missed."
REASON = "Say how the aims lead to fewer strokes, and by when."
NEW_AIMS = "Find the people with untreated hypertension, and show fewer strokes by 2030."
WHY_ID = "Needed to link each person's records across the tables for the analysis."


def sign_in(tab: Tab, user: User, name: str) -> None:
    page = tab.page
    tab.open("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Enter your code")
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    page.get_by_label("Code").fill(f"{totp(device.bin_key):06d}")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Dashboard")
    tab.check(f"journey-{name}-signed-in")


def save_section(tab: Tab, letter: str, name: str) -> None:
    page = tab.page
    page.get_by_role("button", name="Save and continue").click()
    expect(page.locator(".notification--success")).to_contain_text(
        f"Section {letter} is saved and complete."
    )
    tab.check(f"journey-section-{name}")


def ingest_synthetic_drop(folder: Path, custodian: User) -> None:
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=150)
    tables = ("patients", "gp_events", "ndop")
    synth.write_drop(synth.generate(patients=300, seed=5, config=config, tables=tables), folder)
    done = run_ingest(
        ingest=request_ingest(drop_dir=folder, by=custodian, enqueue=False), by=custodian
    )
    assert done.status == Ingest.Status.SUCCEEDED


def test_application_is_drafted_returned_resubmitted_approved_and_registered(
    tab: Tab,
    new_tab: Callable[[], Tab],
    private_data_root: Path,
    custodian: User,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The approval commits for real; the extract build it enqueues after commit is kept
    # here and run in this process instead of on a broker.
    enqueued: list[int] = []
    monkeypatch.setattr(tasks.build_project_extracts_task, "delay", enqueued.append)
    ingest_synthetic_drop(tmp_path / "drop", custodian)
    wessex = scenarios.organisation(name="University of Wessex")
    researcher = applicant(wessex)
    researcher.set_password(PASSWORD)
    researcher.save()
    first, second = (scenarios.person(Role.IG_OFFICER, password=PASSWORD) for _ in range(2))
    today = timezone.localdate()
    start, end = today, today + timedelta(days=300)
    page = tab.page

    # --- The researcher drafts the application, section by section -------------------
    sign_in(tab, researcher, "researcher")
    tab.open("/applications/new/")
    expect(page.locator("h1")).to_have_text("Start an application")
    tab.check("journey-new")
    page.get_by_label("Which organisation are you applying for?").select_option(
        label="University of Wessex"
    )
    page.get_by_label("Title of the project").fill(TITLE)
    page.get_by_role("button", name="Start the application").click()
    expect(page.locator("h1")).to_have_text("A. About the request")
    expect(page.locator(".notification--success")).to_contain_text("Application started")
    pk = int(re.search(r"/applications/(\d+)/meta/", page.url).group(1))  # type: ignore[union-attr]
    tab.check("journey-section-a-empty")

    expect(page.get_by_label("Title of the project")).to_have_value(TITLE)
    page.get_by_label("CAG reference").fill("24/CAG/0001")
    page.get_by_label("Requested start date").fill(start.isoformat())
    page.get_by_label("Requested end date").fill(end.isoformat())
    save_section(tab, "A", "a")

    expect(page.locator("h1")).to_have_text("B. Safe people")
    page.locator("#id_organisations-0-organisation_id").select_option(label="University of Wessex")
    page.locator("#id_organisations-0-role").select_option(label="Data controller")
    page.locator("#id_organisations-0-ico_number").fill("ZA123456")
    page.locator("#id_organisations-0-dspt_status").fill("Standards met")
    page.locator("#id_organisations-0-dspt_expiry").fill((end + timedelta(days=180)).isoformat())
    page.locator("#id_organisations-0-country").fill("England")
    page.locator("#id_members-0-username").fill(researcher.username)
    page.locator("#id_members-0-role").select_option(label="Principal investigator")
    expect(page.locator("#id_members-0-accesses_data")).to_be_checked()
    save_section(tab, "B", "b")

    # Section C asks an objective per dataset chosen in E: choose the data first.
    tab.open(f"/applications/{pk}/data/")
    expect(page.locator("h1")).to_have_text("E. Safe data")
    fields = {
        "Registered patients": {"person_id": WHY_ID, "sex": "Rates of treatment differ by sex."},
        "GP events": {"person_id": WHY_ID, "date": "Needed to order diagnoses and treatment."},
    }
    for dataset, wanted in fields.items():
        page.locator("summary", has_text=dataset).click()
        for field, why in wanted.items():
            page.get_by_label(f"Why you need {field} ({dataset})", exact=True).fill(why)
            page.get_by_label(f"Ask for {field} ({dataset})", exact=True).check()
    page.get_by_label("Youngest age (years)").fill("18")
    page.get_by_label("Record-level, pseudonymised").check()
    save_section(tab, "E", "e")

    tab.open(f"/applications/{pk}/project/")
    expect(page.locator("h1")).to_have_text("C. Safe project")
    page.get_by_label("Lay summary").fill(SUMMARY)
    page.get_by_label("Research", exact=True).check()
    page.get_by_label("Aims and objectives").fill("Find the people with untreated hypertension.")
    page.get_by_label("Registered patients", exact=True).fill("The population.")
    page.get_by_label("GP events", exact=True).fill("Diagnoses and treatment.")
    page.get_by_label("Public benefit").fill("Fewer strokes in North Place within five years.")
    page.get_by_label("No", exact=True).check()
    save_section(tab, "C", "c")

    expect(page.locator("h1")).to_have_text("D. Legal basis")
    page.get_by_label("Article 6(1)(e)", exact=True).check()
    page.get_by_label("Article 9(2)(j)", exact=True).check()
    page.get_by_label("DPA 2018 Schedule 1 condition").fill("Paragraph 4: research")
    page.get_by_label("Section 251 support (CAG)", exact=True).check()
    page.get_by_label("Regulation 5", exact=True).check()
    page.get_by_label("Section 251 support: expiry date").fill(end.isoformat())
    page.get_by_label("Favourable REC opinion", exact=True).check()
    page.get_by_label("Date of the favourable REC opinion").fill(
        (today - timedelta(days=30)).isoformat()
    )
    save_section(tab, "D", "d")

    tab.open(f"/applications/{pk}/settings/")
    expect(page.locator("h1")).to_have_text("F. Safe settings")
    page.get_by_label("Only inside this environment, in the UK").check()
    save_section(tab, "F", "f")

    expect(page.locator("h1")).to_have_text("G. Safe outputs")
    page.get_by_label("Tables", exact=True).check()
    page.get_by_label("Publication plan").fill("A paper and a report to the ICB.")
    page.get_by_label("The environment's default rules").check()
    save_section(tab, "G", "g")

    expect(page.locator("h1")).to_have_text("H. Retention and closure")
    page.get_by_label("Retain until").fill((end + timedelta(days=365)).isoformat())
    save_section(tab, "H", "h")

    expect(page.locator("h1")).to_have_text("I. Declarations")
    page.get_by_label("I accept the user agreement").check()
    page.get_by_role("button", name="Save and continue").click()
    expect(page.locator(".notification--success")).to_contain_text(
        "Section I is saved and complete."
    )
    expect(page.locator("h1")).to_have_text(TITLE)  # the last section leads to the overview
    expect(page.locator("#task-list .tag--green")).to_have_count(9)
    expect(page.locator("main")).to_contain_text("You have completed 9 of 9 sections")
    tab.check("journey-overview-complete")

    page.get_by_role("link", name="Check and submit").click()
    expect(page.locator("h1")).to_have_text("Check and submit")
    expect(page.locator("main")).to_contain_text("Every section is complete.")
    tab.check("journey-check-and-submit")
    page.get_by_role("button", name="Submit the application").click()
    expect(page.locator(".notification--success")).to_contain_text("Your application is submitted.")
    expect(page.locator("#application-summary")).to_contain_text("Submitted")
    expect(page.locator("#next-step")).to_have_text(
        "Waiting for an IG officer to start the review."
    )
    tab.check("journey-submitted")

    # --- An IG officer starts the review and returns it with a reason -----------------
    officer = new_tab()
    opage = officer.page
    sign_in(officer, first, "first-officer")
    officer.open("/applications/review/")
    opage.get_by_role("link", name=TITLE).click()
    expect(opage).to_have_url(re.compile(rf"/applications/{pk}/review/$"))
    expect(opage.locator("h1")).to_have_text(TITLE)
    expect(opage.locator("#review-summary")).to_contain_text("Submitted")
    officer.check("journey-review-submitted")
    opage.get_by_role("button", name="Start the review").click()
    expect(opage.locator(".notification--success")).to_contain_text("Review started")
    expect(opage.locator("#review-summary")).to_contain_text("In review")
    officer.check("journey-review-started")
    opage.locator("#return summary").click()
    opage.locator("#return").get_by_label("Reason").fill(REASON)
    opage.get_by_role("button", name="Return to the applicant").click()
    expect(opage.locator(".notification--success")).to_contain_text(
        "Returned to the applicant for changes."
    )
    expect(opage.locator("#review-summary")).to_contain_text("Returned for changes")
    expect(opage.locator(".comment-list")).to_contain_text(REASON)
    officer.check("journey-review-returned")

    # --- The researcher reads the reason, changes an answer and resubmits -------------
    tab.open(f"/applications/{pk}/")
    expect(page.locator("#application-summary")).to_contain_text("Returned for changes")
    expect(page.locator("#next-step")).to_contain_text("Make the changes the reviewers asked")
    expect(page.locator(".comment-list")).to_contain_text(REASON)
    tab.check("journey-returned")
    page.get_by_role("link", name="C. Safe project").click()
    expect(page.locator("h1")).to_have_text("C. Safe project")
    page.get_by_label("Aims and objectives").fill(NEW_AIMS)
    save_section(tab, "C", "c-changed")
    tab.open(f"/applications/{pk}/submit/")
    expect(page.locator("main")).to_contain_text("this is a new review round")
    tab.check("journey-resubmit")
    page.get_by_role("button", name="Submit the application").click()
    expect(page.locator(".notification--success")).to_contain_text("Your application is submitted.")
    expect(page.locator("#application-summary")).to_contain_text("Submitted")
    tab.check("journey-resubmitted")
    assert AccessRequest.objects.get(pk=pk).answers["project"]["aims"] == NEW_AIMS

    # --- Two independent IG officers approve; the second approval sets up the project -
    officer.open(f"/applications/{pk}/review/")
    expect(opage.locator("#section-project + *")).to_contain_text(NEW_AIMS)
    opage.get_by_role("button", name="Start the review").click()
    expect(opage.locator("#review-summary")).to_contain_text("In review")
    expect(opage.get_by_label("Access ends on")).to_have_value(end.isoformat())
    opage.locator("#approve").get_by_role("button", name="Approve").click()
    expect(opage.locator(".notification--success")).to_contain_text(
        "Your approval is recorded. Still needed:"
    )
    expect(opage.locator("#approval-count")).to_contain_text("1 of 2")
    officer.check("journey-first-approval")
    assert enqueued == []

    another = new_tab()
    apage = another.page
    sign_in(another, second, "second-officer")
    another.open(f"/applications/{pk}/review/")
    expect(apage.locator("#review-summary")).to_contain_text("In review")
    expect(apage.locator("#approve")).to_contain_text("Another reviewer approved these terms")
    another.check("journey-second-review")
    apage.locator("#approve").get_by_role("button", name="Approve").click()
    expect(apage.locator(".notification--success")).to_contain_text("Approved. Project")
    expect(apage.locator("#review-summary")).to_contain_text("Approved")
    another.check("journey-approved")
    request = AccessRequest.objects.get(pk=pk)
    assert request.status == AccessRequest.Status.APPROVED
    assert request.project_id is not None
    project = Project.objects.get(pk=request.project_id)
    assert project.status == Project.Status.ACTIVE
    assert project.title == TITLE
    assert enqueued == [request.project_id]
    assert tasks.build_project_extracts_task(request.project_id) == "built"

    # --- The researcher opens the active project and sees its extract ready -----------
    tab.open(f"/applications/{pk}/")
    expect(page.locator("#application-summary")).to_contain_text("Approved")
    page.get_by_role("link", name=f"Go to project {request.project_id}").click()
    expect(page).to_have_url(re.compile(rf"/projects/{request.project_id}/$"))
    expect(page.locator("h1")).to_have_text(TITLE)
    expect(page.locator("#project-status")).to_contain_text("Active")
    expect(page.locator("#data-access")).to_contain_text("You can use this project's data.")
    expect(page.locator("#approved-datasets")).to_contain_text("Registered patients")
    expect(page.locator("#extract-real")).to_contain_text("Ready")
    expect(page.locator("#extract-dummy")).to_contain_text("Ready")
    tab.check("journey-project")

    # --- The public register lists the project ----------------------------------------
    visitor = new_tab()
    visitor.open("/register/")
    expect(visitor.page.locator("h1")).to_have_text("Transparency register")
    row = visitor.page.get_by_role("row").filter(has_text=TITLE)
    expect(row).to_contain_text("University of Wessex")
    expect(row).to_contain_text("Active")
    visitor.check("journey-register")
