"""Signing in through the real pages in Chromium: password, then the authenticator code
(or enrolment on first sign-in), the dashboard, and what a role may open."""

from __future__ import annotations

import base64
import re

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from sde.identity.authentication import MFA_FAILED_MESSAGE
from sde.identity.models import User
from sde.identity.roles import Role
from tests import scenarios
from tests.browser.conftest import Tab

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "quiet-harbour-lantern-2718"


def _code(key: bytes, drift: int = 0) -> str:
    return f"{totp(key, drift=drift):06d}"


def _device_code(user: User) -> str:
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    return _code(device.bin_key)


def _sign_in_with_password(tab: Tab, user: User, *, screenshot: str = "") -> None:
    tab.open("/accounts/login/")
    expect(tab.page.locator("h1")).to_have_text("Sign in")
    tab.page.get_by_label("Username").fill(user.username)
    tab.page.get_by_label("Password").fill(PASSWORD)
    if screenshot:
        tab.check(screenshot)
    tab.page.get_by_role("button", name="Continue").click()


def _enter_code(tab: Tab, code: str, *, button: str = "Continue") -> None:
    tab.page.get_by_label("Code").fill(code)
    tab.page.get_by_role("button", name=button).click()


def _sign_in(tab: Tab, user: User) -> None:
    _sign_in_with_password(tab, user)
    expect(tab.page.locator("h1")).to_have_text("Enter your code")
    _enter_code(tab, _device_code(user))
    expect(tab.page.locator("h1")).to_have_text("Dashboard")


def test_person_with_authenticator_signs_in_and_reaches_dashboard(tab):
    user = scenarios.person(Role.RESEARCHER, password=PASSWORD)

    _sign_in_with_password(tab, user, screenshot="sign-in")
    expect(tab.page).to_have_url(re.compile(r"/accounts/mfa/verify/$"))
    expect(tab.page.locator("h1")).to_have_text("Enter your code")
    tab.check("mfa-verify")
    _enter_code(tab, _device_code(user))

    expect(tab.page).to_have_url(re.compile(r"/dashboard/$"))
    expect(tab.page.locator("h1")).to_have_text("Dashboard")
    expect(tab.page.locator("p.lead")).to_contain_text(Role.RESEARCHER.label)
    expect(tab.page.get_by_role("heading", name=Role.RESEARCHER.label)).to_be_visible()
    tab.check("dashboard")


def test_new_person_sets_up_authenticator_sees_recovery_codes_then_dashboard(tab):
    user = scenarios.person(Role.RESEARCHER, password=PASSWORD, mfa=False)

    _sign_in_with_password(tab, user)
    expect(tab.page).to_have_url(re.compile(r"/accounts/mfa/enrol/$"))
    expect(tab.page.locator("h1")).to_have_text("Set up your authenticator app")
    secret_on_page = tab.page.locator("#totp-secret")
    expect(secret_on_page).to_be_hidden()  # inside the closed <details>
    tab.page.get_by_text("I cannot scan the code").click()
    expect(secret_on_page).to_be_visible()
    tab.check("mfa-enrol")
    secret = secret_on_page.inner_text().replace(" ", "").strip()
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    _enter_code(tab, _code(key), button="Confirm and continue")

    expect(tab.page.locator("h1")).to_have_text("Your recovery codes")
    expect(tab.page.locator("ol.recovery-codes li")).to_have_count(10)
    tab.check("recovery-codes")
    tab.page.get_by_role("link", name=re.compile("I have saved my codes")).click()

    expect(tab.page.locator("h1")).to_have_text("Dashboard")
    expect(tab.page.locator("p.lead")).to_contain_text(Role.RESEARCHER.label)
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1


def test_ig_officer_sees_own_login_in_audit_log_and_event_verifies(tab):
    officer = scenarios.person(Role.IG_OFFICER, password=PASSWORD)
    _sign_in(tab, officer)

    tab.page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    expect(tab.page.locator("h1")).to_have_text("Audit log")
    own_logins = (
        tab.page.locator("tbody tr")
        .filter(has_text="identity.login_succeeded")
        .filter(has_text=officer.display_name)
    )
    expect(own_logins).to_have_count(1)
    expect(
        tab.page.locator("tbody tr")
        .filter(has_text="identity.mfa_verified")
        .filter(has_text=officer.display_name)
    ).to_have_count(1)
    tab.check("audit-log")

    own_logins.get_by_role("link").click()
    expect(tab.page.locator("h1")).to_have_text(re.compile(r"^Audit event #\d+$"))
    expect(tab.page.locator(".notification--success")).to_contain_text(
        "This event's hash and its link to the previous event verify"
    )
    expect(tab.page.locator("dl")).to_contain_text("identity.login_succeeded")
    tab.check("audit-event")


def test_researcher_opening_audit_log_gets_403_page(tab):
    researcher = scenarios.person(Role.RESEARCHER, password=PASSWORD)
    _sign_in(tab, researcher)
    expect(tab.page.get_by_role("navigation", name="Main")).not_to_contain_text("Audit log")

    response = tab.open("/audit/")

    assert response is not None and response.status == 403
    expect(tab.page.locator("h1")).to_have_text("You cannot do this")
    # Chromium logs the 403 of the page itself as a failed resource load.
    tab.check("forbidden", expected_errors=("status of 403",))


def test_wrong_code_shows_error_and_stays_on_code_page(tab):
    user = scenarios.person(Role.RESEARCHER, password=PASSWORD)
    key = TOTPDevice.objects.get(user=user).bin_key
    accepted_now = {_code(key, drift) for drift in (-1, 0, 1)}  # the device's tolerance
    wrong = next(f"{n:06d}" for n in range(10) if f"{n:06d}" not in accepted_now)

    _sign_in_with_password(tab, user)
    expect(tab.page.locator("h1")).to_have_text("Enter your code")
    _enter_code(tab, wrong)

    expect(tab.page).to_have_url(re.compile(r"/accounts/mfa/verify/$"))
    expect(tab.page.locator("h1")).to_have_text("Enter your code")
    expect(tab.page.locator(".error-summary")).to_contain_text(MFA_FAILED_MESSAGE)
    expect(tab.page.locator(".error-summary")).to_be_focused()
    expect(tab.page.get_by_label("Code")).to_be_visible()
    tab.check("mfa-verify-error")
    user.refresh_from_db()
    assert user.failed_login_count == 1
