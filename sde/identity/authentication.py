"""Signing in: password with lockout, then mandatory TOTP (or a recovery code).

Failures are recorded and committed *before* the error is raised, so a refused sign-in
always leaves its audit event. Password and MFA failures share one counter: after
``SDE_LOCKOUT_THRESHOLD`` consecutive failures the account is locked for
``SDE_LOCKOUT_MINUTES``. The message shown is the same for an unknown username, a wrong
password and a locked account, so sign-in reveals nothing about which accounts exist.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from sde.audit.events import EventType
from sde.audit.services import get_system_user, record_event
from sde.exceptions import SDEError
from sde.identity.models import User

SIGN_IN_FAILED_MESSAGE = (
    "Sign-in failed. Check your username and password. After repeated failures an "
    "account is locked for a while."
)
MFA_FAILED_MESSAGE = "That code was not accepted. Check your authenticator app and try again."


class SignInFailed(SDEError):
    pass


@dataclass(frozen=True)
class _Outcome:
    user: User | None
    error: str = ""


def _register_failure(user: User, *, event_type: EventType, reason: str, ip: str) -> None:
    """Count a failure on a row already locked FOR UPDATE; lock the account at threshold.
    A lock that has run out starts a fresh count: one more mistake does not relock."""
    if user.locked_until is not None and not _is_locked(user):
        user.locked_until = None
        user.failed_login_count = 0
    user.failed_login_count += 1
    data = {"reason": reason, "ip": ip, "consecutive_failures": user.failed_login_count}
    fields = ["failed_login_count", "locked_until"]
    if user.failed_login_count >= settings.SDE_LOCKOUT_THRESHOLD and not _is_locked(user):
        user.locked_until = timezone.now() + timedelta(minutes=settings.SDE_LOCKOUT_MINUTES)
        user.save(update_fields=fields)
        record_event(event_type=event_type, actor=user, target=user, data=data)
        record_event(
            event_type=EventType.ACCOUNT_LOCKED,
            actor=get_system_user(),
            target=user,
            data={"minutes": settings.SDE_LOCKOUT_MINUTES},
        )
        return
    user.save(update_fields=fields)
    record_event(event_type=event_type, actor=user, target=user, data=data)


def _is_locked(user: User) -> bool:
    return user.locked_until is not None and user.locked_until > timezone.now()


_DUMMY_HASH = None
_TOTP_FORMAT = re.compile(r"\d{6}")


def _spend_password_time(password: str) -> None:
    """Hash anyway for an unknown user, so timing does not reveal which names exist."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = make_password(secrets.token_hex(16))
    from django.contrib.auth.hashers import check_password

    check_password(password, _DUMMY_HASH)


def authenticate_with_password(*, username: str, password: str, ip: str) -> User:
    """First factor. Returns the user (not yet MFA-verified) or raises SignInFailed.

    Events: identity.login_failed (and identity.account_locked at the threshold) on
    failure. Success is recorded when the second factor completes.
    """
    with transaction.atomic(durable=True):
        user = (
            User.objects.select_for_update()
            .filter(username__iexact=username.strip(), is_system=False)
            .first()
        )
        outcome = _check_password(user, password, ip)
    if outcome.user is None:
        raise SignInFailed(outcome.error)
    return outcome.user


def _check_password(user: User | None, password: str, ip: str) -> _Outcome:
    if user is None:
        _spend_password_time(password)
        record_event(
            event_type=EventType.LOGIN_FAILED,
            actor=get_system_user(),
            data={"reason": "unknown_username", "ip": ip},
        )
        return _Outcome(None, SIGN_IN_FAILED_MESSAGE)
    if _is_locked(user):
        record_event(
            event_type=EventType.LOGIN_FAILED,
            actor=user,
            target=user,
            data={"reason": "locked", "ip": ip},
        )
        return _Outcome(None, SIGN_IN_FAILED_MESSAGE)
    if not user.check_password(password):
        _register_failure(user, event_type=EventType.LOGIN_FAILED, reason="bad_password", ip=ip)
        return _Outcome(None, SIGN_IN_FAILED_MESSAGE)
    if not user.is_active:
        record_event(
            event_type=EventType.LOGIN_FAILED,
            actor=user,
            target=user,
            data={"reason": "suspended", "ip": ip},
        )
        return _Outcome(None, SIGN_IN_FAILED_MESSAGE)
    return _Outcome(user)


def mfa_verified(user: object) -> bool:
    """Whether this request's user completed the second factor (django-otp's flag)."""
    is_verified = getattr(user, "is_verified", None)
    return bool(getattr(user, "is_authenticated", False) and is_verified and is_verified())


def confirmed_totp_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def pending_totp_device(user: User) -> TOTPDevice:
    """The unconfirmed device being enrolled (created on first call)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def _issue_recovery_codes(user: User) -> list[str]:
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name="Recovery codes", defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    # 64 random bits in 16 hex characters: django-otp's StaticToken.token holds at most
    # 16 (PostgreSQL enforces the length; SQLite silently does not).
    codes = [secrets.token_hex(8) for _ in range(settings.SDE_RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def confirm_totp_enrolment(*, user: User, token: str, ip: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the pending authenticator with a current code; issue recovery codes.

    Returns the device and the recovery codes (shown once). Raises SignInFailed for a
    wrong code (counted towards lockout). Events: identity.mfa_enrolled,
    identity.mfa_recovery_codes_issued; identity.mfa_failed on failure.
    """
    with transaction.atomic(durable=True):
        locked = User.objects.select_for_update().get(pk=user.pk)
        device = TOTPDevice.objects.select_for_update().filter(user=locked, confirmed=False).first()
        if device is None or _is_locked(locked) or not device.verify_token(token.strip()):
            _register_failure(
                locked, event_type=EventType.MFA_FAILED, reason="enrolment_code", ip=ip
            )
            outcome = _Outcome(None, MFA_FAILED_MESSAGE)
        else:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            codes = _issue_recovery_codes(locked)
            _signed_in(locked, ip=ip, method="totp_enrolment")
            record_event(event_type=EventType.MFA_ENROLLED, actor=locked, target=locked)
            record_event(
                event_type=EventType.MFA_RECOVERY_CODES_ISSUED,
                actor=locked,
                target=locked,
                data={"count": len(codes)},
            )
            outcome = _Outcome(locked)
    if outcome.user is None or device is None:
        raise SignInFailed(outcome.error)
    return device, codes


def verify_second_factor(*, user: User, token: str, ip: str) -> TOTPDevice | StaticDevice:
    """Check a TOTP code or a single-use recovery code. Returns the device that matched.

    Raises SignInFailed (counted towards lockout). Events: identity.mfa_verified and
    identity.login_succeeded, plus identity.mfa_recovery_code_used; or identity.mfa_failed.
    """
    token = token.strip()
    with transaction.atomic(durable=True):
        locked = User.objects.select_for_update().get(pk=user.pk)
        matched: TOTPDevice | StaticDevice | None = None
        if not _is_locked(locked) and locked.is_active:
            # Six digits is an authenticator code; anything else can only be a recovery
            # code, so it never counts as a failed (and throttling) TOTP attempt.
            if _TOTP_FORMAT.fullmatch(token):
                for device in TOTPDevice.objects.filter(user=locked, confirmed=True):
                    if device.verify_token(token):
                        matched = device
                        break
            else:
                static = StaticDevice.objects.filter(user=locked, confirmed=True).first()
                if static is not None and static.verify_token(token):
                    matched = static
        if matched is None:
            _register_failure(locked, event_type=EventType.MFA_FAILED, reason="bad_code", ip=ip)
        else:
            if isinstance(matched, StaticDevice):
                record_event(
                    event_type=EventType.MFA_RECOVERY_CODE_USED,
                    actor=locked,
                    target=locked,
                    data={"remaining": matched.token_set.count()},
                )
            _signed_in(
                locked,
                ip=ip,
                method="recovery_code" if isinstance(matched, StaticDevice) else "totp",
            )
    if matched is None:
        raise SignInFailed(MFA_FAILED_MESSAGE)
    return matched


def _signed_in(user: User, *, ip: str, method: str) -> None:
    user.failed_login_count = 0
    user.locked_until = None
    user.save(update_fields=["failed_login_count", "locked_until"])
    record_event(
        event_type=EventType.MFA_VERIFIED, actor=user, target=user, data={"method": method}
    )
    record_event(event_type=EventType.LOGIN_SUCCEEDED, actor=user, target=user, data={"ip": ip})


def regenerate_recovery_codes(*, user: User) -> list[str]:
    """Replace the person's recovery codes. Event: identity.mfa_recovery_codes_issued."""
    with transaction.atomic(durable=True):
        codes = _issue_recovery_codes(user)
        record_event(
            event_type=EventType.MFA_RECOVERY_CODES_ISSUED,
            actor=user,
            target=user,
            data={"count": len(codes)},
        )
    return codes


def reset_mfa(*, user: User, by: User) -> None:
    """Remove a person's authenticators (lost phone); they enrol again at next sign-in.
    Raises PermissionDenied unless ``by`` manages accounts and is not ``user``.
    Event: identity.mfa_reset."""
    from sde import policy

    policy.check_manage_accounts(by, user)
    with transaction.atomic(durable=True):
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        record_event(event_type=EventType.MFA_RESET, actor=by, target=user)


def record_logout(*, user: User, reason: str = "signed_out") -> None:
    """Event: identity.logout."""
    with transaction.atomic(durable=True):
        record_event(event_type=EventType.LOGOUT, actor=user, target=user, data={"reason": reason})
