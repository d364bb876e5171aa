"""The core's REST API: the same services and policy as the pages."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sde import policy
from sde.api import serializers
from sde.audit.events import EventType
from sde.audit.forms import AuditSearchForm
from sde.audit.selectors import event_integrity, search_audit_events
from sde.audit.services import record_event
from sde.exceptions import ValidationError
from sde.identity.models import ApiToken, User
from sde.identity.roles import capabilities_of
from sde.identity.selectors import current_accreditations, current_roles


class MeView(APIView):
    """Who the caller is: roles, capabilities, organisations, accreditation."""

    @extend_schema(responses=serializers.MeSerializer)
    def get(self, request: Request) -> Response:
        user: User = request.user  # type: ignore[assignment]
        today = timezone.localdate()
        roles = current_roles(user)
        accreditations = list(current_accreditations(user, on=today))
        data = {
            "id": user.pk,
            "username": user.username,
            "name": user.display_name,
            "email": user.email,
            "roles": sorted(str(r) for r in roles),
            "capabilities": sorted(str(c) for c in capabilities_of(roles)),
            "organisations": [
                m.organisation for m in user.memberships.select_related("organisation")
            ],
            "accreditations": accreditations,
            "accredited_today": bool(accreditations),
            "authenticated_by": "token" if isinstance(request.auth, ApiToken) else "session",
        }
        return Response(serializers.MeSerializer(data).data)


_AUDIT_FILTERS = [
    OpenApiParameter("person", int, description="Actor or person targeted"),
    OpenApiParameter("project", int),
    OpenApiParameter("event_type", str, enum=EventType.values),
    OpenApiParameter("date_from", str, description="ISO date, inclusive"),
    OpenApiParameter("date_to", str, description="ISO date, inclusive"),
]


class AuditEventList(generics.ListAPIView):
    """Search the audit log (IG officers). The search itself is audited."""

    serializer_class = serializers.AuditEventSerializer

    def get_queryset(self) -> Any:
        policy.check_read_audit_log(self.request.user)
        form = AuditSearchForm(self.request.query_params or None)
        if self.request.query_params and not form.is_valid():
            raise ValidationError(
                "invalid filters", {k: [str(m) for m in v] for k, v in form.errors.items()}
            )
        with transaction.atomic(durable=True):
            record_event(
                event_type=EventType.AUDIT_LOG_VIEWED,
                actor=self.request.user,  # type: ignore[arg-type]
                data={
                    "filters": form.described() if self.request.query_params else {},
                    "via": "api",
                },
            )
        return search_audit_events(**(form.filters() if self.request.query_params else {}))

    @extend_schema(parameters=_AUDIT_FILTERS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AuditEventDetail(APIView):
    @extend_schema(responses=serializers.AuditEventDetailSerializer)
    def get(self, request: Request, sequence: int) -> Response:
        from sde.audit.models import AuditEvent

        policy.check_read_audit_log(request.user)
        event = AuditEvent.objects.filter(sequence=sequence).first()
        if event is None:
            raise Http404
        with transaction.atomic(durable=True):
            record_event(
                event_type=EventType.AUDIT_LOG_VIEWED,
                actor=request.user,  # type: ignore[arg-type]
                data={"sequence": sequence, "via": "api"},
            )
        integrity = event_integrity(event)
        data = serializers.AuditEventSerializer(event).data | {
            "entry_hash_ok": integrity.entry_ok,
            "chain_link_ok": integrity.chain_ok,
            "covered_by_signed_checkpoint": integrity.checkpointed,
        }
        return Response(data)
