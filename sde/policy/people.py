"""The audit log, people, roles, accreditation, organisations and API tokens."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from sde.exceptions import NotFound, PermissionDenied
from sde.identity.models import Organisation, User
from sde.identity.roles import Capability
from sde.policy.base import _active, _require, has_capability


# --- Audit log ---------------------------------------------------------------------------
def user_can_read_audit_log(user: Any) -> bool:
    return has_capability(user, Capability.READ_AUDIT_LOG)


def check_read_audit_log(user: Any) -> None:
    # The audit log's existence is no secret; reading it is IG's alone (not Administrators').
    _require(user, Capability.READ_AUDIT_LOG)


# --- People, roles, accreditation --------------------------------------------------------
def user_can_list_people(user: Any) -> bool:
    """Administrators, and IG officers (who record accreditation and suspend people)."""
    return any(
        has_capability(user, capability)
        for capability in (
            Capability.MANAGE_ACCOUNTS,
            Capability.RECORD_ACCREDITATIONS,
            Capability.SUSPEND_PROJECTS,
        )
    )


def visible_people_for(user: Any) -> QuerySet[User]:
    people = User.objects.filter(is_system=False)
    if user_can_list_people(user):
        return people
    return people.filter(pk=user.pk) if _active(user) else people.none()


def user_can_manage_accounts(user: Any) -> bool:
    return has_capability(user, Capability.MANAGE_ACCOUNTS)


def check_manage_accounts(user: Any, person: User | None = None) -> None:
    _require(user, Capability.MANAGE_ACCOUNTS)
    if person is not None and person.pk == user.pk:
        raise PermissionDenied("you cannot change your own account's access")


def user_can_grant_role(user: Any, person: User) -> bool:
    return has_capability(user, Capability.MANAGE_ROLES) and person.pk != user.pk


def check_grant_role(user: Any, person: User) -> None:
    """Nobody grants or removes a role for themselves: separation of duties."""
    _require(user, Capability.MANAGE_ROLES)
    if person.pk == user.pk:
        raise PermissionDenied("you cannot change your own roles")
    if person.is_system:
        raise NotFound("no such person")


def user_can_record_accreditation(user: Any, person: User) -> bool:
    return has_capability(user, Capability.RECORD_ACCREDITATIONS) and person.pk != user.pk


def check_record_accreditation(user: Any, person: User) -> None:
    _require(user, Capability.RECORD_ACCREDITATIONS)
    if person.pk == user.pk:
        raise PermissionDenied("you cannot record your own accreditation")


def user_can_suspend_person(user: Any, person: User) -> bool:
    return (
        has_capability(user, Capability.MANAGE_ACCOUNTS)
        or has_capability(user, Capability.SUSPEND_PROJECTS)
    ) and person.pk != user.pk


def check_suspend_person(user: Any, person: User) -> None:
    if not user_can_suspend_person(user, person):
        raise PermissionDenied("you may not suspend or reinstate this account")


# --- Organisations -----------------------------------------------------------------------
def visible_organisations_for(user: Any) -> QuerySet[Organisation]:
    # Organisations are directory information every signed-in person may read.
    return Organisation.objects.all() if _active(user) else Organisation.objects.none()


def user_can_manage_organisations(user: Any) -> bool:
    return has_capability(user, Capability.MANAGE_ORGANISATIONS)


def check_manage_organisations(user: Any) -> None:
    _require(user, Capability.MANAGE_ORGANISATIONS)


# --- API tokens --------------------------------------------------------------------------
def check_manage_api_token(user: Any, owner: User) -> None:
    if not _active(user) or user.pk != owner.pk:
        raise NotFound("no such token")
