"""The permission policy: every authorisation rule lives here.

``check_<verb>_<noun>(user, obj)`` raises PermissionDenied (or NotFound when the user
may not even see the object); ``user_can_<verb>_<noun>(user, obj)`` returns a bool for
templates; ``visible_<nouns>_for(user)`` is the queryset behind every list and lookup.
django-guardian is imported here and nowhere else; object permissions never honour
superuser status or global permissions.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Model, Q, QuerySet
from guardian.shortcuts import assign_perm, get_objects_for_user, remove_perm

from sde.exceptions import NotFound, PermissionDenied
from sde.identity.models import Accreditation, Organisation, User
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


# --- Data catalogue and ingestion -------------------------------------------------------
def user_can_manage_datasets(user: Any) -> bool:
    return has_capability(user, Capability.MANAGE_DATASETS)


def check_manage_datasets(user: Any) -> None:
    """Data custodians; and the system actor, for operators running ``manage.py ingest``
    on the server (shell access to the platform is custodian-level trust)."""
    if getattr(user, "is_system", False):
        return
    _require(user, Capability.MANAGE_DATASETS)


def user_can_read_catalogue(user: Any) -> bool:
    # Metadata only, never rows: every signed-in person may read the catalogue.
    return _active(user)


# --- Opt-out register and extracts ------------------------------------------------------
def user_can_manage_optouts(user: Any) -> bool:
    return has_capability(user, Capability.MANAGE_OPT_OUTS)


def check_manage_optouts(user: Any) -> None:
    """IG officers only. Anyone else gets 404: researchers never learn opt-out data."""
    if not user_can_manage_optouts(user):
        raise NotFound("no such page")


def user_can_decide_optout_change(user: Any, change: Any) -> bool:
    return user_can_manage_optouts(user) and change.proposed_by_id != user.pk


def check_decide_optout_change(user: Any, change: Any) -> None:
    """A second IG officer: never the one who proposed the change."""
    check_manage_optouts(user)
    if change.proposed_by_id == user.pk:
        raise PermissionDenied("a second IG officer must decide a change you proposed")


def check_withdraw_optout_change(user: Any, change: Any) -> None:
    check_manage_optouts(user)
    if change.proposed_by_id != user.pk:
        raise PermissionDenied("only the IG officer who proposed a change can withdraw it")


def check_build_extract(user: Any) -> None:
    """Extracts are provisioned by data custodians, or by the system for an approved
    project; a researcher never builds (or chooses the scope of) their own extract."""
    check_manage_datasets(user)


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


# --- Access requests ---------------------------------------------------------------------
# The workflow lives in ``access_requests``; the rules about who may do what live here, over
# the objects it passes in (the core does not import the workflow apps).
def user_reviews_access_requests(user: Any) -> bool:
    return has_capability(user, Capability.REVIEW_ACCESS_REQUESTS)


def user_signs_off_public_interest(user: Any) -> bool:
    return has_capability(user, Capability.SIGN_OFF_PUBLIC_INTEREST)


def visible_access_requests(user: Any, requests: QuerySet[Any]) -> QuerySet[Any]:
    """Applicants see their own requests; IG officers and Caldicott Guardians every request
    once submitted (one never submitted, even if withdrawn, is the applicant's alone)."""
    if not _active(user):
        return requests.none()
    mine = Q(applicant=user)
    if user_reviews_access_requests(user) or user_signs_off_public_interest(user):
        return requests.filter(mine | Q(first_submitted_at__isnull=False))
    return requests.filter(mine)


def check_view_access_request(user: Any, request: Any) -> None:
    if (
        not visible_access_requests(user, type(request).objects.all())
        .filter(pk=request.pk)
        .exists()
    ):
        raise NotFound("no such access request")


def check_apply_for_access(user: Any) -> None:
    _require(user, Capability.APPLY_FOR_ACCESS)


def check_applicant(user: Any, request: Any) -> None:
    """Only the applicant edits, submits, withdraws and attaches."""
    check_view_access_request(user, request)
    if request.applicant_id != user.pk:
        raise PermissionDenied("only the applicant can do this")


def reviewer_conflict(
    user: Any, *, applicant_id: int, member_ids: set[int], organisation_ids: set[int],
    exclude_organisations: bool,
) -> str | None:  # fmt: skip
    """Why ``user`` is not independent of a request (None: they are): they applied, are on
    its team or project, or (where configured) belong to one of its organisations."""
    if user.pk == applicant_id:
        return "you applied for it"
    if user.pk in member_ids:
        return "you are on its team"
    if exclude_organisations and user.memberships.filter(organisation_id__in=organisation_ids):
        return "you belong to one of its organisations"
    return None


def check_decide_access_request(user: Any, request: Any, *, conflict: str | None) -> None:
    """Review actions: an IG officer independent of the request."""
    check_view_access_request(user, request)
    _require(user, Capability.REVIEW_ACCESS_REQUESTS)
    if conflict:
        raise PermissionDenied(f"you cannot review this request: {conflict}")


def check_sign_off_public_interest(user: Any, request: Any, *, conflict: str | None) -> None:
    check_view_access_request(user, request)
    _require(user, Capability.SIGN_OFF_PUBLIC_INTEREST)
    if conflict:
        raise PermissionDenied(f"you cannot sign this request off: {conflict}")


# --- Release requests (outputs) ---------------------------------------------------------
def _is_project_member(user: Any, project: Any) -> bool:
    """Member now or ever: a former member is not independent of the project's outputs."""
    return bool(project.memberships.filter(user=user).exists())


def user_checks_outputs(user: Any) -> bool:
    return has_capability(user, Capability.CHECK_OUTPUTS)


def visible_release_requests(user: Any, requests: QuerySet[Any]) -> QuerySet[Any]:
    """Members see their projects' requests; output checkers see submitted requests of
    projects they are not (and were not) members of; IG officers see all (oversight and
    revocation); nobody else sees any."""
    if not _active(user):
        return requests.none()
    from django.db.models import Q

    visible = Q(project__in=objects_with_permission(user, PROJECT_VIEW, _projects()))
    if user_oversees_projects(user):
        return requests
    if user_checks_outputs(user):
        reviewable = ~Q(status="draft") & ~Q(project__memberships__user=user)
        visible |= reviewable
    return requests.filter(visible).distinct()


def _projects() -> QuerySet[Any]:
    from sde.projects.models import Project

    return Project.objects.all()


def check_view_release_request(user: Any, request: Any) -> None:
    # The core imports no workflow app: the request's own model gives the queryset.
    if not visible_release_requests(user, type(request).objects.filter(pk=request.pk)).exists():
        raise NotFound("no such release request")


def check_request_release(user: Any, project: Any, *, today: date) -> None:
    """Requesting a release is using the project's outputs: a data-using member now."""
    check_use_project_data(user, project, today=today)


def check_release_author(user: Any, request: Any, *, today: date) -> None:
    """Only the author changes, submits and withdraws a request, while they may still
    use the project's data."""
    check_view_release_request(user, request)
    if request.created_by_id != user.pk:
        raise PermissionDenied("only the researcher who made the request can change it")
    check_use_project_data(user, request.project, today=today)


def release_reviewer_conflict(user: Any, request: Any) -> str | None:
    if user.pk == request.created_by_id:
        return "you made the request"
    if _is_project_member(user, request.project):
        return "you are a member of the project"
    return None


def check_review_release(user: Any, request: Any) -> None:
    """An output checker independent of the project (never a member, not the author)."""
    check_view_release_request(user, request)
    _require(user, Capability.CHECK_OUTPUTS)
    conflict = release_reviewer_conflict(user, request)
    if conflict:
        raise PermissionDenied(f"you cannot review this request: {conflict}")


def check_download_release(user: Any, request: Any) -> None:
    """Released files go to the project's current members."""
    check_view_release_request(user, request)
    if not request.project.memberships.filter(user=user, removed_at__isnull=True).exists():
        raise NotFound("no such release")


def check_revoke_release(user: Any, request: Any) -> None:
    check_view_release_request(user, request)
    _require(user, Capability.SUSPEND_PROJECTS)


# --- Re-identification for direct care ----------------------------------------------
# Only planning and direct care projects' cohorts: research never leads back to a person.
REIDENTIFIABLE_PURPOSES = ("planning", "direct_care")
SIGN_OFF_CAPABILITIES = {
    "ig": Capability.REVIEW_ACCESS_REQUESTS,
    "caldicott": Capability.SIGN_OFF_REIDENTIFICATION,
}


def user_requests_reidentification(user: Any) -> bool:
    return has_capability(user, Capability.REQUEST_REIDENTIFICATION)


def practices_for(user: Any) -> QuerySet[Organisation]:
    """The GP practices a clinician may ask about: those they belong to now."""
    if not user_requests_reidentification(user):
        return Organisation.objects.none()
    return Organisation.objects.filter(
        kind=Organisation.Kind.GP_PRACTICE, memberships__user=user
    ).distinct()


def cohort_refusal(cohort: Any) -> str | None:
    """Why nobody may ask to re-identify this cohort (None: they may)."""
    project = cohort.project
    if (project.scope or {}).get("purpose") not in REIDENTIFIABLE_PURPOSES:
        return "it belongs to a research project, whose cohorts are never re-identified"
    if cohort.deleted_at is not None:
        return "it has been deleted"
    if cohort.extract.is_dummy:
        return "it was found in dummy data"
    if project.status != "active":
        return f"its project is {project.get_status_display().lower()}"
    return None


def visible_cohorts_for_reidentification(user: Any, cohorts: QuerySet[Any]) -> QuerySet[Any]:
    """Clinicians see the cohorts of active planning and direct care projects found in
    real data; nobody else sees any here (members see theirs in the workspace)."""
    if not user_requests_reidentification(user):
        return cohorts.none()
    return cohorts.filter(
        project__scope__purpose__in=REIDENTIFIABLE_PURPOSES,
        project__status="active",
        deleted_at__isnull=True,
        extract__is_dummy=False,
    )


def check_request_reidentification(user: Any, cohort: Any, practice: Any) -> None:
    if not visible_cohorts_for_reidentification(user, type(cohort).objects.filter(pk=cohort.pk)):
        raise NotFound("no such cohort")
    refusal = cohort_refusal(cohort)
    if refusal:
        raise PermissionDenied(f"this cohort cannot be re-identified: {refusal}")
    if practice is None or not practices_for(user).filter(pk=practice.pk).exists():
        raise PermissionDenied("you can ask only about patients of a practice you work at")


def reidentification_sign_off_roles(user: Any) -> list[str]:
    """The sign-offs ("ig", "caldicott") this person's roles let them give."""
    return [role for role, cap in SIGN_OFF_CAPABILITIES.items() if has_capability(user, cap)]


def visible_reidentification_requests(user: Any, requests: QuerySet[Any]) -> QuerySet[Any]:
    """Clinicians see their own requests; IG officers and Caldicott Guardians see all
    (to decide and oversee); nobody else sees any."""
    if not _active(user):
        return requests.none()
    if reidentification_sign_off_roles(user):
        return requests
    if user_requests_reidentification(user):
        return requests.filter(requested_by=user)
    return requests.none()


def check_view_reidentification_request(user: Any, request: Any) -> None:
    model = type(request)
    if not visible_reidentification_requests(user, model.objects.filter(pk=request.pk)):
        raise NotFound("no such re-identification request")


def reidentification_conflict(user: Any, request: Any) -> str | None:
    """Why this person may not sign off this request (None: no conflict)."""
    if user.pk == request.requested_by_id:
        return "you made the request"
    if _is_project_member(user, request.project):
        return "you are a member of the project that found the cohort"
    if request.decisions.filter(decided_by=user).exists():
        return "you have signed it off already: the other sign-off must be someone else's"
    return None


def check_sign_off_reidentification(user: Any, request: Any, role: str) -> None:
    """An IG officer's or the Caldicott Guardian's sign-off: two different people, neither
    the requester nor a member of the cohort's project."""
    check_view_reidentification_request(user, request)
    if role not in SIGN_OFF_CAPABILITIES:
        raise PermissionDenied("no such sign-off")
    _require(user, SIGN_OFF_CAPABILITIES[role])
    conflict = reidentification_conflict(user, request)
    if conflict:
        raise PermissionDenied(f"you cannot sign off this request: {conflict}")


def check_withdraw_reidentification(user: Any, request: Any) -> None:
    check_view_reidentification_request(user, request)
    if request.requested_by_id != user.pk:
        raise PermissionDenied("only the clinician who asked can withdraw the request")


def check_obtain_reidentified_list(user: Any, request: Any) -> None:
    """The list goes to the clinician who asked, while they are still a clinician at the
    practice; to everyone else (IG and the Caldicott Guardian included) it does not exist."""
    if (
        request.requested_by_id != getattr(user, "pk", None)
        or not practices_for(user).filter(pk=request.practice_id).exists()
    ):
        raise NotFound("no such list")


# --- API tokens --------------------------------------------------------------------------
def check_manage_api_token(user: Any, owner: User) -> None:
    if not _active(user) or user.pk != owner.pk:
        raise NotFound("no such token")


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
