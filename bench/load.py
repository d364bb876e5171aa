"""Load test: many people browsing the pages at once, on the production stack, on loopback.

    .venv/bin/python bench/load.py [--users U] [--seconds S] [--quick] [--patients N]
        [--projects P] [--max-requests R] [--keep]

Runs gunicorn (``sde.wsgi``, 2 workers x 4 threads as ``scripts/run.sh``, without its
access log) against a PostgreSQL database of its own (``sde_load`` on 127.0.0.1:5432, user
postgres; created here, dropped at the end) and Redis db 13 on 127.0.0.1:6379 as the
Celery broker (flushed at the start and the end; no worker runs: the pages need none).
DEBUG is off, as in production; the SSL redirect is off because loopback has no TLS. Local
state (keys, data root) lives in ``var/load``, removed at the end unless ``--keep``.
Everything stops at the end, on an error and on Ctrl-C.

The world is made through the services, as a person would make it: N synthetic people
(default 20,000, two GP practices) generated and ingested; P projects (default 6; the
first for planning, the rest research) with their extracts built, each with a real script
job run in the sandbox on its real extract and a release request for the job's table
submitted to the output checkers; the planning project's cohort job (direct care); 10
access requests submitted for IG review; 10,000 older audit events. Each simulated person
has an account of their own (password and TOTP device), except the anonymous public.

Each of U simulated people (default 50) signs in through the real pages (the password
form, then the MFA form with the device's current TOTP code), then browses one round of
its pages as a warm-up, which also checks that every page answers; neither is measured.
Then two phases, everyone at once, with no think time, each person on one keep-alive
connection:

  (a) the baseline alone, for a quarter of S (at least 5 s): everyone loops on
      ``/favicon.ico``, the project's most minimal view (no template, no query of its own:
      an empty 204) through the same middleware stack (session load and save for
      signed-in people, authentication, MFA gate, security headers): what the stack
      itself serves;
  (b) the pages, for S seconds (default 60): each person loops over its pages, and the
      baseline once per round, so that the baseline sees the same load as the pages:

        researcher   their project's workspace, their project's release requests
        checker      the output-checking queue
        IG officer   the access-request review queue, the audit log
        clinician    the direct care page
        anonymous    the public transparency register, /healthz (database, broker, data)

Per page: requests, errors, requests per second, p50/p95/p99 latency (the client's, from
sending the request to reading the whole answer) and each percentile as a ratio to the
baseline's in the same phase. Any answer other than the page's expected status (200; 204
for the baseline) is an error, and the run exits 1 if there is any. Bounded: at most R
requests in all (default 200,000), each with a 30 s socket timeout; threads that overrun
the window by more than that are abandoned and the run fails. The client shares the
machine with the server: on 2 CPUs its 50 threads take part of the capacity measured.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from load_people import (  # beside this script
    BASELINE,
    Person,
    Sample,
    one_at_a_time,
    people_of,
    phase,
)
from load_world import MIX, World, counts, seed  # bench/load_world.py, beside this script
from measure import machine  # bench/measure.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/13"
WORKERS, THREADS = 2, 4  # scripts/run.sh


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="simulated people (default 50)")
    parser.add_argument("--seconds", type=float, default=60, help="measured window (default 60)")
    parser.add_argument("--patients", type=int, default=20_000, help="synthetic people")
    parser.add_argument("--projects", type=int, default=6, help="projects (default 6)")
    parser.add_argument("--audit-events", type=int, default=10_000, help="older audit events")
    parser.add_argument("--access-requests", type=int, default=10, help="submitted (default 10)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="bound on all requests")
    parser.add_argument("--rounds", type=int, default=30, help="of (c), one at a time")
    parser.add_argument("--database", default="sde_load", help="made and dropped here")
    parser.add_argument("--keep", action="store_true", help="keep var/load (keys, data root)")
    parser.add_argument(
        "--quick", action="store_true", help="10 people, 10 s, 2,000 patients, 3 projects"
    )
    args = parser.parse_args()
    if args.quick:
        args.users, args.seconds, args.patients, args.projects = 10, 10, 2_000, 3
        args.audit_events, args.access_requests, args.rounds = 1_000, 3, 10
    if not re.fullmatch(r"[a-z_]*load[a-z_0-9]*", args.database):
        parser.error("--database must be a plain name containing 'load' (it is dropped)")
    return args


# --- The stack ----------------------------------------------------------------------------
def _environment(args: argparse.Namespace, var_dir: Path) -> dict[str, str]:
    """For this process (the seed) and gunicorn alike."""
    return {
        "DJANGO_SETTINGS_MODULE": "sde.settings",
        "SDE_ENV": "development",  # development keys, generated into var/load/keys
        "SDE_DEBUG": "0",
        "SDE_DEMO_MODE": "0",
        "SDE_SSL_REDIRECT": "0",
        "SDE_VAR_DIR": str(var_dir),
        "SDE_DATA_ROOT": str(var_dir / "data"),
        "SDE_KEY_DIR": str(var_dir / "keys"),
        "SDE_ATTACHMENT_ROOT": str(var_dir / "attachments"),
        "DATABASE_URL": f"{POSTGRES}/{args.database}",
        "CELERY_BROKER_URL": REDIS,
        "SDE_LOG_LEVEL": "WARNING",
        "SDE_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }


def _admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


def _flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS).flushdb()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _gunicorn(env: dict[str, str], var_dir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """gunicorn on a free loopback port, answering /healthz; always stopped after."""
    port = _free_port()
    log = (var_dir / "gunicorn.log").open("wb")
    command = [str(ROOT / ".venv/bin/gunicorn"), "sde.wsgi", "--bind", f"127.0.0.1:{port}",
               "--workers", str(WORKERS), "--threads", str(THREADS)]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"gunicorn exited ({server.returncode}); see {log.name}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not answer /healthz in 60 s; see {log.name}")
            time.sleep(0.3)
        yield port, server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # its own session: the master and workers
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=5)
        log.close()


# --- Where the CPU went -----------------------------------------------------------------
def _ticks(pid: int) -> int:
    """User + system clock ticks of a process (0 if it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _cpu(server: int, database: str) -> dict[str, Any]:
    """CPU so far, in ticks: each gunicorn process, each PostgreSQL backend of the load
    database, this client, and the whole machine's busy time (every process, ours or not)."""
    from django.db import connection

    children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database])
        backends = [row[0] for row in cursor.fetchall()]
    times = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return {
        "gunicorn": {pid: _ticks(pid) for pid in [server, *map(int, children)]},
        "postgres": {pid: _ticks(pid) for pid in backends},
        "client": _ticks(os.getpid()),
        "machine": sum(times) - times[3] - times[4],  # all but idle and iowait
    }


def _cpu_line(before: dict[str, Any], after: dict[str, Any], requests: int, elapsed: float) -> str:
    tick = os.sysconf("SC_CLK_TCK")

    def spent(part: str) -> float:
        if isinstance(after[part], int):
            return float(after[part] - before[part]) / tick
        return sum(t - before[part].get(pid, 0) for pid, t in after[part].items()) / tick

    server, database, client = spent("gunicorn"), spent("postgres"), spent("client")
    capacity = (os.cpu_count() or 1) * elapsed
    ours = (server + database + client) / capacity
    return (f"    CPU: gunicorn {server:.1f}s ({server / requests * 1000:.1f} ms a request), "
            f"PostgreSQL {database:.1f}s ({database / requests * 1000:.1f} ms), this client "
            f"{client:.1f}s; the machine was {spent('machine') / capacity:.0%} busy, "
            f"{ours:.0%} of it ours")  # fmt: skip


# --- The report ---------------------------------------------------------------------------
def _percentile(ordered: list[float], q: float) -> float:
    """Nearest rank."""
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


def _table(samples: list[Sample], elapsed: float) -> int:
    """Print a row per page, with its percentiles as ratios to the baseline's; return the
    number of failed requests."""
    by_page: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for label, seconds, ok in samples:
        by_page[label].append(seconds * 1000)
        errors[label] += 0 if ok else 1
    order = [BASELINE, *sorted(p for p in by_page if p != BASELINE)]
    stats = {label: [_percentile(sorted(by_page[label]), q) for q in (0.5, 0.95, 0.99)]
             for label in order if by_page[label]}  # fmt: skip
    base = stats.get(BASELINE, [float("nan")] * 3)
    for label in order:
        if label not in stats:
            continue
        p50, p95, p99 = stats[label]
        n = len(by_page[label])
        print(f"      {label:<24} {n:>8,} {errors[label]:>6} {n / elapsed:>7.1f}   "
              f"{p50:>7.1f} {p95:>7.1f} {p99:>7.1f}   "
              f"{p50 / base[0]:4.1f}x {p95 / base[1]:4.1f}x {p99 / base[2]:4.1f}x")  # fmt: skip
    total, failed = len(samples), sum(errors.values())
    print(f"      {'all':<24} {total:>8,} {failed:>6} {total / elapsed:>7.1f}")
    return failed


HEADER = (f"      {'page':<24} {'requests':>8} {'errors':>6} {'req/s':>7}   {'p50 ms':>7} "
          f"{'p95 ms':>7} {'p99 ms':>7}   ratio to the baseline's p50 p95 p99")  # fmt: skip


def _describe(args: argparse.Namespace, world: World, people: list[Person],
              size: dict[str, int], versions: str) -> None:  # fmt: skip
    import django

    kinds = ", ".join(f"{len(world.people[k])} {k}" for k in dict.fromkeys(MIX))
    print("sde load test (gunicorn + PostgreSQL + Redis on loopback)")
    print(f"  machine   {machine()}")
    print(
        f"  python    {platform.python_version()}, Django {django.get_version()}, "
        f"gunicorn {_version('gunicorn')} ({WORKERS} workers x {THREADS} threads), {versions}"
    )
    print(f"  data      {size['patients']:,} patients; {size['projects']} projects; "
          f"{size['jobs']} jobs; {size['release requests']} release requests and "
          f"{size['access requests']} access requests submitted; {size['people']} people; "
          f"{size['audit events']:,} audit events (seeded in {size['seconds']}s)")  # fmt: skip
    print(f"  load      {len(people)} people ({kinds}), signed in and warmed up before the "
          f"clock; no think time; at most {args.max_requests:,} requests")  # fmt: skip
    print(f"  load avg  {os.getloadavg()[0]:.1f} (1 min) before the clock")
    print(flush=True)


def main() -> None:
    args = _parse_args()
    var_dir = ROOT / "var" / "load"
    if var_dir.exists():
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True)
    env = _environment(args, var_dir)
    os.environ.update(env)
    _admin_sql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
    _admin_sql(f"CREATE DATABASE {args.database}")
    _flush_redis()
    failed, stuck = 0, False
    try:
        import django

        django.setup()
        import redis
        from django.core.management import call_command
        from django.db import connection

        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        world = seed(args, var_dir)
        size = {**world.size, **counts(), "seconds": round(time.perf_counter() - started)}
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            postgres = str(cursor.fetchone()[0]).split()[0]  # type: ignore[index]
        versions = (f"PostgreSQL {postgres}, "
                    f"Redis {redis.Redis.from_url(REDIS).info()['redis_version']}")  # fmt: skip
        with _gunicorn(env, var_dir) as (port, server):
            people = people_of(world, port)
            for person in people:  # the warm-up round, which also checks every page
                for label, path, expected in person.pages:
                    status, _, _ = person.browser.request("GET", path)
                    if status != expected:
                        raise SystemExit(f"warm-up: {label} {path} answered {status}")
            _describe(args, world, people, size, versions)
            alone = max(5.0, args.seconds / 4)
            before = _cpu(server.pid, args.database)
            samples, failures, elapsed, stuck = phase(people, alone, args.max_requests,
                                                       baseline_only=True)  # fmt: skip
            cpu = _cpu_line(before, _cpu(server.pid, args.database), len(samples), elapsed)
            print(f"(a) the baseline alone: everyone loops on /favicon.ico for {elapsed:.1f}s")
            print(HEADER)
            failed = _table(samples, elapsed)
            print(cpu, end="\n\n", flush=True)
            before = _cpu(server.pid, args.database)
            samples, more, elapsed, late = phase(people, args.seconds, args.max_requests,
                                                  baseline_only=False)  # fmt: skip
            cpu = _cpu_line(before, _cpu(server.pid, args.database), len(samples), elapsed)
            print(f"(b) the pages: everyone loops over their pages and the baseline for "
                  f"{elapsed:.1f}s; ratios to the baseline in this phase")  # fmt: skip
            print(HEADER)
            errors = _table(samples, elapsed)
            print(cpu, end="\n\n", flush=True)
            before = _cpu(server.pid, args.database)
            samples, elapsed = one_at_a_time(people, args.rounds)
            cpu = _cpu_line(before, _cpu(server.pid, args.database), len(samples), elapsed)
            print(f"(c) one at a time: one person of each kind, each page {args.rounds} times, "
                  f"nothing else in flight ({elapsed:.1f}s); the baseline is a signed-in "
                  "person's")  # fmt: skip
            print(HEADER)
            failed += _table(samples, elapsed)
            print(cpu)
            failed, stuck, failures = failed + errors, stuck or late, failures + more
            after = counts()["audit events"]
        print(f"    audit events {size['audit events']:,} -> {after:,} (page views record "
              f"events); load average {os.getloadavg()[0]:.1f} after; "
              f"{sum(p.browser.reconnects for p in people)} reconnects")  # fmt: skip
        for failure in failures[:10]:
            print(f"    error: {failure}")
    finally:
        from django.db import connections

        connections.close_all()
        _admin_sql(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
        _flush_redis()
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)
    if stuck:
        raise SystemExit("some simulated people did not stop in time")
    if failed:
        raise SystemExit(f"{failed} requests failed")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
