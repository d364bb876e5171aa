"""The whole journey through the services: draft, submit, return, resubmit, two
independent approvals, the project and its extracts."""

from __future__ import annotations

import pytest
from django.core import mail

from access_requests import services
from access_requests.models import AccessRequest
from sde import policy
from sde.exceptions import PermissionDenied
from sde.projects.models import Project
from tests.unit.access_requests.builders import END, TODAY, answers, drafted, ig_officer

S = AccessRequest.Status


def test_draft_submit_return_resubmit_and_two_approvals_make_the_project(
    ingested, organisation, applicant, django_capture_on_commit_callbacks
):
    request = drafted(
        applicant,
        organisation,
        answers(organisation, [(applicant, "principal_investigator", True)]),
    )
    first, second = ig_officer(), ig_officer()

    request = services.submit(request=request, by=applicant, today=TODAY)
    assert (request.status, request.review_round) == (S.SUBMITTED, 1)
    request = services.start_review(request=request, by=first)
    request = services.return_request(request=request, by=first, reason="Say why you need dates.")
    assert request.status == S.RETURNED
    request, errors = services.save_answers(
        request=request,
        by=applicant,
        revision=request.revision,
        sections=["project"],
        answers={"project": {**request.answers["project"], "aims": "Find untreated people."}},
    )
    assert all(not e for e in errors.values())
    request = services.submit(request=request, by=applicant, today=TODAY)
    assert request.review_round == 2
    request = services.start_review(request=request, by=first)
    request = services.approve(request=request, by=first, end_date=END, today=TODAY)
    assert request.status == S.IN_REVIEW
    with django_capture_on_commit_callbacks():
        request = services.approve(request=request, by=second, end_date=END, today=TODAY)

    assert request.status == S.APPROVED
    project = Project.objects.get(access_request_id=request.pk)
    assert request.project == project and project.end_date == END
    assert policy.project_data_refusal(applicant, project, today=TODAY) is None
    assert project.scope["legal_basis"] == "s251_standard"
    assert sorted(project.scope["datasets"]) == ["gp-events", "patients"]
    assert mail.outbox


def test_nobody_approves_their_own_request(organisation, applicant):
    from access_requests.models import AccessRequest as AR
    from sde.identity import services as identity
    from sde.identity.roles import Role
    from tests import scenarios

    identity.grant_role(user=applicant, role=Role.IG_OFFICER, by=scenarios.administrator())
    request = drafted(
        applicant,
        organisation,
        answers(organisation, [(applicant, "principal_investigator", False)]),
    )
    request = services.submit(request=request, by=applicant, today=TODAY)

    with pytest.raises(PermissionDenied):
        services.start_review(request=request, by=applicant)
    assert AR.objects.get(pk=request.pk).status == S.SUBMITTED
