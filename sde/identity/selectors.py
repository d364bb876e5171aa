"""Reading people, roles and accreditation."""

from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from sde.identity.models import Accreditation, RoleAssignment, User
from sde.identity.roles import Role


def current_roles(user: User) -> frozenset[Role]:
    """The roles a person holds now (cached on the user object for the request)."""
    cached: frozenset[Role] | None = getattr(user, "_sde_roles", None)
    if cached is None:
        if not user.is_authenticated or user.pk is None:
            return frozenset()
        cached = frozenset(
            Role(value)
            for value in RoleAssignment.objects.filter(
                user=user, revoked_at__isnull=True
            ).values_list("role", flat=True)
        )
        user._sde_roles = cached  # type: ignore[attr-defined]
    return cached


def forget_cached_roles(user: User) -> None:
    user.__dict__.pop("_sde_roles", None)


def users_with_role(role: Role) -> QuerySet[User]:
    return User.objects.filter(
        is_active=True,
        role_assignments__role=role,
        role_assignments__revoked_at__isnull=True,
    ).distinct()


def current_accreditations(user: User, *, on: date) -> QuerySet[Accreditation]:
    return Accreditation.objects.filter(user=user, issued_on__lte=on, expires_on__gte=on)


def is_accredited(user: User, *, on: date, kind: Accreditation.Kind | None = None) -> bool:
    """Whether the person holds a current accreditation (of ``kind``, if given) on ``on``."""
    records = current_accreditations(user, on=on)
    if kind is not None:
        records = records.filter(kind=kind)
    return records.exists()
