"""The analysis workspace API (sde/api/analysis_views.py): every URL for every kind of
caller, queuing analyses and scripts, bad bodies, what is shown of dummy and real runs,
cancel and re-run, scripts, cohorts and the OpenAPI schema. The worker is stood in for
by running the job in this process (the ``run`` fixture); the broker is a list."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from sde.analysis import analyses, services
from sde.analysis.models import Cohort, Job, JobOutput, Script
from sde.api import analysis_serializers, analysis_views
from sde.audit.events import EventType as E
from sde.audit.services import get_system_user
from sde.data.files import data_root
from sde.identity import services as identity
from sde.identity.models import User
from sde.identity.roles import Role
from sde.projects.models import Project
from sde.projects.services import MemberSpec, add_member
from tests import scenarios
from tests.api_schema import openapi_path, schema_without_warnings
from tests.events import events_since, mark, types_since
from tests.unit.sde.analysis.conftest import SCOPE
from tests.unit.sde.projects.builders import researcher

pytestmark = pytest.mark.django_db
S = Job.Status
JSON = "application/json"
PROFILE = {"analysis": "population_profile", "parameters": {"index_date": "2026-01-01"}}
COUNT = "import sdelib\nprint('people:', len(sdelib.read('patients')))\n"


@pytest.fixture
def sent(run: Callable[..., Job], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the jobs sent to the broker after commit (after ``run``'s stand-in)."""
    ids: list[int] = []
    monkeypatch.setattr(services, "_enqueue", ids.append)
    return ids


def _token_client(user: User) -> Client:
    _, key = identity.create_api_token(user=user, name="scripts", by=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _member(project: Project, *, uses_data: bool) -> User:
    person = researcher()
    role = "analyst" if uses_data else "supervisor"
    add_member(project=project, member=MemberSpec(person, role, uses_data), by=get_system_user())
    return person


def _state() -> tuple[Any, ...]:
    """Everything an analysis call could change."""
    return (
        sorted(Job.objects.values_list("pk", "status", "cancel_requested_at")),
        sorted(Script.objects.values_list("pk", "sha256")),
        sorted(JobOutput.objects.values_list("pk", flat=True)),
        sorted(Cohort.objects.values_list("pk", flat=True)),
    )


def _errors(response: Any) -> dict[str, list[str]]:
    body = response.json()
    return body["errors"] if "errors" in body and "detail" in body else body


def _profile(run: Callable[..., Job], project: Project, by: User, *, on_dummy: bool) -> Job:
    job = run(project, by, on_dummy=on_dummy, **PROFILE)
    assert job.status == S.SUCCEEDED, job.failure
    return job


# --- every URL for every kind of caller ----------------------------------------------------
def _walk(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry, route)
        else:
            yield route, entry.name or route, entry.callback


ROUTES = {
    name: route
    for route, name, callback in _walk(get_resolver())
    if getattr(callback, "view_class", None)
    and callback.view_class.__module__ == analysis_views.__name__
}
CALLS = sorted(
    (name, method)
    for route, name, callback in _walk(get_resolver())
    if name in ROUTES
    for method in ("get", "post", "put", "patch", "delete")
    if hasattr(callback.view_class, method)
)


@dataclass
class World:
    project: Project
    job: Job  # the member's dummy run, succeeded, with outputs
    output: JobOutput


ROLES = ("member", "member_token", "reader", "ig", "researcher", "output_checker",
         "other_token", "anonymous")  # fmt: skip
SEE, USE = (200, 200, 200, 200), (201, 201, 403, 403)
OUTSIDE = (404, 404, 404, 401)  # researcher, output checker, another's token, anonymous
# (URL name, method) -> what each role in ROLES gets, and the body sent.
TABLE: dict[tuple[str, str], tuple[tuple[int, ...], Callable[[World], dict[str, Any]] | None]] = {
    ("api-analyses", "get"): ((*SEE, 200, 200, 200, 401), None),
    ("api-project-jobs", "get"): ((*SEE, *OUTSIDE), None),
    ("api-project-jobs", "post"): ((*USE, *OUTSIDE), lambda w: {**PROFILE, "on_dummy": True}),
    ("api-project-job", "get"): ((*SEE, *OUTSIDE), None),
    ("api-project-job-cancel", "post"): ((409, 409, 403, 403, *OUTSIDE), None),  # finished
    ("api-project-job-rerun", "post"): ((*USE, *OUTSIDE), None),
    ("api-project-job-log", "get"): ((*SEE, *OUTSIDE), None),
    ("api-project-job-output", "get"): ((*SEE, *OUTSIDE), None),
    ("api-project-scripts", "get"): ((*SEE, *OUTSIDE), None),
    ("api-project-scripts", "post"): (
        (*USE, *OUTSIDE),
        lambda w: {"name": "c.py", "content": COUNT},
    ),
    ("api-project-cohorts", "get"): ((*SEE, *OUTSIDE), None),
}
PARAMETERS: dict[str, Callable[[World], int]] = {
    "pk": lambda w: w.project.pk,
    "job_id": lambda w: w.job.pk,
    "output_id": lambda w: w.output.pk,
}
# What a successful call writes to the audit log (anything else writes nothing).
AUDITED = {
    ("api-project-jobs", "post"): [E.JOB_SUBMITTED],
    ("api-project-job-rerun", "post"): [E.JOB_SUBMITTED],
    ("api-project-job-log", "get"): [E.JOB_LOG_VIEWED],
    ("api-project-job-output", "get"): [E.JOB_OUTPUT_VIEWED],
    ("api-project-scripts", "post"): [E.SCRIPT_SAVED],
}


def _url(name: str, world: World) -> str:
    params = re.findall(r"<(?:\w+:)?(\w+)>", ROUTES[name])
    return reverse(name, kwargs={p: PARAMETERS[p](world) for p in params})


def test_every_analysis_url_and_method_is_in_the_table():
    assert len(ROUTES) == 9
    assert set(CALLS) == set(TABLE)


@pytest.mark.parametrize("role", ROLES)
def test_every_analysis_url_answers_each_kind_of_caller_as_the_policy_says(
    project, member, ig, client_for, run, role
):
    """One test per caller, one call per URL and method: refusals first, each changing
    nothing; then the calls that succeed, each writing only its own audit event."""
    job = _profile(run, project, member, on_dummy=True)
    world = World(project, job, job.outputs.order_by("pk").first())
    callers: dict[str, Callable[[], Client]] = {
        "member": lambda: client_for(member),
        "member_token": lambda: _token_client(member),
        "reader": lambda: client_for(_member(project, uses_data=False)),
        "ig": lambda: client_for(ig),
        "researcher": lambda: client_for(researcher()),
        "output_checker": lambda: client_for(scenarios.person(Role.OUTPUT_CHECKER)),
        "other_token": lambda: _token_client(researcher()),
        "anonymous": Client,
    }
    client = callers[role]()
    column = ROLES.index(role)
    expected = {call: statuses[column] for call, (statuses, _) in TABLE.items()}
    answered = {}

    for name, method in sorted(TABLE, key=lambda call: (expected[call] < 400, call)):
        body = TABLE[(name, method)][1]
        before, at = _state(), mark()
        response = getattr(client, method)(
            _url(name, world), *((body(world), JSON) if body else ())
        )
        answered[(name, method)] = response.status_code
        if response.status_code >= 400 or method == "get":
            assert _state() == before, (name, method)
        written = AUDITED.get((name, method), []) if response.status_code < 400 else []
        assert types_since(at) == written, (name, method)

    assert answered == expected


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_method_a_url_lacks_is_404_for_outsiders_and_405_for_members(
    project, member, client_for, method
):
    url = reverse("api-project-jobs", args=[project.pk])

    outsider = getattr(client_for(researcher()), method)(url, {}, JSON)
    inside = getattr(client_for(member), method)(url, {}, JSON)

    assert (outsider.status_code, inside.status_code) == (404, 405)


# --- the built-in analyses --------------------------------------------------------------------
def test_the_analyses_are_listed_with_their_parameters(client_for):
    body = client_for(researcher()).get(reverse("api-analyses")).json()

    assert [a["name"] for a in body] == list(analyses.BUILTINS)
    rates = {p["name"]: p for p in next(a for a in body if a["name"] == "rates_by")["parameters"]}
    assert list(rates) == ["index_date", "outcome", "by", "standardise"]
    assert rates["index_date"] == {
        "name": "index_date", "label": "Index date", "kind": "date", "choices": [],
        "required": True, "default": None,
        "help": "The day the population is taken on (registered and alive).",
    }  # fmt: skip
    assert (rates["outcome"]["kind"], rates["outcome"]["default"]) == (
        "outcome", "emergency_admissions")  # fmt: skip
    assert "prevalence:diabetes" in rates["outcome"]["choices"]
    assert (rates["standardise"]["required"], rates["standardise"]["kind"]) == (False, "bool")
    assert {a["name"]: a["saves_cohort"] for a in body} == {
        name: builtin.saves_cohort for name, builtin in analyses.BUILTINS.items()
    }


# --- queuing jobs ---------------------------------------------------------------------------
def test_a_member_queues_an_analysis_and_it_goes_to_the_broker_after_commit(
    project, member, client_for, sent, django_capture_on_commit_callbacks
):
    at = mark()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(member).post(
            reverse("api-project-jobs", args=[project.pk]),
            {"analysis": "rates_by", "on_dummy": False,
             "parameters": {"index_date": "2026-01-01", "outcome": "prevalence:diabetes"}},
            JSON,
        )  # fmt: skip

    assert response.status_code == 201
    job = Job.objects.get()
    body = response.json()
    assert response["Location"] == reverse("api-project-job", args=[project.pk, job.pk])
    assert (body["id"], body["status"], body["kind"], body["on_dummy"]) == (
        job.pk, "queued", "builtin", False)  # fmt: skip
    assert (body["title"], body["requested_by"]["id"]) == ("Rates by group", member.pk)
    assert body["reproducibility"]["parameters"] == job.parameters
    assert job.parameters == {"index_date": "2026-01-01", "outcome": {"prevalence": "diabetes"},
                              "by": "imd_decile"}  # fmt: skip
    assert (body["outputs"], body["log_url"], body["finished"]) == ([], None, False)
    assert types_since(at) == [E.JOB_SUBMITTED]
    assert sent == [job.pk]


def test_several_bad_parameters_are_each_named(project, member, client_for, sent):
    response = client_for(member).post(
        reverse("api-project-jobs", args=[project.pk]),
        {"analysis": "rates_by", "on_dummy": True,
         "parameters": {"index_date": "soon", "by": "shoe_size", "colour": "red"}},
        JSON,
    )  # fmt: skip

    assert response.status_code == 400
    assert set(_errors(response)) == {"index_date", "by", "colour"}
    assert _errors(response)["index_date"] == ["Give a date as YYYY-MM-DD."]


BAD_BODIES: dict[str, tuple[Callable[[int, int], dict[str, Any]], int, str]] = {
    "unknown analysis": (lambda mine, other: {"analysis": "magic", "on_dummy": True},
                         400, "analysis"),
    "unknown parameter": (lambda mine, other: {
        "analysis": "population_profile", "on_dummy": True,
        "parameters": {"index_date": "2026-01-01", "colour": "red"}}, 400, "colour"),
    "bad date": (lambda mine, other: {
        "analysis": "population_profile", "on_dummy": True,
        "parameters": {"index_date": "01/01/2026"}}, 400, "index_date"),
    "missing parameter": (lambda mine, other: {"analysis": "population_profile",
                                               "on_dummy": True}, 400, "index_date"),
    "bad cohort definition": (lambda mine, other: {
        "analysis": "cohort", "on_dummy": True,
        "parameters": {"index_date": "2026-01-01", "definition": {"shoe": 1}, "name": "x"}},
        400, "definition"),
    "parameters not an object": (lambda mine, other: {
        "analysis": "population_profile", "on_dummy": True, "parameters": ["2026-01-01"]},
        400, "parameters"),
    "no on_dummy": (lambda mine, other: PROFILE, 400, "on_dummy"),
    "both": (lambda mine, other: {"analysis": "population_profile", "script_id": mine,
                                  "on_dummy": True}, 400, "analysis"),
    "neither": (lambda mine, other: {"on_dummy": True}, 400, "analysis"),
    "a script with parameters": (lambda mine, other: {
        "script_id": mine, "on_dummy": True, "parameters": {"index_date": "2026-01-01"}},
        400, "parameters"),
    "an unknown script": (lambda mine, other: {"script_id": other + 1000, "on_dummy": True},
                          404, ""),
    "another project's script": (lambda mine, other: {"script_id": other, "on_dummy": True},
                                 404, ""),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_bad_job_body_is_refused_and_changes_nothing(
    project, member, client_for, make_project, sent, django_capture_on_commit_callbacks, case
):
    other = make_project(scope=SCOPE, title="Another project")
    theirs = services.save_script(project=other, name="a.py", content="print(1)\n", by=member)
    mine = services.save_script(project=project, name="b.py", content="print(2)\n", by=member)
    body, code, field = BAD_BODIES[case]
    before, at = _state(), mark()

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(member).post(
            reverse("api-project-jobs", args=[project.pk]), body(mine.pk, theirs.pk), JSON
        )

    assert response.status_code == code
    if field:
        assert field in _errors(response)
    assert (_state(), types_since(at), sent) == (before, [], [])


# --- what a job shows -----------------------------------------------------------------------
def test_the_job_list_is_newest_first_and_filters_by_status(project, member, client_for, sent):
    client = client_for(member)
    url = reverse("api-project-jobs", args=[project.pk])
    first = client.post(url, {**PROFILE, "on_dummy": True}, JSON).json()["id"]
    second = client.post(url, {**PROFILE, "on_dummy": False}, JSON).json()["id"]
    client.post(reverse("api-project-job-cancel", args=[project.pk, first]))

    def listed(**query: str) -> list[tuple[int, str]]:
        return [(j["id"], j["status"]) for j in client.get(url, query).json()["results"]]

    assert listed() == [(second, "queued"), (first, "cancelled")]
    assert listed(status="cancelled") == [(first, "cancelled")]
    assert listed(status="succeeded") == []
    response = client.get(url, {"status": "done"})
    assert (response.status_code, _errors(response)) == (400, {"status": ["Not a status."]})


def test_a_dummy_run_shows_everything_and_its_files_are_served_and_audited(
    project, member, client_for, run
):
    job = _profile(run, project, member, on_dummy=True)
    client = client_for(member)

    body = client.get(reverse("api-project-job", args=[project.pk, job.pk])).json()

    assert (body["status"], body["finished"], body["progress"]) == ("succeeded", True, 100)
    assert (body["exit_code"], body["error_class"], body["failure"]) == (0, "", "")
    assert body["reproducibility"] == {
        "code_hash": job.code_hash, "library_version": job.library_version,
        "extract_id": job.extract_id, "dataset_versions": job.dataset_versions,
        "package_versions": job.package_versions, "parameters": {"index_date": "2026-01-01"},
        "rerun_of": None,
    }  # fmt: skip
    assert job.extract.is_dummy  # synthetic people: no dataset versions behind them
    assert body["resources"]["attempts"] == 1
    assert body["resources"]["wall_seconds"] == job.wall_seconds
    outputs = {o["name"]: o for o in body["outputs"]}
    assert set(outputs) == set(job.outputs.values_list("name", flat=True))
    table = job.outputs.get(name="people_by_age_band_and_sex.csv")
    assert outputs[table.name] == {
        "id": table.pk, "name": table.name, "kind": "table", "size": table.size,
        "sha256": table.sha256, "evidence": table.evidence,
        "content_url": reverse("api-project-job-output", args=[project.pk, job.pk, table.pk]),
    }  # fmt: skip
    assert body["log_url"] == reverse("api-project-job-log", args=[project.pk, job.pk])

    at = mark()
    shown = client.get(outputs[table.name]["content_url"])
    log = client.get(body["log_url"])

    assert shown.status_code == 200
    content = b"".join(shown.streaming_content)
    assert content.startswith(b"age_band,sex,people")
    assert hashlib.sha256(content).hexdigest() == table.sha256
    assert shown["Content-Type"].startswith("text/csv")
    assert shown["X-Content-Type-Options"] == "nosniff"
    assert shown["Content-Disposition"].startswith("attachment")
    assert log.status_code == 200
    assert b"".join(log.streaming_content) == (data_root() / job.folder / "log.txt").read_bytes()
    assert [(e.event_type, e.actor_id, e.project_id, e.data) for e in events_since(at)] == [
        (E.JOB_OUTPUT_VIEWED, member.pk, project.pk, {"job_id": job.pk, "output_id": table.pk}),
        (E.JOB_LOG_VIEWED, member.pk, project.pk, {"job_id": job.pk}),
    ]


def test_a_real_run_lists_its_outputs_but_its_log_and_contents_are_404_for_everyone(
    project, member, ig, client_for, run
):
    job = _profile(run, project, member, on_dummy=False)
    callers = [client_for(member), _token_client(member), client_for(ig),
               client_for(_member(project, uses_data=False))]  # fmt: skip
    log_url = reverse("api-project-job-log", args=[project.pk, job.pk])
    output_urls = [reverse("api-project-job-output", args=[project.pk, job.pk, o.pk])
                   for o in job.outputs.all()]  # fmt: skip
    at = mark()

    body = callers[0].get(reverse("api-project-job", args=[project.pk, job.pk])).json()
    answers = {caller.get(url).status_code for caller in callers
               for url in [log_url, *output_urls]}  # fmt: skip

    assert (body["status"], body["exit_code"], body["log_url"]) == ("succeeded", 0, None)
    assert body["reproducibility"]["extract_id"] == job.extract_id
    assert body["reproducibility"]["dataset_versions"] == job.dataset_versions != {}
    assert {o["name"] for o in body["outputs"]} == set(job.outputs.values_list("name", flat=True))
    assert body["outputs"] and all(o["content_url"] is None for o in body["outputs"])
    assert output_urls and answers == {404}
    assert types_since(at) == []


# --- cancel and re-run -------------------------------------------------------------------------
def test_only_the_requester_cancels_and_a_finished_job_cannot_be(project, member, client_for, sent):
    job = services.submit_job(project=project, by=member, on_dummy=True, **PROFILE)
    url = reverse("api-project-job-cancel", args=[project.pk, job.pk])
    colleague = _member(project, uses_data=True)
    before, at = _state(), mark()

    refused = client_for(colleague).post(url)
    assert (refused.status_code, _state(), types_since(at)) == (403, before, [])

    cancelled = client_for(member).post(url)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert cancelled.json()["cancel_requested_at"] is not None
    assert types_since(at) == [E.JOB_CANCELLED]

    before, at = _state(), mark()
    again = client_for(member).post(url)
    assert (again.status_code, again.json()["detail"]) == (409, "the job has already cancelled")
    assert (_state(), types_since(at)) == (before, [])


def test_cancelling_a_running_job_asks_the_worker_to_stop_it(project, member, client_for, sent):
    job = services.submit_job(project=project, by=member, on_dummy=True, **PROFILE)
    services._start(job.pk, "worker-1")  # taken by a worker, which is still running it
    at = mark()

    response = client_for(member).post(reverse("api-project-job-cancel", args=[project.pk, job.pk]))

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["finished"]) == ("running", False)
    assert response.json()["cancel_requested_at"] is not None
    assert types_since(at) == [E.JOB_CANCEL_REQUESTED]


def test_a_rerun_queues_the_same_code_and_parameters(
    project, member, client_for, run, sent, django_capture_on_commit_callbacks
):
    job = _profile(run, project, member, on_dummy=True)
    colleague = _member(project, uses_data=True)
    at = mark()

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(colleague).post(
            reverse("api-project-job-rerun", args=[project.pk, job.pk])
        )

    assert response.status_code == 201
    body = response.json()
    rerun = Job.objects.get(pk=body["id"])
    assert response["Location"] == reverse("api-project-job", args=[project.pk, rerun.pk])
    assert body["reproducibility"]["rerun_of"] == job.pk
    assert (body["status"], body["requested_by"]["id"]) == ("queued", colleague.pk)
    assert (rerun.analysis, rerun.parameters, rerun.on_dummy, rerun.code_hash) == (
        job.analysis, job.parameters, True, job.code_hash)  # fmt: skip
    (event,) = events_since(at)
    assert (event.event_type, event.data["rerun_of"]) == (E.JOB_SUBMITTED, job.pk)
    assert sent == [rerun.pk]


# --- scripts ---------------------------------------------------------------------------------
def test_a_script_is_saved_once_per_content_and_run_on_dummy_data(
    project, member, client_for, sent
):
    client = client_for(member)
    url = reverse("api-project-scripts", args=[project.pk])
    content = "\n" + COUNT + "    \n"  # whitespace is part of the version
    at = mark()

    saved = client.post(url, {"name": "count.py", "content": content}, JSON)
    same = client.post(url, {"name": "renamed.py", "content": content}, JSON)
    other = client.post(url, {"name": "count.py", "content": COUNT}, JSON)

    assert (saved.status_code, same.status_code, other.status_code) == (201, 200, 201)
    assert saved.json()["sha256"] == hashlib.sha256(content.encode()).hexdigest()
    assert same.json() == saved.json()  # the existing version, under its first name
    assert types_since(at) == [E.SCRIPT_SAVED, E.SCRIPT_SAVED]
    listed = client.get(url).json()["results"]
    assert [s["id"] for s in listed] == [other.json()["id"], saved.json()["id"]]
    assert listed[0]["created_by"]["id"] == member.pk

    queued = client.post(reverse("api-project-jobs", args=[project.pk]),
                         {"script_id": saved.json()["id"], "on_dummy": True}, JSON)  # fmt: skip
    assert queued.status_code == 201
    assert (queued.json()["kind"], queued.json()["script"]["id"]) == ("script", saved.json()["id"])
    assert queued.json()["reproducibility"]["code_hash"] == saved.json()["sha256"]
    assert queued.json()["title"] == "Script count.py"
    assert services.run_job(job_id=queued.json()["id"]) == "succeeded"
    job = client.get(queued["Location"]).json()
    log = client.get(job["log_url"])
    assert b"people:" in b"".join(log.streaming_content)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "bad.py", "content": "x = (\n"}, "content", "Line "),
        ({"name": "empty.py", "content": "  \n"}, "content", "The script is empty."),
        ({"name": "  ", "content": "print(1)\n"}, "name", "Give the script a name"),
        ({"content": "print(1)\n"}, "name", "This field is required."),
        ({"name": "big.py", "content": "#" * (256 * 1024 + 1)}, "content", "at most 256 KB"),
    ],
)
def test_an_invalid_script_is_a_400_naming_the_problem(project, member, client_for, body, field,
                                                        message):  # fmt: skip
    before, at = _state(), mark()

    response = client_for(member).post(
        reverse("api-project-scripts", args=[project.pk]), body, JSON
    )

    assert response.status_code == 400
    assert message in _errors(response)[field][0]
    assert (_state(), types_since(at)) == (before, [])


# --- cohorts ---------------------------------------------------------------------------------
def test_cohorts_show_their_size_and_provenance_never_their_people(
    project, member, client_for, run
):
    def cohort(name: str, definition: dict[str, Any]) -> Job:
        parameters = {"index_date": "2026-01-01", "definition": definition, "name": name}
        job = run(project, member, on_dummy=True, analysis="cohort", parameters=parameters)
        assert job.status == S.SUCCEEDED, job.failure
        return job

    adults, oldest = cohort("adults", {"age": {"min": 18}}), cohort("oldest", {"age": {"min": 105}})
    client = client_for(member)

    response = client.get(reverse("api-project-cohorts", args=[project.pk]))

    saved = {c.name: c for c in Cohort.objects.all()}
    assert saved["adults"].size >= 10 and saved["oldest"].size < 10
    body = response.json()["results"]
    assert [(c["name"], c["job_id"], c["on_dummy"]) for c in body] == [
        ("oldest", oldest.pk, True), ("adults", adults.pk, True)]  # fmt: skip
    assert body[1]["size"] == f"{saved['adults'].size:,}"
    assert body[0]["size"] == "fewer than 10"
    assert body[1]["extract_id"] == adults.extract_id
    assert body[1]["definition"] == adults.parameters
    assert set(body[0]) == {"id", "name", "description", "definition", "size", "extract_id",
                            "on_dummy", "job_id", "created_at",
                            "reidentification_refused"}  # fmt: skip
    # A research project's cohorts never lead back to people (ADR 0011).
    assert body[1]["reidentification_refused"].startswith("it belongs to a research project")
    people = pq.read_table(data_root() / saved["adults"].path).column("person_id").to_pylist()
    assert people and not any(str(p) in response.content.decode() for p in people)
    detail = client.get(reverse("api-project-job", args=[project.pk, adults.pk])).json()
    assert detail["cohort"] == saved["adults"].pk


@pytest.mark.parametrize(
    ("size", "shown"), [(0, "fewer than 10"), (9, "fewer than 10"), (10, "10"), (12345, "12,345")]
)
def test_a_cohort_size_below_10_is_never_shown_exactly(size, shown):
    assert analysis_serializers.CohortSizeField().to_representation(size) == shown


# --- the OpenAPI schema ------------------------------------------------------------------------
def test_the_schema_covers_the_analysis_api_without_warnings():
    document = schema_without_warnings()
    paths = {openapi_path(route) for route in ROUTES.values()}
    assert len(paths) == 9 and paths <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert schemas["JobOutput"]["properties"]["content_url"]["nullable"] is True
    assert set(schemas["JobStatusEnum"]["enum"]) == set(Job.Status.values)
    assert not {"path", "sha256", "person_ids"} & set(schemas["Cohort"]["properties"])
    post = document["paths"]["/api/v1/projects/{id}/jobs"]["post"]
    assert "201" in post["responses"]
