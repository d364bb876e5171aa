"""Release requests: how outputs of a project's jobs leave the environment.

A researcher groups files from the project's jobs into a request, says for each what it
shows and what was done to make it safe, and files an exception for every rule the
automated check did not pass. Two output checkers who are not members of the project
review it, blind to each other, file by file; only files both approve are released, as
the exact bytes they reviewed. The workflow is ``outputs.services.TRANSITIONS``.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sde.analysis.models import Job, JobOutput
from sde.governance import GovernedModel
from sde.identity.models import User
from sde.projects.models import Project


class ReleaseRequest(GovernedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        PARTIALLY_REVIEWED = "partially_reviewed", "One review in"
        REVIEWED = "reviewed", "Both reviews in"
        APPROVED = "approved", "Approved"
        RELEASED = "released", "Released"
        RETURNED = "returned", "Returned for changes"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"
        REVOKED = "revoked", "Release revoked"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="releases")
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    status_changed_at = models.DateTimeField()
    round = models.PositiveIntegerField(
        default=1, help_text="Submission round: a resubmission after a return starts another."
    )
    policy = models.JSONField(help_text="The disclosure policy the files are checked against.")
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Release request {self.pk}: {self.title}"


class ReleaseFile(GovernedModel):
    """One file of a request: a job output or a real job's log, with the researcher's
    context and controls and the automated check's verdict on the bytes checked."""

    request = models.ForeignKey(ReleaseRequest, on_delete=models.PROTECT, related_name="files")
    job = models.ForeignKey(Job, on_delete=models.PROTECT, related_name="+")
    output = models.ForeignKey(
        JobOutput, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Empty for the job's log.",
    )  # fmt: skip
    name = models.CharField(max_length=200)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, help_text="Of the bytes checked and reviewed.")
    context = models.TextField(help_text="What it shows, and about which population.")
    controls = models.TextField(blank=True, help_text="What was done to make it safe.")
    verdict = models.JSONField(help_text="The automated check (outputs.sdc) of these bytes.")
    outcome = models.CharField(max_length=6, help_text="pass, review or fail.")
    added_round = models.PositiveIntegerField()
    removed_round = models.PositiveIntegerField(null=True, blank=True)
    decision = models.CharField(
        max_length=16, blank=True, help_text="approved, changes or rejected once decided."
    )

    class Meta:
        ordering = ["request", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "job", "name"], condition=Q(removed_round__isnull=True),
                name="one_current_file_per_job_output",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.name} (job {self.job_id})"


class ExceptionRequest(GovernedModel):
    """The researcher's case for a rule the check did not pass, for one file."""

    class Reason(models.TextChoices):
        STRUCTURAL_ZERO = "structural_zero", "Structural zero (cannot occur)"
        PUBLIC_INFORMATION = "public_information", "Public information"
        NOT_ABOUT_INDIVIDUALS = "not_about_individuals", "Not about individuals"
        SAFE_AGGREGATE = "safe_aggregate", "Aggregate of already-safe outputs"
        OTHER = "other", "Other"

    file = models.ForeignKey(ReleaseFile, on_delete=models.PROTECT, related_name="exceptions")
    rule = models.CharField(max_length=10)
    cells = models.JSONField(default=list, help_text="The findings' cells it covers.")
    reason = models.CharField(max_length=24, choices=Reason.choices)
    justification = models.TextField()
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["file", "rule"]
        constraints = [
            models.UniqueConstraint(fields=["file", "rule"], name="one_exception_per_rule")
        ]


class Review(GovernedModel):
    """One checker's review of one round of a request; its file decisions are hidden from
    the other checkers until it and another are submitted."""

    request = models.ForeignKey(ReleaseRequest, on_delete=models.PROTECT, related_name="reviews")
    round = models.PositiveIntegerField()
    reviewer = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["request", "round", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "round", "reviewer"], name="one_review_per_checker_per_round"
            )
        ]


class FileDecision(GovernedModel):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        CHANGES = "changes", "Request changes"
        REJECT = "reject", "Reject"

    review = models.ForeignKey(Review, on_delete=models.PROTECT, related_name="decisions")
    file = models.ForeignKey(ReleaseFile, on_delete=models.PROTECT, related_name="decisions")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    exceptions = models.JSONField(default=dict, help_text="rule -> granted (true) or refused.")
    decided_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["review", "file"], name="one_decision_per_file")
        ]


class ReleasedFile(GovernedModel):
    """The exact bytes released: a copy kept under the data root, verified at download."""

    file = models.OneToOneField(ReleaseFile, on_delete=models.PROTECT, related_name="released")
    path = models.CharField(max_length=300, help_text="Under the data root.")
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    released_at = models.DateTimeField(auto_now_add=True)
