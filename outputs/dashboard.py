"""The dashboard cards of output checking: the checker's queue, and a researcher's
release requests that wait for them (registered in ``OutputsConfig.ready``)."""

from __future__ import annotations

from django.urls import reverse

from outputs import selectors
from outputs.models import ReleaseRequest
from sde import policy
from sde.dashboard import Card
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
        returned = sum(1 for r in waiting if r.status == S.RETURNED)
        first = waiting[0]
        cards.append(Card(
            "Your release requests", len(waiting),
            [f"waiting for you: {returned} returned for changes, {len(waiting) - returned} "
             "drafts"],
            f"Open {first.title}", reverse("release-detail", args=[first.project_id, first.pk]),
            "warning" if returned else "",
        ))  # fmt: skip
    return cards
