"""The direct care API's bodies: the cohorts a clinician may ask about, re-identification
requests with their sign-offs, and the list itself.

A cohort is what it is and where it came from, never who is in it, and its size below 10
is not shown exactly. A request says how many people its list holds (small counts
suppressed) and whether the caller may open it, never what is on it: only
``ReidentifiedListSerializer``, given by the list's own endpoint to the requesting
clinician, carries NHS numbers.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sde.analysis.models import Cohort
from sde.api.analysis_serializers import CohortSizeField
from sde.api.fields import SuppressedCountField
from sde.api.serializers import PersonRefSerializer, ProjectPurposeSerializer, choice_field
from sde.directcare import services
from sde.directcare.models import ReidentificationDecision, ReidentificationRequest
from sde.directcare.reidentify import DEMOGRAPHICS
from sde.identity.models import Organisation
from sde.projects.models import Project

Status = ReidentificationRequest.Status
Role = ReidentificationDecision.Role
Outcome = ReidentificationDecision.Outcome


# --- Choice sets, each one named component --------------------------------------------------
StatusField = choice_field("ReidentificationStatusEnum", Status.choices)
RoleField = choice_field("ReidentificationRoleEnum", Role.choices)
OutcomeField = choice_field("ReidentificationOutcomeEnum", Outcome.choices)


@extend_schema_field(
    {"type": "string", "enum": list(DEMOGRAPHICS)}, component_name="ReidentificationFieldEnum"
)
class ListFieldName(serializers.CharField):
    pass


# --- Cohorts --------------------------------------------------------------------------------
class ReidentificationProjectSerializer(ProjectPurposeSerializer):
    """The project that found a cohort."""


class ReidentifiableCohortSerializer(serializers.ModelSerializer):
    """A cohort a clinician may ask about: what it is and where it came from."""

    size = CohortSizeField()
    project = ReidentificationProjectSerializer(read_only=True)
    extract_id = serializers.IntegerField(read_only=True)
    extract_built_at = serializers.DateTimeField(source="extract.built_at", read_only=True)
    list_fields = serializers.SerializerMethodField(
        help_text="The columns a list from it carries besides the NHS number."
    )

    class Meta:
        model = Cohort
        fields = ["id", "name", "description", "definition", "size", "project", "extract_id",
                  "extract_built_at", "created_at", "list_fields"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=ListFieldName()))
    def get_list_fields(self, cohort: Cohort) -> list[str]:
        return services.list_fields(cohort)


# --- Requests -------------------------------------------------------------------------------
class ReidentificationCohortRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Cohort
        fields = ["id", "name"]
        read_only_fields = fields


class ReidentificationProjectRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "title"]
        read_only_fields = fields


class ReidentificationPracticeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organisation
        fields = ["id", "name", "ods_code"]
        read_only_fields = fields


class ReidentificationRequestSerializer(serializers.ModelSerializer):
    """A request as the list shows it."""

    status = StatusField(read_only=True)
    status_text = serializers.CharField(source="get_status_display", read_only=True)
    cohort = ReidentificationCohortRefSerializer(read_only=True)
    project = ReidentificationProjectRefSerializer(read_only=True)
    practice = ReidentificationPracticeSerializer(read_only=True)
    practice_ods = serializers.CharField(read_only=True, help_text="The practice's code then.")
    requested_by = PersonRefSerializer(read_only=True)
    people = SuppressedCountField(help_text="People on the list once made (1 to 9 not shown).")
    list_fields = serializers.ListField(
        child=ListFieldName(), source="fields", read_only=True,
        help_text="The columns the list carries besides the NHS number.",
    )  # fmt: skip

    class Meta:
        model = ReidentificationRequest
        fields = ["id", "status", "status_text", "cohort", "project", "practice", "practice_ods",
                  "requested_by", "reason", "created_at", "status_changed_at", "valid_days",
                  "list_fields", "people", "performed_at", "expires_at", "failure"]  # fmt: skip
        read_only_fields = fields


class ReidentificationDecisionSerializer(serializers.ModelSerializer):
    role = RoleField(read_only=True)
    outcome = OutcomeField(read_only=True)
    decided_by = PersonRefSerializer(read_only=True)

    class Meta:
        model = ReidentificationDecision
        fields = ["role", "outcome", "comment", "decided_by", "decided_at"]
        read_only_fields = fields


class ReidentificationSignOffStateSerializer(serializers.Serializer):
    role = RoleField()
    conflict = serializers.CharField(
        allow_null=True, help_text="Why the caller may not give this sign-off (null: they may)."
    )


class ReidentificationCallerSerializer(serializers.Serializer):
    """What the caller may do with the request."""

    can_withdraw = serializers.BooleanField()
    sign_offs = ReidentificationSignOffStateSerializer(
        many=True, help_text="The open sign-offs the caller's roles allow."
    )
    list_url = serializers.CharField(
        allow_null=True, help_text="The list, while it lasts: the requesting clinician only."
    )
    csv_url = serializers.CharField(allow_null=True)


class ReidentificationRequestDetailSerializer(ReidentificationRequestSerializer):
    """One request: its sign-offs, and what the caller may do with it."""

    decisions = ReidentificationDecisionSerializer(many=True, read_only=True)
    you = serializers.SerializerMethodField()

    class Meta(ReidentificationRequestSerializer.Meta):
        fields = [*ReidentificationRequestSerializer.Meta.fields, "decisions", "you"]
        read_only_fields = fields

    @extend_schema_field(ReidentificationCallerSerializer)
    def get_you(self, request: ReidentificationRequest) -> Any:
        return ReidentificationCallerSerializer(self.context["you"]).data


class ReidentificationCreateSerializer(serializers.Serializer):
    cohort_id = serializers.IntegerField(min_value=1)
    practice_id = serializers.IntegerField(
        min_value=1, required=False,
        help_text="A practice the caller works at; may be left out when they work at one only.",
    )  # fmt: skip
    reason = serializers.CharField(help_text="The direct care the list is for.")


class ReidentificationSignOffSerializer(serializers.Serializer):
    role = RoleField()
    outcome = OutcomeField()
    comment = serializers.CharField(
        required=False, allow_blank=True, default="",
        help_text="Needed to refuse: the clinician sees it.",
    )  # fmt: skip


# --- The list -------------------------------------------------------------------------------
class ReidentifiedListRowSerializer(serializers.Serializer):
    nhs_number = serializers.CharField(help_text="Ten digits, no spaces.")
    birth_month = serializers.CharField(
        required=False, help_text="YYYY-MM; present when the list carries it."
    )
    sex = serializers.CharField(required=False, help_text="Present when the list carries it.")


class ReidentifiedListSerializer(serializers.Serializer):
    """The list: the cohort's members registered at the practice when it was made."""

    id = serializers.IntegerField(help_text="The request's number.")
    people = serializers.IntegerField()
    list_fields = serializers.ListField(
        child=ListFieldName(), help_text="The columns besides the NHS number."
    )
    expires_at = serializers.DateTimeField()
    rows = ReidentifiedListRowSerializer(many=True)
