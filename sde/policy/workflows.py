"""Access requests and release requests."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Q, QuerySet

from sde.exceptions import NotFound, PermissionDenied
from sde.identity.roles import Capability
from sde.policy.base import _active, _require, has_capability, objects_with_permission
from sde.policy.projects import (
    PROJECT_VIEW,
    _is_project_member,
    check_use_project_data,
    user_oversees_projects,
)


# --- Access requests ---------------------------------------------------------------------
# The workflow lives in ``access_requests``; the rules about who may do what live here, over
# the objects it passes in (the core does not import the workflow apps).
def user_reviews_access_requests(user: Any) -> bool:
    return has_capability(user, Capability.REVIEW_ACCESS_REQUESTS)


def user_signs_off_public_interest(user: Any) -> bool:
    return has_capability(user, Capability.SIGN_OFF_PUBLIC_INTEREST)


def visible_access_requests(user: Any, requests: QuerySet[Any]) -> QuerySet[Any]:
    """Applicants see their own requests; IG officers and Caldicott Guardians every request
    once submitted (one never submitted, even if withdrawn, is the applicant's alone)."""
    if not _active(user):
        return requests.none()
    mine = Q(applicant=user)
    if user_reviews_access_requests(user) or user_signs_off_public_interest(user):
        return requests.filter(mine | Q(first_submitted_at__isnull=False))
    return requests.filter(mine)


def check_view_access_request(user: Any, request: Any) -> None:
    if (
        not visible_access_requests(user, type(request).objects.all())
        .filter(pk=request.pk)
        .exists()
    ):
        raise NotFound("no such access request")


def check_apply_for_access(user: Any) -> None:
    _require(user, Capability.APPLY_FOR_ACCESS)


def check_applicant(user: Any, request: Any) -> None:
    """Only the applicant edits, submits, withdraws and attaches."""
    check_view_access_request(user, request)
    if request.applicant_id != user.pk:
        raise PermissionDenied("only the applicant can do this")


def reviewer_conflict(
    user: Any, *, applicant_id: int, member_ids: set[int], organisation_ids: set[int],
    exclude_organisations: bool,
) -> str | None:  # fmt: skip
    """Why ``user`` is not independent of a request (None: they are): they applied, are on
    its team or project, or (where configured) belong to one of its organisations."""
    if user.pk == applicant_id:
        return "you applied for it"
    if user.pk in member_ids:
        return "you are on its team"
    if exclude_organisations and user.memberships.filter(organisation_id__in=organisation_ids):
        return "you belong to one of its organisations"
    return None


def check_decide_access_request(user: Any, request: Any, *, conflict: str | None) -> None:
    """Review actions: an IG officer independent of the request."""
    check_view_access_request(user, request)
    _require(user, Capability.REVIEW_ACCESS_REQUESTS)
    if conflict:
        raise PermissionDenied(f"you cannot review this request: {conflict}")


def check_sign_off_public_interest(user: Any, request: Any, *, conflict: str | None) -> None:
    check_view_access_request(user, request)
    _require(user, Capability.SIGN_OFF_PUBLIC_INTEREST)
    if conflict:
        raise PermissionDenied(f"you cannot sign this request off: {conflict}")


# --- Release requests (outputs) ---------------------------------------------------------
def user_checks_outputs(user: Any) -> bool:
    return has_capability(user, Capability.CHECK_OUTPUTS)


def visible_release_requests(user: Any, requests: QuerySet[Any]) -> QuerySet[Any]:
    """Members see their projects' requests; output checkers see submitted requests of
    projects they are not (and were not) members of; IG officers see all (oversight and
    revocation); nobody else sees any."""
    if not _active(user):
        return requests.none()
    from django.db.models import Q

    visible = Q(project__in=objects_with_permission(user, PROJECT_VIEW, _projects()))
    if user_oversees_projects(user):
        return requests
    if user_checks_outputs(user):
        reviewable = ~Q(status="draft") & ~Q(project__memberships__user=user)
        visible |= reviewable
    return requests.filter(visible).distinct()


def _projects() -> QuerySet[Any]:
    from sde.projects.models import Project

    return Project.objects.all()


def check_view_release_request(user: Any, request: Any) -> None:
    # The core imports no workflow app: the request's own model gives the queryset.
    if not visible_release_requests(user, type(request).objects.filter(pk=request.pk)).exists():
        raise NotFound("no such release request")


def check_request_release(user: Any, project: Any, *, today: date) -> None:
    """Requesting a release is using the project's outputs: a data-using member now."""
    check_use_project_data(user, project, today=today)


def check_release_author(user: Any, request: Any, *, today: date) -> None:
    """Only the author changes, submits and withdraws a request, while they may still
    use the project's data."""
    check_view_release_request(user, request)
    if request.created_by_id != user.pk:
        raise PermissionDenied("only the researcher who made the request can change it")
    check_use_project_data(user, request.project, today=today)


def release_reviewer_conflict(user: Any, request: Any) -> str | None:
    if user.pk == request.created_by_id:
        return "you made the request"
    if _is_project_member(user, request.project):
        return "you are a member of the project"
    return None


def check_review_release(user: Any, request: Any) -> None:
    """An output checker independent of the project (never a member, not the author)."""
    check_view_release_request(user, request)
    _require(user, Capability.CHECK_OUTPUTS)
    conflict = release_reviewer_conflict(user, request)
    if conflict:
        raise PermissionDenied(f"you cannot review this request: {conflict}")


def check_download_release(user: Any, request: Any) -> None:
    """Released files go to the project's current members."""
    check_view_release_request(user, request)
    if not request.project.memberships.filter(user=user, removed_at__isnull=True).exists():
        raise NotFound("no such release")


def check_revoke_release(user: Any, request: Any) -> None:
    check_view_release_request(user, request)
    _require(user, Capability.SUSPEND_PROJECTS)
