"""The project lifecycle (sde/projects/services.py): the whole transition matrix (status x
action x actor, expected outcomes derived from TRANSITIONS and ACTIONS), creation and its
audit trail, members and their object permissions, closure with destruction, the
compliance clock (expiry, lapses, paused members, reminders) and the two Celery tasks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sde import policy
from sde.audit.events import EventType as E
from sde.audit.services import get_system_user
from sde.celery import app as celery_app
from sde.data.extracts import ExtractScope, build_extract, current_extract
from sde.data.models import Extract
from sde.exceptions import (
    GovernedWriteRefused,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from sde.governance import governed_writes
from sde.identity.models import User
from sde.identity.roles import Role
from sde.identity.selectors import users_with_role
from sde.identity.services import suspend_account
from sde.projects import services
from sde.projects.models import Project, ProjectMembership
from sde.projects.services import ACTIONS, TRANSITIONS, MemberSpec
from sde.tasks import build_project_extracts_task, project_compliance_task
from tests import scenarios
from tests.events import events_since, mark, types_since
from tests.unit.sde.projects.builders import (
    AFTER_END,
    END,
    SCOPE,
    START,
    TODAY,
    TRAINED_UNTIL,
    S,
    accredit,
    drive_to,
    researcher,
)

pytestmark = pytest.mark.django_db

VIEW, DATA, FIELDS = policy.PROJECT_VIEW, policy.PROJECT_DATA, policy.PROJECT_FIELD
SCOPE_FIELDS = sorted(
    f"{slug}.{name}" for slug, names in SCOPE["datasets"].items() for name in names
)
ATTESTATION = "Extract files destroyed 1 June 2026; certificate DC-42 on file."


def _holds(user: User, permission: str, project: Project) -> bool:
    """For FIELDS: holds ``read_project_field`` on every approved field."""
    if permission == FIELDS:
        return project.fields.exists() and not policy.fields_not_granted(user, project)
    return policy.user_has_object_permission(user, permission, project)


def _granted(user: User, permission: str) -> dict[str, Any]:
    """The data of a permission event: the field permission lists the fields."""
    fields = {"fields": SCOPE_FIELDS} if permission == FIELDS else {}
    return {"user_id": user.pk, "permission": permission, **fields}


def _status(project: Project) -> str:
    return Project.objects.get(pk=project.pk).status


# =========================================================================================
# The transition table
# =========================================================================================
# application-form.md, "Lifecycle", written out by hand: the table in the code must match.
DESIGNED_LIFECYCLE = {
    S.ACTIVE: {S.SUSPENDED, S.EXPIRED, S.REVOKED, S.CLOSED},
    S.SUSPENDED: {S.ACTIVE, S.EXPIRED, S.REVOKED, S.CLOSED},
    S.EXPIRED: {S.CLOSED},
    S.REVOKED: {S.CLOSED},
    S.CLOSED: set(),
}


def test_the_transition_table_is_the_lifecycle_of_the_application_form():
    assert {status: set(targets) for status, targets in TRANSITIONS.items()} == DESIGNED_LIFECYCLE
    assert set(TRANSITIONS) == set(S.values)


def test_every_action_leads_to_a_status_and_writes_its_own_event():
    assert {action: target for action, (target, _, _) in ACTIONS.items()} == {
        "suspend": S.SUSPENDED,
        "resume": S.ACTIVE,
        "expire": S.EXPIRED,
        "revoke": S.REVOKED,
        "close": S.CLOSED,
    }
    events = [event for _, _, event in ACTIONS.values()]
    assert len(set(events)) == len(events)
    # Every status but the initial one is reached by some action.
    assert {target for target, _, _ in ACTIONS.values()} == set(S.values)


RUN: dict[str, Callable[[Project, User], Project]] = {
    "suspend": lambda p, by: services.suspend_project(project=p, reason="DSPT lapsed", by=by),
    "resume": lambda p, by: services.resume_project(project=p, by=by, today=TODAY),
    "expire": lambda p, by: services.expire_project(project=p, by=by, today=AFTER_END),
    "revoke": lambda p, by: services.revoke_project(project=p, reason="data breach", by=by),
    "close": lambda p, by: services.close_project(project=p, attestation=ATTESTATION, by=by),
}


def test_every_action_has_a_service_here():
    assert set(RUN) == set(ACTIONS)


# Who acts. The member is the project's accredited principal investigator.
ACTORS: dict[str, Callable[[User, User], User]] = {
    "ig_officer": lambda member, custodian: scenarios.person(Role.IG_OFFICER),
    "system": lambda member, custodian: get_system_user(),
    "researcher_member": lambda member, custodian: member,
    "researcher_non_member": lambda member, custodian: researcher(),
    "data_custodian": lambda member, custodian: custodian,
    "output_checker": lambda member, custodian: scenarios.person(Role.OUTPUT_CHECKER),
    "caldicott_guardian": lambda member, custodian: scenarios.person(Role.CALDICOTT_GUARDIAN),
    "administrator": lambda member, custodian: scenarios.administrator(),
    "clinician": lambda member, custodian: scenarios.person(Role.CLINICIAN),
}
OVERSEERS = {"ig_officer", "system"}  # policy.check_manage_project: IG officers, or the system


def expected_outcome(actor: str, status: str, action: str) -> str:
    """Derived from the tables: IG and the system may take any action the transition table
    allows; a member sees the project (until it is closed) but may not manage it; anyone
    else may not even see it."""
    if actor == "ig_officer" and ACTIONS[action][1] == "system":
        return "PermissionDenied"  # only the clock expires a project
    if actor in OVERSEERS:
        return "allowed" if ACTIONS[action][0] in TRANSITIONS[status] else "InvalidTransition"
    if actor == "researcher_member" and status != S.CLOSED:
        return "PermissionDenied"
    return "NotFound"


# The member's object permissions each target status ends (ADR 0006).
ENDS: dict[str, tuple[str, ...]] = {
    S.EXPIRED: (FIELDS, DATA), S.REVOKED: (FIELDS, DATA), S.CLOSED: (FIELDS, DATA, VIEW)
}  # fmt: skip


def _trace(project: Project, member: User, at: int) -> dict[str, Any]:
    """What an attempt left behind: the status, the events (type, actor, project, data
    of the permission events) and the member's object permissions."""
    return {
        "status": _status(project),
        "events": [
            (e.event_type, e.actor_id, e.project_id,
             e.data if e.event_type == E.OBJECT_PERMISSION_REVOKED else None)
            for e in events_since(at)
        ],
        "permissions": {p for p in (VIEW, DATA, FIELDS) if _holds(member, p, project)},
    }  # fmt: skip


@pytest.mark.parametrize(("status", "action"), list(product(S.values, ACTIONS)))
def test_transition_matrix(make_project, ig, member, custodian, status, action):
    """One row of the matrix per (status, action): every actor's outcome and what it left
    behind, compared as a whole with what the tables say. A refusal changes nothing, so
    the refused actors share one project; each allowed actor gets its own."""
    refused_on = drive_to(make_project(), status, ig=ig)
    observed: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for actor, make in ACTORS.items():
        by = make(member, custodian)
        outcome = expected_outcome(actor, status, action)
        project = drive_to(make_project(), status, ig=ig) if outcome == "allowed" else refused_on
        before = _trace(project, member, mark())
        changed_at = Project.objects.get(pk=project.pk).status_changed_at
        at = mark()

        try:
            result: Project | None = RUN[action](project, by)
        except (NotFound, PermissionDenied, InvalidTransition) as error:
            observed[actor] = (type(error).__name__, _trace(project, member, at))
            result = None
        else:
            observed[actor] = ("allowed", _trace(project, member, at))

        if outcome != "allowed":
            expected[actor] = (outcome, before)
            continue
        target, _, event = ACTIONS[action]
        revoked = [p for p in ENDS.get(target, ()) if p in before["permissions"]]
        expected[actor] = (
            "allowed",
            {
                "status": target,
                "events": [(event, by.pk, project.pk, None)] + [
                    (E.OBJECT_PERMISSION_REVOKED, by.pk, project.pk, _granted(member, p))
                    for p in revoked
                ],
                "permissions": before["permissions"] - set(revoked),
            },
        )  # fmt: skip
        assert result is not None and result.status == target, actor
        assert Project.objects.get(pk=project.pk).status_changed_at > changed_at, actor

    assert observed == expected


@pytest.mark.parametrize("action", ["suspend", "revoke"])
@pytest.mark.parametrize("reason", ["", "   "])
def test_suspending_or_revoking_needs_a_reason(make_project, ig, action, reason):
    project = make_project()
    service = {"suspend": services.suspend_project, "revoke": services.revoke_project}[action]
    at = mark()

    with pytest.raises(ValidationError) as raised:
        service(project=project, reason=reason, by=ig)

    assert set(raised.value.errors) == {"reason"}
    assert _status(project) == S.ACTIVE
    assert types_since(at) == []


def test_the_reason_is_kept_on_the_project_and_in_the_event(make_project, ig):
    project = make_project()
    at = mark()

    services.suspend_project(project=project, reason="  DSPT under review " + "x" * 400, by=ig)

    stored = Project.objects.get(pk=project.pk)
    assert stored.status_reason.startswith("DSPT under review x")
    assert len(stored.status_reason) == 300
    (event,) = events_since(at)
    assert len(event.data["reason"]) == 200
    assert event.target_id == str(project.pk)


# =========================================================================================
# Creating a project
# =========================================================================================
CREATORS: dict[str, Callable[[], User]] = {
    "ig_officer": lambda: scenarios.person(Role.IG_OFFICER),
    "system": get_system_user,
} | {
    role.value: (lambda role=role: scenarios.person(role))
    for role in Role
    if role not in (Role.IG_OFFICER, Role.ADMINISTRATOR)
} | {"administrator": scenarios.administrator}  # fmt: skip


@pytest.mark.parametrize("creator", list(CREATORS))
def test_only_ig_officers_or_the_system_create_a_project(make_project, creator):
    by = CREATORS[creator]()
    at = mark()

    if creator not in OVERSEERS:
        with pytest.raises(PermissionDenied):
            make_project(by=by)
        assert not Project.objects.exists()
        assert types_since(at) == []
        return
    project = make_project(by=by)

    assert project.status == S.ACTIVE
    assert project.created_by == by
    assert {e.actor_id for e in events_since(at)} == {by.pk}


def test_an_ig_officer_whose_account_is_suspended_cannot_create_a_project(make_project, ig):
    suspend_account(user=ig, by=scenarios.administrator(), reason="left the ICB")

    with pytest.raises(PermissionDenied):
        make_project(by=User.objects.get(pk=ig.pk))
    assert not Project.objects.exists()


def _members(member: User, *extra: tuple[User, str]) -> list[MemberSpec]:
    return [MemberSpec(member, "analyst"), *(MemberSpec(u, role) for u, role in extra)]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"end_date": START - timedelta(days=1)}, {"end_date"}),
        ({"members": []}, {"members"}),
        ({"members": "duplicate"}, {"members"}),
        ({"members": "unknown-role"}, {"role"}),
        ({"end_date": START - timedelta(days=1), "members": []}, {"end_date", "members"}),
        ({"scope": {**SCOPE, "datasets": {"no-such": ["person_id"]}}}, {"datasets"}),
        ({"scope": {**SCOPE, "datasets": {"patients": ["nhs_number"]}}}, {"datasets"}),
        ({"scope": {**SCOPE, "datasets": ["patients"]}}, {"datasets"}),
        ({"scope": {**SCOPE, "purpose": "marketing"}}, {"purpose"}),
        ({"scope": {**SCOPE, "cohort": {"colour": "red"}}}, {"cohort"}),
        ({"scope": {**SCOPE, "date_from": "2024-02-01", "date_to": "2024-01-01"}}, {"date_to"}),
    ],
    ids=[
        "end-before-start", "no-members", "duplicate-member", "unknown-role", "every-problem",
        "unknown-dataset", "unpublished-field", "datasets-not-a-mapping", "refused-purpose",
        "unknown-cohort-filter", "scope-dates-reversed",
    ],
)  # fmt: skip
def test_an_invalid_project_is_refused_and_leaves_nothing(make_project, member, changes, fields):
    if changes.get("members") == "duplicate":
        changes["members"] = _members(member, (member, "student"))
    elif changes.get("members") == "unknown-role":
        changes["members"] = [MemberSpec(member, "janitor")]
    at = mark()

    with pytest.raises(ValidationError) as raised:
        make_project(**changes)

    assert set(raised.value.errors) == fields
    assert not Project.objects.exists()
    assert not ProjectMembership.objects.exists()
    assert types_since(at) == []
    assert policy.visible_projects_for(member).count() == 0


def test_a_one_day_project_is_valid(make_project):
    assert make_project(start_date=START, end_date=START).end_date == START


def test_creating_a_project_writes_its_events_in_order(make_project, ig, member):
    reader = researcher()
    at = mark()

    project = make_project(
        members=[
            MemberSpec(member, "principal_investigator"),
            MemberSpec(reader, "supervisor", False),
        ]
    )

    assert types_since(at) == [
        E.PROJECT_CREATED,
        E.PROJECT_MEMBER_ADDED, *[E.OBJECT_PERMISSION_GRANTED] * 3,
        E.PROJECT_MEMBER_ADDED, E.OBJECT_PERMISSION_GRANTED,
        E.PROJECT_ACTIVATED,
    ]  # fmt: skip
    events = events_since(at)
    assert {(e.actor_id, e.project_id, e.target_id) for e in events} == {
        (ig.pk, project.pk, str(project.pk))
    }
    assert [e.data for e in events] == [
        {"purpose": "research", "datasets": ["gp-events", "patients"]},
        {"user_id": member.pk, "role": "principal_investigator", "accesses_data": True},
        _granted(member, VIEW),
        _granted(member, DATA),
        _granted(member, FIELDS),
        {"user_id": reader.pk, "role": "supervisor", "accesses_data": False},
        {"user_id": reader.pk, "permission": VIEW},
        {"end_date": END.isoformat()},
    ]
    assert {p for p in (VIEW, DATA, FIELDS) if _holds(member, p, project)} == {VIEW, DATA, FIELDS}
    assert {p for p in (VIEW, DATA, FIELDS) if _holds(reader, p, project)} == {VIEW}
    assert policy.fields_not_granted(reader, project) == SCOPE_FIELDS
    memberships = {m.user_id: m for m in project.memberships.all()}
    assert memberships[reader.pk].accesses_data is False
    assert memberships[member.pk].added_by == ig


def test_the_scope_is_stored_with_the_projects_own_id(make_project):
    project = make_project(scope={**SCOPE, "project_id": 999, "date_to": "2024-12-31"})

    stored = Project.objects.get(pk=project.pk)
    assert stored.scope["project_id"] == project.pk
    assert stored.scope == ExtractScope.from_json({**SCOPE, "date_to": "2024-12-31",
                                                   "project_id": project.pk}).to_json()  # fmt: skip
    assert ExtractScope.from_json(stored.scope).datasets == {
        "patients": ("person_id", "sex"),
        "gp-events": ("person_id", "date"),
    }


# =========================================================================================
# Extracts: enqueued after commit, built by the task
# =========================================================================================
def _folders(data_root: Path, project: Project) -> list[Path]:
    return [data_root / e.path for e in Extract.objects.filter(project_id=project.pk)]


def test_the_extracts_task_is_enqueued_only_after_commit_and_builds_both_extracts(
    ingested, make_project, data_root, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.SDE_AUDIT_CHECKPOINT_EVERY = 10**9  # no checkpoint task among the callbacks
    with django_capture_on_commit_callbacks() as callbacks:
        project = make_project()
    assert len(callbacks) == 1
    assert not Extract.objects.exists()  # nothing is built inside the transaction
    at = mark()

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    callbacks[0]()

    real, dummy = current_extract(project.pk), current_extract(project.pk, dummy=True)
    assert real is not None and dummy is not None
    assert (real.is_dummy, dummy.is_dummy) == (False, True)
    assert real.scope == dummy.scope == project.scope
    system = get_system_user()
    assert real.built_by == dummy.built_by == system
    assert real.rebuild_reason == "project approved"
    assert 0 < real.person_count <= 300
    assert real.treatment["ndop_applied"] is True  # research under s251: opt-outs apply
    for extract in (real, dummy):
        assert {t["dataset"] for t in extract.tables.values()} == {"patients", "gp-events"}
        folder = data_root / extract.path
        assert sorted(p.name for p in folder.iterdir()) == ["gp-events.parquet", "patients.parquet"]
    assert types_since(at) == [E.EXTRACT_BUILT, E.EXTRACT_BUILT]
    assert [(e.actor_id, e.data["project_id"], e.data["dummy"]) for e in events_since(at)] == [
        (system.pk, project.pk, False),
        (system.pk, project.pk, True),
    ]


def test_the_extracts_task_is_idempotent(ingested, make_project):
    project = make_project()
    assert build_project_extracts_task(project.pk) == "built"
    built = list(Extract.objects.values_list("pk", flat=True))
    at = mark()

    assert build_project_extracts_task(project.pk) == "exists"

    assert list(Extract.objects.values_list("pk", flat=True)) == built
    assert len(built) == 2
    assert types_since(at) == []


@pytest.mark.parametrize("status", [S.SUSPENDED, S.EXPIRED, S.REVOKED, S.CLOSED])
def test_the_extracts_task_builds_nothing_for_a_project_that_is_not_active(
    ingested, make_project, ig, status
):
    project = drive_to(make_project(), status, ig=ig)
    at = mark()

    assert build_project_extracts_task(project.pk) == "not active"
    assert not Extract.objects.exists()
    assert types_since(at) == []


def test_the_clock_asks_again_for_extracts_lost_to_a_broker_outage(
    ingested, make_project, ig, monkeypatch, caplog
):
    def broker_down(project_id: int) -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(build_project_extracts_task, "delay", broker_down)
    lost = make_project()  # approved while the broker was down: nothing was queued
    ended = drive_to(make_project(), S.REVOKED, ig=ig)

    run = services.run_compliance(today=TODAY)  # still down: logged, nothing lost

    assert run.extracts_requested == 0
    assert "could not queue the extracts of project" in caplog.text
    queued: list[int] = []
    monkeypatch.setattr(build_project_extracts_task, "delay", queued.append)
    assert services.run_compliance(today=TODAY).extracts_requested == 1
    assert queued == [lost.pk] and ended.pk not in queued
    build_project_extracts_task(lost.pk)
    queued.clear()
    assert services.run_compliance(today=TODAY).extracts_requested == 0
    assert queued == []


def test_the_extracts_task_for_a_missing_project_does_nothing(ingested):
    assert build_project_extracts_task(424242) == "not active"
    assert not Extract.objects.exists()


def test_build_project_extracts_is_refused_to_anyone_who_does_not_provision_data(
    make_project, ig, member
):
    project = make_project()
    for person in (ig, member):
        with pytest.raises(PermissionDenied):
            services.build_project_extracts(project=project, by=person)
    assert not Extract.objects.exists()


# =========================================================================================
# Members
# =========================================================================================
@pytest.mark.parametrize("accesses_data", [True, False])
@pytest.mark.parametrize("status", [S.ACTIVE, S.SUSPENDED])
def test_adding_a_member_grants_their_permissions(make_project, ig, status, accesses_data):
    project = drive_to(make_project(), status, ig=ig)
    person = researcher()
    at = mark()

    membership = services.add_member(
        project=project, member=MemberSpec(person, "analyst", accesses_data), by=ig
    )

    grants = [VIEW, DATA, FIELDS] if accesses_data else [VIEW]
    assert types_since(at) == [E.PROJECT_MEMBER_ADDED] + [E.OBJECT_PERMISSION_GRANTED] * len(grants)
    assert [e.data for e in events_since(at)] == [
        {"user_id": person.pk, "role": "analyst", "accesses_data": accesses_data},
        *(_granted(person, p) for p in grants),
    ]
    assert {e.actor_id for e in events_since(at)} == {ig.pk}
    assert (membership.role, membership.added_by, membership.removed_at) == ("analyst", ig, None)
    assert _holds(person, VIEW, project)
    assert _holds(person, DATA, project) is accesses_data
    assert _holds(person, FIELDS, project) is accesses_data
    assert _status(project) == status


@pytest.mark.parametrize("status", sorted(services.ENDED))
def test_nobody_is_added_once_access_has_ended(make_project, ig, status):
    project = drive_to(make_project(), status, ig=ig)
    person = researcher()
    at = mark()

    with pytest.raises(InvalidTransition):
        services.add_member(project=project, member=MemberSpec(person, "analyst"), by=ig)

    assert types_since(at) == []
    assert not project.memberships.filter(user=person).exists()
    assert not _holds(person, VIEW, project)


@pytest.mark.parametrize(
    ("who", "role", "field"),
    [("member", "student", "user"), ("someone_else", "janitor", "role")],
    ids=["already-a-member", "unknown-role"],
)
def test_adding_a_duplicate_or_an_unknown_role_is_refused(
    make_project, ig, member, who, role, field
):
    project = make_project()
    person = member if who == "member" else researcher()
    at = mark()

    with pytest.raises(ValidationError) as raised:
        services.add_member(project=project, member=MemberSpec(person, role), by=ig)

    assert set(raised.value.errors) == {field}
    assert types_since(at) == []
    assert project.memberships.count() == 1


@pytest.mark.parametrize(
    ("actor", "error"),
    [("researcher_member", PermissionDenied), ("researcher_non_member", NotFound),
     ("data_custodian", NotFound), ("administrator", NotFound)],
)  # fmt: skip
def test_only_ig_changes_members(make_project, member, custodian, actor, error):
    project = make_project()
    other = researcher()
    by = ACTORS[actor](member, custodian)
    at = mark()

    with pytest.raises(error):
        services.add_member(project=project, member=MemberSpec(other, "analyst"), by=by)
    with pytest.raises(error):
        services.remove_member(project=project, user=member, by=by)

    assert types_since(at) == []
    assert _holds(member, DATA, project) and not _holds(other, VIEW, project)


def test_the_system_may_add_a_member(make_project):
    project = make_project()
    person = researcher()

    services.add_member(project=project, member=MemberSpec(person, "analyst"), by=get_system_user())

    assert _holds(person, DATA, project)


@pytest.mark.parametrize("accesses_data", [True, False])
def test_removing_a_member_revokes_their_permissions_at_once(make_project, ig, accesses_data):
    person = researcher()
    project = make_project(
        members=[MemberSpec(researcher(), "principal_investigator"),
                 MemberSpec(person, "analyst", accesses_data)]
    )  # fmt: skip
    at = mark()

    membership = services.remove_member(project=project, user=person, by=ig)

    revoked = [FIELDS, DATA, VIEW] if accesses_data else [VIEW]
    assert types_since(at) == [E.PROJECT_MEMBER_REMOVED] + [E.OBJECT_PERMISSION_REVOKED] * len(
        revoked
    )
    assert [e.data for e in events_since(at)] == [
        {"user_id": person.pk},
        *(_granted(person, p) for p in revoked),
    ]
    assert membership.removed_by == ig and membership.removed_at is not None
    assert not any(_holds(person, p, project) for p in (VIEW, DATA, FIELDS))
    assert policy.project_data_refusal(person, project, today=TODAY) == (
        "you are not a member of this project who uses its data"
    )


def test_removing_someone_who_is_not_a_current_member_is_refused(make_project, ig, member):
    project = make_project()
    services.remove_member(project=project, user=member, by=ig)
    stranger = researcher()
    at = mark()

    for person in (member, stranger):
        with pytest.raises(ValidationError):
            services.remove_member(project=project, user=person, by=ig)

    assert types_since(at) == []


def test_a_removed_member_can_be_added_again(make_project, ig, member):
    project = make_project()
    services.remove_member(project=project, user=member, by=ig)

    services.add_member(project=project, member=MemberSpec(member, "analyst"), by=ig)

    assert project.memberships.filter(user=member).count() == 2
    assert project.memberships.get(user=member, removed_at__isnull=True).role == "analyst"
    assert policy.project_data_refusal(member, project, today=TODAY) is None


def test_removing_a_member_from_an_expired_project_takes_away_the_record_too(
    make_project, ig, member
):
    project = drive_to(make_project(), S.EXPIRED, ig=ig)
    at = mark()

    services.remove_member(project=project, user=member, by=ig)

    assert types_since(at) == [E.PROJECT_MEMBER_REMOVED, E.OBJECT_PERMISSION_REVOKED]
    assert events_since(at)[1].data == {"user_id": member.pk, "permission": VIEW}
    with pytest.raises(NotFound):
        policy.check_view_project(member, project)


def test_a_closed_projects_membership_is_its_record_and_is_not_changed(make_project, ig, member):
    project = drive_to(make_project(), S.CLOSED, ig=ig)
    at = mark()

    with pytest.raises(InvalidTransition):
        services.remove_member(project=project, user=member, by=ig)

    assert project.memberships.get(user=member).removed_at is None
    assert types_since(at) == []


def test_the_database_refuses_two_current_memberships_of_one_person(make_project, ig, member):
    project = make_project()

    with pytest.raises(IntegrityError), transaction.atomic():
        with governed_writes(ProjectMembership):
            ProjectMembership(project=project, user=member, role="analyst", added_by=ig).save()


def test_memberships_and_projects_refuse_direct_writes(make_project, ig, member):
    project = make_project()
    with pytest.raises(GovernedWriteRefused):
        Project.objects.filter(pk=project.pk).update(status=S.SUSPENDED)
    with pytest.raises(GovernedWriteRefused):
        ProjectMembership(project=project, user=researcher(), role="analyst", added_by=ig).save()
    assert _status(project) == S.ACTIVE


# =========================================================================================
# Closure
# =========================================================================================
@pytest.mark.parametrize("attestation", ["", "  \n "])
def test_closing_needs_a_destruction_attestation(make_project, ig, attestation):
    project = make_project()
    at = mark()

    with pytest.raises(ValidationError) as raised:
        services.close_project(project=project, attestation=attestation, by=ig)

    assert set(raised.value.errors) == {"attestation"}
    assert _status(project) == S.ACTIVE
    assert types_since(at) == []


def test_closing_keeps_the_attestation(make_project, ig):
    closed = services.close_project(project=make_project(), attestation=f"  {ATTESTATION}\n", by=ig)

    stored = Project.objects.get(pk=closed.pk)
    assert stored.destruction_attestation == ATTESTATION
    assert (stored.status, stored.status_reason) == (S.CLOSED, "closed")


def test_the_database_refuses_a_closed_project_without_an_attestation(make_project):
    project = make_project()

    with pytest.raises(IntegrityError), transaction.atomic(), governed_writes(Project):
        Project.objects.filter(pk=project.pk).update(status=S.CLOSED)

    assert _status(project) == S.ACTIVE
    with transaction.atomic(), governed_writes(Project):  # the same write, attested, is fine
        Project.objects.filter(pk=project.pk).update(status=S.CLOSED, destruction_attestation="x")
    assert _status(project) == S.CLOSED


def test_the_database_refuses_a_project_that_ends_before_it_starts(make_project):
    project = make_project()

    with pytest.raises(IntegrityError), transaction.atomic(), governed_writes(Project):
        Project.objects.filter(pk=project.pk).update(end_date=START - timedelta(days=1))


def test_closing_deletes_the_projects_extracts_and_their_files_after_commit(
    ingested, make_project, ig, member, data_root, django_capture_on_commit_callbacks
):
    project = make_project()
    other = make_project(members=[MemberSpec(researcher(), "analyst")])
    for built in (project, other):
        assert build_project_extracts_task(built.pk) == "built"
    folders = _folders(data_root, project)
    assert len(folders) == 2 and all(f.is_dir() for f in folders)
    at = mark()

    with django_capture_on_commit_callbacks(execute=True):
        services.close_project(project=project, attestation=ATTESTATION, by=ig)
        assert all(f.is_dir() for f in folders)  # removed only once the deletion commits

    assert not any(f.exists() for f in folders)
    assert all(e.deleted_at is not None for e in Extract.objects.filter(project_id=project.pk))
    assert current_extract(project.pk) is None and current_extract(project.pk, dummy=True) is None
    assert types_since(at) == [
        E.PROJECT_CLOSED, *[E.OBJECT_PERMISSION_REVOKED] * 3, E.EXTRACT_DELETED, E.EXTRACT_DELETED,
    ]  # fmt: skip
    deleted = events_since(at)[4:]
    assert [e.data["project_id"] for e in deleted] == [project.pk, project.pk]
    assert {e.data["reason"] for e in deleted} == {"project closed"}
    # Another project's extracts are untouched.
    assert all(f.is_dir() for f in _folders(data_root, other))
    assert current_extract(other.pk) is not None


# =========================================================================================
# Compliance dates, resuming
# =========================================================================================
COMPLIANCE = list(services.COMPLIANCE_DATES)


def test_compliance_dates_are_recorded_and_audited(make_project, ig):
    project = make_project(s251_expiry=TODAY, rec_expiry=TODAY)
    renewed = TODAY + timedelta(days=365)
    at = mark()

    updated = services.update_compliance_dates(
        project=project, by=ig, s251_expiry=renewed, rec_expiry=None
    )

    stored = Project.objects.get(pk=project.pk)
    assert (updated.s251_expiry, stored.s251_expiry, stored.rec_expiry) == (renewed, renewed, None)
    assert types_since(at) == [E.PROJECT_COMPLIANCE_UPDATED]
    (event,) = events_since(at)
    assert (event.actor_id, event.project_id) == (ig.pk, project.pk)
    assert event.data == {"s251_expiry": renewed.isoformat(), "rec_expiry": None}


def test_only_compliance_dates_can_be_updated(make_project, ig):
    project = make_project()
    at = mark()

    with pytest.raises(ValidationError) as raised:
        services.update_compliance_dates(project=project, by=ig, end_date=TODAY, s251_expiry=TODAY)

    assert set(raised.value.errors) == {"end_date"}
    assert Project.objects.get(pk=project.pk).s251_expiry is None
    assert types_since(at) == []


@pytest.mark.parametrize(("actor", "error"), [("researcher_member", PermissionDenied),
                                              ("researcher_non_member", NotFound)])  # fmt: skip
def test_only_ig_updates_compliance_dates(make_project, member, custodian, actor, error):
    project = make_project()
    by = ACTORS[actor](member, custodian)

    with pytest.raises(error):
        services.update_compliance_dates(project=project, by=by, s251_expiry=END)
    assert Project.objects.get(pk=project.pk).s251_expiry is None


@pytest.mark.parametrize(
    ("lapsed", "words"),
    [("end_date", "the end date"), *services.COMPLIANCE_DATES.items()],
)
def test_resuming_is_refused_while_a_date_has_lapsed(make_project, ig, lapsed, words):
    project = drive_to(make_project(**{lapsed: TODAY - timedelta(days=1)}), S.SUSPENDED, ig=ig)
    at = mark()

    with pytest.raises(InvalidTransition) as raised:
        services.resume_project(project=project, by=ig, today=TODAY)

    assert words in str(raised.value) and "has lapsed" in str(raised.value)
    assert _status(project) == S.SUSPENDED
    assert types_since(at) == []
    # On the last day itself nothing has lapsed yet.
    resumed = services.resume_project(project=project, by=ig, today=TODAY - timedelta(days=1))
    assert resumed.status == S.ACTIVE


def test_every_lapsed_date_is_named(make_project, ig):
    yesterday = TODAY - timedelta(days=1)
    project = drive_to(
        make_project(s251_expiry=yesterday, rec_expiry=yesterday, dspt_expiry=yesterday),
        S.SUSPENDED,
        ig=ig,
    )

    with pytest.raises(InvalidTransition) as raised:
        services.resume_project(project=project, by=ig, today=TODAY)

    for label in services.COMPLIANCE_DATES.values():
        assert label in str(raised.value)


# =========================================================================================
# The compliance clock
# =========================================================================================
def test_the_clock_expires_a_project_the_day_after_its_end_date(make_project, ig, member):
    reader = researcher()
    project = make_project(
        members=[MemberSpec(member, "analyst"), MemberSpec(reader, "supervisor", False)]
    )
    assert services.run_compliance(today=END).expired == []  # the last day of access
    assert _status(project) == S.ACTIVE
    at = mark()

    run = services.run_compliance(today=END + timedelta(days=1))

    assert run.expired == [project.pk]
    assert _status(project) == S.EXPIRED
    system = get_system_user()
    assert types_since(at) == [E.PROJECT_EXPIRED] + [E.OBJECT_PERMISSION_REVOKED] * 2
    expired, *revoked = events_since(at)
    assert (expired.actor_id, expired.data) == (system.pk, {"reason": "the end date has passed"})
    assert [(e.actor_id, e.data) for e in revoked] == [
        (system.pk, _granted(member, FIELDS)),
        (system.pk, _granted(member, DATA)),
    ]
    assert not _holds(member, DATA, project) and not _holds(member, FIELDS, project)
    assert _holds(member, VIEW, project) and _holds(reader, VIEW, project)


def test_the_clock_expires_a_suspended_project_too(make_project, ig):
    project = drive_to(make_project(), S.SUSPENDED, ig=ig)

    run = services.run_compliance(today=END + timedelta(days=1))

    assert run.expired == [project.pk]
    assert _status(project) == S.EXPIRED


@pytest.mark.parametrize(("name", "label"), list(services.COMPLIANCE_DATES.items()))
def test_the_clock_suspends_a_project_whose_compliance_date_lapsed(make_project, ig, name, label):
    lapses = TODAY - timedelta(days=1)
    project = make_project(**{name: lapses})

    assert services.run_compliance(today=lapses).suspended == []  # the last valid day
    at = mark()
    run = services.run_compliance(today=TODAY)

    assert run.suspended == [project.pk]
    stored = Project.objects.get(pk=project.pk)
    assert (stored.status, stored.status_reason) == (S.SUSPENDED, f"lapsed: {label}")
    assert types_since(at) == [E.PROJECT_SUSPENDED]
    assert events_since(at)[0].actor_id == get_system_user().pk
    # Suspension pauses access; it does not take the permissions away.
    member = project.memberships.get().user
    assert _holds(member, DATA, project)
    assert policy.project_data_refusal(member, stored, today=TODAY) == "the project is suspended"

    # IG cannot resume until the renewal is recorded; then they can.
    with pytest.raises(InvalidTransition):
        services.resume_project(project=stored, by=ig, today=TODAY)
    renewed = services.update_compliance_dates(
        project=stored, by=ig, **{name: TODAY + timedelta(days=365)}
    )
    resumed = services.resume_project(project=renewed, by=ig, today=TODAY)
    assert resumed.status == S.ACTIVE
    assert policy.project_data_refusal(member, resumed, today=TODAY) is None
    assert services.run_compliance(today=TODAY).suspended == []


def test_a_lapsed_date_is_named_with_every_other_in_the_reason(make_project):
    project = make_project(s251_expiry=TODAY - timedelta(days=1), dspt_expiry=TODAY - timedelta(1))

    services.run_compliance(today=TODAY)

    assert Project.objects.get(pk=project.pk).status_reason == (
        "lapsed: s251 support, an organisation's DSPT status"
    )


@pytest.mark.parametrize("kind", policy.DATA_ACCESS_ACCREDITATIONS)
def test_a_member_whose_accreditation_lapses_is_paused_and_restored(make_project, mailoutbox, kind):
    last_day = TODAY + timedelta(days=15)
    other = next(k for k in policy.DATA_ACCESS_ACCREDITATIONS if k != kind)
    person = accredit(scenarios.person(Role.RESEARCHER), kinds=(other,))
    accredit(person, kinds=(kind,), expires_on=last_day)
    reader = researcher(expires_on=last_day)  # does not use data: never paused
    project = make_project(
        members=[MemberSpec(person, "analyst"), MemberSpec(reader, "supervisor", False)]
    )
    assert services.run_compliance(today=last_day).members_suspended == 0
    at = mark()

    run = services.run_compliance(today=last_day + timedelta(days=1))

    assert (run.members_suspended, run.members_reinstated) == (1, 0)
    assert types_since(at) == [E.PROJECT_MEMBER_SUSPENDED]
    event = events_since(at)[0]
    assert (event.project_id, event.data) == (
        project.pk,
        {"user_id": person.pk, "reason": "accreditation lapsed"},
    )
    membership = project.memberships.get(user=person)
    assert membership.suspended_at is not None
    assert [(m.to, m.subject) for m in mailoutbox] == [
        ([person.email], f"Your access to project {project.pk} is paused")
    ]
    day = last_day + timedelta(days=2)
    assert policy.project_data_refusal(person, project, today=day) == (
        "your access is paused: accreditation lapsed"
    )

    # Once a current record is recorded, the next run restores the member.
    accredit(person, kinds=(kind,), issued_on=day, expires_on=day + timedelta(days=365))
    assert policy.project_data_refusal(person, project, today=day).startswith(
        "your access is paused"
    )
    at = mark()
    run = services.run_compliance(today=day)

    assert (run.members_suspended, run.members_reinstated) == (0, 1)
    assert types_since(at) == [E.PROJECT_MEMBER_REINSTATED]
    assert events_since(at)[0].data == {"user_id": person.pk}
    membership.refresh_from_db()
    assert (membership.suspended_at, membership.suspension_reason) == (None, "")
    assert policy.project_data_refusal(person, project, today=day) is None
    assert len(mailoutbox) == 1


def test_a_paused_member_is_paused_once(make_project, member, mailoutbox):
    make_project(start_date=START, end_date=TRAINED_UNTIL + timedelta(days=60))
    after = TRAINED_UNTIL + timedelta(days=1)
    services.run_compliance(today=after)
    at = mark()

    run = services.run_compliance(today=after + timedelta(days=1))

    assert (run.members_suspended, run.members_reinstated) == (0, 0)
    assert types_since(at) == []
    assert len(mailoutbox) == 1


# --- Reminders --------------------------------------------------------------------------
DUE = TODAY + timedelta(days=100)  # a compliance date, well before the end-date reminders


def _ig_emails() -> set[str]:
    return {u.email for u in users_with_role(Role.IG_OFFICER)}


@pytest.mark.parametrize("name", ["end_date", *COMPLIANCE])
def test_reminders_go_out_once_at_30_and_at_7_days(make_project, ig, member, mailoutbox, name):
    due = END if name == "end_date" else DUE
    reader = researcher()
    gone = researcher()
    project = make_project(
        members=[MemberSpec(member, "analyst"), MemberSpec(reader, "supervisor", False),
                 MemberSpec(gone, "student")],
        **({} if name == "end_date" else {name: due}),
    )  # fmt: skip
    services.remove_member(project=project, user=gone, by=ig)
    scenarios.person(Role.IG_OFFICER)  # a second IG officer is reminded too
    days = [31, 30, 30, 29, 8, 7, 7, 6, 1, 0]
    at = mark()

    sent = [services.run_compliance(today=due - timedelta(days=d)).reminders for d in days]

    assert sent == [0, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    assert tuple(django_settings.SDE_REMINDER_DAYS) == (30, 7)
    reminders = [e for e in events_since(at) if e.event_type == E.PROJECT_REMINDER_SENT]
    assert [e.data for e in reminders] == [
        {"date": name, "days_before": 30, "on": due.isoformat()},
        {"date": name, "days_before": 7, "on": due.isoformat()},
    ]
    label = {"end_date": "access ends", **services.COMPLIANCE_DATES}[name]
    subject = f"Project {project.pk}: {label} on {due:%d %B %Y}"
    recipients = {member.email, reader.email} | _ig_emails()
    assert len(_ig_emails()) == 2
    assert sorted(m.to[0] for m in mailoutbox) == sorted([*recipients, *recipients])
    assert {m.subject for m in mailoutbox} == {subject}
    assert gone.email not in {m.to[0] for m in mailoutbox}
    assert set(Project.objects.get(pk=project.pk).reminders_sent) == {
        f"{name}:7:{due.isoformat()}",
        f"{name}:30:{due.isoformat()}",
    }


def test_a_late_first_run_sends_one_reminder_not_two(make_project, mailoutbox):
    make_project()
    first = services.run_compliance(today=END - timedelta(days=5))
    again = services.run_compliance(today=END - timedelta(days=4))

    assert (first.reminders, again.reminders) == (1, 0)
    reminders = [e for e in events_since(0) if e.event_type == E.PROJECT_REMINDER_SENT]
    assert [e.data["days_before"] for e in reminders] == [7]


def test_the_reminder_days_come_from_the_settings(make_project, settings):
    settings.SDE_REMINDER_DAYS = (14,)
    make_project()

    sent = [services.run_compliance(today=END - timedelta(days=d)).reminders for d in (30, 14, 7)]

    assert sent == [0, 1, 0]


def test_a_renewed_date_is_reminded_again(make_project, ig):
    project = make_project(s251_expiry=DUE)
    assert services.run_compliance(today=DUE - timedelta(days=30)).reminders == 1
    renewed = DUE + timedelta(days=90)
    services.update_compliance_dates(project=project, by=ig, s251_expiry=renewed)

    assert services.run_compliance(today=renewed - timedelta(days=30)).reminders == 1


def test_no_reminder_for_a_date_that_has_passed_or_a_project_that_is_not_active(
    make_project, ig, mailoutbox
):
    make_project(s251_expiry=TODAY - timedelta(days=1))  # suspended by this very run
    drive_to(make_project(), S.SUSPENDED, ig=ig)
    drive_to(make_project(), S.REVOKED, ig=ig)
    at = mark()

    run = services.run_compliance(today=TODAY)

    assert run.reminders == 0
    assert E.PROJECT_REMINDER_SENT not in types_since(at)
    assert mailoutbox == []
    # Nor once the end date has passed (the project expires instead).
    run = services.run_compliance(today=END + timedelta(days=1))
    assert (run.reminders, mailoutbox) == (0, [])


def test_the_clock_is_idempotent_for_a_day(make_project, ig, mailoutbox):
    day = END + timedelta(days=1)
    make_project()  # expires
    lapsing = scenarios.person(Role.RESEARCHER)
    accredit(lapsing, expires_on=day - timedelta(days=1))
    later = day + timedelta(days=365)
    make_project(end_date=later, s251_expiry=day - timedelta(days=1))  # suspended
    make_project(end_date=later, members=[MemberSpec(lapsing, "analyst")])  # member paused
    make_project(end_date=day + timedelta(days=7))  # reminded
    first = services.run_compliance(today=day)
    assert (len(first.expired), len(first.suspended)) == (1, 1)
    assert (first.members_suspended, first.reminders) == (1, 1)
    at, emails = mark(), len(mailoutbox)

    second = services.run_compliance(today=day)

    # The unbuilt extracts of the live projects are asked for again (and only that).
    assert second == services.ComplianceRun(extracts_requested=2)
    assert types_since(at) == []
    assert len(mailoutbox) == emails


# =========================================================================================
# The Celery tasks
# =========================================================================================
def test_the_compliance_task_runs_the_clock_for_today(make_project, member):
    today = timezone.localdate()
    ended = make_project(start_date=today - timedelta(days=60), end_date=today - timedelta(days=1))
    ending = make_project(start_date=today - timedelta(days=60), end_date=today)
    reminded = make_project(start_date=today, end_date=today + timedelta(days=7))
    lapsed = make_project(
        start_date=today, end_date=today + timedelta(days=90), rec_expiry=today - timedelta(1)
    )

    result = project_compliance_task()

    assert result == {"expired": [ended.pk], "suspended": [lapsed.pk], "reminders": 2}
    assert [_status(p) for p in (ended, ending, reminded, lapsed)] == [
        S.EXPIRED, S.ACTIVE, S.ACTIVE, S.SUSPENDED,
    ]  # fmt: skip
    assert project_compliance_task() == {"expired": [], "suspended": [], "reminders": 0}


# =========================================================================================
# Defects found while writing these tests
# =========================================================================================
def test_resuming_decides_on_the_stored_dates_not_on_the_callers_copy(make_project, ig):
    stale = make_project(s251_expiry=END)  # loaded before the s251 date was corrected
    services.update_compliance_dates(project=stale, by=ig, s251_expiry=TODAY - timedelta(days=1))
    services.run_compliance(today=TODAY)
    assert _status(stale) == S.SUSPENDED

    with pytest.raises(InvalidTransition):
        services.resume_project(project=stale, by=ig, today=TODAY)

    assert _status(stale) == S.SUSPENDED


@pytest.mark.parametrize("how", ["add_member", "create_project"])
def test_nobody_grants_themselves_access_to_a_projects_data(make_project, ig, how):
    accredit(ig)
    project = make_project() if how == "add_member" else None

    with pytest.raises(PermissionDenied):
        if project is not None:
            services.add_member(project=project, member=MemberSpec(ig, "analyst"), by=ig)
        else:
            make_project(members=[MemberSpec(ig, "analyst")], by=ig)


def test_the_extracts_task_builds_a_missing_dummy_extract(ingested, make_project, custodian):
    project = make_project()
    build_extract(scope=ExtractScope.from_json(project.scope), by=custodian)  # then the worker died

    build_project_extracts_task(project.pk)

    assert current_extract(project.pk, dummy=True) is not None


@pytest.mark.parametrize(
    ("who", "refusal"), [("ig", PermissionDenied), ("system", InvalidTransition)]
)
def test_a_project_is_not_expired_before_its_end_date(make_project, ig, who, refusal):
    today = timezone.localdate()
    project = make_project(start_date=today, end_date=today + timedelta(days=90))
    by = ig if who == "ig" else get_system_user()

    with pytest.raises(refusal):
        services.expire_project(project=project, by=by, today=project.end_date)

    assert _status(project) == S.ACTIVE


# =========================================================================================
# Field-level object permissions
# =========================================================================================
def _fields(project: Project) -> list[str]:
    return sorted(f.label for f in project.fields.select_related("field__dataset"))


def test_the_approved_fields_are_the_projects_field_objects(make_project):
    project = make_project()

    assert _fields(project) == SCOPE_FIELDS


def test_a_changed_scope_grants_the_added_fields_and_revokes_the_removed_ones_at_once(
    make_project, ig, member
):
    reader = researcher()
    project = make_project(
        members=[MemberSpec(member, "analyst"), MemberSpec(reader, "supervisor", False)]
    )
    scope = {**SCOPE, "datasets": {"patients": ["person_id", "sex", "ethnicity"]}}
    at = mark()

    services.change_project(
        project=project, by=get_system_user(), access_request_id=7, end_date=END,
        conditions="", scope=scope,
    )  # fmt: skip

    project.refresh_from_db()
    assert _fields(project) == ["patients.ethnicity", "patients.person_id", "patients.sex"]
    system = get_system_user().pk
    assert [(e.event_type, e.actor_id, e.data) for e in events_since(at)] == [
        (E.OBJECT_PERMISSION_REVOKED, system,
         {"user_id": member.pk, "permission": FIELDS,
          "fields": ["gp-events.date", "gp-events.person_id"]}),
        (E.OBJECT_PERMISSION_GRANTED, system,
         {"user_id": member.pk, "permission": FIELDS, "fields": ["patients.ethnicity"]}),
        (E.PROJECT_CHANGED, system, {"access_request_id": 7, "changed": ["scope"]}),
    ]  # fmt: skip
    assert policy.fields_not_granted(member, project) == []
    assert policy.fields_not_granted(reader, project) == _fields(project)
    assert policy.project_data_refusal(member, project, today=TODAY) is None


def test_an_unchanged_scope_changes_no_field_permission(make_project, member):
    project = make_project()
    at = mark()

    services.change_project(
        project=project, by=get_system_user(), access_request_id=7, end_date=END,
        conditions="", scope=SCOPE,
    )  # fmt: skip

    assert types_since(at) == [E.PROJECT_CHANGED]
    assert _holds(member, FIELDS, project)


def test_field_permissions_belong_to_one_project(make_project, member):
    """A person in two projects holds each project's fields on that project's objects:
    the permissions of one never open a field of the other."""
    wide = make_project()
    narrow = make_project(scope={**SCOPE, "datasets": {"patients": ["person_id"]}})
    held = policy.objects_with_permission(member, FIELDS, narrow.fields.all())

    assert sorted(f.label for f in held.select_related("field__dataset")) == ["patients.person_id"]
    services.remove_member(project=wide, user=member, by=get_system_user())
    assert policy.fields_not_granted(member, narrow) == []
    assert policy.project_data_refusal(member, narrow, today=TODAY) is None


def test_project_fields_refuse_direct_writes(make_project):
    project = make_project()

    with pytest.raises(GovernedWriteRefused):
        project.fields.first().delete()
    with pytest.raises(GovernedWriteRefused):
        project.fields.all().delete()

    assert _fields(project) == SCOPE_FIELDS
