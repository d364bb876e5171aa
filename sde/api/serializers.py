from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import UploadedFile
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sde import uploads
from sde.api.fields import UploadField
from sde.audit import chain
from sde.audit.models import AuditEvent
from sde.data.models import Dataset, DatasetField, DatasetVersion, Ingest
from sde.identity.models import (
    Accreditation,
    ApiToken,
    Organisation,
    OrganisationMembership,
    User,
)
from sde.identity.roles import Role
from sde.projects.models import Project


def choice_field(component: str, choices: list[tuple[str, str]]) -> type[serializers.ChoiceField]:
    """A choice field that is its own named schema component: "status" or "kind" mean
    different things in different parts of the API, so each set gets a name."""
    values = [value for value, _ in choices]

    @extend_schema_field({"type": "string", "enum": values}, component_name=component)
    class Field(serializers.ChoiceField):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(choices=choices, **kwargs)

    Field.__name__ = component.removesuffix("Enum") + "Field"
    return Field


class ProjectPurposeSerializer(serializers.ModelSerializer):
    """A project with its approved purpose and legal basis (the codes of its scope)."""

    purpose = serializers.SerializerMethodField()
    legal_basis = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "title", "purpose", "legal_basis"]
        read_only_fields = fields

    def get_purpose(self, project: Project) -> str:
        return str((project.scope or {}).get("purpose") or "")

    def get_legal_basis(self, project: Project) -> str:
        return str((project.scope or {}).get("legal_basis") or "")


OrganisationKindField = choice_field("OrganisationKindEnum", Organisation.Kind.choices)
AccreditationKindField = choice_field("AccreditationKindEnum", Accreditation.Kind.choices)


class OrganisationSerializer(serializers.ModelSerializer):
    kind = OrganisationKindField()

    class Meta:
        model = Organisation
        fields = ["id", "name", "kind", "ods_code", "parent"]


class AccreditationSerializer(serializers.ModelSerializer):
    kind = AccreditationKindField()

    class Meta:
        model = Accreditation
        fields = ["kind", "issued_on", "expires_on", "certificate_reference"]


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    email = serializers.EmailField()
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices))
    capabilities = serializers.ListField(child=serializers.CharField())
    organisations = OrganisationSerializer(many=True)
    accreditations = AccreditationSerializer(many=True)
    accredited_today = serializers.BooleanField()
    authenticated_by = serializers.ChoiceField(choices=["session", "token"])


class PersonSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="display_name")

    class Meta:
        model = User
        fields = ["id", "username", "name", "email", "is_active"]


class RoleGrantSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class PersonRefSerializer(serializers.ModelSerializer):
    """Who did something: enough to name them, nothing more."""

    name = serializers.CharField(source="display_name")

    class Meta:
        model = User
        fields = ["id", "username", "name"]


class AccountCreateSerializer(serializers.Serializer):
    """A new account, as the page's form takes it (sde.views.forms.AccountForm)."""

    username = serializers.RegexField(r"^[A-Za-z0-9.@+_-]{3,150}$", max_length=150)
    first_name = serializers.CharField(max_length=150)
    last_name = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    password = serializers.CharField(
        trim_whitespace=False, write_only=True,
        help_text="The initial password: at least 12 characters, not a common password.",
    )  # fmt: skip


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class OrganisationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = OrganisationKindField()
    ods_code = serializers.RegexField(
        r"^[A-Za-z0-9]{3,10}$", required=False, allow_null=True, default=None,
        help_text="Required for a GP practice, for example Y99001.",
    )  # fmt: skip
    parent = serializers.PrimaryKeyRelatedField(
        queryset=Organisation.objects.all(), required=False, allow_null=True, default=None
    )


class MembershipSerializer(serializers.ModelSerializer):
    person = PersonRefSerializer(source="user", read_only=True)

    class Meta:
        model = OrganisationMembership
        fields = ["id", "person", "job_title", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    job_title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class OrganisationDetailSerializer(OrganisationSerializer):
    members = MembershipSerializer(source="memberships", many=True, read_only=True)

    class Meta(OrganisationSerializer.Meta):
        fields = [*OrganisationSerializer.Meta.fields, "members"]


class ApiTokenSerializer(serializers.ModelSerializer):
    """A token as its owner sees it: never the key, nor its hash."""

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = list(chain.EVENT_FIELDS)


class AuditEventDetailSerializer(AuditEventSerializer):
    entry_hash_ok = serializers.BooleanField()
    chain_link_ok = serializers.BooleanField()
    covered_by_signed_checkpoint = serializers.BooleanField()

    class Meta(AuditEventSerializer.Meta):
        fields = [
            *AuditEventSerializer.Meta.fields,
            "entry_hash_ok",
            "chain_link_ok",
            "covered_by_signed_checkpoint",
        ]


# --- The catalogue: metadata only, never rows -------------------------------------------
class DatasetFieldSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetField
        fields = ["name", "data_type", "description", "sensitivity", "position"]


class DatasetVersionSerializer(serializers.ModelSerializer):
    """A published version: counts, the Parquet file's SHA-256, the system key version of
    its pseudonyms, and the quality report (aggregates only)."""

    class Meta:
        model = DatasetVersion
        fields = [
            "version",
            "created_at",
            "row_count",
            "person_count",
            "quarantined_count",
            "checksum",
            "key_version",
            "quality",
        ]


class DatasetSerializer(serializers.ModelSerializer):
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "slug",
            "name",
            "description",
            "source_table",
            "controller_name",
            "gp_sourced",
            "dpia_reference",
            "latest_version",
        ]

    @extend_schema_field(DatasetVersionSerializer(allow_null=True))
    def get_latest_version(self, dataset: Dataset) -> dict[str, Any] | None:
        versions = list(dataset.versions.all())  # prefetched, newest first
        return DatasetVersionSerializer(versions[0]).data if versions else None


class DatasetDetailSerializer(DatasetSerializer):
    # The serializer metaclass moves declared fields out of the class, so this one does not
    # shadow ``Serializer.fields``.
    fields = DatasetFieldSerializer(many=True, read_only=True)
    versions = DatasetVersionSerializer(many=True, read_only=True)

    class Meta(DatasetSerializer.Meta):
        fields = [*DatasetSerializer.Meta.fields, "fields", "versions"]


# --- Ingestion (data custodians) --------------------------------------------------------
class IngestVersionSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = DatasetVersion
        fields = ["dataset", "version"]


class IngestSerializer(serializers.ModelSerializer):
    """An ingest as its pages show it: database state, never a Celery result."""

    requested_by = PersonRefSerializer(read_only=True)
    has_quarantine_report = serializers.SerializerMethodField()
    versions = IngestVersionSerializer(many=True, read_only=True)

    class Meta:
        model = Ingest
        fields = [
            "id",
            "status",
            "stage",
            "progress",
            "source_label",
            "fingerprint",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "received_rows",
            "ingested_rows",
            "quarantined_rows",
            "key_version",
            "error_class",
            "error_message",
            "has_quarantine_report",
            "versions",
        ]

    def get_has_quarantine_report(self, ingest: Ingest) -> bool:
        return bool(ingest.quarantine_path)


class DropUploadSerializer(serializers.Serializer):
    """A drop's files, checked as the upload page checks them."""

    label = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    drop_files = serializers.ListField(
        child=UploadField(),
        help_text="The drop's CSV files (patients.csv and any others) and its manifest.json, "
        "one part each under this name.",
    )

    def validate_drop_files(self, files: list[UploadedFile]) -> list[UploadedFile]:
        error = uploads.drop_files_error(files)
        if error:
            raise serializers.ValidationError(error)
        return files
