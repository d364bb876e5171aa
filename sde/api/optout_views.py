"""IG's opt-out register through the REST API: the overview, manual entries, NDOP imports,
and two-person changes, through the same services as the pages (``sde.data.register``
and ``sde.data.optout_changes``).

Every URL here answers 404 to anyone signed in but an IG officer, whatever the method
(the policy decides, before the body is read). Responses are JSON only (no browsable
HTML form that could write a submitted NHS number back), and no response holds an NHS
number or a pseudonym: counts only, small counts suppressed.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework import serializers as drf
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sde import policy, uploads
from sde.api import optout_serializers as s
from sde.data import extracts, optout_changes, register
from sde.data.models import Extract, OptOutChange
from sde.data.optouts import DecisionTable
from sde.data.source_files import SourceFormatError
from sde.identity.models import User


class ManagesOptOuts(permissions.BasePermission):
    """IG officers only; anyone else gets 404 (``policy.check_manage_optouts`` raises)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        policy.check_manage_optouts(request.user)
        return True


class RegisterView(APIView):
    permission_classes = [permissions.IsAuthenticated, ManagesOptOuts]
    renderer_classes = [JSONRenderer]

    def user(self) -> User:
        return self.request.user  # type: ignore[return-value]

    def change_data(self, change: OptOutChange) -> Any:
        return s.OptOutChangeSerializer(change, context={"request": self.request}).data


# --- The overview -----------------------------------------------------------------------
def _table(table: DecisionTable) -> dict[str, Any]:
    return {
        "version": table.version,
        "rows": table.to_json()["rows"],
        "platform_policy": [
            {"basis": basis, "kind": kind, "value": table.platform_policy[(basis, kind)]}
            for basis, kind in table.policy_cells()
        ],
    }


def _extract(extract: Extract, *, by: User) -> dict[str, Any]:
    return {
        "id": extract.pk,
        "project_id": extract.project_id,
        "built_at": extract.built_at,
        "dataset_versions": {
            slug: version.get("version") for slug, version in extract.dataset_versions.items()
        },
        **extracts.removal_summary(extract, by=by),
    }


class OptOutRegister(RegisterView):
    """The register as IG's page shows it. Opening it is audited."""

    @extend_schema(responses=s.OptOutRegisterSerializer)
    def get(self, request: Request) -> Response:
        overview = register.register_overview(by=self.user())
        data = {
            "snapshot": overview.snapshot,
            "snapshots": overview.snapshots,
            "decision_table": _table(overview.table),
            "pending": overview.pending,
            "decided": overview.decided,
            "extracts": [_extract(e, by=self.user()) for e in overview.extracts],
        }
        return Response(s.OptOutRegisterSerializer(data, context={"request": request}).data)


# --- Manual entries ---------------------------------------------------------------------
class ManualOptOutAdd(RegisterView):
    """Record an opt-out IG received directly; the register becomes a new snapshot."""

    @extend_schema(request=s.ManualOptOutSerializer, responses={201: s.OptOutSnapshotSerializer})
    def post(self, request: Request) -> Response:
        body = s.ManualOptOutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        snapshot = register.add_manual_optout(by=self.user(), **body.validated_data)
        return Response(s.OptOutSnapshotSerializer(snapshot).data, status=status.HTTP_201_CREATED)


class ManualOptOutWithdraw(RegisterView):
    """Withdraw a manual opt-out; the register becomes a new snapshot."""

    @extend_schema(request=s.ManualOptOutSerializer, responses=s.OptOutSnapshotSerializer)
    def post(self, request: Request) -> Response:
        body = s.ManualOptOutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        snapshot = register.withdraw_manual_optout(by=self.user(), **body.validated_data)
        return Response(s.OptOutSnapshotSerializer(snapshot).data)


# --- NDOP file --------------------------------------------------------------------------
class NdopImport(RegisterView):
    """Import a national data opt-out file. The uploaded copy is deleted whatever happens."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        request=s.NdopUploadSerializer,
        responses={
            201: OpenApiResponse(s.OptOutSnapshotSerializer, "Imported: the new snapshot."),
            200: OpenApiResponse(
                s.OptOutSnapshotSerializer, "The file changes nothing: the current snapshot."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = s.NdopUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["ndop_file"]
        before = register.current_snapshot()
        try:
            snapshot = uploads.import_ndop_upload(
                upload, label=body.validated_data["label"], by=self.user()
            )
        except SourceFormatError as error:
            message = f"This is not a national data opt-out file: {error.message}."
            raise drf.ValidationError({"ndop_file": [message]}) from error
        except register.OptOutError as error:  # mostly not NHS numbers: the list is kept
            message = str(error)
            sentence = f"{message[:1].upper()}{message[1:]}."
            raise drf.ValidationError({"ndop_file": [sentence]}) from error
        unchanged = before is not None and snapshot.pk == before.pk
        return Response(
            s.OptOutSnapshotSerializer(snapshot).data,
            status=status.HTTP_200_OK if unchanged else status.HTTP_201_CREATED,
        )


# --- Proposals --------------------------------------------------------------------------
class PolicyProposal(RegisterView):
    """Propose new values for platform-policy cells; a second IG officer decides."""

    @extend_schema(request=s.PolicyProposalSerializer, responses={201: s.OptOutChangeSerializer})
    def post(self, request: Request) -> Response:
        body = s.PolicyProposalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cells = {(c["basis"], c["kind"]): c["value"] for c in body.validated_data["cells"]}
        change = optout_changes.propose_platform_policy(
            cells=cells, reason=body.validated_data["reason"], by=self.user()
        )
        return Response(self.change_data(change), status=status.HTTP_201_CREATED)


class ExemptionProposal(RegisterView):
    """Propose a project's opt-out exemption; a second IG officer decides."""

    @extend_schema(request=s.ExemptionProposalSerializer, responses={201: s.OptOutChangeSerializer})
    def post(self, request: Request) -> Response:
        body = s.ExemptionProposalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        change = optout_changes.propose_exemption(by=self.user(), **body.validated_data)
        return Response(self.change_data(change), status=status.HTTP_201_CREATED)


# --- Deciding and withdrawing -----------------------------------------------------------
class ChangeView(RegisterView):
    def change(self, pk: int) -> OptOutChange:
        change = optout_changes.visible_changes_for(self.user()).filter(pk=pk).first()
        if change is None:
            raise Http404
        return change


class ChangeDetail(ChangeView):
    @extend_schema(responses=s.OptOutChangeSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.change_data(self.change(pk)))


class _Decide(ChangeView):
    approve: bool

    @extend_schema(request=s.DecisionSerializer, responses=s.OptOutChangeSerializer)
    def post(self, request: Request, pk: int) -> Response:
        change = self.change(pk)
        policy.check_decide_optout_change(self.user(), change)  # 403 before the body
        body = s.DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decided = optout_changes.decide_change(
            change=change,
            approve=self.approve,
            reason=body.validated_data["decision_reason"],
            by=self.user(),
        )
        return Response(self.change_data(decided))


class ChangeApprove(_Decide):
    """Approve a change another IG officer proposed (a table change becomes the next
    decision table version)."""

    approve = True


class ChangeReject(_Decide):
    """Reject a change another IG officer proposed (a reason is required)."""

    approve = False


class ChangeWithdraw(ChangeView):
    """The proposer withdraws a change nobody has decided."""

    @extend_schema(request=None, responses=s.OptOutChangeSerializer)
    def post(self, request: Request, pk: int) -> Response:
        change = optout_changes.withdraw_change(change=self.change(pk), by=self.user())
        return Response(self.change_data(change))
