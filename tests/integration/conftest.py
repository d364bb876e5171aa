"""A real Celery worker process for the integration suite.

The worker is started with ``celery -A sde worker`` and an environment that points it at
the test process's own test database (the SQLite file, or the PostgreSQL test database),
broker and ``SDE_VAR_DIR`` (so both sides use the same development signing key). Tests
must commit what the worker should see, so they use
``@pytest.mark.django_db(transaction=True)``. Every wait is bounded, and every process
started here is stopped at teardown: TERM first, then KILL for the whole process group.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from sde.celery import app as celery_app

READY_TIMEOUT = 60.0  # seconds for a worker to start and report "ready"
STOP_TIMEOUT = 15.0  # seconds for a warm shutdown before the process group is killed
TASK_TIMEOUT = 30.0  # seconds for a task to show its effect in the database


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    log: Callable[[], str] | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            tail = f"\n--- worker log (tail) ---\n{log()[-4000:]}" if log else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


@dataclass
class Worker:
    """One running ``celery worker`` process (a process group of its own)."""

    process: subprocess.Popen[bytes]
    log_path: Path
    nodename: str = ""  # e.g. sde-test-1a2b3c4d@host, known once it is ready
    stopped: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, *, timeout: float = TASK_TIMEOUT) -> re.Match[str]:
        """The first match of the regular expression ``pattern`` in the worker's log."""
        compiled = re.compile(pattern)

        def found() -> re.Match[str] | None:
            if self.process.poll() is not None:
                pytest.fail(
                    f"worker exited with {self.process.returncode} while waiting for "
                    f"{pattern!r}\n--- worker log ---\n{self.log()[-4000:]}"
                )
            return compiled.search(self.log())

        return wait_until(found, timeout=timeout, what=f"{pattern!r} in the log", log=self.log)

    def executing(self, task_id: str) -> int | None:
        """The pid of the pool process executing ``task_id`` (asked over the broker with
        remote control), or None if the worker is not executing it now."""
        inspector = celery_app.control.inspect(destination=[self.nodename], timeout=3.0)
        for tasks in (inspector.active() or {}).values():
            for task in tasks:
                if task["id"] == task_id and task.get("worker_pid"):
                    return int(task["worker_pid"])
        return None

    def stop(self) -> None:
        """Warm shutdown (TERM to the main process), then KILL whatever is left of the
        process group (prefork children included). Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the whole group has already gone
        self.process.wait(timeout=STOP_TIMEOUT)


def _database_environment() -> dict[str, str]:
    """Point the worker at the database the test process is using right now (after
    pytest-django switched to the test database)."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SDE_SQLITE_PATH": str(config["NAME"])}
    if connection.vendor == "postgresql":
        credentials = quote(config["USER"] or "", safe="")
        if config["PASSWORD"]:
            credentials += ":" + quote(config["PASSWORD"], safe="")
        host = config["HOST"] or "localhost"
        port = f":{config['PORT']}" if config["PORT"] else ""
        return {
            "DATABASE_URL": (
                f"postgres://{credentials}@{host}{port}/{quote(config['NAME'], safe='')}"
            )
        }
    raise RuntimeError(f"no worker environment for database vendor {connection.vendor!r}")


def worker_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "SDE_SQLITE_PATH"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "sde.settings",
            "SDE_VAR_DIR": str(settings.VAR_DIR),
            "SDE_KEY_DIR": str(settings.SDE_KEY_DIR),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(_database_environment())
    env.update(extra or {})
    return env


def purge_queue() -> None:
    """Drop messages left over from earlier runs, so only this test's tasks run."""
    celery_app.control.purge()
    if settings.CELERY_BROKER_URL.startswith("redis"):
        # Unacknowledged deliveries of a killed earlier run would be restored into the
        # queue part-way through a test; this Redis database belongs to the test run.
        with celery_app.connection_for_write() as conn:
            client = conn.default_channel.client
            client.delete("unacked", "unacked_index", "unacked_mutex")


def _celery_executable() -> str:
    candidate = Path(sys.executable).with_name("celery")
    return str(candidate) if candidate.exists() else "celery"


@dataclass
class WorkerStarter:
    log_dir: Path
    workers: list[Worker] = field(default_factory=list)

    def __call__(
        self,
        *,
        pool: str = "solo",
        loglevel: str = "INFO",
        env: dict[str, str] | None = None,
    ) -> Worker:
        name = f"sde-test-{uuid.uuid4().hex[:8]}"
        hostname = f"{name}@%h"
        log_path = self.log_dir / f"worker-{len(self.workers) + 1}.log"
        command = [
            _celery_executable(),
            "-A",
            "sde",
            "worker",
            f"--pool={pool}",
            "--concurrency=1",
            f"--loglevel={loglevel}",
            f"--hostname={hostname}",
            # Nothing to gossip or mingle with: this worker is alone, and starts faster.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=worker_environment(env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, so teardown gets children
            )
        worker = Worker(process=process, log_path=log_path)
        self.workers.append(worker)
        atexit.register(worker.stop)  # should pytest itself be interrupted mid-test
        ready = worker.wait_for_log(rf"({name}@\S+) ready\.", timeout=READY_TIMEOUT)
        worker.nodename = ready.group(1)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def start_worker(transactional_db: None, tmp_path: Path) -> Iterator[WorkerStarter]:
    """Start real worker processes on demand (``start_worker(pool=..., env=...)``); all
    of them are stopped at teardown. The queue is purged first."""
    purge_queue()
    starter = WorkerStarter(log_dir=tmp_path)
    try:
        yield starter
    finally:
        starter.stop_all()


@pytest.fixture
def celery_worker(start_worker: WorkerStarter) -> Worker:
    """One running worker with the project's settings (solo pool)."""
    return start_worker()
