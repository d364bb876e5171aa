"""Direct care through the REST API: the cohorts a clinician may ask about, their requests
(create, withdraw), the IG officer's and the Caldicott Guardian's sign-offs, and the list,
through ``sde.directcare.services`` and ``selectors`` as the pages.

Only clinicians and the two kinds of signer have these URLs; everyone else gets 404 on
each of them (``DirectCareView.initial``), and so does a request the caller may not see.
An action on a request they see but may not take answers 403, the wrong state 409,
invalid input 400 with field errors. The list's rows are in the list's own responses
(JSON and CSV) only, to the requesting clinician only; every other response says at most
how many people it holds. Opening it is audited by the service.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sde import policy
from sde.analysis.models import Cohort
from sde.api import directcare_serializers as s
from sde.api.analysis_views import FileRenderer
from sde.api.common import user_of, validated
from sde.directcare import selectors, services
from sde.directcare.models import ReidentificationRequest
from sde.exceptions import NotFound, ValidationError
from sde.identity.models import User

CONFLICT = OpenApiResponse(description="The request is not in a state that allows this.")
CSV_RESPONSE = {(200, "text/csv"): OpenApiTypes.BINARY}
NO_STORE = {"Cache-Control": "no-store"}
STATUS_PARAMETER = OpenApiParameter("status", str, enum=ReidentificationRequest.Status.values)


def _you(user: User, reid: ReidentificationRequest) -> dict[str, Any]:
    """What the caller may do with the request (as the page offers it)."""
    sign_offs = []
    if reid.status in services.OPEN:
        given = {d.role for d in reid.decisions.all()}
        conflict = policy.reidentification_conflict(user, reid)
        sign_offs = [{"role": role, "conflict": conflict}
                     for role in policy.reidentification_sign_off_roles(user)
                     if role not in given]  # fmt: skip
    may_open = selectors.may_open_list(user, reid)
    return {
        "can_withdraw": reid.requested_by_id == user.pk and reid.status in services.OPEN,
        "sign_offs": sign_offs,
        "list_url": reverse("api-direct-care-list", args=[reid.pk]) if may_open else None,
        "csv_url": reverse("api-direct-care-list-csv", args=[reid.pk]) if may_open else None,
    }


def _detail(request: Request, reid: ReidentificationRequest, code: int = 200) -> Response:
    user = user_of(request)
    fresh = selectors.request_for(user, reid.pk)  # re-read: a service may have moved it
    data = s.ReidentificationRequestDetailSerializer(fresh, context={"you": _you(user, fresh)}).data
    headers = {}
    if code == status.HTTP_201_CREATED:
        headers["Location"] = reverse("api-direct-care-request", args=[fresh.pk])
    return Response(data, status=code, headers=headers)


class DirectCareView(APIView):
    """A direct care URL: after authentication, 404 for anyone who neither asks for
    lists (a clinician) nor signs them off (an IG officer, a Caldicott Guardian)."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        user = request.user
        if not (
            policy.user_requests_reidentification(user)
            or policy.reidentification_sign_off_roles(user)
        ):
            raise NotFound("no direct care for this person")


class RequestScoped(DirectCareView):
    """A URL under one request: looked up for the caller (404 if they may not see it)
    before the method is dispatched."""

    reid: ReidentificationRequest

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.reid = selectors.request_for(user_of(request), kwargs["pk"])


# --- Cohorts and requests ---------------------------------------------------------------
class Cohorts(DirectCareView, generics.ListAPIView):
    """The cohorts the caller may ask to re-identify, newest first: those of active
    planning and direct care projects found in real data (clinicians; none for anyone
    else). Never who is in them."""

    serializer_class = s.ReidentifiableCohortSerializer
    queryset = Cohort.objects.none()  # the schema's model; the cohorts are the caller's

    def get_queryset(self) -> Any:
        return selectors.cohorts_for(user_of(self.request))


class Requests(DirectCareView, generics.ListAPIView):
    """The requests the caller may see, newest first: a clinician's own; for IG officers
    and Caldicott Guardians, all (GET). A clinician asks for a list (POST: 201)."""

    serializer_class = s.ReidentificationRequestSerializer
    queryset = ReidentificationRequest.objects.none()  # the schema's model

    def get_queryset(self) -> Any:
        requests = selectors.requests_for(user_of(self.request))
        wanted = self.request.query_params.get("status", "")
        if not wanted:
            return requests
        if wanted not in ReidentificationRequest.Status.values:
            raise ValidationError("unknown status", {"status": ["Not a status."]})
        return requests.filter(status=wanted)

    @extend_schema(parameters=[STATUS_PARAMETER])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.ReidentificationCreateSerializer,
        responses={201: s.ReidentificationRequestDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        user = user_of(request)
        if not policy.user_requests_reidentification(user):  # before the body, as a 404
            raise NotFound("no such page")
        body = validated(s.ReidentificationCreateSerializer, request)
        cohort = selectors.cohort_for(user, body["cohort_id"])
        practices = policy.practices_for(user)
        if "practice_id" in body:
            practice = practices.filter(pk=body["practice_id"]).first()
        else:  # left out: the one practice the caller works at, if only one
            practice = practices.first() if practices.count() == 1 else None
        # A practice not theirs (or none) is refused by the service (403).
        created = services.request_reidentification(
            cohort=cohort, practice=practice, reason=body["reason"], by=user
        )
        return _detail(request, created, status.HTTP_201_CREATED)


class RequestDetail(RequestScoped):
    """One request: its cohort, practice, reason and status, each sign-off, and what the
    caller may do with it (never the list)."""

    @extend_schema(responses=s.ReidentificationRequestDetailSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return _detail(request, self.reid)


class SignOff(RequestScoped):
    """An IG officer's or the Caldicott Guardian's sign-off: approve, or refuse with a
    comment. Two different people, neither the requester nor a member of the project
    (403 otherwise); the second approval has the list made."""

    @extend_schema(
        request=s.ReidentificationSignOffSerializer,
        responses={200: s.ReidentificationRequestDetailSerializer, 409: CONFLICT},
    )
    def post(self, request: Request, pk: int) -> Response:
        body = validated(s.ReidentificationSignOffSerializer, request)
        signed = services.sign_off(request=self.reid, by=user_of(request), **body)
        return _detail(request, signed)


class Withdraw(RequestScoped):
    """The clinician who asked withdraws an open request."""

    @extend_schema(
        request=None, responses={200: s.ReidentificationRequestDetailSerializer, 409: CONFLICT}
    )
    def post(self, request: Request, pk: int) -> Response:
        return _detail(request, services.withdraw(request=self.reid, by=user_of(request)))


# --- The list ---------------------------------------------------------------------------
class ListRows(RequestScoped):
    """The list, to the clinician who asked while it lasts (404 for everyone else, and
    once it has expired). Audited."""

    @extend_schema(responses=s.ReidentifiedListSerializer)
    def get(self, request: Request, pk: int) -> Response:
        listing = services.view_list(request=self.reid, by=user_of(request))  # re-reads the request
        present = listing.astype(object).where(listing.notna(), None)
        data = {
            "id": self.reid.pk,
            "people": len(listing),
            "list_fields": [c for c in listing.columns if c != "nhs_number"],
            "expires_at": self.reid.expires_at,
            "rows": present.to_dict("records"),
        }
        return Response(s.ReidentifiedListSerializer(data).data, headers=NO_STORE)


class ListCsv(RequestScoped):
    """The list as CSV (cells a spreadsheet would run are quoted), to the clinician who
    asked while it lasts. Audited."""

    renderer_classes = [JSONRenderer, FileRenderer]

    @extend_schema(responses=CSV_RESPONSE)
    def get(self, request: Request, pk: int) -> HttpResponse:
        content = services.download_list(request=self.reid, by=user_of(request))
        response = HttpResponse(content, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="direct-care-list-{pk}.csv"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "no-store"
        return response
