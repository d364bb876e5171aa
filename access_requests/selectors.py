"""Reading access requests: the IG review queue and what a review page shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.utils import timezone

from access_requests import questions, services
from access_requests.models import AccessRequest
from sde import policy
from sde.data import optout_changes
from sde.data.optouts import Treatment, treatment_for
from sde.exceptions import NotFound

S = AccessRequest.Status
QUEUE_STATUSES = (S.SUBMITTED, S.IN_REVIEW)


@dataclass(frozen=True)
class QueueEntry:
    request: AccessRequest
    age_days: int
    overdue: bool
    approvals: int
    needed: list[str]
    conflict: str | None  # why the viewer may not review it (None: they may)


def review_queue(user: Any, *, today: date | None = None) -> list[QueueEntry]:
    """Submitted and in-review requests, oldest first, with their age against the SLA
    (``SDE_REVIEW_SLA_DAYS``), approvals so far and whether ``user`` may review each.
    NotFound for anyone who does not review access requests."""
    if not (
        policy.user_reviews_access_requests(user) or policy.user_signs_off_public_interest(user)
    ):
        raise NotFound("no such page")
    today = today or timezone.localdate()
    requests = (
        services.visible_requests(user)
        .filter(status__in=QUEUE_STATUSES)
        .select_related("assignee")
        .order_by("submitted_at", "pk")
    )
    entries = []
    for request in requests:
        submitted = timezone.localdate(request.submitted_at) if request.submitted_at else today
        age = (today - submitted).days
        entries.append(
            QueueEntry(
                request=request,
                age_days=age,
                overdue=age > settings.SDE_REVIEW_SLA_DAYS,
                approvals=len(services.approvals(request)),
                needed=services.missing_for_approval(request),
                conflict=services.conflict_of(user, request),
            )
        )
    return entries


def opt_out_treatment(request: AccessRequest) -> Treatment:
    """The opt-out treatment the current decision table derives from the answers."""
    legal = request.answers.get("legal") or {}
    return treatment_for(
        optout_changes.current_decision_table(),
        purpose=(request.answers.get("project") or {}).get("purpose"),
        basis=questions.extract_basis(legal),
    )


def changes(request: AccessRequest) -> list[tuple[str, Any, Any]]:
    """An amendment's, extension's or renewal's difference from the approved version."""
    return services.changes_from_approved(request)


def review_flags(request: AccessRequest, *, today: date | None = None) -> list[questions.Flag]:
    return questions.review_flags(request.answers, today=today or timezone.localdate())
