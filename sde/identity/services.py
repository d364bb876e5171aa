"""Changing people, organisations, roles and accreditation. Every change is audited."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from sde import policy
from sde.audit.events import EventType
from sde.audit.services import record_event
from sde.exceptions import InvalidTransition, ValidationError
from sde.governance import governed_writes
from sde.identity.models import (
    Accreditation,
    ApiToken,
    Organisation,
    OrganisationMembership,
    RoleAssignment,
    User,
)
from sde.identity.roles import Role
from sde.identity.selectors import forget_cached_roles


def _validated_password(password: str, user: User) -> str:
    try:
        validate_password(password, user)
    except DjangoValidationError as error:
        raise ValidationError("password rejected", {"password": list(error.messages)}) from None
    return password


def create_account(
    *, username: str, email: str, first_name: str, last_name: str, password: str, by: User
) -> User:
    """Create a person's account. They enrol MFA at first sign-in.

    Raises PermissionDenied unless ``by`` manages accounts; ValidationError for a taken
    username or a weak password. Event: identity.account_created.
    """
    policy.check_manage_accounts(by)
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    user.set_password(_validated_password(password, user))
    with transaction.atomic(durable=True):
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError("username taken", {"username": ["That username is taken."]})
        user.save()
        record_event(event_type=EventType.ACCOUNT_CREATED, actor=by, target=user)
    return user


def change_password(*, user: User, new_password: str) -> None:
    """The person changes their own password (the view checks the old one)."""
    user.set_password(_validated_password(new_password, user))
    with transaction.atomic(durable=True):
        user.save(update_fields=["password"])
        record_event(event_type=EventType.PASSWORD_CHANGED, actor=user, target=user)


def grant_role(*, user: User, role: Role, by: User, reason: str = "") -> RoleAssignment:
    """Grant ``role`` to ``user``. Nobody can grant a role to themselves.

    Raises PermissionDenied (no MANAGE_ROLES, or self), InvalidTransition if already held.
    Event: identity.role_granted.
    """
    policy.check_grant_role(by, user)
    with transaction.atomic(durable=True), governed_writes(RoleAssignment):
        if RoleAssignment.objects.filter(user=user, role=role, revoked_at__isnull=True).exists():
            raise InvalidTransition(f"{user.display_name} already holds {Role(role).label}")
        assignment = RoleAssignment(
            user=user, role=role, granted_by=by, granted_at=timezone.now(), reason=reason
        )
        try:
            with transaction.atomic():
                assignment.save()
        except IntegrityError:
            raise InvalidTransition(
                f"{user.display_name} already holds {Role(role).label}"
            ) from None
        record_event(
            event_type=EventType.ROLE_GRANTED, actor=by, target=user, data={"role": str(role)}
        )
    forget_cached_roles(user)
    return assignment


def remove_role(*, user: User, role: Role, by: User, reason: str = "") -> None:
    """Remove a current role. Raises PermissionDenied, InvalidTransition if not held.
    Event: identity.role_removed."""
    policy.check_grant_role(by, user)
    with transaction.atomic(durable=True), governed_writes(RoleAssignment):
        assignment = (
            RoleAssignment.objects.select_for_update()
            .filter(user=user, role=role, revoked_at__isnull=True)
            .first()
        )
        if assignment is None:
            raise InvalidTransition(f"{user.display_name} does not hold {Role(role).label}")
        assignment.revoked_at = timezone.now()
        assignment.revoked_by = by
        assignment.save(update_fields=["revoked_at", "revoked_by"])
        record_event(
            event_type=EventType.ROLE_REMOVED,
            actor=by,
            target=user,
            data={"role": str(role), "reason_given": bool(reason)},
        )
    forget_cached_roles(user)


def record_accreditation(
    *,
    user: User,
    kind: Accreditation.Kind,
    issued_on: date,
    expires_on: date,
    certificate_reference: str = "",
    by: User,
) -> Accreditation:
    """Record a training certificate. Raises PermissionDenied (not IG/admin, or self),
    ValidationError if it expires before it was issued. Event: identity.accreditation_recorded."""
    policy.check_record_accreditation(by, user)
    if expires_on <= issued_on:
        raise ValidationError("bad dates", {"expires_on": ["Expiry must be after issue."]})
    with transaction.atomic(durable=True), governed_writes(Accreditation):
        record = Accreditation(
            user=user,
            kind=kind,
            issued_on=issued_on,
            expires_on=expires_on,
            certificate_reference=certificate_reference,
            recorded_by=by,
            recorded_at=timezone.now(),
        )
        record.save()
        record_event(
            event_type=EventType.ACCREDITATION_RECORDED,
            actor=by,
            target=user,
            data={
                "kind": str(kind),
                "issued_on": issued_on.isoformat(),
                "expires_on": expires_on.isoformat(),
            },
        )
    return record


def suspend_account(*, user: User, by: User, reason: str) -> None:
    """Stop a person signing in (and end their API tokens). Event: identity.account_suspended."""
    policy.check_suspend_person(by, user)
    if not reason.strip():
        raise ValidationError("reason required", {"reason": ["Give a reason."]})
    with transaction.atomic(durable=True), governed_writes(ApiToken):
        locked = User.objects.select_for_update().get(pk=user.pk)
        if not locked.is_active:
            raise InvalidTransition("the account is already suspended")
        locked.is_active = False
        locked.save(update_fields=["is_active"])
        ApiToken.objects.filter(user=locked, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        record_event(
            event_type=EventType.ACCOUNT_SUSPENDED,
            actor=by,
            target=locked,
            data={"reason": reason[:300]},
        )
    user.is_active = False


def reinstate_account(*, user: User, by: User) -> None:
    """Event: identity.account_reinstated."""
    policy.check_suspend_person(by, user)
    with transaction.atomic(durable=True):
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.is_active:
            raise InvalidTransition("the account is not suspended")
        locked.is_active = True
        locked.save(update_fields=["is_active"])
        record_event(event_type=EventType.ACCOUNT_REINSTATED, actor=by, target=locked)
    user.is_active = True


def unlock_account(*, user: User, by: User) -> None:
    """Clear a lockout before it runs out. Event: identity.account_unlocked."""
    policy.check_manage_accounts(by, user)
    with transaction.atomic(durable=True):
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.locked_until is None:
            raise InvalidTransition("the account is not locked")
        locked.locked_until = None
        locked.failed_login_count = 0
        locked.save(update_fields=["locked_until", "failed_login_count"])
        record_event(event_type=EventType.ACCOUNT_UNLOCKED, actor=by, target=locked)


def create_organisation(
    *,
    name: str,
    kind: Organisation.Kind,
    ods_code: str | None = None,
    parent: Organisation | None = None,
    by: User,
) -> Organisation:
    """Raises PermissionDenied, ValidationError (GP practice without ODS code, duplicate
    code). Event: identity.organisation_created."""
    policy.check_manage_organisations(by)
    ods_code = (ods_code or "").strip().upper() or None
    if kind == Organisation.Kind.GP_PRACTICE and not ods_code:
        raise ValidationError(
            "ODS code required", {"ods_code": ["A GP practice needs its ODS code."]}
        )
    with transaction.atomic(durable=True), governed_writes(Organisation):
        if ods_code and Organisation.objects.filter(ods_code=ods_code).exists():
            raise ValidationError(
                "duplicate", {"ods_code": ["That ODS code is already registered."]}
            )
        organisation = Organisation(name=name, kind=kind, ods_code=ods_code, parent=parent)
        organisation.save()
        record_event(
            event_type=EventType.ORGANISATION_CREATED,
            actor=by,
            target=organisation,
            data={"kind": str(kind)},
        )
    return organisation


def add_membership(
    *, user: User, organisation: Organisation, job_title: str = "", by: User
) -> OrganisationMembership:
    """Event: identity.membership_added. Raises PermissionDenied, InvalidTransition."""
    policy.check_manage_organisations(by)
    if user.pk == by.pk:
        raise policy.PermissionDenied("you cannot change your own memberships")
    with transaction.atomic(durable=True), governed_writes(OrganisationMembership):
        if OrganisationMembership.objects.filter(user=user, organisation=organisation).exists():
            raise InvalidTransition("already a member")
        membership = OrganisationMembership(
            user=user, organisation=organisation, job_title=job_title
        )
        membership.save()
        record_event(
            event_type=EventType.MEMBERSHIP_ADDED,
            actor=by,
            target=user,
            data={"organisation_id": organisation.pk},
        )
    return membership


def remove_membership(*, membership: OrganisationMembership, by: User) -> None:
    """Event: identity.membership_removed."""
    policy.check_manage_organisations(by)
    if membership.user_id == by.pk:
        raise policy.PermissionDenied("you cannot change your own memberships")
    with transaction.atomic(durable=True), governed_writes(OrganisationMembership):
        record_event(
            event_type=EventType.MEMBERSHIP_REMOVED,
            actor=by,
            target=membership.user,
            data={"organisation_id": membership.organisation_id},
        )
        membership.delete()


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_token(*, user: User, name: str, by: User) -> tuple[ApiToken, str]:
    """Create a personal API token; returns the row and the key, which is never stored
    or shown again. Only the person themselves (signed in with MFA) can do this.
    Event: identity.api_token_created."""
    policy.check_manage_api_token(by, user)
    key = f"sde_{secrets.token_urlsafe(32)}"
    now = timezone.now()
    with transaction.atomic(durable=True), governed_writes(ApiToken):
        token = ApiToken(
            user=user,
            name=name[:100],
            prefix=key[:12],
            key_hash=hash_api_key(key),
            created_at=now,
            expires_at=now + timedelta(days=settings.SDE_API_TOKEN_DAYS),
        )
        token.save()
        record_event(
            event_type=EventType.API_TOKEN_CREATED,
            actor=by,
            target=token,
            data={"prefix": token.prefix},
        )
    return token, key


def revoke_api_token(*, token: ApiToken, by: User) -> None:
    """Event: identity.api_token_revoked."""
    policy.check_manage_api_token(by, token.user)
    with transaction.atomic(durable=True), governed_writes(ApiToken):
        if token.revoked_at is not None:
            raise InvalidTransition("the token is already revoked")
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_event(
            event_type=EventType.API_TOKEN_REVOKED,
            actor=by,
            target=token,
            data={"prefix": token.prefix},
        )


def touch_api_token(token: ApiToken) -> None:
    """Record use (at most once a minute, to keep requests cheap). Not audited: the
    request's own events carry the actor."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        with governed_writes(ApiToken):
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)


def bootstrap_administrator(
    *, username: str, email: str, first_name: str, last_name: str, password: str, by: User
) -> User:
    """Create the first Administrator of an installation (no one else can grant it yet).

    Refused (InvalidTransition) once any Administrator exists; ``by`` must be the system
    user. Events: identity.account_created, identity.role_granted.
    """
    if not by.is_system:
        raise policy.PermissionDenied("only the system bootstraps the first administrator")
    user = User(username=username, email=email, first_name=first_name, last_name=last_name)
    user.set_password(_validated_password(password, user))
    with transaction.atomic(durable=True), governed_writes(RoleAssignment):
        if RoleAssignment.objects.filter(role=Role.ADMINISTRATOR, revoked_at__isnull=True).exists():
            raise InvalidTransition("an administrator already exists; ask them for an account")
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError("username taken", {"username": ["That username is taken."]})
        user.save()
        RoleAssignment(
            user=user,
            role=Role.ADMINISTRATOR,
            granted_by=by,
            granted_at=timezone.now(),
            reason="bootstrap",
        ).save()
        record_event(event_type=EventType.ACCOUNT_CREATED, actor=by, target=user)
        record_event(
            event_type=EventType.ROLE_GRANTED,
            actor=by,
            target=user,
            data={"role": str(Role.ADMINISTRATOR), "bootstrap": True},
        )
    return user
