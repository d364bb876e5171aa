"""Release requests through the REST API: drafting (files from the project's jobs with
context and controls, exception requests), submission, the checkers' queue and blind
reviews, downloads of released files, revocation, and the ACRO-compatible export, through
``outputs.services`` and ``selectors`` as the pages.

A request the caller may not see answers 404 (another project's, a draft for a checker),
and so does a file, job, output or review id that is not the request's or the caller's;
an action on a request they see but may not take answers 403, checked by the policy
before the body is read; the wrong state answers 409; invalid input 400 with field
errors. Every write, every checker's view of a file and every download is audited by its
service.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import PurePosixPath
from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from outputs import acro_export, selectors, services
from outputs import api_serializers as s
from outputs.models import ReleaseFile, ReleaseRequest, Review
from sde import policy
from sde.analysis import selectors as analysis_selectors
from sde.api.analysis_views import FILE_RESPONSE, FILE_TYPES, FileRenderer
from sde.api.common import user_of, validated
from sde.exceptions import NotFound, PermissionDenied, ValidationError
from sde.identity.models import User
from sde.projects import selectors as project_selectors
from sde.projects.models import Project

CONFLICT = OpenApiResponse(description="The request is not in a state that allows this.")


def _may(check: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
    """Whether a policy check passes (for what a response offers the caller)."""
    try:
        check(*args, **kwargs)
    except (NotFound, PermissionDenied):
        return False
    return True


def _context(user: User, release: ReleaseRequest) -> dict[str, Any]:
    """What the caller may see of a request beyond its metadata."""
    return {
        "user": user,
        "reviewer": _may(policy.check_review_release, user, release),
        "downloader": _may(policy.check_download_release, user, release),
        "review_state": _review_state(user, release),
    }


def _review_state(user: User, release: ReleaseRequest) -> dict[str, Any] | None:
    if not policy.user_checks_outputs(user):
        return None
    reviews = selectors.reviews_of_round(release)
    return {
        "round": release.round,
        "reviews_started": len(reviews),
        "reviews_submitted": sum(review.submitted_at is not None for review in reviews),
        "mine": next((review for review in reviews if review.reviewer_id == user.pk), None),
        "disputed": selectors.disputed(release),
        "conflict": policy.release_reviewer_conflict(user, release),
    }


def _detail(request: Request, release: ReleaseRequest, code: int = 200) -> Response:
    user = user_of(request)
    fresh = selectors.get_request(user, release.pk)  # re-read: a service may have moved it
    data = s.ReleaseRequestDetailSerializer(fresh, context=_context(user, fresh)).data
    headers = {}
    if code == status.HTTP_201_CREATED:
        headers["Location"] = reverse("api-release", args=[fresh.pk])
    return Response(data, status=code, headers=headers)


def _file_data(request: Request, file: ReleaseFile) -> dict[str, Any]:
    release = file.request
    context = _context(user_of(request), release)
    return s.ReleaseFileSerializer(file, context=context).data  # type: ignore[no-any-return]


def _today() -> date:
    return timezone.localdate()


class ReleaseScoped(APIView):
    """A URL under one release request: after authentication, the request is looked up
    for the caller (404 if they may not see it) before the method is dispatched."""

    release: ReleaseRequest

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.release = selectors.get_request(request.user, kwargs["pk"])

    def file(self, file_id: int) -> ReleaseFile:
        return selectors.get_file(self.request.user, self.release, file_id)


# --- Requests ---------------------------------------------------------------------------
def _status_filter(requests: Any, wanted: str | None) -> Any:
    if not wanted:
        return requests
    if wanted not in ReleaseRequest.Status.values:
        raise ValidationError("unknown status", {"status": ["Not a status."]})
    return requests.filter(status=wanted)


STATUS_PARAMETER = OpenApiParameter("status", str, enum=ReleaseRequest.Status.values)


class ReleaseList(generics.ListAPIView):
    """Every release request the caller may see, newest first: their projects'; for
    output checkers, those submitted from projects they are not members of; for IG
    officers, all."""

    serializer_class = s.ReleaseRequestSerializer

    def get_queryset(self) -> Any:
        requests = selectors.visible_requests(self.request.user)
        return _status_filter(requests, self.request.query_params.get("status"))

    @extend_schema(parameters=[STATUS_PARAMETER])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ProjectReleases(generics.ListAPIView):
    """A project's release requests the caller may see, newest first (GET); start one
    (POST: a data-using member; 201). 404 for anyone who may not see the project."""

    serializer_class = s.ReleaseRequestSerializer
    queryset = ReleaseRequest.objects.none()  # the schema's model; the requests are the project's
    project: Project

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.project = project_selectors.project_for(request.user, kwargs["pk"])

    def get_queryset(self) -> Any:
        requests = selectors.visible_requests(self.request.user).filter(project=self.project)
        return _status_filter(requests, self.request.query_params.get("status"))

    @extend_schema(parameters=[STATUS_PARAMETER])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.ReleaseCreateSerializer, responses={201: s.ReleaseRequestDetailSerializer}
    )
    def post(self, request: Request, pk: int) -> Response:
        policy.check_request_release(request.user, self.project, today=_today())
        body = validated(s.ReleaseCreateSerializer, request)
        created = services.create_request(project=self.project, by=user_of(request), **body)
        return _detail(request, created, status.HTTP_201_CREATED)


class ReleaseDetail(ReleaseScoped):
    """One request: status and round, the policy, each file with its outcome, rules,
    findings and exception requests, and the decisions the caller may read."""

    @extend_schema(responses=s.ReleaseRequestDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return _detail(request, self.release)


class _AuthorAction(ReleaseScoped):
    @extend_schema(request=None, responses={200: s.ReleaseRequestDetailSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        return _detail(request, self.act(self.release, user_of(request)))

    def act(self, release: ReleaseRequest, user: User) -> ReleaseRequest:
        raise NotImplementedError


class Submit(_AuthorAction):
    """Submit (or resubmit after a return: a new review round): at least one file, each
    still the bytes checked, and an exception request for every rule a file did not pass
    (400 naming the files otherwise)."""

    def act(self, release: ReleaseRequest, user: User) -> ReleaseRequest:
        return services.submit(request=release, by=user)


class Withdraw(_AuthorAction):
    """The author withdraws a draft, submitted or returned request."""

    def act(self, release: ReleaseRequest, user: User) -> ReleaseRequest:
        return services.withdraw(request=release, by=user)


class Revoke(ReleaseScoped):
    """An IG officer revokes a release: its files can no longer be downloaded."""

    @extend_schema(
        request=s.RevokeSerializer, responses={200: s.ReleaseRequestDetailSerializer, 409: CONFLICT}
    )
    def post(self, request: Request, pk: int) -> Response:
        policy.check_revoke_release(request.user, self.release)
        body = validated(s.RevokeSerializer, request)
        revoked = services.revoke(request=self.release, by=user_of(request), **body)
        return _detail(request, revoked)


# --- Files ------------------------------------------------------------------------------
class Files(ReleaseScoped):
    """Add a job's output, or a real run's log, with what it shows and what was done to
    make it safe (the author, while the request is a draft or returned). The automated
    checks run on its bytes at once; the file's verdict is in the response (201)."""

    @extend_schema(
        request=s.FileAddSerializer, responses={201: s.ReleaseFileSerializer, 409: CONFLICT}
    )
    def post(self, request: Request, pk: int) -> Response:
        user = user_of(request)
        policy.check_release_author(user, self.release, today=_today())
        body = validated(s.FileAddSerializer, request)
        job = analysis_selectors.job_for(user, self.release.project, body["job_id"])
        output = None
        if body["output_id"] != s.LOG:
            output = job.outputs.filter(pk=body["output_id"]).first()
            if output is None:
                raise NotFound("no such output")
        added = services.add_file(request=self.release, job=job, output=output,
                                  context=body["context"], controls=body["controls"],
                                  by=user)  # fmt: skip
        location = reverse("api-release-file", args=[self.release.pk, added.pk])
        return Response(_file_data(request, added), status=status.HTTP_201_CREATED,
                        headers={"Location": location})  # fmt: skip


class FileDetail(ReleaseScoped):
    """One file of the request (GET); take it out of a draft or returned request
    (DELETE: the author; it stays listed as removed in this round)."""

    @extend_schema(responses=s.ReleaseFileSerializer)
    def get(self, request: Request, pk: int, file_id: int) -> Response:
        return Response(_file_data(request, self.file(file_id)))

    @extend_schema(responses={204: None, 409: CONFLICT})
    def delete(self, request: Request, pk: int, file_id: int) -> Response:
        services.remove_file(file=self.file(file_id), by=user_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class Exceptions(ReleaseScoped):
    """The author's exception request for a rule the file did not pass: the reason and
    the justification (201; filing again for the same rule replaces it: 200)."""

    @extend_schema(
        request=s.ExceptionCreateSerializer,
        responses={200: s.ExceptionRequestSerializer, 201: s.ExceptionRequestSerializer,
                   409: CONFLICT},
    )  # fmt: skip
    def post(self, request: Request, pk: int, file_id: int) -> Response:
        user = user_of(request)
        file = self.file(file_id)
        policy.check_release_author(user, self.release, today=_today())
        body = validated(s.ExceptionCreateSerializer, request)
        replaced = file.exceptions.filter(rule=body["rule"]).exists()
        made = services.request_exception(file=file, by=user, **body)
        code = status.HTTP_200_OK if replaced else status.HTTP_201_CREATED
        return Response(s.ExceptionRequestSerializer(made).data, status=code)


class _Bytes(ReleaseScoped):
    renderer_classes = [JSONRenderer, FileRenderer]


def _bytes_response(file: ReleaseFile, data: bytes) -> HttpResponse:
    """A file's bytes as a download that is never run as a page."""
    name = PurePosixPath(file.name)
    response = HttpResponse(
        data, content_type=FILE_TYPES.get(name.suffix.lower(), "application/octet-stream")
    )
    response["Content-Disposition"] = content_disposition_header(True, name.name) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


class Download(_Bytes):
    """A released file's bytes, for a current member of the project: verified against
    the hash the checkers reviewed (a mismatch is withheld, 403), and audited. 404 for
    anything not released, and for everyone else."""

    @extend_schema(responses=FILE_RESPONSE)
    def get(self, request: Request, pk: int, file_id: int) -> HttpResponse:
        file = self.file(file_id)
        data = services.open_released(file=file, by=user_of(request))
        response = _bytes_response(file, data)
        response["X-Content-SHA256"] = file.sha256
        return response


class DownloadAll(_Bytes):
    """Every released file of the request in one zip, laid out as the page's download
    (``job-<job id>/<name>``, with ``manifest.json`` and ``SHA256SUMS``); each file is
    read, verified and audited through ``open_released``. 404 as for one file."""

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> HttpResponse:
        release = self.release
        data = services.released_archive(request=release, by=user_of(request))
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="release-{release.pk}.zip"'
        response["X-Content-Type-Options"] = "nosniff"
        return response


class Content(_Bytes):
    """A file's current bytes for an output checker who may review the request (audited).
    ``X-Unchanged-Since-Checked: false`` warns that they are no longer the bytes checked."""

    @extend_schema(responses=FILE_RESPONSE)
    def get(self, request: Request, pk: int, file_id: int) -> HttpResponse:
        file = self.file(file_id)
        data, unchanged = services.open_for_review(file=file, by=user_of(request))
        response = _bytes_response(file, data)
        response["X-Unchanged-Since-Checked"] = "true" if unchanged else "false"
        return response


class Results(ReleaseScoped):
    """The request's current files as ACRO 1.0.2's ``results.json`` (outcome as status,
    the rules as checks cell by cell, context as comments, exception requests), for
    SACRO-Viewer. Metadata only: no file's contents."""

    renderer_classes = [JSONRenderer]

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        response = Response(acro_export.acro_results(self.release))
        response["Content-Disposition"] = 'attachment; filename="results.json"'
        return response


# --- Review -----------------------------------------------------------------------------
class Queue(APIView):
    """Requests waiting for review that the caller may review (never their own project's),
    oldest first, with their age and how many reviews are in (output checkers; 404 for
    everyone else)."""

    @extend_schema(responses=s.OutputQueueEntrySerializer(many=True))
    def get(self, request: Request) -> Response:
        user = user_of(request)
        if not policy.user_checks_outputs(user):
            raise NotFound("no such page")
        entries = []
        for release in selectors.checker_queue(user).select_related("assignee"):
            mine = next((review for review in selectors.reviews_of_round(release)
                         if review.reviewer_id == user.pk), None)  # fmt: skip
            reviews_in = release.reviews_in  # type: ignore[attr-defined]  # checker_queue's count
            entries.append({"request": release, "age_days": selectors.age_days(release),
                            "reviews_in": reviews_in, "mine": mine})  # fmt: skip
        return Response(s.OutputQueueEntrySerializer(entries, many=True).data)


class StartReview(ReleaseScoped):
    """An independent output checker takes the request for this round (201; 200 with
    their review if they already had). Two per round, and a third only to settle files
    the two disagree on (409 otherwise)."""

    @extend_schema(
        request=None,
        responses={200: s.ReviewSerializer, 201: s.ReviewSerializer, 409: CONFLICT},
    )
    def post(self, request: Request, pk: int) -> Response:
        user = user_of(request)
        policy.check_review_release(user, self.release)
        had = any(r.reviewer_id == user.pk for r in selectors.reviews_of_round(self.release))
        review = services.start_review(request=self.release, by=user)
        if had:
            return Response(s.ReviewSerializer(review).data)
        location = reverse("api-review", args=[review.pk])
        return Response(s.ReviewSerializer(review).data, status=status.HTTP_201_CREATED,
                        headers={"Location": location})  # fmt: skip


class ReviewScoped(APIView):
    """A URL under one of the caller's own reviews (404 for anyone else's)."""

    review: Review

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        review = (
            Review.objects.filter(pk=kwargs["pk"], reviewer=request.user.pk)
            .select_related("request", "reviewer")
            .first()
        )
        if review is None:
            raise NotFound("no such review")
        selectors.get_request(request.user, review.request_id)  # still visible to them
        self.review = review


class ReviewDetail(ReviewScoped):
    """The caller's review: its round, whether it is submitted, and their decisions."""

    @extend_schema(responses=s.ReviewSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(s.ReviewSerializer(self.review).data)


class Decision(ReviewScoped):
    """Approve, request changes to or reject a file, with a comment (required to approve
    a failing file, to reject a passing one, for every decision on a file for review, and
    to request changes), and the exceptions granted or refused. Changeable until the
    review is submitted."""

    @extend_schema(
        request=s.DecisionBodySerializer, responses={200: s.FileDecisionSerializer, 409: CONFLICT}
    )
    def post(self, request: Request, pk: int, file_id: int) -> Response:
        user = user_of(request)
        policy.check_review_release(user, self.review.request)
        file = selectors.get_file(user, self.review.request, file_id)
        body = validated(s.DecisionBodySerializer, request)
        made = services.decide_file(review=self.review, file=file, by=user, **body)
        return Response(s.FileDecisionSerializer(made).data)


class ReviewSubmit(ReviewScoped):
    """Submit the review (every file decided). The second review settles the request:
    approved and released, returned or rejected, unless the two disagree on a file."""

    @extend_schema(request=None, responses={200: s.ReleaseRequestDetailSerializer, 409: CONFLICT})
    def post(self, request: Request, pk: int) -> Response:
        settled = services.submit_review(review=self.review, by=user_of(request))
        return _detail(request, settled)
