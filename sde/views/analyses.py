"""The project workspace: its extracts, the built-in analyses and scripts it can run,
its jobs with live progress, their outputs, and its cohorts.

Every URL looks the project up for the person first (404 if they may not see it). Only
a member who may use the data now can run anything (the service decides, 403 otherwise).
For dummy runs the log and the outputs' contents are shown; for real runs only the
status, progress, exit code and error class, and the outputs' names and sizes: their
contents leave only through output checking.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from sde import policy
from sde.analysis import analyses, sandbox, selectors, services
from sde.analysis.models import Job
from sde.audit.events import EventType
from sde.audit.services import record_event
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.projects import selectors as project_selectors
from sde.projects.models import Project
from sde.views.analysis_forms import AnalysisForm, RunScriptForm, ScriptForm
from sde.views.forms import apply_errors
from sde.views.projects import _sentence, _user, project_page

INLINE_TYPES = {".png": "image/png", ".csv": "text/plain; charset=utf-8",
                ".json": "application/json", ".txt": "text/plain; charset=utf-8"}  # fmt: skip


def _cohort_choices(project: Project) -> list[tuple[int, str]]:
    """The project's saved cohorts, for an analysis that takes one."""
    choices = []
    for cohort in selectors.cohorts_of(project).select_related("extract"):
        kind = "dummy" if cohort.extract.is_dummy else "real"
        choices.append((cohort.pk, f"{cohort.name} (job {cohort.job_id}, {kind} extract)"))
    return choices


def _last_data_day(project: Project) -> date:
    """Today, or the end of the approved data period if that is earlier: an index date
    after the data ends counts nobody's events."""
    today = timezone.localdate()
    end = (project.scope or {}).get("date_to")
    return min(today, date.fromisoformat(end)) if end else today


def _context(request: HttpRequest, project: Project, **bound: Any) -> dict[str, Any]:
    user = _user(request)
    analysis_forms = bound.get("analysis_forms", {})
    jobs = list(selectors.jobs_of(project)[:50])
    cohorts = _cohort_choices(project)
    for job in jobs:
        job.title = selectors.job_title(job)  # type: ignore[attr-defined]
    return {
        "project": project,
        "refusal": policy.project_data_refusal(user, project, today=timezone.localdate()),
        "extracts": [
            project_selectors.extract_status(project, dummy=False),
            project_selectors.extract_status(project, dummy=True),
        ],
        "analyses": [
            {
                "builtin": b,
                "form": analysis_forms.get(b.name)
                or AnalysisForm(builtin=b, saved=cohorts, day=_last_data_day(project)),
            }
            for b in analyses.BUILTINS.values()
        ],
        "open_analysis": next(iter(analysis_forms), ""),
        "script_form": bound.get("script_form") or ScriptForm(prefix="script"),
        "editing": "script_form" in bound,
        "scripts": selectors.scripts_of(project)[:20],
        "run_script_form": RunScriptForm(prefix="run"),
        "jobs": jobs,
        "live": [j.pk for j in jobs if j.status in (Job.Status.QUEUED, Job.Status.RUNNING)],
        "cohorts": selectors.cohorts_of(project),
        "isolation": sandbox.isolation_refusal(),
    }


@project_page("GET", "HEAD")
def workspace(request: HttpRequest, project: Project) -> HttpResponse:
    if request.method == "GET":
        with transaction.atomic():
            record_event(event_type=EventType.PROJECT_WORKSPACE_VIEWED, actor=_user(request),
                         target=project, project_id=project.pk)  # fmt: skip
    bound: dict[str, Any] = {}
    edit = _int(request.GET.get("edit"))
    editing = selectors.scripts_of(project).filter(pk=edit).first() if edit else None
    if editing is not None:  # a saved version, loaded into the editor to change
        initial = {"name": editing.name, "content": editing.content}
        bound["script_form"] = ScriptForm(prefix="script", initial=initial)
    return render(request, "projects/workspace.html", _context(request, project, **bound))


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _refused(
    request: HttpRequest, project: Project, error: Exception, **bound: Any
) -> HttpResponse:
    status = 403 if isinstance(error, PermissionDenied) else 400
    messages.error(request, _sentence(error))
    return render(request, "projects/workspace.html", _context(request, project, **bound),
                  status=status)  # fmt: skip


def _may_not_use(request: HttpRequest, project: Project) -> HttpResponse | None:
    """The refusal, if the person may not use the project's data: checked before the
    form, so that a refusal never depends on what was sent."""
    try:
        policy.check_use_project_data(_user(request), project, today=timezone.localdate())
    except PermissionDenied as error:
        return _refused(request, project, error)
    return None


@project_page("POST")
def run_analysis(request: HttpRequest, project: Project, name: str) -> HttpResponse:
    try:
        builtin = analyses.get(name)
    except ValidationError:
        raise NotFound("no such analysis") from None
    if refused := _may_not_use(request, project):
        return refused
    form = AnalysisForm(request.POST, builtin=builtin, saved=_cohort_choices(project))
    bound = {"analysis_forms": {name: form}}
    if not form.is_valid():
        return render(request, "projects/workspace.html", _context(request, project, **bound),
                      status=400)  # fmt: skip
    try:
        job = services.submit_job(project=project, by=_user(request), analysis=name,
                                  parameters=form.parameters(),
                                  on_dummy=form.cleaned_data["run_on"] == "dummy")  # fmt: skip
    except ValidationError as error:
        apply_errors(form, error)
        return render(request, "projects/workspace.html", _context(request, project, **bound),
                      status=400)  # fmt: skip
    except PermissionDenied as error:
        return _refused(request, project, error, **bound)
    messages.success(request, f"Job {job.pk} is queued: {builtin.title}.")
    return redirect("job-detail", pk=project.pk, job_id=job.pk)


@project_page("POST")
def save_script(request: HttpRequest, project: Project) -> HttpResponse:
    if refused := _may_not_use(request, project):
        return refused
    form = ScriptForm(request.POST, request.FILES, prefix="script")
    if form.is_valid():
        try:
            script = services.save_script(
                project=project, name=form.cleaned_data["name"],
                content=form.cleaned_data["content"], by=_user(request),
            )  # fmt: skip
        except ValidationError as error:
            apply_errors(form, error)
        except PermissionDenied as error:
            return _refused(request, project, error, script_form=form)
        else:
            messages.success(
                request, f"Script {script.name} saved as version {script.sha256[:12]}."
            )
            return redirect("project-workspace", pk=project.pk)
    return render(request, "projects/workspace.html",
                  _context(request, project, script_form=form), status=400)  # fmt: skip


@project_page("POST")
def run_script(request: HttpRequest, project: Project, script_id: int) -> HttpResponse:
    script = selectors.scripts_of(project).filter(pk=script_id).first()
    if script is None:
        raise NotFound("no such script")
    if refused := _may_not_use(request, project):
        return refused
    form = RunScriptForm(request.POST, prefix="run")
    if not form.is_valid():
        messages.error(request, "Choose real or dummy data.")
        return redirect("project-workspace", pk=project.pk)
    try:
        job = services.submit_job(project=project, by=_user(request), script=script,
                                  on_dummy=form.cleaned_data["run_on"] == "dummy")  # fmt: skip
    except PermissionDenied as error:
        return _refused(request, project, error)
    messages.success(request, f"Job {job.pk} is queued: {script.name}.")
    return redirect("job-detail", pk=project.pk, job_id=job.pk)


# --- One job ----------------------------------------------------------------------------
@project_page("GET", "HEAD")
def job_detail(request: HttpRequest, project: Project, job_id: int) -> HttpResponse:
    job = selectors.job_for(_user(request), project, job_id)
    context = {
        "project": project,
        "job": job,
        "title": selectors.job_title(job),
        "outputs": job.outputs.all() if job.status == Job.Status.SUCCEEDED else [],
        "shows_content": selectors.shows_content(job),
        "status": selectors.job_status(job),
        "mine": job.requested_by_id == request.user.pk,
        "cohort": job.cohort if hasattr(job, "cohort") else None,
    }
    return render(request, "projects/job.html", context)


@project_page("GET", "HEAD")
def job_status(request: HttpRequest, project: Project, job_id: int) -> HttpResponse:
    job = selectors.job_for(_user(request), project, job_id)
    return JsonResponse(selectors.job_status(job))


@project_page("POST")
def job_cancel(request: HttpRequest, project: Project, job_id: int) -> HttpResponse:
    job = selectors.job_for(_user(request), project, job_id)
    try:
        job = services.cancel_job(job=job, by=_user(request))
    except InvalidTransition as error:
        messages.error(request, _sentence(error))
    else:
        messages.success(request, "Cancelled." if job.status == Job.Status.CANCELLED
                         else "Stopping the job: it ends within a few seconds.")  # fmt: skip
    return redirect("job-detail", pk=project.pk, job_id=job.pk)


@project_page("POST")
def job_rerun(request: HttpRequest, project: Project, job_id: int) -> HttpResponse:
    job = selectors.job_for(_user(request), project, job_id)
    rerun = services.rerun_job(job=job, by=_user(request))
    messages.success(
        request, f"Job {rerun.pk} is queued: the same code and parameters as job {job.pk}."
    )
    return redirect("job-detail", pk=project.pk, job_id=rerun.pk)


def _file(path: Path) -> HttpResponseBase:
    """A dummy run's file, shown in the browser but never run as a page."""
    content_type = INLINE_TYPES.get(path.suffix.lower(), "application/octet-stream")
    response = FileResponse(path.open("rb"), content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'"
    return response


@project_page("GET", "HEAD")
def job_log(request: HttpRequest, project: Project, job_id: int) -> HttpResponseBase:
    job = selectors.job_for(_user(request), project, job_id)
    return _file(services.open_job_file(job=job, by=_user(request)))


@project_page("GET", "HEAD")
def job_output(
    request: HttpRequest, project: Project, job_id: int, output_id: int
) -> HttpResponseBase:
    job = selectors.job_for(_user(request), project, job_id)
    output = selectors.output_for(job, output_id)
    return _file(services.open_job_file(job=job, by=_user(request), output=output))
