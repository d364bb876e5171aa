"""The analysis workspace through the REST API: the built-in analyses, a project's jobs
(submit, cancel, re-run; the log and outputs of dummy runs), its script versions and its
cohorts, through ``sde.analysis.services`` and ``selectors``, as the workspace pages.

Every project URL looks the project up for the caller before anything else, so anyone
who may not see it gets 404 whatever the method (``ProjectScoped.initial``). Only a
member who may use the data now runs anything or saves a script (the services decide:
403 otherwise). Only dummy runs show their log and outputs; for a real run both answer
404 to everyone, as on the page, and its outputs leave only through output checking.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.http import FileResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sde import policy
from sde.analysis import analyses, selectors, services
from sde.analysis.models import Cohort, Job, Script
from sde.api import analysis_serializers as s
from sde.api.common import user_of, validated
from sde.exceptions import NotFound, ValidationError
from sde.projects import selectors as project_selectors
from sde.projects.models import Project

# The types a job's files are sent as (anything else is a download of bytes).
FILE_TYPES = {".png": "image/png", ".csv": "text/csv; charset=utf-8",
              ".json": "application/json", ".txt": "text/plain; charset=utf-8"}  # fmt: skip
# The file is sent as its own type (FILE_TYPES), so any media type may come back.
FILE_RESPONSE = {(200, "*/*"): OpenApiTypes.BINARY}


def _check_use(request: Request, project: Project) -> None:
    """The permission before the body: a refusal never depends on what was sent."""
    policy.check_use_project_data(user_of(request), project, today=timezone.localdate())


def _job_response(job: Job, *, created: bool = False) -> Response:
    body = s.JobDetailSerializer(job).data
    if not created:
        return Response(body)
    location = reverse("api-project-job", args=[job.project_id, job.pk])
    return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


class ProjectScoped(APIView):
    """A URL under one project: after authentication, the project is looked up for the
    caller (404 if they may not see it) before the method is even dispatched."""

    project: Project

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.project = project_selectors.project_for(request.user, kwargs["pk"])

    def job(self, job_id: int) -> Job:
        return selectors.job_for(self.request.user, self.project, job_id)


class FileRenderer(BaseRenderer):
    """Lets a client ask for a file's own type; only an error is rendered here (the file
    itself is sent as its bytes)."""

    media_type = "*/*"
    format = "file"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, context: Any = None) -> bytes:
        response = (context or {}).get("response")
        if response is not None:  # an error's text, not "*/*" (no media type at all)
            response["Content-Type"] = "text/plain; charset=utf-8"
        detail = data.get("detail", "") if isinstance(data, dict) else data
        return str(detail or "").encode()


def _file(path: Path) -> FileResponse:
    """A dummy run's file, as a download that is never run as a page."""
    content_type = FILE_TYPES.get(path.suffix.lower(), "application/octet-stream")
    response = FileResponse(path.open("rb"), as_attachment=True, filename=path.name,
                            content_type=content_type)  # fmt: skip
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --- The built-in analyses ------------------------------------------------------------------
class AnalysisList(APIView):
    """The built-in analyses a project can run, with the parameters each takes."""

    @extend_schema(responses=s.AnalysisSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(s.AnalysisSerializer(analyses.BUILTINS.values(), many=True).data)


# --- Jobs -------------------------------------------------------------------------------------
class Jobs(ProjectScoped, generics.ListAPIView):
    """The project's jobs, newest first (GET); queue a built-in analysis or a script
    version on the real or dummy extract (POST: 201, sent to a worker after commit)."""

    serializer_class = s.JobSerializer
    queryset = Job.objects.none()  # the schema's model; the jobs are the project's

    def get_queryset(self) -> Any:
        wanted = self.request.query_params.get("status", "")
        if wanted and wanted not in Job.Status.values:
            raise ValidationError("unknown status", {"status": ["Not a status."]})
        jobs = selectors.jobs_of(self.project)
        return jobs.filter(status=wanted) if wanted else jobs

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=Job.Status.values)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.JobSubmitSerializer, responses={201: s.JobDetailSerializer})
    def post(self, request: Request, pk: int) -> Response:
        _check_use(request, self.project)
        body = validated(s.JobSubmitSerializer, request)
        script = None
        if "script_id" in body:
            script = selectors.scripts_of(self.project).filter(pk=body["script_id"]).first()
            if script is None:
                raise NotFound("no such script")
        job = services.submit_job(
            project=self.project, by=user_of(request), on_dummy=body["on_dummy"],
            analysis=body.get("analysis", ""), parameters=body.get("parameters"), script=script,
        )  # fmt: skip
        return _job_response(job, created=True)


class JobDetail(ProjectScoped):
    """One job: status, progress, how it ended, what it ran with (to run it again the same
    way), the resources it used, and its outputs (contents for dummy runs only)."""

    @extend_schema(responses=s.JobDetailSerializer)
    def get(self, request: Request, pk: int, job_id: int) -> Response:
        return _job_response(self.job(job_id))


class JobCancel(ProjectScoped):
    """Cancel a queued job, or ask the worker to stop a running one: only the person who
    started it (403 for anyone else), and 409 once it has finished."""

    @extend_schema(request=None, responses=s.JobDetailSerializer)
    def post(self, request: Request, pk: int, job_id: int) -> Response:
        return _job_response(services.cancel_job(job=self.job(job_id), by=user_of(request)))


class JobRerun(ProjectScoped):
    """Queue the same code with the same parameters on the same kind of extract."""

    @extend_schema(request=None, responses={201: s.JobDetailSerializer})
    def post(self, request: Request, pk: int, job_id: int) -> Response:
        rerun = services.rerun_job(job=self.job(job_id), by=user_of(request))
        return _job_response(rerun, created=True)


class JobLog(ProjectScoped):
    """A dummy run's full log (audited). A real run's log is kept for the output
    checkers: 404 here for everyone."""

    renderer_classes = [JSONRenderer, FileRenderer]

    @extend_schema(responses=FILE_RESPONSE)
    def get(self, request: Request, pk: int, job_id: int) -> FileResponse:
        job = self.job(job_id)
        return _file(services.open_job_file(job=job, by=user_of(request)))


class JobOutputFile(ProjectScoped):
    """A dummy run's output file (audited). A real run's outputs leave only through
    output checking: 404 here for everyone."""

    renderer_classes = [JSONRenderer, FileRenderer]

    @extend_schema(responses=FILE_RESPONSE)
    def get(self, request: Request, pk: int, job_id: int, output_id: int) -> FileResponse:
        job = self.job(job_id)
        output = selectors.output_for(job, output_id)
        return _file(services.open_job_file(job=job, by=user_of(request), output=output))


# --- Scripts and cohorts ----------------------------------------------------------------------
class Scripts(ProjectScoped, generics.ListAPIView):
    """The project's script versions, newest first (GET); save a version (POST: 201, or
    200 with the existing version when the content is the same)."""

    serializer_class = s.ScriptSerializer
    queryset = Script.objects.none()  # the schema's model; the scripts are the project's

    def get_queryset(self) -> Any:
        return selectors.scripts_of(self.project)

    @extend_schema(
        request=s.ScriptSaveSerializer, responses={200: s.ScriptSerializer, 201: s.ScriptSerializer}
    )
    def post(self, request: Request, pk: int) -> Response:
        _check_use(request, self.project)
        body = validated(s.ScriptSaveSerializer, request)
        # A version is its content's hash; say whether this one is new.
        digest = hashlib.sha256(body["content"].encode()).hexdigest()
        known = selectors.scripts_of(self.project).filter(sha256=digest).exists()
        script = services.save_script(project=self.project, by=user_of(request), **body)
        code = status.HTTP_200_OK if known else status.HTTP_201_CREATED
        return Response(s.ScriptSerializer(script).data, status=code)


class Cohorts(ProjectScoped, generics.ListAPIView):
    """The cohorts the project's analyses saved: name, size (below 10 not shown exactly),
    and the job and extract they came from. The people stay inside the environment."""

    serializer_class = s.CohortSerializer
    queryset = Cohort.objects.none()  # the schema's model; the cohorts are the project's

    def get_queryset(self) -> Any:
        return selectors.cohorts_of(self.project)
