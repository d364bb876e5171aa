"""Reads for the direct care pages and API, through the policy's visibility rules."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from sde import policy
from sde.analysis.models import Cohort
from sde.directcare.models import ReidentificationDecision, ReidentificationRequest
from sde.exceptions import NotFound
from sde.identity.models import User


def cohorts_for(user: User) -> QuerySet[Cohort]:
    """Cohorts this clinician may ask to re-identify."""
    cohorts = Cohort.objects.select_related("project", "extract", "job")
    return policy.visible_cohorts_for_reidentification(user, cohorts)


def cohort_for(user: User, pk: int) -> Cohort:
    cohort = cohorts_for(user).filter(pk=pk).first()
    if cohort is None:
        raise NotFound("no such cohort")
    return cohort


def requests_for(user: User) -> QuerySet[ReidentificationRequest]:
    requests = ReidentificationRequest.objects.select_related(
        "cohort", "project", "practice", "requested_by"
    ).prefetch_related("decisions__decided_by")
    return policy.visible_reidentification_requests(user, requests)


def request_for(user: User, pk: int) -> ReidentificationRequest:
    request = requests_for(user).filter(pk=pk).first()
    if request is None:
        raise NotFound("no such re-identification request")
    return request


def awaiting_sign_off(user: User) -> QuerySet[ReidentificationRequest]:
    """Open requests this person can sign off now: a sign-off their roles allow is still
    missing, and nothing stands in their way (their own request, their project, their
    sign-off already given)."""
    roles = policy.reidentification_sign_off_roles(user)
    if not roles:
        return ReidentificationRequest.objects.none()
    missing = Q()
    for role in roles:
        given = ReidentificationDecision.objects.filter(request=OuterRef("pk"), role=role)
        missing |= Q(~Exists(given))
    return (
        requests_for(user)
        .filter(missing, status__in=("submitted", "partially_approved"))
        .exclude(decisions__decided_by=user)
        .exclude(requested_by=user)
        .exclude(project__memberships__user=user)
        .order_by("created_at", "pk")
    )


def list_is_open(request: ReidentificationRequest) -> bool:
    """Made and not yet past its time."""
    return bool(
        request.status == ReidentificationRequest.Status.READY
        and request.expires_at
        and request.expires_at > timezone.now()
    )


def may_open_list(user: User, request: ReidentificationRequest) -> bool:
    """Whether the page and the API offer this person the list (the service decides)."""
    if not list_is_open(request):
        return False
    try:
        policy.check_obtain_reidentified_list(user, request)
    except NotFound:
        return False
    return True
