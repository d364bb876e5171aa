"""The release API (outputs/api.py): every URL for every kind of caller in the state that
lets its action succeed, the whole workflow end to end through the API, forged and
foreign ids, bad bodies, blind review, tampering, the ACRO-compatible export (against a
results.json ACRO itself wrote) and the OpenAPI schema.

Requests, files, reviews and decisions are made by the real services
(tests/unit/outputs/builders.py); the job's files are written by a stand-in for the
sandbox, so the checks run on real tables with their evidence."""

from __future__ import annotations

import io
import json
import subprocess
import textwrap
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.urls import URLResolver, get_resolver, reverse

from outputs import acro_export, api, selectors
from outputs.models import FileDecision, ReleaseRequest, Review
from sde.audit.events import EventType as E
from sde.data.files import data_root
from tests.api_schema import openapi_path, schema_without_warnings
from tests.conftest import verified_client
from tests.events import events_since, mark, types_since
from tests.parity.acro_env import AcroUnavailable, acro_python
from tests.unit.outputs import builders
from tests.unit.outputs.api_fixtures import (
    JSON,
    ROLES,
    World,
    client_of,
    content,
    errors,
    token_client,
    world_in,
)
from tests.unit.outputs.builders import FAIL_TABLE, PASS_TABLE, TEXT

pytestmark = pytest.mark.django_db
S = ReleaseRequest.Status
D = FileDecision.Decision


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
    if getattr(callback, "view_class", None) and callback.view_class.__module__ == api.__name__
}
CALLS = sorted(
    (name, method)
    for route, name, callback in _walk(get_resolver())
    if name in ROUTES
    for method in ("get", "post", "put", "patch", "delete")
    if hasattr(callback.view_class, method)
)

Url = Callable[[World], str]
Body = Callable[[World], dict[str, Any]] | None


def _release(name: str) -> Url:
    return lambda w: reverse(name, args=[w.request.pk])


def _file(name: str, file: str = FAIL_TABLE) -> Url:
    return lambda w: reverse(name, args=[w.request.pk, w.file(file).pk])


def _review(name: str, file: str | None = None) -> Url:
    def url(w: World) -> str:
        assert w.review is not None
        args = [w.review.pk] if file is None else [w.review.pk, w.file(file).pk]
        return reverse(name, args=args)

    return url


def _project(name: str) -> Url:
    return lambda w: reverse(name, args=[w.project.pk])


def _add_text(w: World) -> dict[str, Any]:
    return {"job_id": w.job.pk, "output_id": w.output_id(TEXT), "context": "Notes on the counts."}


EXCEPTION = {"rule": "T1", "reason": "structural_zero", "justification": "Men are not in it."}
DECISION = {"decision": "approve", "comment": "Suppressed before publication.",
            "exceptions": {"T1": True}}  # fmt: skip
# The roles' columns: author, other member, outsider, independent checker, checker who is
# a member, IG officer, anonymous. A draft is invisible to checkers; a request, its files
# and downloads are invisible to outsiders; checkers and IG may see but not change a
# researcher's request; only an independent checker reviews; only members download.
SEE_DRAFT = (200, 200, 404, 404, 200, 200, 401)
SEE = (200, 200, 404, 200, 200, 200, 401)
AUTHOR_ONLY_DRAFT = (403, 403, 404, 404, 403, 403, 401)  # with the author's column set
REVIEWER = (403, 403, 404, 201, 403, 403, 401)
OWN_REVIEW = (404, 404, 404, 200, 404, 404, 401)
MEMBERS = (200, 200, 404, 404, 200, 404, 401)


def _author(code: int, rest: tuple[int, ...] = AUTHOR_ONLY_DRAFT) -> tuple[int, ...]:
    return (code, *rest[1:])


# (URL name, method, state) -> (what each role in ROLES gets, the URL, the body)
TABLE: dict[tuple[str, str, str], tuple[tuple[int, ...], Url, Body]] = {
    ("api-releases", "get", "draft"): ((200, 200, 200, 200, 200, 200, 401),
                                       lambda w: reverse("api-releases"), None),
    ("api-project-releases", "get", "draft"): (
        (200, 200, 404, 404, 200, 200, 401), _project("api-project-releases"), None),
    ("api-project-releases", "post", "draft"): (
        (201, 201, 404, 404, 201, 403, 401), _project("api-project-releases"),
        lambda w: {"title": "More counts"}),
    ("api-release", "get", "draft"): (SEE_DRAFT, _release("api-release"), None),
    ("api-release", "get", "submitted"): (SEE, _release("api-release"), None),
    ("api-release-files", "post", "draft"): (
        _author(201), _release("api-release-files"), _add_text),
    ("api-release-files", "post", "submitted"): (
        (409, 403, 404, 403, 403, 403, 401), _release("api-release-files"), _add_text),
    ("api-release-file", "get", "draft"): (SEE_DRAFT, _file("api-release-file"), None),
    ("api-release-file", "delete", "draft"): (_author(204), _file("api-release-file"), None),
    ("api-release-file-exceptions", "post", "draft"): (
        _author(200), _file("api-release-file-exceptions"), lambda w: EXCEPTION),
    ("api-release-submit", "post", "draft"): (_author(200), _release("api-release-submit"), None),
    ("api-release-withdraw", "post", "submitted"): (
        (200, 403, 404, 403, 403, 403, 401), _release("api-release-withdraw"), None),
    ("api-release-revoke", "post", "released"): (
        (403, 403, 404, 403, 403, 200, 401), _release("api-release-revoke"),
        lambda w: {"reason": "Published in error."}),
    ("api-release-results", "get", "submitted"): (SEE, _release("api-release-results"), None),
    ("api-release-download-all", "get", "released"): (
        MEMBERS, _release("api-release-download-all"), None),
    ("api-release-file-download", "get", "released"): (
        MEMBERS, _file("api-release-file-download"), None),
    ("api-release-file-content", "get", "submitted"): (
        (403, 403, 404, 200, 403, 403, 401), _file("api-release-file-content"), None),
    ("api-output-queue", "get", "submitted"): (
        (404, 404, 404, 200, 200, 404, 401), lambda w: reverse("api-output-queue"), None),
    ("api-release-reviews", "post", "submitted"): (REVIEWER, _release("api-release-reviews"),
                                                   None),
    ("api-review", "get", "submitted_open"): (OWN_REVIEW, _review("api-review"), None),
    ("api-review-decision", "post", "submitted_open"): (
        OWN_REVIEW, _review("api-review-decision", FAIL_TABLE), lambda w: DECISION),
    ("api-review-submit", "post", "submitted_open"): (OWN_REVIEW, _review("api-review-submit"),
                                                      None),
}  # fmt: skip
# What a successful call writes to the audit log (a call not listed writes nothing).
AUDITED: dict[tuple[str, str], list[str]] = {
    ("api-project-releases", "post"): [E.RELEASE_REQUEST_CREATED],
    ("api-release-files", "post"): [E.RELEASE_FILE_ADDED, E.AUTOMATED_CHECKS_RUN],
    ("api-release-file", "delete"): [E.RELEASE_FILE_REMOVED],
    ("api-release-file-exceptions", "post"): [E.EXCEPTION_REQUESTED],
    ("api-release-submit", "post"): [E.RELEASE_REQUEST_SUBMITTED],
    ("api-release-withdraw", "post"): [E.RELEASE_REQUEST_WITHDRAWN],
    ("api-release-revoke", "post"): [E.RELEASE_REVOKED],
    ("api-release-download-all", "get"): [E.RELEASED_FILE_DOWNLOADED] * 2,
    ("api-release-file-download", "get"): [E.RELEASED_FILE_DOWNLOADED],
    ("api-release-file-content", "get"): [E.OUTPUT_FILE_VIEWED],
    ("api-release-reviews", "post"): [E.REVIEW_STARTED],
    ("api-review-decision", "post"): [E.FILE_DECIDED],
    ("api-review-submit", "post"): [E.REVIEW_SUBMITTED],
}


def test_every_release_url_and_method_is_in_the_table():
    assert len(ROUTES) == 18
    assert set(CALLS) == {(name, method) for name, method, _ in TABLE}
    assert all(len(statuses) == len(ROLES) for statuses, _, _ in TABLE.values())


@pytest.mark.parametrize("call", sorted(TABLE), ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_every_release_url_answers_each_kind_of_caller_as_the_policy_says(releases, call):
    """One test per URL, method and state; one call per kind of caller: refusals first,
    each changing nothing; then those that succeed, each writing only its own events."""
    name, method, state = call
    statuses, url, body = TABLE[call]
    world, people = world_in(state, releases), releases.people
    expected = dict(zip(ROLES, statuses, strict=True))
    answered = {}

    for role in sorted(ROLES, key=lambda r: (expected[r] < 400, ROLES.index(r))):
        client = client_of(people, role)
        before, at = builders.snapshot(world.request), mark()
        response = getattr(client, method)(url(world), *((body(world), JSON) if body else ()))
        answered[role] = response.status_code
        if response.status_code >= 400 or method == "get":
            after = builders.snapshot(world.request)
            after["events"] = before["events"] = 0  # a GET may audit (downloads, views)
            assert after == before, (role, response.status_code)
        written = AUDITED.get((name, method), []) if response.status_code < 400 else []
        assert types_since(at) == written, role

    assert answered == expected


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_method_a_url_lacks_is_404_for_outsiders_and_405_for_those_who_see_it(releases, method):
    people = releases.people
    url = reverse("api-release", args=[releases.request("draft").pk])

    outsider = getattr(verified_client(people.outsider), method)(url, {}, JSON)
    author = getattr(verified_client(people.author), method)(url, {}, JSON)

    assert (outsider.status_code, author.status_code) == (404, 405)


# --- the whole workflow through the API --------------------------------------------------
def _by_name(files: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in files}


def test_a_request_goes_from_draft_to_the_downloaded_bytes_through_the_api(releases):
    people, job = releases.people, releases.job
    author = token_client(people.author)  # a script, with a personal token
    first, second = verified_client(people.first), verified_client(people.second)
    originals = {name: builders.output_path(job, name).read_bytes()
                 for name in (PASS_TABLE, FAIL_TABLE)}  # fmt: skip
    at = mark()

    created = author.post(reverse("api-project-releases", args=[releases.project.pk]),
                          {"title": "Counts by sex"}, JSON)  # fmt: skip
    assert created.status_code == 201
    pk, url = created.json()["id"], created["Location"]
    assert url == reverse("api-release", args=[pk])
    assert (created.json()["status"], created.json()["round"], created.json()["files"]) == (
        "draft", 1, [])  # fmt: skip
    assert created.json()["policy"]["name"] == "acro-default"
    added = {
        name: author.post(reverse("api-release-files", args=[pk]),
                          {"job_id": job.pk, "output_id": builders.output_of(job, name).pk,
                           "context": f"{name}: people by sex", "controls": "none"}, JSON)
        for name in (PASS_TABLE, FAIL_TABLE)
    }  # fmt: skip
    assert [r.status_code for r in added.values()] == [201, 201]
    passing, failing = added[PASS_TABLE].json(), added[FAIL_TABLE].json()
    assert added[FAIL_TABLE]["Location"] == reverse("api-release-file", args=[pk, failing["id"]])
    assert (passing["outcome"], passing["rules"], passing["findings"]) == ("pass", {}, [])
    assert (failing["outcome"], failing["status"]) == ("review", "fail")
    assert failing["rules"] == {"T1": "fail"}
    assert failing["exceptions_missing"] == ["T1"]
    (finding,) = failing["findings"]
    assert (finding["rule"], finding["status"], finding["row"], finding["column"],
            finding["cell"]) == ("T1", "fail", 1, "people", {"sex": "M"})  # fmt: skip
    assert "evidence" not in finding  # the numbers the rule used are for the checkers
    assert (failing["sha256"], failing["size"]) == (builders.sha256(originals[FAIL_TABLE]),
                                                    len(originals[FAIL_TABLE]))  # fmt: skip
    assert (failing["content_url"], failing["download_url"]) == (None, None)

    refused = author.post(reverse("api-release-submit", args=[pk]))
    assert (refused.status_code, errors(refused)) == (
        400, {FAIL_TABLE: ["No exception request for T1."]})  # fmt: skip
    asked = author.post(reverse("api-release-file-exceptions", args=[pk, failing["id"]]),
                        {"rule": "T1", "reason": "other",
                         "justification": "The small cell is suppressed."}, JSON)  # fmt: skip
    assert asked.status_code == 201
    assert (asked.json()["rule"], asked.json()["reason"], asked.json()["cells"]) == (
        "T1", "other", [{"sex": "M"}])  # fmt: skip
    submitted = author.post(reverse("api-release-submit", args=[pk]))
    assert (submitted.status_code, submitted.json()["status"]) == (200, "submitted")

    queue = {e["request"]["id"]: e for e in first.get(reverse("api-output-queue")).json()}
    assert (queue[pk]["reviews_in"], queue[pk]["mine"]) == (0, None)
    assert queue[pk]["request"]["project"]["purpose"] == "research"
    for checker in (first, second):
        started = checker.post(reverse("api-release-reviews", args=[pk]))
        assert started.status_code == 201
        review = started.json()["id"]
        assert started["Location"] == reverse("api-review", args=[review])
        seen = checker.get(url).json()
        assert seen["review"]["mine"]["id"] == review
        assert seen["decisions"] == []  # blind: the other checker's are not shown
        files = _by_name(seen["files"])
        assert files[FAIL_TABLE]["findings"][0]["evidence"] == {"persons": 3, "threshold": 10}
        viewed = checker.get(files[FAIL_TABLE]["content_url"])
        assert content(viewed) == originals[FAIL_TABLE]
        assert viewed["X-Unchanged-Since-Checked"] == "true"
        for name, body in ((PASS_TABLE, {"decision": "approve"}),
                           (FAIL_TABLE, {"decision": "approve", "comment": "Suppressed.",
                                         "exceptions": {"T1": True}})):  # fmt: skip
            decided = checker.post(reverse("api-review-decision", args=[review, files[name]["id"]]),
                                   body, JSON)  # fmt: skip
            assert (decided.status_code, decided.json()["decision"]) == (200, "approve")
        done = checker.post(reverse("api-review-submit", args=[review]))
        assert done.status_code == 200
    assert done.json()["status"] == "released"

    detail = author.get(url).json()
    files = _by_name(detail["files"])
    assert {(f["decision"], f["released"]) for f in files.values()} == {("approve", True)}
    assert len(detail["decisions"]) == 4  # the round is over: every decision is shown
    got = author.get(files[FAIL_TABLE]["download_url"])
    assert got.status_code == 200
    assert content(got) == originals[FAIL_TABLE]
    assert got["X-Content-SHA256"] == builders.sha256(originals[FAIL_TABLE])
    assert got["Content-Disposition"] == f'attachment; filename="{FAIL_TABLE}"'
    bundle = author.get(reverse("api-release-download-all", args=[pk]))
    archive = zipfile.ZipFile(io.BytesIO(content(bundle)))
    paths = {name: f"job-{job.pk}/{name}" for name in originals}
    assert sorted(archive.namelist()) == sorted([*paths.values(), "manifest.json", "SHA256SUMS"])
    assert {name: archive.read(path) for name, path in paths.items()} == originals
    assert archive.read("SHA256SUMS").decode() == "".join(
        f"{builders.sha256(originals[name])}  {paths[name]}\n" for name in originals)  # fmt: skip
    assert types_since(at) == [
        E.RELEASE_REQUEST_CREATED,
        E.RELEASE_FILE_ADDED, E.AUTOMATED_CHECKS_RUN, E.RELEASE_FILE_ADDED, E.AUTOMATED_CHECKS_RUN,
        E.EXCEPTION_REQUESTED, E.RELEASE_REQUEST_SUBMITTED,
        E.REVIEW_STARTED, E.OUTPUT_FILE_VIEWED, E.FILE_DECIDED, E.FILE_DECIDED, E.REVIEW_SUBMITTED,
        E.REVIEW_STARTED, E.OUTPUT_FILE_VIEWED, E.FILE_DECIDED, E.FILE_DECIDED, E.REVIEW_SUBMITTED,
        E.RELEASE_APPROVED, E.RELEASED,
        E.RELEASED_FILE_DOWNLOADED, E.RELEASED_FILE_DOWNLOADED, E.RELEASED_FILE_DOWNLOADED,
    ]  # fmt: skip
    actors = {e.actor_id for e in events_since(at) if e.event_type == E.FILE_DECIDED}
    assert actors == {people.first.pk, people.second.pk}


def test_the_log_of_a_real_run_can_be_put_forward_but_not_that_of_a_dummy_run(releases):
    people, real, dummy = releases.people, releases.real_job, releases.job
    author = verified_client(people.author)
    pk = author.post(reverse("api-project-releases", args=[releases.project.pk]),
                     {"title": "The log"}, JSON).json()["id"]  # fmt: skip
    url = reverse("api-release-files", args=[pk])

    refused = author.post(url, {"job_id": dummy.pk, "output_id": "log", "context": "Log."}, JSON)
    added = author.post(url, {"job_id": real.pk, "output_id": "log", "context": "Log."}, JSON)

    assert refused.status_code == 400
    assert "log of a finished run on real data" in refused.json()["detail"]
    assert added.status_code == 201
    assert (added.json()["name"], added.json()["output"], added.json()["job"]) == (
        f"job-{real.pk}-log.txt", None, real.pk)  # fmt: skip


def test_a_returned_request_is_changed_and_resubmitted_as_a_new_round(releases):
    people, job, request = releases.people, releases.job, releases.request("returned")
    author = verified_client(people.author)
    url = reverse("api-release", args=[request.pk])
    failing = builders.file_named(request, FAIL_TABLE)

    returned = author.get(url).json()
    removed = author.delete(reverse("api-release-file", args=[request.pk, failing.pk]))
    added = author.post(reverse("api-release-files", args=[request.pk]),
                        {"job_id": job.pk, "output_id": builders.output_of(job, TEXT).pk,
                         "context": "How the counts were made."}, JSON)  # fmt: skip
    missing = added.json()["exceptions_missing"]
    refused = author.post(reverse("api-release-submit", args=[request.pk]))
    exceptions = reverse("api-release-file-exceptions", args=[request.pk, added.json()["id"]])
    asked = [author.post(exceptions, {"rule": rule, "reason": "not_about_individuals",
                                      "justification": "Prose about the method."}, JSON)
             for rule in missing]  # fmt: skip
    resubmitted = author.post(reverse("api-release-submit", args=[request.pk]))

    assert returned["status"] == "returned"
    assert {d["decision"] for d in returned["decisions"] if d["file"] == failing.pk} == {"changes"}
    assert (removed.status_code, added.status_code) == (204, 201)
    assert missing and [r.status_code for r in asked] == [201] * len(missing)
    assert refused.status_code == 400
    assert errors(refused) == {TEXT: [f"No exception request for {', '.join(missing)}."]}
    assert resubmitted.status_code == 200
    body = resubmitted.json()
    assert (body["status"], body["round"]) == ("submitted", 2)
    assert {f["name"]: f["added_round"] for f in body["files"]} == {PASS_TABLE: 1, TEXT: 2}
    assert [(f["name"], f["removed_round"]) for f in body["removed_files"]] == [(FAIL_TABLE, 2)]
    assert body["decisions"] == returned["decisions"]  # the first round's stay readable


# --- lists and the queue -------------------------------------------------------------------
def test_lists_show_each_caller_only_the_requests_they_may_see(releases):
    people = releases.people
    draft, submitted = releases.request("draft"), releases.request("submitted")

    def listed(role: str, name: str = "api-releases", *args: Any, **query: str) -> set[int]:
        response = client_of(people, role).get(reverse(name, args=args), query)
        assert response.status_code == 200, (role, response.status_code)
        return {r["id"] for r in response.json()["results"]}

    assert {draft.pk, submitted.pk} <= listed("author")
    assert listed("author", status="draft") == {draft.pk}
    assert listed("outsider") == set()
    assert submitted.pk in listed("checker") and draft.pk not in listed("checker")
    assert {draft.pk, submitted.pk} <= listed("ig")
    assert listed("author", "api-project-releases", releases.project.pk) == listed("author")
    bad = client_of(people, "author").get(reverse("api-releases"), {"status": "done"})
    assert (bad.status_code, errors(bad)) == (400, {"status": ["Not a status."]})


def test_the_queue_lists_requests_to_review_and_never_a_checkers_own_projects(releases):
    people = releases.people
    submitted, opened = releases.request("submitted"), releases.request("submitted_open")

    queue = {e["request"]["id"]: e for e in
             verified_client(people.checker).get(reverse("api-output-queue")).json()}  # fmt: skip
    theirs = verified_client(people.member_checker).get(reverse("api-output-queue")).json()

    assert (queue[submitted.pk]["reviews_in"], queue[submitted.pk]["mine"]) == (0, None)
    assert queue[releases.request("partially_reviewed").pk]["reviews_in"] == 1
    assert queue[releases.request("reviewed").pk]["reviews_in"] == 2
    assert queue[submitted.pk]["age_days"] == 0
    mine = Review.objects.get(request=opened, reviewer=people.checker)
    assert queue[opened.pk]["mine"]["id"] == mine.pk
    assert releases.request("draft").pk not in queue
    assert [e for e in theirs if e["request"]["project"]["id"] == releases.project.pk] == []


def test_the_review_block_says_why_a_checker_may_not_review(releases):
    people, request = releases.people, releases.request("submitted")
    url = reverse("api-release", args=[request.pk])

    def block(role: str) -> Any:
        return client_of(people, role).get(url).json()["review"]

    assert block("checker")["conflict"] is None
    assert block("member_checker")["conflict"] == "you are a member of the project"
    assert (block("author"), block("ig")) == (None, None)


# --- blind review, a third checker, the wrong state -------------------------------------------
def test_decisions_are_blind_until_two_reviews_are_in(releases):
    people, request = releases.people, releases.request("partially_reviewed_open")
    url = reverse("api-release", args=[request.pk])
    review = Review.objects.get(request=request, reviewer=people.checker)

    def decisions(role: str) -> list[dict[str, Any]]:
        return client_of(people, role).get(url).json()["decisions"]

    def reviewers(role: str) -> set[int]:
        return {d["reviewer"]["id"] for d in decisions(role)}

    assert reviewers("checker") == {people.checker.pk}  # their own open review only
    assert reviewers("first") == {people.first.pk}
    assert decisions("author") == decisions("ig") == []

    done = verified_client(people.checker).post(reverse("api-review-submit", args=[review.pk]))

    assert done.json()["status"] == "released"
    assert reviewers("first") == {people.first.pk, people.checker.pk}
    shown = decisions("author")  # researchers see which checker of the round, not who
    assert len(shown) == 4 and {d["reviewer"] for d in shown} == {None}
    assert {d["checker"] for d in shown} == {"Round 1, output checker 1",
                                              "Round 1, output checker 2"}  # fmt: skip


def test_a_third_checker_settles_a_disagreement_and_a_fourth_is_refused(releases):
    people, request = releases.people, releases.request("reviewed")
    disputed = builders.file_named(request, FAIL_TABLE)
    checker = verified_client(people.checker)

    seen = checker.get(reverse("api-release", args=[request.pk])).json()["review"]
    third = checker.post(reverse("api-release-reviews", args=[request.pk]))
    again = checker.post(reverse("api-release-reviews", args=[request.pk]))
    fourth = verified_client(builders.checker()).post(
        reverse("api-release-reviews", args=[request.pk]))  # fmt: skip

    assert (seen["disputed"], seen["reviews_submitted"]) == ([disputed.pk], 2)
    assert (third.status_code, again.status_code, fourth.status_code) == (201, 200, 409)
    assert again.json()["id"] == third.json()["id"]
    review = third.json()["id"]
    for file in selectors.current_files(request):
        granted = {rule: True for rule in selectors.non_pass_rules(file)}
        body = {"decision": "approve", "comment": "Suppressed.", "exceptions": granted}
        decided = checker.post(reverse("api-review-decision", args=[review, file.pk]), body, JSON)
        assert decided.status_code == 200, decided.content
    settled = checker.post(reverse("api-review-submit", args=[review]))
    assert (settled.status_code, settled.json()["status"]) == (200, "released")
    files = _by_name(settled.json()["files"])
    decided = {name: f["decision"] for name, f in files.items()}
    assert decided == {PASS_TABLE: "approve", FAIL_TABLE: "approve"}


@pytest.mark.parametrize(
    ("state", "role", "name"),
    [
        ("released", "author", "api-release-withdraw"),
        ("submitted", "author", "api-release-submit"),
        ("draft", "ig", "api-release-revoke"),
        ("rejected", "checker", "api-release-reviews"),
    ],
)
def test_an_action_the_state_does_not_allow_is_a_409_and_changes_nothing(
    releases, state, role, name
):
    request = releases.request(state)
    before = builders.snapshot(request)
    body = {"reason": "Published in error."} if name == "api-release-revoke" else {}

    response = client_of(releases.people, role).post(reverse(name, args=[request.pk]), body, JSON)

    assert response.status_code == 409, response.content
    assert builders.snapshot(request) == before


# --- forged and foreign ids ---------------------------------------------------------------
def _foreign(releases: Any) -> Any:
    """A draft of another project (whose member is also ``project``'s author)."""
    return builders.draft(releases.other_job, releases.people.author)


FORGED: dict[str, tuple[str, str, str, Callable[[Any, Any], str], Body]] = {
    # case: (state, role, method, url from (world, foreign request), body)
    "another project's file": ("draft", "author", "get", lambda w, f: reverse(
        "api-release-file", args=[w.request.pk, f.files.first().pk]), None),
    "another project's file, removed": ("draft", "author", "delete", lambda w, f: reverse(
        "api-release-file", args=[w.request.pk, f.files.first().pk]), None),
    "another project's file, exception": ("draft", "author", "post", lambda w, f: reverse(
        "api-release-file-exceptions", args=[w.request.pk, f.files.first().pk]),
        lambda w: EXCEPTION),
    "another request's file, downloaded": ("released", "author", "get", lambda w, f: reverse(
        "api-release-file-download",
        args=[w.request.pk, w.file_in("draft", PASS_TABLE).pk]),
        None),
    "a released file under a draft's id": ("draft", "author", "get", lambda w, f: reverse(
        "api-release-file-download",
        args=[w.request.pk, w.file_in("released", PASS_TABLE).pk]),
        None),
    "another project's file, viewed": ("submitted", "checker", "get", lambda w, f: reverse(
        "api-release-file-content", args=[w.request.pk, f.files.first().pk]), None),
    "another request's file, decided": ("submitted_open", "checker", "post", lambda w, f: reverse(
        "api-review-decision",
        args=[w.review.pk, w.file_in("submitted", PASS_TABLE).pk]),
        lambda w: {"decision": "approve"}),
    "another checker's review": ("submitted_open", "first", "post", lambda w, f: reverse(
        "api-review-decision", args=[w.review.pk, w.file(PASS_TABLE).pk]),
        lambda w: {"decision": "approve"}),
    "another checker's review, submitted": ("submitted_open", "first", "post", lambda w, f: reverse(
        "api-review-submit", args=[w.review.pk]), None),
    "another project's job": ("draft", "author", "post", lambda w, f: reverse(
        "api-release-files", args=[w.request.pk]),
        lambda w: {"job_id": w.releases.other_job.pk, "context": "x",
                   "output_id": builders.output_of(w.releases.other_job, TEXT).pk}),
    "another job's output": ("draft", "author", "post", lambda w, f: reverse(
        "api-release-files", args=[w.request.pk]),
        lambda w: {"job_id": w.job.pk, "context": "x",
                   "output_id": builders.output_of(w.releases.other_job, TEXT).pk}),
    "an output of another run of the project": ("draft", "author", "post", lambda w, f: reverse(
        "api-release-files", args=[w.request.pk]),
        lambda w: {"job_id": w.job.pk, "context": "x",
                   "output_id": builders.output_of(w.releases.real_job, TEXT).pk}),
    "another project's request": ("draft", "other_member", "get", lambda w, f: reverse(
        "api-release", args=[f.pk]), None),
    "a request that does not exist": ("draft", "author", "get", lambda w, f: reverse(
        "api-release", args=[f.pk + 1000]), None),
}  # fmt: skip


@pytest.mark.parametrize("case", FORGED)
def test_a_forged_or_foreign_id_is_a_404_and_changes_nothing(releases, case):
    state, role, method, url, body = FORGED[case]
    world = world_in(state, releases)
    foreign = _foreign(releases)
    before, at = builders.snapshot(world.request), mark()

    response = getattr(client_of(releases.people, role), method)(
        url(world, foreign), *((body(world), JSON) if body else ()))  # fmt: skip

    assert response.status_code == 404, response.content
    assert (builders.snapshot(world.request), types_since(at)) == (before, [])


# --- bad bodies --------------------------------------------------------------------------
def _add(**body: Any) -> Callable[[World], dict[str, Any]]:
    def make(w: World) -> dict[str, Any]:
        defaults = {"job_id": w.job.pk, "output_id": w.output_id(TEXT), "context": "Notes."}
        return {k: v for k, v in {**defaults, **body}.items() if v is not None}

    return make


FAILING = {"rule": "T1", "reason": "other", "justification": "Suppressed before publication."}
# case: (state, role, URL, body, the fields named; None: a 400 naming no field, with a detail)
BAD_BODIES: dict[str, tuple[str, str, Url, Callable[[World], Any], set[str] | None]] = {
    "no title": ("draft", "author", _project("api-project-releases"), lambda w: {}, {"title"}),
    "a blank title": ("draft", "author", _project("api-project-releases"),
                      lambda w: {"title": "   "}, {"title"}),
    "an empty file": ("draft", "author", _release("api-release-files"), lambda w: {},
                      {"job_id", "output_id", "context"}),
    "a job id that is not a number": ("draft", "author", _release("api-release-files"),
                                      _add(job_id="first"), {"job_id"}),
    "an output that is neither an id nor the log": (
        "draft", "author", _release("api-release-files"), _add(output_id="readme"), {"output_id"}),
    "output id 0": ("draft", "author", _release("api-release-files"), _add(output_id=0),
                    {"output_id"}),
    "output id true": ("draft", "author", _release("api-release-files"), _add(output_id=True),
                       {"output_id"}),
    "no context": ("draft", "author", _release("api-release-files"), _add(context="  "),
                   {"context"}),
    "an evidence file": ("draft", "author", _release("api-release-files"),
                         lambda w: _add(output_id=w.output_id(builders.EVIDENCE))(w), None),
    "a file already in the request": ("draft", "author", _release("api-release-files"),
                                      lambda w: _add(output_id=w.output_id(FAIL_TABLE))(w), None),
    "an unknown reason": ("draft", "author", _file("api-release-file-exceptions"),
                          lambda w: {**FAILING, "reason": "because"}, {"reason"}),
    "no justification": ("draft", "author", _file("api-release-file-exceptions"),
                         lambda w: {"rule": "T1", "reason": "other"}, {"justification"}),
    "a blank justification": ("draft", "author", _file("api-release-file-exceptions"),
                              lambda w: {**FAILING, "justification": " "}, {"justification"}),
    "a rule the file passed": ("draft", "author", _file("api-release-file-exceptions"),
                               lambda w: {**FAILING, "rule": "D1"}, None),
    "an unknown decision": ("submitted_open", "checker", _review("api-review-decision", FAIL_TABLE),
                            lambda w: {**DECISION, "decision": "maybe"}, {"decision"}),
    "no comment on a file for review": (
        "submitted_open", "checker", _review("api-review-decision", FAIL_TABLE),
        lambda w: {"decision": "approve", "exceptions": {"T1": True}}, {"comment"}),
    "no comment when asking for changes": (
        "submitted_open", "checker", _review("api-review-decision", PASS_TABLE),
        lambda w: {"decision": "changes"}, {"comment"}),
    "an exception that is not a yes or no": (
        "submitted_open", "checker", _review("api-review-decision", FAIL_TABLE),
        lambda w: {**DECISION, "exceptions": {"T1": "perhaps"}}, {"exceptions"}),
    "an exception nobody asked for": (
        "submitted_open", "checker", _review("api-review-decision", FAIL_TABLE),
        lambda w: {**DECISION, "exceptions": {"D1": True}}, None),
    "no reason to revoke": ("released", "ig", _release("api-release-revoke"), lambda w: {},
                            {"reason"}),
    "a blank reason to revoke": ("released", "ig", _release("api-release-revoke"),
                                 lambda w: {"reason": " "}, {"reason"}),
    "a body that is not an object": ("draft", "author", _release("api-release-files"),
                                     lambda w: ["not", "an", "object"], {"non_field_errors"}),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_bad_body_is_a_400_naming_the_problem_and_changes_nothing(releases, case):
    state, role, url, body, fields = BAD_BODIES[case]
    world = world_in(state, releases)
    before, requests, at = builders.snapshot(world.request), ReleaseRequest.objects.count(), mark()

    response = client_of(releases.people, role).post(url(world), body(world), JSON)

    assert response.status_code == 400, response.content
    if fields is None:
        assert response.json()["detail"]
    else:
        assert set(errors(response)) == fields
        assert all(isinstance(m, str) and m for f in fields for m in errors(response)[f])
    assert builders.snapshot(world.request) == before
    assert (ReleaseRequest.objects.count(), types_since(at)) == (requests, [])


# --- tampering -----------------------------------------------------------------------------
def test_a_checker_is_warned_when_a_file_changed_since_it_was_checked(releases):
    people, request = releases.people, releases.request("submitted")
    file = builders.file_named(request, FAIL_TABLE)
    builders.tamper(builders.output_path(releases.job, FAIL_TABLE))

    viewed = verified_client(people.checker).get(
        reverse("api-release-file-content", args=[request.pk, file.pk]))  # fmt: skip

    assert viewed.status_code == 200
    assert viewed["X-Unchanged-Since-Checked"] == "false"
    assert content(viewed) == b"changed on disk\n"


def test_a_released_file_changed_on_disk_is_withheld_not_downloaded(releases):
    people, request = releases.people, releases.request("released")
    file = builders.file_named(request, FAIL_TABLE)
    builders.tamper(data_root() / file.released.path)
    author = verified_client(people.author)

    at = mark()
    one = author.get(reverse("api-release-file-download", args=[request.pk, file.pk]))
    assert (one.status_code, types_since(at)) == (403, [])
    at = mark()
    every = author.get(reverse("api-release-download-all", args=[request.pk]))
    assert every.status_code == 403
    # Every file is verified before any is audited: a refused zip records no download.
    assert types_since(at) == []
    assert b"changed on disk" not in one.content + every.content


def test_a_revoked_release_is_no_longer_downloaded(releases):
    people, request = releases.people, releases.request("revoked")
    file = builders.file_named(request, PASS_TABLE)
    author = verified_client(people.author)

    detail = author.get(reverse("api-release", args=[request.pk])).json()
    one = author.get(reverse("api-release-file-download", args=[request.pk, file.pk]))

    assert (detail["status"], detail["revoked_reason"]) == ("revoked", "Published in error.")
    assert all(f["download_url"] is None for f in detail["files"])
    assert one.status_code == 404


# --- the ACRO-compatible export -------------------------------------------------------------
def test_the_export_maps_each_file_to_an_acro_record(releases):
    people, job = releases.people, releases.job
    request = releases.request("every_outcome")

    response = verified_client(people.checker).get(
        reverse("api-release-results", args=[request.pk]))  # fmt: skip

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="results.json"'
    body = response.json()
    assert body["version"] == "1.0.2"
    uid = {name: f"job-{job.pk}_{name}" for name in (PASS_TABLE, FAIL_TABLE,
                                                      builders.FAIL_CHART, TEXT)}  # fmt: skip
    assert set(body["results"]) == set(uid.values())
    records = {name: body["results"][key] for name, key in uid.items()}
    assert {name: (r["status"], r["type"]) for name, r in records.items()} == {
        PASS_TABLE: ("pass", "table"), FAIL_TABLE: ("review", "table"),
        builders.FAIL_CHART: ("fail", "custom"), TEXT: ("review", "custom"),
    }  # fmt: skip
    failing = records[FAIL_TABLE]
    assert failing["uid"] == uid[FAIL_TABLE]
    # small_groups.csv is "sex,people" with M (3 people) on data row 1: the cell of
    # column "people", the CSV's second column, is [1, 0] as SACRO-Viewer counts them.
    sdc = {"summary": {"T1": 1}, "cells": {"T1": [[1, 0]]}}
    assert failing["files"] == [{"name": f"job-{job.pk}/{FAIL_TABLE}", "sdc": sdc}]
    assert failing["outcome"] == {"people": {"1": "T1; "}}
    file = builders.file_named(request, FAIL_TABLE)
    (asked,) = file.exceptions.all()
    assert failing["exception"] == (
        f"T1 ({asked.get_reason_display().lower()}): {asked.justification}")  # fmt: skip
    controls = [f"Controls: {file.controls}"] if file.controls else []
    assert failing["comments"] == [f"Context: {file.context}", *controls]
    assert failing["command"] == f"job {job.pk}: Population profile"
    assert failing["summary"].startswith("table : review\n T1: fail - 1 cells may need")
    assert failing["properties"]["sha256"] == file.sha256
    assert records[PASS_TABLE]["files"][0]["sdc"] == {"summary": {}, "cells": {}}
    assert (records[PASS_TABLE]["exception"], records[PASS_TABLE]["outcome"]) == ("", {})
    assert "3" not in json.dumps(failing["files"]) + json.dumps(failing["outcome"])


ACRO_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import pandas as pd
    from acro import ACRO

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 200),
                       "b": rng.choice(["p", "q"], 200)})
    df.loc[0:2, "a"] = "w"  # three people: a cell that fails the threshold
    session = ACRO(suppress=False)
    session.crosstab(df.a, df.b)
    session.add_exception("output_0", "structural zero")
    session.add_comments("output_0", "people by a and b")
    with open("notes.txt", "w") as handle:
        handle.write("notes")
    session.custom_output("notes.txt", "free text")
    session.finalise("out", "json")
    """
)


@pytest.fixture
def acro_results_json(tmp_path: Path) -> dict[str, Any]:
    """A results.json written by ACRO 1.0.2 itself, in its own environment."""
    try:
        python = acro_python()
    except AcroUnavailable as exc:
        pytest.skip(f"ACRO export check skipped: {exc}")
    (tmp_path / "make.py").write_text(ACRO_SCRIPT)
    env = {"MPLBACKEND": "Agg", "MPLCONFIGDIR": str(python.parent.parent / "mplconfig"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # fmt: skip
    done = subprocess.run([str(python), "-I", "make.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    written: dict[str, Any] = json.loads((tmp_path / "out" / "results.json").read_text())
    return written


def _shape(value: Any) -> Any:
    return {k: type(v).__name__ for k, v in value.items()} if isinstance(value, dict) else value


@pytest.mark.parity
def test_the_export_has_the_shape_of_the_results_json_acro_writes(releases, acro_results_json):
    theirs = acro_results_json
    ours = acro_export.acro_results(releases.request("every_outcome"))
    acro_table = theirs["results"]["output_0"]
    acro_custom = theirs["results"]["output_1"]
    (our_table,) = [r for r in ours["results"].values() if r["uid"].endswith(FAIL_TABLE)]
    (our_text,) = [r for r in ours["results"].values() if r["uid"].endswith(TEXT)]

    assert _shape(ours) == _shape(theirs)
    assert ours["version"] == theirs["version"] == "1.0.2"
    assert _shape(ours["tool"]) == _shape(theirs["tool"])
    for record in ours["results"].values():
        assert _shape(record) == _shape(acro_table) == _shape(acro_custom)
        assert record["status"] in {"pass", "review", "fail"}
        assert [set(f) for f in record["files"]] == [{"name", "sdc"}]
    (acro_file,) = acro_table["files"]
    (our_file,) = our_table["files"]
    assert set(our_file["sdc"]) == set(acro_file["sdc"]) == {"summary", "cells"}
    for sdc in (our_file["sdc"], acro_file["sdc"]):
        assert all(isinstance(n, int) for n in sdc["summary"].values())
        cells = [cell for found in sdc["cells"].values() for cell in found]
        assert cells and all(len(c) == 2 and all(isinstance(i, int) for i in c) for c in cells)
    acro_row = next(iter(acro_table["outcome"].values()))
    our_row = next(iter(our_table["outcome"].values()))
    assert all(isinstance(v, str) for v in [*acro_row.values(), *our_row.values()])
    assert our_text["files"][0]["name"].endswith(TEXT)
    assert acro_table["exception"] == "structural zero" and our_table["exception"]


# --- the OpenAPI schema ------------------------------------------------------------------------
def test_the_schema_covers_the_release_api_without_warnings():
    document = schema_without_warnings()
    paths = {openapi_path(route) for route in ROUTES.values()}
    assert len(paths) == 18 and paths <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert set(schemas["ReleaseRequestStatusEnum"]["enum"]) == set(S.values)
    assert set(schemas["FileDecisionEnum"]["enum"]) == set(D.values)
    assert schemas["ReleaseFile"]["properties"]["download_url"]["nullable"] is True
    assert not {"verdict", "path"} & set(schemas["ReleaseFile"]["properties"])
    assert schemas["FileAdd"]["properties"]["output_id"]["oneOf"][1]["enum"] == ["log"]
    post = document["paths"]["/api/v1/projects/{id}/releases"]["post"]
    assert "201" in post["responses"]
