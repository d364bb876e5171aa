"""Core models, gathered from the core's sub-packages so Django finds them."""

from sde.analysis.models import Cohort, Job, JobOutput, Script
from sde.audit.models import AuditCheckpoint, AuditEvent
from sde.data.models import (
    Dataset,
    DatasetField,
    DatasetVersion,
    IdentityVaultRecord,
    Ingest,
    Sensitivity,
)
from sde.directcare.models import ReidentificationDecision, ReidentificationRequest
from sde.identity.models import (
    Accreditation,
    ApiToken,
    Organisation,
    OrganisationMembership,
    RoleAssignment,
    User,
)
from sde.projects.models import Project, ProjectField, ProjectMembership

__all__ = [
    "Accreditation",
    "ApiToken",
    "AuditCheckpoint",
    "AuditEvent",
    "Cohort",
    "Dataset",
    "DatasetField",
    "DatasetVersion",
    "IdentityVaultRecord",
    "Ingest",
    "Job",
    "JobOutput",
    "Organisation",
    "OrganisationMembership",
    "Project",
    "ProjectField",
    "ProjectMembership",
    "ReidentificationDecision",
    "ReidentificationRequest",
    "RoleAssignment",
    "Script",
    "Sensitivity",
    "User",
]
