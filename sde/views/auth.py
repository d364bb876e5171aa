"""Sign in, MFA enrolment and verification, sign out."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from sde.identity import authentication
from sde.identity.models import User
from sde.views.decorators import mfa_stage, public


def client_ip(request: HttpRequest) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy
    # rewrites it, and the proxy's address is then what we record.
    return request.META.get("REMOTE_ADDR", "")[:45]


class SignInForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        widget=forms.TextInput(
            attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}
        ),
    )
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class CodeForm(forms.Form):
    token = forms.CharField(
        label="Code",
        max_length=20,
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={"data-autocomplete-otp": "", "autocomplete": "one-time-code"}
        ),
    )


def _safe_next(request: HttpRequest) -> str | None:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


def _demo_accounts() -> list[dict[str, str]]:
    if not settings.SDE_DEMO_MODE:
        return []
    from sde.demo import demo_credentials

    return demo_credentials()


@public
@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if authentication.mfa_verified(request.user):
        return redirect(_safe_next(request) or "dashboard")
    form = SignInForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = authentication.authenticate_with_password(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                ip=client_ip(request),
            )
        except authentication.SignInFailed as error:
            form.add_error(None, str(error))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            next_url = _safe_next(request)
            if next_url:
                request.session["sde_next"] = next_url
            if authentication.confirmed_totp_device(user):
                return redirect("mfa-verify")
            return redirect("mfa-enrol")
    return render(
        request,
        "auth/sign_in.html",
        {"form": form, "next": _safe_next(request) or "", "demo_accounts": _demo_accounts()},
    )


def _after_mfa(request: HttpRequest) -> HttpResponse:
    return redirect(request.session.pop("sde_next", None) or "dashboard")


def _fail_second_factor(
    request: HttpRequest, user: User, form: CodeForm, message: str
) -> HttpResponse | None:
    user.refresh_from_db(fields=["locked_until"])
    if authentication._is_locked(user):
        logout(request)
        return redirect("login")
    form.add_error("token", message)
    return None


@mfa_stage
@never_cache
@require_http_methods(["GET", "POST"])
def mfa_enrol(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if authentication.confirmed_totp_device(user):
        return redirect("mfa-verify")
    device = authentication.pending_totp_device(user)
    form = CodeForm(request.POST or None)
    form.fields["token"].help_text = "The 6-digit code your authenticator app shows now."
    if request.method == "POST" and form.is_valid():
        try:
            confirmed, codes = authentication.confirm_totp_enrolment(
                user=user, token=form.cleaned_data["token"], ip=client_ip(request)
            )
        except authentication.SignInFailed as error:
            response = _fail_second_factor(request, user, form, str(error))
            if response:
                return response
        else:
            otp_login(request, confirmed)
            request.session["sde_recovery_codes"] = codes
            return redirect("mfa-recovery-codes")
    import segno

    qr = segno.make(device.config_url, error="m")
    return render(
        request,
        "auth/mfa_enrol.html",
        {
            "form": form,
            "qr_data_uri": qr.svg_data_uri(scale=5, dark="#0b0c0c"),
            "secret": _base32_secret(device.bin_key),
            "demo_code": _demo_code(user, device),
        },
    )


def _base32_secret(key: bytes) -> str:
    import base64

    secret = base64.b32encode(key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _demo_code(user: User, device: object) -> str:
    """Demo mode only, demo accounts only: show the current code (the eased demo login)."""
    if not (settings.SDE_DEMO_MODE and user.is_demo):
        return ""
    from sde.demo import current_totp

    return current_totp(device)  # type: ignore[arg-type]


@mfa_stage
@never_cache
@require_http_methods(["GET", "POST"])
def mfa_verify(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if authentication.mfa_verified(request.user):
        return _after_mfa(request)
    device = authentication.confirmed_totp_device(user)
    if device is None:
        return redirect("mfa-enrol")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            matched = authentication.verify_second_factor(
                user=user, token=form.cleaned_data["token"], ip=client_ip(request)
            )
        except authentication.SignInFailed as error:
            response = _fail_second_factor(request, user, form, str(error))
            if response:
                return response
        else:
            otp_login(request, matched)
            return _after_mfa(request)
    return render(
        request, "auth/mfa_verify.html", {"form": form, "demo_code": _demo_code(user, device)}
    )


@never_cache
def mfa_recovery_codes(request: HttpRequest) -> HttpResponse:
    """Shows freshly issued recovery codes once; they are not stored in readable form."""
    codes = request.session.pop("sde_recovery_codes", None)
    if not codes:
        return redirect("account")
    return render(request, "auth/recovery_codes.html", {"codes": codes})


@mfa_stage
@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        authentication.record_logout(user=request.user)  # type: ignore[arg-type]
    logout(request)
    return redirect("login")
