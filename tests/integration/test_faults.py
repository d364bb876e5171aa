"""Faults at awkward moments (issue 8, item 5): the web process, a worker, Redis and
PostgreSQL killed with SIGKILL mid-approval, mid-ingest, mid-job, mid-release and at a
submission. Afterwards nothing is lost or half-done, the audit chain verifies
(``manage.py verify_audit``), and the page shows a clear state.

Everything runs against a PostgreSQL cluster and a Redis server of the test's own
(tests/integration/faults.py), never the shared ones. The moment of each kill is made
deterministic with a database lock the test holds, not with a sleep.

Two tiers: the fast scenarios are marked ``integration`` and run in ``make test``; the
slow ones are marked ``faults`` as well, which ``make test`` leaves out (scripts/test.sh)
and ``make test-faults`` runs with the rest of this file."""

from __future__ import annotations

import http.client
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import faults
from tests.integration.faults import Browser, Postgres, Redis, Stack, holding, text_of, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(faults.available() is not None, reason=str(faults.available())),
    # They bring their own PostgreSQL and Redis, so a second run against other databases
    # tests nothing new: .ci/run runs them in its PostgreSQL pass only.
    pytest.mark.skipif(
        os.environ.get("SDE_SKIP_FAULTS") == "1", reason="SDE_SKIP_FAULTS=1 (run in another pass)"
    ),
]
slow = pytest.mark.faults  # scripts/test.sh leaves these out of `make test`


# --- Fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    cluster = Postgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def world(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The starting states, built once (faults.build_world) into the template database
    ``world``; its data root and key folder are kept beside it."""
    folder = tmp_path_factory.mktemp("faults-world")
    postgres.admin("CREATE DATABASE world")
    builder = Stack(postgres, Redis(folder), "world", folder, folder / "keys")
    memory = {"CELERY_BROKER_URL": "memory://"}  # nothing is sent while the world is built
    for args in (("manage.py", "migrate", "--no-input"),
                 ("-m", "tests.integration.faults", "world", str(folder / "world.json"),
                  str(folder))):  # fmt: skip
        done = builder.run(*args, env=memory, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    built: dict[str, Any] = faults.json.loads((folder / "world.json").read_text())
    built["folder"] = folder
    return built


@pytest.fixture
def stack(postgres: Postgres, world: dict[str, Any], tmp_path: Path) -> Iterator[Stack]:
    """This test's installation: a copy of the world's database and data root, a Redis
    of its own; every process it started is stopped after."""
    if not postgres.running():  # an earlier test left it down
        postgres.start()
    database = f"fault_{uuid.uuid4().hex[:10]}"
    postgres.admin(f'CREATE DATABASE "{database}" TEMPLATE world STRATEGY FILE_COPY')
    shutil.copytree(world["folder"] / "data", tmp_path / "data", symlinks=True)
    redis = Redis(tmp_path)
    redis.start()
    installation = Stack(postgres, redis, database, tmp_path, world["folder"] / "keys")
    try:
        yield installation
    finally:
        installation.stop()
        redis.kill()
        if not postgres.running():
            postgres.start()
        postgres.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def assert_audit_verifies(stack: Stack) -> None:
    done = stack.verify_audit()
    assert done.returncode == 0 and "audit log OK" in done.stdout, done.stdout + done.stderr


def browser(stack: Stack, web: faults.Service, world: dict[str, Any], who: str) -> Browser:
    return Browser(web.port, world["sessions"][who])


# --- The web process killed mid-approval --------------------------------------------------
@pytest.mark.parametrize("moment", ["before-commit", pytest.param("after-commit", marks=slow)])
def test_web_process_killed_mid_approval_leaves_it_approved_with_its_events_or_untouched(
    stack: Stack, world: dict[str, Any], moment: str
) -> None:
    """The second IG approval reaches the quorum: the request becomes approved and its
    project is made, in one transaction. The web process is SIGKILLed while that request
    is in flight: ``before-commit`` while its transaction waits to insert the project
    (the status and the approval events already written in it); ``after-commit`` once it
    committed, while it waits to send the extract build to a frozen broker, before the
    response. Either way no half state, and the page after a restart says which."""
    pk, approver = world["application"], world["approver"]
    web = stack.web()
    ig = browser(stack, web, world, "ig")
    review = f"/applications/{pk}/review/"
    before = stack.last_sequence()
    form = {"approve-end_date": "2027-12-31", "approve-conditions": ""}
    token = faults.re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', ig.page(review))
    assert token is not None
    form["csrfmiddlewaretoken"] = token.group(1)

    def approve() -> Any:
        return ig.request("POST", f"{review}approve/", form, timeout=60)

    if moment == "before-commit":
        with holding(stack, "LOCK TABLE sde_project IN SHARE MODE"):
            sent = faults.in_background(approve)
            wait_for(lambda: stack.waiting_on_lock('INSERT INTO "sde_project"'),
                     what="the approval to wait to insert the project",
                     log=lambda: f"{sent.outcome}\n{stack.activity()}\n{web.log()}")  # fmt: skip
            web.kill()
    else:
        stack.redis.pause()  # the extract build is sent after commit: it hangs there
        sent = faults.in_background(approve)
        wait_for(lambda: stack.rows("SELECT status FROM access_requests_accessrequest "
                                    "WHERE id = %s", pk)[0][0] == "approved",
                 what="the approval to commit", log=web.log)  # fmt: skip
        web.kill()
        stack.redis.resume()
    outcome = sent.result()
    assert isinstance(outcome, OSError | http.client.HTTPException), outcome  # no response

    status, project = stack.rows(
        "SELECT status, project_id FROM access_requests_accessrequest WHERE id = %s", pk
    )[0]
    events = stack.events(after=before)
    approvals = stack.rows("SELECT count(*) FROM access_requests_review WHERE request_id = %s "
                           "AND reviewer_id = %s", pk, approver)[0][0]  # fmt: skip
    if moment == "before-commit":
        assert (status, project, approvals, events) == ("in_review", None, 0, [])
    else:
        assert status == "approved" and project is not None and approvals == 1
        kinds = [kind for kind, _, target in events if target in (str(pk), str(project))]
        assert kinds[:2] == ["access.approval_recorded", "access.approved"], events
        assert "project.created" in [kind for kind, _, _ in events], events
    assert_audit_verifies(stack)

    again = stack.web()
    shown = text_of(browser(stack, again, world, "ig").page(review))
    if moment == "before-commit":
        assert "In review" in shown and "Approved" not in shown, shown[:2000]
    else:
        assert "Approved" in shown, shown[:2000]


# --- PostgreSQL killed mid-release --------------------------------------------------------
def release_store(stack: Stack, world: dict[str, Any]) -> list[str]:
    folder = stack.data_root / "releases" / str(world["project"]) / str(world["release"])
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_postgres_killed_mid_release_releases_nothing_and_the_checker_can_submit_again(
    stack: Stack, world: dict[str, Any]
) -> None:
    """The second checker's review settles the request: approved, then released (each
    approved file's reviewed bytes copied into the release store) in one transaction.
    PostgreSQL is SIGKILLed while that transaction waits to count the release on the
    project (the copies already written). Afterwards: not released, no released file
    row, nothing in the store; the checker sees their review still to submit, submits it
    again, and the request is released with its files."""
    release, project = world["release"], world["project"]
    web = stack.web()
    checker = browser(stack, web, world, "checker")
    page = f"/outputs/{release}/"
    before = stack.last_sequence()

    with holding(stack, f"SELECT 1 FROM sde_project WHERE id = {int(project)} FOR UPDATE"):
        sent = faults.in_background(lambda: checker.post_form(page, f"{page}submit/", {}))
        wait_for(lambda: stack.waiting_on_lock('UPDATE "sde_project"'),
                 what="the release to wait to count its files",
                 log=lambda: f"{sent.outcome}\n{stack.activity()}\n{web.log()}")  # fmt: skip
        copied = release_store(stack, world)
        assert copied, "the reviewed bytes should be in the release store by now"
        stack.postgres.crash()
    status, _, body = sent.result()
    assert status == 500, body[-2000:]  # the server's error page; nothing was committed
    stack.postgres.start()

    assert stack.rows("SELECT status FROM outputs_releaserequest WHERE id = %s",
                      release) == [("partially_reviewed",)]  # fmt: skip
    assert stack.rows("SELECT count(*) FROM outputs_releasedfile") == [(0,)]
    assert stack.rows("SELECT submitted_at FROM outputs_review WHERE id = %s",
                      world["review"]) == [(None,)]  # fmt: skip
    decided = ("outputs.review_submitted", "outputs.approved", "outputs.released")
    assert stack.events(*decided, after=before) == []  # (the page's views are audited)
    # No copies of a request that is not released (the failed release removed them).
    assert release_store(stack, world) == []
    for file_id in world["release_files"]:  # and nothing is served
        download = f"/projects/{project}/releases/{release}/files/{file_id}/download/"
        assert browser(stack, web, world, "member").status(download) == 404, download
    assert_audit_verifies(stack)

    shown = text_of(checker.page(page))
    assert "1 of 2 reviews in" in shown and "Submit review" in shown, shown[:3000]
    status, location, _ = checker.post_form(page, f"{page}submit/", {})
    assert status == 302, location
    assert stack.rows("SELECT status FROM outputs_releaserequest WHERE id = %s",
                      release) == [("released",)]  # fmt: skip
    stored = stack.rows("SELECT path FROM outputs_releasedfile ORDER BY path")
    assert sorted(Path(path).name for (path,) in stored) == release_store(stack, world) != []
    assert_audit_verifies(stack)


# --- A worker or PostgreSQL killed mid-ingest ----------------------------------------------
REQUEST_INGEST = """
import sys, django
django.setup()
from pathlib import Path
from sde.data.ingestion import request_ingest
from sde.identity.models import User
print(request_ingest(drop_dir=Path(sys.argv[1]), by=User.objects.get(pk=int(sys.argv[2]))).pk)
"""
RESEND_INGEST = """
import sys, django
django.setup()
from sde.tasks import ingest_drop_task
ingest_drop_task.delay(int(sys.argv[1]))
"""
# Where each fault strikes: the lock the test holds, and the statement it stops.
MID_INGEST = {
    # validated and written to staging, about to encrypt the new identities
    "worker": ("LOCK TABLE sde_identityvaultrecord IN ACCESS EXCLUSIVE MODE",
               'SELECT "sde_identityvaultrecord"'),
    # moved into versions/ and inside the publishing transaction
    "postgres": ("LOCK TABLE sde_datasetversion IN SHARE MODE",
                 'INSERT INTO "sde_datasetversion"'),
}  # fmt: skip


def ingest_files(stack: Stack, pk: int) -> dict[str, Any]:
    """The ingest's folders in the data root (read while the test holds its lock)."""
    return {
        "published": (stack.data_root / "versions" / f"ingest-{pk}").exists(),
        "staging": sorted(p.name for p in (stack.data_root / "staging").glob(f"ingest-{pk}-*")),
    }


def ingest_state(stack: Stack, pk: int) -> dict[str, Any]:
    status, stage = stack.rows("SELECT status, stage FROM sde_ingest WHERE id = %s", pk)[0]
    return {
        "status": status,
        "stage": stage,
        "versions": stack.rows("SELECT count(*) FROM sde_datasetversion WHERE ingest_id = %s",
                               pk)[0][0],
        "vault": stack.rows("SELECT count(*) FROM sde_identityvaultrecord")[0][0],
        **ingest_files(stack, pk),
    }  # fmt: skip


@slow
@pytest.mark.parametrize("fault", ["worker", "postgres"])
def test_ingest_killed_midway_publishes_nothing_and_is_run_again(
    stack: Stack, world: dict[str, Any], fault: str
) -> None:
    """A worker SIGKILLed while the ingest is half-prepared (its tables in staging), or
    PostgreSQL SIGKILLed inside the publishing transaction (the folder already moved into
    versions/): no dataset version, no vault rows, no published folder. Then the ingest
    runs again: the worker's task redelivered (as the broker does once the visibility
    timeout has passed), or retried by the task itself once the database is back."""
    lock, statement = MID_INGEST[fault]
    worker = stack.worker()
    vault = stack.rows("SELECT count(*) FROM sde_identityvaultrecord")[0][0]
    before = stack.last_sequence()
    with holding(stack, lock):
        asked = stack.run("-c", REQUEST_INGEST, world["second_drop"], str(world["custodian"]))
        assert asked.returncode == 0, asked.stderr[-3000:]
        pk = int(asked.stdout.split()[-1])
        wait_for(lambda: stack.waiting_on_lock(statement), what=f"the ingest at {statement}",
                 log=lambda: f"{stack.activity()}\n{worker.log()}")  # fmt: skip
        midway = ingest_files(stack, pk)
        if fault == "worker":
            assert midway["staging"] and not midway["published"], midway
            worker.kill()
        else:
            assert midway["published"] and not midway["staging"], midway
            stack.postgres.crash()
    if fault == "postgres":
        wait_for(lambda: "database unavailable" in worker.log(),
                 what="the worker to see the database gone", log=worker.log)  # fmt: skip
        stack.postgres.start()

    after = ingest_state(stack, pk)
    half = {k: after[k] for k in ("versions", "vault", "published")}
    assert half == {"versions": 0, "vault": vault, "published": False}, after
    assert [kind for kind, _, _ in stack.events(after=before)] == [
        "data.ingest_requested", "data.ingest_started"]  # fmt: skip
    assert_audit_verifies(stack)

    if fault == "worker":
        # Still "running": no heartbeat shows the custodian that its worker is gone, and
        # Redis gives the task back only after the visibility timeout (an hour).
        assert after["status"] == "running", after
        stack.worker()
        resent = stack.run("-c", RESEND_INGEST, str(pk))
        assert resent.returncode == 0, resent.stderr[-3000:]
    done = wait_for(lambda: ingest_state(stack, pk)["status"] in ("succeeded", "failed")
                    and ingest_state(stack, pk), what="the ingest to run again",
                    log=lambda: "\n".join(w.log() for w in stack.services))  # fmt: skip
    assert done["status"] == "succeeded" and done["versions"] == 2, done
    assert done["published"] and done["staging"] == [], done  # the half attempt swept
    kinds = [kind for kind, _, _ in stack.events(after=before)]
    assert kinds.count("data.ingest_started") == 2 and "data.ingest_failed" not in kinds
    assert_audit_verifies(stack)
    web = stack.web()
    shown = text_of(browser(stack, web, world, "custodian").page(f"/data/ingests/{pk}/"))
    assert "Succeeded" in shown or "succeeded" in shown, shown[:2000]


# --- A worker killed mid-job; Redis killed at a submission (slow) --------------------------
KILLABLE = """\
import time
open("partial.csv", "w").write("half,written\\n")
time.sleep(120)
open("table.csv", "w").write("sex,people\\nF,10\\n")
"""
QUICK = 'open("table.csv", "w").write("sex,people\\nF,10\\n")\n'
SWEEPING = {"SDE_JOB_SWEEP_SECONDS": "1", "SDE_JOB_HEARTBEAT_TIMEOUT": "3",
            "SDE_JOB_RESEND_SECONDS": "1", "SDE_JOB_MAX_ATTEMPTS": "1"}  # fmt: skip


def submit_script(member: Browser, project: int, stack: Stack, content: str) -> Any:
    """Save ``content`` as a script and run it on dummy data, through the pages; the
    response to the run."""
    workspace = f"/projects/{project}/workspace/"
    saved = member.post_form(workspace, f"{workspace}scripts/",
                             {"script-name": "analysis.py", "script-content": content})  # fmt: skip
    assert saved[0] == 302, saved[2][-2000:]
    (script,) = stack.rows("SELECT max(id) FROM sde_script")[0]
    return member.post_form(workspace, f"{workspace}scripts/{script}/run/",
                            {"run-run_on": "dummy"})  # fmt: skip


def job(stack: Stack, pk: int) -> tuple[str, str, int]:
    status, failure = stack.rows("SELECT status, failure FROM sde_job WHERE id = %s", pk)[0]
    outputs = stack.rows("SELECT count(*) FROM sde_joboutput WHERE job_id = %s", pk)[0][0]
    return status, failure, outputs


def last_job(stack: Stack) -> int:
    return int(stack.rows("SELECT max(id) FROM sde_job")[0][0])


@slow
def test_worker_killed_mid_job_is_shown_failed_with_a_reason_and_a_new_job_runs(
    stack: Stack, world: dict[str, Any]
) -> None:
    """The job's script has written a first output and is still running when its worker
    (and the sandbox with it) is SIGKILLed. The sweeper of a new worker (beat, as
    ``make run`` runs it) finds the heartbeat stopped and, with no attempt left, fails
    the job with a reason; the page says so and lists no outputs; a new job runs."""
    project = world["project"]
    worker = stack.worker()
    web = stack.web()
    member = browser(stack, web, world, "member")
    before = stack.last_sequence()
    status, location, _ = submit_script(member, project, stack, KILLABLE)
    assert status == 302 and "/jobs/" in location, location
    pk = last_job(stack)
    folder = lambda: stack.rows("SELECT folder FROM sde_job WHERE id = %s", pk)[0][0]  # noqa: E731
    wait_for(lambda: folder() and (stack.data_root / folder() / "output" / "partial.csv").exists(),
             what="the job to write its first output", log=worker.log)  # fmt: skip
    worker.kill()
    assert job(stack, pk)[0] == "running"

    stack.worker(env=SWEEPING, beat=True)  # with its beat: the sweeper runs every second
    failed = wait_for(lambda: job(stack, pk)[0] == "failed" and job(stack, pk),
                      what="the sweeper to fail the job",
                      log=lambda: stack.services[-1].log())  # fmt: skip
    assert failed[1] and failed[2] == 0, failed  # a reason; nothing registered
    shown = text_of(member.page(f"/projects/{project}/jobs/{pk}/"))
    assert "Failed" in shown and failed[1] in shown, shown[:3000]
    kinds = [kind for kind, _, _ in stack.events(after=before)]
    assert kinds.count("analysis.job_failed") == 1, kinds

    status, _, _ = submit_script(member, project, stack, QUICK)
    assert status == 302
    again = last_job(stack)
    done = wait_for(lambda: job(stack, again)[0] in ("succeeded", "failed") and job(stack, again),
                    what="the new job", log=lambda: stack.services[-1].log())  # fmt: skip
    assert done[0] == "succeeded" and done[2] >= 1, done
    assert_audit_verifies(stack)


@slow
def test_redis_killed_when_a_job_is_submitted_keeps_it_queued_until_redis_is_back(
    stack: Stack, world: dict[str, Any]
) -> None:
    """Redis is SIGKILLed (and everything in it lost) before a researcher runs a script.
    The page answers at once: the job is queued, and says so. When Redis is back, the
    sweeper sends it again and a worker runs it; nothing was lost."""
    project = world["project"]
    web = stack.web()
    member = browser(stack, web, world, "member")
    stack.redis.kill()
    before = stack.last_sequence()

    started = faults.time.monotonic()
    status, location, _ = submit_script(member, project, stack, QUICK)
    took = faults.time.monotonic() - started
    assert status == 302 and "/jobs/" in location, location
    assert took < 15, f"the submission took {took:.1f}s with the broker down"
    pk = last_job(stack)
    assert job(stack, pk)[0] == "queued"
    shown = text_of(member.page(f"/projects/{project}/jobs/{pk}/"))
    assert "Queued" in shown or "queued" in shown, shown[:3000]

    stack.redis.start()
    stack.worker(env=SWEEPING, beat=True)
    done = wait_for(lambda: job(stack, pk)[0] in ("succeeded", "failed") and job(stack, pk),
                    what="the job to run once Redis is back",
                    log=lambda: stack.services[-1].log())  # fmt: skip
    assert done[0] == "succeeded" and done[2] >= 1, done
    kinds = [kind for kind, _, _ in stack.events(after=before)]
    assert kinds.count("analysis.job_submitted") == 1, kinds  # one job, run once
    assert kinds.count("analysis.job_started") == 1, kinds
    assert_audit_verifies(stack)
