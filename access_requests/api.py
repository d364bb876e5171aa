"""Access requests through the REST API: drafting, submission, comments, attachments and
review, through the same services as the pages (``access_requests.services``).

A request the caller may not see answers 404 (another applicant's request, a draft for a
reviewer); one they see but may not act on answers 403, checked by the policy before the
body is read; the wrong state or a stale revision answers 409; invalid input 400 with
field errors. Every write, and every attachment download, is audited by its service.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access_requests import api_serializers as s
from access_requests import selectors, services
from access_requests.models import AccessRequest, Attachment
from sde import policy
from sde.api.common import user_of
from sde.exceptions import ValidationError
from sde.identity.models import User
from sde.projects import selectors as project_selectors


def _detail(request: Request, access_request: AccessRequest, code: int = 200) -> Response:
    data = s.AccessRequestDetailSerializer(
        access_request, context={"request": request, "user": user_of(request)}
    ).data
    headers = {}
    if code == status.HTTP_201_CREATED:
        headers["Location"] = reverse("api-access-request", args=[access_request.pk])
    return Response(data, status=code, headers=headers)


def _body(serializer_class: type[Any], request: Request) -> dict[str, Any]:
    body = serializer_class(data=request.data, context={"user": user_of(request)})
    body.is_valid(raise_exception=True)
    return body.validated_data  # type: ignore[no-any-return]


# --- Requests ---------------------------------------------------------------------------
class AccessRequestList(generics.ListAPIView):
    """The requests the caller may see (GET): their own, and for reviewers every request
    once submitted. Start a new application (POST)."""

    serializer_class = s.AccessRequestSerializer

    def get_queryset(self) -> Any:
        requests = services.visible_requests(self.request.user)
        wanted = self.request.query_params.get("status")
        if wanted is not None:
            if wanted not in AccessRequest.Status.values:
                raise ValidationError("unknown status", {"status": ["Not a status."]})
            requests = requests.filter(status=wanted)
        return requests

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=AccessRequest.Status.values)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.AccessRequestCreateSerializer,
        responses={201: s.AccessRequestDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        policy.check_apply_for_access(request.user)
        body = _body(s.AccessRequestCreateSerializer, request)
        created = services.create_request(by=user_of(request), **body)
        return _detail(request, created, status.HTTP_201_CREATED)


class AccessRequestDetail(APIView):
    """One request (GET); save answers while it is a draft or returned (PATCH)."""

    @extend_schema(responses=s.AccessRequestDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return _detail(request, services.get_request(request.user, pk))

    @extend_schema(
        request=s.AnswersUpdateSerializer,
        responses={
            200: s.AccessRequestDetailSerializer,
            409: OpenApiResponse(description="Not editable, or the revision is stale."),
        },
    )
    def patch(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        policy.check_applicant(request.user, access_request)
        body = _body(s.AnswersUpdateSerializer, request)
        saved, _ = services.save_answers(request=access_request, by=user_of(request), **body)
        return _detail(request, saved)


class _ApplicantAction(APIView):
    @extend_schema(request=None, responses=s.AccessRequestDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        policy.check_applicant(request.user, access_request)
        return _detail(request, self.act(access_request, user_of(request)))

    def act(self, access_request: AccessRequest, user: User) -> AccessRequest:
        raise NotImplementedError


class Submit(_ApplicantAction):
    """Submit (or resubmit after a return): every section complete (400 with what is
    missing otherwise)."""

    def act(self, access_request: AccessRequest, user: User) -> AccessRequest:
        return services.submit(request=access_request, by=user)


class Withdraw(_ApplicantAction):
    """The applicant withdraws a draft, submitted or returned request."""

    def act(self, access_request: AccessRequest, user: User) -> AccessRequest:
        return services.withdraw(request=access_request, by=user)


# --- Comments ---------------------------------------------------------------------------
class Comments(APIView):
    """The comments the caller may see (GET: private notes for independent reviewers
    only); add a comment or, as a reviewer, a private note (POST)."""

    @extend_schema(responses=s.CommentSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        comments = services.visible_comments(request.user, access_request)
        return Response(s.CommentSerializer(comments, many=True).data)

    @extend_schema(request=s.CommentCreateSerializer, responses={201: s.CommentSerializer})
    def post(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        body = _body(s.CommentCreateSerializer, request)
        comment = services.add_comment(request=access_request, by=user_of(request), **body)
        return Response(s.CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


# --- Attachments ------------------------------------------------------------------------
def _attachment(request: Request, pk: int, attachment_pk: int) -> Attachment:
    access_request = services.get_request(request.user, pk)
    attachment = access_request.attachments.filter(pk=attachment_pk).first()
    if attachment is None:
        raise Http404("no such attachment")
    return attachment


class Attachments(APIView):
    """The request's attachments (GET); attach a file while it is editable (POST,
    multipart: ``kind`` and ``file``)."""

    parser_classes = [MultiPartParser]

    @extend_schema(responses=s.AttachmentSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        attachments = access_request.attachments.select_related("uploaded_by", "redacted_by")
        return Response(s.AttachmentSerializer(attachments, many=True).data)

    @extend_schema(request=s.AttachmentUploadSerializer, responses={201: s.AttachmentSerializer})
    def post(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        policy.check_applicant(request.user, access_request)
        body = _body(s.AttachmentUploadSerializer, request)
        attachment = services.add_attachment(
            request=access_request, by=user_of(request), upload=body["file"], kind=body["kind"]
        )
        return Response(s.AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)


class AnyMediaRenderer(BaseRenderer):
    """Lets a client ask for the file's own type; only an error is rendered here (the
    file itself is sent as its bytes)."""

    media_type = "*/*"
    format = "file"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, context: Any = None) -> bytes:
        response = (context or {}).get("response")
        if response is not None:  # an error's text, not "*/*" (no media type at all)
            response["Content-Type"] = "text/plain; charset=utf-8"
        detail = data.get("detail", "") if isinstance(data, dict) else data
        return str(detail or "").encode()


class AttachmentDownload(APIView):
    """The attached file, for anyone who sees the request; every download is audited.
    404 once redacted without a replacement."""

    renderer_classes = [JSONRenderer, AnyMediaRenderer]

    @extend_schema(responses={(200, "*/*"): OpenApiTypes.BINARY})  # the file's own type
    def get(self, request: Request, pk: int, attachment_pk: int) -> FileResponse:
        attachment = _attachment(request, pk, attachment_pk)
        handle = services.open_attachment(attachment=attachment, by=user_of(request))
        return FileResponse(
            handle,
            as_attachment=True,
            filename=attachment.file_name,
            content_type=attachment.content_type,
        )


class AttachmentRedact(APIView):
    """IG redacts an attachment (the original is destroyed; a redacted copy may replace
    it), recording why."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request=s.RedactionSerializer, responses=s.AttachmentSerializer)
    def post(self, request: Request, pk: int, attachment_pk: int) -> Response:
        attachment = _attachment(request, pk, attachment_pk)
        services.check_reviewer(user_of(request), attachment.request)  # before reading any file
        body = _body(s.RedactionSerializer, request)
        redacted = services.redact_attachment(attachment=attachment, by=user_of(request), **body)
        return Response(s.AttachmentSerializer(redacted).data)


# --- Review -----------------------------------------------------------------------------
class ReviewQueue(APIView):
    """Submitted and in-review requests, oldest first, with their age against the SLA and
    whether the caller may review each (IG officers and Caldicott Guardians; 404 for
    everyone else)."""

    @extend_schema(responses=s.QueueEntrySerializer(many=True))
    def get(self, request: Request) -> Response:
        entries = selectors.review_queue(request.user)
        return Response(s.QueueEntrySerializer(entries, many=True).data)


class StartReview(APIView):
    """An independent IG officer takes a submitted request."""

    @extend_schema(request=None, responses=s.AccessRequestDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        services.check_reviewer(user_of(request), access_request)
        return _detail(request, services.start_review(request=access_request, by=user_of(request)))


class Approve(APIView):
    """Record the caller's approval of these terms. The request is approved (and its
    project created or changed) when the quorum of independent approvals of the same
    terms is reached, and the Caldicott Guardian has signed off where needed."""

    @extend_schema(request=s.ApprovalTermsSerializer, responses=s.AccessRequestDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        services.check_reviewer(user_of(request), access_request)
        body = _body(s.ApprovalTermsSerializer, request)
        approved = services.approve(request=access_request, by=user_of(request), **body)
        return _detail(request, approved)


class _Decision(APIView):
    @extend_schema(request=s.ReviewReasonSerializer, responses=s.AccessRequestDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        services.check_reviewer(user_of(request), access_request)
        body = _body(s.ReviewReasonSerializer, request)
        return _detail(request, self.decide(access_request, user_of(request), body["reason"]))

    def decide(self, access_request: AccessRequest, user: User, reason: str) -> AccessRequest:
        raise NotImplementedError


class Return(_Decision):
    """Back to the applicant for changes; the reason becomes a comment they see."""

    def decide(self, access_request: AccessRequest, user: User, reason: str) -> AccessRequest:
        return services.return_request(request=access_request, by=user, reason=reason)


class Reject(_Decision):
    """Refuse the request, with the reason the applicant sees."""

    def decide(self, access_request: AccessRequest, user: User, reason: str) -> AccessRequest:
        return services.reject(request=access_request, by=user, reason=reason)


class Assign(APIView):
    """Give a submitted or in-review request to an independent IG officer."""

    @extend_schema(request=s.AssignmentSerializer, responses=s.AccessRequestDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        services.check_reviewer(user_of(request), access_request)
        body = _body(s.AssignmentSerializer, request)
        assigned = services.assign(request=access_request, by=user_of(request), **body)
        return _detail(request, assigned)


class SignOff(APIView):
    """The Caldicott Guardian signs off an overriding public interest basis."""

    @extend_schema(request=s.SignOffSerializer, responses=s.AccessRequestDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        access_request = services.get_request(request.user, pk)
        policy.check_sign_off_public_interest(
            request.user,
            access_request,
            conflict=services.conflict_of(request.user, access_request),
        )
        body = _body(s.SignOffSerializer, request)
        signed = services.sign_off(request=access_request, by=user_of(request), **body)
        return _detail(request, signed)


# --- Changes to a live project ----------------------------------------------------------
class ProjectChange(APIView):
    """A member of a live project applies for an amendment, extension or renewal: a new
    request pre-filled from the approved answers."""

    @extend_schema(
        request=s.ChangeStartSerializer, responses={201: s.AccessRequestDetailSerializer}
    )
    def post(self, request: Request, pk: int) -> Response:
        project = project_selectors.project_for(request.user, pk)
        policy.check_apply_for_access(request.user)
        body = _body(s.ChangeStartSerializer, request)
        change = services.start_change(project=project, by=user_of(request), **body)
        return _detail(request, change, status.HTTP_201_CREATED)
