from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from sde.api import (
    analysis_views,
    data_views,
    directcare_views,
    optout_views,
    people_views,
    project_views,
    views,
)

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("v1/me", views.MeView.as_view(), name="api-me"),
    path("v1/audit/events", views.AuditEventList.as_view(), name="api-audit-events"),
    path(
        "v1/audit/events/<int:sequence>", views.AuditEventDetail.as_view(), name="api-audit-event"
    ),
    # People, organisations and one's own tokens
    path("v1/people", people_views.PersonList.as_view(), name="api-people"),
    path("v1/people/<int:pk>/roles", people_views.PersonRoles.as_view(), name="api-person-roles"),
    path(
        "v1/people/<int:pk>/roles/<str:role>",
        people_views.PersonRole.as_view(),
        name="api-person-role",
    ),
    path(
        "v1/people/<int:pk>/accreditations",
        people_views.PersonAccreditations.as_view(),
        name="api-person-accreditations",
    ),
    path(
        "v1/people/<int:pk>/suspend",
        people_views.PersonSuspend.as_view(),
        name="api-person-suspend",
    ),
    path(
        "v1/people/<int:pk>/reinstate",
        people_views.PersonReinstate.as_view(),
        name="api-person-reinstate",
    ),
    path(
        "v1/people/<int:pk>/unlock", people_views.PersonUnlock.as_view(), name="api-person-unlock"
    ),
    path(
        "v1/people/<int:pk>/reset-mfa",
        people_views.PersonResetMfa.as_view(),
        name="api-person-reset-mfa",
    ),
    path("v1/organisations", people_views.OrganisationList.as_view(), name="api-organisations"),
    path(
        "v1/organisations/<int:pk>",
        people_views.OrganisationDetail.as_view(),
        name="api-organisation",
    ),
    path(
        "v1/organisations/<int:pk>/members",
        people_views.OrganisationMembers.as_view(),
        name="api-organisation-members",
    ),
    path(
        "v1/organisations/<int:pk>/members/<int:membership_pk>",
        people_views.OrganisationMember.as_view(),
        name="api-organisation-member",
    ),
    path("v1/tokens", people_views.TokenList.as_view(), name="api-tokens"),
    path("v1/tokens/<int:pk>", people_views.TokenDetail.as_view(), name="api-token"),
    # The data catalogue (everyone signed in) and ingestion (data custodians)
    path("v1/datasets", data_views.DatasetList.as_view(), name="api-datasets"),
    path("v1/datasets/<slug:slug>", data_views.DatasetDetail.as_view(), name="api-dataset"),
    path("v1/ingests", data_views.IngestList.as_view(), name="api-ingests"),
    path("v1/ingests/<int:pk>", data_views.IngestDetail.as_view(), name="api-ingest"),
    path(
        "v1/ingests/<int:pk>/quarantine.csv",
        data_views.IngestQuarantineReport.as_view(),
        name="api-ingest-quarantine",
    ),
    # The opt-out register (IG officers; 404 for everyone else)
    path("v1/optouts", optout_views.OptOutRegister.as_view(), name="api-optouts"),
    path("v1/optouts/manual", optout_views.ManualOptOutAdd.as_view(), name="api-optout-manual"),
    path(
        "v1/optouts/manual/withdraw",
        optout_views.ManualOptOutWithdraw.as_view(),
        name="api-optout-manual-withdraw",
    ),
    path("v1/optouts/ndop", optout_views.NdopImport.as_view(), name="api-optout-ndop"),
    path(
        "v1/optouts/changes/policy",
        optout_views.PolicyProposal.as_view(),
        name="api-optout-policy",
    ),
    path(
        "v1/optouts/changes/exemption",
        optout_views.ExemptionProposal.as_view(),
        name="api-optout-exemption",
    ),
    path(
        "v1/optouts/changes/<int:pk>",
        optout_views.ChangeDetail.as_view(),
        name="api-optout-change",
    ),
    path(
        "v1/optouts/changes/<int:pk>/approve",
        optout_views.ChangeApprove.as_view(),
        name="api-optout-change-approve",
    ),
    path(
        "v1/optouts/changes/<int:pk>/reject",
        optout_views.ChangeReject.as_view(),
        name="api-optout-change-reject",
    ),
    path(
        "v1/optouts/changes/<int:pk>/withdraw",
        optout_views.ChangeWithdraw.as_view(),
        name="api-optout-change-withdraw",
    ),
    # Projects (members and IG; 404 for everyone else)
    path("v1/projects", project_views.ProjectList.as_view(), name="api-projects"),
    path("v1/projects/<int:pk>", project_views.ProjectDetail.as_view(), name="api-project"),
    path(
        "v1/projects/<int:pk>/suspend",
        project_views.Suspend.as_view(),
        name="api-project-suspend",
    ),
    path("v1/projects/<int:pk>/resume", project_views.Resume.as_view(), name="api-project-resume"),
    path("v1/projects/<int:pk>/revoke", project_views.Revoke.as_view(), name="api-project-revoke"),
    path("v1/projects/<int:pk>/close", project_views.Close.as_view(), name="api-project-close"),
    path(
        "v1/projects/<int:pk>/members", project_views.Members.as_view(), name="api-project-members"
    ),
    path(
        "v1/projects/<int:pk>/members/<int:user_pk>",
        project_views.Member.as_view(),
        name="api-project-member",
    ),
    path(
        "v1/projects/<int:pk>/compliance",
        project_views.Compliance.as_view(),
        name="api-project-compliance",
    ),
    # The analysis workspace (the built-in analyses; a project's jobs, scripts and cohorts)
    path("v1/analyses", analysis_views.AnalysisList.as_view(), name="api-analyses"),
    path("v1/projects/<int:pk>/jobs", analysis_views.Jobs.as_view(), name="api-project-jobs"),
    path(
        "v1/projects/<int:pk>/jobs/<int:job_id>",
        analysis_views.JobDetail.as_view(),
        name="api-project-job",
    ),
    path(
        "v1/projects/<int:pk>/jobs/<int:job_id>/cancel",
        analysis_views.JobCancel.as_view(),
        name="api-project-job-cancel",
    ),
    path(
        "v1/projects/<int:pk>/jobs/<int:job_id>/rerun",
        analysis_views.JobRerun.as_view(),
        name="api-project-job-rerun",
    ),
    path(
        "v1/projects/<int:pk>/jobs/<int:job_id>/log",
        analysis_views.JobLog.as_view(),
        name="api-project-job-log",
    ),
    path(
        "v1/projects/<int:pk>/jobs/<int:job_id>/outputs/<int:output_id>",
        analysis_views.JobOutputFile.as_view(),
        name="api-project-job-output",
    ),
    path(
        "v1/projects/<int:pk>/scripts",
        analysis_views.Scripts.as_view(),
        name="api-project-scripts",
    ),
    path(
        "v1/projects/<int:pk>/cohorts",
        analysis_views.Cohorts.as_view(),
        name="api-project-cohorts",
    ),
    # Direct care: clinicians' requests for lists, and their sign-offs (404 for everyone else)
    path(
        "v1/direct-care/cohorts", directcare_views.Cohorts.as_view(), name="api-direct-care-cohorts"
    ),
    path(
        "v1/direct-care/requests",
        directcare_views.Requests.as_view(),
        name="api-direct-care-requests",
    ),
    path(
        "v1/direct-care/requests/<int:pk>",
        directcare_views.RequestDetail.as_view(),
        name="api-direct-care-request",
    ),
    path(
        "v1/direct-care/requests/<int:pk>/sign-off",
        directcare_views.SignOff.as_view(),
        name="api-direct-care-sign-off",
    ),
    path(
        "v1/direct-care/requests/<int:pk>/withdraw",
        directcare_views.Withdraw.as_view(),
        name="api-direct-care-withdraw",
    ),
    path(
        "v1/direct-care/requests/<int:pk>/list",
        directcare_views.ListRows.as_view(),
        name="api-direct-care-list",
    ),
    path(
        "v1/direct-care/requests/<int:pk>/list.csv",
        directcare_views.ListCsv.as_view(),
        name="api-direct-care-list-csv",
    ),
    # Access requests and their review, and changes to live projects (access_requests app)
    path("v1/", include("access_requests.api_urls")),
    path("v1/", include("outputs.api_urls")),
]
