"""Projects: who sees them, manages them and uses their data."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import QuerySet

from sde.exceptions import NotFound, PermissionDenied
from sde.identity.models import Accreditation, User
from sde.identity.roles import Capability, Role
from sde.identity.selectors import current_roles
from sde.policy.base import (
    _active,
    _require,
    has_capability,
    objects_with_permission,
    user_has_object_permission,
)

# --- Projects ----------------------------------------------------------------------------
PROJECT_VIEW = "sde.view_project"
PROJECT_DATA = "sde.access_project_data"
PROJECT_FIELD = "sde.read_project_field"  # on each ProjectField (an approved field)
# The project's approvals with an end date, and what each is called.
PROJECT_COMPLIANCE_DATES = {
    "s251_expiry": "s251 support",
    "rec_expiry": "the ethics (REC) approval",
    "dspt_expiry": "an organisation's DSPT status",
}
# Each member who uses data needs both current (application-form.md, section B).
DATA_ACCESS_ACCREDITATIONS = (
    Accreditation.Kind.SAFE_RESEARCHER,
    Accreditation.Kind.DATA_SECURITY,
)


def user_oversees_projects(user: Any) -> bool:
    """IG officers see every project (they review, suspend and audit them)."""
    return has_capability(user, Capability.SUSPEND_PROJECTS)


def visible_projects_for(user: Any) -> QuerySet[Any]:
    from sde.projects.models import Project

    if user_oversees_projects(user):
        return Project.objects.all()
    return objects_with_permission(user, PROJECT_VIEW, Project.objects.all())


def check_view_project(user: Any, project: Any) -> None:
    """Members and IG; anyone else gets 404 (another project's existence is not shown)."""
    if not visible_projects_for(user).filter(pk=project.pk).exists():
        raise NotFound("no such project")


def check_create_project(user: Any) -> None:
    """Projects are created by approving an access request (IG), or by the system."""
    if getattr(user, "is_system", False):
        return
    _require(user, Capability.REVIEW_ACCESS_REQUESTS)


def check_manage_project(user: Any, project: Any) -> None:
    """Suspend, resume, revoke, close, change members: IG officers (or the system)."""
    if getattr(user, "is_system", False):
        return
    check_view_project(user, project)
    _require(user, Capability.SUSPEND_PROJECTS)


def check_grant_project_data(by: Any, member: User) -> None:
    """Nobody grants themselves access to data, and IG officers never see row-level data
    (DESIGN.md roles), so neither may be made a data-using member."""
    if member.pk == by.pk:
        raise PermissionDenied("nobody grants themselves access to a project's data")
    if Role.IG_OFFICER in current_roles(member):
        raise PermissionDenied("IG officers may not see row-level data")


def project_data_refusal(user: Any, project: Any, *, today: date) -> str | None:
    """Why ``user`` may not use ``project``'s data on ``today`` (None: they may). Every
    condition is checked at the moment of use, so access ends by itself at the end date,
    on suspension, revocation or removal, and when an accreditation lapses."""
    from sde.identity.selectors import is_accredited

    if not _active(user):
        return "you are not signed in"
    if project.status != "active":
        return f"the project is {project.status}"
    if not project.start_date <= today <= project.end_date:
        return "the project's access period has not started or has ended"
    lapsed_dates = [
        label
        for name, label in PROJECT_COMPLIANCE_DATES.items()
        if getattr(project, name) is not None and getattr(project, name) < today
    ]
    if lapsed_dates:
        return "the project's approval has lapsed: " + ", ".join(lapsed_dates)
    membership = project.memberships.filter(user=user, removed_at__isnull=True).first()
    if membership is None or not membership.accesses_data:
        return "you are not a member of this project who uses its data"
    if membership.suspended_at is not None:
        return f"your access is paused: {membership.suspension_reason}"
    if Role.IG_OFFICER in current_roles(user):
        return "IG officers may not see row-level data"
    lapsed = [k for k in DATA_ACCESS_ACCREDITATIONS if not is_accredited(user, on=today, kind=k)]
    if lapsed:
        return "your training is not current: " + ", ".join(
            Accreditation.Kind(kind).label for kind in lapsed
        )
    if not user_has_object_permission(user, PROJECT_DATA, project):
        return "you have not been granted access to this project's data"
    missing = fields_not_granted(user, project)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        return f"you have not been granted every approved field: {', '.join(missing[:5])}{more}"
    return None


def fields_not_granted(user: Any, project: Any) -> list[str]:
    """The project's approved fields ("dataset.field") on which ``user`` does not hold
    ``read_project_field``; the extract holds exactly the approved fields, so using it
    needs every one."""
    approved = project.fields.select_related("field__dataset")
    granted = set(
        objects_with_permission(user, PROJECT_FIELD, approved).values_list("pk", flat=True)
    )
    return sorted(f.label for f in approved if f.pk not in granted)


def check_use_project_data(user: Any, project: Any, *, today: date) -> None:
    check_view_project(user, project)
    refusal = project_data_refusal(user, project, today=today)
    if refusal is not None:
        raise PermissionDenied(refusal)


def _is_project_member(user: Any, project: Any) -> bool:
    """Member now or ever: a former member is not independent of the project's outputs."""
    return bool(project.memberships.filter(user=user).exists())
