"""Amendments, extensions and renewals (``services.start_change`` and the approval that
applies them through ``sde.projects.services.change_project``): who starts one and when,
what each kind may change, the difference reviewers see (``selectors.changes``), and what
an approved change does to the project: end date, scope (extracts rebuilt after commit),
members (permissions taken away or given at once) and compliance dates."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest

from access_requests import questions, selectors, services
from access_requests.models import AccessRequest
from sde import policy
from sde.audit.events import EventType as E
from sde.audit.services import get_system_user
from sde.celery import app as celery_app
from sde.data.extracts import current_extract
from sde.data.models import Extract
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.identity.models import Organisation, User
from sde.projects import services as projects
from sde.projects.models import Project
from sde.tasks import build_project_extracts_task
from tests import scenarios
from tests.events import events_since, mark, types_since
from tests.unit.access_requests.builders import (
    END,
    TODAY,
    Panel,
    answers,
    approve_by,
    caldicott_guardian,
    drafted,
    drive_to,
    fresh,
    ig_officer,
    panel,
)
from tests.unit.sde.projects.builders import researcher

pytestmark = pytest.mark.django_db

S = AccessRequest.Status
K = AccessRequest.Kind
PI = "principal_investigator"
KINDS = (K.AMENDMENT, K.EXTENSION, K.RENEWAL)
ACCEPTED = {"agreement_version": questions.AGREEMENT_VERSION, "accepted": True}
VIEW, DATA = policy.PROJECT_VIEW, policy.PROJECT_DATA


@dataclass
class Live:
    """An approved application and the project it created."""

    request: AccessRequest
    project: Project
    panel: Panel
    analyst: User  # a second data user on the team
    ig_member: User  # an IG officer on the team (does not use data)


def _live(organisation: Organisation, applicant: User, *, end: date = END, **sections: Any) -> Live:
    reviewers, analyst, ig_member = panel(), researcher(), ig_officer()
    team = [(applicant, PI, True), (analyst, "analyst", True), (ig_member, "supervisor", False)]
    request = drive_to(
        drafted(applicant, organisation, answers(organisation, team, **sections)),
        S.IN_REVIEW,
        by=reviewers,
    )
    request = approve_by(request, *reviewers.reviewers[:2], end=end)
    assert request.status == S.APPROVED
    return Live(request, request.project, reviewers, analyst, ig_member)


def _save(request: AccessRequest, by: User, sections: dict[str, Any]) -> AccessRequest:
    saved, _ = services.save_answers(
        request=request,
        by=by,
        revision=fresh(request).revision,
        answers={**fresh(request).answers, **sections},
        sections=list(sections),
    )
    return saved


def _submitted(change: AccessRequest, by: User, **sections: Any) -> AccessRequest:
    changed = _save(change, by, {"declarations": ACCEPTED, **sections})
    return services.submit(request=changed, by=by, today=TODAY)


def _holds(user: User, permission: str, project: Project) -> bool:
    return policy.user_has_object_permission(user, permission, project)


# =========================================================================================
# Starting a change
# =========================================================================================
@pytest.mark.parametrize("kind", KINDS)
def test_a_member_starts_a_change_prefilled_from_the_approved_application(
    organisation, applicant, kind
):
    approved_end = END - timedelta(days=90)
    live = _live(organisation, applicant, end=approved_end)
    at = mark()

    change = services.start_change(project=live.project, kind=kind, by=live.analyst)

    assert (change.kind, change.status, change.applicant) == (kind, S.DRAFT, live.analyst)
    assert (change.project, change.based_on) == (live.project, live.request)
    assert (change.organisation, change.title) == (organisation, live.request.title)
    approved = live.request.answers
    assert change.answers == {
        **approved,
        "meta": {**approved["meta"], "end_date": approved_end.isoformat()},
        "declarations": {},  # each change accepts the agreement again
    }
    (event,) = events_since(at)
    assert (event.event_type, event.project_id, event.data) == (
        E.REQUEST_CREATED,
        live.project.pk,
        {"kind": kind, "question_set": questions.VERSION, "based_on": live.request.pk},
    )


def test_a_change_of_an_unknown_kind_is_refused(organisation, applicant):
    live = _live(organisation, applicant)

    with pytest.raises(ValidationError) as raised:
        services.start_change(project=live.project, kind=K.NEW, by=applicant)

    assert set(raised.value.errors) == {"kind"}


def test_only_a_current_member_who_applies_for_access_starts_a_change(organisation, applicant):
    live = _live(organisation, applicant)
    leaver = live.analyst
    projects.remove_member(project=live.project, user=leaver, by=live.panel.reviewers[0])
    supervisor = researcher()
    projects.add_member(
        project=live.project,
        member=projects.MemberSpec(supervisor, "supervisor", False),
        by=live.panel.reviewers[0],
    )
    refused = {
        "researcher-not-on-the-project": (researcher(), NotFound),
        "removed-member": (leaver, NotFound),
        "ig-officer": (ig_officer(), PermissionDenied),  # sees every project, never applies
        "ig-officer-on-the-project": (live.ig_member, PermissionDenied),
        "caldicott-guardian": (caldicott_guardian(), NotFound),
        "administrator": (scenarios.administrator(), NotFound),
    }
    at = mark()
    observed = {}

    for who, (user, _) in refused.items():
        try:
            services.start_change(project=live.project, kind=K.AMENDMENT, by=user)
        except (NotFound, PermissionDenied) as error:
            observed[who] = type(error)

    assert observed == {who: error for who, (_, error) in refused.items()}
    assert types_since(at) == []
    assert AccessRequest.objects.count() == 1
    # A member who does not use data may still ask for a change.
    assert services.start_change(project=live.project, kind=K.AMENDMENT, by=supervisor)


def _expire(project: Project, ig: User) -> Project:
    return projects.expire_project(
        project=project, by=get_system_user(), today=project.end_date + timedelta(days=1)
    )


PROJECT_STATUS: dict[str, tuple[Callable[[Project, User], Project], Any]] = {
    "suspended": (
        lambda p, ig: projects.suspend_project(project=p, reason="DSPT review", by=ig), None
    ),
    "expired": (_expire, InvalidTransition),
    "revoked": (lambda p, ig: projects.revoke_project(project=p, reason="breach", by=ig),
                InvalidTransition),
    "closed": (lambda p, ig: projects.close_project(project=p, attestation="Destroyed.", by=ig),
               NotFound),  # members no longer see a closed project
}  # fmt: skip


@pytest.mark.parametrize("status", PROJECT_STATUS)
def test_a_change_is_started_only_for_an_active_or_suspended_project(
    organisation, applicant, status
):
    live = _live(organisation, applicant)
    move, error = PROJECT_STATUS[status]
    project = move(live.project, live.panel.reviewers[0])
    assert project.status == status

    if error is None:
        assert services.start_change(project=project, kind=K.RENEWAL, by=applicant)
        return
    at = mark()
    with pytest.raises(error):
        services.start_change(project=project, kind=K.RENEWAL, by=applicant)
    assert types_since(at) == []
    assert AccessRequest.objects.count() == 1


def test_a_project_made_without_an_application_has_nothing_to_change(applicant, organisation):
    project = projects.create_project(
        title="Imported",
        lay_summary="From the old system.",
        organisation=organisation,
        scope={
            "datasets": {"patients": ["person_id"]},
            "purpose": "planning",
            "legal_basis": "copi_reg3",
        },
        start_date=TODAY,
        end_date=END,
        members=[projects.MemberSpec(applicant, PI)],
        by=ig_officer(),
    )

    with pytest.raises(InvalidTransition):
        services.start_change(project=project, kind=K.AMENDMENT, by=applicant)


def test_only_one_change_is_in_progress_at_a_time(organisation, applicant):
    live = _live(organisation, applicant)
    first = services.start_change(project=live.project, kind=K.AMENDMENT, by=applicant)
    refused = {}

    reviewer = live.panel.reviewers[0]
    aims = {**first.answers["project"], "aims": "Also find the untreated over-80s."}
    steps: dict[str, Callable[[AccessRequest], AccessRequest]] = {
        S.DRAFT: lambda r: r,
        S.SUBMITTED: lambda r: _submitted(r, applicant, project=aims),
        S.IN_REVIEW: lambda r: services.start_review(request=r, by=reviewer),
        S.RETURNED: lambda r: services.return_request(request=r, by=reviewer, reason="More."),
    }

    for status, step in steps.items():
        first = step(first)
        assert fresh(first).status == status
        at = mark()
        for kind in KINDS:
            with pytest.raises(InvalidTransition):
                services.start_change(project=live.project, kind=kind, by=live.analyst)
        refused[status] = types_since(at) == []

    assert refused == dict.fromkeys((S.DRAFT, S.SUBMITTED, S.IN_REVIEW, S.RETURNED), True)
    services.withdraw(request=first, by=applicant)
    assert services.start_change(project=live.project, kind=K.EXTENSION, by=live.analyst)


# =========================================================================================
# What each kind may change
# =========================================================================================
def test_an_extension_changes_the_end_date_only(organisation, applicant):
    live = _live(organisation, applicant)
    extension = services.start_change(project=live.project, kind=K.EXTENSION, by=applicant)
    new_end = END + timedelta(days=365)
    before, at = fresh(extension).answers, mark()

    for sections in (
        {"project": {"aims": "Something else."}},
        {"meta": {"end_date": new_end.isoformat()}, "data": before["data"]},
    ):
        with pytest.raises(ValidationError):
            _save(extension, applicant, sections)
    assert (fresh(extension).answers, types_since(at)) == (before, [])
    saved = _save(
        extension,
        applicant,
        {"meta": {**before["meta"], "title": "A new title", "end_date": new_end.isoformat()}},
    )

    assert saved.answers == {**before, "meta": {**before["meta"], "end_date": new_end.isoformat()}}
    assert saved.title == live.request.title
    assert selectors.changes(saved) == [
        ("meta.end_date", END.isoformat(), new_end.isoformat()),
        ("declarations.accepted", True, None),
        ("declarations.agreement_version", questions.AGREEMENT_VERSION, None),
    ]


def test_an_approved_extension_moves_the_end_date_and_nothing_else(organisation, applicant):
    live = _live(organisation, applicant)
    extension = services.start_change(project=live.project, kind=K.EXTENSION, by=applicant)
    new_end = END + timedelta(days=365)
    extension, errors = services.save_answers(
        request=extension,
        by=applicant,
        revision=extension.revision,
        sections=["meta"],
        answers={"meta": {**extension.answers["meta"], "end_date": new_end.isoformat()}},
    )
    if errors["declarations"]:  # if the agreement must be accepted again, it can be
        extension, _ = services.save_answers(
            request=extension,
            by=applicant,
            revision=extension.revision,
            sections=["declarations"],
            answers={"declarations": ACCEPTED},
        )
    extension = services.submit(request=extension, by=applicant, today=TODAY)
    extension = services.start_review(request=extension, by=live.panel.reviewers[0])
    scope = live.project.scope
    at = mark()

    extension = approve_by(extension, *live.panel.reviewers[:2], end=new_end)

    project = Project.objects.get(pk=live.project.pk)
    assert extension.status == S.APPROVED
    assert (project.end_date, project.scope) == (new_end, scope)
    changed = [e for e in events_since(at) if e.event_type == E.PROJECT_CHANGED]
    assert [e.data["changed"] for e in changed] == [["end_date"]]


def _unchanged_amendment(live: Live, applicant: User) -> AccessRequest:
    amendment = services.start_change(project=live.project, kind=K.AMENDMENT, by=applicant)
    return _save(amendment, applicant, {"declarations": ACCEPTED})


def test_an_amendment_that_changes_nothing_cannot_be_submitted(organisation, applicant):
    live = _live(organisation, applicant)
    amendment = _unchanged_amendment(live, applicant)
    before, at = fresh(amendment).answers, mark()

    with pytest.raises(ValidationError) as raised:
        services.submit(request=amendment, by=applicant, today=TODAY)

    assert raised.value.errors == {
        "request": ["Nothing has changed from the approved application."]
    }
    assert selectors.changes(amendment) == []
    assert (fresh(amendment).status, fresh(amendment).answers) == (S.DRAFT, before)
    assert types_since(at) == []


def test_an_amendment_is_compared_with_the_approved_terms(organisation, applicant):
    live = _live(organisation, applicant, end=END - timedelta(days=90))
    amendment = _unchanged_amendment(live, applicant)

    assert selectors.changes(amendment) == []
    with pytest.raises(ValidationError):
        services.submit(request=amendment, by=applicant, today=TODAY)


def test_a_new_application_has_no_difference_to_show(organisation, applicant):
    live = _live(organisation, applicant)

    assert selectors.changes(live.request) == []


# =========================================================================================
# Review of a change
# =========================================================================================
def test_a_member_of_the_project_cannot_review_its_amendment(organisation, applicant):
    live = _live(organisation, applicant)
    amendment = services.start_change(project=live.project, kind=K.AMENDMENT, by=applicant)
    # The IG officer leaves the team listed in the amendment, but is still a member.
    team = [
        m
        for m in amendment.answers["people"]["members"]
        if m["username"] != live.ig_member.username
    ]
    amendment = _submitted(
        amendment, applicant, people={**amendment.answers["people"], "members": team}
    )
    at = mark()

    assert services.conflict_of(live.ig_member, amendment) == "you are on its team"
    with pytest.raises(PermissionDenied):
        services.start_review(request=amendment, by=live.ig_member)
    assert (fresh(amendment).status, types_since(at)) == (S.SUBMITTED, [])
    assert services.conflict_of(live.panel.reviewers[2], amendment) is None


# =========================================================================================
# An approved amendment changes the project
# =========================================================================================
def test_an_approved_amendment_changes_the_project_and_its_extracts_after_commit(
    ingested, organisation, applicant, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.SDE_AUDIT_CHECKPOINT_EVERY = 10**9  # no checkpoint task among the callbacks
    live = _live(organisation, applicant)
    project = live.project
    assert build_project_extracts_task(project.pk) == "built"
    old = {e.pk for e in Extract.objects.filter(project_id=project.pk)}
    newcomer = researcher()
    amendment = services.start_change(project=project, kind=K.AMENDMENT, by=applicant)
    approved = copy.deepcopy(amendment.answers)
    datasets = {
        **approved["data"]["datasets"],
        "patients": {
            **approved["data"]["datasets"]["patients"],
            "place": "Rates are compared between places.",
        },
    }
    team = [
        {"username": applicant.username, "role": PI, "accesses_data": True},
        {"username": newcomer.username, "role": "analyst", "accesses_data": True},
        {"username": live.ig_member.username, "role": "supervisor", "accesses_data": False},
    ]
    new_end = END - timedelta(days=180)
    amendment = _submitted(
        amendment,
        applicant,
        meta={**approved["meta"], "end_date": new_end.isoformat()},
        people={**approved["people"], "members": team},
        data={**approved["data"], "datasets": datasets},
    )
    assert selectors.changes(amendment) == [
        ("meta.end_date", END.isoformat(), new_end.isoformat()),
        ("people.members", approved["people"]["members"], team),
        ("data.datasets", approved["data"]["datasets"], datasets),
    ]
    amendment = services.start_review(request=amendment, by=live.panel.reviewers[0])
    amendment = approve_by(amendment, live.panel.reviewers[0], end=new_end)
    at = mark()

    with django_capture_on_commit_callbacks() as callbacks:
        amendment = approve_by(amendment, live.panel.reviewers[1], end=new_end)
        changed = Project.objects.get(pk=project.pk)
        # Members change at once, inside the approval's transaction.
        assert not _holds(live.analyst, VIEW, changed) and not _holds(live.analyst, DATA, changed)
        assert _holds(newcomer, VIEW, changed) and _holds(newcomer, DATA, changed)
        assert not Extract.objects.exclude(pk__in=old).exists()  # nothing built yet

    assert amendment.status == S.APPROVED and amendment.project_id == project.pk
    assert (changed.end_date, changed.status) == (new_end, Project.Status.ACTIVE)
    assert changed.scope["datasets"]["patients"] == ["person_id", "place", "sex"]
    assert policy.project_data_refusal(live.analyst, changed, today=TODAY) == (
        "you are not a member of this project who uses its data"
    )
    assert policy.project_data_refusal(newcomer, changed, today=TODAY) is None
    assert policy.project_data_refusal(applicant, changed, today=TODAY) is None
    (event,) = [e for e in events_since(at) if e.event_type == E.PROJECT_CHANGED]
    assert event.data == {
        "access_request_id": amendment.pk,
        "changed": ["end_date", "scope", "members"],
    }
    assert not Project.objects.exclude(pk=project.pk).exists()  # changed, not created

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    assert len(callbacks) == 1
    callbacks[0]()

    real, dummy = current_extract(project.pk), current_extract(project.pk, dummy=True)
    assert real is not None and dummy is not None
    assert real.scope == dummy.scope == changed.scope
    assert real.rebuild_reason == "amendment approved"
    assert {e.pk for e in Extract.objects.filter(pk__in=old, deleted_at__isnull=False)} == old


def test_an_approved_renewal_records_the_new_compliance_dates(organisation, applicant):
    live = _live(organisation, applicant)
    renewal = services.start_change(project=live.project, kind=K.RENEWAL, by=applicant)
    legal = {**renewal.answers["legal"], "s251_expiry": "2029-03-31"}
    people = copy.deepcopy(renewal.answers["people"])
    people["organisations"][0]["dspt_expiry"] = "2028-06-30"
    renewal = _submitted(
        renewal,
        applicant,
        legal=legal,
        people=people,
        meta={**renewal.answers["meta"], "end_date": "2028-12-31"},
    )
    renewal = services.start_review(request=renewal, by=live.panel.reviewers[0])

    renewal = approve_by(renewal, *live.panel.reviewers[:2], end=date(2028, 12, 31))

    project = Project.objects.get(pk=live.project.pk)
    assert renewal.status == S.APPROVED
    assert (project.end_date, project.s251_expiry, project.dspt_expiry) == (
        date(2028, 12, 31),
        date(2029, 3, 31),
        date(2028, 6, 30),
    )
    # The members were unchanged, so nobody lost or gained a permission.
    assert _holds(live.analyst, DATA, project) and _holds(applicant, DATA, project)
    # The next change starts from the renewal.
    follow_up = services.start_change(project=project, kind=K.AMENDMENT, by=applicant)
    assert follow_up.based_on == renewal
    assert follow_up.answers["meta"]["end_date"] == "2028-12-31"


def test_an_approved_amendment_renames_the_project(organisation, applicant):
    live = _live(organisation, applicant)
    amendment = services.start_change(project=live.project, kind=K.AMENDMENT, by=applicant)
    answers_now = amendment.answers
    amendment = _submitted(
        amendment,
        applicant,
        meta={**answers_now["meta"], "title": "Hypertension and stroke in North Place"},
        project={**answers_now["project"], "lay_summary": "Who has a stroke after missed care."},
    )
    amendment = services.start_review(request=amendment, by=live.panel.reviewers[0])

    amendment = approve_by(amendment, *live.panel.reviewers[:2])

    project = Project.objects.get(pk=live.project.pk)
    assert project.lay_summary == "Who has a stroke after missed care."
    assert project.title == amendment.title == "Hypertension and stroke in North Place"
