"""Reading and verifying the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from django.db.models import Q, QuerySet

from sde.audit import chain
from sde.audit.events import EventType
from sde.audit.models import AuditCheckpoint, AuditEvent
from sde.keys import trusted_audit_public_keys


def _rows(up_to: int | None) -> Iterator[dict[str, Any]]:
    events = AuditEvent.objects.order_by("sequence")
    if up_to is not None:
        events = events.filter(sequence__lte=up_to)
    yield from events.values(*chain.EVENT_FIELDS).iterator(chunk_size=5000)


def verify_audit_log(*, up_to: int | None = None) -> chain.VerificationResult:
    """Recompute every entry hash, the chain and every signed checkpoint (up to
    ``up_to``, or the whole log)."""
    keys = trusted_audit_public_keys()
    checkpoints = [
        chain.CheckpointRow(**row)
        for row in AuditCheckpoint.objects.order_by("sequence").values(
            "sequence", "chain_hash", "merkle_root", "signed_at", "key_id", "signature"
        )
        if up_to is None or row["sequence"] <= up_to
    ]

    def verify_signature(checkpoint: chain.CheckpointRow, message: bytes) -> bool:
        key = keys.get(checkpoint.key_id)
        if key is None:
            return False
        try:
            key.verify(bytes.fromhex(checkpoint.signature), message)
        except (InvalidSignature, ValueError):
            return False
        return True

    return chain.verify_chain(_rows(up_to), checkpoints, verify_signature)


@dataclass(frozen=True)
class EventIntegrity:
    entry_ok: bool
    chain_ok: bool
    checkpointed: bool

    @property
    def ok(self) -> bool:
        return self.entry_ok and self.chain_ok


def events_integrity(events: list[AuditEvent]) -> list[EventIntegrity]:
    """Each event's own verification: its entry hash, its link to the previous event, and
    whether a signed checkpoint covers it (``verify_audit`` checks the whole chain).
    Three queries whatever the number of events."""
    wanted = {event.sequence - 1 for event in events if event.sequence > 1}
    previous = dict(
        AuditEvent.objects.filter(sequence__in=wanted).values_list("sequence", "chain_hash")
    )
    previous[0] = chain.GENESIS_CHAIN_HASH
    covered_to = (
        AuditCheckpoint.objects.order_by("-sequence").values_list("sequence", flat=True).first()
        or 0
    )
    result = []
    for event in events:
        fields = {name: getattr(event, name) for name in chain.HASHED_FIELDS}
        entry_ok = chain.entry_hash(fields) == event.entry_hash
        before = previous.get(event.sequence - 1)
        chain_ok = before is not None and (
            chain.chain_hash(before, event.entry_hash) == event.chain_hash
        )
        result.append(EventIntegrity(entry_ok, chain_ok, event.sequence <= covered_to))
    return result


def event_integrity(event: AuditEvent) -> EventIntegrity:
    return events_integrity([event])[0]


def search_audit_events(
    *,
    person_id: int | None = None,
    project_id: int | None = None,
    event_type: str = "",
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events newest first. ``person_id`` matches the actor or a person as the target."""
    events = AuditEvent.objects.order_by("-sequence")
    if person_id is not None:
        events = events.filter(
            Q(actor_id=person_id) | Q(target_type="sde.user", target_id=str(person_id))
        )
    if project_id is not None:
        events = events.filter(project_id=project_id)
    if event_type:
        events = events.filter(event_type=event_type)
    if date_from is not None:
        events = events.filter(occurred_at__gte=date_from)
    if date_to is not None:
        events = events.filter(occurred_at__lt=date_to)
    return events


def latest_verification() -> AuditEvent | None:
    return (
        AuditEvent.objects.filter(
            event_type__in=[
                EventType.AUDIT_VERIFICATION_PASSED,
                EventType.AUDIT_VERIFICATION_FAILED,
            ]
        )
        .order_by("-sequence")
        .first()
    )
