"""Who is signed in and active, what their roles allow, and the object permissions
(django-guardian is imported here and nowhere else)."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from guardian.shortcuts import assign_perm, get_objects_for_user, remove_perm

from sde.exceptions import PermissionDenied
from sde.identity.models import User
from sde.identity.roles import Capability, Role, capabilities_of
from sde.identity.selectors import current_roles


def _active(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active and not user.is_system)


def has_capability(user: Any, capability: Capability) -> bool:
    return _active(user) and capability in capabilities_of(current_roles(user))


def has_role(user: Any, role: Role) -> bool:
    return _active(user) and role in current_roles(user)


def _require(user: Any, capability: Capability) -> None:
    if not has_capability(user, capability):
        raise PermissionDenied(f"this needs the '{capability.label}' capability")


# --- Object permissions (django-guardian) ---------------------------------------------
def grant_object_permission(*, user: User, permission: str, obj: Model) -> None:
    """Low-level grant; call only from a service that records the audit event."""
    assign_perm(permission, user, obj)


def revoke_object_permission(*, user: User, permission: str, obj: Model) -> None:
    """Low-level revoke; call only from a service that records the audit event."""
    remove_perm(permission, user, obj)


def grant_object_permissions(*, user: User, permission: str, objects: QuerySet[Any]) -> None:
    """Low-level bulk grant on every object of ``objects``; the caller audits it."""
    assign_perm(permission, user, objects)  # type: ignore[arg-type]  # bulk form (guardian 3.5)


def revoke_object_permissions(*, user: User, permission: str, objects: QuerySet[Any]) -> None:
    """Low-level bulk revoke on every object of ``objects``; the caller audits it."""
    remove_perm(permission, user, objects)


def objects_with_permission(user: Any, permission: str, queryset: QuerySet[Any]) -> QuerySet[Any]:
    if not _active(user):
        return queryset.none()
    return get_objects_for_user(
        user,
        permission,
        klass=queryset,
        with_superuser=False,
        accept_global_perms=False,
        use_groups=False,
    )


def user_has_object_permission(user: Any, permission: str, obj: Model) -> bool:
    return objects_with_permission(
        user, permission, type(obj)._default_manager.filter(pk=obj.pk)
    ).exists()
