"""Reads for the analysis pages and API: a project's jobs, scripts and cohorts, what a
person may see of a job, and the file behind an output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from sde import policy
from sde.analysis import analyses
from sde.analysis.models import Cohort, Job, JobOutput, Script
from sde.data.files import data_root
from sde.exceptions import NotFound
from sde.projects.models import Project


def jobs_of(project: Project) -> QuerySet[Job]:
    return Job.objects.filter(project=project).select_related("requested_by", "script", "extract")


def scripts_of(project: Project) -> QuerySet[Script]:
    return Script.objects.filter(project=project).select_related("created_by")


def cohorts_of(project: Project) -> QuerySet[Cohort]:
    return Cohort.objects.filter(project=project, deleted_at__isnull=True).select_related(
        "job", "extract", "project"
    )


def job_for(user: Any, project: Project, job_id: int) -> Job:
    """The project's job (the caller has already found the project visible)."""
    policy.check_view_project(user, project)
    job = jobs_of(project).filter(pk=job_id).first()
    if job is None:
        raise NotFound("no such job")
    return job


def shows_content(job: Job) -> bool:
    """Whether a job's log and output contents may be shown in the workspace: only for
    dummy data. A real run's outputs leave only through output checking; its log is
    kept for the checkers (DESIGN.md: nothing row-level leaves)."""
    return job.on_dummy


def output_for(job: Job, output_id: int) -> JobOutput:
    output = job.outputs.filter(pk=output_id).first()
    if output is None or not shows_content(job):
        raise NotFound("no such output")
    return output


def output_path(output: JobOutput) -> Path:
    return data_root() / output.job.folder / "output" / output.name


def log_path(job: Job) -> Path:
    if not shows_content(job) or not job.folder:
        raise NotFound("no such log")
    return data_root() / job.folder / "log.txt"


def job_status(job: Job) -> dict[str, Any]:
    """What the page's progress bar polls: never the log or an output."""
    return {
        "id": job.pk,
        "status": job.status,
        "status_text": Job.Status(job.status).label,
        "progress": job.progress,
        "message": job.progress_message,
        "finished": job.status in ("succeeded", "failed", "cancelled"),
        "exit_code": job.exit_code,
        "error_class": job.error_class,
        "failure": job.failure,
        "outputs": job.outputs.count() if job.status == "succeeded" else 0,
    }


def job_title(job: Job) -> str:
    """What a job ran, as the pages and the API name it."""
    if job.script is not None:
        return f"Script {job.script.name}"
    builtin = analyses.BUILTINS.get(job.analysis)
    return builtin.title if builtin else job.analysis
