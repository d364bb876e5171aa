from __future__ import annotations

from rest_framework import serializers

from sde.audit import chain
from sde.audit.models import AuditEvent
from sde.identity.models import Accreditation, Organisation, User
from sde.identity.roles import Role


class OrganisationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organisation
        fields = ["id", "name", "kind", "ods_code", "parent"]


class AccreditationSerializer(serializers.ModelSerializer):
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
