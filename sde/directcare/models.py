"""Re-identification for direct care: a clinician asks for the members of a planning or
direct care project's cohort who are registered at their own practice; an IG officer and
the Caldicott Guardian approve; the service decrypts their NHS numbers from the identity
vault into a list only the requesting clinician can open, for a limited time. The workflow
is ``sde.directcare.services.TRANSITIONS`` (reference/pseudonymisation.md).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sde.analysis.models import Cohort
from sde.governance import GovernedModel
from sde.identity.models import Organisation, User
from sde.projects.models import Project


class ReidentificationRequest(GovernedModel):
    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Awaiting both approvals"
        PARTIALLY_APPROVED = "partially_approved", "One approval in"
        APPROVED = "approved", "Approved: the list is being made"
        READY = "ready", "List ready"
        REFUSED = "refused", "Refused"
        WITHDRAWN = "withdrawn", "Withdrawn"
        FAILED = "failed", "Failed: no list made"
        EXPIRED = "expired", "Expired: the list is gone"

    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, related_name="reid_requests")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="reid_requests")
    practice = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="reid_requests"
    )
    practice_ods = models.CharField(max_length=10, help_text="The practice's ODS code then.")
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(help_text="The direct care the list is for.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUBMITTED)
    status_changed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    valid_days = models.PositiveSmallIntegerField(help_text="How long the list is kept.")
    people = models.PositiveIntegerField(
        null=True, blank=True, help_text="People on the list (counted when it is made)."
    )
    fields = models.JSONField(default=list, help_text="The demographic columns of the list.")
    key_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="Vault key version the list is encrypted under."
    )
    path = models.CharField(max_length=300, blank=True, help_text="Under the data root.")
    performed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="ready") | (Q(expires_at__isnull=False) & ~Q(path="")),
                name="ready_list_has_file_and_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"Re-identification request {self.pk}"


class ReidentificationDecision(GovernedModel):
    """One of the two sign-offs: an IG officer's and the Caldicott Guardian's."""

    class Role(models.TextChoices):
        IG = "ig", "IG officer"
        CALDICOTT = "caldicott", "Caldicott Guardian"

    class Outcome(models.TextChoices):
        APPROVE = "approve", "Approve"
        REFUSE = "refuse", "Refuse"

    request = models.ForeignKey(
        ReidentificationRequest, on_delete=models.PROTECT, related_name="decisions"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    comment = models.TextField(blank=True)
    decided_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["decided_at", "pk"]
        constraints = [
            # One decision per sign-off, and one person never gives both.
            models.UniqueConstraint(fields=["request", "role"], name="one_decision_per_role"),
            models.UniqueConstraint(
                fields=["request", "decided_by"], name="one_decision_per_person"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} {self.outcome} on request {self.request_id}"
