"""Translate domain errors into API responses, as the pages do."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from sde import exceptions as domain


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, domain.NotFound):
        exc = Http404(str(exc))
    elif isinstance(exc, domain.PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc))
    elif isinstance(exc, domain.InvalidTransition):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, domain.ValidationError):
        return Response(
            {"detail": str(exc), "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST
        )
    return drf_exception_handler(exc, context)
