"""The project API's bodies. A project as its members and IG see it (through the same
selectors as the project pages): the approved scope, the team, whether the caller may use
the data now (and if not, why), and the state of its extracts. Opt-out removal counts
are IG's alone (the opt-out register API) and are never read here, nor the extract's
treatment or snapshot."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sde import policy
from sde.api.serializers import OrganisationSerializer, PersonRefSerializer
from sde.projects import selectors
from sde.projects.models import Project, ProjectMembership

EXTRACT_STATES = [value for name, value in vars(selectors.ExtractState).items() if name.isupper()]


@extend_schema_field(
    {"type": "string", "enum": list(Project.Status.values)}, component_name="ProjectStatusEnum"
)
class ProjectStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Project.Status.choices, **kwargs)


@extend_schema_field(
    {"type": "string", "enum": list(ProjectMembership.Role.values)},
    component_name="ProjectRoleEnum",
)
class ProjectRoleField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=ProjectMembership.Role.choices, **kwargs)


class ProjectSerializer(serializers.ModelSerializer):
    """A project as a list shows it."""

    status = ProjectStatusField(read_only=True)
    organisation = OrganisationSerializer(read_only=True)
    purpose = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "title", "status", "organisation", "start_date", "end_date", "purpose"]
        read_only_fields = fields

    def get_purpose(self, project: Project) -> str:
        return str(project.scope.get("purpose") or "")


class ScopeDatasetSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    fields = serializers.ListField(child=serializers.CharField())


class ScopeSerializer(serializers.Serializer):
    """The approved data scope: exactly what the project's extracts hold."""

    datasets = ScopeDatasetSerializer(many=True)
    purpose = serializers.CharField()
    purpose_text = serializers.CharField()
    legal_basis = serializers.CharField(help_text="The basis the opt-out treatment is read by.")
    legal_basis_text = serializers.CharField()
    date_from = serializers.DateField(allow_null=True)
    date_to = serializers.DateField(allow_null=True)
    cohort = serializers.ListField(
        child=serializers.CharField(), help_text="One sentence per filter (empty: everyone)."
    )
    cohort_filters = serializers.DictField(help_text="The same filters, as recorded.")


class MemberSerializer(serializers.ModelSerializer):
    user = PersonRefSerializer(read_only=True)
    role = ProjectRoleField(read_only=True)
    data_access_paused = serializers.SerializerMethodField()
    pause_reason = serializers.SerializerMethodField()

    class Meta:
        model = ProjectMembership
        fields = ["user", "role", "accesses_data", "added_at", "data_access_paused", "pause_reason"]
        read_only_fields = fields

    def get_data_access_paused(self, membership: ProjectMembership) -> bool:
        return membership.suspended_at is not None

    def get_pause_reason(self, membership: ProjectMembership) -> str | None:
        """Why a member's access is paused is for them and IG, not the rest of the team."""
        user = self.context["user"]
        if membership.user_id == user.pk or policy.user_oversees_projects(user):
            return membership.suspension_reason or None
        return None


class DataAccessSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    refusal = serializers.CharField(
        allow_null=True, help_text="Why the caller may not use the data today (null: they may)."
    )


class ExtractTableSerializer(serializers.Serializer):
    dataset = serializers.CharField()
    rows = serializers.IntegerField()


@extend_schema_field({"type": "string", "enum": EXTRACT_STATES}, component_name="ExtractStateEnum")
class ExtractStateField(serializers.CharField):
    pass


class ExtractStatusSerializer(serializers.Serializer):
    """One extract: its state, when it was built and its tables' row counts (never what
    opt-outs removed: that is IG's alone)."""

    state = ExtractStateField()
    built_at = serializers.DateTimeField(source="extract.built_at", allow_null=True)
    deleted_at = serializers.DateTimeField(allow_null=True)
    tables = ExtractTableSerializer(many=True)
    stale_reasons = serializers.ListField(
        source="reasons",
        child=serializers.CharField(),
        help_text="Why it will be rebuilt before its next use (real extract only).",
    )


class ExtractsSerializer(serializers.Serializer):
    real = ExtractStatusSerializer()
    dummy = ExtractStatusSerializer(help_text="Synthetic people, the same schema.")


class ProjectDetailSerializer(ProjectSerializer):
    """One project as its members and IG see it."""

    scope = serializers.SerializerMethodField()
    members = serializers.SerializerMethodField()
    data_access = serializers.SerializerMethodField()
    extracts = serializers.SerializerMethodField()

    class Meta(ProjectSerializer.Meta):
        fields = [
            *ProjectSerializer.Meta.fields,
            "lay_summary",
            "status_reason",
            "status_changed_at",
            "conditions",
            "access_request_id",
            *policy.PROJECT_COMPLIANCE_DATES,
            "created_at",
            "destruction_attestation",
            "scope",
            "members",
            "data_access",
            "extracts",
        ]
        read_only_fields = fields

    @extend_schema_field(ScopeSerializer)
    def get_scope(self, project: Project) -> dict[str, Any]:
        approved = selectors.approved_scope(project)
        return ScopeSerializer(
            {
                "datasets": approved.datasets,
                "purpose": str(project.scope.get("purpose") or ""),
                "purpose_text": approved.purpose,
                "legal_basis": str(project.scope.get("legal_basis") or ""),
                "legal_basis_text": approved.legal_basis,
                "date_from": approved.date_from,
                "date_to": approved.date_to,
                "cohort": approved.cohort,
                "cohort_filters": project.scope.get("cohort") or {},
            }
        ).data

    @extend_schema_field(MemberSerializer(many=True))
    def get_members(self, project: Project) -> Any:
        return MemberSerializer(
            selectors.current_members(project), many=True, context=self.context
        ).data

    @extend_schema_field(DataAccessSerializer)
    def get_data_access(self, project: Project) -> dict[str, Any]:
        refusal = policy.project_data_refusal(
            self.context["user"], project, today=timezone.localdate()
        )
        return {"allowed": refusal is None, "refusal": refusal}

    @extend_schema_field(ExtractsSerializer)
    def get_extracts(self, project: Project) -> dict[str, Any]:
        return ExtractsSerializer(
            {
                "real": selectors.extract_status(project, dummy=False),
                "dummy": selectors.extract_status(project, dummy=True),
            }
        ).data


# --- Bodies -----------------------------------------------------------------------------
class ProjectReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True)


class ProjectCloseSerializer(serializers.Serializer):
    attestation = serializers.CharField(
        allow_blank=True, help_text="How and when the project's copy of the data was destroyed."
    )


class _VisiblePerson(serializers.PrimaryKeyRelatedField):
    """A person's id, among the people the policy lets the caller see."""

    def get_queryset(self) -> Any:
        return policy.visible_people_for(self.context["user"])


class MemberAddSerializer(serializers.Serializer):
    user = _VisiblePerson(pk_field=serializers.IntegerField())
    role = ProjectRoleField()
    accesses_data = serializers.BooleanField(default=True)


class ComplianceDatesSerializer(serializers.Serializer):
    """The renewed dates (only those sent change; null clears one)."""

    s251_expiry = serializers.DateField(required=False, allow_null=True)
    rec_expiry = serializers.DateField(required=False, allow_null=True)
    dspt_expiry = serializers.DateField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Send at least one date.")
        return attrs
