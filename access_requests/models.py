"""Access requests, their reviews, comments and attachments. Every write goes through
``access_requests.services`` (governed models), which audits it."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sde.governance import GovernedModel
from sde.identity.models import Organisation, User
from sde.projects.models import Project


class AccessRequest(GovernedModel):
    class Kind(models.TextChoices):
        NEW = "new", "New project"
        AMENDMENT = "amendment", "Amendment"
        EXTENSION = "extension", "Extension (end date only)"
        RENEWAL = "renewal", "Renewal"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        IN_REVIEW = "in_review", "In review"
        RETURNED = "returned", "Returned for changes"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.NEW)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    question_set_version = models.CharField(max_length=20)
    applicant = models.ForeignKey(User, on_delete=models.PROTECT, related_name="access_requests")
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="access_requests",
        help_text="The applicant's (lead) organisation.",
    )  # fmt: skip
    title = models.CharField(max_length=200, blank=True)
    answers = models.JSONField()
    revision = models.PositiveIntegerField(
        default=1, help_text="Raised by every save; a stale autosave is refused."
    )
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.PROTECT, related_name="access_requests"
    )
    based_on = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="changes",
        help_text="The approved request that a change request changes.",
    )  # fmt: skip
    review_round = models.PositiveIntegerField(
        default=0, help_text="Raised at each submission; approvals count within a round."
    )
    assignee = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    first_submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    approved_end_date = models.DateField(null=True, blank=True)
    conditions = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="new") | Q(based_on__isnull=False, project__isnull=False),
                name="change_request_names_its_project",
            ),
        ]

    def __str__(self) -> str:
        return f"Access request {self.pk}: {self.title or 'untitled'}"


class Review(GovernedModel):
    """One reviewer's decision in one review round."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        RETURN = "return", "Return for changes"
        REJECT = "reject", "Reject"
        CALDICOTT_SIGN_OFF = "caldicott_sign_off", "Caldicott Guardian sign-off"

    request = models.ForeignKey(AccessRequest, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    review_round = models.PositiveIntegerField()
    decision = models.CharField(max_length=20, choices=Decision.choices)
    reason = models.TextField(blank=True)
    end_date = models.DateField(null=True, blank=True)
    conditions = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "reviewer", "review_round", "decision"],
                name="one_decision_of_a_kind_per_reviewer_per_round",
            ),
            models.CheckConstraint(
                condition=~Q(decision__in=["return", "reject"]) | ~Q(reason=""),
                name="return_and_reject_need_a_reason",
            ),
        ]


class Comment(GovernedModel):
    """A public comment (the applicant sees it) or a reviewer's private note."""

    request = models.ForeignKey(AccessRequest, on_delete=models.PROTECT, related_name="comments")
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    private = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]


class Attachment(GovernedModel):
    class Kind(models.TextChoices):
        DPIA = "dpia", "DPIA"
        PROTOCOL = "protocol", "Protocol"
        REC_LETTER = "rec_letter", "REC letter"
        CAG_LETTER = "cag_letter", "CAG letter"
        DATA_FLOW = "data_flow", "Data flow diagram"
        OTHER = "other", "Other"

    request = models.ForeignKey(AccessRequest, on_delete=models.PROTECT, related_name="attachments")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    file_name = models.CharField(max_length=120)
    stored_path = models.CharField(max_length=300, help_text="Relative to the attachment root.")
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    redacted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    redacted_at = models.DateTimeField(null=True, blank=True)
    redaction_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["uploaded_at", "pk"]
