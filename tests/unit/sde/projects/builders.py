"""Builders for the project-core tests: fixed dates, people holding both data-access
accreditations, and projects driven into any status through the services.

No clock is frozen (neither time-machine nor freezegun is installed): every date the
rules read is fixed here and passed to the services as ``today``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sde import policy
from sde.audit.services import get_system_user
from sde.identity import services as identity
from sde.identity.models import Accreditation, User
from sde.identity.roles import Role
from sde.projects import services
from sde.projects.models import Project
from tests import scenarios

S = Project.Status
START, END = date(2026, 1, 1), date(2026, 12, 31)
TODAY = date(2026, 6, 15)
AFTER_END = END + timedelta(days=1)
TRAINED_FROM, TRAINED_UNTIL = date(2025, 1, 1), date(2027, 12, 31)
SCOPE: dict[str, Any] = {
    "datasets": {"patients": ["person_id", "sex"], "gp-events": ["person_id", "date"]},
    "purpose": "research",
    "legal_basis": "s251_standard",
}
DROP_TABLES = ("patients", "gp_events", "ndop")


def accredit(
    user: User,
    *,
    kinds: tuple[Accreditation.Kind, ...] = policy.DATA_ACCESS_ACCREDITATIONS,
    issued_on: date = TRAINED_FROM,
    expires_on: date = TRAINED_UNTIL,
) -> User:
    for kind in kinds:
        identity.record_accreditation(
            user=user, kind=kind, issued_on=issued_on, expires_on=expires_on,
            by=scenarios.administrator(),
        )  # fmt: skip
    return user


def researcher(**accreditation: Any) -> User:
    """A researcher holding both accreditations (safe researcher, data security)."""
    return accredit(scenarios.person(Role.RESEARCHER), **accreditation)


def drive_to(project: Project, status: str, *, ig: User) -> Project:
    """``project`` (active) moved into ``status`` by the service that owns that move."""
    system = get_system_user()
    if status == S.ACTIVE:
        return project
    if status == S.SUSPENDED:
        return services.suspend_project(project=project, reason="DSPT under review", by=ig)
    if status == S.EXPIRED:
        return services.expire_project(project=project, by=system, today=AFTER_END)
    if status == S.REVOKED:
        return services.revoke_project(project=project, reason="breach of conditions", by=ig)
    if status == S.CLOSED:
        return services.close_project(
            project=project, attestation="Destroyed on 1 June, certificate 42", by=ig
        )
    raise AssertionError(f"no route to {status}")
