"""Audit log benchmark: what the hash chain and its lock cost, and how fast it verifies.

    python bench/audit.py [--events N] [--sample M]

Runs against its own throwaway database: a temporary SQLite file when DATABASE_URL is
unset, otherwise ``<name>_bench`` on the same PostgreSQL server (created and dropped
here). In one run it measures

  (a) appending events through ``record_event`` (entry hash, chain hash, lock, read of
      the head), 1000 per transaction for N events and one per transaction for M;
  (b) the same rows inserted with the plain ORM into the same table without hashing or
      locking, in the same transaction patterns (inside ``governed_writes``);
  (c) ``verify_audit_log()`` over the N chained events,

and prints events per second and the ratio of (a) to (b). Checkpoint signing is switched
off (it would enqueue Celery tasks); DEBUG is off, as in production.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BATCH = 1000
SEED = 20250301


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="N (default 100000)")
    parser.add_argument(
        "--sample",
        type=int,
        default=2_000,
        help="events in the one-transaction-per-event runs (default 2000)",
    )
    return parser.parse_args()


@contextmanager
def _throwaway_database() -> Iterator[str]:
    """Set Django up on a database of its own; yield a description of it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sde.settings")
    os.environ["SDE_DEBUG"] = "0"  # DEBUG keeps every query in memory
    os.environ["SDE_AUDIT_CHECKPOINT_EVERY"] = str(10**15)  # no Celery tasks
    sqlite_dir = None
    if not os.environ.get("DATABASE_URL"):
        sqlite_dir = tempfile.mkdtemp(prefix="sde-bench-")
        os.environ["SDE_SQLITE_PATH"] = str(Path(sqlite_dir) / "bench.sqlite3")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    try:
        if sqlite_dir is not None:
            call_command("migrate", verbosity=0)
            version = connection.Database.sqlite_version
            yield f"sqlite {version} ({connection.settings_dict['NAME']})"
        else:
            original = connection.settings_dict["NAME"]
            connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{original}_bench"
            connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SHOW server_version")
                    version = cursor.fetchone()[0]
                yield f"postgresql {version} ({connection.settings_dict['NAME']})"
            finally:
                connection.creation.destroy_test_db(original, verbosity=0)
    finally:
        connection.close()
        if sqlite_dir is not None:
            shutil.rmtree(sqlite_dir, ignore_errors=True)


# --- realistic events ------------------------------------------------------------------
def _hex(rng: random.Random) -> str:
    return hashlib.sha256(rng.randbytes(16)).hexdigest()


def _event_specs(count: int, actors: list[Any], rng: random.Random) -> list[dict[str, Any]]:
    """A plausible day's mix: sign-ins, page views, jobs, outputs, governance."""
    from sde.audit.events import EventType

    def person(actor: Any) -> dict[str, Any]:
        return {
            "target_type": "sde.user",
            "target_id": str(actor.pk),
            "target_display": actor.display_name,
        }

    def project(n: int) -> dict[str, Any]:
        return {"target_type": "sde.project", "target_id": str(n), "target_display": f"Project {n}"}

    def job(n: int) -> dict[str, Any]:
        return {"target_type": "sde.job", "target_id": str(n), "target_display": f"Job {n}"}

    kinds: list[
        tuple[int, EventType, Callable[[Any, int], tuple[dict[str, Any], dict[str, Any]]]]
    ] = [
        (20, EventType.LOGIN_SUCCEEDED, lambda a, p: (person(a), {"method": "password"})),
        (3, EventType.LOGIN_FAILED, lambda a, p: (person(a), {"reason": "bad_password"})),
        (18, EventType.MFA_VERIFIED, lambda a, p: (person(a), {"device": "totp"})),
        (20, EventType.PROJECT_WORKSPACE_VIEWED, lambda a, p: (project(p), {})),
        (
            8,
            EventType.JOB_SUBMITTED,
            lambda a, p: (
                job(rng.randrange(1, 50_000)),
                {
                    "code_hash": _hex(rng),
                    "extract_id": rng.randrange(1, 900),
                    "parameters": {"seed": rng.randrange(100)},
                },
            ),
        ),
        (
            8,
            EventType.JOB_FINISHED,
            lambda a, p: (
                job(rng.randrange(1, 50_000)),
                {"exit_code": 0, "seconds": rng.randrange(5, 4000), "outputs": rng.randrange(1, 9)},
            ),
        ),
        (
            6,
            EventType.OUTPUT_FILE_VIEWED,
            lambda a, p: (
                {
                    "target_type": "outputs.releasefile",
                    "target_id": str(rng.randrange(1, 20_000)),
                    "target_display": f"table_{rng.randrange(1, 30)}.csv",
                },
                {"sha256": _hex(rng)},
            ),
        ),
        (
            5,
            EventType.RELEASED_FILE_DOWNLOADED,
            lambda a, p: (
                {
                    "target_type": "outputs.releasefile",
                    "target_id": str(rng.randrange(1, 20_000)),
                    "target_display": "figure_2.png",
                },
                {"bytes": rng.randrange(1_000, 2_000_000)},
            ),
        ),
        (
            4,
            EventType.EXTRACT_BUILT,
            lambda a, p: (
                project(p),
                {
                    "dataset_versions": sorted(rng.sample(range(1, 400), 3)),
                    "optout_snapshot": rng.randrange(1, 60),
                    "people_removed": rng.randrange(0, 40_000),
                },
            ),
        ),
        (
            3,
            EventType.REQUEST_SUBMITTED,
            lambda a, p: (project(p), {"version": rng.randrange(1, 6)}),
        ),
        (
            2,
            EventType.ROLE_GRANTED,
            lambda a, p: (person(rng.choice(actors)), {"role": "researcher"}),
        ),
        (
            3,
            EventType.AUDIT_LOG_VIEWED,
            lambda a, p: ({}, {"filters": {"event_type": "", "project": p}, "page": 1}),
        ),
    ]
    weights = [weight for weight, _, _ in kinds]
    specs = []
    for _ in range(count):
        _, event_type, make = rng.choices(kinds, weights)[0]
        actor = rng.choice(actors)
        project_id = rng.randrange(1, 300)
        target, data = make(actor, project_id)
        specs.append(
            {
                "event_type": event_type,
                "actor": actor,
                "project_id": project_id,
                "data": data,
                **target,
            }
        )
    return specs


def _actors(count: int) -> list[Any]:
    from sde.identity.models import User

    users = []
    for n in range(count):
        user = User(username=f"bench{n}", first_name="Bench", last_name=f"Person {n}")
        user.set_unusable_password()
        users.append(user)
    User.objects.bulk_create(users)
    return list(User.objects.filter(username__startswith="bench").order_by("pk"))


# --- the runs --------------------------------------------------------------------------
def _plain_row(spec: dict[str, Any], sequence: int) -> Any:
    from django.utils import timezone

    from sde.audit.models import AuditEvent

    actor = spec["actor"]
    return AuditEvent(
        sequence=sequence,
        occurred_at=timezone.now(),
        event_type=str(spec["event_type"]),
        actor_id=actor.pk,
        actor_display=actor.display_name[:200],
        target_type=spec.get("target_type", ""),
        target_id=spec.get("target_id", ""),
        target_display=spec.get("target_display", "")[:200],
        project_id=spec["project_id"],
        data=spec["data"],
        entry_hash="0" * 64,
        chain_hash="0" * 64,
    )


def _batches(specs: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(specs), size):
        yield specs[start : start + size]


def _record(specs: list[dict[str, Any]], per_transaction: int) -> None:
    from django.db import transaction

    from sde.audit.services import record_event

    for batch in _batches(specs, per_transaction):
        with transaction.atomic():
            for spec in batch:
                record_event(**spec)


def _plain_save(specs: list[dict[str, Any]], per_transaction: int, first: int) -> None:
    from django.db import transaction

    from sde.audit.models import AuditEvent
    from sde.governance import governed_writes

    sequence = first
    for batch in _batches(specs, per_transaction):
        with transaction.atomic(), governed_writes(AuditEvent):
            for spec in batch:
                _plain_row(spec, sequence).save()
                sequence += 1


def _plain_bulk(specs: list[dict[str, Any]], per_transaction: int, first: int) -> None:
    from django.db import transaction

    from sde.audit.models import AuditEvent
    from sde.governance import governed_writes

    sequence = first
    for batch in _batches(specs, per_transaction):
        rows = [_plain_row(spec, sequence + offset) for offset, spec in enumerate(batch)]
        sequence += len(rows)
        with transaction.atomic(), governed_writes(AuditEvent):
            AuditEvent.objects.bulk_create(rows)


def _empty_audit_table() -> None:
    """Between runs, so every run starts from the same table size (a benchmark database:
    on PostgreSQL TRUNCATE is not refused by the append-only row trigger)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE sde_auditevent")
        else:
            cursor.execute("DELETE FROM sde_auditevent")


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    args = _parse_args()
    n, sample = args.events, min(args.sample, args.events)
    with _throwaway_database() as database:
        import django
        from django.db import connection

        from sde.audit.models import AuditEvent
        from sde.audit.selectors import verify_audit_log

        rng = random.Random(SEED)
        actors = _actors(200)
        specs = _event_specs(n, actors, rng)
        sample_specs = _event_specs(sample, actors, rng)

        print("sde audit log benchmark")
        print(f"  database  {database}")
        print(f"  events    N = {n:,}; one-transaction-per-event sample M = {sample:,}")
        print(f"  python    {platform.python_version()}, Django {django.get_version()}")
        print(f"  machine   {os.cpu_count()} CPUs, {platform.machine()} {platform.system()}")
        print(flush=True)

        results: list[tuple[str, int, float]] = []

        def run(label: str, count: int, action: Callable[[], Any]) -> float:
            seconds, _ = _timed(action)
            results.append((label, count, seconds))
            print(f"  ... {label}: {seconds:.2f}s", file=sys.stderr)
            return seconds

        # Plain inserts first, each on an empty table, then the chain the verifier reads.
        plain_batch = run(
            f"plain save(), {BATCH}/transaction", n, lambda: _plain_save(specs, BATCH, 1)
        )
        _empty_audit_table()
        run(f"plain bulk_create, {BATCH}/transaction", n, lambda: _plain_bulk(specs, BATCH, 1))
        _empty_audit_table()
        chained_batch = run(f"record_event, {BATCH}/transaction", n, lambda: _record(specs, BATCH))
        verify_seconds, result = _timed(verify_audit_log)
        if not result.ok or result.events_checked != n:
            raise SystemExit(f"benchmark chain did not verify: {result.reason}")
        # Per-event transactions, both on a table already holding the N chained events.
        chained_single = run(
            "record_event, 1/transaction", sample, lambda: _record(sample_specs, 1)
        )
        first_plain = n + sample + 1
        plain_single = run(
            "plain save(), 1/transaction", sample, lambda: _plain_save(sample_specs, 1, first_plain)
        )
        results.append(("verify_audit_log()", n, verify_seconds))
        if AuditEvent.objects.count() != n + 2 * sample:
            raise SystemExit("benchmark table holds an unexpected number of events")
        vendor = connection.vendor

    order = [2, 0, 1, 3, 4, 5]  # chained next to its plain baselines
    width = max(len(label) for label, _, _ in results)
    print(f"  {'operation':<{width}}  {'events':>9}  {'seconds':>8}  {'events/s':>9}")
    for label, count, seconds in (results[i] for i in order):
        print(f"  {label:<{width}}  {count:>9,}  {seconds:>8.2f}  {count / seconds:>9,.0f}")
    print()
    print(f"  record_event against plain save() on {vendor} (time ratio; throughput share):")
    for label, chained, plain in [
        (f"{BATCH} per transaction", chained_batch, plain_batch),
        ("1 per transaction", chained_single, plain_single),
    ]:
        print(
            f"    {label:<22} {chained / plain:5.2f}x the time; {plain / chained:4.0%} of the rate"
        )


if __name__ == "__main__":
    main()
