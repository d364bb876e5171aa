"""The audit log against the real database: record_event's rules, atomicity with the
change it records, append-only enforcement, tamper detection by ``verify_audit``,
signed checkpoints, the scheduled verification task and concurrent writers."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper

from sde.audit import chain, services
from sde.audit.events import EventType
from sde.audit.models import AuditCheckpoint, AuditEvent
from sde.audit.selectors import events_integrity, verify_audit_log
from sde.audit.services import get_system_user, record_event, sign_checkpoint
from sde.exceptions import AuditError, GovernedWriteRefused
from sde.governance import governed_writes
from sde.identity import services as identity_services
from sde.identity.models import RoleAssignment, User
from sde.identity.roles import Role
from sde.keys import audit_signing_key, public_key_id
from sde.tasks import sign_audit_checkpoint_task, verify_audit_task
from tests import scenarios
from tests.events import events_since as _events_since
from tests.events import mark as _mark

APPEND_ONLY_TABLES = ("sde_auditevent", "sde_auditcheckpoint")
_COLUMNS = (*chain.HASHED_FIELDS, "entry_hash", "chain_hash")


# --- helpers ---------------------------------------------------------------------------


def _sequences() -> list[int]:
    return list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))


def _last_event() -> AuditEvent | None:
    return AuditEvent.objects.order_by("-sequence").first()


@contextmanager
def _as_dba() -> Iterator[CursorWrapper]:
    """A cursor with the powers of a database administrator: on PostgreSQL the
    append-only triggers are switched off for the duration (SQLite has none)."""
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            for table in APPEND_ONLY_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
        try:
            yield cursor
        finally:
            if postgres:
                for table in APPEND_ONLY_TABLES:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")


def _signed_chain() -> AuditCheckpoint:
    """Events 1..10, a signed checkpoint at 10, and its checkpoint_signed event at 11."""
    scenarios.some_events(10)
    checkpoint = sign_checkpoint(by=get_system_user())
    assert checkpoint is not None
    assert checkpoint.sequence == 10
    assert _sequences() == list(range(1, 12))
    return checkpoint


def _row(sequence: int) -> dict[str, Any]:
    return AuditEvent.objects.values(*_COLUMNS).get(sequence=sequence)


def _insert_copy(cursor: CursorWrapper, *, of: int, sequence: int, previous_chain: str) -> None:
    """Insert a forged event: a copy of event ``of`` renumbered to ``sequence``, with a
    correct entry hash and a chain hash linked to ``previous_chain``."""
    fields = dict(_row(of), sequence=sequence)
    entry = chain.entry_hash(fields)
    copied = ", ".join(name for name in chain.HASHED_FIELDS if name != "sequence")
    cursor.execute(
        f"INSERT INTO sde_auditevent (sequence, {copied}, entry_hash, chain_hash) "
        f"SELECT %s, {copied}, %s, %s FROM sde_auditevent WHERE sequence = %s",
        [sequence, entry, chain.chain_hash(previous_chain, entry), of],
    )


# --- tampering, as a database administrator with SQL access would -----------------------
def _alter_actor_display(cursor: CursorWrapper) -> None:
    cursor.execute("UPDATE sde_auditevent SET actor_display = 'Someone Else' WHERE sequence = 5")


def _alter_data(cursor: CursorWrapper) -> None:
    cursor.execute("UPDATE sde_auditevent SET data = %s WHERE sequence = 5", ['{"i": 999}'])


def _alter_event_type(cursor: CursorWrapper) -> None:
    cursor.execute(
        "UPDATE sde_auditevent SET event_type = %s WHERE sequence = 5",
        [EventType.AUDIT_LOG_EXPORTED.value],
    )


def _backdate(cursor: CursorWrapper) -> None:
    cursor.execute(
        "UPDATE sde_auditevent SET occurred_at = "
        "(SELECT occurred_at FROM sde_auditevent WHERE sequence = 1) WHERE sequence = 5"
    )


def _alter_chain_hash(cursor: CursorWrapper) -> None:
    cursor.execute("UPDATE sde_auditevent SET chain_hash = %s WHERE sequence = 5", ["f" * 64])


def _rewrite_history_consistently(cursor: CursorWrapper) -> None:
    # A forger who knows the algorithm recomputes every hash after the change; only the
    # signed checkpoint (made with a key outside the database) gives them away.
    previous = _row(4)["chain_hash"]
    for sequence in range(5, 12):
        fields = _row(sequence)
        if sequence == 5:
            fields["actor_display"] = "Someone Else"
        entry = chain.entry_hash(fields)
        previous = chain.chain_hash(previous, entry)
        cursor.execute(
            "UPDATE sde_auditevent SET actor_display = %s, entry_hash = %s, chain_hash = %s "
            "WHERE sequence = %s",
            [fields["actor_display"], entry, previous, sequence],
        )


def _delete_middle(cursor: CursorWrapper) -> None:
    cursor.execute("DELETE FROM sde_auditevent WHERE sequence = 5")


def _delete_signed_tail(cursor: CursorWrapper) -> None:
    cursor.execute("DELETE FROM sde_auditevent WHERE sequence >= 10")


def _append_unlinked_copy(cursor: CursorWrapper) -> None:
    _insert_copy(cursor, of=11, sequence=12, previous_chain=chain.GENESIS_CHAIN_HASH)


def _insert_in_middle(cursor: CursorWrapper) -> None:
    # Make room at 6 (two steps: the unique constraint is checked row by row), then
    # insert a well-formed forgery linked to 5. The displaced original event 6, now
    # numbered 7, no longer matches its own entry hash.
    cursor.execute("UPDATE sde_auditevent SET sequence = sequence + 1000 WHERE sequence >= 6")
    cursor.execute("UPDATE sde_auditevent SET sequence = sequence - 999 WHERE sequence >= 1006")
    _insert_copy(cursor, of=5, sequence=6, previous_chain=_row(5)["chain_hash"])


def _swap_two_events(cursor: CursorWrapper) -> None:
    cursor.execute("UPDATE sde_auditevent SET sequence = -1 WHERE sequence = 4")
    cursor.execute("UPDATE sde_auditevent SET sequence = 4 WHERE sequence = 7")
    cursor.execute("UPDATE sde_auditevent SET sequence = 7 WHERE sequence = -1")


TAMPERING = [
    pytest.param(_alter_actor_display, 5, id="alter-actor-display"),
    pytest.param(_alter_data, 5, id="alter-data"),
    pytest.param(_alter_event_type, 5, id="alter-event-type"),
    pytest.param(_backdate, 5, id="backdate"),
    pytest.param(_alter_chain_hash, 5, id="alter-chain-hash"),
    pytest.param(_rewrite_history_consistently, 10, id="rewrite-and-rehash"),
    pytest.param(_delete_middle, 5, id="delete-middle"),
    pytest.param(_delete_signed_tail, 10, id="delete-signed-tail"),
    pytest.param(_append_unlinked_copy, 12, id="append-forged"),
    pytest.param(_insert_in_middle, 7, id="insert-forged-renumbering"),
    pytest.param(_swap_two_events, 4, id="reorder"),
]


# --- record_event's rules --------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_record_event_outside_transaction_is_refused():
    system = get_system_user()

    with pytest.raises(AuditError, match="inside the transaction"):
        record_event(event_type=EventType.AUDIT_LOG_VIEWED, actor=system)

    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("event_type", "data", "message"),
    [
        ("governance.nonsense", {}, "unknown audit event type"),
        (EventType.AUDIT_LOG_VIEWED, {"blob": "x" * services.MAX_DATA_BYTES}, "the limit is"),
        (EventType.AUDIT_LOG_VIEWED, {"note": "943 476 5919"}, "NHS-number-like"),
        (EventType.AUDIT_LOG_VIEWED, {"note": "943-476-5919"}, "NHS-number-like"),
        (EventType.AUDIT_LOG_VIEWED, {"nhs": 9434765919}, "NHS-number-like"),
        (EventType.AUDIT_LOG_VIEWED, {"people": [{"id": "9434765919"}]}, "NHS-number-like"),
    ],
)
@pytest.mark.django_db
def test_record_event_with_bad_input_is_refused(event_type, data, message):
    system = get_system_user()

    with pytest.raises(AuditError, match=message), transaction.atomic():
        record_event(event_type=event_type, actor=system, data=data)

    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"rows": 123456789},  # nine digits: a count, not an NHS number
        {"code_hash": "a9434765919b" + "0" * 52},  # digits inside a hex digest
        {"blob": "x" * (services.MAX_DATA_BYTES - len('{"blob":""}'))},  # exactly the limit
    ],
)
@pytest.mark.django_db
def test_record_event_with_ids_and_counts_is_accepted(data):
    system = get_system_user()

    with transaction.atomic():
        event = record_event(event_type=EventType.AUDIT_LOG_VIEWED, actor=system, data=data)

    assert AuditEvent.objects.get(sequence=event.sequence).data == data


@pytest.mark.django_db
def test_record_event_sequence_is_gap_free_and_verifies():
    scenarios.some_events(25)

    result = verify_audit_log()

    assert _sequences() == list(range(1, 26))
    assert result.ok, result.reason
    assert result.events_checked == 25
    assert result.merkle_root == chain.merkle_root(
        AuditEvent.objects.order_by("sequence").values_list("entry_hash", flat=True)
    )


@pytest.mark.django_db
def test_record_event_links_each_event_to_the_previous_one():
    scenarios.some_events(3)

    events = list(AuditEvent.objects.order_by("sequence"))

    assert events[0].chain_hash == chain.chain_hash(chain.GENESIS_CHAIN_HASH, events[0].entry_hash)
    for before, after in itertools.pairwise(events):
        assert after.chain_hash == chain.chain_hash(before.chain_hash, after.entry_hash)


# --- the events an action writes, atomically with it -----------------------------------
def _grant(user: User, admin: User) -> None:
    identity_services.grant_role(user=user, role=Role.OUTPUT_CHECKER, by=admin)


def _remove(user: User, admin: User) -> None:
    identity_services.grant_role(user=user, role=Role.OUTPUT_CHECKER, by=admin)
    identity_services.remove_role(user=user, role=Role.OUTPUT_CHECKER, by=admin)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (_grant, [("identity.role_granted", {"role": "output_checker"})]),
        (
            _remove,
            [
                ("identity.role_granted", {"role": "output_checker"}),
                ("identity.role_removed", {"role": "output_checker", "reason_given": False}),
            ],
        ),
    ],
)
@pytest.mark.django_db
def test_role_change_writes_exactly_its_events(action, expected):
    admin = scenarios.administrator()
    user = scenarios.person()
    mark = _mark()

    action(user, admin)

    events = _events_since(mark)
    assert [(event.event_type, event.data) for event in events] == expected
    for event in events:
        assert (event.actor_id, event.actor_display) == (admin.pk, admin.display_name)
        assert (event.target_type, event.target_id) == ("sde.user", str(user.pk))
        assert event.target_display == user.display_name


def _failing_save(self: AuditEvent, *args: Any, **kwargs: Any) -> None:
    raise DatabaseError("simulated failure of the audit insert")


def _refusing_record_event(**kwargs: Any) -> None:
    raise AuditError("simulated refusal of the audit event")


@pytest.mark.parametrize(
    ("target", "replacement", "error"),
    [
        ("sde.audit.models.AuditEvent.save", _failing_save, DatabaseError),
        ("sde.identity.services.record_event", _refusing_record_event, AuditError),
    ],
)
@pytest.mark.django_db
def test_failed_audit_write_rolls_back_the_role_grant(monkeypatch, target, replacement, error):
    admin = scenarios.administrator()
    user = scenarios.person()
    mark = _mark()
    monkeypatch.setattr(target, replacement)

    with pytest.raises(error, match="simulated"):
        identity_services.grant_role(user=user, role=Role.OUTPUT_CHECKER, by=admin)

    assert not RoleAssignment.objects.filter(user=user).exists()
    assert _events_since(mark) == []


# --- append-only at the model layer ----------------------------------------------------
def _save_existing(row: AuditEvent | AuditCheckpoint) -> None:
    row.sequence = 999
    row.save()


def _delete(row: AuditEvent | AuditCheckpoint) -> None:
    row.delete()


def _queryset_update(row: AuditEvent | AuditCheckpoint) -> None:
    type(row).objects.filter(pk=row.pk).update(sequence=999)


def _queryset_delete(row: AuditEvent | AuditCheckpoint) -> None:
    type(row).objects.filter(pk=row.pk).delete()


def _bulk_update(row: AuditEvent | AuditCheckpoint) -> None:
    row.sequence = 999
    type(row).objects.bulk_update([row], ["sequence"])


def _update_or_create(row: AuditEvent | AuditCheckpoint) -> None:
    type(row).objects.update_or_create(pk=row.pk, defaults={"sequence": 999})


def _first_event() -> AuditEvent:
    scenarios.some_events(1)
    return AuditEvent.objects.get(sequence=1)


def _first_checkpoint() -> AuditCheckpoint:
    return _signed_chain()


@pytest.mark.parametrize("service_block", [False, True], ids=["outside", "inside-service-block"])
@pytest.mark.parametrize(
    "write",
    [_save_existing, _delete, _queryset_update, _queryset_delete, _bulk_update, _update_or_create],
)
@pytest.mark.parametrize("make_row", [_first_event, _first_checkpoint])
@pytest.mark.django_db
def test_changing_audit_rows_is_refused(make_row, write, service_block):
    row = make_row()
    model = type(row)
    before = model.objects.values().get(pk=row.pk)

    with pytest.raises(GovernedWriteRefused):
        if service_block:
            with governed_writes(model):
                write(row)
        else:
            write(row)

    assert model.objects.values().get(pk=row.pk) == before


@pytest.mark.django_db
def test_inserting_audit_event_outside_record_event_is_refused():
    system = get_system_user()
    fields = {
        "sequence": 1,
        "occurred_at": "2025-01-01T00:00:00Z",
        "event_type": EventType.AUDIT_LOG_VIEWED,
        "actor_id": system.pk,
        "actor_display": "System",
        "entry_hash": "0" * 64,
        "chain_hash": "0" * 64,
    }

    with pytest.raises(GovernedWriteRefused):
        AuditEvent(**fields).save()
    with pytest.raises(GovernedWriteRefused):
        AuditEvent.objects.bulk_create([AuditEvent(**fields)])

    assert not AuditEvent.objects.exists()


# --- append-only in PostgreSQL itself ---------------------------------------------------
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE sde_auditevent SET actor_display = 'Someone Else' WHERE sequence = 5",
        "DELETE FROM sde_auditevent WHERE sequence = 5",
        "UPDATE sde_auditcheckpoint SET merkle_root = 'forged'",
        "DELETE FROM sde_auditcheckpoint",
    ],
)
@pytest.mark.django_db
def test_sql_change_to_audit_tables_is_refused_by_postgresql(postgres_only, statement):
    _signed_chain()
    events_before = list(AuditEvent.objects.order_by("sequence").values())
    checkpoints_before = list(AuditCheckpoint.objects.values())

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(statement)

    assert list(AuditEvent.objects.order_by("sequence").values()) == events_before
    assert list(AuditCheckpoint.objects.values()) == checkpoints_before


# --- tamper detection ------------------------------------------------------------------
@pytest.mark.parametrize(("tamper", "first_bad"), TAMPERING)
@pytest.mark.django_db
def test_verify_audit_after_tampering_fails_naming_first_bad_sequence(tamper, first_bad):
    _signed_chain()
    with _as_dba() as cursor:
        tamper(cursor)

    with pytest.raises(CommandError, match=f"first bad sequence number {first_bad}:"):
        call_command("verify_audit")

    recorded = _last_event()
    assert recorded.event_type == EventType.AUDIT_VERIFICATION_FAILED
    assert recorded.data["first_bad_sequence"] == first_bad


@pytest.mark.django_db
def test_verify_audit_on_untouched_log_reports_ok_and_records_it():
    _signed_chain()
    output = io.StringIO()

    call_command("verify_audit", stdout=output)

    assert "audit log OK: 11 events, 1 signed checkpoints verified" in output.getvalue()
    recorded = _last_event()
    assert recorded.sequence == 12
    assert recorded.event_type == EventType.AUDIT_VERIFICATION_PASSED
    assert recorded.data == {
        "events_checked": 11,
        "checkpoints_checked": 1,
        "first_bad_sequence": None,
        "reason": "",
    }


@pytest.mark.django_db
def test_verify_audit_with_no_record_appends_nothing():
    _signed_chain()
    with _as_dba() as cursor:
        _alter_data(cursor)

    with pytest.raises(CommandError, match="first bad sequence number 5:") as failed:
        call_command("verify_audit", "--no-record")

    assert failed.value.returncode == 1  # the exit status of manage.py verify_audit
    assert _mark() == 11


@pytest.mark.django_db
def test_events_integrity_flags_only_the_altered_event():
    _signed_chain()
    with _as_dba() as cursor:
        _alter_actor_display(cursor)
    events = list(AuditEvent.objects.order_by("sequence"))

    integrity = events_integrity(events)

    assert [item.ok for item in integrity] == [sequence != 5 for sequence in range(1, 12)]
    assert [item.checkpointed for item in integrity] == [s <= 10 for s in range(1, 12)]


# --- signed checkpoints ----------------------------------------------------------------
@pytest.mark.django_db
def test_sign_checkpoint_signs_head_of_chain():
    scenarios.some_events(5)
    system = get_system_user()
    key = audit_signing_key()

    checkpoint = sign_checkpoint(by=system)

    head = AuditEvent.objects.get(sequence=5)
    assert checkpoint is not None
    assert (checkpoint.sequence, checkpoint.chain_hash) == (5, head.chain_hash)
    assert checkpoint.merkle_root == chain.merkle_root(
        AuditEvent.objects.filter(sequence__lte=5)
        .order_by("sequence")
        .values_list("entry_hash", flat=True)
    )
    assert checkpoint.key_id == public_key_id(key.public_key())
    message = chain.checkpoint_message(
        sequence=5,
        chain_hash=head.chain_hash,
        merkle_root=checkpoint.merkle_root,
        signed_at=AuditCheckpoint.objects.get(sequence=5).signed_at,
        key_id=checkpoint.key_id,
    )
    key.public_key().verify(bytes.fromhex(checkpoint.signature), message)  # raises if bad
    [event] = _events_since(5)
    assert event.event_type == EventType.AUDIT_CHECKPOINT_SIGNED
    assert event.data == {"sequence": 5, "key_id": checkpoint.key_id}
    assert (event.target_type, event.actor_id) == ("sde.auditcheckpoint", system.pk)


@pytest.mark.django_db
def test_sign_checkpoint_twice_signs_once():
    scenarios.some_events(5)
    system = get_system_user()
    sign_checkpoint(by=system)
    mark = _mark()

    again = sign_checkpoint(by=system)

    assert again is None
    assert AuditCheckpoint.objects.count() == 1
    assert _mark() == mark


@pytest.mark.django_db
def test_sign_checkpoint_after_new_events_signs_new_head():
    scenarios.some_events(5)
    system = get_system_user()
    sign_checkpoint(by=system)
    scenarios.some_events(2)

    checkpoint = sign_checkpoint(by=system)

    assert checkpoint is not None
    assert checkpoint.sequence == 8  # 5 events, a checkpoint_signed event, 2 more events
    result = verify_audit_log()
    assert result.ok, result.reason
    assert result.checkpoints_checked == 2


@pytest.mark.django_db
def test_sign_checkpoint_of_empty_log_signs_nothing():
    assert sign_checkpoint(by=get_system_user()) is None
    assert not AuditCheckpoint.objects.exists()


@pytest.mark.django_db
def test_verify_audit_log_checks_signed_checkpoint():
    _signed_chain()

    result = verify_audit_log()

    assert result.ok, result.reason
    assert (result.events_checked, result.checkpoints_checked) == (11, 1)


def _flip_signature(checkpoint: AuditCheckpoint) -> str:
    signature = bytearray(bytes.fromhex(checkpoint.signature))
    signature[-1] ^= 0x01
    return signature.hex()


@pytest.mark.parametrize(
    ("column", "forged", "reason"),
    [
        ("signature", _flip_signature, "invalid signature"),
        ("signature", lambda checkpoint: "not hex", "invalid signature"),
        ("merkle_root", lambda checkpoint: "e" * 64, "differ from the signed checkpoint"),
        ("chain_hash", lambda checkpoint: "e" * 64, "differ from the signed checkpoint"),
        ("key_id", lambda checkpoint: "0" * 16, "invalid signature"),
    ],
)
@pytest.mark.django_db
def test_verify_audit_log_with_tampered_checkpoint_fails(column, forged, reason):
    checkpoint = _signed_chain()
    with _as_dba() as cursor:
        cursor.execute(
            f"UPDATE sde_auditcheckpoint SET {column} = %s WHERE sequence = 10",
            [forged(checkpoint)],
        )

    result = verify_audit_log()

    assert not result.ok
    assert result.first_bad_sequence == 10
    assert reason in result.reason


@pytest.mark.django_db
def test_sign_checkpoint_of_broken_chain_is_refused_and_recorded():
    scenarios.some_events(5)
    with _as_dba() as cursor:
        cursor.execute("UPDATE sde_auditevent SET data = %s WHERE sequence = 2", ['{"i": 7}'])

    with pytest.raises(AuditError, match="not signing: event 2 was altered"):
        sign_checkpoint(by=get_system_user())

    assert not AuditCheckpoint.objects.exists()
    recorded = _last_event()
    assert recorded.event_type == EventType.AUDIT_VERIFICATION_FAILED
    assert recorded.data["first_bad_sequence"] == 2


# --- scheduled work --------------------------------------------------------------------
@pytest.mark.django_db
def test_verify_audit_task_on_good_chain_records_pass(django_capture_on_commit_callbacks):
    scenarios.person(Role.IG_OFFICER)
    events = _mark()

    with django_capture_on_commit_callbacks(execute=True):
        ok = verify_audit_task()

    assert ok is True
    recorded = _last_event()
    assert recorded.event_type == EventType.AUDIT_VERIFICATION_PASSED
    assert recorded.data["events_checked"] == events
    assert mail.outbox == []


@pytest.mark.django_db
def test_verify_audit_task_on_broken_chain_records_failure_and_emails_ig(
    django_capture_on_commit_callbacks,
):
    officers = [scenarios.person(Role.IG_OFFICER) for _ in range(2)]
    scenarios.person(Role.RESEARCHER)
    with _as_dba() as cursor:
        cursor.execute("UPDATE sde_auditevent SET actor_display = 'x' WHERE sequence = 3")

    with django_capture_on_commit_callbacks(execute=True):
        ok = verify_audit_task()

    assert ok is False
    recorded = _last_event()
    assert recorded.event_type == EventType.AUDIT_VERIFICATION_FAILED
    assert recorded.data["first_bad_sequence"] == 3
    assert sorted(message.to[0] for message in mail.outbox) == sorted(o.email for o in officers)
    assert all(len(message.to) == 1 for message in mail.outbox)
    assert "FAILED" in mail.outbox[0].subject
    assert "First bad sequence number: 3." in mail.outbox[0].body


@pytest.mark.django_db
def test_record_event_enqueues_checkpoint_after_commit_every_n_events(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.SDE_AUDIT_CHECKPOINT_EVERY = 3
    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(sign_audit_checkpoint_task, "delay", lambda *args: sent.append(args))

    with django_capture_on_commit_callbacks() as callbacks:
        scenarios.some_events(7)
        assert sent == []  # nothing before commit

    assert callbacks == [services._enqueue_checkpoint] * 2  # after events 3 and 6
    for callback in callbacks:
        callback()
    assert sent == [(), ()]


# --- concurrent writers ----------------------------------------------------------------
# Each thread has its own database connection. PostgreSQL serialises writers with an
# advisory lock; SQLite with its write lock, taken at BEGIN (IMMEDIATE). Both run here.
def _write_events(
    count: int, start: threading.Barrier, errors: list[Exception], actor: User
) -> None:
    try:
        start.wait()
        for i in range(count):
            with transaction.atomic():
                record_event(
                    event_type=EventType.AUDIT_LOG_VIEWED,
                    actor=actor,
                    data={"thread": threading.get_ident() % 10_000, "i": i},
                )
    except Exception as error:  # noqa: BLE001 (the main thread reports it)
        errors.append(error)
    finally:
        connection.close()


def _run_threads(target: Callable[..., None], threads: int, *args: Any) -> bool:
    """Run ``target(*args)`` in ``threads`` threads; whether they all finished in time."""
    workers = [threading.Thread(target=target, args=args) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return not any(worker.is_alive() for worker in workers)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_produce_one_unbroken_chain():
    threads, per_thread = 8, 25
    actor = get_system_user()
    start = threading.Barrier(threads)
    errors: list[Exception] = []

    finished = _run_threads(_write_events, threads, per_thread, start, errors, actor)

    assert finished
    assert errors == []
    assert _sequences() == list(range(1, threads * per_thread + 1))
    result = verify_audit_log()
    assert result.ok, result.reason
