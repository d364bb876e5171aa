"""The access request API's bodies.

Answers go to the services as sent: the question set (``access_requests.questions``) is
the one judge of what an answer may be, so nothing here re-checks sections, questions,
datasets, fields or organisations. What a response shows depends on the caller only
where the services say so (private notes, the reviewers' block)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from access_requests import questions, selectors, services
from access_requests.models import AccessRequest, Attachment, Comment, Review
from sde import policy
from sde.api.fields import UploadField
from sde.api.serializers import OrganisationSerializer, PersonRefSerializer, choice_field

# --- Named choice sets (one schema component each: "kind" and "status" mean different
# things in different parts of the API) -----------------------------------------------
RequestKindField = choice_field("AccessRequestKindEnum", AccessRequest.Kind.choices)
RequestStatusField = choice_field("AccessRequestStatusEnum", AccessRequest.Status.choices)
AttachmentKindField = choice_field("AttachmentKindEnum", Attachment.Kind.choices)
ChangeKindField = choice_field(
    "ChangeKindEnum", [c for c in AccessRequest.Kind.choices if c[0] != AccessRequest.Kind.NEW]
)


# --- Requests ---------------------------------------------------------------------------
class AccessRequestSerializer(serializers.ModelSerializer):
    """A request as a list shows it."""

    kind = RequestKindField(read_only=True)
    status = RequestStatusField(read_only=True)
    applicant = PersonRefSerializer(read_only=True)
    organisation = OrganisationSerializer(read_only=True)
    project = serializers.IntegerField(source="project_id", read_only=True, allow_null=True)

    class Meta:
        model = AccessRequest
        fields = [
            "id",
            "kind",
            "status",
            "title",
            "applicant",
            "organisation",
            "project",
            "revision",
            "submitted_at",
            "decided_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class FlagSerializer(serializers.Serializer):
    code = serializers.CharField()
    text = serializers.CharField()


class OptOutTreatmentSerializer(serializers.Serializer):
    """Derived from the purpose and legal basis answers, never chosen by the applicant."""

    ndop_applied = serializers.BooleanField()
    type1_applied = serializers.BooleanField()
    consented_only = serializers.BooleanField()
    explanation = serializers.CharField()
    table_version = serializers.IntegerField()


class AnswerChangeSerializer(serializers.Serializer):
    question = serializers.CharField(help_text="section.question")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class ApprovalSerializer(serializers.ModelSerializer):
    reviewer = PersonRefSerializer(read_only=True)

    class Meta:
        model = Review
        fields = ["reviewer", "end_date", "conditions", "created_at"]
        read_only_fields = fields


class ReviewStateSerializer(serializers.Serializer):
    """For reviewers: this round's approvals, what approval still needs, and why the
    caller may not review the request (null: they may)."""

    review_round = serializers.IntegerField()
    approvals = ApprovalSerializer(many=True)
    missing_for_approval = serializers.ListField(child=serializers.CharField())
    conflict = serializers.CharField(allow_null=True)


SECTION_ERRORS = serializers.DictField(
    child=serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
    help_text="Per section, what stops the application from being submitted, keyed "
    "section.question (empty: the section is complete).",
)


class AccessRequestDetailSerializer(AccessRequestSerializer):
    """One request: its answers and where it stands. ``revision`` is sent back with the
    next save; a stale one is refused (409)."""

    based_on = serializers.IntegerField(source="based_on_id", read_only=True, allow_null=True)
    assignee = PersonRefSerializer(read_only=True, allow_null=True)
    answers = serializers.DictField(child=serializers.DictField(), read_only=True)
    section_errors = serializers.SerializerMethodField()
    flags = serializers.SerializerMethodField()
    opt_out_treatment = serializers.SerializerMethodField()
    changes = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()

    class Meta(AccessRequestSerializer.Meta):
        fields = [
            *AccessRequestSerializer.Meta.fields,
            "question_set_version",
            "based_on",
            "review_round",
            "assignee",
            "first_submitted_at",
            "decision_reason",
            "approved_end_date",
            "conditions",
            "answers",
            "section_errors",
            "flags",
            "opt_out_treatment",
            "changes",
            "review",
        ]
        read_only_fields = fields

    @extend_schema_field(SECTION_ERRORS)
    def get_section_errors(self, request: AccessRequest) -> dict[str, Any]:
        return questions.section_errors(request.answers)

    @extend_schema_field(FlagSerializer(many=True))
    def get_flags(self, request: AccessRequest) -> list[dict[str, str]]:
        return [{"code": f.code, "text": f.text} for f in selectors.review_flags(request)]

    @extend_schema_field(OptOutTreatmentSerializer)
    def get_opt_out_treatment(self, request: AccessRequest) -> dict[str, Any]:
        return OptOutTreatmentSerializer(selectors.opt_out_treatment(request)).data

    @extend_schema_field(AnswerChangeSerializer(many=True))
    def get_changes(self, request: AccessRequest) -> list[dict[str, Any]]:
        return [
            {"question": question, "before": before, "after": after}
            for question, before, after in selectors.changes(request)
        ]

    @extend_schema_field(ReviewStateSerializer(allow_null=True))
    def get_review(self, request: AccessRequest) -> dict[str, Any] | None:
        user = self.context["user"]
        if not (
            policy.user_reviews_access_requests(user) or policy.user_signs_off_public_interest(user)
        ):
            return None
        state = {
            "review_round": request.review_round,
            "approvals": services.approvals(request),
            "missing_for_approval": services.missing_for_approval(request),
            "conflict": services.conflict_of(user, request),
        }
        return ReviewStateSerializer(state).data


class _UserScopedPrimaryKey(serializers.PrimaryKeyRelatedField):
    """A primary key among the rows the policy lets the caller see (``visible``)."""

    def __init__(self, visible: Any, **kwargs: Any) -> None:
        self.visible = visible
        super().__init__(pk_field=serializers.IntegerField(), **kwargs)

    def get_queryset(self) -> Any:
        return self.visible(self.context["user"])


class AccessRequestCreateSerializer(serializers.Serializer):
    organisation = _UserScopedPrimaryKey(
        policy.visible_organisations_for,
        help_text="The lead organisation: one the applicant belongs to.",
    )
    title = serializers.CharField(required=False, allow_blank=True, default="")


class AnswersUpdateSerializer(serializers.Serializer):
    revision = serializers.IntegerField(
        min_value=1, help_text="The revision the answers were loaded at."
    )
    answers = serializers.DictField(
        help_text="Section -> question -> answer, as in the application form."
    )
    sections = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Save only these sections (default: every section).",
    )


# --- Comments and attachments ------------------------------------------------------------
class CommentSerializer(serializers.ModelSerializer):
    author = PersonRefSerializer(read_only=True)

    class Meta:
        model = Comment
        fields = ["id", "author", "body", "private", "created_at"]
        read_only_fields = fields


class CommentCreateSerializer(serializers.Serializer):
    # Not required here: the service decides who may comment before what they wrote.
    body = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )
    private = serializers.BooleanField(
        default=False, help_text="A reviewer's private note (reviewers only)."
    )


class AttachmentSerializer(serializers.ModelSerializer):
    kind = AttachmentKindField(read_only=True)
    uploaded_by = PersonRefSerializer(read_only=True)
    redacted_by = PersonRefSerializer(read_only=True, allow_null=True)
    redacted = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = [
            "id",
            "kind",
            "file_name",
            "content_type",
            "size",
            "sha256",
            "uploaded_by",
            "uploaded_at",
            "redacted",
            "redacted_by",
            "redacted_at",
            "redaction_reason",
        ]
        read_only_fields = fields

    def get_redacted(self, attachment: Attachment) -> bool:
        return attachment.redacted_at is not None


class AttachmentUploadSerializer(serializers.Serializer):
    kind = AttachmentKindField()
    file = UploadField(help_text="PDF, PNG, JPEG, DOCX or plain text, within the size limit.")


class RedactionSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True)
    replacement = UploadField(
        required=False, help_text="A redacted copy to keep in the original's place."
    )


# --- Review -----------------------------------------------------------------------------
class ApprovalTermsSerializer(serializers.Serializer):
    end_date = serializers.DateField(help_text="The end of access.")
    conditions = serializers.CharField(required=False, allow_blank=True, default="")


class ReviewReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, help_text="The applicant sees it.")


class AssignmentSerializer(serializers.Serializer):
    assignee = _UserScopedPrimaryKey(
        policy.visible_people_for, help_text="An independent IG officer."
    )


class SignOffSerializer(serializers.Serializer):
    note = serializers.CharField(allow_blank=True)


class ChangeStartSerializer(serializers.Serializer):
    kind = ChangeKindField()


class QueueEntrySerializer(serializers.Serializer):
    request = AccessRequestSerializer()
    age_days = serializers.IntegerField()
    overdue = serializers.BooleanField()
    approvals = serializers.IntegerField()
    needed = serializers.ListField(child=serializers.CharField())
    conflict = serializers.CharField(
        allow_null=True, help_text="Why the caller may not review it (null: they may)."
    )
