"""Reading the audit log in tests: mark where it stands, then read what an action added."""

from __future__ import annotations

from django.db.models import Max

from sde.audit.models import AuditEvent


def mark() -> int:
    """The newest sequence number now (0 for an empty log)."""
    return AuditEvent.objects.aggregate(last=Max("sequence"))["last"] or 0


def events_since(after: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gt=after).order_by("sequence"))


def types_since(after: int) -> list[str]:
    return [event.event_type for event in events_since(after)]
