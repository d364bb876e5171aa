"""The public transparency register: the approved projects, as a page, JSON and CSV.
Open to everyone, signed in or not (``@public``); everyone sees the same entries."""

from __future__ import annotations

import csv
import io

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from sde.csv_safety import safe_cell
from sde.projects.selectors import (
    REGISTER_KEYS,
    STATUS_MEANING,
    STATUS_TEXT,
    RegisterEntry,
    transparency_register,
    transparency_register_entry,
)
from sde.views.decorators import public

# The CSV has one row per project; its datasets fit one cell ("Name (n fields); ...").
CSV_COLUMNS = REGISTER_KEYS


def _datasets_cell(entry: RegisterEntry) -> str:
    return "; ".join(
        f"{d.name} ({d.field_count} field{'' if d.field_count == 1 else 's'})"
        for d in entry.datasets
    )


@public
@require_safe
def register_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "register/register.html",
        {
            "entries": transparency_register(),
            "statuses": [(STATUS_TEXT[s], meaning) for s, meaning in STATUS_MEANING.items()],
        },
    )


@public
@require_safe
def register_entry(request: HttpRequest, number: int) -> HttpResponse:
    return render(request, "register/entry.html", {"entry": transparency_register_entry(number)})


@public
@require_safe
def register_json(request: HttpRequest) -> JsonResponse:
    entries = transparency_register()
    return JsonResponse(
        {"count": len(entries), "projects": [entry.as_json() for entry in entries]},
        json_dumps_params={"ensure_ascii": False},
    )


@public
@require_safe
def register_csv(request: HttpRequest) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for entry in transparency_register():
        row = entry.as_json()
        row["datasets"] = _datasets_cell(entry)
        writer.writerow([safe_cell(row[column]) for column in CSV_COLUMNS])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localdate().strftime("%Y%m%d")
    response["Content-Disposition"] = (
        f'attachment; filename="sde-transparency-register-{stamp}.csv"'
    )
    return response
