"""The project REST API: every project-scoped URL (listed from the URL resolver, so a URL
added tomorrow is covered the day it is added) for members, other researchers, IG,
custodians and anonymous callers; what a project shows its members and IG (never the
opt-out removal counts); IG's actions through the services; and changes to a live
project, which start a new access request."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from access_requests.models import AccessRequest
from sde.analysis import services as analysis
from sde.analysis.models import Job
from sde.audit.events import EventType
from sde.data.models import Extract
from sde.identity import services as identity
from sde.identity.models import User
from sde.identity.roles import Role
from sde.projects import services
from sde.projects.models import Project, ProjectMembership
from tests import scenarios
from tests.api_schema import openapi_path, schema_without_warnings
from tests.events import events_since, mark, types_since
from tests.shared_db import module_custodian
from tests.unit.access_requests.builders import answers, drafted, drive_to, panel
from tests.unit.access_requests.builders import applicant as make_applicant
from tests.unit.sde.projects.builders import researcher
from tests.unit.sde.projects.conftest import drop_dir, ingested  # noqa: F401

pytestmark = pytest.mark.django_db

E = EventType
P = Project.Status
JSON = "application/json"
PROFILE = {"analysis": "population_profile", "parameters": {"index_date": "2026-01-01"}}


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path, custodian: User) -> Path:
    """A private data root and the catalogue (a project's scope is checked against it)."""
    return private_data_root


# Every test here has the catalogue (``data_root``): made once for the module.
custodian = module_custodian


# --- a project made by approving an access request ---------------------------------------
@dataclass
class World:
    project: Project
    request: AccessRequest  # the approved application
    member: User  # its principal investigator, who uses the data
    ig: User
    newcomer: User  # an accredited researcher who is not a member (yet)
    job: Job  # the member's dummy run of an analysis, queued (no extract is built here)


def _world() -> World:
    organisation = scenarios.organisation()
    member = make_applicant(organisation)
    reviewers = panel(2)
    filled = answers(organisation, [(member, "principal_investigator", True)])
    request = drive_to(
        drafted(member, organisation, filled), AccessRequest.Status.APPROVED, by=reviewers
    )
    assert request.project is not None
    newcomer = researcher()
    job = analysis.submit_job(project=request.project, by=member, on_dummy=True, **PROFILE)
    return World(request.project, request, member, reviewers.reviewers[0], newcomer, job)


def _state() -> tuple[Any, ...]:
    """Everything a project call could change."""
    return (
        sorted(
            Project.objects.values_list(
                "pk", "status", "status_reason", "s251_expiry", "rec_expiry", "dspt_expiry"
            )
        ),
        sorted(ProjectMembership.objects.values_list("pk", "user_id", "removed_at")),
        sorted(AccessRequest.objects.values_list("pk", "status")),
    )


def _token_client(user: User) -> Client:
    _, key = identity.create_api_token(user=user, name="scripts", by=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _errors(response: Any) -> dict[str, list[str]]:
    body = response.json()
    return body["errors"] if "errors" in body and "detail" in body else body


# --- every project-scoped URL, from the resolver ------------------------------------------
def _walk(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry, route)
        else:
            yield route, entry.name or route, entry.callback


def _methods(callback: Any) -> list[str]:
    view = callback.view_class
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)]


PROJECT_ROUTES = {
    name: (route, callback)
    for route, name, callback in _walk(get_resolver())
    if route.startswith("api/") and "projects/<int:pk>" in route
}
CALLS = sorted(
    (name, method)
    for name, (_, callback) in PROJECT_ROUTES.items()
    for method in _methods(callback)
)
# What each path parameter names in the world. A URL with another parameter fails until
# it is taught here.
PARAMETERS: dict[str, Callable[[World], int]] = {
    "pk": lambda w: w.project.pk,
    "user_pk": lambda w: w.member.pk,
    "job_id": lambda w: w.job.pk,
    "output_id": lambda w: 1,  # a queued job has none (tests/unit/sde/analysis/test_api.py)
}


@dataclass(frozen=True)
class Row:
    member: int
    ig: int
    body: Callable[[World], dict[str, Any]] | None = None


# (URL name, method) -> what a member and an IG officer get. Outsiders always get 404 and
# anonymous callers 401, whatever the URL.
EXPECTED: dict[tuple[str, str], Row] = {
    ("api-project", "get"): Row(200, 200),
    ("api-project-suspend", "post"): Row(403, 200, lambda w: {"reason": "DSPT under review"}),
    ("api-project-resume", "post"): Row(403, 409),  # it is active
    ("api-project-revoke", "post"): Row(403, 200, lambda w: {"reason": "Breach"}),
    ("api-project-close", "post"): Row(403, 200, lambda w: {"attestation": "Destroyed, cert 42"}),
    ("api-project-members", "post"): Row(
        403, 201, lambda w: {"user": w.newcomer.pk, "role": "analyst"}
    ),
    ("api-project-member", "delete"): Row(403, 204),
    ("api-project-compliance", "patch"): Row(403, 200, lambda w: {"rec_expiry": "2027-10-31"}),
    # Only a member applies for a change; IG officers do not apply for access.
    ("api-project-changes", "post"): Row(201, 403, lambda w: {"kind": "amendment"}),
    # The analysis workspace: only a member who uses the data runs or saves anything.
    ("api-project-jobs", "get"): Row(200, 200),
    ("api-project-jobs", "post"): Row(201, 403, lambda w: {**PROFILE, "on_dummy": True}),
    ("api-project-job", "get"): Row(200, 200),
    ("api-project-job-cancel", "post"): Row(200, 403),  # the requester's queued job
    ("api-project-job-rerun", "post"): Row(201, 403),
    ("api-project-job-log", "get"): Row(404, 404),  # not run yet: no log
    ("api-project-job-output", "get"): Row(404, 404),  # not run yet: no outputs
    ("api-project-scripts", "get"): Row(200, 200),
    ("api-project-scripts", "post"): Row(201, 403, lambda w: {"name": "a.py", "content": "1\n"}),
    ("api-project-cohorts", "get"): Row(200, 200),
    # Release requests: only a member who uses the data starts one (outputs/api.py).
    ("api-project-releases", "get"): Row(200, 200),
    ("api-project-releases", "post"): Row(201, 403, lambda w: {"title": "Counts by sex"}),
}
ROLES = ("member", "researcher", "ig", "custodian", "anonymous")


def _url(name: str, world: World) -> str:
    route, _ = PROJECT_ROUTES[name]
    params = re.findall(r"<(?:\w+:)?(\w+)>", route)
    return reverse(name, kwargs={p: PARAMETERS[p](world) for p in params})


def _call(client: Client, name: str, method: str, world: World) -> Any:
    row = EXPECTED.get((name, method))
    body = row.body(world) if row and row.body else {}
    url = _url(name, world)
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body, JSON)


def test_the_resolver_lists_the_project_urls():
    assert {"api-project", "api-project-suspend", "api-project-changes"} <= set(PROJECT_ROUTES)
    assert "api-projects" not in PROJECT_ROUTES  # the list is not one project's


def test_every_project_scoped_call_is_in_the_table():
    assert set(CALLS) == set(EXPECTED)


@pytest.mark.parametrize(("name", "method"), CALLS, ids=[f"{n}-{m}" for n, m in CALLS])
def test_every_project_url_answers_every_role_as_the_policy_says(
    client, client_for, custodian, name, method
):
    """One row per URL and method, one column per role. Refusals come first, in the same
    world, and each changes nothing; then the roles that succeed. The other researcher
    calls with an API token, everyone else with a verified session."""
    world = _world()
    row = EXPECTED[(name, method)]
    expected = {"member": row.member, "researcher": 404, "ig": row.ig, "custodian": 404,
                "anonymous": 401}  # fmt: skip
    people = {"member": world.member, "ig": world.ig, "custodian": custodian,
              "researcher": scenarios.person(Role.RESEARCHER, accredited=True)}  # fmt: skip
    answered = {}

    for role in sorted(ROLES, key=lambda r: expected[r] < 400):
        if role == "anonymous":
            caller = client
        elif role == "researcher":
            caller = _token_client(people[role])
        else:
            caller = client_for(people[role])
        before, at = _state(), mark()
        response = _call(caller, name, method, world)
        answered[role] = response.status_code
        if response.status_code >= 400:
            assert (_state(), types_since(at)) == (before, []), role

    assert answered == expected


# --- reading -----------------------------------------------------------------------------
def test_the_list_holds_the_projects_the_caller_may_see(client_for):
    first, second = _world(), _world()
    outsider = scenarios.person(Role.RESEARCHER)

    def listed(user: User, **query: str) -> list[int]:
        body = client_for(user).get(reverse("api-projects"), query).json()
        return [p["id"] for p in body["results"]]

    assert listed(first.member) == [first.project.pk]
    assert listed(outsider) == []
    assert listed(first.ig) == [second.project.pk, first.project.pk]  # newest first
    services.suspend_project(project=second.project, reason="Review", by=first.ig)
    assert listed(first.ig, status="suspended") == [second.project.pk]
    assert client_for(first.ig).get(reverse("api-projects"), {"status": "x"}).status_code == 400


def test_a_member_sees_the_approved_scope_the_team_and_that_they_may_use_the_data(client_for):
    world = _world()

    response = client_for(world.member).get(reverse("api-project", args=[world.project.pk]))

    assert response.status_code == 200
    body = response.json()
    project = world.project
    assert (body["id"], body["status"], body["title"]) == (project.pk, "active", project.title)
    assert (body["start_date"], body["end_date"]) == ("2026-01-01", "2027-12-31")
    assert body["access_request_id"] == world.request.pk
    assert body["s251_expiry"] == "2027-12-31"
    scope = body["scope"]
    assert {d["slug"]: d["fields"] for d in scope["datasets"]} == {
        "patients": ["person_id", "sex"],
        "gp-events": ["date", "person_id"],
    }
    assert (scope["purpose"], scope["purpose_text"]) == ("research", "Research")
    assert scope["legal_basis"] == "s251_standard"
    assert scope["legal_basis_text"].startswith("s251")
    assert scope["cohort_filters"] == {**scope["cohort_filters"], "age_min": 18}
    assert [(m["user"]["id"], m["role"], m["accesses_data"]) for m in body["members"]] == [
        (world.member.pk, "principal_investigator", True)
    ]
    assert body["data_access"] == {"allowed": True, "refusal": None}
    assert body["extracts"]["real"]["state"] == "building"
    assert body["extracts"]["real"]["built_at"] is None


def test_ig_sees_the_project_but_may_not_use_its_data(client_for):
    world = _world()

    body = client_for(world.ig).get(reverse("api-project", args=[world.project.pk])).json()

    assert body["data_access"] == {
        "allowed": False,
        "refusal": "you are not a member of this project who uses its data",
    }


def test_a_suspended_project_says_why_its_data_cannot_be_used(client_for):
    world = _world()
    services.suspend_project(project=world.project, reason="DSPT lapsed", by=world.ig)

    body = client_for(world.member).get(reverse("api-project", args=[world.project.pk])).json()

    assert body["status"] == "suspended"
    assert body["status_reason"] == "DSPT lapsed"
    assert body["data_access"] == {"allowed": False, "refusal": "the project is suspended"}


@pytest.mark.usefixtures("ingested")
def test_extract_status_shows_tables_and_rows_but_never_what_opt_outs_removed(
    client_for, custodian
):
    world = _world()
    services.build_project_extracts(project=world.project, by=custodian)
    real = Extract.objects.get(project_id=world.project.pk, is_dummy=False)

    response = client_for(world.member).get(reverse("api-project", args=[world.project.pk]))

    extracts = response.json()["extracts"]
    assert extracts["real"]["state"] == "ready"
    assert extracts["dummy"]["state"] == "ready"
    assert extracts["real"]["built_at"] is not None
    rows = {t["dataset"]: t["rows"] for t in extracts["real"]["tables"]}
    assert sorted(rows.values()) == sorted(t["rows"] for t in real.tables.values())
    assert set(extracts["real"]) == {"state", "built_at", "deleted_at", "tables", "stale_reasons"}
    text = response.content.decode()
    assert not {"removed", "snapshot", "treatment", "ndop", "type1"} & set(
        json.dumps(extracts).replace('"', " ").replace("_", " ").split()
    )
    assert "people_removed" not in text and "rows_removed" not in text


def test_a_pause_reason_is_for_the_member_and_ig_only(client_for):
    world = _world()
    services.add_member(project=world.project, by=world.ig,
                        member=services.MemberSpec(world.newcomer, "analyst"))  # fmt: skip
    membership = world.project.memberships.get(user=world.member)
    services._pause_member(membership, reason="accreditation lapsed", by=world.ig)

    def reason(viewer: User) -> Any:
        body = client_for(viewer).get(reverse("api-project", args=[world.project.pk])).json()
        (entry,) = [m for m in body["members"] if m["user"]["id"] == world.member.pk]
        return entry["data_access_paused"], entry["pause_reason"]

    assert reason(world.member) == (True, "accreditation lapsed")
    assert reason(world.ig) == (True, "accreditation lapsed")
    assert reason(world.newcomer) == (True, None)


# --- IG's actions -------------------------------------------------------------------------
def test_suspend_and_resume_are_audited_and_restore_access(client_for):
    world = _world()
    client = client_for(world.ig)
    at = mark()

    suspended = client.post(
        reverse("api-project-suspend", args=[world.project.pk]), {"reason": "Review"}, JSON
    )
    resumed = client.post(reverse("api-project-resume", args=[world.project.pk]))

    assert (suspended.status_code, suspended.json()["status"]) == (200, "suspended")
    assert (resumed.status_code, resumed.json()["status"]) == (200, "active")
    assert [(e.event_type, e.actor_id) for e in events_since(at)] == [
        (E.PROJECT_SUSPENDED, world.ig.pk),
        (E.PROJECT_RESUMED, world.ig.pk),
    ]


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("api-project-suspend", {"reason": "  "}, "reason"),
        ("api-project-revoke", {}, "reason"),
        ("api-project-close", {"attestation": ""}, "attestation"),
        ("api-project-compliance", {}, "non_field_errors"),
        ("api-project-compliance", {"rec_expiry": "soon"}, "rec_expiry"),
        ("api-project-members", {"user": 999_999, "role": "analyst"}, "user"),
        ("api-project-members", {"user": 1, "role": "owner"}, "role"),
    ],
)
def test_an_invalid_ig_action_is_a_400_and_changes_nothing(client_for, action, body, field):
    world = _world()
    before, at = _state(), mark()
    method = "patch" if action == "api-project-compliance" else "post"

    response = getattr(client_for(world.ig), method)(
        reverse(action, args=[world.project.pk]), body, JSON
    )

    assert response.status_code == 400
    assert field in _errors(response)
    assert (_state(), types_since(at)) == (before, [])


def test_a_new_member_sees_the_project_and_a_removed_one_does_not(client_for):
    world = _world()
    ig = client_for(world.ig)
    url = reverse("api-project", args=[world.project.pk])

    added = ig.post(
        reverse("api-project-members", args=[world.project.pk]),
        {"user": world.newcomer.pk, "role": "analyst"},
        JSON,
    )
    seen = client_for(world.newcomer).get(url)
    removed = ig.delete(reverse("api-project-member", args=[world.project.pk, world.newcomer.pk]))

    assert added.status_code == 201
    assert world.newcomer.pk in [m["user"]["id"] for m in added.json()["members"]]
    assert seen.json()["data_access"] == {"allowed": True, "refusal": None}
    assert removed.status_code == 204
    assert client_for(world.newcomer).get(url).status_code == 404


def test_adding_a_member_twice_or_an_ig_officer_as_a_data_user_is_refused(client_for):
    world = _world()
    url = reverse("api-project-members", args=[world.project.pk])
    officer = scenarios.person(Role.IG_OFFICER)
    before = _state()

    twice = client_for(world.ig).post(url, {"user": world.member.pk, "role": "analyst"}, JSON)
    ig_data = client_for(world.ig).post(url, {"user": officer.pk, "role": "analyst"}, JSON)

    assert (twice.status_code, _errors(twice)) == (400, {"user": ["Already a member."]})
    assert ig_data.status_code == 403
    assert _state() == before


def test_removing_someone_who_is_not_a_member_is_a_400(client_for):
    world = _world()

    response = client_for(world.ig).delete(
        reverse("api-project-member", args=[world.project.pk, world.newcomer.pk])
    )

    assert response.status_code == 400


def test_renewed_compliance_dates_are_recorded(client_for):
    world = _world()
    at = mark()

    response = client_for(world.ig).patch(
        reverse("api-project-compliance", args=[world.project.pk]),
        {"s251_expiry": "2028-03-31", "rec_expiry": None},
        JSON,
    )

    assert response.status_code == 200
    assert (response.json()["s251_expiry"], response.json()["rec_expiry"]) == ("2028-03-31", None)
    (event,) = events_since(at)
    assert event.event_type == E.PROJECT_COMPLIANCE_UPDATED
    assert event.data == {"s251_expiry": "2028-03-31", "rec_expiry": None}


def test_a_lapsed_compliance_date_stops_data_use(client_for):
    world = _world()
    client_for(world.ig).patch(
        reverse("api-project-compliance", args=[world.project.pk]),
        {"dspt_expiry": "2026-01-31"},
        JSON,
    )

    body = client_for(world.member).get(reverse("api-project", args=[world.project.pk])).json()

    assert body["data_access"] == {
        "allowed": False,
        "refusal": "the project's approval has lapsed: an organisation's DSPT status",
    }


def test_closing_ends_the_members_view_of_the_project(client_for):
    world = _world()

    closed = client_for(world.ig).post(
        reverse("api-project-close", args=[world.project.pk]),
        {"attestation": "Destroyed on 1 June, certificate 42"},
        JSON,
    )

    assert (closed.status_code, closed.json()["status"]) == (200, "closed")
    assert closed.json()["destruction_attestation"] == "Destroyed on 1 June, certificate 42"
    assert client_for(world.member).get(
        reverse("api-project", args=[world.project.pk])
    ).status_code == 404  # fmt: skip
    again = client_for(world.ig).post(
        reverse("api-project-revoke", args=[world.project.pk]), {"reason": "x"}, JSON
    )
    assert again.status_code == 409


# --- changes to a live project ------------------------------------------------------------
def test_a_member_starts_an_amendment_prefilled_from_the_approved_answers(client_for):
    world = _world()
    client = client_for(world.member)
    url = reverse("api-project-changes", args=[world.project.pk])
    at = mark()

    response = client.post(url, {"kind": "amendment"}, JSON)
    again = client.post(url, {"kind": "extension"}, JSON)

    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["status"]) == ("amendment", "draft")
    assert (body["project"], body["based_on"]) == (world.project.pk, world.request.pk)
    assert body["answers"]["data"] == world.request.answers["data"]
    assert body["answers"]["declarations"] == {}  # accepted again for every change
    assert response["Location"] == reverse("api-access-request", args=[body["id"]])
    assert again.status_code == 409  # one change at a time
    assert types_since(at) == [E.REQUEST_CREATED]


def test_a_change_of_an_unknown_kind_is_a_400(client_for):
    world = _world()
    before = _state()

    response = client_for(world.member).post(
        reverse("api-project-changes", args=[world.project.pk]), {"kind": "new"}, JSON
    )

    assert response.status_code == 400
    assert "kind" in _errors(response)
    assert _state() == before


def test_a_member_who_does_not_apply_for_access_cannot_start_a_change(client_for):
    world = _world()
    services.add_member(project=world.project, by=world.ig,
                        member=services.MemberSpec(scenarios.person(Role.CLINICIAN), "analyst",
                                                   accesses_data=False))  # fmt: skip
    clinician = world.project.memberships.exclude(user=world.member).get().user

    response = client_for(clinician).post(
        reverse("api-project-changes", args=[world.project.pk]), {"kind": "renewal"}, JSON
    )

    assert response.status_code == 403


# --- the OpenAPI schema -------------------------------------------------------------------
def test_the_schema_covers_the_project_api_without_warnings():
    document = schema_without_warnings(validate=False)
    expected = {"/api/v1/projects"} | {openapi_path(route) for route, _ in PROJECT_ROUTES.values()}
    assert expected <= set(document["paths"])
    extracts = document["components"]["schemas"]["ExtractStatus"]["properties"]
    assert not {"people_removed", "rows_removed", "treatment", "optout_snapshot"} & set(extracts)
