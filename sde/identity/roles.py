"""Roles and the capabilities each one declares (DESIGN.md section 2).

Capabilities are what the permission policy checks; roles are only bundles of them.
Object-level rights (a project's members, its datasets) come from django-guardian via
``sde.policy`` and are never implied by a role.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    RESEARCHER = "researcher", "Researcher / analyst"
    IG_OFFICER = "ig_officer", "IG officer"
    CALDICOTT_GUARDIAN = "caldicott_guardian", "Caldicott Guardian"
    OUTPUT_CHECKER = "output_checker", "Output checker"
    DATA_CUSTODIAN = "data_custodian", "Data custodian"
    CLINICIAN = "clinician", "Clinician (direct care)"
    ADMINISTRATOR = "administrator", "Administrator"


class Capability(models.TextChoices):
    APPLY_FOR_ACCESS = "apply_for_access", "Apply for access to data for a project"
    REVIEW_ACCESS_REQUESTS = "review_access_requests", "Review and decide access requests"
    MANAGE_OPT_OUTS = "manage_opt_outs", "Manage the opt-out register and exemptions"
    READ_AUDIT_LOG = "read_audit_log", "Search and export the audit log"
    SUSPEND_PROJECTS = "suspend_projects", "Suspend projects and people"
    SIGN_OFF_REIDENTIFICATION = "sign_off_reidentification", "Sign off re-identification"
    SIGN_OFF_PUBLIC_INTEREST = "sign_off_public_interest", "Sign off overriding public interest"
    CHECK_OUTPUTS = "check_outputs", "Review release requests of other projects"
    MANAGE_DATASETS = "manage_datasets", "Onboard datasets and run ingestion"
    MANAGE_KEYS = "manage_keys", "Manage pseudonymisation keys"
    REQUEST_REIDENTIFICATION = "request_reidentification", "Request re-identification"
    MANAGE_ACCOUNTS = "manage_accounts", "Manage accounts"
    MANAGE_ROLES = "manage_roles", "Grant and remove roles"
    MANAGE_ORGANISATIONS = "manage_organisations", "Manage organisations and memberships"
    RECORD_ACCREDITATIONS = "record_accreditations", "Record training and accreditation"


C = Capability
ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.RESEARCHER: frozenset({C.APPLY_FOR_ACCESS}),
    Role.IG_OFFICER: frozenset(
        {
            C.REVIEW_ACCESS_REQUESTS,
            C.MANAGE_OPT_OUTS,
            C.READ_AUDIT_LOG,
            C.SUSPEND_PROJECTS,
            C.RECORD_ACCREDITATIONS,
        }
    ),
    Role.CALDICOTT_GUARDIAN: frozenset({C.SIGN_OFF_REIDENTIFICATION, C.SIGN_OFF_PUBLIC_INTEREST}),
    Role.OUTPUT_CHECKER: frozenset({C.CHECK_OUTPUTS}),
    Role.DATA_CUSTODIAN: frozenset({C.MANAGE_DATASETS, C.MANAGE_KEYS}),
    Role.CLINICIAN: frozenset({C.REQUEST_REIDENTIFICATION}),
    Role.ADMINISTRATOR: frozenset(
        {C.MANAGE_ACCOUNTS, C.MANAGE_ROLES, C.MANAGE_ORGANISATIONS, C.RECORD_ACCREDITATIONS}
    ),
}


def capabilities_of(roles: frozenset[Role] | set[Role]) -> frozenset[Capability]:
    result: set[Capability] = set()
    for role in roles:
        result |= ROLE_CAPABILITIES[role]
    return frozenset(result)
