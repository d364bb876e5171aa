"""Project lifecycle: creation at approval, members and their object permissions,
suspension, revocation, expiry, closure, and the compliance clock.

States and who moves a project between them (``TRANSITIONS``, ``ACTIONS``):

    active --suspend (IG)--> suspended --resume (IG)--> active
    active|suspended --expire (system, at the end date)--> expired
    active|suspended --revoke (IG)--> revoked
    active|suspended|expired|revoked --close (IG, destruction attested)--> closed

Access to data is decided at each use by ``policy.project_data_refusal`` (status, dates,
membership, accreditation, object permission), so it ends by itself; these services
record the change, revoke the object permissions when access ends for good, and audit
every grant and revocation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from sde import notifications, policy
from sde.audit.events import EventType
from sde.audit.services import get_system_user, record_event
from sde.data import extracts
from sde.data.models import DatasetField, Extract
from sde.exceptions import InvalidTransition, PermissionDenied, ValidationError
from sde.governance import governed_writes
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.identity.selectors import is_accredited
from sde.projects.models import Project, ProjectField, ProjectMembership

logger = logging.getLogger(__name__)
S = Project.Status
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    S.ACTIVE: frozenset({S.SUSPENDED, S.EXPIRED, S.REVOKED, S.CLOSED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.EXPIRED, S.REVOKED, S.CLOSED}),
    S.EXPIRED: frozenset({S.CLOSED}),
    S.REVOKED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}
# action -> (target status, who may take it, audit event)
ACTIONS: Final[dict[str, tuple[str, str, EventType]]] = {
    "suspend": (S.SUSPENDED, "IG officer or system", EventType.PROJECT_SUSPENDED),
    "resume": (S.ACTIVE, "IG officer", EventType.PROJECT_RESUMED),
    "expire": (S.EXPIRED, "system", EventType.PROJECT_EXPIRED),
    "revoke": (S.REVOKED, "IG officer", EventType.PROJECT_REVOKED),
    "close": (S.CLOSED, "IG officer", EventType.PROJECT_CLOSED),
}
PAST_TENSE: Final = {"suspend": "suspended", "resume": "resumed", "expire": "expired",
                     "revoke": "revoked", "close": "closed"}  # fmt: skip
ENDED: Final = frozenset({S.EXPIRED, S.REVOKED, S.CLOSED})  # access ends for good
COMPLIANCE_DATES: Final = policy.PROJECT_COMPLIANCE_DATES
FieldSet = QuerySet[ProjectField]


@dataclass(frozen=True)
class MemberSpec:
    user: User
    role: str
    accesses_data: bool = True


# --- Creation and members ---------------------------------------------------------------
def create_project(
    *,
    title: str,
    lay_summary: str,
    organisation: Organisation,
    scope: dict[str, Any],
    start_date: date,
    end_date: date,
    members: Sequence[MemberSpec],
    by: User,
    conditions: str = "",
    access_request_id: int | None = None,
    s251_expiry: date | None = None,
    rec_expiry: date | None = None,
    dspt_expiry: date | None = None,
) -> Project:
    """Create an active project with its approved scope (an extract scope without the
    project id, which is set here), add its members with their object permissions, and
    build its extracts after commit. Raises PermissionDenied unless ``by`` is IG or the
    system; ValidationError for a bad scope, dates or members.
    Events: project.created, project.member_added and project.permission_granted per
    member, project.activated."""
    policy.check_create_project(by)
    errors: dict[str, list[str]] = {}
    if end_date < start_date:
        errors["end_date"] = ["The end date is before the start date."]
    if not members:
        errors["members"] = ["A project needs at least one member."]
    if len({m.user.pk for m in members}) != len(members):
        errors["members"] = ["A person is listed twice."]
    if errors:
        raise ValidationError("the project is not valid", errors)
    # Not durable: approving an access request creates its project in the same transaction.
    with transaction.atomic(), governed_writes(Project, ProjectMembership, ProjectField):
        project = Project(
            title=title,
            lay_summary=lay_summary,
            organisation=organisation,
            status_changed_at=timezone.now(),
            start_date=start_date,
            end_date=end_date,
            scope={},
            conditions=conditions,
            access_request_id=access_request_id,
            s251_expiry=s251_expiry,
            rec_expiry=rec_expiry,
            dspt_expiry=dspt_expiry,
            created_by=by,
        )
        project.save()
        checked = extracts.ExtractScope.from_json({**scope, "project_id": project.pk})
        extracts.validate_scope(checked)
        project.scope = checked.to_json()
        project.save(update_fields=["scope"])
        _sync_fields(project, by=by)
        record_event(
            event_type=EventType.PROJECT_CREATED,
            actor=by,
            target=project,
            project_id=project.pk,
            data={"purpose": checked.purpose, "datasets": sorted(checked.datasets)},
        )
        for member in members:
            _add_member(project, member, by=by)
        record_event(
            event_type=EventType.PROJECT_ACTIVATED,
            actor=by,
            target=project,
            project_id=project.pk,
            data={"end_date": end_date.isoformat()},
        )
        transaction.on_commit(lambda: _enqueue_extracts(project.pk), robust=True)
    return project


def _enqueue_extracts(project_id: int) -> None:
    from sde.tasks import build_project_extracts_task  # tasks import services

    build_project_extracts_task.delay(project_id)


def build_project_extracts(*, project: Project, by: User) -> list[Extract]:
    """Build whichever of the project's real and dummy extracts it does not have for its
    approved scope (the worker runs this after approval or an amendment); an extract of an
    earlier scope is deleted first. Returns those built. Raises PermissionDenied unless
    ``by`` provisions data."""
    scope = extracts.ExtractScope.from_json(project.scope)
    built = []
    for dummy in (False, True):
        current = extracts.current_extract(project.pk, dummy=dummy)
        if current is not None and current.scope == project.scope:
            continue
        if current is not None:
            extracts.delete_extract(extract=current, by=by, reason="the approved scope changed")
        if dummy:
            built.append(extracts.build_dummy_extract(scope=scope, by=by))
        else:
            reason = "project approved" if current is None else "amendment approved"
            built.append(extracts.build_extract(scope=scope, by=by, reason=reason))
    return built


def change_project(
    *,
    project: Project,
    by: User,
    access_request_id: int,
    end_date: date,
    conditions: str,
    scope: dict[str, Any] | None = None,
    members: Sequence[MemberSpec] | None = None,
    title: str | None = None,
    lay_summary: str | None = None,
    **compliance: date | None,
) -> Project:
    """Apply an approved amendment, extension or renewal to a live project: the end date,
    conditions, and (unless None) the scope, the team and the compliance dates. Members
    who leave lose their permissions at once; a new scope rebuilds the extracts after
    commit. Raises PermissionDenied unless ``by`` is IG or the system, InvalidTransition
    once access has ended. Events: project.changed, and the member and permission events."""
    policy.check_create_project(by)
    unknown = set(compliance) - set(COMPLIANCE_DATES)
    if unknown:
        raise ValidationError("unknown dates", {n: ["Not a compliance date."] for n in unknown})
    with transaction.atomic(), governed_writes(Project, ProjectMembership, ProjectField):
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if locked.status not in {S.ACTIVE, S.SUSPENDED}:
            raise InvalidTransition(f"the project is {locked.status}")
        if end_date < locked.start_date:
            raise ValidationError("bad end date", {"end_date": ["Before the project starts."]})
        before = {"end_date": locked.end_date, "conditions": locked.conditions,
                  "scope": locked.scope, "title": locked.title, "lay_summary": locked.lay_summary,
                  **{name: getattr(locked, name) for name in compliance}}  # fmt: skip
        locked.end_date, locked.conditions = end_date, conditions
        if title is not None:
            locked.title = title
        if lay_summary is not None:
            locked.lay_summary = lay_summary
        for name, value in compliance.items():
            setattr(locked, name, value)
        if scope is not None:
            checked = extracts.ExtractScope.from_json({**scope, "project_id": locked.pk})
            extracts.validate_scope(checked)
            locked.scope = checked.to_json()
        locked.save()
        if scope is not None:
            _sync_fields(locked, by=by)
        changed = sorted(name for name, value in before.items() if getattr(locked, name) != value)
        if members is not None:
            changed += _change_members(locked, members, by=by)
        record_event(
            event_type=EventType.PROJECT_CHANGED, actor=by, target=locked, project_id=locked.pk,
            data={"access_request_id": access_request_id, "changed": changed},
        )  # fmt: skip
        if "scope" in changed:
            transaction.on_commit(lambda: _enqueue_extracts(locked.pk), robust=True)
    return locked


def _change_members(project: Project, wanted: Sequence[MemberSpec], *, by: User) -> list[str]:
    """Make the project's current members ``wanted`` (a changed role or data use is a
    removal and a new membership); ["members"] if anything changed."""
    current = {m.user_id: m for m in project.memberships.filter(removed_at__isnull=True)}
    specs = {spec.user.pk: spec for spec in wanted}
    kept = {
        user_id for user_id, m in current.items()
        if user_id in specs and (specs[user_id].role, specs[user_id].accesses_data)
        == (m.role, m.accesses_data)
    }  # fmt: skip
    for user_id in current.keys() - kept:
        membership = current[user_id]
        membership.removed_at, membership.removed_by = timezone.now(), by
        membership.save()
        record_event(
            event_type=EventType.PROJECT_MEMBER_REMOVED, actor=by, target=project,
            project_id=project.pk, data={"user_id": user_id},
        )  # fmt: skip
        for permission in (policy.PROJECT_DATA, policy.PROJECT_VIEW):
            _revoke(project, membership.user, permission, by=by)
    for user_id in specs.keys() - kept:
        _add_member(project, specs[user_id], by=by)
    return ["members"] if current.keys() - kept or specs.keys() - kept else []


def _grant(project: Project, user: User, permission: str, *, by: User) -> None:
    """Grant a project permission; the data permission comes with ``read_project_field``
    on every approved field."""
    policy.grant_object_permission(user=user, permission=permission, obj=project)
    record_event(
        event_type=EventType.OBJECT_PERMISSION_GRANTED,
        actor=by,
        target=project,
        project_id=project.pk,
        data={"user_id": user.pk, "permission": permission},
    )
    if permission == policy.PROJECT_DATA:
        _grant_fields(project, user, project.fields.all(), by=by)


def _revoke(project: Project, user: User, permission: str, *, by: User) -> None:
    """Revoke a project permission if held; revoking the data permission revokes the
    field permissions too."""
    if permission == policy.PROJECT_DATA:
        _revoke_fields(project, user, project.fields.all(), by=by)
    if not policy.user_has_object_permission(user, permission, project):
        return
    policy.revoke_object_permission(user=user, permission=permission, obj=project)
    record_event(
        event_type=EventType.OBJECT_PERMISSION_REVOKED,
        actor=by,
        target=project,
        project_id=project.pk,
        data={"user_id": user.pk, "permission": permission},
    )


def _labels(fields: FieldSet) -> list[str]:
    return sorted(f.label for f in fields.select_related("field__dataset"))


def _grant_fields(project: Project, user: User, fields: FieldSet, *, by: User) -> None:
    labels = _labels(fields)
    if not labels:
        return
    policy.grant_object_permissions(user=user, permission=policy.PROJECT_FIELD, objects=fields)
    record_event(
        event_type=EventType.OBJECT_PERMISSION_GRANTED, actor=by, target=project,
        project_id=project.pk,
        data={"user_id": user.pk, "permission": policy.PROJECT_FIELD, "fields": labels},
    )  # fmt: skip


def _revoke_fields(project: Project, user: User, fields: FieldSet, *, by: User) -> None:
    held = policy.objects_with_permission(user, policy.PROJECT_FIELD, fields)
    labels = _labels(held)
    if not labels:
        return
    policy.revoke_object_permissions(
        user=user, permission=policy.PROJECT_FIELD, objects=fields.filter(pk__in=held.values("pk"))
    )
    record_event(
        event_type=EventType.OBJECT_PERMISSION_REVOKED, actor=by, target=project,
        project_id=project.pk,
        data={"user_id": user.pk, "permission": policy.PROJECT_FIELD, "fields": labels},
    )  # fmt: skip


def _sync_fields(project: Project, *, by: User) -> None:
    """Make the project's ProjectField rows the fields of its (validated) scope. Current
    data-using members gain the added fields and lose the removed ones at once."""
    wanted = {(slug, name) for slug, names in project.scope["datasets"].items() for name in names}
    current = {(f.field.dataset.slug, f.field.name): f.pk
               for f in project.fields.select_related("field__dataset")}  # fmt: skip
    users = [m.user for m in project.memberships.filter(removed_at__isnull=True, accesses_data=True)
             .select_related("user")]  # fmt: skip
    removed = ProjectField.objects.filter(pk__in=[current[k] for k in current.keys() - wanted])
    for user in users:
        _revoke_fields(project, user, removed, by=by)
    removed.delete()
    new = [
        ProjectField.objects.create(project=project, field=field)
        for field in DatasetField.objects.filter(dataset__slug__in={s for s, _ in wanted})
        .select_related("dataset")
        if (field.dataset.slug, field.name) in wanted - current.keys()
    ]  # fmt: skip
    added = ProjectField.objects.filter(pk__in=[f.pk for f in new])
    for user in users:
        if policy.user_has_object_permission(user, policy.PROJECT_DATA, project):
            _grant_fields(project, user, added, by=by)


def _add_member(project: Project, member: MemberSpec, *, by: User) -> ProjectMembership:
    if member.role not in ProjectMembership.Role.values:
        raise ValidationError("unknown project role", {"role": [f"{member.role!r}"]})
    if member.accesses_data:
        policy.check_grant_project_data(by, member.user)
    if not member.user.is_active:
        raise ValidationError("suspended account", {"user": ["This account is suspended."]})
    membership = ProjectMembership(
        project=project, user=member.user, role=member.role,
        accesses_data=member.accesses_data, added_by=by,
    )  # fmt: skip
    membership.save()
    record_event(
        event_type=EventType.PROJECT_MEMBER_ADDED,
        actor=by,
        target=project,
        project_id=project.pk,
        data={
            "user_id": member.user.pk,
            "role": member.role,
            "accesses_data": member.accesses_data,
        },
    )
    _grant(project, member.user, policy.PROJECT_VIEW, by=by)
    if member.accesses_data:
        _grant(project, member.user, policy.PROJECT_DATA, by=by)
    return membership


def add_member(*, project: Project, member: MemberSpec, by: User) -> ProjectMembership:
    """Add a person to a live project. Raises NotFound/PermissionDenied unless ``by``
    manages it; InvalidTransition once access has ended; ValidationError if already a
    member. Events: project.member_added, project.permission_granted."""
    policy.check_manage_project(by, project)
    with transaction.atomic(durable=True), governed_writes(ProjectMembership):
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if locked.status in ENDED:
            raise InvalidTransition(f"the project is {locked.status}")
        if locked.memberships.filter(user=member.user, removed_at__isnull=True).exists():
            raise ValidationError("already a member", {"user": ["Already a member."]})
        return _add_member(locked, member, by=by)


def remove_member(*, project: Project, user: User, by: User) -> ProjectMembership:
    """Remove a member: their object permissions are revoked at once. A closed project's
    membership is its record and stays as it was (InvalidTransition).
    Events: project.member_removed, project.permission_revoked."""
    policy.check_manage_project(by, project)
    with transaction.atomic(durable=True), governed_writes(ProjectMembership):
        if Project.objects.select_for_update().get(pk=project.pk).status == S.CLOSED:
            raise InvalidTransition("the project is closed")
        membership = (
            ProjectMembership.objects.select_for_update()
            .filter(project=project, user=user, removed_at__isnull=True)
            .first()
        )
        if membership is None:
            raise ValidationError("not a member", {"user": ["Not a current member."]})
        membership.removed_at, membership.removed_by = timezone.now(), by
        membership.save()
        record_event(
            event_type=EventType.PROJECT_MEMBER_REMOVED,
            actor=by,
            target=project,
            project_id=project.pk,
            data={"user_id": user.pk},
        )
        for permission in (policy.PROJECT_DATA, policy.PROJECT_VIEW):
            _revoke(project, user, permission, by=by)
    return membership


# --- State changes ----------------------------------------------------------------------
def _transition(project: Project, action: str, *, by: User, reason: str, **fields: Any) -> Project:
    to, _, event = ACTIONS[action]
    with transaction.atomic(durable=True), governed_writes(Project, ProjectMembership):
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if to not in TRANSITIONS[locked.status]:
            raise InvalidTransition(
                f"the project is {locked.status}; it cannot be {PAST_TENSE[action]}"
            )
        locked.status, locked.status_reason = to, reason[:300]
        locked.status_changed_at = timezone.now()
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save()
        record_event(
            event_type=event, actor=by, target=locked, project_id=locked.pk,
            data={"reason": reason[:200]} if reason else {},
        )  # fmt: skip
        if to in ENDED:
            for membership in locked.memberships.filter(removed_at__isnull=True):
                for permission in (policy.PROJECT_DATA, policy.PROJECT_VIEW):
                    if to != S.CLOSED and permission == policy.PROJECT_VIEW:
                        continue  # members still see an expired or revoked project's record
                    _revoke(locked, membership.user, permission, by=by)
    return locked


def count_released_outputs(*, project: Project, change: int) -> None:
    """The register's count of released files: output checking adds a release's files and
    takes a revoked one's away, inside its own audited transaction (a building block)."""
    with transaction.atomic(), governed_writes(Project):
        Project.objects.filter(pk=project.pk).update(
            released_outputs=F("released_outputs") + change
        )


def _require_text(value: str, field_name: str, message: str) -> str:
    if not value.strip():
        raise ValidationError(message, {field_name: [message]})
    return value.strip()


def suspend_project(*, project: Project, reason: str, by: User) -> Project:
    """Pause all data access (reason required). Event: project.suspended."""
    policy.check_manage_project(by, project)
    return _transition(
        project, "suspend", by=by, reason=_require_text(reason, "reason", "Give the reason.")
    )


def resume_project(*, project: Project, by: User, today: date | None = None) -> Project:
    """Restore a suspended project. Refused (InvalidTransition) while its end date has
    passed or an s251, REC or DSPT date has lapsed: record the renewal first.
    Event: project.resumed."""
    policy.check_manage_project(by, project)
    project = Project.objects.get(pk=project.pk)  # the stored dates, not the caller's copy
    today = today or timezone.localdate()
    lapsed = [label for name, label in COMPLIANCE_DATES.items()
              if getattr(project, name) is not None and getattr(project, name) < today]  # fmt: skip
    if project.end_date < today:
        lapsed.insert(0, "the end date")
    if lapsed:
        raise InvalidTransition(f"record the renewal first: {', '.join(lapsed)} has lapsed")
    return _transition(project, "resume", by=by, reason="")


def update_compliance_dates(*, project: Project, by: User, **dates: date | None) -> Project:
    """Record renewed s251, REC or DSPT dates (IG). Event: project.compliance_updated."""
    policy.check_manage_project(by, project)
    unknown = set(dates) - set(COMPLIANCE_DATES)
    if unknown or not dates:
        errors = {name: ["Not a compliance date."] for name in unknown}
        raise ValidationError("no compliance dates", errors or {"dates": ["Give a date."]})
    with transaction.atomic(durable=True), governed_writes(Project):
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if locked.status in ENDED:
            raise InvalidTransition(f"the project is {locked.status}")
        for name, value in dates.items():
            setattr(locked, name, value)
        locked.save()
        record_event(
            event_type=EventType.PROJECT_COMPLIANCE_UPDATED, actor=by, target=locked,
            project_id=locked.pk,
            data={name: value.isoformat() if value else None for name, value in dates.items()},
        )  # fmt: skip
    return locked


def revoke_project(*, project: Project, reason: str, by: User) -> Project:
    """End access for good (reason required). Events: project.revoked, and
    project.permission_revoked per data grant."""
    policy.check_manage_project(by, project)
    return _transition(
        project, "revoke", by=by, reason=_require_text(reason, "reason", "Give the reason.")
    )


def expire_project(*, project: Project, by: User, today: date | None = None) -> Project:
    """The end date has passed: only the system (the compliance clock) expires a project,
    and only after its end date (IG revokes or suspends instead). Raises PermissionDenied
    for anyone else, InvalidTransition before the end date. Event: project.expired."""
    policy.check_manage_project(by, project)
    if not getattr(by, "is_system", False):
        raise PermissionDenied("projects expire by the clock; revoke or suspend instead")
    today = today or timezone.localdate()
    if Project.objects.get(pk=project.pk).end_date >= today:
        raise InvalidTransition("the project's end date has not passed")
    return _transition(project, "expire", by=by, reason="the end date has passed")


def close_project(*, project: Project, attestation: str, by: User) -> Project:
    """Close with a destruction attestation: access revoked, extracts deleted.
    Events: project.closed, project.permission_revoked, data.extract_deleted."""
    policy.check_manage_project(by, project)
    attestation = _require_text(
        attestation, "attestation", "Record how and when the data was destroyed."
    )
    closed = _transition(
        project, "close", by=by, reason="closed", destruction_attestation=attestation
    )
    system = get_system_user()
    for extract in Extract.objects.filter(project_id=closed.pk, deleted_at__isnull=True):
        extracts.delete_extract(extract=extract, by=system, reason="project closed")
    return closed


# --- The compliance clock ---------------------------------------------------------------
@dataclass
class ComplianceRun:
    expired: list[int] = field(default_factory=list)
    suspended: list[int] = field(default_factory=list)
    members_suspended: int = 0
    members_reinstated: int = 0
    reminders: int = 0
    extracts_requested: int = 0
    extracts_deleted: int = 0


def run_compliance(*, today: date, by: User | None = None) -> ComplianceRun:
    """Expire projects past their end date; suspend projects whose s251, REC or DSPT date
    has lapsed; pause members whose accreditation lapsed (and restore them when it is
    current again); remind members and IG before each date. Idempotent for a day."""
    by = by or get_system_user()
    run = ComplianceRun()
    live = Project.objects.filter(status__in=[S.ACTIVE, S.SUSPENDED])
    for project in live.filter(end_date__lt=today):
        expire_project(project=project, by=by, today=today)
        run.expired.append(project.pk)
    for project in Project.objects.filter(status=S.ACTIVE):
        lapsed = [
            label
            for name, label in COMPLIANCE_DATES.items()
            if getattr(project, name) is not None and getattr(project, name) < today
        ]
        if lapsed:
            suspend_project(project=project, reason=f"lapsed: {', '.join(lapsed)}", by=by)
            run.suspended.append(project.pk)
    for membership in ProjectMembership.objects.filter(
        removed_at__isnull=True, accesses_data=True, project__status=S.ACTIVE
    ).select_related("user", "project"):
        current = all(
            is_accredited(membership.user, on=today, kind=kind)
            for kind in policy.DATA_ACCESS_ACCREDITATIONS
        )
        if not current and membership.suspended_at is None:
            _pause_member(membership, reason="accreditation lapsed", by=by)
            run.members_suspended += 1
        elif current and membership.suspension_reason == "accreditation lapsed":
            _restore_member(membership, by=by)
            run.members_reinstated += 1
    run.reminders = _send_reminders(today=today, by=by)
    run.extracts_requested = _request_missing_extracts()
    run.extracts_deleted = _delete_extracts_of_closed_projects(by=by)
    return run


def _delete_extracts_of_closed_projects(*, by: User) -> int:
    """Finish a closure whose extract deletion failed after the project was closed."""
    left = Extract.objects.filter(
        deleted_at__isnull=True,
        project_id__in=Project.objects.filter(status=S.CLOSED).values("pk"),
    )
    for extract in left:
        extracts.delete_extract(extract=extract, by=by, reason="project closed")
    return len(left)


def _request_missing_extracts() -> int:
    """Queue the extract build again for live projects that lack an extract: the request
    made at approval is lost if the broker was down then (the build is idempotent)."""
    have_both = (
        Extract.objects.filter(deleted_at__isnull=True)
        .values("project_id")
        .annotate(kinds=Count("is_dummy", distinct=True))
        .filter(kinds=2)
        .values("project_id")
    )
    missing = Project.objects.filter(status=S.ACTIVE).exclude(pk__in=have_both)
    requested = 0
    for project_id in missing.values_list("pk", flat=True):
        try:
            _enqueue_extracts(project_id)
        except (KombuOperationalError, OSError) as error:  # the broker is down: next run
            logger.error("could not queue the extracts of project %s: %s", project_id,
                         type(error).__name__)  # fmt: skip
            break
        requested += 1
    return requested


def _pause_member(membership: ProjectMembership, *, reason: str, by: User) -> None:
    with transaction.atomic(durable=True), governed_writes(ProjectMembership):
        membership.suspended_at, membership.suspension_reason = timezone.now(), reason
        membership.save()
        record_event(
            event_type=EventType.PROJECT_MEMBER_SUSPENDED,
            actor=by,
            target=membership.project,
            project_id=membership.project_id,
            data={"user_id": membership.user_id, "reason": reason},
        )
    notifications.notify_user(
        user=membership.user,
        subject=f"Your access to project {membership.project_id} is paused",
        body=f"Your access to “{membership.project.title}” is paused: {reason}. It returns "
        "when your accreditation is recorded as current.",
    )


def _restore_member(membership: ProjectMembership, *, by: User) -> None:
    with transaction.atomic(durable=True), governed_writes(ProjectMembership):
        membership.suspended_at, membership.suspension_reason = None, ""
        membership.save()
        record_event(
            event_type=EventType.PROJECT_MEMBER_REINSTATED, actor=by, target=membership.project,
            project_id=membership.project_id, data={"user_id": membership.user_id},
        )  # fmt: skip


def _send_reminders(*, today: date, by: User) -> int:
    """One reminder per date and threshold (the nearest threshold reached), never twice."""
    sent = 0
    dates = {"end_date": "access ends", **COMPLIANCE_DATES}
    for project in Project.objects.filter(status=S.ACTIVE):
        for name, label in dates.items():
            when = getattr(project, name)
            if when is None or when < today:
                continue
            reached = [d for d in settings.SDE_REMINDER_DAYS if today >= when - timedelta(days=d)]
            if not reached:
                continue
            keys = [f"{name}:{d}:{when.isoformat()}" for d in sorted(reached)]
            if keys[0] in project.reminders_sent:
                continue
            _remind(project, label=label, when=when, keys=keys, by=by)
            sent += 1
    return sent


def _remind(project: Project, *, label: str, when: date, keys: list[str], by: User) -> None:
    """Send a reminder; ``keys`` (the nearest threshold first) are marked sent."""
    with transaction.atomic(durable=True), governed_writes(Project):
        locked = Project.objects.select_for_update().get(pk=project.pk)
        locked.reminders_sent = sorted({*locked.reminders_sent, *keys})
        locked.save(update_fields=["reminders_sent"])
        project.reminders_sent = locked.reminders_sent
        name, days, _ = keys[0].split(":")
        record_event(
            event_type=EventType.PROJECT_REMINDER_SENT, actor=by, target=locked,
            project_id=locked.pk, data={"date": name, "days_before": int(days),
                                        "on": when.isoformat()},
        )  # fmt: skip
    subject = f"Project {project.pk}: {label} on {when:%d %B %Y}"
    body = f"For “{project.title}”, {label} on {when:%d %B %Y}. Renew it in time or access stops."
    for membership in project.memberships.filter(removed_at__isnull=True).select_related("user"):
        notifications.notify_user(user=membership.user, subject=subject, body=body)
    notifications.notify_role(role=Role.IG_OFFICER, subject=subject, body=body)
