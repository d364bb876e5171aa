"""Jobs: running built-in analyses and researchers' scripts in the sandbox.

Lifecycle (``TRANSITIONS``; owner in brackets):

    queued --start (worker)--> running --finish (worker)--> succeeded | failed | cancelled
    queued --cancel (requester)--> cancelled
    running --cancel (requester; the worker stops it)--> cancelled
    running --requeue (the sweeper, when the worker stopped)--> queued, or failed when
        its attempts are used up

A job is queued in the request's transaction and sent to the broker after commit; if
the broker is down it stays queued and the sweeper sends it again, so a submission is
never lost. The worker takes a job only from ``queued`` under a row lock (so a task
delivered twice runs once), checks again that the requester may still use the data,
and heartbeats while it runs; a job whose heartbeat stops is requeued or failed by the
sweeper, never left running. Outputs are registered only when the job succeeded, all
in one transaction, so a killed job leaves none half-written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import socket
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from sde import policy
from sde.analysis import analyses, library, sandbox, selectors
from sde.analysis.models import Cohort, Job, JobOutput, Script
from sde.audit.events import EventType
from sde.audit.services import get_system_user, record_event
from sde.data import extracts
from sde.data.files import data_root, file_sha256
from sde.data.models import Extract
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.governance import governed_writes
from sde.identity.models import User
from sde.projects.models import Project

logger = logging.getLogger(__name__)
S = Job.Status
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.QUEUED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
FINISHED: Final = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED})
MAX_SCRIPT_BYTES: Final = 256 * 1024
PACKAGES: Final = ("pandas", "numpy", "pyarrow", "scipy", "matplotlib")
CONTROL: Final = ".sde"
LIMIT_MESSAGES: Final = {
    "wall_clock": "it ran longer than the time limit",
    "cpu": "it used more CPU time than its limit",
    "memory": "it needed more memory than its limit",
    "output_quota": "its outputs grew past the output quota",
    "file_size": "it wrote a file larger than the limit",
    "log_size": "its log grew past the limit",
}


def limits() -> sandbox.Limits:
    return sandbox.Limits(
        cpu_seconds=settings.SDE_JOB_CPU_SECONDS,
        memory_bytes=settings.SDE_JOB_MEMORY_BYTES,
        processes=settings.SDE_JOB_PROCESSES,
        output_bytes=settings.SDE_JOB_OUTPUT_BYTES,
        file_bytes=settings.SDE_JOB_OUTPUT_BYTES,
        wall_seconds=settings.SDE_JOB_WALL_SECONDS,
    )


# --- Scripts ----------------------------------------------------------------------------
def save_script(*, project: Project, name: str, content: str, by: User) -> Script:
    """Save a version of a script (the same content is the same version). Raises
    NotFound/PermissionDenied unless ``by`` may run analyses in the project;
    ValidationError for an empty, oversized or syntactically invalid script.
    Event: analysis.script_saved (new versions only)."""
    policy.check_use_project_data(by, project, today=timezone.localdate())
    errors: dict[str, list[str]] = {}
    name = name.strip()
    if not name or len(name) > 120:
        errors["name"] = ["Give the script a name of at most 120 characters."]
    encoded = content.encode()
    if not content.strip():
        errors["content"] = ["The script is empty."]
    elif len(encoded) > MAX_SCRIPT_BYTES:
        errors["content"] = [f"A script may be at most {MAX_SCRIPT_BYTES // 1024} KB."]
    else:
        try:
            compile(content, name or "script", "exec")
        except SyntaxError as error:
            errors["content"] = [f"Line {error.lineno}: {error.msg}."]
    if errors:
        raise ValidationError("the script is not valid", errors)
    digest = hashlib.sha256(encoded).hexdigest()
    with transaction.atomic(durable=True), governed_writes(Script):
        existing = Script.objects.filter(project=project, sha256=digest).first()
        if existing is not None:
            return existing
        script = Script.objects.create(
            project=project, name=name, content=content, sha256=digest, created_by=by
        )
        record_event(
            event_type=EventType.SCRIPT_SAVED, actor=by, target=script, project_id=project.pk,
            data={"script_id": script.pk, "sha256": digest, "bytes": len(encoded)},
        )  # fmt: skip
    return script


# --- Submitting and cancelling ----------------------------------------------------------
def submit_job(
    *,
    project: Project,
    by: User,
    on_dummy: bool,
    analysis: str = "",
    parameters: Mapping[str, Any] | None = None,
    script: Script | None = None,
    rerun_of: Job | None = None,
) -> Job:
    """Queue a built-in analysis (``analysis`` with ``parameters``) or a script version.
    Only a member who may use the project's data now may run jobs, real or dummy.
    Raises NotFound/PermissionDenied, ValidationError for a bad analysis or parameters.
    Event: analysis.job_submitted; the job is sent to the worker after commit."""
    policy.check_use_project_data(by, project, today=timezone.localdate())
    if (script is None) == (not analysis):
        raise ValidationError("choose one", {"analysis": ["Choose an analysis or a script."]})
    checked: dict[str, Any] = {}
    if script is not None:
        if script.project_id != project.pk:
            raise NotFound("no such script")
        code_hash = script.sha256
    else:
        builtin = analyses.get(analysis)
        checked = analyses.check_parameters(builtin, parameters or {})
        _check_saved_cohorts(builtin, checked, project=project, on_dummy=on_dummy)
        code_hash = library.library_version()
    with transaction.atomic(durable=True), governed_writes(Job):
        job = Job.objects.create(
            project=project, kind=Job.Kind.SCRIPT if script else Job.Kind.BUILTIN,
            analysis=analysis if script is None else "", script=script, parameters=checked,
            on_dummy=on_dummy, requested_by=by, code_hash=code_hash, rerun_of=rerun_of,
        )  # fmt: skip
        record_event(
            event_type=EventType.JOB_SUBMITTED, actor=by, target=job, project_id=project.pk,
            data={"job_id": job.pk, "kind": job.kind, "analysis": job.analysis,
                  "script_id": job.script_id, "on_dummy": on_dummy, "code_hash": code_hash,
                  "rerun_of": rerun_of.pk if rerun_of else None},
        )  # fmt: skip
        transaction.on_commit(lambda: _enqueue(job.pk), robust=True)
    return job


def _check_saved_cohorts(
    builtin: analyses.Builtin, parameters: Mapping[str, Any], *, project: Project, on_dummy: bool
) -> None:
    """A cohort parameter names a saved cohort of this project found on the same kind of
    extract (project pseudonyms of the real extract, or of the dummy one)."""
    for name, parameter in builtin.parameters.items():
        if parameter.kind != "saved_cohort" or name not in parameters:
            continue
        cohort = (
            Cohort.objects.filter(project=project, pk=parameters[name], deleted_at__isnull=True)
            .select_related("extract")
            .first()
        )
        if cohort is None:
            raise ValidationError(
                "no such cohort", {name: ["Choose one of the project's cohorts."]}
            )
        if cohort.extract.is_dummy != on_dummy:
            kind = "dummy" if cohort.extract.is_dummy else "real"
            raise ValidationError(
                "cohort on the other extract",
                {name: [f"This cohort was found in the {kind} extract: run on that one."]},
            )


def rerun_job(*, job: Job, by: User) -> Job:
    """Queue the same code with the same parameters on the same kind of extract."""
    return submit_job(project=job.project, by=by, on_dummy=job.on_dummy, analysis=job.analysis,
                      parameters=job.parameters, script=job.script, rerun_of=job)  # fmt: skip


def _enqueue(job_id: int) -> None:
    """Send the job to the broker and note when (the sweeper resends only jobs not sent
    for a while). Raises kombu's OperationalError when the broker is down."""
    from sde.tasks import run_job_task  # tasks import services

    run_job_task.delay(job_id)
    with governed_writes(Job):
        Job.objects.filter(pk=job_id, status=S.QUEUED).update(sent_at=timezone.now())


def cancel_job(*, job: Job, by: User) -> Job:
    """Cancel a queued job at once, or ask the worker to stop a running one. Only the
    person who submitted it (while still a member who sees the project).
    Events: analysis.job_cancelled or analysis.job_cancel_requested."""
    policy.check_view_project(by, job.project)
    if job.requested_by_id != by.pk:
        raise PermissionDenied("only the person who started a job may cancel it")
    with transaction.atomic(durable=True), governed_writes(Job):
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.status in FINISHED:
            raise InvalidTransition(f"the job has already {locked.status}")
        locked.cancel_requested_at, locked.cancelled_by = timezone.now(), by
        if locked.status == S.QUEUED:
            locked.status, locked.finished_at = S.CANCELLED, timezone.now()
            event = EventType.JOB_CANCELLED
        else:
            event = EventType.JOB_CANCEL_REQUESTED
        locked.save()
        record_event(event_type=event, actor=by, target=locked, project_id=locked.project_id,
                     data={"job_id": locked.pk})  # fmt: skip
    return locked


# --- Reading a dummy run's files ---------------------------------------------------------
def open_job_file(*, job: Job, by: User, output: JobOutput | None = None) -> Path:
    """The path of a dummy run's log (or of one of its outputs), after recording that
    ``by`` read it. Real runs' files are never read here: NotFound (they leave only
    through output checking). Events: analysis.job_log_viewed / analysis.output_viewed."""
    policy.check_view_project(by, job.project)
    path = selectors.output_path(output) if output is not None else selectors.log_path(job)
    if output is not None and (output.job_id != job.pk or not selectors.shows_content(job)):
        raise NotFound("no such output")
    if not path.is_file():
        raise NotFound("no such file")
    event, data = EventType.JOB_LOG_VIEWED, {"job_id": job.pk}
    if output is not None:
        event, data = EventType.JOB_OUTPUT_VIEWED, {"job_id": job.pk, "output_id": output.pk}
    with transaction.atomic():
        record_event(event_type=event, actor=by, target=job, project_id=job.project_id,
                     data=data)  # fmt: skip
    return path


# --- Running (the worker) ---------------------------------------------------------------
@dataclass
class _Attempt:
    job: Job
    number: int
    folder: Path
    extract: Extract


def run_job(*, job_id: int, worker: str = "") -> str:
    """Run a queued job to its end (the Celery task calls this). Returns what happened:
    "not-queued" (already taken, finished or unknown: nothing done), or the final status."""
    attempt = _start(job_id, worker or socket.gethostname())
    if isinstance(attempt, str):
        return attempt
    try:
        result = _run_in_sandbox(attempt)
    except Exception:
        logger.exception("job %s: the sandbox run failed", job_id)
        return _finish(attempt, outcome=None, failure="the environment could not run it")
    return _finish(attempt, outcome=result)


def _start(job_id: int, worker: str) -> _Attempt | str:
    system = get_system_user()
    with transaction.atomic(durable=True), governed_writes(Job):
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != S.QUEUED:
            return "not-queued"
        project = Project.objects.get(pk=job.project_id)
        refusal = policy.project_data_refusal(job.requested_by, project,
                                              today=timezone.localdate())  # fmt: skip
        extract, failure = None, ""
        if refusal is not None:
            failure = f"access was refused when it was due to start: {refusal}"
        elif (isolation := sandbox.isolation_refusal()) is not None and (
            job.kind == Job.Kind.SCRIPT or not job.on_dummy
        ):
            what = "scripts run" if job.kind == Job.Kind.SCRIPT else "real data is used"
            failure = f"{what} only in an isolated sandbox, and {isolation}"
        if not failure:
            extract = _extract_for(job, system)
            if extract is None:
                failure = "the project has no " + ("dummy " if job.on_dummy else "") + "extract yet"
        if failure or extract is None:
            job.status, job.failure, job.finished_at = S.FAILED, failure[:300], timezone.now()
            job.save()
            record_event(event_type=EventType.JOB_FAILED, actor=system, target=job,
                         project_id=job.project_id,
                         data={"job_id": job.pk, "failure": job.failure})  # fmt: skip
            return S.FAILED
        job.attempts += 1
        job.status, job.worker = S.RUNNING, worker[:200]
        job.started_at = job.heartbeat_at = timezone.now()
        job.progress, job.progress_message = 0, "starting"
        job.extract = extract
        job.dataset_versions = {slug: v.get("version") for slug, v in
                                extract.dataset_versions.items()}  # fmt: skip
        job.library_version = library.library_version()
        job.package_versions = _package_versions()
        folder = (
            data_root() / "jobs" / str(job.project_id) / str(job.pk) / f"attempt-{job.attempts}"
        )
        job.folder = str(folder.relative_to(data_root()))
        job.save()
        record_event(
            event_type=EventType.JOB_STARTED, actor=system, target=job, project_id=job.project_id,
            data={"job_id": job.pk, "attempt": job.attempts, "extract_id": extract.pk,
                  "on_dummy": job.on_dummy, "library_version": job.library_version},
        )  # fmt: skip
    return _Attempt(job=job, number=job.attempts, folder=folder, extract=extract)


def _extract_for(job: Job, system: User) -> Extract | None:
    if job.on_dummy:
        return extracts.current_extract(job.project_id, dummy=True)
    try:
        return extracts.extract_for_use(project_id=job.project_id, by=system)
    except NotFound:
        return None


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _run_in_sandbox(attempt: _Attempt) -> sandbox.SandboxResult:
    job = attempt.job
    if attempt.folder.exists():  # a previous worker's half-done attempt of the same number
        shutil.rmtree(attempt.folder)
    job_dir, output = attempt.folder / "job", attempt.folder / "output"
    (attempt.folder / "tmp").mkdir(parents=True)
    job_dir.mkdir()
    spec: dict[str, Any] = {"kind": job.kind, "context": {
        "job_id": job.pk, "project_id": job.project_id, "extract_id": attempt.extract.pk,
        "dummy": job.on_dummy, "code_hash": job.code_hash}}  # fmt: skip
    if job.kind == Job.Kind.BUILTIN:
        builtin = analyses.get(job.analysis)
        spec["entry"] = builtin.entry
        spec["parameters"] = job.parameters
        spec["dates"] = [n for n, p in builtin.parameters.items() if p.kind == "date"]
        for name, parameter in builtin.parameters.items():
            if parameter.kind == "saved_cohort" and name in job.parameters:
                cohort = Cohort.objects.get(pk=job.parameters[name], project_id=job.project_id)
                shutil.copyfile(data_root() / cohort.path, job_dir / "cohort.parquet")
                spec["cohort_parameter"] = name
    else:
        assert job.script is not None
        (job_dir / "script.py").write_text(job.script.content)
    (job_dir / "job.json").write_text(json.dumps(spec))
    for path in (attempt.folder, attempt.folder / "tmp", job_dir, *job_dir.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    sandbox.prepare_output(output)
    if os.geteuid() == 0:
        os.chown(attempt.folder / "tmp", sandbox.NOBODY, sandbox.NOBODY)
    run = sandbox.SandboxSpec(
        argv=[sys.executable, "-s", "-m", "sdelib.runner"],
        job_dir=job_dir, output_dir=output, log_path=attempt.folder / "log.txt",
        input_dir=data_root() / attempt.extract.path,
        library=library.library_folder(data_root()), limits=limits(),
        isolate=sandbox.isolation_refusal() is None,
    )  # fmt: skip
    return sandbox.run(
        run,
        cancelled=lambda: Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=False).exists(),
        tick=lambda usage: _heartbeat(attempt, output),
    )


def _heartbeat(attempt: _Attempt, output: Path) -> None:
    progress, message = _progress(output)
    with governed_writes(Job):
        Job.objects.filter(pk=attempt.job.pk, status=S.RUNNING, attempts=attempt.number).update(
            heartbeat_at=timezone.now(), progress=progress, progress_message=message
        )


def _progress(output: Path) -> tuple[int, str]:
    try:
        data = json.loads((output / CONTROL / "progress.json").read_text())
        return max(0, min(100, int(data["progress"]))), str(data.get("message", ""))[:200]
    except (OSError, ValueError, KeyError, TypeError):
        return 0, ""


def _finish(attempt: _Attempt, *, outcome: sandbox.SandboxResult | None, failure: str = "") -> str:
    """Record how the attempt ended and, if it succeeded, register its outputs and cohort
    in the same transaction. An attempt the sweeper has given up on changes nothing."""
    output = attempt.folder / "output"
    files: list[tuple[str, Path]] = []
    error_class = ""
    status = S.FAILED
    if outcome is not None:
        error_class = _error_class(output)
        if outcome.outcome == "cancelled":
            status = S.CANCELLED
        elif outcome.outcome == "limit":
            failure = "stopped: " + LIMIT_MESSAGES.get(outcome.limit or "", "a limit was reached")
        elif outcome.outcome == "error":
            failure = "the sandbox could not start"
        elif outcome.exit_code == 0:
            files, problem = _output_files(output)
            if problem:
                failure = problem
            else:
                status = S.SUCCEEDED
        else:
            if error_class == "MemoryError":
                failure = "stopped: " + LIMIT_MESSAGES["memory"]
                outcome.limit = "memory"
            elif _hit_file_limit(output):
                failure = "stopped: " + LIMIT_MESSAGES["file_size"]
                outcome.limit = "file_size"
            else:
                failure = (
                    f"the analysis failed ({error_class or 'exit code ' + str(outcome.exit_code)})"
                )
    log = attempt.folder / "log.txt"
    system = get_system_user()
    with transaction.atomic(durable=True), governed_writes(Job, JobOutput, Cohort):
        job = Job.objects.select_for_update().get(pk=attempt.job.pk)
        if job.status != S.RUNNING or job.attempts != attempt.number:
            return "superseded"
        job.status, job.finished_at = status, timezone.now()
        job.failure, job.error_class = failure[:300], error_class[:100]
        job.progress = 100 if status == S.SUCCEEDED else job.progress
        job.progress_message = ""  # the status says the rest
        if outcome is not None:
            job.exit_code, job.limit, job.isolated = (
                outcome.exit_code,
                outcome.limit or "",
                outcome.isolated,
            )
            job.cpu_seconds, job.max_rss_kb = outcome.cpu_seconds, outcome.max_rss_kb
            job.wall_seconds, job.output_bytes = outcome.wall_seconds, outcome.output_bytes
        if log.is_file():
            job.log_sha256, job.log_bytes = file_sha256(log), log.stat().st_size
        job.save()
        data = {"job_id": job.pk, "attempt": attempt.number, "exit_code": job.exit_code,
                "limit": job.limit, "cpu_seconds": job.cpu_seconds,
                "wall_seconds": job.wall_seconds}  # fmt: skip
        if status == S.SUCCEEDED:
            _register_outputs(job, files, system)
            _save_cohort(job, output, attempt.extract, system)
            data["outputs"] = len(files)
            record_event(event_type=EventType.JOB_FINISHED, actor=system, target=job,
                         project_id=job.project_id, data=data)  # fmt: skip
        elif status == S.CANCELLED:
            record_event(event_type=EventType.JOB_CANCELLED, actor=system, target=job,
                         project_id=job.project_id, data=data)  # fmt: skip
        else:
            record_event(
                event_type=EventType.JOB_FAILED, actor=system, target=job,
                project_id=job.project_id,
                data=data | {"failure": job.failure, "error_class": job.error_class},
            )  # fmt: skip
    return status


def _hit_file_limit(output: Path) -> bool:
    """Whether a file reached the size limit (Python reports the refused write as an
    OSError; the file is cut at the limit)."""
    most = limits().file_bytes
    return any(
        path.is_file() and not path.is_symlink() and path.stat().st_size >= most
        for path in output.rglob("*")
    )


def _error_class(output: Path) -> str:
    try:
        value = str(json.loads((output / CONTROL / "error.json").read_text())["error_class"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return value if value.isidentifier() else ""


def _output_files(output: Path) -> tuple[list[tuple[str, Path]], str]:
    """The regular files a job left, by relative name; a link, device or other special
    file anywhere fails the job (its outputs are then never registered)."""
    found: list[tuple[str, Path]] = []
    pending = [output]
    while pending:
        folder = pending.pop()
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(output).as_posix()
            if relative == CONTROL:
                continue
            mode = entry.lstat().st_mode
            if stat.S_ISDIR(mode):
                pending.append(entry)
            elif stat.S_ISREG(mode) and entry.lstat().st_nlink == 1:
                found.append((relative, entry))
            else:
                return [], "it left a link or special file among its outputs, so none were kept"
    if len(found) > settings.SDE_JOB_MAX_OUTPUT_FILES:
        return [], f"it wrote more than {settings.SDE_JOB_MAX_OUTPUT_FILES} output files"
    return found, ""


KINDS: Final = {".csv": JobOutput.Kind.TABLE, ".png": JobOutput.Kind.CHART,
                ".json": JobOutput.Kind.EVIDENCE, ".txt": JobOutput.Kind.TEXT}  # fmt: skip


def _register_outputs(job: Job, files: list[tuple[str, Path]], system: User) -> None:
    names = {name for name, _ in files}
    for name, path in files:
        path.chmod(0o444)
        evidence = name[: -len(".csv")] + ".evidence.json" if name.endswith(".csv") else ""
        JobOutput.objects.create(
            job=job, name=name[:200],
            kind=KINDS.get(Path(name).suffix.lower(), JobOutput.Kind.OTHER),
            size=path.stat().st_size, sha256=file_sha256(path),
            evidence=evidence if evidence in names else "",
        )  # fmt: skip
    record_event(event_type=EventType.OUTPUTS_RECORDED, actor=system, target=job,
                 project_id=job.project_id,
                 data={"job_id": job.pk, "files": len(files)})  # fmt: skip


def _save_cohort(job: Job, output: Path, extract: Extract, system: User) -> None:
    path = output / CONTROL / "cohort.parquet"
    if job.kind != Job.Kind.BUILTIN or not path.is_file() or path.is_symlink():
        return
    builtin = analyses.get(job.analysis)
    if not builtin.saves_cohort:
        return
    size = pq.ParquetFile(path).metadata.num_rows
    target = data_root() / "cohorts" / str(job.project_id) / f"job-{job.pk}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    cohort = Cohort.objects.create(
        project_id=job.project_id, job=job,
        name=str(job.parameters.get("name") or builtin.cohort_name or builtin.title)[:120],
        description=builtin.title, definition=job.parameters, size=size,
        extract=extract, path=str(target.relative_to(data_root())), sha256=file_sha256(target),
    )  # fmt: skip
    record_event(event_type=EventType.COHORT_CREATED, actor=system, target=cohort,
                 project_id=job.project_id,
                 data={"cohort_id": cohort.pk, "job_id": job.pk, "size": size})  # fmt: skip


# --- The sweeper ------------------------------------------------------------------------
@dataclass
class Sweep:
    requeued: list[int]
    failed: list[int]
    resent: list[int]


def sweep_jobs(*, now: Any = None) -> Sweep:
    """Find jobs a stopped worker left running (no heartbeat for SDE_JOB_HEARTBEAT_
    TIMEOUT seconds): queue them again, or fail them once SDE_JOB_MAX_ATTEMPTS are used.
    Send queued jobs to the broker again when they have waited a while (the first send
    may have been lost to a broker outage; a job runs once whatever is delivered)."""
    now = now or timezone.now()
    system = get_system_user()
    stale = now - timedelta(seconds=settings.SDE_JOB_HEARTBEAT_TIMEOUT)
    sweep = Sweep([], [], [])
    for job_id in Job.objects.filter(status=S.RUNNING, heartbeat_at__lt=stale).values_list(
        "pk", flat=True
    ):
        with transaction.atomic(durable=True), governed_writes(Job):
            job = Job.objects.select_for_update().get(pk=job_id)
            if job.status != S.RUNNING or job.heartbeat_at is None or job.heartbeat_at >= stale:
                continue
            if job.attempts < settings.SDE_JOB_MAX_ATTEMPTS:
                job.status, job.progress, job.progress_message = S.QUEUED, 0, ""
                job.sent_at = None
                job.save()
                record_event(event_type=EventType.JOB_REQUEUED, actor=system, target=job,
                             project_id=job.project_id,
                             data={"job_id": job.pk, "attempts": job.attempts})  # fmt: skip
                transaction.on_commit(functools.partial(_enqueue, job.pk), robust=True)
                sweep.requeued.append(job.pk)
            else:
                job.status, job.finished_at = S.FAILED, now
                job.failure = "its worker stopped while it ran, on every attempt"
                job.save()
                record_event(event_type=EventType.JOB_FAILED, actor=system, target=job,
                             project_id=job.project_id,
                             data={"job_id": job.pk, "failure": job.failure})  # fmt: skip
                sweep.failed.append(job.pk)
    waiting = now - timedelta(seconds=settings.SDE_JOB_RESEND_SECONDS)
    unsent = Job.objects.filter(status=S.QUEUED, requested_at__lt=waiting).filter(
        Q(sent_at__isnull=True) | Q(sent_at__lt=waiting)
    )
    for job_id in unsent.values_list("pk", flat=True):
        try:
            _enqueue(job_id)
            sweep.resent.append(job_id)
        except KombuOperationalError:  # broker still down: try at the next sweep
            logger.warning("job %s: the broker is still unavailable", job_id)
            break
    return sweep
