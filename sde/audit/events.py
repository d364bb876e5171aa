"""The audit event catalogue (reference/audit-log.md). Every event type is declared here."""

from django.db import models


class EventType(models.TextChoices):
    # Identity
    LOGIN_SUCCEEDED = "identity.login_succeeded", "Login succeeded"
    LOGIN_FAILED = "identity.login_failed", "Login failed"
    LOGOUT = "identity.logout", "Logout"
    MFA_ENROLLED = "identity.mfa_enrolled", "MFA enrolled"
    MFA_VERIFIED = "identity.mfa_verified", "MFA verified"
    MFA_FAILED = "identity.mfa_failed", "MFA failed"
    MFA_RECOVERY_CODE_USED = "identity.mfa_recovery_code_used", "MFA recovery code used"
    MFA_RECOVERY_CODES_ISSUED = "identity.mfa_recovery_codes_issued", "MFA recovery codes issued"
    MFA_RESET = "identity.mfa_reset", "MFA reset"
    ACCOUNT_LOCKED = "identity.account_locked", "Account locked"
    ACCOUNT_UNLOCKED = "identity.account_unlocked", "Account unlocked"
    ACCOUNT_CREATED = "identity.account_created", "Account created"
    ACCOUNT_SUSPENDED = "identity.account_suspended", "Account suspended"
    ACCOUNT_REINSTATED = "identity.account_reinstated", "Account reinstated"
    PASSWORD_CHANGED = "identity.password_changed", "Password changed"
    ROLE_GRANTED = "identity.role_granted", "Role granted"
    ROLE_REMOVED = "identity.role_removed", "Role removed"
    ACCREDITATION_RECORDED = "identity.accreditation_recorded", "Accreditation recorded"
    ACCREDITATION_EXPIRED = "identity.accreditation_expired", "Accreditation expired"
    ORGANISATION_CREATED = "identity.organisation_created", "Organisation created"
    MEMBERSHIP_ADDED = "identity.membership_added", "Organisation membership added"
    MEMBERSHIP_REMOVED = "identity.membership_removed", "Organisation membership removed"
    API_TOKEN_CREATED = "identity.api_token_created", "API token created"
    API_TOKEN_REVOKED = "identity.api_token_revoked", "API token revoked"
    # Access requests and projects
    REQUEST_CREATED = "access.request_created", "Access request created"
    REQUEST_DRAFT_SAVED = "access.draft_saved", "Draft saved"
    REQUEST_SUBMITTED = "access.submitted", "Access request submitted"
    REQUEST_REVIEW_STARTED = "access.review_started", "Review started"
    REQUEST_RETURNED = "access.returned", "Access request returned"
    REQUEST_COMMENT_ADDED = "access.comment_added", "Comment added"
    REQUEST_APPROVAL_RECORDED = "access.approval_recorded", "Approval recorded"
    REQUEST_REJECTED = "access.rejected", "Access request rejected"
    REQUEST_APPROVED = "access.approved", "Access request approved"
    REQUEST_WITHDRAWN = "access.withdrawn", "Access request withdrawn"
    AMENDMENT_SUBMITTED = "access.amendment_submitted", "Amendment submitted"
    REQUEST_ASSIGNED = "access.assigned", "Access request assigned to a reviewer"
    REQUEST_CALDICOTT_SIGNED_OFF = (
        "access.caldicott_signed_off",
        "Caldicott Guardian signed off (overriding public interest)",
    )
    REQUEST_ATTACHMENT_ADDED = "access.attachment_added", "Attachment added"
    REQUEST_ATTACHMENT_VIEWED = "access.attachment_viewed", "Attachment opened"
    REQUEST_ATTACHMENT_REDACTED = "access.attachment_redacted", "Attachment redacted"
    PROJECT_ACTIVATED = "project.activated", "Project activated"
    PROJECT_SUSPENDED = "project.suspended", "Project suspended"
    PROJECT_RESUMED = "project.resumed", "Project resumed"
    PROJECT_EXPIRED = "project.expired", "Project expired"
    PROJECT_REVOKED = "project.revoked", "Project revoked"
    PROJECT_CLOSED = "project.closed", "Project closed"
    PROJECT_MEMBER_ADDED = "project.member_added", "Project member added"
    PROJECT_MEMBER_REMOVED = "project.member_removed", "Project member removed"
    PROJECT_MEMBER_SUSPENDED = "project.member_suspended", "Project member's data access paused"
    PROJECT_MEMBER_REINSTATED = (
        "project.member_reinstated",
        "Project member's data access restored",
    )
    PROJECT_CREATED = "project.created", "Project created"
    PROJECT_CHANGED = "project.changed", "Project changed by an approved amendment"
    PROJECT_REMINDER_SENT = "project.reminder_sent", "Expiry reminder sent"
    PROJECT_COMPLIANCE_UPDATED = (
        "project.compliance_updated",
        "Project s251, REC or DSPT dates recorded",
    )
    OBJECT_PERMISSION_GRANTED = "project.permission_granted", "Object permission granted"
    OBJECT_PERMISSION_REVOKED = "project.permission_revoked", "Object permission revoked"
    AGREEMENT_ACCEPTED = "project.agreement_accepted", "Agreement accepted"
    PROJECT_WORKSPACE_VIEWED = "project.workspace_viewed", "Project workspace viewed"
    # Data
    DATASET_REGISTERED = "data.dataset_registered", "Dataset registered in the catalogue"
    INGEST_REQUESTED = "data.ingest_requested", "Ingest requested"
    INGEST_STARTED = "data.ingest_started", "Ingest started"
    INGEST_FAILED = "data.ingest_failed", "Ingest failed"
    INGEST_REUSED = "data.ingest_reused", "Ingest of an already ingested drop (no new version)"
    DATASET_VERSION_INGESTED = "data.version_ingested", "Dataset version ingested"
    QUARANTINE_REPORT_DOWNLOADED = (
        "data.quarantine_report_downloaded",
        ("Quarantine report downloaded"),
    )
    KEY_VERSION_USED = "data.key_version_used", "Key version used"
    KEY_ROTATED = "data.key_rotated", "Key rotated"
    OPT_OUT_SNAPSHOT_IMPORTED = "data.optout_snapshot_imported", "Opt-out snapshot imported"
    OPT_OUT_SNAPSHOT_UNCHANGED = (
        "data.optout_import_unchanged",
        "Opt-out import made no change (no new snapshot)",
    )
    OPT_OUT_MANUAL_ADDED = "data.optout_manual_added", "Manual opt-out added"
    OPT_OUT_MANUAL_WITHDRAWN = "data.optout_manual_withdrawn", "Manual opt-out withdrawn"
    OPT_OUT_REGISTER_VIEWED = "data.optout_register_viewed", "Opt-out register viewed"
    EXTRACT_BUILT = "data.extract_built", "Extract built"
    EXTRACT_DELETED = "data.extract_deleted", "Extract deleted"
    # Analysis
    JOB_SUBMITTED = "analysis.job_submitted", "Job submitted"
    JOB_STARTED = "analysis.job_started", "Job started"
    JOB_FINISHED = "analysis.job_finished", "Job finished"
    JOB_FAILED = "analysis.job_failed", "Job failed"
    JOB_CANCELLED = "analysis.job_cancelled", "Job cancelled"
    OUTPUTS_RECORDED = "analysis.outputs_recorded", "Outputs recorded"
    SCRIPT_SAVED = "analysis.script_saved", "Script version saved"
    JOB_CANCEL_REQUESTED = "analysis.job_cancel_requested", "Job cancellation requested"
    JOB_REQUEUED = "analysis.job_requeued", "Job queued again after its worker stopped"
    JOB_LOG_VIEWED = "analysis.job_log_viewed", "Job log viewed"
    JOB_OUTPUT_VIEWED = "analysis.output_viewed", "Job output viewed"
    # Outputs
    RELEASE_REQUEST_CREATED = "outputs.request_created", "Release request created"
    RELEASE_REQUEST_SUBMITTED = "outputs.request_submitted", "Release request submitted"
    RELEASE_REQUEST_WITHDRAWN = "outputs.request_withdrawn", "Release request withdrawn"
    RELEASE_REQUEST_RETURNED = "outputs.request_returned", "Release request returned"
    RELEASE_FILE_ADDED = "outputs.file_added", "File added to a release request"
    RELEASE_FILE_REMOVED = "outputs.file_removed", "File removed from a release request"
    EXCEPTION_REQUESTED = "outputs.exception_requested", "Exception to a disclosure rule requested"
    REVIEW_STARTED = "outputs.review_started", "Review of a release request started"
    FILE_DECIDED = "outputs.file_decided", "Checker's decision on a file recorded"
    AUTOMATED_CHECKS_RUN = "outputs.checks_run", "Automated checks run"
    OUTPUT_FILE_VIEWED = "outputs.file_viewed", "File viewed by checker"
    REVIEW_SUBMITTED = "outputs.review_submitted", "Review submitted"
    RELEASE_APPROVED = "outputs.approved", "Release approved"
    RELEASE_REJECTED = "outputs.rejected", "Release rejected"
    RELEASED = "outputs.released", "Files released"
    RELEASED_FILE_DOWNLOADED = "outputs.file_downloaded", "Released file downloaded"
    RELEASE_REVOKED = "outputs.release_revoked", "Release revoked"
    # Direct care
    COHORT_CREATED = "directcare.cohort_created", "Cohort created"
    REID_REQUESTED = "directcare.reid_requested", "Re-identification requested"
    REID_APPROVED = "directcare.reid_approved", "Re-identification approved"
    REID_REJECTED = "directcare.reid_rejected", "Re-identification rejected"
    REID_WITHDRAWN = "directcare.reid_withdrawn", "Re-identification request withdrawn"
    REID_PERFORMED = "directcare.reid_performed", "Re-identification performed"
    REID_FAILED = "directcare.reid_failed", "Re-identification failed (no list made)"
    REID_LIST_EXPIRED = "directcare.list_expired", "Re-identified list expired and deleted"
    REID_LIST_VIEWED = "directcare.list_viewed", "Re-identified list viewed"
    REID_LIST_DOWNLOADED = "directcare.list_downloaded", "Re-identified list downloaded"
    # Governance
    OPT_OUT_POLICY_CHANGED = "governance.optout_policy_changed", "Opt-out policy changed"
    OPT_OUT_CHANGE_PROPOSED = (
        "governance.optout_change_proposed",
        "Opt-out decision table change or exemption proposed",
    )
    OPT_OUT_CHANGE_REJECTED = (
        "governance.optout_change_rejected",
        "Opt-out decision table change or exemption rejected",
    )
    OPT_OUT_CHANGE_WITHDRAWN = (
        "governance.optout_change_withdrawn",
        "Opt-out decision table change or exemption withdrawn",
    )
    OPT_OUT_EXEMPTION_APPROVED = (
        "governance.optout_exemption_approved",
        "Opt-out exemption approved",
    )
    DISCLOSURE_RULES_CHANGED = "governance.disclosure_rules_changed", "Disclosure rules changed"
    QUESTION_SET_PUBLISHED = "governance.question_set_published", "Question set published"
    AUDIT_VERIFICATION_PASSED = "governance.audit_verified", "Audit verification passed"
    AUDIT_VERIFICATION_FAILED = (
        "governance.audit_verification_failed",
        ("Audit verification failed"),
    )
    AUDIT_CHECKPOINT_SIGNED = "governance.checkpoint_signed", "Audit checkpoint signed"
    AUDIT_LOG_VIEWED = "governance.audit_log_viewed", "Audit log viewed"
    AUDIT_LOG_EXPORTED = "governance.audit_log_exported", "Audit log exported"
