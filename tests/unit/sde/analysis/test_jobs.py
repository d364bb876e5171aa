"""Jobs (sde/analysis/services.py): who may run them, their states, what a run records,
how a failed, cancelled, over-limit or abandoned job ends, and the sweeper.

Scripts run for real in the sandbox against the small synthetic extract. The broker is
outside these tests: ``_enqueue`` is replaced by a list of the ids it would send
(tests/integration/test_jobs_worker.py runs a real worker). The worker's first step,
``services._start``, is called directly where a test needs a job that is running."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from kombu.exceptions import OperationalError

from sde.analysis import library, sandbox, services
from sde.analysis.models import Job, JobOutput
from sde.audit.events import EventType as E
from sde.audit.services import get_system_user
from sde.data import extracts
from sde.data.files import data_root
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.identity import services as identity
from sde.identity.models import User
from sde.identity.roles import Role
from sde.phm.ledger import LedgerTable
from sde.projects import services as projects
from sde.projects.models import Project
from sde.projects.services import MemberSpec
from tests import scenarios
from tests.events import events_since, mark, types_since
from tests.unit.sde.analysis.conftest import SCOPE
from tests.unit.sde.projects.builders import drive_to, researcher

pytestmark = pytest.mark.django_db
S = Job.Status
P = Project.Status
WRITES_A_TABLE = 'open("table.csv", "w").write("sex,people\\nF,10\\n")\n'
BY_SEX = """\
import sdelib
people = sdelib.read("patients")
sdelib.table(people, by=["sex"], name="people_by_sex", title="People by sex")
"""


# --- Helpers -----------------------------------------------------------------------------
@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the jobs sent to the broker (the broker itself is outside these tests)."""
    ids: list[int] = []
    monkeypatch.setattr(services, "_enqueue", ids.append)
    return ids


@pytest.fixture
def other_member(project: Project, ig: User) -> User:
    """A second member of the project who uses its data."""
    person = researcher()
    projects.add_member(project=project, member=MemberSpec(person, "analyst"), by=ig)
    return person


def submit_script(project: Project, by: User, code: str, *, on_dummy: bool = True) -> Job:
    script = services.save_script(project=project, name="analysis.py", content=code, by=by)
    return services.submit_job(project=project, by=by, on_dummy=on_dummy, script=script)


def worked(job: Job) -> Job:
    """Run ``job`` as the worker would (in this process), and read it again."""
    services.run_job(job_id=job.pk, worker="test-worker")
    return Job.objects.get(pk=job.pk)


def log_of(job: Job) -> str:
    return (data_root() / job.folder / "log.txt").read_text(errors="replace")


def output_of(job: Job) -> Path:
    return data_root() / job.folder / "output"


def stale(*, resend: bool = True) -> datetime:
    """A moment when every heartbeat is old enough to sweep, and (``resend``) every
    queued job has waited long enough to be sent again."""
    wait = settings.SDE_JOB_HEARTBEAT_TIMEOUT
    if resend:
        wait = max(wait, settings.SDE_JOB_RESEND_SECONDS)
    return timezone.now() + timedelta(seconds=wait + 1)


# --- A built-in analysis end to end ------------------------------------------------------
def test_a_builtin_analysis_runs_on_the_real_extract_and_registers_its_outputs(
    project, member, run
):
    at = mark()

    job = run(
        project,
        member,
        on_dummy=False,
        analysis="population_profile",
        parameters={"index_date": "2026-01-01"},
    )

    assert job.status == S.SUCCEEDED, (
        job.failure,
        (data_root() / job.folder / "log.txt").read_text(),
    )
    names = sorted(o.name for o in job.outputs.all())
    assert "people_by_age_band_and_sex.csv" in names
    assert "people_by_age_band_and_sex.evidence.json" in names
    assert "people_by_age_band_and_sex_chart.png" in names
    table = job.outputs.get(name="people_by_age_band_and_sex.csv")
    assert table.evidence == "people_by_age_band_and_sex.evidence.json"
    rows = list(csv.DictReader((data_root() / job.folder / "output" / table.name).open()))
    evidence = json.loads((data_root() / job.folder / "output" / table.evidence).read_text())
    assert [int(r["people"]) for r in rows] == [c["persons"]["people"] for c in evidence["cells"]]
    assert evidence["extract_id"] == job.extract_id and evidence["dummy"] is False
    assert job.extract.is_dummy is False and job.isolated is (sandbox.isolation_refusal() is None)
    assert job.progress == 100 and job.exit_code == 0 and job.cpu_seconds > 0
    assert set(job.package_versions) >= {"python", "pandas", "numpy"}
    assert types_since(at) == [E.JOB_SUBMITTED, E.JOB_STARTED, E.OUTPUTS_RECORDED, E.JOB_FINISHED]


# --- Who may run jobs --------------------------------------------------------------------
def _member_with(*, accesses_data: bool = True, **accreditation: Any) -> Callable[..., Any]:
    def arrange(make_project: Callable[..., Project], ig: User, member: User) -> Any:
        project = make_project()
        person = researcher(**accreditation)
        spec = MemberSpec(person, "analyst", accesses_data)
        projects.add_member(project=project, member=spec, by=ig)
        return person, project

    return arrange


def _in_status(status: str) -> Callable[..., tuple[Any, Project]]:
    return lambda make_project, ig, member: (member, drive_to(make_project(), status, ig=ig))


def _removed(make_project: Callable[..., Project], ig: User, member: User) -> Any:
    project = make_project()
    projects.remove_member(project=project, user=member, by=ig)
    return member, project


def _suspended_account(make_project: Callable[..., Project], ig: User, member: User) -> Any:
    project = make_project()
    identity.suspend_account(user=member, by=scenarios.administrator(), reason="left")
    return User.objects.get(pk=member.pk), project


LAPSED = {"expires_on": timezone.localdate() - timedelta(days=1)}
# id -> (arrange(make_project, ig, member) -> (person, project), what submit_job raises)
SUBMITTERS: dict[str, tuple[Callable[..., Any], Any]] = {
    "member-who-uses-data": (lambda mp, ig, m: (m, mp()), None),
    "member-who-does-not-use-data": (_member_with(accesses_data=False), PermissionDenied),
    "member-whose-training-lapsed": (_member_with(**LAPSED), PermissionDenied),
    "removed-member": (_removed, NotFound),
    "non-member-researcher": (lambda mp, ig, m: (researcher(), mp()), NotFound),
    "ig-officer": (lambda mp, ig, m: (ig, mp()), PermissionDenied),
    "output-checker": (lambda mp, ig, m: (scenarios.person(Role.OUTPUT_CHECKER), mp()), NotFound),
    "anonymous": (lambda mp, ig, m: (AnonymousUser(), mp()), NotFound),
    "suspended-account": (_suspended_account, NotFound),
    "system-user": (lambda mp, ig, m: (get_system_user(), mp()), NotFound),
    "member-of-a-suspended-project": (_in_status(P.SUSPENDED), PermissionDenied),
    "member-of-an-expired-project": (_in_status(P.EXPIRED), PermissionDenied),
    "member-of-a-revoked-project": (_in_status(P.REVOKED), PermissionDenied),
    "member-of-a-closed-project": (_in_status(P.CLOSED), NotFound),
}  # fmt: skip


@pytest.mark.parametrize("on_dummy", [True, False], ids=["dummy", "real"])
@pytest.mark.parametrize(("arrange", "error"), SUBMITTERS.values(), ids=SUBMITTERS)
def test_who_may_submit_a_job(make_project, ig, member, arrange, error, on_dummy):
    person, project = arrange(make_project, ig, member)
    project = Project.objects.get(pk=project.pk)
    at = mark()

    def submit() -> Job:
        return services.submit_job(project=project, by=person, on_dummy=on_dummy,
                                   analysis="population_profile",
                                   parameters={"index_date": "2026-01-01"})  # fmt: skip

    if error is None:
        job = submit()
        assert (job.status, job.on_dummy, job.requested_by) == (S.QUEUED, on_dummy, person)
        assert types_since(at) == [E.JOB_SUBMITTED]
        return
    with pytest.raises(error):
        submit()
    assert not Job.objects.exists() and types_since(at) == []


def test_a_script_can_be_saved_only_by_a_member_who_may_use_the_data(make_project, ig):
    project = make_project()
    for person, error in ((researcher(), NotFound), (ig, PermissionDenied)):
        with pytest.raises(error):
            services.save_script(project=project, name="a.py", content="pass\n", by=person)


# --- The state machine -------------------------------------------------------------------
def job_in(status: str, project: Project, member: User) -> Job:
    """A job of ``member``'s in ``status``, by the steps that lead there."""
    job = submit_script(project, member, "raise SystemExit(3)\n" if status == S.FAILED
                        else WRITES_A_TABLE)  # fmt: skip
    if status == S.RUNNING:
        services._start(job.pk, "worker-1")  # taken by a worker, which is still running it
    elif status in (S.SUCCEEDED, S.FAILED):
        worked(job)
    elif status == S.CANCELLED:
        services.cancel_job(job=job, by=member)
    job = Job.objects.get(pk=job.pk)
    assert job.status == status
    return job


ACTIONS: dict[str, Callable[[Job, User, User], Any]] = {
    "cancel-by-requester": lambda job, member, other: services.cancel_job(job=job, by=member),
    "cancel-by-another-member": lambda job, member, other: services.cancel_job(job=job, by=other),
    "start": lambda job, member, other: services.run_job(job_id=job.pk, worker="worker-2"),
    "sweep": lambda job, member, other: services.sweep_jobs(now=stale()),
}
FINISHED = (S.SUCCEEDED, S.FAILED, S.CANCELLED)
# (status, action) -> the error it raises, or (the status after, the events it writes)
MACHINE: dict[tuple[str, str], Any] = {
    (S.QUEUED, "cancel-by-requester"): (S.CANCELLED, [E.JOB_CANCELLED]),
    (S.QUEUED, "cancel-by-another-member"): PermissionDenied,
    (S.QUEUED, "start"): (S.SUCCEEDED, [E.JOB_STARTED, E.OUTPUTS_RECORDED, E.JOB_FINISHED]),
    (S.QUEUED, "sweep"): (S.QUEUED, []),  # sent to the broker again
    (S.RUNNING, "cancel-by-requester"): (S.RUNNING, [E.JOB_CANCEL_REQUESTED]),  # worker stops it
    (S.RUNNING, "cancel-by-another-member"): PermissionDenied,
    (S.RUNNING, "start"): (S.RUNNING, []),  # a second delivery does nothing
    (S.RUNNING, "sweep"): (S.QUEUED, [E.JOB_REQUEUED]),  # its heartbeat stopped
    **{(status, "cancel-by-requester"): InvalidTransition for status in FINISHED},
    **{(status, "cancel-by-another-member"): PermissionDenied for status in FINISHED},
    **{(status, "start"): (status, []) for status in FINISHED},
    **{(status, "sweep"): (status, []) for status in FINISHED},
}  # fmt: skip
SENT_BY = {(S.QUEUED, "sweep"), (S.RUNNING, "sweep")}


def test_the_machine_table_covers_every_status_and_action():
    assert set(MACHINE) == {(status, action) for status in S.values for action in ACTIONS}


@pytest.mark.parametrize(("status", "action"), MACHINE, ids=[f"{s}-{a}" for s, a in MACHINE])
def test_job_state_machine(project, member, other_member, sent, status, action,
                           django_capture_on_commit_callbacks):  # fmt: skip
    job = job_in(status, project, member)
    sent.clear()
    expected = MACHINE[(status, action)]
    at = mark()

    with django_capture_on_commit_callbacks(execute=True):
        if isinstance(expected, type):
            with pytest.raises(expected):
                ACTIONS[action](job, member, other_member)
        else:
            ACTIONS[action](job, member, other_member)

    after = Job.objects.get(pk=job.pk)
    if isinstance(expected, type):
        assert (after.status, types_since(at)) == (status, [])
    else:
        assert (after.status, types_since(at)) == expected, after.failure
        # The table in the service allows it (a worker's run is queued -> running -> end).
        allowed = {status, *services.TRANSITIONS[status]}
        assert after.status in allowed.union(*(services.TRANSITIONS[s] for s in allowed))
    # A job requeued by a sweep may be sent twice (on commit, and as long-queued by the
    # same sweep): harmless, since only a queued job is taken.
    assert set(sent) == ({job.pk} if (status, action) in SENT_BY else set())


def test_a_queued_job_cancelled_never_runs(project, member):
    job = submit_script(project, member, WRITES_A_TABLE)

    cancelled = services.cancel_job(job=job, by=member)

    assert (cancelled.status, cancelled.cancelled_by) == (S.CANCELLED, member)
    assert services.run_job(job_id=job.pk) == "not-queued"
    job = Job.objects.get(pk=job.pk)
    assert (job.attempts, job.started_at, job.folder) == (0, None, "")


def test_a_running_job_cancelled_by_its_requester_is_stopped_and_keeps_no_outputs(
    project, member, monkeypatch
):
    job = submit_script(project, member, WRITES_A_TABLE + "import time\ntime.sleep(60)\n")
    take = services._start

    def taken_then_cancelled(job_id: int, worker: str) -> Any:
        attempt = take(job_id, worker)
        # The requester presses "cancel" once the worker has it; the worker sees the
        # request at its next look (services asks every 2 seconds) and stops the sandbox.
        services.cancel_job(job=Job.objects.get(pk=job_id), by=member)
        return attempt

    monkeypatch.setattr(services, "_start", taken_then_cancelled)
    at = mark()

    assert services.run_job(job_id=job.pk) == S.CANCELLED

    job = Job.objects.get(pk=job.pk)
    assert (job.status, job.cancelled_by, job.exit_code) == (S.CANCELLED, member, None)
    assert job.wall_seconds < 15 and not job.outputs.exists()
    assert types_since(at) == [E.JOB_STARTED, E.JOB_CANCEL_REQUESTED, E.JOB_CANCELLED]


def test_running_a_job_twice_runs_it_once(project, member):
    job = submit_script(project, member, WRITES_A_TABLE)

    first = services.run_job(job_id=job.pk)
    at = mark()
    second = services.run_job(job_id=job.pk)

    assert (first, second) == (S.SUCCEEDED, "not-queued")
    assert types_since(at) == [] and Job.objects.get(pk=job.pk).attempts == 1
    assert services.run_job(job_id=job.pk + 1000) == "not-queued"


# --- What a run records ------------------------------------------------------------------
def test_a_dummy_run_reads_the_dummy_extract(project, member):
    job = worked(submit_script(project, member, BY_SEX, on_dummy=True))

    assert job.status == S.SUCCEEDED, log_of(job)
    assert job.extract == extracts.current_extract(project.pk, dummy=True)
    assert job.extract.is_dummy
    evidence = json.loads((output_of(job) / "people_by_sex.evidence.json").read_text())
    assert (evidence["dummy"], evidence["extract_id"]) == (True, job.extract_id)


def test_a_real_run_records_what_reproduces_it(project, member):
    at = mark()

    job = worked(submit_script(project, member, BY_SEX, on_dummy=False))

    assert job.status == S.SUCCEEDED, log_of(job)
    extract = extracts.current_extract(project.pk)
    assert job.extract == extract and not extract.is_dummy
    assert job.dataset_versions == {slug: version["version"] for slug, version
                                    in extract.dataset_versions.items()}  # fmt: skip
    assert set(job.dataset_versions) == set(SCOPE["datasets"])
    assert job.code_hash == job.script.sha256 and job.library_version == library.library_version()
    assert set(job.package_versions) >= {"python", "pandas", "numpy", "pyarrow"}
    assert job.isolated is (sandbox.isolation_refusal() is None)
    assert job.worker == "test-worker" and job.attempts == 1
    assert {o.name: (o.kind, o.evidence) for o in job.outputs.all()} == {
        "people_by_sex.csv": (JobOutput.Kind.TABLE, "people_by_sex.evidence.json"),
        "people_by_sex.evidence.json": (JobOutput.Kind.EVIDENCE, ""),
    }
    started = events_since(at)[2]
    assert started.event_type == E.JOB_STARTED
    assert started.data["extract_id"] == extract.pk and started.data["on_dummy"] is False


def test_a_rerun_reproduces_the_parameters_the_code_and_the_tables(project, member, ig):
    parameters = {"index_date": "2026-01-01"}
    first = worked(
        services.submit_job(
            project=project,
            by=member,
            on_dummy=True,
            analysis="population_profile",
            parameters=parameters,
        )
    )

    again = worked(services.rerun_job(job=first, by=member))

    assert (first.status, again.status) == (S.SUCCEEDED, S.SUCCEEDED)
    assert again.rerun_of == first and again.pk != first.pk
    same = ("kind", "analysis", "parameters", "on_dummy", "code_hash", "library_version",
            "extract_id", "dataset_versions", "package_versions")  # fmt: skip
    assert {f: getattr(again, f) for f in same} == {f: getattr(first, f) for f in same}
    tables = lambda job: {o.name: o.sha256 for o in job.outputs.filter(kind="table")}  # noqa: E731
    assert tables(again) == tables(first) and tables(first)


def test_progress_is_reported_while_it_runs(project, member, monkeypatch):
    job = submit_script(
        project, member, 'import sdelib, time\nsdelib.progress(40, "fitting")\ntime.sleep(3)\n'
    )
    seen: list[tuple[int, str]] = []
    beat = services._heartbeat

    def heartbeat(attempt: Any, output: Path) -> None:
        beat(attempt, output)
        seen.append(Job.objects.values_list("progress", "progress_message").get(pk=job.pk))

    monkeypatch.setattr(services, "_heartbeat", heartbeat)

    job = worked(job)

    assert (40, "fitting") in seen
    assert (job.status, job.progress) == (S.SUCCEEDED, 100)


# --- Scripts -----------------------------------------------------------------------------
def test_a_script_is_versioned_by_its_content(make_project, member):
    project = make_project()
    at = mark()

    first = services.save_script(project=project, name="a.py", content="x = 1\n", by=member)
    same = services.save_script(project=project, name="renamed.py", content="x = 1\n", by=member)
    changed = services.save_script(project=project, name="a.py", content="x = 2\n", by=member)

    assert same.pk == first.pk and changed.pk != first.pk
    assert first.sha256 != changed.sha256 and len(first.sha256) == 64
    assert types_since(at) == [E.SCRIPT_SAVED, E.SCRIPT_SAVED]


BAD_SCRIPTS = {
    "syntax-error": ("a.py", "x = 1\ny = = 2\n", "content", "Line 2: invalid syntax."),
    "empty": ("a.py", "  \n\n", "content", "The script is empty."),
    "too-big": ("a.py", "#" * (services.MAX_SCRIPT_BYTES + 1), "content", "at most 256 KB"),
    "no-name": (" ", "pass\n", "name", "Give the script a name"),
}  # fmt: skip


@pytest.mark.parametrize(("name", "content", "field", "message"), BAD_SCRIPTS.values(),
                         ids=BAD_SCRIPTS)  # fmt: skip
def test_a_bad_script_is_refused_with_a_reason(make_project, member, name, content, field,
                                               message):  # fmt: skip
    project = make_project()
    at = mark()

    with pytest.raises(ValidationError) as refused:
        services.save_script(project=project, name=name, content=content, by=member)

    assert message in " ".join(refused.value.errors[field])
    assert types_since(at) == []


def test_a_script_that_raises_fails_with_its_error_class_and_keeps_no_outputs(project, member):
    code = WRITES_A_TABLE + (
        "class ExtractTooSmall(Exception):\n    pass\n"
        "raise ExtractTooSmall('only 3 people over 100')\n"
    )
    at = mark()

    job = worked(submit_script(project, member, code, on_dummy=False))

    assert (job.status, job.exit_code, job.error_class) == (S.FAILED, 1, "ExtractTooSmall")
    assert job.failure == "the analysis failed (ExtractTooSmall)"  # not the message
    assert "Traceback" in log_of(job) and "ExtractTooSmall: only 3 people over 100" in log_of(job)
    assert not job.outputs.exists() and (output_of(job) / "table.csv").exists()
    assert types_since(at)[-1] == E.JOB_FAILED and E.OUTPUTS_RECORDED not in types_since(at)
    assert events_since(at)[-1].data["error_class"] == "ExtractTooSmall"


LINKS = {
    "symlink-to-a-host-file": 'os.symlink("/etc/passwd", "passwd.csv")',
    "symlink-to-an-output": 'os.symlink("table.csv", "copy.csv")',
    "symlink-to-a-folder": 'os.symlink("/", "root")',
    "symlink-in-a-subfolder": 'os.mkdir("sub"); os.symlink("/etc/passwd", "sub/p.csv")',
    "hard-link": 'os.link("table.csv", "copy.csv")',
    "fifo": 'os.mkfifo("pipe.csv")',
}  # fmt: skip


@pytest.mark.parametrize("make_link", LINKS.values(), ids=LINKS)
def test_a_link_or_special_file_among_the_outputs_fails_the_job_and_keeps_none(
    project, member, make_link
):
    at = mark()

    job = worked(submit_script(project, member, f"import os\n{WRITES_A_TABLE}{make_link}\n"))

    assert (job.status, job.exit_code) == (S.FAILED, 0), log_of(job)
    assert job.failure == "it left a link or special file among its outputs, so none were kept"
    assert not job.outputs.exists()
    assert types_since(at)[-1] == E.JOB_FAILED and E.OUTPUTS_RECORDED not in types_since(at)


MiB = 1024**2
# bytes() asks for zeroed memory from the kernel without touching it: the address-space
# limit stops it as it stops any other allocation, without 2 GiB of page faults first.
MEMORY_BOMB = "blocks = []\nwhile True:\n    blocks.append(bytes(64 * 1024 * 1024))\n"
# id -> (settings, script, failure, limit recorded, error class)
LIMITS = {
    "outputs-past-the-quota": (
        {"SDE_JOB_OUTPUT_BYTES": MiB},
        'for n in range(4):\n    open(f"part-{n}.csv", "wb").write(b"x" * 400_000)\n',
        "stopped: its outputs grew past the output quota", "output_quota", ""),
    "cpu-time": ({"SDE_JOB_CPU_SECONDS": 1}, "while True:\n    pass\n",
                 "stopped: it used more CPU time than its limit", "cpu", ""),
    "wall-clock": ({"SDE_JOB_WALL_SECONDS": 3}, "import time\ntime.sleep(60)\n",
                   "stopped: it ran longer than the time limit", "wall_clock", ""),
    "memory": ({"SDE_JOB_MEMORY_BYTES": 2048 * MiB}, MEMORY_BOMB,
               "stopped: it needed more memory than its limit", "memory", "MemoryError"),
}  # fmt: skip


@pytest.mark.parametrize(("changes", "code", "failure", "limit", "error_class"),
                         LIMITS.values(), ids=LIMITS)  # fmt: skip
def test_a_job_stopped_at_a_limit_fails_with_the_limit_and_keeps_no_outputs(
    project, member, settings, changes, code, failure, limit, error_class
):
    for name, value in changes.items():
        setattr(settings, name, value)
    at = mark()

    job = worked(submit_script(project, member, WRITES_A_TABLE + code))

    assert (job.status, job.failure, job.limit) == (S.FAILED, failure, limit), log_of(job)
    assert job.error_class == error_class
    assert not job.outputs.exists()  # whatever it had written
    if limit == "output_quota":
        assert sandbox.folder_bytes(output_of(job)) > settings.SDE_JOB_OUTPUT_BYTES
    assert E.OUTPUTS_RECORDED not in types_since(at)
    assert events_since(at)[-1].data["limit"] == limit


def test_one_file_past_the_quota_is_cut_at_the_limit_and_the_job_fails(project, member, settings):
    settings.SDE_JOB_OUTPUT_BYTES = MiB

    code = 'open("big.csv", "wb").write(b"x" * 2 * 1024 * 1024)\n'

    job = worked(submit_script(project, member, code))

    assert (job.status, job.error_class) == (S.FAILED, "OSError")
    # The file is cut at the quota, which the output folder then fills: either limit.
    assert (job.failure, job.limit) in {
        ("stopped: it wrote a file larger than the limit", "file_size"),
        ("stopped: its outputs grew past the output quota", "output_quota"),
    }
    assert "File too large" in log_of(job)
    assert (output_of(job) / "big.csv").stat().st_size == MiB and not job.outputs.exists()


# --- Access and isolation at the moment a job starts -------------------------------------
ENDED: dict[str, tuple[Callable[[Project, User, User], Any], str]] = {
    "project-suspended": (lambda project, member, ig: drive_to(project, P.SUSPENDED, ig=ig),
                          "the project is suspended"),
    "project-revoked": (lambda project, member, ig: drive_to(project, P.REVOKED, ig=ig),
                        "the project is revoked"),
    "member-removed": (
        lambda project, member, ig: projects.remove_member(project=project, user=member, by=ig),
        "you are not a member of this project who uses its data"),
    "account-suspended": (
        lambda project, member, ig: identity.suspend_account(
            user=member, by=scenarios.administrator(), reason="left"),
        "you are not signed in"),
}  # fmt: skip


@pytest.mark.parametrize(("end", "refusal"), ENDED.values(), ids=ENDED)
def test_access_ended_between_submit_and_start_fails_the_job_before_it_runs(
    make_project, member, ig, end, refusal
):
    project = make_project()
    job = submit_script(project, member, WRITES_A_TABLE, on_dummy=True)
    end(project, member, ig)
    at = mark()

    assert services.run_job(job_id=job.pk) == S.FAILED

    job = Job.objects.get(pk=job.pk)
    assert job.failure == f"access was refused when it was due to start: {refusal}"
    assert (job.attempts, job.started_at, job.folder, job.extract) == (0, None, "", None)
    assert types_since(at) == [E.JOB_FAILED]


def test_without_isolation_only_builtin_analyses_on_dummy_data_run(project, member, monkeypatch):
    """Unisolated, a process could reach the host's files and sockets: scripts never run
    so, nor does anything on real data; our own analyses on synthetic data do."""
    monkeypatch.setattr(sandbox, "isolation_refusal", lambda: "bubblewrap is not installed")
    refused = "only in an isolated sandbox, and bubblewrap is not installed"
    profile = {"analysis": "population_profile", "parameters": {"index_date": "2025-03-01"}}
    jobs = {
        "real script": submit_script(project, member, WRITES_A_TABLE, on_dummy=False),
        "dummy script": submit_script(project, member, WRITES_A_TABLE, on_dummy=True),
        "real builtin": services.submit_job(project=project, by=member, on_dummy=False,
                                            **profile),
        "dummy builtin": services.submit_job(project=project, by=member, on_dummy=True,
                                             **profile),
    }  # fmt: skip

    done = {name: worked(job) for name, job in jobs.items()}

    assert {name: (j.status, j.failure) for name, j in done.items()} == {
        "real script": (S.FAILED, f"scripts run {refused}"),
        "dummy script": (S.FAILED, f"scripts run {refused}"),
        "real builtin": (S.FAILED, f"real data is used {refused}"),
        "dummy builtin": (S.SUCCEEDED, ""),
    }, log_of(done["dummy builtin"])
    assert all(j.attempts == 0 for name, j in done.items() if name != "dummy builtin")
    assert done["dummy builtin"].isolated is False and done["dummy builtin"].outputs.exists()


# --- The sweeper -------------------------------------------------------------------------
def test_a_job_whose_worker_stopped_is_requeued_then_failed_when_its_attempts_are_used(
    project, member, sent, settings, django_capture_on_commit_callbacks
):
    settings.SDE_JOB_MAX_ATTEMPTS = 2
    job = submit_script(project, member, WRITES_A_TABLE)
    services._start(job.pk, "worker-1")  # and then the worker died: no more heartbeats
    assert services.sweep_jobs() == services.Sweep([], [], [])  # its heartbeat is fresh
    at = mark()

    with django_capture_on_commit_callbacks(execute=True):
        first = services.sweep_jobs(now=stale(resend=False))
    requeued = Job.objects.get(pk=job.pk)
    services._start(job.pk, "worker-2")  # taken again, and that worker died too
    second = services.sweep_jobs(now=stale(resend=False))

    assert (first.requeued, sent) == ([job.pk], [job.pk])
    assert (requeued.status, requeued.attempts, requeued.progress) == (S.QUEUED, 1, 0)
    assert second.failed == [job.pk]
    job = Job.objects.get(pk=job.pk)
    assert (job.status, job.attempts) == (S.FAILED, 2)
    assert job.failure == "its worker stopped while it ran, on every attempt"
    assert not job.outputs.exists()
    assert types_since(at) == [E.JOB_REQUEUED, E.JOB_STARTED, E.JOB_FAILED]


def test_an_attempt_the_sweeper_gave_up_on_changes_nothing_when_it_finishes(
    project, member, sent, monkeypatch
):
    job = submit_script(project, member, WRITES_A_TABLE)
    sandboxed = services._run_in_sandbox

    def swept_while_running(attempt: Any) -> sandbox.SandboxResult:
        # The worker was presumed dead (no heartbeat for too long) while it still ran.
        assert services.sweep_jobs(now=stale()).requeued == [attempt.job.pk]
        return sandboxed(attempt)

    monkeypatch.setattr(services, "_run_in_sandbox", swept_while_running)
    at = mark()

    assert services.run_job(job_id=job.pk) == "superseded"

    job = Job.objects.get(pk=job.pk)
    assert (job.status, job.attempts, job.finished_at) == (S.QUEUED, 1, None)
    assert not job.outputs.exists()
    assert types_since(at) == [E.JOB_STARTED, E.JOB_REQUEUED]
    monkeypatch.setattr(services, "_run_in_sandbox", sandboxed)
    assert services.run_job(job_id=job.pk) == S.SUCCEEDED  # the second attempt runs
    job = Job.objects.get(pk=job.pk)
    assert (job.attempts, job.folder.endswith("attempt-2"), job.outputs.count()) == (2, True, 1)


def test_a_submission_while_the_broker_is_down_is_kept_and_sent_by_a_later_sweep(
    project, member, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(job_id: int) -> None:
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(services, "_enqueue", broker_down)
    at = mark()

    with django_capture_on_commit_callbacks(execute=True):
        job = submit_script(project, member, WRITES_A_TABLE)
    still_down = services.sweep_jobs(now=stale())
    sent: list[int] = []
    monkeypatch.setattr(services, "_enqueue", sent.append)
    back = services.sweep_jobs(now=stale())

    assert Job.objects.get(pk=job.pk).status == S.QUEUED
    assert types_since(at) == [E.SCRIPT_SAVED, E.JOB_SUBMITTED]
    assert (still_down.resent, back.resent, sent) == ([], [job.pk], [job.pk])
    assert worked(job).status == S.SUCCEEDED


def test_the_log_keeps_prints_and_the_traceback_in_the_order_they_happened(project, member):
    job = worked(submit_script(project, member, "print('before')\nraise ValueError('boom')\n"))

    log = log_of(job)
    assert job.status == S.FAILED
    assert log.index("before") < log.index("Traceback") < log.index("ValueError")


def test_a_scripts_table_records_the_people_behind_each_cell_for_differencing(project, member):
    code = ("import sdelib\np = sdelib.read('patients')\n"
            "sdelib.table(p, by=['sex'], name='by_sex', title='People by sex')\n")  # fmt: skip
    job = worked(submit_script(project, member, code))

    ledger = LedgerTable.read_parquet(output_of(job) / ".sde" / "ledger" / "by_sex.parquet")
    published = pd.read_csv(output_of(job) / "by_sex.csv", dtype={"sex": str})
    assert job.status == S.SUCCEEDED
    assert [c[0] for c in ledger.cells] == published["sex"].tolist()
    assert ledger.sizes.tolist() == published["people"].tolist()
    assert (ledger.file, ledger.id_space) == ("by_sex.csv", f"project-{project.pk}")
    assert not job.outputs.filter(name__contains="ledger").exists()  # never an output
