from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from sde.dashboard import dashboard_for
from sde.views.decorators import public


def home(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard")


def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "sde/dashboard.html", dashboard_for(request.user))  # type: ignore[arg-type]


@public
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, broker and data root. 200 when all are fine, 503 otherwise. Reports
    only up/down, never connection strings."""
    from sde.health import check_broker, check_data_root

    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means "down"; the detail is logged
        checks["database"] = "unavailable"
    checks["broker"] = check_broker()
    checks["data_root"] = check_data_root()
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


@public
def favicon(request: HttpRequest) -> HttpResponse:
    """Pages carry no icon (``<link rel="icon" href="data:,">``); browsers still ask for
    /favicon.ico when showing a file or JSON. Nothing to send, and not an error."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "public, max-age=86400"
    return response
