"""The release pages (outputs/views/): every outputs URL is 404 to whoever may not see the
request (from the resolver, GET and POST), the researcher's way from a job to a request,
its files, exception requests and submission, two checkers' blind reviews with the
table's failing cells marked and the chart beside its data, the release downloaded as
single files and as a zip whose manifest matches the bytes, revocation, resubmission's
changes, separation of duties and the escaping of free text."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from outputs import services
from outputs.models import ReleaseFile, ReleaseRequest
from outputs.views import tables
from sde.audit.events import EventType as E
from sde.data.files import data_root
from sde.identity.models import User
from sde.identity.roles import Role
from sde.projects.services import MemberSpec, add_member, create_project
from tests import scenarios
from tests.conftest import verified_client
from tests.events import mark, types_since
from tests.unit.outputs import page_fixtures
from tests.unit.outputs.page_fixtures import (
    PNG,
    SAFE,
    SMALL,
    World,
    answer_every_rule,
    draft,
    evidence,
    output,
    released,
    review,
    submitted,
)
from tests.unit.sde.projects.builders import researcher

pytestmark = pytest.mark.django_db
S = ReleaseRequest.Status
# The fixtures (tests/unit/outputs/page_fixtures.py).
world = page_fixtures.world
release_drop = page_fixtures.release_drop


def _html(response: Any) -> str:
    return html.unescape(response.content.decode())


def _text(response: Any) -> str:
    """The page's words: tags removed, white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", _html(response)).split())


def _detail(world: World, request: ReleaseRequest, name: str = "release-detail") -> str:
    return reverse(name, args=[world.project.pk, request.pk])


def _file_url(world: World, request: ReleaseRequest, file: ReleaseFile, name: str) -> str:
    return reverse(name, args=[world.project.pk, request.pk, file.pk])


def _file(request: ReleaseRequest, name: str) -> ReleaseFile:
    return ReleaseFile.objects.get(request=request, name=name, removed_round__isnull=True)


def _fresh(request: ReleaseRequest) -> ReleaseRequest:
    return ReleaseRequest.objects.get(pk=request.pk)


# --- Every outputs URL, from the resolver ------------------------------------------------
def _routes(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry, route)
        else:
            yield entry.name or route, route, entry.callback.__module__


ROUTES = {name: route for name, route, module in _routes(get_resolver())
          if module.startswith("outputs.views")}  # fmt: skip
PROJECT_ROUTES = {n for n, r in ROUTES.items() if r.startswith("projects/<int:pk>/releases/")}
CHECKER_ROUTES = {n for n, r in ROUTES.items() if r.startswith("outputs/")}
# The state-changing views: POST only (405 to GET), and refused without a CSRF token.
ACTIONS = {"release-create", "release-add-file", "release-remove-file", "release-exception",
           "release-submit", "release-withdraw", "release-revoke", "output-start-review",
           "output-decide", "output-submit-review"}  # fmt: skip


def _fill(name: str, world: World, request: ReleaseRequest, file: ReleaseFile) -> str:
    path = ROUTES[name].replace("<int:pk>", str(world.project.pk))
    path = path.replace("<int:release_id>", str(request.pk)).replace("<int:file_id>", str(file.pk))
    assert "<" not in path, f"teach the test to fill {ROUTES[name]}"
    return "/" + path


def test_the_resolver_finds_the_outputs_urls():
    assert PROJECT_ROUTES == {
        "release-list", "release-create", "release-detail", "release-add-file",
        "release-remove-file", "release-exception", "release-download", "release-download-all",
        "release-submit", "release-withdraw", "release-revoke",
    }  # fmt: skip
    assert CHECKER_ROUTES == {"output-queue", "output-review", "output-start-review",
                              "output-decide", "output-chart", "output-submit-review"}  # fmt: skip
    assert set(ROUTES) == PROJECT_ROUTES | CHECKER_ROUTES
    assert ACTIONS < set(ROUTES)


def _checker_elsewhere(world: World) -> User:
    """An output checker who is a member of another project (not of this one)."""
    other = scenarios.person(Role.OUTPUT_CHECKER, Role.RESEARCHER)
    create_project(
        title="Another project", lay_summary="Elsewhere.", organisation=scenarios.organisation(),
        scope=world.project.scope, start_date=world.project.start_date,
        end_date=world.project.end_date, members=[MemberSpec(other, "analyst")], by=world.ig,
    )  # fmt: skip
    return other


OUTSIDERS = {
    "non-member-researcher": lambda w: researcher(),
    "checker-member-of-another-project": _checker_elsewhere,
    "custodian": lambda w: w.custodian,
}


@pytest.mark.parametrize("state", ["draft", "released"])
@pytest.mark.parametrize("who", OUTSIDERS)
def test_every_outputs_url_is_404_to_someone_who_may_not_see_the_request(world, state, who):
    job = world.finish()
    request = (draft(world, job, "small.csv") if state == "draft"
               else released(world, job, "small.csv", "safe.csv"))  # fmt: skip
    file = _file(request, "small.csv")
    outsider = OUTSIDERS[who](world)
    client = verified_client(outsider)
    names = set(ROUTES) - {"output-queue"}
    if who.startswith("checker") and state != "draft":
        names = PROJECT_ROUTES  # checkers review submitted requests of others' projects
    before = mark()

    for name in sorted(names):
        path = _fill(name, world, request, file)
        for method in ("get", "post"):
            response = getattr(client, method)(path, {"rule": "T1", "revoke-reason": "x"})
            assert response.status_code == 404, (name, method, response.status_code)
    assert types_since(before) == []
    queue = client.get(reverse("output-queue"))
    assert queue.status_code == (200 if who.startswith("checker") else 404)
    assert request.title not in _html(queue) or state != "draft"


def test_an_anonymous_visitor_is_sent_to_sign_in_from_every_outputs_url(world, client):
    job = world.finish()
    request = draft(world, job, "small.csv")
    file = _file(request, "small.csv")

    for name in sorted(ROUTES):
        for method in ("get", "post"):
            response = getattr(client, method)(_fill(name, world, request, file))
            assert response.status_code == 302, name
            assert response.url.startswith(reverse("login"))


def test_forged_and_other_requests_ids_are_404(world):
    job = world.finish()
    mine, other = draft(world, job, "small.csv"), draft(world, job, "safe.csv")
    client = verified_client(world.author)
    foreign = _file(other, "safe.csv")

    for name in ("release-remove-file", "release-exception", "release-download"):
        method = client.get if name == "release-download" else client.post
        assert method(_file_url(world, mine, foreign, name), {"rule": "T1"}).status_code == 404
    assert client.get(reverse("release-detail", args=[world.project.pk, 999999])).status_code == 404
    assert client.get(reverse("release-detail", args=[999999, mine.pk])).status_code == 404


def test_the_actions_take_only_post_and_need_the_csrf_token(world):
    job = world.finish()
    request = draft(world, job, "small.csv")
    file = _file(request, "small.csv")
    author = verified_client(world.author)
    author.handler.enforce_csrf_checks = True
    checker = verified_client(world.checkers[0])
    checker.handler.enforce_csrf_checks = True
    before = mark()

    for name in sorted(ACTIONS):
        client = checker if name.startswith("output-") else author
        path = _fill(name, world, request, file)
        if name.startswith("output-"):  # the checker's URLs need a request they may see
            assert client.get(path).status_code in (404, 405)
            continue
        assert client.get(path).status_code == 405, name
        assert client.post(path, {"rule": "T1"}).status_code == 403, name
    assert types_since(before) == []


# --- The researcher's way -----------------------------------------------------------------
def _add(client: Client, world: World, request: ReleaseRequest, job: Any, name: str,
         context: str = "People by sex, North Place, 2025") -> Any:  # fmt: skip
    source = f"{job.pk}:log" if name == "log" else f"{job.pk}:{output(job, name).pk}"
    return client.post(_detail(world, request, "release-add-file"), {
        "add-source": source, "add-context": context, "add-controls": "None needed"})  # fmt: skip


def _exception(client: Client, world: World, request: ReleaseRequest, name: str,
               rule: str = "T1") -> Any:  # fmt: skip
    key = f"exception-{_file(request, name).pk}-{rule}"
    return client.post(_file_url(world, request, _file(request, name), "release-exception"), {
        "rule": rule, f"{key}-reason": "public_information",
        f"{key}-justification": "The count is published by ONS."})  # fmt: skip


def _decide(client: Client, request: ReleaseRequest, name: str, decision: str,
            comment: str = "", **exceptions: str) -> Any:  # fmt: skip
    file = _file(request, name)
    data = {f"file-{file.pk}-decision": decision, f"file-{file.pk}-comment": comment}
    data |= {f"file-{file.pk}-exception_{rule}": v for rule, v in exceptions.items()}
    return client.post(reverse("output-decide", args=[request.pk, file.pk]), data)


def test_the_whole_way_from_a_job_to_a_downloaded_zip(world):
    job = world.finish()
    author = verified_client(world.author)

    # From the job and the workspace to a new request
    assert "Request release of these outputs" in _text(
        author.get(reverse("job-detail", args=[world.project.pk, job.pk])))  # fmt: skip
    assert "Release requests" in _text(
        author.get(reverse("project-workspace", args=[world.project.pk])))  # fmt: skip
    listing = author.get(reverse("release-list", args=[world.project.pk]) + f"?job={job.pk}")
    assert f'name="job" value="{job.pk}"' in _html(listing)
    created = author.post(reverse("release-create", args=[world.project.pk]),
                          {"title": "Blood pressure tables", "job": job.pk})  # fmt: skip
    request = ReleaseRequest.objects.get()
    assert created.status_code == 302
    assert created["Location"] == _detail(world, request) + f"?job={job.pk}#add-file"

    # The add-file form offers the outputs and the log, never the evidence
    page = _html(author.get(created["Location"]))
    assert "small.csv" in page and "safe_chart.png" in page and "job-" in page
    assert "evidence.json" not in page
    for name in ("small.csv", "safe.csv", "safe_chart.png"):
        assert _add(author, world, request, job, name).status_code == 302
    page = _text(author.get(_detail(world, request)))
    assert "T1: fail" in page and "Row 2 (sex M), people" in page
    # A real run's unreleased count is not shown to the researcher: only what the rule asks
    assert "Fewer people than the threshold" in page and "describes 4 people" not in page

    # Submitting without the exception request says which file and rule
    refused = author.post(_detail(world, request, "release-submit"))
    assert refused.status_code == 400
    assert "small.csv: No exception request for T1." in _text(refused)
    assert _fresh(request).status == S.DRAFT
    assert _exception(author, world, request, "small.csv").status_code == 302
    assert "The count is published by ONS." in _html(author.get(_detail(world, request)))
    assert author.post(_detail(world, request, "release-submit")).status_code == 302
    assert _fresh(request).status == S.SUBMITTED

    # The first checker: the queue, the review page, the chart
    first, second = (verified_client(c) for c in world.checkers[:2])
    queue = _text(first.get(reverse("output-queue")))
    assert "Blood pressure tables" in queue and "0 of 2" in queue and "Start review" in queue
    assert "Not yet taken" in queue
    started = first.post(reverse("output-start-review", args=[request.pk]))
    assert started["Location"] == reverse("output-review", args=[request.pk])
    taken = _text(second.get(reverse("output-queue")))
    assert world.checkers[0].display_name in taken and "Not yet taken" not in taken
    before = mark()
    page = first.get(started["Location"])
    markup = _html(page)
    assert page.status_code == 200
    assert re.search(r'<td class="sdc-cell sdc-cell--fail">.*?4<span class="visually-hidden"> '
                     r"\(fails T1\)</span></td>", markup)  # fmt: skip
    assert "The count is published by ONS." in markup  # the exception request
    assert "persons: 4; threshold: 10" in markup  # the evidence
    chart_url = reverse("output-chart", args=[request.pk, _file(request, "safe_chart.png").pk])
    assert f'src="{chart_url}"' in markup and "Its data table, safe.csv" in markup
    assert "tables written" in markup  # the script's code
    assert types_since(before) == [E.OUTPUT_FILE_VIEWED] * 3
    chart = first.get(chart_url)
    assert (chart.status_code, chart["Content-Type"], chart.content) == (200, "image/png", PNG)
    assert chart["Content-Disposition"] == "inline" and "no-store" in chart["Cache-Control"]

    # Decisions: approving a failing file needs a comment
    no_comment = _decide(first, request, "small.csv", "approve", T1="grant")
    assert no_comment.status_code == 400
    assert "The checks left this file for review: record your reasoning." in _text(no_comment)
    assert _decide(first, request, "small.csv", "approve", "ONS publishes it",
                   T1="grant").status_code == 302  # fmt: skip
    assert _decide(first, request, "safe.csv", "approve").status_code == 302
    assert _decide(first, request, "safe_chart.png", "approve").status_code == 302
    assert first.post(reverse("output-submit-review", args=[request.pk])).status_code == 302
    assert _fresh(request).status == S.PARTIALLY_REVIEWED

    # The second checker does not see the first's decisions until both are in
    second.post(reverse("output-start-review", args=[request.pk]))
    assert "ONS publishes it" not in _html(second.get(reverse("output-review", args=[request.pk])))
    assert "ONS publishes it" not in _html(author.get(_detail(world, request)))
    _decide(second, request, "small.csv", "approve", "Agreed: public", T1="grant")
    _decide(second, request, "safe.csv", "approve")
    _decide(second, request, "safe_chart.png", "approve")
    assert second.post(reverse("output-submit-review", args=[request.pk])).status_code == 302
    assert _fresh(request).status == S.RELEASED
    assert "Agreed: public" in _html(first.get(reverse("output-review", args=[request.pk])))

    # The researcher sees the decisions (not who made them) and downloads
    page = _text(author.get(_detail(world, request)))
    assert "ONS publishes it" in page and "Agreed: public" in page
    assert "Round 1, output checker 1" in page
    assert world.checkers[0].display_name not in page
    single = author.get(_file_url(world, request, _file(request, "small.csv"), "release-download"))
    assert single.content == SMALL and "attachment" in single["Content-Disposition"]
    before = mark()
    archive = author.get(_detail(world, request, "release-download-all"))
    assert archive["Content-Type"] == "application/zip"
    assert types_since(before) == [E.RELEASED_FILE_DOWNLOADED] * 3
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        manifest = json.loads(zipped.read("manifest.json"))
        sums = dict(line.split("  ")[::-1] for line in
                    zipped.read("SHA256SUMS").decode().splitlines())  # fmt: skip
        contents = {entry["name"]: zipped.read(entry["path"]) for entry in manifest["files"]}
    assert contents == {"small.csv": SMALL, "safe.csv": SAFE, "safe_chart.png": PNG}
    for entry in manifest["files"]:
        digest = hashlib.sha256(contents[entry["name"]]).hexdigest()
        assert entry["sha256"] == digest == sums[entry["path"]]
        assert digest == _file(request, entry["name"]).sha256


def test_the_log_of_a_real_run_can_be_requested_and_the_checker_reads_it(world):
    job = world.finish()
    author = verified_client(world.author)
    request = draft(world, job)
    assert _add(author, world, request, job, "log").status_code == 302
    answer_every_rule(world, request)
    services.submit(request=request, by=world.author)
    checker = verified_client(world.checkers[0])

    page = _html(checker.get(reverse("output-review", args=[request.pk])))

    assert "Wrote the tables" in page


def test_a_checker_cannot_review_their_own_projects_request(world):
    job = world.finish()
    request = submitted(world, job, "safe.csv", "safe_chart.png")
    own = world.checker_member()
    client = verified_client(own)
    before = mark()

    assert client.get(reverse("output-review", args=[request.pk])).status_code == 403
    assert client.post(reverse("output-start-review", args=[request.pk])).status_code == 403
    chart = _file(request, "safe_chart.png")
    assert client.get(reverse("output-chart", args=[request.pk, chart.pk])).status_code == 403
    file = _file(request, "safe.csv")
    assert client.post(reverse("output-decide", args=[request.pk, file.pk]),
                       {f"file-{file.pk}-decision": "approve"}).status_code == 403  # fmt: skip
    assert "Tables" not in _text(client.get(reverse("output-queue")))
    assert types_since(before) == []
    # As a member they still see it on the project's pages, with no checker's controls
    assert client.get(_detail(world, request)).status_code == 200


def test_free_text_is_escaped_on_every_page(world):
    job = world.finish()
    author = verified_client(world.author)
    attack = "<script>alert('x')</script>"
    author.post(reverse("release-create", args=[world.project.pk]), {"title": attack})
    request = ReleaseRequest.objects.get()
    _add(author, world, request, job, "safe.csv", context=attack)
    services.submit(request=request, by=world.author)
    checker = verified_client(world.checkers[0])

    for response in (author.get(_detail(world, request)),
                     author.get(reverse("release-list", args=[world.project.pk])),
                     author.get(reverse("project-workspace", args=[world.project.pk])),
                     checker.get(reverse("output-review", args=[request.pk])),
                     checker.get(reverse("output-queue"))):  # fmt: skip
        raw = response.content.decode()
        assert "<script>alert" not in raw
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in raw


def test_the_nav_shows_output_checking_to_checkers_only(world):
    assert "Output checking" in _text(verified_client(world.checkers[0]).get("/dashboard/"))
    assert "Output checking" not in _text(verified_client(world.author).get("/dashboard/"))


def test_the_dashboard_shows_the_checkers_queue_and_the_authors_waiting_requests(world):
    def card(user: User, title: str) -> str:
        text = _text(verified_client(user).get("/dashboard/"))
        cards = text[text.find("Your work") :] if "Your work" in text else ""
        return cards[cards.find(title) :][:300] if title in cards else ""

    job = world.finish()
    assert card(world.checkers[0], "Output checking").startswith("Output checking 0")
    assert card(world.author, "Your release requests") == ""
    waiting = draft(world, job, "safe.csv")
    assert "0 returned for changes, 1 drafts" in card(world.author, "Your release requests")

    submitted(world, job, "safe.csv")

    assert card(world.checkers[0], "Output checking").startswith("Output checking 1")
    assert card(world.author, "Your release requests") != ""  # the first draft still waits
    services.withdraw(request=waiting, by=world.author)
    assert card(world.author, "Your release requests") == ""


def test_a_file_changed_since_it_was_checked_is_flagged_to_the_checker(world):
    job = world.finish()
    request = submitted(world, job, "safe.csv")
    path = data_root() / job.folder / "output" / "safe.csv"
    path.chmod(0o644)
    path.write_bytes(b"sex,people\nF,12\nM,1\n")

    page = _text(verified_client(world.checkers[0]).get(reverse("output-review",
                                                                args=[request.pk])))  # fmt: skip

    assert "This file has changed since it was checked." in page


# --- Refusals, withdrawal, revocation, resubmission ----------------------------------------
def test_a_state_the_service_refuses_is_shown_in_its_words(world):
    job = world.finish()
    request = submitted(world, job, "safe.csv")
    author = verified_client(world.author)

    again = author.post(_detail(world, request, "release-submit"))
    added = _add(author, world, request, job, "small.csv")

    assert again.status_code == 400 and "The request is submitted." in _text(again)
    assert added.status_code == 400 and "The request is submitted." in _text(added)


def test_only_the_author_withdraws(world):
    job = world.finish()
    request = draft(world, job, "safe.csv")
    colleague = researcher()
    add_member(project=world.project, member=MemberSpec(colleague, "analyst"), by=world.ig)

    refused = verified_client(colleague).post(_detail(world, request, "release-withdraw"))
    done = verified_client(world.author).post(_detail(world, request, "release-withdraw"))

    assert refused.status_code == 403
    assert done.status_code == 302 and _fresh(request).status == S.WITHDRAWN


def test_ig_revokes_a_release_and_downloads_stop(world):
    job = world.finish()
    request = released(world, job, "safe.csv")
    ig, author = verified_client(world.ig), verified_client(world.author)
    download = _file_url(world, request, _file(request, "safe.csv"), "release-download")
    assert author.get(download).status_code == 200
    assert "Revoke the release" not in _text(author.get(_detail(world, request)))
    assert author.post(_detail(world, request, "release-revoke"),
                       {"revoke-reason": "x"}).status_code == 403  # fmt: skip

    ig_page = _text(ig.get(_detail(world, request)))
    assert "Revoke the release" in ig_page
    assert "Download" not in ig_page  # IG oversees the release; members download
    empty = ig.post(_detail(world, request, "release-revoke"), {"revoke-reason": ""})
    assert empty.status_code == 400 and "This field is required." in _text(empty)
    before = mark()
    done = ig.post(_detail(world, request, "release-revoke"),
                   {"revoke-reason": "Published by mistake"})  # fmt: skip

    assert done.status_code == 302 and _fresh(request).status == S.REVOKED
    assert types_since(before) == [E.RELEASE_REVOKED]
    assert "Published by mistake" in _text(author.get(_detail(world, request)))
    assert author.get(download).status_code == 404
    assert author.get(_detail(world, request, "release-download-all")).status_code == 404


def test_a_returned_request_shows_the_comments_and_what_changed_when_resubmitted(world):
    job = world.finish()
    request = submitted(world, job, "small.csv", "safe.csv")
    review(world, request, world.checkers[0], decision="changes", comment="Suppress the 4.")
    returned = review(world, request, world.checkers[1], decision="changes", comment="Round it.")
    assert returned.status == S.RETURNED
    author = verified_client(world.author)
    page = _text(author.get(_detail(world, request)))
    assert "Suppress the 4." in page and "Round it." in page

    author.post(_file_url(world, request, _file(request, "small.csv"), "release-remove-file"))
    fixed = world.finish(files={"fixed.csv": SAFE, "fixed.evidence.json": evidence(
        [("F", 12), ("M", 15)])})  # fmt: skip
    _add(author, world, request, fixed, "fixed.csv")
    assert author.post(_detail(world, request, "release-submit")).status_code == 302

    page = _text(author.get(_detail(world, request)))
    assert _fresh(request).round == 2
    assert "Changes since the last round" in page
    assert "Added fixed.csv" in page and "Removed small.csv" in page
    assert "Suppress the 4." in page  # the earlier round's comments stay


def test_a_disagreement_waits_for_a_third_checker(world):
    job = world.finish()
    request = submitted(world, job, "safe.csv")
    review(world, request, world.checkers[0], decision="approve")
    review(world, request, world.checkers[1], decision="reject", comment="Too detailed.")
    third = verified_client(world.checkers[2])

    queue = _text(third.get(reverse("output-queue")))
    assert "2 of 2" in queue and "1 file disputed" in queue and "Start review" in queue
    third.post(reverse("output-start-review", args=[request.pk]))
    page = _text(third.get(reverse("output-review", args=[request.pk])))
    assert "The two reviews disagree on this file" in page
    assert "Too detailed." in page  # both reviews are in: the third checker reads them
    _decide(third, request, "safe.csv", "approve", "Aggregate and safe")
    third.post(reverse("output-submit-review", args=[request.pk]))

    assert _fresh(request).status == S.RELEASED


def test_a_decision_before_starting_the_review_is_refused(world):
    job = world.finish()
    request = submitted(world, job, "safe.csv")
    checker = verified_client(world.checkers[0])

    response = _decide(checker, request, "safe.csv", "approve")

    assert response.status_code == 400 and "Start the review first." in _text(response)
    assert _fresh(request).status == S.SUBMITTED


def test_the_table_marks_failing_cells_rows_and_columns():
    findings = [
        {"rule": "T1", "status": "fail", "row": 1, "column": "people"},
        {"rule": "D1", "status": "review", "row": 1, "column": "people"},
        {"rule": "T3", "status": "review", "row": 0, "column": None},
        {"rule": "S1", "status": "review", "row": None, "column": "sex"},
        {"rule": "T1", "status": "pass", "row": 0, "column": "people"},
        {"rule": "X1", "status": "fail", "row": 99, "column": "people"},  # not shown
    ]

    table = tables.render(b"sex,people\nF,12\nM,4\n", findings)

    assert [c.value for c in table.columns] == ["sex", "people"]
    assert (table.columns[0].status, table.columns[0].rules) == ("review", ["S1"])
    assert (table.rows[0].status, table.rows[0].rules) == ("review", ["T3"])
    assert [c.status for c in table.rows[0].cells] == ["", ""]
    assert (table.rows[1].cells[1].status, table.rows[1].cells[1].rules) == ("fail", ["T1", "D1"])
    assert tables.render(b"\xff\xfe", []).error


def test_a_long_table_is_cut_and_says_so():
    table = tables.render(b"n\n" + b"1\n" * 30, [], limit=10)

    assert (len(table.rows), table.total, table.cut) == (10, 30, True)
