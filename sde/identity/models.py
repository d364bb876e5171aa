"""People, organisations, roles and accreditation."""

from __future__ import annotations

from datetime import date

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

from sde.governance import GovernedModel
from sde.identity.roles import Role


class User(AbstractUser):
    """A person (or the system actor). Passwords are argon2; MFA is mandatory.

    ``is_staff``/``is_superuser`` are inherited but never set: there is no Django admin
    and no superuser; every right comes from roles and object permissions.
    """

    failed_login_count = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    is_system = models.BooleanField(
        default=False, help_text="The dedicated actor for system actions; cannot log in."
    )
    is_demo = models.BooleanField(
        default=False, help_text="Created by the demo seed; MFA hints shown in demo mode only."
    )

    class Meta:
        ordering = ["username"]

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


class Organisation(GovernedModel):
    class Kind(models.TextChoices):
        ICB = "icb", "Integrated Care Board / System"
        PLACE = "place", "Place"
        PCN = "pcn", "Primary Care Network"
        GP_PRACTICE = "gp_practice", "GP practice"
        LOCAL_AUTHORITY = "local_authority", "Local authority"
        UNIVERSITY = "university", "University"
        COMPANY = "company", "Commercial company"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    ods_code = models.CharField(
        max_length=10,
        null=True,
        blank=True,
        unique=True,
        help_text="NHS Organisation Data Service code (required for GP practices).",
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="gp_practice") | Q(ods_code__isnull=False),
                name="gp_practice_has_ods_code",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.ods_code})" if self.ods_code else self.name


class OrganisationMembership(GovernedModel):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="memberships"
    )
    job_title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organisation"], name="one_membership_per_org")
        ]


class RoleAssignment(GovernedModel):
    """A role held by a person; removal keeps the row (revoked_at) for the record."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(max_length=30, choices=Role.choices)
    granted_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    granted_at = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)
    revoked_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["role"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=Q(revoked_at__isnull=True),
                name="one_current_assignment_per_role",
            ),
            models.CheckConstraint(
                condition=~Q(user=models.F("granted_by")), name="role_not_self_granted"
            ),
        ]


class Accreditation(GovernedModel):
    class Kind(models.TextChoices):
        SAFE_RESEARCHER = "safe_researcher", "Safe researcher training"
        DATA_SECURITY = "data_security", "Data security awareness training"
        OUTPUT_CHECKER = "output_checker", "Output checker training"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="accreditations")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    issued_on = models.DateField()
    expires_on = models.DateField()
    certificate_reference = models.CharField(max_length=100, blank=True)
    recorded_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["-expires_on"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_on__gt=models.F("issued_on")),
                name="accreditation_expires_after_issue",
            )
        ]

    def is_current_on(self, day: date) -> bool:
        return self.issued_on <= day <= self.expires_on


class ApiToken(GovernedModel):
    """A personal API token. Only a SHA-256 of the key is stored; the key is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"API token {self.name} ({self.prefix}…)"
