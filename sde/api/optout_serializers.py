"""The opt-out register's API bodies (IG officers only). Counts only: no field here holds
a system pseudonym, and an NHS number is only ever read from a request, never written
to a response."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import UploadedFile
from rest_framework import serializers

from sde import policy, uploads
from sde.api.fields import (
    ApplicationField,
    BasisField,
    OptOutKindField,
    PolicyValueField,
    SuppressedCountField,
    UploadField,
)
from sde.api.serializers import PersonRefSerializer
from sde.data.models import OptOutChange, OptOutSnapshot, OptOutSource
from sde.data.optouts import PurposeGroup
from sde.exceptions import NotFound, PermissionDenied


# --- What the register holds ------------------------------------------------------------
class OptOutSnapshotSerializer(serializers.ModelSerializer):
    """One version of the register: people per kind of opt-out (small counts suppressed),
    never who they are."""

    created_by = PersonRefSerializer(read_only=True)
    ndop = SuppressedCountField(source="ndop_count")
    type1 = SuppressedCountField(source="type1_count")
    manual = SuppressedCountField(source="manual_count")
    stale_manual = SuppressedCountField(
        source="stale_manual_count",
        help_text="Manual entries made under an earlier system key version (not included).",
    )
    imported_sources = serializers.ListField(
        child=serializers.ChoiceField(choices=OptOutSource.choices), read_only=True
    )

    class Meta:
        model = OptOutSnapshot
        fields = [
            "number",
            "trigger",
            "source_label",
            "source_hash",
            "created_by",
            "created_at",
            "content_hash",
            "key_version",
            "ndop",
            "type1",
            "manual",
            "stale_manual",
            "invalid_count",
            "imported_sources",
        ]


class DecisionRowSerializer(serializers.Serializer):
    purpose = serializers.ChoiceField(choices=[g.value for g in PurposeGroup])
    basis = BasisField(allow_null=True, help_text="Null for direct care (any basis).")
    ndop = ApplicationField()
    type1 = ApplicationField()
    note = serializers.CharField(allow_blank=True)


class PolicyCellSerializer(serializers.Serializer):
    """One "applied (platform policy)" cell of the decision table, and its value."""

    basis = BasisField()
    kind = OptOutKindField()
    value = PolicyValueField()


class DecisionTableSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    rows = DecisionRowSerializer(many=True)
    platform_policy = PolicyCellSerializer(many=True)


class OptOutChangeSerializer(serializers.ModelSerializer):
    """A proposed change to the decision table, or a project's exemption, and whether the
    caller may decide or withdraw it (the policy's answer)."""

    proposed_by = PersonRefSerializer(read_only=True)
    decided_by = PersonRefSerializer(read_only=True, allow_null=True)
    can_decide = serializers.SerializerMethodField()
    can_withdraw = serializers.SerializerMethodField()

    class Meta:
        model = OptOutChange
        fields = [
            "id",
            "kind",
            "status",
            "project_id",
            "payload",
            "based_on_version",
            "table_version",
            "reason",
            "proposed_by",
            "proposed_at",
            "decided_by",
            "decided_at",
            "decision_reason",
            "can_decide",
            "can_withdraw",
        ]

    def get_can_decide(self, change: OptOutChange) -> bool:
        return (
            change.status == OptOutChange.Status.PROPOSED
            and policy.user_can_decide_optout_change(self.context["request"].user, change)
        )

    def get_can_withdraw(self, change: OptOutChange) -> bool:
        if change.status != OptOutChange.Status.PROPOSED:
            return False
        try:
            policy.check_withdraw_optout_change(self.context["request"].user, change)
        except (NotFound, PermissionDenied):
            return False
        return True


class RegisterExtractSerializer(serializers.Serializer):
    """What opt-outs did to a project's extract (``extracts.removal_summary``)."""

    id = serializers.IntegerField()
    project_id = serializers.IntegerField()
    built_at = serializers.DateTimeField()
    dataset_versions = serializers.DictField(
        child=serializers.IntegerField(), help_text="Dataset slug -> version number."
    )
    people_removed = serializers.CharField(help_text='"fewer than 10" for 1 to 9.')
    rows_removed = serializers.CharField(help_text='"fewer than 10" for 1 to 9.')
    snapshot = serializers.IntegerField(allow_null=True)
    decision_table_version = serializers.IntegerField(allow_null=True)
    explanation = serializers.CharField(allow_blank=True)


class OptOutRegisterSerializer(serializers.Serializer):
    """The register page's content (``register.register_overview``)."""

    snapshot = OptOutSnapshotSerializer(allow_null=True, help_text="The current snapshot.")
    snapshots = OptOutSnapshotSerializer(many=True, help_text="Recent snapshots, newest first.")
    decision_table = DecisionTableSerializer()
    pending = OptOutChangeSerializer(many=True, help_text="Awaiting a decision, oldest first.")
    decided = OptOutChangeSerializer(many=True, help_text="Recently decided, newest first.")
    extracts = RegisterExtractSerializer(many=True, help_text="Recent extracts, newest first.")


# --- Requests ---------------------------------------------------------------------------
def _reason(help_text: str) -> serializers.CharField:
    return serializers.CharField(max_length=2000, help_text=help_text)


class ManualOptOutSerializer(serializers.Serializer):
    nhs_number = serializers.CharField(
        max_length=20,
        write_only=True,
        help_text="10 digits; spaces are allowed. Turned into the system pseudonym at once; "
        "never stored and never in a response.",
    )
    kind = OptOutKindField()
    reason = _reason("How the objection (or its withdrawal) was received, and any reference.")


class NdopUploadSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    ndop_file = UploadField(
        help_text="One NHS number per line, no header row, UTF-8 text. It replaces the "
        "previously imported list; lines that are not valid NHS numbers are counted and skipped."
    )

    def validate_ndop_file(self, upload: UploadedFile) -> UploadedFile:
        too_big = uploads.size_error(upload)
        if too_big:
            raise serializers.ValidationError(too_big)
        return upload


class PolicyProposalSerializer(serializers.Serializer):
    cells = PolicyCellSerializer(
        many=True,
        allow_empty=False,
        help_text="New values for platform-policy cells of the current table; cells left out "
        "keep their value.",
    )
    reason = _reason("Why the platform policy should change (a second IG officer decides).")

    def validate_cells(self, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keys = [(cell["basis"], cell["kind"]) for cell in cells]
        if len(set(keys)) != len(keys):
            raise serializers.ValidationError("Give each cell once.")
        return cells


class ExemptionProposalSerializer(serializers.Serializer):
    project_id = serializers.IntegerField(min_value=1)
    cag_letter_disapplies_type1 = serializers.BooleanField(
        default=False, help_text="Only read for s251 support with a CAG exemption from NDOP."
    )
    instrument_overrides_type1 = serializers.BooleanField(
        default=False, help_text="Only read for a legal requirement."
    )
    caldicott_type1_decision = PolicyValueField(
        allow_null=True,
        default=None,
        help_text="The Caldicott Guardian's decision on the GP Type 1 opt-out (null: none "
        "recorded, so applied). Only read for overriding public interest.",
    )
    reason = _reason(
        "The evidence (letter or instrument reference) and why (a second IG officer decides)."
    )


class DecisionSerializer(serializers.Serializer):
    decision_reason = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Required to reject; kept with the decision.",
    )
