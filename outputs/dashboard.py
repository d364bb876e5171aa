"""The dashboard cards of output checking: the checker's queue, and a researcher's
release requests that wait for them (registered in ``OutputsConfig.ready``)."""

from __future__ import annotations

from django.urls import reverse

from outputs import selectors
from outputs.models import ReleaseRequest
from sde import policy
from sde.dashboard import Card, waiting_card
from sde.identity.models import User

S = ReleaseRequest.Status


def release_cards(user: User) -> list[Card]:
    cards = []
    if policy.user_checks_outputs(user):
        queue = list(selectors.checker_queue(user))
        lines = ["release requests waiting for review"]
        if queue:
            lines.append(f"The oldest was made {max(map(selectors.age_days, queue))} days ago.")
        cards.append(Card("Output checking", len(queue), lines, "Open the queue",
                          reverse("output-queue"), "warning" if queue else ""))  # fmt: skip
    waiting = selectors.visible_requests(user).filter(
        created_by=user, status__in=(S.DRAFT, S.RETURNED)
    ).order_by("-status_changed_at")  # fmt: skip
    if waiting:
        first = waiting[0]
        url = reverse("release-detail", args=[first.project_id, first.pk])
        cards.append(waiting_card("Your release requests", [r.status for r in waiting],
                                  f"Open {first.title}", url))  # fmt: skip
    return cards
