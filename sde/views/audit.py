"""The IG audit page: search, per-event verification, CSV export. Every view is itself
audited."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Max, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from sde import policy
from sde.audit import chain
from sde.audit.events import EventType
from sde.audit.forms import AuditSearchForm
from sde.audit.models import AuditEvent
from sde.audit.selectors import event_integrity, events_integrity, search_audit_events
from sde.audit.services import record_event
from sde.csv_safety import safe_cell


def _record_view(user: Any, event_type: EventType, data: dict[str, Any]) -> None:
    with transaction.atomic(durable=True):
        record_event(event_type=event_type, actor=user, data=data)


def audit_log(request: HttpRequest) -> HttpResponse:
    policy.check_read_audit_log(request.user)
    form = AuditSearchForm(request.GET or None)
    events: QuerySet[AuditEvent] = AuditEvent.objects.none()
    if not request.GET or form.is_valid():
        filters = form.filters() if request.GET else {}
        events = search_audit_events(**filters)
        _record_view(
            request.user,
            EventType.AUDIT_LOG_VIEWED,
            {"filters": form.described() if request.GET else {}},
        )
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    listed = list(page.object_list)
    statuses = list(zip(listed, events_integrity(listed), strict=True))
    return render(
        request,
        "sde/audit_log.html",
        {"form": form, "page_obj": page, "rows": statuses, "querystring": query.urlencode()},
    )


def audit_event(request: HttpRequest, sequence: int) -> HttpResponse:
    policy.check_read_audit_log(request.user)
    event = AuditEvent.objects.filter(sequence=sequence).first()
    if event is None:
        raise Http404("no such event")
    _record_view(request.user, EventType.AUDIT_LOG_VIEWED, {"sequence": sequence})
    return render(
        request,
        "sde/audit_event.html",
        {
            "event": event,
            "integrity": event_integrity(event),
            "data_json": json.dumps(event.data, indent=2, sort_keys=True),
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_COLUMNS = list(chain.EVENT_FIELDS)


def audit_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    policy.check_read_audit_log(request.user)
    form = AuditSearchForm(request.GET or None)
    if request.GET and not form.is_valid():
        return render(request, "sde/audit_log.html", {"form": form, "rows": []}, status=400)
    filters = form.filters() if request.GET else {}
    # The file holds exactly the rows the export event counts: the log as it stands now,
    # not the export's own event nor any written while the file streams.
    head = AuditEvent.objects.aggregate(head=Max("sequence"))["head"] or 0
    events = search_audit_events(**filters).filter(sequence__lte=head)
    _record_view(
        request.user,
        EventType.AUDIT_LOG_EXPORTED,
        {"filters": form.described() if request.GET else {}, "rows": events.count()},
    )
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for values in events.values_list(*CSV_COLUMNS).iterator(chunk_size=2000):
            row = list(values)
            row[1] = row[1].isoformat()
            row[9] = json.dumps(row[9], sort_keys=True)
            yield writer.writerow([safe_cell(value) for value in row])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="sde-audit-{stamp}.csv"'
    return response
