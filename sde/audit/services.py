"""Writing the audit log: ``record_event`` and checkpoint signing.

``record_event`` is the only way an event is written. It refuses to run outside a
transaction, so an event always commits or rolls back with the change it records.
Writers are serialised (an advisory lock on PostgreSQL; SQLite transactions take the
write lock at BEGIN), so the sequence is gap-free and the chain cannot fork.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from sde.audit import chain
from sde.audit.events import EventType
from sde.audit.models import AuditCheckpoint, AuditEvent
from sde.exceptions import AuditError
from sde.governance import governed_writes
from sde.identity.models import User

# Arbitrary constant identifying the audit chain's advisory lock on PostgreSQL.
AUDIT_LOCK_KEY = 0x5DE_A0D17
MAX_DATA_BYTES = 4096
# Ten digits, optionally grouped 3-3-4: what an NHS number looks like. Events carry ids
# and counts, never identifiers of patients, so such a value is refused outright.
_NHS_NUMBER_LIKE = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")
SYSTEM_USERNAME = "system"
_EVENT_TYPES = frozenset(EventType.values)  # EventType.values rebuilds its list each call


def get_system_user() -> User:
    """The dedicated actor for system actions (scheduled tasks, unknown-user events)."""
    user = User.objects.filter(username=SYSTEM_USERNAME, is_system=True).first()
    if user is None:
        user = User(username=SYSTEM_USERNAME, is_system=True, is_active=False, first_name="System")
        user.set_unusable_password()
        user.save()
    return user


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])


def _check_private(data: dict[str, Any]) -> None:
    encoded = chain.canonical_json(data)
    if len(encoded) > MAX_DATA_BYTES:
        raise AuditError(
            f"audit event data is {len(encoded)} bytes; the limit is "
            f"{MAX_DATA_BYTES}: events carry ids and counts, not content"
        )
    if _NHS_NUMBER_LIKE.search(encoded.decode("utf-8")):
        raise AuditError("audit event data contains an NHS-number-like value")


def _describe(target: models.Model) -> tuple[str, str, str]:
    display = target.display_name if isinstance(target, User) else str(target)
    return target._meta.label_lower, str(target.pk), display[:200]


def record_event(
    *,
    event_type: EventType,
    actor: User,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_display: str = "",
    project_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction.

    Raises AuditError outside a transaction, for an unknown event type, or for data that
    is too large or looks like it carries a patient identifier. Enqueues checkpoint
    signing after commit every ``SDE_AUDIT_CHECKPOINT_EVERY`` events.
    """
    if not connection.in_atomic_block:
        raise AuditError("record_event must run inside the transaction of the change")
    if event_type not in _EVENT_TYPES:
        raise AuditError(f"unknown audit event type {event_type!r}")
    if target is not None:
        target_type, target_id, target_display = _describe(target)
    payload = dict(data or {})
    _check_private(payload)

    _lock_chain()
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", "chain_hash").first()
    previous_sequence, previous_chain = last if last else (0, chain.GENESIS_CHAIN_HASH)
    fields: dict[str, Any] = {
        "sequence": previous_sequence + 1,
        "occurred_at": timezone.now(),
        "event_type": str(event_type),
        "actor_id": actor.pk,
        "actor_display": actor.display_name[:200],
        "target_type": target_type,
        "target_id": target_id,
        "target_display": target_display[:200],
        "project_id": project_id,
        "data": payload,
    }
    entry = chain.entry_hash(fields)
    event = AuditEvent(
        **fields, entry_hash=entry, chain_hash=chain.chain_hash(previous_chain, entry)
    )
    with governed_writes(AuditEvent):
        event.save()
    if event.sequence % settings.SDE_AUDIT_CHECKPOINT_EVERY == 0:
        transaction.on_commit(_enqueue_checkpoint, robust=True)
    return event


def _enqueue_checkpoint() -> None:
    from sde.tasks import sign_audit_checkpoint_task  # tasks import services

    sign_audit_checkpoint_task.delay()


def _checkpointed_up_to_date() -> bool:
    """Whether nothing but checkpoint signing has happened since the latest checkpoint.
    Signing writes its own event after the head it signs; that event alone must not call
    for another checkpoint, or every scheduled run would sign again."""
    covered = (
        AuditCheckpoint.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    )
    if covered is None:
        return False
    since = AuditEvent.objects.filter(sequence__gt=covered)
    return not since.exclude(event_type=EventType.AUDIT_CHECKPOINT_SIGNED).exists()


def sign_checkpoint(*, by: User) -> AuditCheckpoint | None:
    """Verify the chain up to its current head and sign a checkpoint of it.

    Takes no lock: events up to the head are immutable, so concurrent writers carry on.
    Returns None if nothing but checkpoint signing has happened since the latest
    checkpoint (idempotent) or the log is empty.
    Raises AuditError, and records a failed verification, if the chain does not verify:
    a broken chain is never signed.
    """
    from sde.audit.selectors import verify_audit_log

    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", "chain_hash").first()
    if head is None or _checkpointed_up_to_date():
        return None
    result = verify_audit_log(up_to=head[0])
    if not result.ok:
        record_verification(result=result, by=by)
        raise AuditError(f"not signing: {result.reason}")
    from sde.keys import audit_signing_key, public_key_id

    key = audit_signing_key()
    signed_at = timezone.now()
    key_id = public_key_id(key.public_key())
    message = chain.checkpoint_message(
        sequence=head[0],
        chain_hash=head[1],
        merkle_root=result.merkle_root,
        signed_at=signed_at,
        key_id=key_id,
    )
    checkpoint = AuditCheckpoint(
        sequence=head[0],
        chain_hash=head[1],
        merkle_root=result.merkle_root,
        signed_at=signed_at,
        key_id=key_id,
        signature=key.sign(message).hex(),
    )
    try:
        with transaction.atomic(durable=True), governed_writes(AuditCheckpoint):
            checkpoint.save()
            record_event(
                event_type=EventType.AUDIT_CHECKPOINT_SIGNED,
                actor=by,
                target=checkpoint,
                data={"sequence": head[0], "key_id": key_id},
            )
    except IntegrityError:
        return None  # another signer checkpointed this head first
    return checkpoint


def record_verification(*, result: chain.VerificationResult, by: User) -> AuditEvent:
    """Record the outcome of a verification run; on failure, alert every IG officer."""
    with transaction.atomic():
        event = record_event(
            event_type=(
                EventType.AUDIT_VERIFICATION_PASSED
                if result.ok
                else EventType.AUDIT_VERIFICATION_FAILED
            ),
            actor=by,
            data={
                "events_checked": result.events_checked,
                "checkpoints_checked": result.checkpoints_checked,
                "first_bad_sequence": result.first_bad_sequence,
                "reason": result.reason,
            },
        )
        if not result.ok:
            transaction.on_commit(lambda: _alert_ig(result), robust=True)
    return event


def _alert_ig(result: chain.VerificationResult) -> None:
    from sde.identity.roles import Role
    from sde.notifications import notify_role

    notify_role(
        role=Role.IG_OFFICER,
        subject="sde: audit log verification FAILED",
        body=(
            f"The audit log did not verify: {result.reason}.\nFirst bad sequence number: "
            f"{result.first_bad_sequence}.\nInvestigate before trusting the log."
        ),
    )
