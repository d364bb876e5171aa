"""Core Celery tasks: thin, JSON-only, idempotent; they call services."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from sde.audit.selectors import verify_audit_log
from sde.audit.services import get_system_user, record_verification, sign_checkpoint
from sde.data.ingestion import run_ingest
from sde.data.models import Ingest
from sde.exceptions import AuditError

logger = logging.getLogger(__name__)
INGEST_DATABASE_RETRIES = 20  # with a backoff to 30 s: about eight minutes of outage


@shared_task(name="sde.tasks.verify_audit_task", time_limit=1800, soft_time_limit=1700)
def verify_audit_task() -> bool:
    """Scheduled verification of the whole chain; a failure alerts IG (by email)."""
    result = verify_audit_log()
    record_verification(result=result, by=get_system_user())
    if not result.ok:
        logger.error("audit verification failed at sequence %s", result.first_bad_sequence)
    return result.ok


@shared_task(name="sde.tasks.sign_audit_checkpoint_task", time_limit=1800, soft_time_limit=1700)
def sign_audit_checkpoint_task() -> int | None:
    """Sign a checkpoint of the chain's head (idempotent: nothing if already signed)."""
    try:
        checkpoint = sign_checkpoint(by=get_system_user())
    except AuditError as error:
        logger.error("audit checkpoint not signed: %s", error)
        return None
    return checkpoint.sequence if checkpoint else None


@shared_task(
    bind=True,
    name="sde.tasks.ingest_drop_task",
    time_limit=3 * 3600,
    soft_time_limit=3 * 3600 - 60,
    max_retries=INGEST_DATABASE_RETRIES,
)
def ingest_drop_task(self: Task, ingest_id: int) -> str:
    """Run a queued ingest. Idempotent: a finished ingest is left as it is; a redelivered
    task (its worker died mid-run) starts the ingest again from a clean staging folder.

    When the database goes away mid-run, the failure cannot be recorded either and the
    ingest would stay "running" for good: the task is retried with a backoff instead, and
    the retry starts it again (or finds it finished) once the database is back."""
    ingest = Ingest.objects.filter(pk=ingest_id).first()
    if ingest is None:
        return "missing"
    if ingest.status in (Ingest.Status.SUCCEEDED, Ingest.Status.FAILED):
        return str(ingest.status)
    try:
        ingest = run_ingest(ingest=ingest, by=get_system_user())
    except (OperationalError, InterfaceError) as error:  # the database is unreachable
        logger.error("ingest %s stopped: database unavailable (%s); retrying", ingest_id,
                     type(error).__name__)  # fmt: skip
        raise self.retry(countdown=min(30, 2**self.request.retries), exc=error) from None
    except Exception as error:  # noqa: BLE001 - run_ingest has recorded the failure
        logger.error("ingest %s failed: %s", ingest_id, type(error).__name__)
        return str(Ingest.Status.FAILED)
    return str(ingest.status)


@shared_task(name="sde.tasks.project_compliance_task", time_limit=1800, soft_time_limit=1700)
def project_compliance_task() -> dict[str, object]:
    """The compliance clock: expiry, lapses, reminders (idempotent for a day)."""
    from sde.projects.services import run_compliance

    run = run_compliance(today=timezone.localdate())
    return {"expired": run.expired, "suspended": run.suspended, "reminders": run.reminders}


@shared_task(
    name="sde.tasks.build_project_extracts_task", time_limit=3 * 3600, soft_time_limit=3 * 3600 - 60
)
def build_project_extracts_task(project_id: int) -> str:
    """Build an approved project's real and dummy extracts. Idempotent: an extract the
    project already has is left as it is (``extract_for_use`` rebuilds stale ones), so a
    redelivery after the worker died between the two builds only builds the missing one."""
    from sde.projects.models import Project
    from sde.projects.services import build_project_extracts

    project = Project.objects.filter(pk=project_id, status=Project.Status.ACTIVE).first()
    if project is None:
        return "not active"
    built = build_project_extracts(project=project, by=get_system_user())
    return "built" if built else "exists"


@shared_task(name="sde.tasks.run_job_task", time_limit=7200, soft_time_limit=7100)
def run_job_task(job_id: int) -> str:
    """Run one analysis job in the sandbox. Idempotent: only a queued job is taken (under
    a row lock), so a redelivered or resent task does nothing."""
    from sde.analysis.services import run_job

    return run_job(job_id=job_id)


@shared_task(name="sde.tasks.sweep_jobs_task", time_limit=600, soft_time_limit=540)
def sweep_jobs_task() -> dict[str, list[int]]:
    """Requeue or fail jobs a stopped worker left running; resend long-queued jobs."""
    from sde.analysis.services import sweep_jobs

    sweep = sweep_jobs()
    return {"requeued": sweep.requeued, "failed": sweep.failed, "resent": sweep.resent}


@shared_task(name="sde.tasks.perform_reidentification_task", time_limit=1800, soft_time_limit=1700)
def perform_reidentification_task(request_id: int) -> str:
    """Make an approved re-identification request's list. Idempotent: a request in any
    other state is left as it is. Takes the id only: no NHS number is ever in a message."""
    from sde.directcare import services as directcare
    from sde.directcare.models import ReidentificationRequest

    request = ReidentificationRequest.objects.filter(pk=request_id).first()
    if request is None:
        return "missing"
    return str(directcare.perform(request=request).status)


@shared_task(name="sde.tasks.sweep_reidentification_task", time_limit=600, soft_time_limit=540)
def sweep_reidentification_task() -> dict[str, object]:
    """Delete expired lists; send approved requests a broker outage left unsent."""
    from sde.directcare import services as directcare

    return directcare.sweep()
