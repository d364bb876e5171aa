"""Signing in through the real pages: password, lockout, TOTP, recovery codes, sign-out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from sde.audit.events import EventType
from sde.audit.models import AuditEvent
from sde.audit.services import get_system_user
from sde.demo import current_totp
from sde.identity import authentication, services
from sde.identity.authentication import MFA_FAILED_MESSAGE, SIGN_IN_FAILED_MESSAGE
from sde.identity.models import User
from sde.identity.roles import Role
from tests import scenarios
from tests.events import events_since as _events_since
from tests.events import mark as _mark
from tests.events import types_since as _types_since

pytestmark = pytest.mark.django_db

PASSWORD = "violet-anchor-meadow-42"
WRONG_PASSWORD = "violet-anchor-meadow-43"


# --- helpers ---------------------------------------------------------------------------


def _sign_in(client: Client, username: str, password: str = PASSWORD, **extra: str):
    return client.post(reverse("login"), {"username": username, "password": password, **extra})


def _verify(client: Client, code: str):
    return client.post(reverse("mfa-verify"), {"token": code})


def _device(user: User) -> TOTPDevice:
    return TOTPDevice.objects.get(user=user, confirmed=True)


def _wrong_code(device: TOTPDevice) -> str:
    """A six-digit code that no time step in the accepted window produces."""
    clock = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    step = clock.t()
    valid = set()
    for offset in range(-device.tolerance - 1, device.tolerance + 2):
        clock.time = (step + offset) * device.step + device.t0
        valid.add(f"{clock.token():06d}")
    return next(code for code in ("000000", "123456", "999999", "424242") if code not in valid)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _user(user: User) -> User:
    return User.objects.get(pk=user.pk)


def _with_password(*roles: Role, mfa: bool = True) -> User:
    return scenarios.person(*roles, password=PASSWORD, mfa=mfa)


# --- the happy paths -------------------------------------------------------------------
def test_password_then_totp_code_reaches_the_dashboard(client):
    user = _with_password(Role.RESEARCHER)
    mark = _mark()

    after_password = _sign_in(client, user.username)
    gated = client.get(reverse("dashboard"))
    after_code = _verify(client, current_totp(_device(user)))

    assert after_password.status_code == 302
    assert after_password.url == reverse("mfa-verify")
    assert gated.status_code == 302
    assert gated.url == reverse("mfa-verify")
    assert after_code.status_code == 302
    assert after_code.url == reverse("dashboard")
    assert client.get(reverse("dashboard")).status_code == 200
    events = _events_since(mark)
    assert [e.event_type for e in events] == [EventType.MFA_VERIFIED, EventType.LOGIN_SUCCEEDED]
    assert events[0].data == {"method": "totp"}
    assert {e.actor_id for e in events} == {user.pk}


def test_username_is_matched_case_insensitively(client):
    user = _with_password(Role.RESEARCHER)

    response = _sign_in(client, f"  {user.username.upper()} ")

    assert response.status_code == 302
    assert response.url == reverse("mfa-verify")


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/account/", "/account/"),
        ("https://evil.example/steal", "/dashboard/"),
        ("//evil.example/steal", "/dashboard/"),
    ],
)
def test_after_mfa_only_a_same_site_next_url_is_followed(client, next_url, expected):
    user = _with_password(Role.RESEARCHER)

    _sign_in(client, user.username, next=next_url)
    response = _verify(client, current_totp(_device(user)))

    assert response.status_code == 302
    assert response.url == expected


def test_new_user_enrols_an_authenticator_and_is_shown_recovery_codes_once(client):
    user = _with_password(Role.RESEARCHER, mfa=False)

    after_password = _sign_in(client, user.username)
    enrol_page = client.get(reverse("mfa-enrol"))
    pending = TOTPDevice.objects.get(user=user, confirmed=False)
    mark = _mark()
    confirmed = client.post(reverse("mfa-enrol"), {"token": current_totp(pending)})
    codes_page = client.get(reverse("mfa-recovery-codes"))
    codes_again = client.get(reverse("mfa-recovery-codes"))

    assert after_password.status_code == 302
    assert after_password.url == reverse("mfa-enrol")
    assert enrol_page.status_code == 200
    assert b"data:image/svg+xml" in enrol_page.content  # the QR code
    assert confirmed.status_code == 302
    assert confirmed.url == reverse("mfa-recovery-codes")
    assert codes_page.status_code == 200
    codes = codes_page.context["codes"]
    assert len(codes) == settings.SDE_RECOVERY_CODE_COUNT
    assert all(code.encode() in codes_page.content for code in codes)
    assert codes_again.status_code == 302  # shown once, never again
    assert codes_again.url == reverse("account")
    assert TOTPDevice.objects.get(pk=pending.pk).confirmed
    assert client.get(reverse("dashboard")).status_code == 200
    assert _types_since(mark) == [
        EventType.MFA_VERIFIED,
        EventType.LOGIN_SUCCEEDED,
        EventType.MFA_ENROLLED,
        EventType.MFA_RECOVERY_CODES_ISSUED,
    ]


def test_a_user_with_an_authenticator_is_not_offered_enrolment_again(client):
    user = _with_password(Role.RESEARCHER)
    _sign_in(client, user.username)

    response = client.get(reverse("mfa-enrol"))

    assert response.status_code == 302
    assert response.url == reverse("mfa-verify")
    assert not TOTPDevice.objects.filter(user=user, confirmed=False).exists()


def test_recovery_code_signs_in_once_only(client):
    user = _with_password(Role.RESEARCHER)
    first, second = authentication.regenerate_recovery_codes(user=user)[:2]

    _sign_in(client, user.username)
    mark = _mark()
    used_first = _verify(client, first)
    client.post(reverse("logout"))
    _sign_in(client, user.username)
    used_second = _verify(client, second)
    client.post(reverse("logout"))
    _sign_in(client, user.username)
    replayed = _verify(client, first)

    assert used_first.status_code == 302
    assert used_first.url == reverse("dashboard")
    assert used_second.status_code == 302
    assert replayed.status_code == 200
    assert MFA_FAILED_MESSAGE in replayed.content.decode()
    assert client.get(reverse("dashboard")).url == reverse("mfa-verify")
    used = [e for e in _events_since(mark) if e.event_type == EventType.MFA_RECOVERY_CODE_USED]
    assert [e.data["remaining"] for e in used] == [settings.SDE_RECOVERY_CODE_COUNT - 1, 8]
    assert _types_since(mark)[:3] == [
        EventType.MFA_RECOVERY_CODE_USED,
        EventType.MFA_VERIFIED,
        EventType.LOGIN_SUCCEEDED,
    ]
    assert _types_since(mark)[-1] == EventType.MFA_FAILED


# --- refused sign-ins ------------------------------------------------------------------
def test_wrong_password_shows_the_generic_message_and_records_the_failure(client):
    user = _with_password(Role.RESEARCHER)
    mark = _mark()

    response = _sign_in(client, user.username, WRONG_PASSWORD)

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [SIGN_IN_FAILED_MESSAGE]
    assert not _signed_in(client)
    (event,) = _events_since(mark)
    assert event.event_type == EventType.LOGIN_FAILED
    assert event.target_id == str(user.pk)
    assert event.data == {"reason": "bad_password", "ip": "127.0.0.1", "consecutive_failures": 1}
    assert _user(user).failed_login_count == 1


def test_unknown_username_shows_the_same_message_and_does_not_record_the_name(client):
    mark = _mark()

    response = _sign_in(client, "no-such-person-xq")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [SIGN_IN_FAILED_MESSAGE]
    assert not _signed_in(client)
    (event,) = _events_since(mark)
    assert event.event_type == EventType.LOGIN_FAILED
    assert event.data == {"reason": "unknown_username", "ip": "127.0.0.1"}
    assert (event.target_type, event.target_id, event.target_display) == ("", "", "")
    recorded = " ".join(str(getattr(event, f.name)) for f in AuditEvent._meta.fields)
    assert "no-such-person-xq" not in recorded


def test_the_system_user_is_not_an_account_anyone_can_sign_in_to(client):
    system = get_system_user()
    mark = _mark()

    response = _sign_in(client, system.username)

    assert response.context["form"].non_field_errors() == [SIGN_IN_FAILED_MESSAGE]
    assert not _signed_in(client)
    (event,) = _events_since(mark)
    assert event.data["reason"] == "unknown_username"


def test_a_suspended_account_cannot_sign_in_with_the_right_password(client):
    user = _with_password(Role.RESEARCHER)
    services.suspend_account(user=user, by=scenarios.administrator(), reason="left")
    mark = _mark()

    response = _sign_in(client, user.username)

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [SIGN_IN_FAILED_MESSAGE]
    assert not _signed_in(client)
    (event,) = _events_since(mark)
    assert event.data == {"reason": "suspended", "ip": "127.0.0.1"}


def test_suspending_an_account_ends_its_open_sessions(client_for):
    user = scenarios.person(Role.RESEARCHER)
    client = client_for(user)
    assert client.get(reverse("dashboard")).status_code == 200

    services.suspend_account(user=user, by=scenarios.administrator(), reason="left")
    response = client.get(reverse("dashboard"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_replayed_totp_code_is_refused(client):
    user = _with_password(Role.RESEARCHER)
    code = current_totp(_device(user))
    _sign_in(client, user.username)
    assert _verify(client, code).url == reverse("dashboard")
    client.post(reverse("logout"))
    _sign_in(client, user.username)
    mark = _mark()

    response = _verify(client, code)

    assert response.status_code == 200
    assert response.context["form"].errors["token"] == [MFA_FAILED_MESSAGE]
    assert client.get(reverse("dashboard")).url == reverse("mfa-verify")
    (event,) = _events_since(mark)
    assert event.event_type == EventType.MFA_FAILED
    assert event.data["reason"] == "bad_code"


def test_a_successful_sign_in_resets_the_failure_count(client):
    user = _with_password(Role.RESEARCHER)
    _sign_in(client, user.username, WRONG_PASSWORD)
    _sign_in(client, user.username, WRONG_PASSWORD)

    _sign_in(client, user.username)
    _verify(client, current_totp(_device(user)))

    assert _user(user).failed_login_count == 0


# --- lockout ---------------------------------------------------------------------------
def test_consecutive_wrong_passwords_lock_the_account_until_the_lock_expires(client):
    user = _with_password(Role.RESEARCHER)
    threshold = settings.SDE_LOCKOUT_THRESHOLD
    for _ in range(threshold - 1):
        _sign_in(client, user.username, WRONG_PASSWORD)
    assert _user(user).locked_until is None
    mark = _mark()

    _sign_in(client, user.username, WRONG_PASSWORD)
    locked_types = _types_since(mark)
    mark = _mark()
    refused = _sign_in(client, user.username)

    assert locked_types == [EventType.LOGIN_FAILED, EventType.ACCOUNT_LOCKED]
    locked_until = _user(user).locked_until
    expected = timezone.now() + timedelta(minutes=settings.SDE_LOCKOUT_MINUTES)
    assert abs(locked_until - expected) < timedelta(seconds=30)
    assert refused.status_code == 200
    assert refused.context["form"].non_field_errors() == [SIGN_IN_FAILED_MESSAGE]
    assert not _signed_in(client)
    (event,) = _events_since(mark)
    assert event.data == {"reason": "locked", "ip": "127.0.0.1"}

    User.objects.filter(pk=user.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    after_expiry = _sign_in(client, user.username)

    assert after_expiry.status_code == 302
    assert after_expiry.url == reverse("mfa-verify")


def test_the_lock_message_is_the_same_as_for_a_wrong_password(client):
    locked = _with_password(Role.RESEARCHER)
    other = _with_password(Role.RESEARCHER)
    User.objects.filter(pk=locked.pk).update(locked_until=timezone.now() + timedelta(minutes=5))

    locked_response = _sign_in(client, locked.username)
    wrong_response = _sign_in(client, other.username, WRONG_PASSWORD)

    assert (
        locked_response.context["form"].non_field_errors()
        == wrong_response.context["form"].non_field_errors()
    )


def test_an_administrator_unlocks_a_locked_account(client, client_for):
    user = _with_password(Role.RESEARCHER)
    admin = scenarios.person(Role.ADMINISTRATOR)
    # The state the threshold leaves (the lock itself is tested above), without the hashing.
    User.objects.filter(pk=user.pk).update(
        failed_login_count=settings.SDE_LOCKOUT_THRESHOLD,
        locked_until=timezone.now() + timedelta(minutes=settings.SDE_LOCKOUT_MINUTES),
    )
    assert _sign_in(client, user.username).status_code == 200
    mark = _mark()

    unlocked = client_for(admin).post(reverse("person-unlock", args=[user.pk]))
    response = _sign_in(client, user.username)

    assert unlocked.status_code == 302
    assert _types_since(mark)[0] == EventType.ACCOUNT_UNLOCKED
    assert _user(user).failed_login_count == 0
    assert response.status_code == 302
    assert response.url == reverse("mfa-verify")


def test_unlocking_an_account_that_is_not_locked_is_refused(client_for):
    user = scenarios.person(Role.RESEARCHER)
    admin = scenarios.person(Role.ADMINISTRATOR)

    response = client_for(admin).post(reverse("person-unlock", args=[user.pk]))

    assert response.status_code == 409


@pytest.mark.parametrize("stage", ["verify", "enrol"])
def test_wrong_second_factor_codes_lock_the_account_and_end_the_session(client, stage):
    user = _with_password(Role.RESEARCHER, mfa=stage == "verify")
    _sign_in(client, user.username)
    if stage == "enrol":
        client.get(reverse("mfa-enrol"))
    device = TOTPDevice.objects.get(user=user)
    url = reverse(f"mfa-{stage}")
    wrong = _wrong_code(device)
    for attempt in range(1, settings.SDE_LOCKOUT_THRESHOLD):
        response = client.post(url, {"token": wrong})
        assert response.status_code == 200, attempt
        assert response.context["form"].errors["token"] == [MFA_FAILED_MESSAGE]
        assert _signed_in(client)
    mark = _mark()

    response = client.post(url, {"token": wrong})

    assert response.status_code == 302
    assert response.url == reverse("login")
    assert not _signed_in(client)
    assert _user(user).locked_until is not None
    assert _types_since(mark) == [EventType.MFA_FAILED, EventType.ACCOUNT_LOCKED]
    expected_reason = "bad_code" if stage == "verify" else "enrolment_code"
    assert _events_since(mark)[0].data["reason"] == expected_reason
    # Locked: even the right password is refused now.
    assert _sign_in(client, user.username).status_code == 200


def test_password_and_code_failures_share_one_counter(client):
    user = _with_password(Role.RESEARCHER)
    for _ in range(settings.SDE_LOCKOUT_THRESHOLD - 1):
        _sign_in(client, user.username, WRONG_PASSWORD)
    assert _sign_in(client, user.username).url == reverse("mfa-verify")

    response = _verify(client, _wrong_code(_device(user)))

    assert response.status_code == 302
    assert response.url == reverse("login")
    assert _user(user).locked_until is not None


def test_a_correct_code_is_refused_while_the_account_is_locked(client):
    user = _with_password(Role.RESEARCHER)
    _sign_in(client, user.username)
    User.objects.filter(pk=user.pk).update(locked_until=timezone.now() + timedelta(minutes=5))

    response = _verify(client, current_totp(_device(user)))

    assert response.status_code == 302
    assert response.url == reverse("login")
    assert not _signed_in(client)


# --- signing out -----------------------------------------------------------------------
def test_sign_out_records_the_logout_and_ends_the_session(client_for):
    user = scenarios.person(Role.RESEARCHER)
    client = client_for(user)
    mark = _mark()

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert response.url == reverse("login")
    assert not _signed_in(client)
    (event,) = _events_since(mark)
    assert event.event_type == EventType.LOGOUT
    assert (event.actor_id, event.target_id) == (user.pk, str(user.pk))
    assert event.data == {"reason": "signed_out"}
    assert client.get(reverse("dashboard")).url.startswith(reverse("login"))


def test_sign_out_needs_a_post(client_for):
    user = scenarios.person(Role.RESEARCHER)
    client = client_for(user)

    response = client.get(reverse("logout"))

    assert response.status_code == 405
    assert client.get(reverse("dashboard")).status_code == 200


def test_after_a_lock_expires_one_more_mistake_does_not_relock(client):
    user = _with_password(Role.RESEARCHER)
    for _ in range(settings.SDE_LOCKOUT_THRESHOLD):
        _sign_in(client, user.username, WRONG_PASSWORD)
    assert _user(user).locked_until is not None
    User.objects.filter(pk=user.pk).update(locked_until=timezone.now() - timedelta(seconds=1))

    _sign_in(client, user.username, WRONG_PASSWORD)

    refreshed = _user(user)
    assert refreshed.locked_until is None
    assert refreshed.failed_login_count == 1
    assert _sign_in(client, user.username).url == reverse("mfa-verify")


def test_a_mistyped_recovery_code_does_not_throttle_the_authenticator(client):
    user = _with_password(Role.RESEARCHER)
    good = authentication.regenerate_recovery_codes(user=user)[0]
    _sign_in(client, user.username)

    mistyped = _verify(client, "0000-0000")
    right_away = _verify(client, current_totp(_device(user)))

    assert mistyped.status_code == 200
    assert right_away.status_code == 302
    assert right_away.url == reverse("dashboard")
    assert _device(user).throttling_failure_count == 0
    assert good  # the real recovery code is still unused
