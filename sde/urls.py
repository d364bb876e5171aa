"""URL wiring. Each app's pages are listed here (the core imports no app's code
otherwise)."""

from django.urls import include, path

from sde.views import (
    account,
    analyses,
    audit,
    auth,
    dashboard,
    data,
    directcare,
    optouts,
    organisations,
    people,
    projects,
    transparency,
)

urlpatterns = [
    path("", dashboard.home, name="home"),
    path("healthz", dashboard.healthz, name="healthz"),
    path("favicon.ico", dashboard.favicon, name="favicon"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    # The public transparency register (no sign-in)
    path("register/", transparency.register_page, name="register"),
    path("register/<int:number>/", transparency.register_entry, name="register-entry"),
    path("register.json", transparency.register_json, name="register-json"),
    path("register.csv", transparency.register_csv, name="register-csv"),
    # Applications and their review (the access_requests app)
    path("applications/", include("access_requests.urls")),
    # Projects (members and IG)
    path("projects/", projects.project_list, name="projects"),
    path("projects/<int:pk>/", projects.project_detail, name="project-detail"),
    path("projects/<int:pk>/workspace/", analyses.workspace, name="project-workspace"),
    path(
        "projects/<int:pk>/workspace/analyses/<slug:name>/",
        analyses.run_analysis,
        name="run-analysis",
    ),
    path("projects/<int:pk>/workspace/scripts/", analyses.save_script, name="save-script"),
    path(
        "projects/<int:pk>/workspace/scripts/<int:script_id>/run/",
        analyses.run_script,
        name="run-script",
    ),
    path("projects/<int:pk>/jobs/<int:job_id>/", analyses.job_detail, name="job-detail"),
    path("projects/<int:pk>/jobs/<int:job_id>/status.json", analyses.job_status, name="job-status"),
    path("projects/<int:pk>/jobs/<int:job_id>/cancel/", analyses.job_cancel, name="job-cancel"),
    path("projects/<int:pk>/jobs/<int:job_id>/rerun/", analyses.job_rerun, name="job-rerun"),
    path("projects/<int:pk>/jobs/<int:job_id>/log/", analyses.job_log, name="job-log"),
    path(
        "projects/<int:pk>/jobs/<int:job_id>/outputs/<int:output_id>/",
        analyses.job_output,
        name="job-output",
    ),
    path("projects/<int:pk>/suspend/", projects.project_suspend, name="project-suspend"),
    path("projects/<int:pk>/resume/", projects.project_resume, name="project-resume"),
    path("projects/<int:pk>/revoke/", projects.project_revoke, name="project-revoke"),
    path("projects/<int:pk>/close/", projects.project_close, name="project-close"),
    path("projects/<int:pk>/members/", projects.member_add, name="project-member-add"),
    path(
        "projects/<int:pk>/members/<int:user_id>/remove/",
        projects.member_remove,
        name="project-member-remove",
    ),
    path(
        "projects/<int:pk>/compliance-dates/",
        projects.compliance_dates,
        name="project-compliance-dates",
    ),
    # Sign-in and MFA
    path("accounts/login/", auth.sign_in, name="login"),
    path("accounts/logout/", auth.sign_out, name="logout"),
    path("accounts/mfa/enrol/", auth.mfa_enrol, name="mfa-enrol"),
    path("accounts/mfa/verify/", auth.mfa_verify, name="mfa-verify"),
    path("accounts/mfa/recovery-codes/", auth.mfa_recovery_codes, name="mfa-recovery-codes"),
    # Own account
    path("account/", account.account, name="account"),
    path("account/password/", account.password_change, name="password-change"),
    path(
        "account/recovery-codes/",
        account.recovery_codes_regenerate,
        name="recovery-codes-regenerate",
    ),
    path("account/tokens/", account.token_create, name="token-create"),
    path("account/tokens/<int:pk>/revoke/", account.token_revoke, name="token-revoke"),
    # Audit (IG)
    path("audit/", audit.audit_log, name="audit-log"),
    path("audit/export.csv", audit.audit_export, name="audit-export"),
    path("audit/<int:sequence>/", audit.audit_event, name="audit-event"),
    # People and organisations
    path("people/", people.people_list, name="people-list"),
    path("people/new/", people.person_create, name="person-create"),
    path("people/<int:pk>/", people.person_detail, name="person-detail"),
    path("people/<int:pk>/roles/", people.person_grant_role, name="person-grant-role"),
    path(
        "people/<int:pk>/roles/<str:role>/remove/",
        people.person_remove_role,
        name="person-remove-role",
    ),
    path(
        "people/<int:pk>/accreditations/",
        people.person_record_accreditation,
        name="person-record-accreditation",
    ),
    path("people/<int:pk>/suspend/", people.person_suspend, name="person-suspend"),
    path("people/<int:pk>/reinstate/", people.person_reinstate, name="person-reinstate"),
    path("people/<int:pk>/unlock/", people.person_unlock, name="person-unlock"),
    path("people/<int:pk>/reset-mfa/", people.person_reset_mfa, name="person-reset-mfa"),
    path("organisations/", organisations.organisation_list, name="organisation-list"),
    path("organisations/<int:pk>/", organisations.organisation_detail, name="organisation-detail"),
    path(
        "organisations/<int:pk>/members/",
        organisations.organisation_add_member,
        name="organisation-add-member",
    ),
    path(
        "organisations/<int:pk>/members/<int:membership_pk>/remove/",
        organisations.organisation_remove_member,
        name="organisation-remove-member",
    ),
    # Data catalogue and ingestion
    path("catalogue/", data.catalogue_list, name="catalogue"),
    path("catalogue/<slug:slug>/", data.dataset_detail, name="dataset-detail"),
    path("data/ingests/", data.ingest_list, name="ingest-list"),
    path("data/ingests/<int:pk>/", data.ingest_detail, name="ingest-detail"),
    path("data/ingests/<int:pk>/status", data.ingest_status, name="ingest-status"),
    path("data/ingests/<int:pk>/quarantine.csv", data.quarantine_report, name="ingest-quarantine"),
    # Opt-out register (IG officers; 404 for everyone else)
    path("data/optouts/", optouts.register_page, name="optout-register"),
    path("data/optouts/manual/add/", optouts.manual_add, name="optout-manual-add"),
    path("data/optouts/manual/withdraw/", optouts.manual_withdraw, name="optout-manual-withdraw"),
    path("data/optouts/ndop/", optouts.ndop_import, name="optout-ndop-import"),
    path("data/optouts/policy/", optouts.policy_propose, name="optout-policy-propose"),
    path("data/optouts/exemptions/", optouts.exemption_propose, name="optout-exemption-propose"),
    path("data/optouts/changes/<int:pk>/", optouts.change_detail, name="optout-change"),
    path(
        "data/optouts/changes/<int:pk>/decide/",
        optouts.change_decide,
        name="optout-change-decide",
    ),
    path(
        "data/optouts/changes/<int:pk>/withdraw/",
        optouts.change_withdraw,
        name="optout-change-withdraw",
    ),
    # Direct care: re-identification for clinicians, signed off by IG and the Caldicott
    # Guardian (404 for everyone else)
    path("direct-care/", directcare.home, name="direct-care"),
    path(
        "direct-care/cohorts/<int:pk>/request/",
        directcare.request_create,
        name="direct-care-request-new",
    ),
    path("direct-care/requests/<int:pk>/", directcare.request_detail, name="direct-care-request"),
    path(
        "direct-care/requests/<int:pk>/sign-off/",
        directcare.sign_off,
        name="direct-care-sign-off",
    ),
    path(
        "direct-care/requests/<int:pk>/withdraw/",
        directcare.withdraw,
        name="direct-care-withdraw",
    ),
    path("direct-care/requests/<int:pk>/list/", directcare.list_page, name="direct-care-list"),
    path(
        "direct-care/requests/<int:pk>/list.csv",
        directcare.list_csv,
        name="direct-care-list-csv",
    ),
    # Output checking and release (the outputs app: /projects/<pk>/releases/, /outputs/)
    path("", include("outputs.urls")),
    # API
    path("api/", include("sde.api.urls")),
]
