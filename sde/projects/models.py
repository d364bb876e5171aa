"""Projects: the approved, time-limited use of data that extracts, jobs, outputs, cohorts
and re-identification hang off. ``access_requests`` creates them at approval through
``sde.projects.services``; the core never imports the workflow apps."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sde.data.models import DatasetField
from sde.governance import GovernedModel
from sde.identity.models import Organisation, User


class Project(GovernedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"
        CLOSED = "closed", "Closed"

    title = models.CharField(max_length=200)
    lay_summary = models.TextField()
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="projects"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=300, blank=True)
    status_changed_at = models.DateTimeField()
    start_date = models.DateField()
    end_date = models.DateField(help_text="Access ends after this day.")
    scope = models.JSONField(help_text="The approved data scope (an extract scope).")
    conditions = models.TextField(blank=True)
    access_request_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="The access request whose approval created it."
    )
    s251_expiry = models.DateField(null=True, blank=True)
    rec_expiry = models.DateField(null=True, blank=True)
    dspt_expiry = models.DateField(
        null=True, blank=True, help_text="The earliest DSPT date of the organisations."
    )
    reminders_sent = models.JSONField(default=list)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    destruction_attestation = models.TextField(blank=True)
    released_outputs = models.PositiveIntegerField(
        default=0, help_text="Files released through output checking and not revoked."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [("access_project_data", "Use the project's data inside the environment")]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=models.F("start_date")), name="project_ends_after_start"
            ),
            models.CheckConstraint(
                condition=~Q(status="closed") | ~Q(destruction_attestation=""),
                name="closed_project_has_destruction_attestation",
            ),
        ]

    def __str__(self) -> str:
        return f"Project {self.pk}: {self.title}"


class ProjectMembership(GovernedModel):
    class Role(models.TextChoices):
        PRINCIPAL_INVESTIGATOR = "principal_investigator", "Principal investigator"
        ANALYST = "analyst", "Analyst"
        CLINICAL_LEAD = "clinical_lead", "Clinical lead"
        STUDENT = "student", "Student"
        SUPERVISOR = "supervisor", "Supervisor"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="project_memberships")
    role = models.CharField(max_length=24, choices=Role.choices)
    accesses_data = models.BooleanField(default=True)
    added_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)
    removed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    removed_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(
        null=True, blank=True, help_text="Data access paused (e.g. accreditation lapsed)."
    )
    suspension_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["project", "added_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "user"],
                condition=Q(removed_at__isnull=True),
                name="one_current_membership_per_person",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in project {self.project_id}"


class ProjectField(GovernedModel):
    """One field of the project's approved scope. Each data-using member holds the
    django-guardian permission ``read_project_field`` on each of these objects; the
    permission is per project, so a person in two projects never carries one project's
    fields into the other (policy.project_data_refusal checks every one at each use)."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="fields")
    field = models.ForeignKey(DatasetField, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["project", "field"]
        default_permissions = ()
        permissions = [("read_project_field", "Read this field of the project's extract")]
        constraints = [
            models.UniqueConstraint(fields=["project", "field"], name="one_row_per_project_field")
        ]

    @property
    def label(self) -> str:
        return f"{self.field.dataset.slug}.{self.field.name}"

    def __str__(self) -> str:
        return f"{self.label} in project {self.project_id}"
