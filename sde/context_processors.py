"""Template context for every page: demo banner, role navigation, MFA state."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from sde import policy
from sde.identity.authentication import mfa_verified
from sde.identity.roles import Capability


def _nav(request: HttpRequest) -> list[dict[str, Any]]:
    user = request.user
    if not mfa_verified(user):
        return []
    items = [("Dashboard", "dashboard")]
    if policy.user_can_read_audit_log(user):
        items.append(("Audit log", "audit-log"))
    if policy.user_can_list_people(user):
        items.append(("People", "people-list"))
    if policy.has_capability(user, Capability.APPLY_FOR_ACCESS):
        items.append(("Applications", "applications"))
    if policy.user_reviews_access_requests(user) or policy.user_signs_off_public_interest(user):
        items.append(("Review queue", "review-queue"))
    if policy.user_checks_outputs(user):
        items.append(("Output checking", "output-queue"))
    if policy.user_requests_reidentification(user) or policy.reidentification_sign_off_roles(user):
        items.append(("Direct care", "direct-care"))
    items.append(("Projects", "projects"))
    items.append(("Data catalogue", "catalogue"))
    if policy.user_can_manage_datasets(user):
        items.append(("Ingestion", "ingest-list"))
    if policy.user_can_manage_optouts(user):
        items.append(("Opt-out register", "optout-register"))
    items.append(("Organisations", "organisation-list"))
    items.append(("Your account", "account"))
    path = request.path_info
    urls = [(label, name, reverse(name)) for label, name in items]
    # The most specific item containing the page is the current one (/applications/review/
    # is the review queue, not the applications list).
    matches = [
        url
        for _, name, url in urls
        if path == url or (url != "/" and path.startswith(url) and name != "dashboard")
    ]
    current = max(matches, key=len, default=None)
    return [{"label": label, "url": url, "active": url == current} for label, _, url in urls]


def sde(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    return {
        "sde_demo_mode": settings.SDE_DEMO_MODE,
        "sde_nav": _nav(request),
        "sde_mfa_verified": mfa_verified(user),
    }
