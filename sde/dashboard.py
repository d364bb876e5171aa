"""What each role's dashboard shows: that role's real work, read from the database.

The core's own cards are here; a workflow app adds its cards with ``register_cards`` (in
its ``AppConfig.ready``), because the core never imports the workflow apps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.urls import reverse
from django.utils import timezone

from sde import policy
from sde.audit.models import AuditCheckpoint, AuditEvent
from sde.audit.selectors import latest_verification
from sde.identity.models import Accreditation, User
from sde.identity.roles import ROLE_CAPABILITIES, Role
from sde.identity.selectors import current_accreditations, current_roles


@dataclass
class Card:
    title: str
    count: int | None = None
    lines: list[str] = field(default_factory=list)
    link_label: str = ""
    link_url: str = ""
    tone: str = ""  # "", "warning", "success"


CardSource = Callable[[User], list[Card]]
_SOURCES: list[CardSource] = []


def register_cards(source: CardSource) -> CardSource:
    """Add a workflow app's cards: ``source(user)`` returns that person's (or none)."""
    if source not in _SOURCES:
        _SOURCES.append(source)
    return source


def waiting_card(title: str, statuses: list[str], link_label: str, url: str) -> Card:
    """A person's own drafts and returned items (``statuses``, newest first) as a card."""
    returned = statuses.count("returned")
    lines = [f"waiting for you: {returned} returned for changes, {len(statuses) - returned} "
             "drafts"]  # fmt: skip
    return Card(title, len(statuses), lines, link_label, url, "warning" if returned else "")


def _ig_cards(today: date) -> list[Card]:
    verification = latest_verification()
    checkpoint = AuditCheckpoint.objects.order_by("-sequence").first()
    lines = []
    tone = ""
    if verification is None:
        lines.append("The chain has not been verified yet.")
    else:
        passed = verification.event_type.endswith("audit_verified")
        tone = "success" if passed else "warning"
        lines.append(
            f"Last verification {'passed' if passed else 'FAILED'} at "
            f"{timezone.localtime(verification.occurred_at):%d %b %Y %H:%M}."
        )
    if checkpoint is not None:
        lines.append(f"Last signed checkpoint covers events up to #{checkpoint.sequence}.")
    since = timezone.now() - timedelta(days=1)
    cards = [
        Card(
            "Audit log",
            AuditEvent.objects.filter(occurred_at__gte=since).count(),
            ["events in the last 24 hours", *lines],
            "Search the audit log",
            reverse("audit-log"),
            tone,
        ),
    ]
    expiring = (
        Accreditation.objects.filter(
            expires_on__gte=today, expires_on__lte=today + timedelta(days=30)
        )
        .values("user")
        .distinct()
        .count()
    )
    cards.append(
        Card(
            "Accreditation expiring within 30 days",
            expiring,
            ["people whose training certificate runs out soon"],
            "People",
            reverse("people-list") + "?accreditation=expiring",
            "warning" if expiring else "",
        )
    )
    return cards


def _admin_cards() -> list[Card]:
    now = timezone.now()
    people = User.objects.filter(is_system=False)
    locked = people.filter(locked_until__gt=now).count()
    suspended = people.filter(is_active=False).count()
    return [
        Card(
            "People",
            people.count(),
            [f"{locked} locked out now", f"{suspended} suspended"],
            "Manage people",
            reverse("people-list"),
            "warning" if locked else "",
        ),
    ]


def _custodian_cards() -> list[Card]:
    from sde.data.models import Dataset, Ingest

    active = Ingest.objects.filter(status__in=[Ingest.Status.QUEUED, Ingest.Status.RUNNING])
    latest = Ingest.objects.order_by("-created_at").first()
    lines = ["ingests queued or running"]
    tone = ""
    if latest is not None:
        lines.append(
            f"Latest: #{latest.pk} {latest.get_status_display().lower()}, "
            f"{latest.quarantined_rows} rows quarantined."
        )
        tone = "warning" if latest.status == Ingest.Status.FAILED else ""
    unloaded = Dataset.objects.filter(versions__isnull=True).count()
    if unloaded:
        lines.append(f"{unloaded} registered datasets have no version yet.")
    return [Card("Ingestion", active.count(), lines, "Ingest a drop", reverse("ingest-list"), tone)]


def _optout_cards(user: User) -> list[Card]:
    from sde.data import optout_changes, register
    from sde.data.models import OptOutChange

    pending = optout_changes.visible_changes_for(user).filter(status=OptOutChange.Status.PROPOSED)
    proposers = list(pending.values_list("proposed_by_id", flat=True))
    yours = sum(1 for proposer in proposers if proposer != user.pk)
    lines = ["opt-out changes awaiting a second IG officer"]
    if yours:
        lines.append(f"{yours} of them can be decided by you.")
    snapshot = register.current_snapshot()
    if snapshot is None:
        lines.append("Nothing has been imported into the register yet.")
    else:
        lines.append(
            f"Register snapshot {snapshot.number}, "
            f"{timezone.localtime(snapshot.created_at):%d %b %Y %H:%M}."
        )
    return [
        Card(
            "Opt-out register",
            len(proposers),
            lines,
            "Open the opt-out register",
            reverse("optout-register"),
            "warning" if yours else "",
        )
    ]


def _direct_care_cards(user: User) -> list[Card]:
    from sde.directcare import selectors

    url = reverse("direct-care")
    cards = []
    if policy.user_requests_reidentification(user):
        mine = selectors.requests_for(user).filter(requested_by=user)
        ready = sum(1 for request in mine.filter(status="ready") if selectors.list_is_open(request))
        lines = [f"cohorts you can ask about for your practice's patients ({mine.count()} "
                 "requests of yours so far)"]  # fmt: skip
        if ready:
            lines.append(f"{ready} list{'s' if ready != 1 else ''} ready to open.")
        cards.append(Card("Direct care", selectors.cohorts_for(user).count(), lines,
                          "Open direct care", url, "success" if ready else ""))  # fmt: skip
    if policy.reidentification_sign_off_roles(user):
        waiting = selectors.awaiting_sign_off(user).count()
        cards.append(Card("Re-identification sign-offs", waiting,
                          ["requests waiting for your sign-off"], "Open direct care", url,
                          "warning" if waiting else ""))  # fmt: skip
    return cards


def dashboard_for(user: User) -> dict[str, object]:
    today = timezone.localdate()
    roles = sorted(current_roles(user), key=lambda r: r.label)
    cards: list[Card] = []
    if policy.user_can_read_audit_log(user):
        cards += _ig_cards(today)
    if policy.user_can_manage_optouts(user):
        cards += _optout_cards(user)
    if policy.user_can_manage_accounts(user):
        cards += _admin_cards()
    if policy.user_can_manage_datasets(user):
        cards += _custodian_cards()
    cards += _direct_care_cards(user)
    for source in _SOURCES:
        cards += source(user)
    accreditations = list(current_accreditations(user, on=today))
    return {
        "roles": [
            {"label": role.label, "can": sorted(c.label for c in ROLE_CAPABILITIES[role])}
            for role in roles
        ],
        "cards": cards,
        "accreditations": accreditations,
        "accreditation_warning": [
            a for a in accreditations if a.expires_on <= today + timedelta(days=30)
        ],
        "has_role": bool(roles),
        "is_researcher": Role.RESEARCHER in roles,
    }
