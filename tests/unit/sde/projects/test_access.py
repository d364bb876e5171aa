"""Who sees a project and who may use its data (the project functions of sde/policy.py).

Access is decided at the moment of use (ADR 0006), so every refusal here is reached
without the compliance clock running, except a paused member (pausing is the clock's
job). Dates are fixed and passed as ``today``; no clock is frozen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Permission

from sde import policy
from sde.audit.services import get_system_user
from sde.exceptions import NotFound, PermissionDenied
from sde.identity import services as identity
from sde.identity.models import Accreditation, User
from sde.identity.roles import Role
from sde.projects import services
from sde.projects.models import Project
from sde.projects.services import MemberSpec
from tests import scenarios
from tests.unit.sde.projects.builders import (
    END,
    START,
    TODAY,
    TRAINED_UNTIL,
    S,
    accredit,
    drive_to,
    researcher,
)

pytestmark = pytest.mark.django_db

SR, DS = Accreditation.Kind.SAFE_RESEARCHER, Accreditation.Kind.DATA_SECURITY
ENDED_PERIOD = "the project's access period has not started or has ended"
NOT_MEMBER = "you are not a member of this project who uses its data"


def test_both_accreditations_are_needed_to_use_data():
    assert set(policy.DATA_ACCESS_ACCREDITATIONS) == {SR, DS}


def _fresh(project: Project) -> Project:
    return Project.objects.get(pk=project.pk)


# =========================================================================================
# project_data_refusal: one row per reason access is refused
# =========================================================================================
@dataclass
class Ctx:
    make_project: Callable[..., Project]
    ig: User
    member: User


def _added(ctx: Ctx, person: User, *, accesses_data: bool = True) -> tuple[User, Project]:
    project = ctx.make_project()
    spec = MemberSpec(person, "analyst", accesses_data)
    services.add_member(project=project, member=spec, by=ctx.ig)
    return person, project


def _in_status(status: str) -> Callable[[Ctx], tuple[User, Project, date]]:
    return lambda ctx: (ctx.member, drive_to(ctx.make_project(), status, ig=ctx.ig), TODAY)


def _on(day: date) -> Callable[[Ctx], tuple[User, Project, date]]:
    return lambda ctx: (ctx.member, ctx.make_project(), day)


def _removed(ctx: Ctx) -> tuple[User, Project, date]:
    project = ctx.make_project()
    services.remove_member(project=project, user=ctx.member, by=ctx.ig)
    return ctx.member, project, TODAY


def _paused(ctx: Ctx) -> tuple[User, Project, date]:
    """Paused by the clock when training lapsed; a new record alone does not un-pause."""
    person, project = _added(ctx, researcher(expires_on=TODAY - timedelta(days=1)))
    assert services.run_compliance(today=TODAY).members_suspended == 1
    accredit(person, issued_on=TODAY, expires_on=TODAY + timedelta(days=365))
    return person, project, TODAY


def _trained(**accreditation: Any) -> Callable[[Ctx], tuple[User, Project, date]]:
    def arrange(ctx: Ctx) -> tuple[User, Project, date]:
        person = scenarios.person(Role.RESEARCHER)
        for kind, (issued_on, expires_on) in accreditation.items():
            accredit(person, kinds=(Accreditation.Kind(kind),), issued_on=issued_on,
                     expires_on=expires_on)  # fmt: skip
        return (*_added(ctx, person), TODAY)

    return arrange


def _without_object_permission(*, global_instead: bool) -> Callable[..., Any]:
    def arrange(ctx: Ctx) -> tuple[User, Project, date]:
        project = ctx.make_project()
        policy.revoke_object_permission(
            user=ctx.member, permission=policy.PROJECT_DATA, obj=project
        )
        if global_instead:
            ctx.member.user_permissions.add(Permission.objects.get(codename="access_project_data"))
        return ctx.member, project, TODAY

    return arrange


def _without_field_permission(*labels: str) -> Callable[[Ctx], tuple[User, Project, date]]:
    def arrange(ctx: Ctx) -> tuple[User, Project, date]:
        project = ctx.make_project()
        fields = [f for f in project.fields.select_related("field__dataset") if f.label in labels]
        for field in fields:
            policy.revoke_object_permission(user=ctx.member, permission=policy.PROJECT_FIELD,
                                            obj=field)  # fmt: skip
        return ctx.member, project, TODAY

    return arrange


def _became_ig_officer(ctx: Ctx) -> tuple[User, Project, date]:
    project = ctx.make_project()
    identity.grant_role(user=ctx.member, role=Role.IG_OFFICER, by=scenarios.administrator())
    return User.objects.get(pk=ctx.member.pk), project, TODAY


def _account_suspended(ctx: Ctx) -> tuple[User, Project, date]:
    project = ctx.make_project()
    identity.suspend_account(user=ctx.member, by=scenarios.administrator(), reason="left")
    return User.objects.get(pk=ctx.member.pk), project, TODAY


CURRENT = (date(2025, 1, 1), TRAINED_UNTIL)
LAPSED = (date(2025, 1, 1), TODAY - timedelta(days=1))
NOT_YET = (TODAY + timedelta(days=1), TRAINED_UNTIL)
# id -> (arrange, refusal, what check_use_project_data raises)
REFUSALS: dict[str, tuple[Callable[[Ctx], tuple[User, Project, date]], str | None, Any]] = {
    "accredited-member-active-within-dates": (_on(TODAY), None, None),
    "first-day": (_on(START), None, None),
    "last-day": (_on(END), None, None),
    "suspended": (_in_status(S.SUSPENDED), "the project is suspended", PermissionDenied),
    "expired": (_in_status(S.EXPIRED), "the project is expired", PermissionDenied),
    "end-date-passed-before-the-clock-runs": (
        _on(END + timedelta(days=1)), ENDED_PERIOD, PermissionDenied
    ),
    "revoked": (_in_status(S.REVOKED), "the project is revoked", PermissionDenied),
    "s251-lapsed-before-the-clock-runs": (
        lambda ctx: (ctx.member, ctx.make_project(s251_expiry=TODAY - timedelta(days=1)), TODAY),
        "the project's approval has lapsed: s251 support",
        PermissionDenied,
    ),
    "rec-and-dspt-lapsed": (
        lambda ctx: (
            ctx.member,
            ctx.make_project(rec_expiry=TODAY - timedelta(days=1), dspt_expiry=START),
            TODAY,
        ),
        "the project's approval has lapsed: the ethics (REC) approval, "
        "an organisation's DSPT status",
        PermissionDenied,
    ),
    "s251-ends-today": (
        lambda ctx: (ctx.member, ctx.make_project(s251_expiry=TODAY), TODAY), None, None
    ),
    "closed": (_in_status(S.CLOSED), "the project is closed", NotFound),
    "before-the-start-date": (_on(START - timedelta(days=1)), ENDED_PERIOD, PermissionDenied),
    "non-member": (
        lambda ctx: (researcher(), ctx.make_project(), TODAY), NOT_MEMBER, NotFound
    ),
    "member-who-does-not-use-data": (
        lambda ctx: (*_added(ctx, researcher(), accesses_data=False), TODAY),
        NOT_MEMBER,
        PermissionDenied,
    ),
    "removed-member": (_removed, NOT_MEMBER, NotFound),
    "paused-member": (_paused, "your access is paused: accreditation lapsed", PermissionDenied),
    "lapsed-safe-researcher": (
        _trained(safe_researcher=LAPSED, data_security=CURRENT),
        "your training is not current: Safe researcher training",
        PermissionDenied,
    ),
    "lapsed-data-security": (
        _trained(safe_researcher=CURRENT, data_security=LAPSED),
        "your training is not current: Data security awareness training",
        PermissionDenied,
    ),
    "both-lapsed": (
        _trained(safe_researcher=LAPSED, data_security=LAPSED),
        "your training is not current: Safe researcher training, Data security awareness training",
        PermissionDenied,
    ),
    "never-had-data-security": (
        _trained(safe_researcher=CURRENT),
        "your training is not current: Data security awareness training",
        PermissionDenied,
    ),
    "training-not-yet-valid": (
        _trained(safe_researcher=NOT_YET, data_security=CURRENT),
        "your training is not current: Safe researcher training",
        PermissionDenied,
    ),
    "no-object-permission": (
        _without_object_permission(global_instead=False),
        "you have not been granted access to this project's data",
        PermissionDenied,
    ),
    "a-global-permission-is-not-an-object-permission": (
        _without_object_permission(global_instead=True),
        "you have not been granted access to this project's data",
        PermissionDenied,
    ),
    "one-field-permission-revoked": (
        _without_field_permission("patients.sex"),
        "you have not been granted every approved field: patients.sex",
        PermissionDenied,
    ),
    "two-field-permissions-revoked": (
        _without_field_permission("patients.sex", "gp-events.date"),
        "you have not been granted every approved field: gp-events.date, patients.sex",
        PermissionDenied,
    ),
    "member-who-became-an-ig-officer": (
        _became_ig_officer, "IG officers may not see row-level data", PermissionDenied
    ),
    "account-suspended": (_account_suspended, "you are not signed in", NotFound),
    "system-user": (
        lambda ctx: (get_system_user(), ctx.make_project(), TODAY),
        "you are not signed in",
        NotFound,
    ),
    "anonymous": (
        lambda ctx: (AnonymousUser(), ctx.make_project(), TODAY),
        "you are not signed in",
        NotFound,
    ),
}  # fmt: skip


@pytest.mark.parametrize(("arrange", "refusal", "error"), REFUSALS.values(), ids=REFUSALS)
def test_project_data_refusal(make_project, ig, member, arrange, refusal, error):
    user, project, today = arrange(Ctx(make_project, ig, member))
    project = _fresh(project)

    assert policy.project_data_refusal(user, project, today=today) == refusal

    if error is None:
        policy.check_use_project_data(user, project, today=today)
        return
    with pytest.raises(error) as raised:
        policy.check_use_project_data(user, project, today=today)
    if error is PermissionDenied:  # the person sees the project, and is told why
        assert str(raised.value) == refusal


def test_access_ends_at_once_when_the_project_is_revoked(make_project, ig, member):
    project = make_project()
    assert policy.project_data_refusal(member, project, today=TODAY) is None

    revoked = services.revoke_project(project=project, reason="breach", by=ig)

    assert policy.project_data_refusal(member, revoked, today=TODAY) == "the project is revoked"
    assert not policy.user_has_object_permission(member, policy.PROJECT_DATA, project)
    # Even were the project reinstated by hand, the data permission is gone for good.
    revoked.status = S.ACTIVE
    assert policy.project_data_refusal(member, revoked, today=TODAY) == (
        "you have not been granted access to this project's data"
    )


def test_access_ends_at_once_when_training_lapses_even_before_the_clock_pauses_the_member(
    make_project, ig
):
    person = researcher(expires_on=TODAY)
    project = make_project(members=[MemberSpec(person, "analyst")])

    assert policy.project_data_refusal(person, project, today=TODAY) is None
    assert policy.project_data_refusal(person, project, today=TODAY + timedelta(days=1)) == (
        "your training is not current: Safe researcher training, Data security awareness training"
    )
    assert project.memberships.get().suspended_at is None


# =========================================================================================
# Visibility: denied means invisible
# =========================================================================================
def test_a_member_sees_only_their_own_projects(make_project, member):
    other_member = researcher()
    mine = make_project()
    theirs = make_project(members=[MemberSpec(other_member, "analyst")])
    both = make_project(
        members=[MemberSpec(member, "analyst"), MemberSpec(other_member, "student")]
    )

    assert set(policy.visible_projects_for(member)) == {mine, both}
    assert set(policy.visible_projects_for(other_member)) == {theirs, both}
    policy.check_view_project(member, mine)
    with pytest.raises(NotFound):
        policy.check_view_project(member, theirs)
    with pytest.raises(NotFound):
        policy.check_use_project_data(member, theirs, today=TODAY)
    policy.check_use_project_data(member, mine, today=TODAY)


def _superuser() -> User:
    person = researcher()
    User.objects.filter(pk=person.pk).update(is_superuser=True, is_staff=True)
    return User.objects.get(pk=person.pk)


def _global_permissions() -> User:
    person = researcher()
    person.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_project", "access_project_data"])
    )
    return User.objects.get(pk=person.pk)


def _suspended_ig() -> User:
    person = scenarios.person(Role.IG_OFFICER)
    identity.suspend_account(user=person, by=scenarios.administrator(), reason="left")
    return User.objects.get(pk=person.pk)


OUTSIDERS: dict[str, Callable[[User], Any]] = {
    "researcher_non_member": lambda custodian: researcher(),
    "data_custodian": lambda custodian: custodian,
    "output_checker": lambda custodian: scenarios.person(Role.OUTPUT_CHECKER),
    "caldicott_guardian": lambda custodian: scenarios.person(Role.CALDICOTT_GUARDIAN),
    "administrator": lambda custodian: scenarios.administrator(),
    "clinician": lambda custodian: scenarios.person(Role.CLINICIAN),
    "every_role_but_ig": lambda custodian: accredit(
        scenarios.person(*(r for r in Role if r not in (Role.IG_OFFICER, Role.ADMINISTRATOR)))
    ),
    "superuser": lambda custodian: _superuser(),
    "global_permissions": lambda custodian: _global_permissions(),
    "suspended_ig_officer": lambda custodian: _suspended_ig(),
    "system": lambda custodian: get_system_user(),
    "anonymous": lambda custodian: AnonymousUser(),
}


@pytest.mark.parametrize("outsider", list(OUTSIDERS))
def test_anyone_else_but_ig_finds_no_such_project(make_project, ig, custodian, outsider):
    projects = [drive_to(make_project(), status, ig=ig) for status in S.values]
    person = OUTSIDERS[outsider](custodian)

    assert list(policy.visible_projects_for(person)) == []
    assert policy.user_oversees_projects(person) is False
    for project in projects:
        with pytest.raises(NotFound):
            policy.check_view_project(person, project)
        with pytest.raises(NotFound):
            policy.check_use_project_data(person, project, today=TODAY)
        if outsider == "system":
            policy.check_manage_project(person, project)  # services act as the system
        else:
            with pytest.raises(NotFound):
                policy.check_manage_project(person, project)


def test_ig_officers_see_every_project_but_use_no_data(make_project, ig):
    projects = {drive_to(make_project(), status, ig=ig) for status in S.values}
    other_ig = scenarios.person(Role.IG_OFFICER)

    for officer in (ig, other_ig):
        assert set(policy.visible_projects_for(officer)) == projects
        assert policy.user_oversees_projects(officer)
        for project in projects:
            policy.check_view_project(officer, project)
            policy.check_manage_project(officer, project)
            with pytest.raises(PermissionDenied):
                policy.check_use_project_data(officer, _fresh(project), today=TODAY)


def test_after_closure_members_no_longer_see_the_project(make_project, ig, member):
    reader = researcher()
    project = make_project(
        members=[MemberSpec(member, "analyst"), MemberSpec(reader, "supervisor", False)]
    )

    services.close_project(project=project, attestation="destroyed", by=ig)

    for person in (member, reader):
        assert list(policy.visible_projects_for(person)) == []
        assert not policy.user_has_object_permission(person, policy.PROJECT_VIEW, project)
        with pytest.raises(NotFound):
            policy.check_view_project(person, project)
        with pytest.raises(NotFound):
            policy.check_use_project_data(person, _fresh(project), today=TODAY)
    assert list(policy.visible_projects_for(ig)) == [project]


@pytest.mark.parametrize("status", [S.EXPIRED, S.REVOKED])
def test_after_expiry_or_revocation_members_see_the_record_but_cannot_use_the_data(
    make_project, ig, member, status
):
    project = drive_to(make_project(), status, ig=ig)

    assert list(policy.visible_projects_for(member)) == [project]
    policy.check_view_project(member, project)
    assert not policy.user_has_object_permission(member, policy.PROJECT_DATA, project)
    with pytest.raises(PermissionDenied) as raised:
        policy.check_use_project_data(member, _fresh(project), today=TODAY)
    assert str(raised.value) == f"the project is {status}"


def test_a_suspended_project_is_still_seen_by_its_members(make_project, ig, member):
    project = drive_to(make_project(), S.SUSPENDED, ig=ig)

    policy.check_view_project(member, project)
    with pytest.raises(PermissionDenied):
        policy.check_use_project_data(member, _fresh(project), today=TODAY)
    resumed = services.resume_project(project=project, by=ig, today=TODAY)
    policy.check_use_project_data(member, resumed, today=TODAY)


# =========================================================================================
# Creating and managing: the policy's own answers
# =========================================================================================
CREATE: dict[str, tuple[Callable[[], Any], bool]] = {
    role.value: ((lambda role=role: scenarios.person(role)), role == Role.IG_OFFICER)
    for role in Role
    if role != Role.ADMINISTRATOR
} | {
    "administrator": (scenarios.administrator, False),
    "system": (get_system_user, True),
    "suspended_ig_officer": (_suspended_ig, False),
    "anonymous": (AnonymousUser, False),
}  # fmt: skip


@pytest.mark.parametrize(("make", "allowed"), CREATE.values(), ids=CREATE)
def test_check_create_project(make, allowed):
    person = make()

    if allowed:
        policy.check_create_project(person)
    else:
        with pytest.raises(PermissionDenied):
            policy.check_create_project(person)
