"""The public transparency register in Chromium: an anonymous visitor finds it from the
sign-in page, opens a project's entry and downloads the CSV (no CSP violation on the way)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect

from sde import tasks
from sde.identity.models import User
from sde.identity.roles import Role
from sde.projects.services import MemberSpec, create_project
from tests import scenarios
from tests.browser.conftest import Tab

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TITLE = "Falls in older people after hospital discharge"
SUMMARY = "We will look at how often older people fall in the months after leaving hospital."


def test_anonymous_visitor_reads_the_register_and_downloads_the_csv(
    tab: Tab, private_data_root: Path, custodian: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This test commits for real (the live server reads the rows), so the extract build
    # enqueued after commit would reach the broker: keep it here instead.
    enqueued: list[int] = []
    monkeypatch.setattr(tasks.build_project_extracts_task, "delay", enqueued.append)
    project = create_project(
        title=TITLE,
        lay_summary=SUMMARY,
        organisation=scenarios.organisation(name="University of Wessex"),
        scope={"datasets": {"patients": ["person_id", "sex"]}, "purpose": "research",
               "legal_basis": "copi_reg3"},
        start_date=date(2025, 4, 1),
        end_date=date(2027, 3, 31),
        members=[MemberSpec(scenarios.person(Role.RESEARCHER), "analyst")],
        by=scenarios.person(Role.IG_OFFICER),
    )  # fmt: skip
    assert enqueued == [project.pk]
    page = tab.page

    tab.open("/accounts/login/")
    footer = page.get_by_role("contentinfo")
    expect(footer.get_by_role("link", name="Transparency register")).to_be_visible()
    page.get_by_role("main").get_by_role("link", name="transparency register").click()

    expect(page).to_have_url(re.compile(r"/register/$"))
    expect(page.locator("h1")).to_have_text("Transparency register")
    row = page.get_by_role("row").filter(has_text=TITLE)
    expect(row).to_contain_text("University of Wessex")
    expect(row).to_contain_text("Registered patients")
    expect(row).to_contain_text("Active")
    tab.check("transparency-register")

    row.get_by_role("link", name=re.compile(TITLE)).click()
    expect(page).to_have_url(re.compile(rf"/register/{project.pk}/$"))
    expect(page.locator("h1")).to_have_text(TITLE)
    expect(page.locator("main")).to_contain_text(SUMMARY)
    expect(page.locator("main")).to_contain_text("COPI Regulation 3")
    expect(page.locator("main")).to_contain_text("2 fields")
    tab.check("transparency-register-entry")

    page.get_by_role("link", name="Back to the transparency register").click()
    expect(page.locator("h1")).to_have_text("Transparency register")
    link = page.get_by_role("link", name="a spreadsheet (CSV)")
    with page.expect_download() as download_info:
        link.click()
    # A download raises no page "response" event: fetch the link again in the same
    # browser context for the response's status and headers.
    response = page.request.get(tab.base_url + (link.get_attribute("href") or ""))
    assert response.status == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment;")
    download = download_info.value
    assert re.fullmatch(r"sde-transparency-register-\d{8}\.csv", download.suggested_filename)
    content = Path(download.path()).read_text(encoding="utf-8")
    assert content.startswith("number,title,lay_summary,")
    assert TITLE in content
    tab.check("transparency-register-downloaded")
