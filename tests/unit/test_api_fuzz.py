"""The API fuzzed from its own OpenAPI schema (issue 8 item 2), as every kind of caller.

schemathesis generates requests for every operation of the schema; each request is sent
in-process (the Django WSGI application, no server) by every caller of the world
(tests/api_fuzz_world.py): each role alone, the secret project's member, a member of
another project, and anonymous. Path ids are aimed at the world's rows as often as not,
so the fuzzer asks for the secret project's objects by their real ids.

Every response must be: no 5xx; a documented status code, content type and headers, and a
body that matches the schema; and free of every canary its caller may not see. Each
request runs in a savepoint rolled back after it, so no write changes what the next one
finds. Examples per operation: SDE_API_FUZZ_EXAMPLES (default 10; ``make fuzz-api`` runs
100); hypothesis is derandomized, so a run is reproducible.

Findings are collected over all examples and callers and reported together (no
shrinking: the failing request is printed whole).
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sde.identity.roles import Role
from tests import api_fuzz_world
from tests.api_fuzz_world import CANARIES, World
from tests.api_schema import schema_without_warnings
from tests.conftest import private_settings
from tests.shared_db import shared_rows

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("SDE_API_FUZZ_EXAMPLES", "10"))
JSON = "application/json"
DOCUMENT = schema_without_warnings()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
OPERATIONS = [
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method in {"get", "put", "post", "patch", "delete"}
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Which rows a path parameter names: the model before it in the path (by its segment).
ROWS_NAMED_BY = {
    "projects": "sde.Project", "jobs": "sde.Job", "outputs": "sde.JobOutput",
    "releases": "outputs.ReleaseRequest", "files": "outputs.ReleaseFile",
    "reviews": "outputs.Review", "access-requests": "access_requests.AccessRequest",
    "attachments": "access_requests.Attachment", "people": "sde.User", "members": "sde.User",
    "ingests": "sde.Ingest", "changes": "sde.OptOutChange",
    "requests": "sde.ReidentificationRequest", "events": "sequence",
}  # fmt: skip


# --- The world, the application, a savepoint per request --------------------------------
@pytest.fixture(scope="module")
def world(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("api-fuzz")
    private = private_settings(folder)
    drop = api_fuzz_world.drop(folder / "drop")
    with private, pytest.MonkeyPatch.context() as patch:
        with shared_rows(django_db_blocker, lambda: api_fuzz_world.build(drop, patch)) as built:
            yield built


@pytest.fixture(scope="module")
def app() -> Iterator[WSGIHandler]:
    """The Django WSGI application, which must not close the test's connection (in a
    transaction) at the start and end of each request, as the test client does not."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@contextmanager
def rolled_back() -> Iterator[None]:
    """A savepoint rolled back at exit (marked as a test case's, so a service's durable
    block inside it behaves as in any test)."""
    block = transaction.atomic()
    block._from_testcase = True  # type: ignore[attr-defined]
    with block:
        yield
        transaction.set_rollback(True)


@pytest.fixture
def server_errors() -> Iterator[list[str]]:
    """The tracebacks of the exceptions views raised (each a 500)."""
    seen: list[str] = []

    def record(sender: Any, request: Any = None, **kwargs: Any) -> None:
        seen.append(traceback.format_exc())

    got_request_exception.connect(record, weak=False)
    try:
        yield seen
    finally:
        got_request_exception.disconnect(record)


# --- What the fuzzer sends ---------------------------------------------------------------
def _aimed(path: str, world: World) -> dict[str, st.SearchStrategy[Any]]:
    """For each path parameter: the ids (or slugs, roles) of the world's rows it names."""
    every_id = sorted({pk for ids in world.ids.values() for pk in ids})
    aimed: dict[str, st.SearchStrategy[Any]] = {}
    for segment, name in re.findall(r"([\w.-]+)/\{(\w+)\}", path):
        if name == "slug":
            aimed[name] = st.sampled_from(world.slugs)
        elif name == "role":
            aimed[name] = st.sampled_from(Role.values)
        else:
            ids = world.ids.get(ROWS_NAMED_BY.get(segment, ""), []) or every_id
            aimed[name] = st.sampled_from(ids)
    return aimed


def _leaks(caller: str, response: Any) -> list[str]:
    headers = " ".join(f"{k}: {v}" for k, v in response.headers.items())
    seen = (response.content or b"") + headers.encode()
    return [c for c, who in CANARIES.items() if caller not in who and c.encode() in seen]


# --- The test ----------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_as_every_caller(
    method: str, path: str, world: World, app: WSGIHandler, server_errors: list[str]
) -> None:
    """Example n is sent by caller n (in turn); in each caller's first turn its path ids are
    the secret project's rows, in later turns what the fuzzer draws (the world's rows of
    that kind, or anything). Callers an exhausted search space left out (an operation with
    nothing to vary) are sent its last example, aimed at the secret rows."""
    operation = SCHEMA[path][method]
    aimed = _aimed(path, world)
    secret = {n: world.secret[s] for s, n in re.findall(r"([\w.-]+)/\{(\w+)\}", path)
              if s in world.secret}  # fmt: skip
    callers = list(world.keys)
    findings: dict[str, str] = {}
    turns: list[Any] = []

    def send(case: Any, caller: str) -> None:
        key = world.keys[caller]
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        del server_errors[:]
        with rolled_back():
            response = case.call(app=app, headers=headers)
        where = f"{caller} {method} {case.formatted_path} -> {response.status_code}"
        try:
            case.validate_response(response, checks=CHECKS, headers=headers,
                                   transport_kwargs={"app": app})  # fmt: skip
        except FailureGroup as failure:  # every check that failed
            first = str(failure).strip().splitlines()[0]
            findings.setdefault(f"{first} [{response.status_code}]", f"{where}\n{failure}"
                                + "".join(server_errors[-1:]))  # fmt: skip
        for canary in _leaks(caller, response):
            findings.setdefault(f"leak {canary} to {caller}", f"{where}\n{response.text[:500]}")

    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(data=st.data())
    def exercise(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy())
        turn = len(turns)
        turns.append(case)
        for name, ids in aimed.items():
            drawn = data.draw(st.one_of(ids, st.just(case.path_parameters[name])))
            case.path_parameters[name] = drawn if turn >= len(callers) else secret.get(name, drawn)
        send(case, callers[turn % len(callers)])

    exercise()
    for caller in callers[len(turns) :]:
        turns[-1].path_parameters.update(secret)
        send(turns[-1], caller)
    assert not findings, "\n\n".join(f"== {k}\n{v}" for k, v in findings.items())


# --- Every page action has an API equivalent (issue 8 item 2) -----------------------------
_AR, _P, _R = "/api/v1/access-requests/{id}", "/api/v1/projects/{id}", "/api/v1/releases/{id}"
_OC, _DC = "/api/v1/optouts/changes", "/api/v1/direct-care/requests"
SESSION_ONLY = "signing in and the session's own security: the API authenticates by token"
# Each page that accepts POST -> its API operation, or None with the reason there is none.
PAGE_ACTIONS: dict[str, str | tuple[None, str]] = {
    "application-new": "POST /api/v1/access-requests",
    "application-change": f"POST {_P}/changes",
    "application-section": f"PATCH {_AR}",
    "application-autosave": f"PATCH {_AR}",
    "application-start-review": f"POST {_AR}/review/start",
    "application-assign": f"POST {_AR}/review/assign",
    "application-approve": f"POST {_AR}/review/approve",
    "application-return": f"POST {_AR}/review/return",
    "application-reject": f"POST {_AR}/review/reject",
    "application-sign-off": f"POST {_AR}/review/sign-off",
    "application-comment": f"POST {_AR}/comments",
    "application-attachments": f"POST {_AR}/attachments",
    "application-attachment-redact": f"POST {_AR}/attachments/{{attachment_pk}}/redact",
    "application-submit": f"POST {_AR}/submit",
    "application-withdraw": f"POST {_AR}/withdraw",
    "run-analysis": f"POST {_P}/jobs",
    "save-script": f"POST {_P}/scripts",
    "run-script": f"POST {_P}/jobs",
    "job-cancel": f"POST {_P}/jobs/{{job_id}}/cancel",
    "job-rerun": f"POST {_P}/jobs/{{job_id}}/rerun",
    "project-suspend": f"POST {_P}/suspend",
    "project-resume": f"POST {_P}/resume",
    "project-revoke": f"POST {_P}/revoke",
    "project-close": f"POST {_P}/close",
    "project-member-add": f"POST {_P}/members",
    "project-member-remove": f"DELETE {_P}/members/{{user_pk}}",
    "project-compliance-dates": f"PATCH {_P}/compliance",
    "login": (None, SESSION_ONLY),
    "logout": (None, SESSION_ONLY),
    "mfa-enrol": (None, SESSION_ONLY),
    "mfa-verify": (None, SESSION_ONLY),
    "password-change": (None, SESSION_ONLY),
    "recovery-codes-regenerate": (None, SESSION_ONLY),
    "token-create": (None, "a token is made only by its owner signed in with MFA (a token "
                           "cannot make another)"),
    "token-revoke": "DELETE /api/v1/tokens/{id}",
    "person-create": "POST /api/v1/people",
    "person-grant-role": "POST /api/v1/people/{id}/roles",
    "person-remove-role": "DELETE /api/v1/people/{id}/roles/{role}",
    "person-record-accreditation": "POST /api/v1/people/{id}/accreditations",
    "person-suspend": "POST /api/v1/people/{id}/suspend",
    "person-reinstate": "POST /api/v1/people/{id}/reinstate",
    "person-unlock": "POST /api/v1/people/{id}/unlock",
    "person-reset-mfa": "POST /api/v1/people/{id}/reset-mfa",
    "organisation-list": "POST /api/v1/organisations",
    "organisation-add-member": "POST /api/v1/organisations/{id}/members",
    "organisation-remove-member": "DELETE /api/v1/organisations/{id}/members/{membership_pk}",
    "ingest-list": "POST /api/v1/ingests",
    "optout-manual-add": "POST /api/v1/optouts/manual",
    "optout-manual-withdraw": "POST /api/v1/optouts/manual/withdraw",
    "optout-ndop-import": "POST /api/v1/optouts/ndop",
    "optout-policy-propose": f"POST {_OC}/policy",
    "optout-exemption-propose": f"POST {_OC}/exemption",
    "optout-change-decide": f"POST {_OC}/{{id}}/approve",  # and .../reject
    "optout-change-withdraw": f"POST {_OC}/{{id}}/withdraw",
    "direct-care-request-new": f"POST {_DC}",
    "direct-care-sign-off": f"POST {_DC}/{{id}}/sign-off",
    "direct-care-withdraw": f"POST {_DC}/{{id}}/withdraw",
    "release-create": f"POST {_P}/releases",
    "release-add-file": f"POST {_R}/files",
    "release-remove-file": f"DELETE {_R}/files/{{file_id}}",
    "release-exception": f"POST {_R}/files/{{file_id}}/exceptions",
    "release-submit": f"POST {_R}/submit",
    "release-withdraw": f"POST {_R}/withdraw",
    "release-revoke": f"POST {_R}/revoke",
    "output-start-review": f"POST {_R}/reviews",
    "output-decide": "POST /api/v1/reviews/{id}/files/{file_id}/decision",
    "output-submit-review": "POST /api/v1/reviews/{id}/submit",
}  # fmt: skip


def _page_actions() -> set[str]:
    """Every page URL name whose view accepts POST (its source, decorators included, says
    POST: require_POST, require_http_methods, or a branch on request.method)."""
    import inspect

    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, URLPattern]]:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif not route.startswith("api/"):
                yield route, pattern

    found = set()
    for _, pattern in walk(get_resolver().url_patterns, ""):
        view = pattern.callback
        source = inspect.getsource(getattr(view, "view_class", None) or inspect.unwrap(view))
        if "POST" in source:
            found.add(str(pattern.name))
    return found


def test_every_page_action_has_an_api_operation_or_a_reason() -> None:
    actions = _page_actions()

    assert sorted(actions - set(PAGE_ACTIONS)) == [], "page actions missing from the table"
    assert sorted(set(PAGE_ACTIONS) - actions) == [], "table rows that are no page action"
    for name, api in PAGE_ACTIONS.items():
        if isinstance(api, tuple):
            assert api[1], f"{name}: None needs a reason"
            continue
        method, path = api.split(" ", 1)
        assert method.lower() in DOCUMENT["paths"].get(path, {}), f"{name}: no {api}"


# --- ... and denies the same people (a few actions per area; the full matrix is elsewhere)
def _denied(response: Any) -> bool:
    """Refused before anything was looked at: 401, 403, 404, or a page's sign-in redirect."""
    if response.status_code == 302:
        return "/accounts/login/" in response["Location"]
    return response.status_code in (401, 403, 404)


# (page URL, API path, body[, the page form's prefix]) with the world's rows: {project},
# {release}, {application}, {request} (direct care), {member} (the secret project's member).
PAIRS: dict[str, tuple[Any, ...]] = {
    "project-suspend": ("/projects/{project}/suspend/", "/api/v1/projects/{project}/suspend",
                        {"reason": "A fuzz check."}),
    "save-script": ("/projects/{project}/workspace/scripts/", "/api/v1/projects/{project}/scripts",
                    {"name": "check.py", "content": "print(1)"}, "script-"),
    "output-start-review": ("/outputs/{release}/start/", "/api/v1/releases/{release}/reviews", {}),
    "release-withdraw": ("/projects/{project}/releases/{release}/withdraw/",
                         "/api/v1/releases/{release}/withdraw", {}),
    "application-comment": ("/applications/{application}/comments/",
                            "/api/v1/access-requests/{application}/comments", {"body": "A note."}),
    "application-start-review": ("/applications/{application}/review/start-review/",
                                 "/api/v1/access-requests/{application}/review/start", {}),
    "direct-care-withdraw": ("/direct-care/requests/{request}/withdraw/",
                             "/api/v1/direct-care/requests/{request}/withdraw", {}),
    "person-grant-role": ("/people/{member}/roles/", "/api/v1/people/{member}/roles",
                          {"role": "output_checker"}),
    "optout-manual-add": ("/data/optouts/manual/add/", "/api/v1/optouts/manual",
                          {"nhs_number": "9434765919", "kind": "ndop", "reason": "A letter."}),
}  # fmt: skip


@pytest.mark.parametrize("action", PAIRS)
def test_the_api_denies_whom_the_page_denies(action: str, world: World) -> None:
    from django.test import Client

    from sde.identity.models import User
    from tests.conftest import verified_client

    page, api, body, *prefix = PAIRS[action]
    form = {f"{''.join(prefix)}{name}": value for name, value in body.items()}
    ids = {"project": world.secret["projects"], "release": world.secret["releases"],
           "application": world.secret["access-requests"], "request": world.secret["requests"],
           "member": world.secret["people"]}  # fmt: skip
    differ = []
    for caller, key in world.keys.items():
        with rolled_back():
            person = User.objects.get(pk=world.people[caller]) if key else None
            client = verified_client(person) if person else Client()
            by_page = client.post(page.format(**ids), form)
        with rolled_back():
            token = Client(headers={"Authorization": f"Bearer {key}"} if key else None)
            by_api = token.post(api.format(**ids), body, content_type=JSON)
        if _denied(by_page) != _denied(by_api):
            differ.append(f"{caller}: page {by_page.status_code}, API {by_api.status_code}")
    assert differ == []


# --- What the fuzzer found, pinned -----------------------------------------------------
@pytest.mark.parametrize("number", [9434765919, 2**31, 10**12])
def test_an_exemption_for_a_project_number_out_of_range_is_a_400(number: int, world: World) -> None:
    """Was a 500: a ten-digit number is NHS-number-like (the audit event refused it), and
    PostgreSQL's column holds no number past 2**31 - 1."""
    from django.test import Client

    client = Client(headers={"Authorization": f"Bearer {world.keys[Role.IG_OFFICER.value]}"})
    body = {"project_id": number, "reason": "A CAG letter.", "cag_letter_disapplies_type1": True}

    response = client.post("/api/v1/optouts/changes/exemption", body, content_type=JSON)

    assert response.status_code == 400
    assert "project_id" in response.json()["errors"]
