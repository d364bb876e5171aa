"""The release API's bodies: requests, their files with the automated check's verdict,
exception requests, reviews and decisions, and the checkers' queue.

What a response shows depends on the caller where the pages' rules say so: a finding's
``evidence`` (the numbers a rule used) and a file's ``content_url`` are for the output
checkers who may review the request; ``download_url`` is for the project's members once
the file is released; the decisions are those ``selectors.visible_decisions`` lets the
caller read (blind review), naming the checker who made each only to output checkers.
Findings are aggregate: the cells they name are dimension values, never person ids.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from outputs import selectors
from outputs.models import ExceptionRequest, FileDecision, ReleaseFile, ReleaseRequest, Review
from sde import policy
from sde.api.serializers import PersonRefSerializer, ProjectPurposeSerializer, choice_field

CHECK_STATUSES = ["pass", "review", "fail"]
LOG = "log"


# --- Named choice sets (one schema component each: "status" and "decision" mean other
# things elsewhere in the API) ---------------------------------------------------------
ReleaseStatusField = choice_field("ReleaseRequestStatusEnum", ReleaseRequest.Status.choices)
CheckStatusField = choice_field("CheckStatusEnum", [(v, v) for v in CHECK_STATUSES])
DecisionField = choice_field("FileDecisionEnum", FileDecision.Decision.choices)
ReasonField = choice_field("ExceptionReasonEnum", ExceptionRequest.Reason.choices)


# --- Requests ---------------------------------------------------------------------------
class ReleaseProjectSerializer(ProjectPurposeSerializer):
    """The project a request is from, with what the checkers weigh the outputs against:
    the approved purpose and legal basis."""


class ReleaseRequestSerializer(serializers.ModelSerializer):
    """A request as a list shows it."""

    project = ReleaseProjectSerializer(read_only=True)
    status = ReleaseStatusField(read_only=True)
    created_by = PersonRefSerializer(read_only=True)
    assignee = PersonRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = ReleaseRequest
        fields = ["id", "project", "title", "status", "round", "created_by", "assignee",
                  "created_at", "submitted_at", "status_changed_at", "released_at"]  # fmt: skip
        read_only_fields = fields


# --- Files ------------------------------------------------------------------------------
class FindingSerializer(serializers.Serializer):
    """One rule's result for one cell (``row`` and ``column`` null: the whole file)."""

    rule = serializers.CharField()
    status = CheckStatusField()
    message = serializers.CharField()
    row = serializers.IntegerField(allow_null=True)
    column = serializers.CharField(allow_null=True)
    cell = serializers.DictField(help_text="The cell's dimension values.")
    evidence = serializers.DictField(
        required=False,
        help_text="The numbers the rule used (aggregates only); shown to the output "
        "checkers who may review the request.",
    )


class MitigationSerializer(serializers.Serializer):
    """What the policy would do to make the table safe, with the rules re-run on it.
    Cells are [row, column] pairs."""

    status = CheckStatusField()
    primary = serializers.ListField(child=serializers.ListField())
    secondary = serializers.ListField(child=serializers.ListField())
    rounding_base = serializers.IntegerField(allow_null=True)


class ExceptionRequestSerializer(serializers.ModelSerializer):
    reason = ReasonField(read_only=True)
    created_by = PersonRefSerializer(read_only=True)
    cells = serializers.ListField(child=serializers.DictField(allow_null=True), read_only=True)

    class Meta:
        model = ExceptionRequest
        fields = ["id", "rule", "reason", "justification", "cells", "created_by", "created_at"]
        read_only_fields = fields


class ReleaseFileSerializer(serializers.ModelSerializer):
    """A file of a request: what it is, the researcher's context and controls, the
    automated check of its bytes, the exceptions asked for, and how it was settled."""

    job = serializers.IntegerField(source="job_id", read_only=True)
    output = serializers.IntegerField(
        source="output_id", read_only=True, allow_null=True, help_text="Null: the job's log."
    )
    outcome = CheckStatusField(read_only=True)
    status = serializers.SerializerMethodField()
    rules = serializers.SerializerMethodField()
    findings = serializers.SerializerMethodField()
    notes = serializers.SerializerMethodField()
    mitigation = serializers.SerializerMethodField()
    exceptions = ExceptionRequestSerializer(many=True, read_only=True)
    exceptions_missing = serializers.SerializerMethodField()
    decision = serializers.SerializerMethodField()
    released = serializers.SerializerMethodField()
    content_url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ReleaseFile
        fields = ["id", "job", "output", "name", "size", "sha256", "context", "controls",
                  "outcome", "status", "rules", "findings", "notes", "mitigation",
                  "exceptions", "exceptions_missing", "added_round", "removed_round",
                  "decision", "released", "content_url", "download_url"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(CheckStatusField(help_text="The worst finding before mitigation."))
    def get_status(self, file: ReleaseFile) -> str:
        return str(file.verdict.get("status", file.outcome))

    @extend_schema_field(serializers.DictField(child=CheckStatusField()))
    def get_rules(self, file: ReleaseFile) -> dict[str, str]:
        return dict(file.verdict.get("rules", {}))

    @extend_schema_field(FindingSerializer(many=True))
    def get_findings(self, file: ReleaseFile) -> list[dict[str, Any]]:
        shown = ["rule", "status", "message", "row", "column", "cell"]
        reviewer = bool(self.context.get("reviewer"))
        if reviewer:
            shown.append("evidence")
        findings = selectors.findings_shown(file, values=reviewer or file.job.on_dummy)
        return [{key: finding.get(key) for key in shown} for finding in findings]

    def get_notes(self, file: ReleaseFile) -> list[str]:
        return [str(note) for note in file.verdict.get("notes", [])]

    @extend_schema_field(MitigationSerializer(allow_null=True))
    def get_mitigation(self, file: ReleaseFile) -> dict[str, Any] | None:
        mitigation = file.verdict.get("mitigation")
        if not mitigation:
            return None
        keys = ("status", "primary", "secondary", "rounding_base")
        return {key: mitigation.get(key) for key in keys}

    def get_exceptions_missing(self, file: ReleaseFile) -> list[str]:
        """Rules the check did not pass with no exception request yet: each needs one
        before the request can be submitted."""
        asked = {exception.rule for exception in file.exceptions.all()}
        return [rule for rule in selectors.non_pass_rules(file) if rule not in asked]

    @extend_schema_field(
        DecisionField(allow_null=True, help_text="How the reviews settled it (null: not yet).")
    )
    def get_decision(self, file: ReleaseFile) -> str | None:
        return file.decision or None

    def get_released(self, file: ReleaseFile) -> bool:
        return hasattr(file, "released")

    def get_content_url(self, file: ReleaseFile) -> str | None:
        """The file's current bytes, for the output checkers who may review it."""
        if not self.context.get("reviewer"):
            return None
        return reverse("api-release-file-content", args=[file.request_id, file.pk])

    def get_download_url(self, file: ReleaseFile) -> str | None:
        """The released bytes, for the project's members while the release stands."""
        request = file.request
        if not (self.context.get("downloader") and request.status == ReleaseRequest.Status.RELEASED
                and hasattr(file, "released")):  # fmt: skip
            return None
        return reverse("api-release-file-download", args=[file.request_id, file.pk])


# --- Reviews ----------------------------------------------------------------------------
class FileDecisionSerializer(serializers.ModelSerializer):
    """A checker's decision on a file, with the exceptions they granted (true) or refused.
    Researchers see which round and which of its checkers decided, not who: ``reviewer``
    is given to output checkers only (context ``names``), ``checker`` to everyone."""

    review = serializers.IntegerField(source="review_id", read_only=True)
    round = serializers.IntegerField(source="review.round", read_only=True)
    reviewer = serializers.SerializerMethodField()
    checker = serializers.SerializerMethodField()
    file = serializers.IntegerField(source="file_id", read_only=True)
    decision = DecisionField(read_only=True)
    exceptions = serializers.DictField(child=serializers.BooleanField(), read_only=True)

    class Meta:
        model = FileDecision
        fields = ["id", "review", "round", "reviewer", "checker", "file", "decision", "comment",
                  "exceptions", "decided_at"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(PersonRefSerializer(allow_null=True))
    def get_reviewer(self, made: FileDecision) -> dict[str, Any] | None:
        if not self.context.get("names", True):
            return None
        return PersonRefSerializer(made.review.reviewer).data  # type: ignore[no-any-return]

    def get_checker(self, made: FileDecision) -> str:
        """ "Round 1, output checker 2": which of the round's checkers decided."""
        labels = self.context.get("labels") or {}
        return str(labels.get(made.review_id, f"Round {made.review.round}"))


def checker_labels(decisions: list[FileDecision]) -> dict[int, str]:
    """Each review's label: its round, and its place among that round's reviews shown."""
    by_round: dict[int, list[int]] = {}
    for made in sorted(decisions, key=lambda d: d.review_id):
        reviews = by_round.setdefault(made.review.round, [])
        if made.review_id not in reviews:
            reviews.append(made.review_id)
    return {review: f"Round {number}, output checker {place}"
            for number, reviews in by_round.items()
            for place, review in enumerate(reviews, start=1)}  # fmt: skip


class ReviewSerializer(serializers.ModelSerializer):
    """A checker's own review of one round, with their decisions so far."""

    request = serializers.IntegerField(source="request_id", read_only=True)
    reviewer = PersonRefSerializer(read_only=True)
    decisions = FileDecisionSerializer(many=True, read_only=True)

    class Meta:
        model = Review
        fields = ["id", "request", "round", "reviewer", "started_at", "submitted_at", "decisions"]
        read_only_fields = fields


class ReviewRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Review
        fields = ["id", "round", "started_at", "submitted_at"]
        read_only_fields = fields


class ReleaseReviewStateSerializer(serializers.Serializer):
    """For output checkers: this round's reviews, the caller's own, the files two
    reviewers disagree on (a third checker settles them), and why the caller may not
    review the request (null: they may)."""

    round = serializers.IntegerField()
    reviews_started = serializers.IntegerField()
    reviews_submitted = serializers.IntegerField()
    mine = ReviewRefSerializer(allow_null=True)
    disputed = serializers.ListField(child=serializers.IntegerField())
    conflict = serializers.CharField(allow_null=True)


class ReleaseRequestDetailSerializer(ReleaseRequestSerializer):
    """One request: the policy its files are checked against, its current files (and
    those removed in earlier rounds, for the diff of a resubmission), and the decisions
    the caller may read."""

    policy = serializers.DictField(read_only=True)
    files = serializers.SerializerMethodField()
    removed_files = serializers.SerializerMethodField()
    decisions = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()
    results_url = serializers.SerializerMethodField()

    class Meta(ReleaseRequestSerializer.Meta):
        fields = [*ReleaseRequestSerializer.Meta.fields, "policy", "revoked_at",
                  "revoked_reason", "files", "removed_files", "decisions", "review",
                  "results_url"]  # fmt: skip
        read_only_fields = fields

    def _files(self, request: ReleaseRequest, *, current: bool) -> list[dict[str, Any]]:
        files = (
            request.files.filter(removed_round__isnull=current)
            .select_related("request", "released")
            .prefetch_related("exceptions__created_by")
        )
        return ReleaseFileSerializer(files, many=True, context=self.context).data  # type: ignore[no-any-return]

    @extend_schema_field(ReleaseFileSerializer(many=True))
    def get_files(self, request: ReleaseRequest) -> list[dict[str, Any]]:
        return self._files(request, current=True)

    @extend_schema_field(ReleaseFileSerializer(many=True))
    def get_removed_files(self, request: ReleaseRequest) -> list[dict[str, Any]]:
        return self._files(request, current=False)

    @extend_schema_field(FileDecisionSerializer(many=True))
    def get_decisions(self, request: ReleaseRequest) -> list[dict[str, Any]]:
        user = self.context["user"]
        decisions = selectors.visible_decisions(user, request)
        context = {"labels": checker_labels(decisions), "names": policy.user_checks_outputs(user)}
        return FileDecisionSerializer(decisions, many=True, context=context).data  # type: ignore[no-any-return]

    @extend_schema_field(ReleaseReviewStateSerializer(allow_null=True))
    def get_review(self, request: ReleaseRequest) -> dict[str, Any] | None:
        state = self.context.get("review_state")
        return None if state is None else ReleaseReviewStateSerializer(state).data

    def get_results_url(self, request: ReleaseRequest) -> str:
        """The request as ACRO's results.json, for SACRO-Viewer."""
        return reverse("api-release-results", args=[request.pk])


class OutputQueueEntrySerializer(serializers.Serializer):
    request = ReleaseRequestSerializer()
    age_days = serializers.IntegerField(help_text="Days since it was submitted.")
    reviews_in = serializers.IntegerField(help_text="Reviews submitted in this round.")
    mine = ReviewRefSerializer(allow_null=True, help_text="The caller's review of this round.")


# --- Bodies -----------------------------------------------------------------------------
class ReleaseCreateSerializer(serializers.Serializer):
    title = serializers.CharField(allow_blank=True, max_length=200)


@extend_schema_field(
    {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": [LOG]}],
     "description": f'An output of the job, or "{LOG}" for the log of a run on real data.'}
)  # fmt: skip
class OutputChoiceField(serializers.Field):
    """An output's id, or "log"."""

    default_error_messages = {"invalid": f'Give an output id or "{LOG}".'}

    def to_internal_value(self, data: Any) -> int | str:
        if data == LOG:
            return LOG
        if isinstance(data, bool):
            self.fail("invalid")
        try:
            value = int(data)
        except (TypeError, ValueError):
            self.fail("invalid")
        if value < 1:
            self.fail("invalid")
        return value

    def to_representation(self, value: Any) -> Any:
        return value


class FileAddSerializer(serializers.Serializer):
    job_id = serializers.IntegerField(min_value=1, help_text="A job of the request's project.")
    output_id = OutputChoiceField()
    context = serializers.CharField(
        allow_blank=True, help_text="What the file shows, and about which population."
    )
    controls = serializers.CharField(
        allow_blank=True, required=False, default="",
        help_text="What was done to make it safe.",
    )  # fmt: skip


class ExceptionCreateSerializer(serializers.Serializer):
    rule = serializers.CharField(max_length=10, help_text="A rule the file did not pass.")
    reason = ReasonField()
    justification = serializers.CharField(allow_blank=True)


class DecisionBodySerializer(serializers.Serializer):
    decision = DecisionField()
    comment = serializers.CharField(allow_blank=True, required=False, default="")
    exceptions = serializers.DictField(
        child=serializers.BooleanField(), required=False, default=dict,
        help_text="Per rule the researcher asked an exception for: granted (true) or not.",
    )  # fmt: skip


class RevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, help_text="Recorded with the revocation.")
