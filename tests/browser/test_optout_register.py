"""IG's opt-out register in Chromium: open it from the navigation, add a manual opt-out,
and see the register move to the next snapshot (with no CSP violation on the way)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from sde.data import register
from sde.identity.roles import Role
from tests import scenarios
from tests.browser.conftest import Tab

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "quiet-harbour-lantern-2718"
NHS_NUMBER = "943 476 5919"


def test_ig_officer_adds_a_manual_opt_out_and_the_snapshot_goes_up(
    tab: Tab, private_data_root: Path
) -> None:
    officer = scenarios.person(Role.IG_OFFICER, password=PASSWORD)
    other = scenarios.person(Role.IG_OFFICER)
    register.add_manual_optout(nhs_number="4010232137", kind="type1", reason="letter", by=other)
    page = tab.page

    tab.open("/accounts/login/")
    page.get_by_label("Username").fill(officer.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Enter your code")
    device = TOTPDevice.objects.get(user=officer, confirmed=True)
    page.get_by_label("Code").fill(f"{totp(device.bin_key):06d}")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Dashboard")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Opt-out register").click()
    expect(page.locator("h1")).to_have_text("Opt-out register")
    expect(page.locator("#snapshot-number")).to_have_text("1")
    tab.check("optout-register")

    page.get_by_role("link", name="Add a manual opt-out").click()
    expect(page.locator("h1")).to_have_text("Add a manual opt-out")
    page.get_by_label("NHS number").fill("943 476 5918")  # fails the Modulus 11 check
    page.get_by_label("National data opt-out").check()
    page.get_by_label("Reason").fill("Email from the patient, ref IG-2231")
    page.get_by_role("button", name="Add the opt-out").click()
    expect(page.locator(".error-summary")).to_contain_text("Not a valid NHS number")
    expect(page.locator(".error-summary")).to_be_focused()
    expect(page.get_by_label("NHS number")).to_have_value("")  # never echoed back
    tab.check("optout-manual-error")

    page.get_by_label("NHS number").fill(NHS_NUMBER)
    page.get_by_role("button", name="Add the opt-out").click()

    expect(page).to_have_url(re.compile(r"/data/optouts/$"))
    expect(page.locator(".notification--success")).to_contain_text("The register is now snapshot 2")
    expect(page.locator("#snapshot-number")).to_have_text("2")
    expect(page.locator("main")).not_to_contain_text(NHS_NUMBER)
    expect(page.locator("main")).not_to_contain_text(NHS_NUMBER.replace(" ", ""))
    tab.check("optout-register-after")
