"""The audit tasks executed by a real Celery worker process, on the real broker and the
shared test database."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.db import connection, transaction

from sde.audit.events import EventType
from sde.audit.models import AuditCheckpoint, AuditEvent
from sde.audit.selectors import verify_audit_log
from sde.audit.services import AUDIT_LOCK_KEY, get_system_user, record_event
from sde.tasks import verify_audit_task
from tests.integration.conftest import TASK_TIMEOUT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _verified_events() -> int:
    return AuditEvent.objects.filter(event_type=EventType.AUDIT_VERIFICATION_PASSED).count()


class _Rollback(Exception):
    pass


def test_verify_audit_task_run_by_worker_records_verification(celery_worker):
    system = get_system_user()
    with transaction.atomic():
        record_event(event_type=EventType.AUDIT_LOG_VIEWED, actor=system, data={"n": 1})

    verify_audit_task.delay()

    wait_until(_verified_events, timeout=TASK_TIMEOUT, what="an audit_verified event")
    event = AuditEvent.objects.get(event_type=EventType.AUDIT_VERIFICATION_PASSED)
    assert event.actor_id == system.pk
    assert event.data["events_checked"] == 1
    assert event.data["first_bad_sequence"] is None
    assert verify_audit_log().ok


def test_every_nth_event_enqueues_checkpoint_after_commit_and_worker_signs_it(
    start_worker, settings
):
    settings.SDE_AUDIT_CHECKPOINT_EVERY = 3
    worker = start_worker(env={"SDE_AUDIT_CHECKPOINT_EVERY": "3"})
    system = get_system_user()

    with transaction.atomic():
        for n in range(3):
            record_event(event_type=EventType.AUDIT_LOG_VIEWED, actor=system, data={"n": n})
        time.sleep(1.5)  # longer than the worker's broker polling interval
        assert "received" not in worker.log()  # nothing is sent before the commit

    checkpoint = wait_until(
        lambda: AuditCheckpoint.objects.filter(sequence=3).first(),
        timeout=TASK_TIMEOUT,
        what="a signed checkpoint at sequence 3",
    )
    assert AuditEvent.objects.filter(
        event_type=EventType.AUDIT_CHECKPOINT_SIGNED, data__sequence=3
    ).exists()
    result = verify_audit_log()
    assert result.ok, result.reason
    assert result.checkpoints_checked >= 1
    assert checkpoint.chain_hash == AuditEvent.objects.get(sequence=3).chain_hash


def test_task_enqueued_in_rolled_back_transaction_never_runs(celery_worker):
    system = get_system_user()

    with pytest.raises(_Rollback), transaction.atomic():
        record_event(event_type=EventType.AUDIT_LOG_VIEWED, actor=system, data={"n": 1})
        transaction.on_commit(verify_audit_task.delay)
        raise _Rollback

    # A barrier: one worker takes tasks in queue order, so once this later task has run,
    # the rolled-back one would have run before it, had it ever been sent.
    verify_audit_task.delay()
    wait_until(_verified_events, timeout=TASK_TIMEOUT, what="the barrier task's event")
    time.sleep(1.0)  # and nothing else turns up
    assert _verified_events() == 1
    assert not AuditEvent.objects.filter(event_type=EventType.AUDIT_LOG_VIEWED).exists()


def _waiting_for_chain_lock() -> bool:
    """PostgreSQL shows the waiting advisory lock; SQLite shows nothing from outside, so
    give the task a moment to reach its write (it is executing either way)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND objid = %s AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())",
                [AUDIT_LOCK_KEY],
            )
            return cursor.fetchone()[0] > 0
    time.sleep(1.0)
    return True


def test_task_killed_mid_run_is_redelivered_and_runs_once(start_worker):
    # The prefork pool, as `make run` uses: killing the pool process that executes the
    # task is what task_reject_on_worker_lost covers (acks_late alone would acknowledge
    # it as failed). Killing the whole worker is not tested: the filesystem broker drops
    # a message once delivered, and Redis redelivers only after the visibility timeout.
    worker = start_worker(pool="prefork")
    system = get_system_user()

    with transaction.atomic():
        # Hold the audit chain's write lock, so the task blocks when it records its result.
        record_event(event_type=EventType.AUDIT_LOG_VIEWED, actor=system, data={"n": 1})
        task_id = verify_audit_task.delay().id
        child = wait_until(
            lambda: worker.executing(task_id),
            timeout=TASK_TIMEOUT,
            what="the worker to start the task",
            log=worker.log,
        )
        wait_until(_waiting_for_chain_lock, timeout=TASK_TIMEOUT, what="the task to block")
        os.kill(child, signal.SIGKILL)
        worker.wait_for_log(rf"pid:{child} exited with 'signal 9 \(SIGKILL\)'")

    worker.wait_for_log(rf"Task sde\.tasks\.verify_audit_task\[{task_id}\] succeeded")
    assert _verified_events() == 1
    assert "WorkerLostError" in worker.log()
    result = verify_audit_log()
    assert result.ok, result.reason
