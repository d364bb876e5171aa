"""The access gate, domain-error translation and security headers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve

from sde.exceptions import InvalidTransition, NotFound, PermissionDenied

API_PREFIX = "/api/"
SESSION_SAVED_AT = "sde_saved_at"  # when the session (and so its expiry) was last saved


def _mfa_verified(request: HttpRequest) -> bool:
    from sde.identity.authentication import mfa_verified

    return mfa_verified(request.user)


def _resolves(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


class RequireMFAMiddleware:
    """Deny by default: every view needs a signed-in, MFA-verified person unless it is
    marked ``@public`` or ``@mfa_stage``. The API (``/api/``) authenticates in REST
    framework, whose session authentication also demands MFA; a session that has only
    passed the password step is refused here as well."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEBUG and not _resolves(request.path_info):
            # Django's debug 404 for an unknown address lists every URL pattern.
            return render(request, "errors/404.html", status=404)
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if getattr(view_func, "sde_public", False):
            return None
        if request.path_info.startswith(API_PREFIX):
            if request.user.is_authenticated and not _mfa_verified(request):
                return JsonResponse(
                    {"detail": "Multi-factor authentication is required."}, status=403
                )
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if getattr(view_func, "sde_mfa_stage", False) or _mfa_verified(request):
            return None
        from sde.identity.authentication import confirmed_totp_device

        target = "mfa-verify" if confirmed_totp_device(request.user) else "mfa-enrol"  # type: ignore[arg-type]
        return redirect(target)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Translate domain errors: invisible -> 404, visible but forbidden -> 403,
        wrong state -> 409."""
        if isinstance(exception, NotFound | Http404):
            # The same page whatever DEBUG says: Django's debug 404 lists every URL.
            return render(request, "errors/404.html", status=404)
        if isinstance(exception, PermissionDenied):
            return render(request, "errors/403.html", {"message": str(exception)}, status=403)
        if isinstance(exception, InvalidTransition):
            return render(request, "errors/409.html", {"message": str(exception)}, status=409)
        return None


class IdleSessionMiddleware:
    """Signs a person out after ``SDE_SESSION_IDLE_MINUTES`` without a request.

    A session's expiry is pushed on when the session is saved. Saving it on every request
    (``SESSION_SAVE_EVERY_REQUEST``) would be one database write per request; instead a
    request saves it once ``SDE_SESSION_REFRESH_SECONDS`` have passed since it was last
    saved. The session then lapses between the idle limit less that interval and the idle
    limit after the last request: never later. Sits inside SessionMiddleware, which does
    the saving on the way out."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is None or session.is_empty():  # nobody signed in, or signed out here
            return response
        now = int(time.time())
        saved = session.get(SESSION_SAVED_AT)
        if (
            session.modified
            or not isinstance(saved, int)
            or not 0 <= now - saved < settings.SDE_SESSION_REFRESH_SECONDS
        ):
            session[SESSION_SAVED_AT] = now  # modified: SessionMiddleware saves it
        return response


class SecurityHeadersMiddleware:
    """Content-Security-Policy and the headers Django's SecurityMiddleware does not set.
    Signed-in pages are never cached (they show governed data)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.SDE_CONTENT_SECURITY_POLICY)
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
        )
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        if not request.path_info.startswith(settings.STATIC_URL):
            response.headers["Cache-Control"] = "no-store"
        return response
