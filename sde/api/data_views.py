"""The data layer's REST API: the catalogue (metadata for everyone signed in, never rows)
and ingestion (data custodians), through the same services and policy as the pages."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sde import policy, uploads
from sde.api import serializers
from sde.data import catalogue, ingestion
from sde.data.models import Ingest
from sde.exceptions import ValidationError
from sde.identity.models import User


# --- The catalogue ----------------------------------------------------------------------
class DatasetList(generics.ListAPIView):
    """The datasets the environment holds, each with its latest version."""

    serializer_class = serializers.DatasetSerializer

    def get_queryset(self) -> Any:
        return catalogue.catalogue_for(self.request.user)  # type: ignore[arg-type]


class DatasetDetail(generics.RetrieveAPIView):
    """One dataset: its published fields and every version, newest first."""

    serializer_class = serializers.DatasetDetailSerializer
    lookup_field = "slug"

    def get_queryset(self) -> Any:
        return catalogue.catalogue_for(self.request.user)  # type: ignore[arg-type]


# --- Ingestion (data custodians) --------------------------------------------------------
def _ingests(user: Any) -> Any:
    policy.check_manage_datasets(user)
    return Ingest.objects.select_related("requested_by").prefetch_related("versions__dataset")


class IngestList(generics.ListAPIView):
    """Ingests, newest first (GET); upload a drop and queue its ingest (POST)."""

    serializer_class = serializers.IngestSerializer
    parser_classes = [MultiPartParser]

    def get_queryset(self) -> Any:
        return _ingests(self.request.user).order_by("-created_at", "-pk")

    @extend_schema(
        request=serializers.DropUploadSerializer,
        responses={
            201: OpenApiResponse(serializers.IngestSerializer, "Queued: runs after commit."),
            200: OpenApiResponse(
                serializers.IngestSerializer,
                "This drop was already ingested: its ingest, and no new version.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        policy.check_manage_datasets(request.user)  # 403 before the body is read
        body = serializers.DropUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            ingest = uploads.ingest_uploaded_drop(
                files=body.validated_data["drop_files"],
                label=body.validated_data["label"],
                by=request.user,  # type: ignore[arg-type]
            )
        except ingestion.IngestError as error:
            raise ValidationError(str(error)) from error
        data = serializers.IngestSerializer(_ingests(request.user).get(pk=ingest.pk)).data
        if ingest.status == Ingest.Status.SUCCEEDED:
            return Response(data)
        location = reverse("api-ingest", args=[ingest.pk])
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})


class IngestDetail(APIView):
    """One ingest: status, stage, progress, counts, and the error if it failed."""

    @extend_schema(responses=serializers.IngestSerializer)
    def get(self, request: Request, pk: int) -> Response:
        ingest = _ingests(request.user).filter(pk=pk).first()
        if ingest is None:
            raise Http404
        return Response(serializers.IngestSerializer(ingest).data)


class CSVRenderer(BaseRenderer):
    """Lets a client ask for ``text/csv``; only an error is ever rendered here (the report
    itself is sent as the file's bytes)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, context: Any = None) -> bytes:
        detail = data.get("detail", "") if isinstance(data, dict) else data
        return str(detail or "").encode()


class IngestQuarantineReport(APIView):
    """The quarantine report: row numbers and reasons only, no row contents. Downloads are
    audited, as on the page."""

    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request: Request, pk: int) -> FileResponse:
        ingest = _ingests(request.user).filter(pk=pk).first()
        if ingest is None:
            raise Http404("no such ingest")
        user: User = request.user  # type: ignore[assignment]
        return FileResponse(
            ingestion.open_quarantine_report(ingest=ingest, by=user, via="api"),
            as_attachment=True,
            filename=f"quarantine-ingest-{ingest.pk}.csv",
            content_type="text/csv",
        )
