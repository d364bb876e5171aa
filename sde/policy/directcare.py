"""Re-identification for direct care (ADR 0011)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from sde.exceptions import NotFound, PermissionDenied
from sde.identity.models import Organisation
from sde.identity.roles import Capability
from sde.policy.base import _active, _require, has_capability
from sde.policy.projects import _is_project_member

# --- Re-identification for direct care ----------------------------------------------
# Only planning and direct care projects' cohorts: research never leads back to a person.
REIDENTIFIABLE_PURPOSES = ("planning", "direct_care")
SIGN_OFF_CAPABILITIES = {
    "ig": Capability.REVIEW_ACCESS_REQUESTS,
    "caldicott": Capability.SIGN_OFF_REIDENTIFICATION,
}


def user_requests_reidentification(user: Any) -> bool:
    return has_capability(user, Capability.REQUEST_REIDENTIFICATION)


def practices_for(user: Any) -> QuerySet[Organisation]:
    """The GP practices a clinician may ask about: those they belong to now."""
    if not user_requests_reidentification(user):
        return Organisation.objects.none()
    return Organisation.objects.filter(
        kind=Organisation.Kind.GP_PRACTICE, memberships__user=user
    ).distinct()


def cohort_refusal(cohort: Any) -> str | None:
    """Why nobody may ask to re-identify this cohort (None: they may)."""
    project = cohort.project
    if (project.scope or {}).get("purpose") not in REIDENTIFIABLE_PURPOSES:
        return "it belongs to a research project, whose cohorts are never re-identified"
    if cohort.deleted_at is not None:
        return "it has been deleted"
    if cohort.extract.is_dummy:
        return "it was found in dummy data"
    if project.status != "active":
        return f"its project is {project.get_status_display().lower()}"
    return None


def visible_cohorts_for_reidentification(user: Any, cohorts: QuerySet[Any]) -> QuerySet[Any]:
    """Clinicians see the cohorts of active planning and direct care projects found in
    real data; nobody else sees any here (members see theirs in the workspace)."""
    if not user_requests_reidentification(user):
        return cohorts.none()
    return cohorts.filter(
        project__scope__purpose__in=REIDENTIFIABLE_PURPOSES,
        project__status="active",
        deleted_at__isnull=True,
        extract__is_dummy=False,
    )


def check_request_reidentification(user: Any, cohort: Any, practice: Any) -> None:
    if not visible_cohorts_for_reidentification(user, type(cohort).objects.filter(pk=cohort.pk)):
        raise NotFound("no such cohort")
    refusal = cohort_refusal(cohort)
    if refusal:
        raise PermissionDenied(f"this cohort cannot be re-identified: {refusal}")
    if practice is None or not practices_for(user).filter(pk=practice.pk).exists():
        raise PermissionDenied("you can ask only about patients of a practice you work at")


def reidentification_sign_off_roles(user: Any) -> list[str]:
    """The sign-offs ("ig", "caldicott") this person's roles let them give."""
    return [role for role, cap in SIGN_OFF_CAPABILITIES.items() if has_capability(user, cap)]


def visible_reidentification_requests(user: Any, requests: QuerySet[Any]) -> QuerySet[Any]:
    """Clinicians see their own requests; IG officers and Caldicott Guardians see all
    (to decide and oversee); nobody else sees any."""
    if not _active(user):
        return requests.none()
    if reidentification_sign_off_roles(user):
        return requests
    if user_requests_reidentification(user):
        return requests.filter(requested_by=user)
    return requests.none()


def check_view_reidentification_request(user: Any, request: Any) -> None:
    model = type(request)
    if not visible_reidentification_requests(user, model.objects.filter(pk=request.pk)):
        raise NotFound("no such re-identification request")


def reidentification_conflict(user: Any, request: Any) -> str | None:
    """Why this person may not sign off this request (None: no conflict)."""
    if user.pk == request.requested_by_id:
        return "you made the request"
    if _is_project_member(user, request.project):
        return "you are a member of the project that found the cohort"
    if request.decisions.filter(decided_by=user).exists():
        return "you have signed it off already: the other sign-off must be someone else's"
    return None


def check_sign_off_reidentification(user: Any, request: Any, role: str) -> None:
    """An IG officer's or the Caldicott Guardian's sign-off: two different people, neither
    the requester nor a member of the cohort's project."""
    check_view_reidentification_request(user, request)
    if role not in SIGN_OFF_CAPABILITIES:
        raise PermissionDenied("no such sign-off")
    _require(user, SIGN_OFF_CAPABILITIES[role])
    conflict = reidentification_conflict(user, request)
    if conflict:
        raise PermissionDenied(f"you cannot sign off this request: {conflict}")


def check_withdraw_reidentification(user: Any, request: Any) -> None:
    check_view_reidentification_request(user, request)
    if request.requested_by_id != user.pk:
        raise PermissionDenied("only the clinician who asked can withdraw the request")


def check_obtain_reidentified_list(user: Any, request: Any) -> None:
    """The list goes to the clinician who asked, while they are still a clinician at the
    practice; to everyone else (IG and the Caldicott Guardian included) it does not exist."""
    if (
        request.requested_by_id != getattr(user, "pk", None)
        or not practices_for(user).filter(pk=request.practice_id).exists()
    ):
        raise NotFound("no such list")
