"""The dashboard cards of access requests: what waits for an IG officer's review, and an
applicant's own applications that wait for them (registered in the app's ``ready``)."""

from __future__ import annotations

from django.urls import reverse

from access_requests import selectors, services
from access_requests.models import AccessRequest
from sde import policy
from sde.dashboard import Card, waiting_card
from sde.identity.models import User

S = AccessRequest.Status


def access_request_cards(user: User) -> list[Card]:
    cards = []
    if policy.user_reviews_access_requests(user) or policy.user_signs_off_public_interest(user):
        queue = selectors.review_queue(user)
        yours = [e for e in queue if e.conflict is None]
        overdue = sum(1 for e in queue if e.overdue)
        lines = ["applications submitted or in review", f"{len(yours)} of them you can review."]
        if overdue:
            lines.append(f"{overdue} past the review time.")
        cards.append(Card("Access requests", len(queue), lines, "Open the review queue",
                          reverse("review-queue"), "warning" if overdue else ""))  # fmt: skip
    waiting = services.visible_requests(user).filter(
        applicant=user, status__in=(S.DRAFT, S.RETURNED)
    ).order_by("-updated_at")  # fmt: skip
    if waiting:
        cards.append(waiting_card("Your applications", [r.status for r in waiting],
                                  "Open your applications", reverse("applications")))  # fmt: skip
    return cards
