"""A person's own account: roles, organisations, accreditation, password, MFA, tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from sde.exceptions import ValidationError
from sde.identity import authentication, services
from sde.identity.models import ApiToken, User
from sde.identity.selectors import current_roles
from sde.views.forms import TokenForm, apply_errors


def account(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    new_key = request.session.pop("sde_new_api_key", None)
    return render(
        request,
        "sde/account.html",
        {
            "roles": sorted(current_roles(user), key=lambda r: r.label),
            "memberships": user.memberships.select_related("organisation"),
            "accreditations": user.accreditations.all(),
            "tokens": user.api_tokens.all(),
            "token_form": TokenForm(),
            "new_key": new_key,
            "today": timezone.localdate(),
            "now": timezone.now(),
        },
    )


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    form = PasswordChangeForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.change_password(user=user, new_password=form.cleaned_data["new_password1"])
        except ValidationError as error:
            apply_errors(form, error)
        else:
            update_session_auth_hash(request, user)
            messages.success(request, "Your password has been changed.")
            return redirect("account")
    return render(request, "sde/password_change.html", {"form": form})


@require_POST
def recovery_codes_regenerate(request: HttpRequest) -> HttpResponse:
    codes = authentication.regenerate_recovery_codes(user=request.user)  # type: ignore[arg-type]
    request.session["sde_recovery_codes"] = codes
    return redirect("mfa-recovery-codes")


@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the token a name.")
        return redirect("account")
    user: User = request.user  # type: ignore[assignment]
    _, key = services.create_api_token(user=user, name=form.cleaned_data["name"], by=user)
    request.session["sde_new_api_key"] = key
    return redirect("account")


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    services.revoke_api_token(token=token, by=request.user)  # type: ignore[arg-type]
    messages.success(request, "Token revoked.")
    return redirect("account")
