"""Analysis jobs run by a real Celery worker process on the real broker: a job runs to
the end; a worker killed mid-job leaves it visible and is recovered by the sweeper with
no half-written outputs registered; a submission made while the broker is down is kept
and runs once the broker is back.

The project and its extracts are made in this process (and committed) before the worker
starts, which shares the test database and the private data root."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from sde.analysis import sandbox, services
from sde.analysis.models import Job
from sde.audit.events import EventType as E
from sde.data import files
from sde.identity.models import User
from sde.projects.models import Project
from tests.events import mark, types_since
from tests.integration.conftest import TASK_TIMEOUT, Worker, WorkerStarter, wait_until
from tests.unit.sde.analysis import conftest as analysis_fixtures
from tests.unit.sde.projects import conftest as project_fixtures

# The unit tests' fixtures: a private data root (autouse) and the catalogue, an ingested
# synthetic drop, and an active project whose extracts are built.
data_root, ig, member = project_fixtures.data_root, project_fixtures.ig, project_fixtures.member
organisation, ingested = project_fixtures.organisation, project_fixtures.ingested
make_project = project_fixtures.make_project
# (built by each test: these tests commit, so they cannot share the unit tests' project)
drop_dir, project = analysis_fixtures.drop_dir, analysis_fixtures.built_project

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
S = Job.Status
BY_SEX = """\
import sdelib
people = sdelib.read("patients")
sdelib.table(people, by=["sex"], name="people_by_sex", title="People by sex")
"""
# Writes a first file, then sleeps long enough to be killed in the middle.
KILLABLE = """\
import time
open("partial.csv", "w").write("half,written\\n")
time.sleep(8)
open("table.csv", "w").write("sex,people\\nF,10\\n")
"""


def start(start_worker: WorkerStarter) -> Worker:
    """A worker that uses this test's data root (and, through the conftest, its database,
    key folder and broker)."""
    return start_worker(env={"SDE_DATA_ROOT": str(settings.SDE_DATA_ROOT)})


def submit(project: Project, by: User, code: str, *, on_dummy: bool = False) -> Job:
    script = services.save_script(project=project, name="analysis.py", content=code, by=by)
    return services.submit_job(project=project, by=by, on_dummy=on_dummy, script=script)


def finished(job: Job, worker: Worker, *, timeout: float = 2 * TASK_TIMEOUT) -> Job:
    def done() -> Job | None:
        current = Job.objects.get(pk=job.pk)
        return current if current.status in services.FINISHED else None

    return wait_until(done, timeout=timeout, what=f"job {job.pk} to finish", log=worker.log)


def sandbox_processes(folder: Path) -> list[str]:
    """Live processes (any user) whose command line names ``folder``: the sandbox of
    that attempt (bwrap is given its folders' paths)."""
    listed = subprocess.run(["ps", "-ww", "-e", "-o", "pid=,stat=,args="],
                            capture_output=True, text=True, check=False).stdout  # fmt: skip
    return [line for line in listed.splitlines()
            if str(folder) in line and not line.split()[1].startswith("Z")]  # fmt: skip


def test_a_submitted_job_is_run_by_the_worker(project, member, start_worker, tmp_path):
    assert settings.SDE_DATA_ROOT.is_relative_to(tmp_path)  # the worker is told to use it
    worker = start(start_worker)
    at = mark()

    job = finished(submit(project, member, BY_SEX), worker)

    assert job.status == S.SUCCEEDED, (job.failure, worker.log()[-3000:])
    assert job.isolated is (sandbox.isolation_refusal() is None) and job.attempts == 1
    assert sorted(o.name for o in job.outputs.all()) == [
        "people_by_sex.csv", "people_by_sex.evidence.json"
    ]  # fmt: skip
    assert types_since(at) == [E.SCRIPT_SAVED, E.JOB_SUBMITTED, E.JOB_STARTED,
                               E.OUTPUTS_RECORDED, E.JOB_FINISHED]  # fmt: skip
    assert "sde.tasks.run_job_task[" in worker.log()


@pytest.mark.parametrize(
    ("max_attempts", "after_sweep"),
    [(2, S.QUEUED), (1, S.FAILED)],
    ids=["requeued-then-run-again", "failed-when-no-attempt-is-left"],
)
def test_a_worker_killed_mid_job_leaves_it_visible_for_the_sweeper_with_no_outputs(
    project, member, start_worker, settings, max_attempts, after_sweep
):
    settings.SDE_JOB_MAX_ATTEMPTS = max_attempts  # the sweeper runs in this process
    worker = start(start_worker)
    job = submit(project, member, KILLABLE)

    def half_written() -> Job | None:
        current = Job.objects.get(pk=job.pk)
        written = current.folder and (files.data_root() / current.folder / "output" / "partial.csv")
        return current if written and written.exists() else None

    running = wait_until(half_written, timeout=2 * TASK_TIMEOUT, what="the job to be running",
                         log=worker.log)  # fmt: skip
    attempt_1 = files.data_root() / running.folder
    assert sandbox_processes(attempt_1), "the sandbox should be running now"
    os.kill(worker.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)

    # The sandbox dies with the worker (bwrap --die-with-parent); the job stays visible
    # as running, its heartbeat stopped, nothing registered.
    wait_until(lambda: not sandbox_processes(attempt_1), timeout=10,
               what="the sandbox to die with its worker")  # fmt: skip
    left = Job.objects.get(pk=job.pk)
    assert (left.status, left.attempts, left.outputs.count()) == (S.RUNNING, 1, 0)
    at = mark()

    later = timezone.now() + timedelta(seconds=settings.SDE_JOB_HEARTBEAT_TIMEOUT + 1)
    sweep = services.sweep_jobs(now=later)

    swept = Job.objects.get(pk=job.pk)
    assert swept.status == after_sweep and not swept.outputs.exists()
    assert (attempt_1 / "output" / "partial.csv").exists()  # half-written, never registered
    if after_sweep == S.FAILED:
        assert sweep.failed == [job.pk] and types_since(at) == [E.JOB_FAILED]
        assert swept.failure == "its worker stopped while it ran, on every attempt"
        return
    assert sweep.requeued == [job.pk] and types_since(at) == [E.JOB_REQUEUED]

    # The sweeper sent it again; the next worker runs a second attempt in a clean folder.
    again = finished(job, start(start_worker))
    assert (again.status, again.attempts) == (S.SUCCEEDED, 2), again.failure
    assert again.folder.endswith("attempt-2")
    assert sorted(o.name for o in again.outputs.all()) == ["partial.csv", "table.csv"]
    assert all((files.data_root() / again.folder / "output" / o.name).exists()
               for o in again.outputs.all())  # fmt: skip


def test_a_job_submitted_while_the_broker_is_down_is_kept_and_runs_when_it_is_back(
    project, member, start_worker, monkeypatch
):
    worker = start(start_worker)
    send = services._enqueue

    def broker_down(job_id: int) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(services, "_enqueue", broker_down)
    at = mark()

    job = submit(project, member, BY_SEX)  # the send after commit fails; the job is kept
    still_down = services.sweep_jobs(now=timezone.now() + timedelta(hours=1))
    time.sleep(2.0)  # longer than the worker's broker polling interval

    assert Job.objects.get(pk=job.pk).status == S.QUEUED and still_down.resent == []
    assert types_since(at) == [E.SCRIPT_SAVED, E.JOB_SUBMITTED]
    assert "sde.tasks.run_job_task[" not in worker.log()  # nothing was delivered

    monkeypatch.setattr(services, "_enqueue", send)  # the broker is back
    back = services.sweep_jobs(now=timezone.now() + timedelta(hours=1))

    assert back.resent == [job.pk]
    done = finished(job, worker)
    assert done.status == S.SUCCEEDED and done.outputs.count() == 2, done.failure
