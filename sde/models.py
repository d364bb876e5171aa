"""Core models, gathered from the core's sub-packages so Django finds them."""

from sde.audit.models import AuditCheckpoint, AuditEvent
from sde.identity.models import (
    Accreditation,
    ApiToken,
    Organisation,
    OrganisationMembership,
    RoleAssignment,
    User,
)

__all__ = [
    "Accreditation",
    "ApiToken",
    "AuditCheckpoint",
    "AuditEvent",
    "Organisation",
    "OrganisationMembership",
    "RoleAssignment",
    "User",
]
