"""Projects through the REST API: what members and IG see, and IG's actions (suspend,
resume, revoke, close, members, compliance dates), through ``sde.projects.services``.

A project the caller may not see answers 404 whatever the method; a member asking for
an IG action answers 403, before the body is read (``policy.check_manage_project``).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sde import policy
from sde.api import project_serializers as s
from sde.api.common import user_of
from sde.exceptions import ValidationError
from sde.projects import selectors, services
from sde.projects.models import Project


def _project(request: Request, pk: int) -> Project:
    return selectors.project_for(request.user, pk)


def _managed(request: Request, pk: int) -> Project:
    """The project, once the caller is known to manage it (404, then 403)."""
    project = _project(request, pk)
    policy.check_manage_project(request.user, project)
    return project


def _body(serializer_class: type[Any], request: Request) -> dict[str, Any]:
    body = serializer_class(data=request.data, context={"user": user_of(request)})
    body.is_valid(raise_exception=True)
    return body.validated_data  # type: ignore[no-any-return]


def _detail(request: Request, project: Project) -> Response:
    fresh = _project(request, project.pk)
    return Response(s.ProjectDetailSerializer(fresh, context={"user": user_of(request)}).data)


class ProjectList(generics.ListAPIView):
    """The projects the caller may see (their own; every project for IG), newest first."""

    serializer_class = s.ProjectSerializer

    def get_queryset(self) -> Any:
        wanted = self.request.query_params.get("status", "")
        if wanted and wanted not in Project.Status.values:
            raise ValidationError("unknown status", {"status": ["Not a status."]})
        return selectors.projects_for(self.request.user, status=wanted)

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=Project.Status.values)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ProjectDetail(APIView):
    """One project: status, dates, approved scope, members, whether the caller may use
    its data now (and if not, why), and its extracts."""

    @extend_schema(responses=s.ProjectDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return _detail(request, _project(request, pk))


# --- IG actions (services.ACTIONS; "expire" is the clock's alone) ------------------------
class Suspend(APIView):
    """Pause all data access, with the reason."""

    @extend_schema(request=s.ProjectReasonSerializer, responses=s.ProjectDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        project = _managed(request, pk)
        body = _body(s.ProjectReasonSerializer, request)
        services.suspend_project(project=project, by=user_of(request), **body)
        return _detail(request, project)


class Resume(APIView):
    """Restore a suspended project (409 while a date it depends on has lapsed)."""

    @extend_schema(request=None, responses=s.ProjectDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        project = _managed(request, pk)
        services.resume_project(project=project, by=user_of(request))
        return _detail(request, project)


class Revoke(APIView):
    """End access for good, with the reason."""

    @extend_schema(request=s.ProjectReasonSerializer, responses=s.ProjectDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        project = _managed(request, pk)
        body = _body(s.ProjectReasonSerializer, request)
        services.revoke_project(project=project, by=user_of(request), **body)
        return _detail(request, project)


class Close(APIView):
    """Close with a destruction attestation: access ends and the extracts are deleted."""

    @extend_schema(request=s.ProjectCloseSerializer, responses=s.ProjectDetailSerializer)
    def post(self, request: Request, pk: int) -> Response:
        project = _managed(request, pk)
        body = _body(s.ProjectCloseSerializer, request)
        services.close_project(project=project, by=user_of(request), **body)
        return _detail(request, project)


class Members(APIView):
    """Add a person to a live project (their object permissions are granted)."""

    @extend_schema(request=s.MemberAddSerializer, responses={201: s.ProjectDetailSerializer})
    def post(self, request: Request, pk: int) -> Response:
        project = _managed(request, pk)
        body = _body(s.MemberAddSerializer, request)
        spec = services.MemberSpec(body["user"], body["role"], body["accesses_data"])
        services.add_member(project=project, member=spec, by=user_of(request))
        response = _detail(request, project)
        response.status_code = status.HTTP_201_CREATED
        return response


class Member(APIView):
    """Remove a member: their object permissions are revoked at once."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int, user_pk: int) -> Response:
        project = _managed(request, pk)
        person = policy.visible_people_for(request.user).filter(pk=user_pk).first()
        if person is None:
            raise Http404("no such person")
        services.remove_member(project=project, user=person, by=user_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class Compliance(APIView):
    """Record renewed s251, REC or DSPT dates."""

    @extend_schema(request=s.ComplianceDatesSerializer, responses=s.ProjectDetailSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        project = _managed(request, pk)
        body = _body(s.ComplianceDatesSerializer, request)
        services.update_compliance_dates(project=project, by=user_of(request), **body)
        return _detail(request, project)
