"""The release workflow's services (outputs/services.py) and the selectors they rest on
(outputs/selectors.py): the transition matrix for every person around a project,
separation of duties, the rules for submitting and deciding, tampering, the release of
exact bytes, and the audit events each step writes.

Requests start from the states the fixtures build once per module through the real
services (tests/unit/outputs/conftest.py and builders.py); jobs are finished with chosen
files, the sandbox stood in for."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError

from outputs import selectors, services
from outputs.models import ExceptionRequest, FileDecision, ReleasedFile, ReleaseRequest, Review
from sde.audit.events import EventType as E
from sde.audit.models import AuditEvent
from sde.data.files import data_root
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.projects.services import MemberSpec, add_member, remove_member
from tests.events import events_since, mark, types_since
from tests.unit.outputs import builders
from tests.unit.outputs.builders import (
    ACTORS,
    EVIDENCE,
    FAIL_CHART,
    FAIL_TABLE,
    PASS_CHART,
    PASS_TABLE,
    STATES,
    TEXT,
    file_named,
    fresh,
    output_of,
    output_path,
    review,
    sha256,
    snapshot,
    tamper,
)
from tests.unit.outputs.conftest import Releases

pytestmark = pytest.mark.django_db
S = ReleaseRequest.Status
D = FileDecision.Decision
OTHER = ExceptionRequest.Reason.OTHER


# --- 1. The transition matrix ------------------------------------------------------------
# Every action on a request resting in every state, by every person. Who may see a
# request at all (anyone else: NotFound): its project's members and IG in every state,
# independent output checkers once it is submitted.
SEES_ALL = frozenset({"author", "other_member", "member_checker", "ig"})
# Who each action is for; anyone else who can see the request is refused (PermissionDenied)
# but is shown neither someone else's review nor a file not released to them (NotFound).
# "checker" is the independent output checker the action concerns: for start_review and
# open_for_review the one whose turn it is; for decide_file and submit_review the one
# holding the review acted on (the request's newest).
FOR: dict[str, frozenset[str]] = {
    "add_file": frozenset({"author"}),
    "remove_file": frozenset({"author"}),
    "request_exception": frozenset({"author"}),
    "submit": frozenset({"author"}),
    "withdraw": frozenset({"author"}),
    "start_review": frozenset({"checker"}),
    "decide_file": frozenset({"checker"}),
    "submit_review": frozenset({"checker"}),
    "open_for_review": frozenset({"checker"}),
    "revoke": frozenset({"ig"}),
    "open_released": frozenset({"author", "other_member", "member_checker"}),  # members now
}
HIDDEN_FROM_OTHERS = frozenset({"decide_file", "submit_review", "open_released"})
REVIEW_BOUND = frozenset({"decide_file", "submit_review"})
NO_REVIEW = frozenset({"draft", "submitted"})  # nothing for decide/submit_review to act on
EDITING = (E.RELEASE_FILE_ADDED, E.AUTOMATED_CHECKS_RUN)
RELEASING = [E.REVIEW_SUBMITTED, E.RELEASE_APPROVED, E.RELEASED]  # "approved" never rests
# What the people an action is for can do, in which state: the status it leaves the
# request in and the exact events it writes. Anything else is InvalidTransition (NotFound
# for a download of a file that is not released).
ALLOWED: dict[tuple[str, str], tuple[str, list[str]]] = {
    ("draft", "add_file"): (S.DRAFT, [*EDITING]),
    ("draft", "remove_file"): (S.DRAFT, [E.RELEASE_FILE_REMOVED]),
    ("draft", "request_exception"): (S.DRAFT, [E.EXCEPTION_REQUESTED]),
    ("draft", "submit"): (S.SUBMITTED, [E.RELEASE_REQUEST_SUBMITTED]),
    ("draft", "withdraw"): (S.WITHDRAWN, [E.RELEASE_REQUEST_WITHDRAWN]),
    ("returned", "add_file"): (S.RETURNED, [*EDITING]),
    ("returned", "remove_file"): (S.RETURNED, [E.RELEASE_FILE_REMOVED]),
    ("returned", "request_exception"): (S.RETURNED, [E.EXCEPTION_REQUESTED]),
    ("returned", "submit"): (S.SUBMITTED, [E.RELEASE_REQUEST_SUBMITTED]),
    ("returned", "withdraw"): (S.WITHDRAWN, [E.RELEASE_REQUEST_WITHDRAWN]),
    ("submitted", "withdraw"): (S.WITHDRAWN, [E.RELEASE_REQUEST_WITHDRAWN]),
    ("submitted", "start_review"): (S.SUBMITTED, [E.REVIEW_STARTED]),
    ("submitted_open", "withdraw"): (S.WITHDRAWN, [E.RELEASE_REQUEST_WITHDRAWN]),
    ("submitted_open", "start_review"): (S.SUBMITTED, []),  # their own review again
    ("submitted_open", "decide_file"): (S.SUBMITTED, [E.FILE_DECIDED]),
    ("submitted_open", "submit_review"): (S.PARTIALLY_REVIEWED, [E.REVIEW_SUBMITTED]),
    ("partially_reviewed", "start_review"): (S.PARTIALLY_REVIEWED, [E.REVIEW_STARTED]),
    ("partially_reviewed_open", "start_review"): (S.PARTIALLY_REVIEWED, []),
    ("partially_reviewed_open", "decide_file"): (S.PARTIALLY_REVIEWED, [E.FILE_DECIDED]),
    ("partially_reviewed_open", "submit_review"): (S.RELEASED, RELEASING),
    ("reviewed", "start_review"): (S.REVIEWED, [E.REVIEW_STARTED]),  # the third checker
    ("reviewed_open", "start_review"): (S.REVIEWED, []),
    ("reviewed_open", "decide_file"): (S.REVIEWED, [E.FILE_DECIDED]),
    ("reviewed_open", "submit_review"): (S.RELEASED, RELEASING),
    ("released", "revoke"): (S.REVOKED, [E.RELEASE_REVOKED]),
    ("released", "open_released"): (S.RELEASED, [E.RELEASED_FILE_DOWNLOADED]),
    # A checker may look again at any file of a request they can see; each look is audited.
    **{(state, "open_for_review"): (builders.status_of(state), [E.OUTPUT_FILE_VIEWED])
       for state in STATES if state != "draft"},
}  # fmt: skip


def expected(state: str, action: str, actor: str) -> tuple[str, list[str]] | type[Exception]:
    if actor not in SEES_ALL and not (actor == "checker" and state != "draft"):
        return NotFound
    if actor not in FOR[action]:
        return NotFound if action in HIDDEN_FROM_OTHERS else PermissionDenied
    if (state, action) in ALLOWED:
        return ALLOWED[state, action]
    return NotFound if action == "open_released" else InvalidTransition


def _act(action: str, releases: Releases, request: ReleaseRequest, by: Any) -> Any:
    job, file = releases.job, file_named(request, FAIL_TABLE)
    newest = request.reviews.order_by("-pk").first()
    calls: dict[str, Callable[[], Any]] = {
        "add_file": lambda: services.add_file(
            request=request, job=job, output=output_of(job, TEXT), context="Notes.", by=by),
        "remove_file": lambda: services.remove_file(file=file, by=by),
        "request_exception": lambda: services.request_exception(
            file=file, rule="T1", reason=OTHER, justification="Suppressed.", by=by),
        "submit": lambda: services.submit(request=request, by=by),
        "withdraw": lambda: services.withdraw(request=request, by=by),
        "start_review": lambda: services.start_review(request=request, by=by),
        "decide_file": lambda: services.decide_file(
            review=newest, file=file, decision=D.APPROVE, comment="Safe once suppressed.",
            exceptions={"T1": True}, by=by),
        "submit_review": lambda: services.submit_review(review=newest, by=by),
        "open_for_review": lambda: services.open_for_review(file=file, by=by),
        "revoke": lambda: services.revoke(request=request, by=by, reason="Published in error."),
        "open_released": lambda: services.open_released(file=file, by=by),
    }  # fmt: skip
    return calls[action]()


def _person(releases: Releases, actor: str, action: str, request: ReleaseRequest) -> Any:
    if actor == "checker" and action in REVIEW_BOUND:
        return request.reviews.order_by("-pk").first().reviewer
    return releases.people.actor(actor)


def _attempt(
    action: str, releases: Releases, request: ReleaseRequest, actor: str
) -> tuple[str, list[str]] | type[Exception]:
    """What happened when ``actor`` tried ``action``: the status and events it left, or the
    exception it raised."""
    by = _person(releases, actor, action, request)
    start = mark()
    try:
        _act(action, releases, request, by)
    except (NotFound, PermissionDenied, InvalidTransition) as refused:
        assert mark() == start, f"{actor} was refused, yet events were written"
        return type(refused)
    return fresh(request).status, types_since(start)


MATRIX = [
    pytest.param(state, action, id=f"{state}-{action}")
    for state in STATES
    for action in FOR
    if not (action in REVIEW_BOUND and state in NO_REVIEW)
]


@pytest.mark.parametrize(("state", "action"), MATRIX)
def test_transition_matrix(releases, state, action):
    """Every person tries ``action`` on the request resting in ``state``: first those
    refused, who must leave it exactly as built (rows, copies, events), then those allowed
    (at most one of whom changes more than the audit log, so each starts from the state
    as built)."""
    request = releases.request(state)
    wanted = {actor: expected(state, action, actor) for actor in ACTORS}
    refused = [actor for actor in ACTORS if not isinstance(wanted[actor], tuple)]
    allowed = [actor for actor in ACTORS if isinstance(wanted[actor], tuple)]
    built = snapshot(request)

    happened = {actor: _attempt(action, releases, request, actor) for actor in refused}
    assert happened == {actor: wanted[actor] for actor in refused}
    assert snapshot(request) == built, "a refused attempt changed the request"
    happened = {actor: _attempt(action, releases, request, actor) for actor in allowed}
    assert happened == {actor: wanted[actor] for actor in allowed}


def test_the_matrix_covers_every_status_a_request_rests_in():
    resting = {builders.status_of(state) for state in STATES}
    # "approved" never rests: the release follows in the same transaction (RELEASING).
    assert resting == set(S.values) - {S.APPROVED}


# --- 2. Separation of duties ------------------------------------------------------------
def test_the_author_who_is_an_output_checker_cannot_review_their_request(releases):
    people = releases.people
    request = builders.submitted(releases.job, people.member_checker)  # a member and a checker
    before = snapshot(request)

    with pytest.raises(PermissionDenied, match="you made the request"):
        services.start_review(request=request, by=people.member_checker)
    assert snapshot(request) == before
    assert request not in selectors.checker_queue(people.member_checker)


def test_a_checker_who_is_a_member_cannot_review_and_never_sees_it_queued(releases):
    people, request = releases.people, releases.request("submitted")

    with pytest.raises(PermissionDenied, match="member of the project"):
        services.start_review(request=request, by=people.member_checker)
    assert request not in selectors.checker_queue(people.member_checker)
    assert request in selectors.checker_queue(people.checker)


def test_a_checker_who_was_a_member_cannot_see_or_review_the_projects_requests(releases):
    people, request = releases.people, releases.request("submitted")
    remove_member(project=releases.project, user=people.member_checker, by=people.ig)

    with pytest.raises(NotFound):
        services.start_review(request=request, by=people.member_checker)
    with pytest.raises(NotFound):
        services.open_for_review(file=file_named(request, PASS_TABLE), by=people.member_checker)
    assert not selectors.visible_requests(people.member_checker).filter(pk=request.pk).exists()
    assert request not in selectors.checker_queue(people.member_checker)


def test_a_checker_who_joins_the_project_mid_review_can_no_longer_decide_or_submit(releases):
    people, request = releases.people, releases.request("submitted_open")
    mine = request.reviews.get(reviewer=people.checker)
    joining = MemberSpec(people.checker, "analyst", accesses_data=False)
    add_member(project=releases.project, member=joining, by=people.ig)
    start = mark()

    with pytest.raises(PermissionDenied):
        services.decide_file(review=mine, file=file_named(request, PASS_TABLE),
                             decision=D.APPROVE, by=people.checker)  # fmt: skip
    with pytest.raises(PermissionDenied):
        services.submit_review(review=mine, by=people.checker)
    assert types_since(start) == []
    assert fresh(request).status == S.SUBMITTED


def test_the_same_checker_cannot_supply_both_reviews(releases):
    people, request = releases.people, releases.request("partially_reviewed")
    first = request.reviews.get()
    start = mark()

    again = services.start_review(request=request, by=people.first)
    assert again.pk == first.pk and again.submitted_at is not None
    with pytest.raises(InvalidTransition):
        services.submit_review(review=again, by=people.first)
    with pytest.raises(InvalidTransition):
        services.decide_file(review=again, file=file_named(request, PASS_TABLE),
                             decision=D.APPROVE, by=people.first)  # fmt: skip
    assert types_since(start) == []
    assert fresh(request).status == S.PARTIALLY_REVIEWED
    assert request.reviews.count() == 1


def test_the_rounds_first_checker_is_its_assignee_until_a_resubmission(releases):
    people, request = releases.people, releases.request("submitted")
    assert fresh(request).assignee is None

    services.start_review(request=request, by=people.first)
    services.start_review(request=request, by=people.second)

    assert fresh(request).assignee == people.first
    returned = releases.request("returned")
    assert fresh(returned).assignee is not None
    resubmitted = services.submit(request=returned, by=people.author)
    assert fresh(resubmitted).assignee is None


def test_two_open_reviews_leave_no_room_for_a_third_checker(releases):
    people, request = releases.people, releases.request("submitted_open")
    services.start_review(request=request, by=people.first)
    start = mark()

    with pytest.raises(InvalidTransition, match="two checkers"):
        services.start_review(request=request, by=people.second)
    assert types_since(start) == []


def test_one_review_releases_nothing(releases):
    request = releases.request("partially_reviewed")

    assert fresh(request).status == S.PARTIALLY_REVIEWED
    assert not ReleasedFile.objects.filter(file__request=request).exists()
    assert not (data_root() / "releases" / str(request.project_id) / str(request.pk)).exists()
    with pytest.raises(NotFound):
        services.open_released(file=file_named(request, PASS_TABLE), by=releases.people.author)


A, C, R = D.APPROVE, D.CHANGES, D.REJECT


@pytest.mark.parametrize(
    ("votes", "status", "settled"),
    [
        ((A, A), S.RELEASED, A),
        ((R, R), S.REJECTED, R),
        ((C, C), S.RETURNED, C),
        ((A, C), S.RETURNED, C),  # either asking for changes asks the researcher
        ((C, R), S.RETURNED, C),
        ((A, R), S.REVIEWED, None),  # disputed: waits for a third checker
        ((A, R, A), S.RELEASED, A),
        ((R, A, R), S.REJECTED, R),
        ((A, R, C), S.RETURNED, C),
    ],
)
def test_a_file_is_released_only_on_two_approvals_and_a_third_checker_settles_a_dispute(
    releases, votes, status, settled
):
    people, request = releases.people, releases.request("one_file")
    for reviewer, vote in zip((people.first, people.second, people.checker), votes, strict=False):
        review(request, reviewer, vote)

    request = fresh(request)
    file = file_named(request, PASS_TABLE)
    assert request.status == status
    assert selectors.settled(request) == {file.pk: settled}
    assert file.decision == (settled or "")
    assert ReleasedFile.objects.filter(file=file).exists() == (settled == A)
    assert selectors.disputed(request) == ([file.pk] if settled is None else [])


def test_the_third_checker_settles_only_the_files_in_dispute(releases):
    people, request = releases.people, releases.request("reviewed")  # disputed on FAIL_TABLE
    assert selectors.disputed(request) == [file_named(request, FAIL_TABLE).pk]

    review(request, people.checker, {PASS_TABLE: R, FAIL_TABLE: A})

    request = fresh(request)
    assert request.status == S.RELEASED
    assert file_named(request, PASS_TABLE).decision == A  # both agreed: the third is not asked
    assert file_named(request, FAIL_TABLE).decision == A
    assert ReleasedFile.objects.filter(file__request=request).count() == 2


def test_no_fourth_checker_joins_a_disputed_round(releases):
    request = releases.request("reviewed_open")
    fourth = builders.checker()
    start = mark()

    with pytest.raises(InvalidTransition):
        services.start_review(request=request, by=fourth)
    assert types_since(start) == []
    assert request.reviews.count() == 3


def test_reviews_are_blind_until_both_are_submitted(releases):
    people, request = releases.people, releases.request("submitted_open")  # checker: open
    author, checker, first = people.author, people.checker, people.first

    def seen(user):
        return sorted((d.review.reviewer.pk, d.file.name) for d in
                      selectors.visible_decisions(user, fresh(request)))  # fmt: skip

    def of(*reviewers):
        return sorted((r.pk, n) for r in reviewers for n in (PASS_TABLE, FAIL_TABLE))

    assert seen(checker) == of(checker)  # their own, while it is open
    assert seen(author) == seen(first) == seen(people.ig) == []

    review(request, first, {PASS_TABLE: A, FAIL_TABLE: R})  # first submits before checker
    assert seen(checker) == of(checker)
    assert seen(first) == of(first)
    assert seen(author) == []

    services.submit_review(review=request.reviews.get(reviewer=checker), by=checker)
    assert fresh(request).status == S.REVIEWED  # approve and reject: a dispute
    assert seen(checker) == seen(first) == of(checker, first)
    third = builders.checker()
    assert seen(third) == of(checker, first)  # the tie-breaker sees the disagreement
    assert seen(author) == []  # the round is not finished


# --- 3. Submitting and deciding ---------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "rules"),
    [(FAIL_TABLE, ["T1"]), (FAIL_CHART, ["C1"]), (TEXT, ["F1", "evidence"])],
)
def test_submit_needs_an_exception_request_for_every_rule_not_passed(releases, name, rules):
    author, job = releases.people.author, releases.job
    request = services.create_request(project=job.project, by=author, title="T")
    services.add_file(request=request, job=job, output=output_of(job, PASS_TABLE),
                      context="Counts.", by=author)  # fmt: skip
    file = services.add_file(request=request, job=job, output=output_of(job, name),
                             context="More.", by=author)  # fmt: skip
    assert selectors.non_pass_rules(file) == rules
    for rule in rules[:-1]:
        services.request_exception(file=file, rule=rule, reason=OTHER, justification="J.",
                                   by=author)  # fmt: skip
    before = snapshot(request)

    with pytest.raises(ValidationError) as refused:
        services.submit(request=request, by=author)
    assert refused.value.errors == {name: [f"No exception request for {rules[-1]}."]}
    assert snapshot(request) == before

    services.request_exception(file=file, rule=rules[-1], reason=OTHER, justification="J.",
                               by=author)  # fmt: skip
    assert services.submit(request=request, by=author).status == S.SUBMITTED


def test_submit_needs_a_file(releases):
    author = releases.people.author
    request = services.create_request(project=releases.project, by=author, title="Empty")

    with pytest.raises(ValidationError, match="at least one file"):
        services.submit(request=request, by=author)
    assert fresh(request).status == S.DRAFT


@pytest.mark.parametrize(
    ("rule", "reason", "justification", "message"),
    [
        ("T2", OTHER, "J.", "not a rule this file failed"),
        ("T1", "because", "J.", "choose a reason"),
        ("T1", OTHER, "  ", "explain why"),
    ],
)
def test_an_exception_request_is_for_a_failed_rule_with_a_reason(
    releases, rule, reason, justification, message
):
    request = releases.request("draft")
    before = snapshot(request)

    with pytest.raises(ValidationError, match=message):
        services.request_exception(file=file_named(request, FAIL_TABLE), rule=rule,
                                   reason=reason, justification=justification,
                                   by=releases.people.author)  # fmt: skip
    assert snapshot(request) == before


# outcome of each file: PASS_TABLE pass, FAIL_CHART fail, FAIL_TABLE and TEXT review
COMMENT_RULES = [
    (PASS_TABLE, A, False),
    (PASS_TABLE, R, True),  # rejecting a passing file
    (PASS_TABLE, C, True),  # every request for changes
    (FAIL_CHART, A, True),  # approving a failing file
    (FAIL_CHART, R, False),
    (FAIL_CHART, C, True),
    (FAIL_TABLE, A, True),  # every decision on a file left for review
    (FAIL_TABLE, R, True),
    (FAIL_TABLE, C, True),
    (TEXT, A, True),
    (TEXT, R, True),
    (TEXT, C, True),
]


@pytest.mark.parametrize(("name", "decision", "needs_comment"), COMMENT_RULES)
def test_decide_file_comment_rules(releases, name, decision, needs_comment):
    checker, request = releases.people.checker, releases.request("every_outcome")
    mine, file = request.reviews.get(reviewer=checker), file_named(request, name)
    assert file.outcome == {PASS_TABLE: "pass", FAIL_CHART: "fail"}.get(name, "review")
    start = mark()

    comment = ""
    if needs_comment:
        with pytest.raises(ValidationError) as refused:
            services.decide_file(review=mine, file=file, decision=decision, comment=" ",
                                 by=checker)  # fmt: skip
        assert set(refused.value.errors) == {"comment"}
        assert not mine.decisions.exists()
        assert types_since(start) == []
        comment = "Because."
    made = services.decide_file(review=mine, file=file, decision=decision, comment=comment,
                                by=checker)  # fmt: skip

    assert (made.decision, made.comment) == (decision, comment)
    assert types_since(start) == [E.FILE_DECIDED]


def test_a_decision_can_be_changed_until_the_review_is_submitted(releases):
    checker, request = releases.people.checker, releases.request("submitted_open")
    mine, file = request.reviews.get(reviewer=checker), file_named(request, PASS_TABLE)

    services.decide_file(review=mine, file=file, decision=R, comment="No.", by=checker)
    services.decide_file(review=mine, file=file, decision=A, by=checker)
    assert list(mine.decisions.filter(file=file).values_list("decision", flat=True)) == [A]
    services.submit_review(review=mine, by=checker)

    with pytest.raises(InvalidTransition, match="submitted"):
        services.decide_file(review=mine, file=file, decision=R, comment="No.", by=checker)
    assert mine.decisions.get(file=file).decision == A


def test_a_checker_answers_only_the_exceptions_requested(releases):
    checker, request = releases.people.checker, releases.request("submitted_open")
    mine, file = request.reviews.get(reviewer=checker), file_named(request, FAIL_TABLE)

    with pytest.raises(ValidationError, match="no exception was requested for T2"):
        services.decide_file(review=mine, file=file, decision=A, comment="Fine.",
                             exceptions={"T1": True, "T2": True}, by=checker)  # fmt: skip
    made = services.decide_file(review=mine, file=file, decision=R, comment="Too small.",
                                exceptions={"T1": False}, by=checker)  # fmt: skip
    assert made.exceptions == {"T1": False}


def test_a_review_is_submitted_only_with_a_decision_on_every_file(releases):
    checker, request = releases.people.checker, releases.request("every_outcome")
    mine = request.reviews.get(reviewer=checker)
    services.decide_file(review=mine, file=file_named(request, PASS_TABLE), decision=A,
                         by=checker)  # fmt: skip
    start = mark()

    with pytest.raises(ValidationError, match=f"decide every file first: {FAIL_TABLE}"):
        services.submit_review(review=mine, by=checker)
    assert Review.objects.get(pk=mine.pk).submitted_at is None
    assert types_since(start) == []


def test_resubmission_starts_round_two_and_the_author_still_sees_round_one(releases):
    people, request = releases.people, releases.request("returned")
    author, job = people.author, releases.job
    round_one = {(d.review.reviewer.pk, d.file.name, d.decision)
                 for d in selectors.visible_decisions(author, request)}  # fmt: skip
    assert round_one == {(r.pk, n, v) for r in (people.first, people.second)
                         for n, v in ((PASS_TABLE, A), (FAIL_TABLE, C))}  # fmt: skip
    services.remove_file(file=file_named(request, FAIL_TABLE), by=author)
    services.add_file(request=request, job=job, output=output_of(job, PASS_CHART),
                      context="The chart of the counts.", by=author)  # fmt: skip
    start = mark()

    resubmitted = services.submit(request=request, by=author)

    assert (resubmitted.status, resubmitted.round) == (S.SUBMITTED, 2)
    assert types_since(start) == [E.RELEASE_REQUEST_SUBMITTED]
    assert events_since(start)[0].data["resubmission"] is True
    files = {f.name: (f.added_round, f.removed_round) for f in resubmitted.files.all()}
    assert files == {PASS_TABLE: (1, None), FAIL_TABLE: (1, 2), PASS_CHART: (2, None)}
    assert {(d.review.reviewer.pk, d.file.name, d.decision)
            for d in selectors.visible_decisions(author, resubmitted)} == round_one  # fmt: skip
    old = request.reviews.get(reviewer=people.first)
    with pytest.raises(InvalidTransition):
        services.decide_file(review=old, file=file_named(resubmitted, PASS_TABLE), decision=A,
                             by=people.first)  # fmt: skip
    # A checker of round one may review round two: a new review, with no decisions yet.
    again = services.start_review(request=resubmitted, by=people.first)
    assert again.round == 2 and again.pk != old.pk and not again.decisions.exists()


# --- 4. Tampering -----------------------------------------------------------------------
def test_a_job_output_changed_after_it_was_added_cannot_be_submitted(releases):
    request = releases.request("draft")
    tamper(output_path(releases.job, FAIL_TABLE))
    before = snapshot(request)

    with pytest.raises(ValidationError, match="changed since the job produced it"):
        services.submit(request=request, by=releases.people.author)
    assert snapshot(request) == before


def test_a_changed_job_output_cannot_be_added(releases):
    request, job = releases.request("draft"), releases.job
    tamper(output_path(job, TEXT))
    before = snapshot(request)

    with pytest.raises(ValidationError, match="changed since the job produced it"):
        services.add_file(request=request, job=job, output=output_of(job, TEXT),
                          context="Notes.", by=releases.people.author)  # fmt: skip
    assert snapshot(request) == before


@pytest.mark.parametrize(
    "failure", [OperationalError("the database went away"), RuntimeError("unexpected")],
    ids=["database gone", "unexpected error"],
)  # fmt: skip
def test_a_release_that_fails_after_copying_leaves_no_copy_or_ledger_entry(
    releases, monkeypatch, failure
):
    """The copies are written inside the release's transaction; if it fails after them
    (the database gone while counting the release, issue 8's fault test), nothing stays in
    the release store or the differencing ledger for a request that was not released."""
    people, request = releases.people, releases.request("partially_reviewed_open")
    mine = request.reviews.get(reviewer=people.checker)
    before = snapshot(request)
    store = data_root() / "releases" / str(request.project_id) / str(request.pk)
    copied = []

    def fail(*, project, change):
        copied.extend(path.name for path in store.iterdir())
        raise failure

    monkeypatch.setattr(services.projects, "count_released_outputs", fail)

    with pytest.raises(type(failure)):
        services.submit_review(review=mine, by=people.checker)

    assert copied  # the failure came after the copies were made
    assert not store.exists()
    ledger = data_root() / "ledger" / str(request.project_id)
    assert not list(ledger.glob(f"{request.pk}-*.parquet"))
    assert snapshot(request) == before
    assert fresh(request).status == S.PARTIALLY_REVIEWED


def test_a_file_changed_after_review_is_not_released_and_nothing_is(releases):
    people, request = releases.people, releases.request("partially_reviewed_open")
    mine = request.reviews.get(reviewer=people.checker)
    tamper(output_path(releases.job, FAIL_TABLE))  # the second file: the first is fine
    before = snapshot(request)

    with pytest.raises(ValidationError):
        services.submit_review(review=mine, by=people.checker)

    assert snapshot(request) == before  # review still open, no copies, no events
    assert fresh(request).status == S.PARTIALLY_REVIEWED
    assert not (data_root() / "releases" / str(request.project_id) / str(request.pk)).exists()


def test_the_checker_is_warned_when_a_file_changed_since_it_was_checked(releases):
    people, request = releases.people, releases.request("submitted")
    file = file_named(request, FAIL_TABLE)
    data, unchanged = services.open_for_review(file=file, by=people.checker)
    assert unchanged and sha256(data) == file.sha256
    tamper(output_path(releases.job, FAIL_TABLE), b"sex,people\nF,30\nM,1\n")
    start = mark()

    data, unchanged = services.open_for_review(file=file, by=people.checker)

    assert not unchanged and data == b"sex,people\nF,30\nM,1\n"
    assert [e.data["unchanged"] for e in events_since(start)] == [False]


@pytest.mark.parametrize(("how", "refused"), [("changed", PermissionDenied), ("deleted", NotFound)])
def test_a_released_copy_changed_or_gone_is_never_served(releases, how, refused):
    people, request = releases.people, releases.request("released")
    file = file_named(request, PASS_TABLE)
    copy = data_root() / file.released.path
    if how == "changed":
        tamper(copy)
    else:
        copy.unlink()
    start = mark()

    with pytest.raises(refused):
        services.open_released(file=file, by=people.author)
    assert types_since(start) == []


def test_another_projects_job_or_output_is_not_found(releases):
    author, request = releases.people.author, releases.request("draft")
    other, own = releases.other_job, releases.job  # the author is a member of both projects
    before = snapshot(request)

    for job, output in [(other, output_of(other, TEXT)), (other, None),
                        (own, output_of(other, TEXT))]:  # fmt: skip
        with pytest.raises(NotFound):
            services.add_file(request=request, job=job, output=output, context="Notes.",
                              by=author)  # fmt: skip
    assert snapshot(request) == before


def test_a_forged_file_id_is_not_found(releases):
    people = releases.people
    draft, released = releases.request("draft"), releases.request("released")
    elsewhere = file_named(released, PASS_TABLE)
    missing = max(f.pk for f in released.files.all()) + 1000

    for pk in (elsewhere.pk, missing):
        with pytest.raises(NotFound):
            selectors.get_file(people.author, draft, pk)
    assert selectors.get_file(people.author, released, elsewhere.pk) == elsewhere
    # A file of another request with a review of this one.
    open_review = releases.request("submitted_open").reviews.get(reviewer=people.checker)
    with pytest.raises(NotFound):
        services.decide_file(review=open_review, file=elsewhere, decision=A, by=people.checker)
    with pytest.raises(NotFound):
        selectors.get_request(people.outsider, released.pk)


# --- 5. Release -------------------------------------------------------------------------
def test_the_released_bytes_are_the_reviewed_bytes(releases):
    people, request = releases.people, releases.request("released")
    start = mark()

    for name in (PASS_TABLE, FAIL_TABLE):
        file = file_named(request, name)
        job_bytes = output_path(releases.job, name).read_bytes()
        served = services.open_released(file=file, by=people.other_member)
        assert served == job_bytes
        assert sha256(served) == file.sha256 == file.released.sha256 == output_of(
            releases.job, name).sha256  # fmt: skip
        assert (data_root() / file.released.path).read_bytes() == job_bytes
    assert types_since(start) == [E.RELEASED_FILE_DOWNLOADED] * 2


def test_rejected_files_of_an_approved_request_stay_inside(releases):
    people, request = releases.people, releases.request("submitted")
    start = mark()
    for reviewer in (people.first, people.second):
        review(request, reviewer, {PASS_TABLE: A, FAIL_TABLE: R})

    request = fresh(request)
    assert request.status == S.RELEASED
    rejected = file_named(request, FAIL_TABLE)
    assert rejected.decision == R
    assert list(ReleasedFile.objects.filter(file__request=request).values_list(
        "file__name", flat=True)) == [PASS_TABLE]  # fmt: skip
    (event,) = [e for e in events_since(start) if e.event_type == E.RELEASED]
    assert [f["name"] for f in event.data["files"]] == [PASS_TABLE]
    approved = next(e for e in events_since(start) if e.event_type == E.RELEASE_APPROVED)
    assert (approved.data["approved"], approved.data["rejected"]) == (1, 1)
    with pytest.raises(NotFound):
        services.open_released(file=rejected, by=people.author)


def test_revoking_needs_a_reason_and_stops_downloads(releases):
    people, request = releases.people, releases.request("released")
    file = file_named(request, PASS_TABLE)
    before = snapshot(request)

    with pytest.raises(ValidationError, match="give a reason"):
        services.revoke(request=request, by=people.ig, reason="  ")
    assert snapshot(request) == before

    revoked = services.revoke(request=request, by=people.ig, reason="Disclosive after all.")
    assert (revoked.status, revoked.revoked_reason) == (S.REVOKED, "Disclosive after all.")
    for member in (people.author, people.other_member):
        with pytest.raises(NotFound):
            services.open_released(file=file, by=member)


def test_only_current_members_download(releases):
    people, request = releases.people, releases.request("released")
    file = file_named(request, PASS_TABLE)
    assert services.open_released(file=file, by=people.other_member)

    remove_member(project=releases.project, user=people.other_member, by=people.ig)
    start = mark()

    for person in (people.other_member, people.outsider, people.ig, people.first):
        with pytest.raises(NotFound):
            services.open_released(file=file, by=person)
    assert types_since(start) == []


@pytest.mark.parametrize(
    "name", [EVIDENCE, "small_groups.evidence.json", "people_by_sex_chart.chart.json"]
)
def test_evidence_sidecars_cannot_be_added(releases, name):
    request, job = releases.request("draft"), releases.job
    before = snapshot(request)

    with pytest.raises(ValidationError, match="evidence files stay inside"):
        services.add_file(request=request, job=job, output=output_of(job, name),
                          context="Evidence.", by=releases.people.author)  # fmt: skip
    assert snapshot(request) == before


def test_a_dummy_jobs_log_cannot_be_added_and_a_real_jobs_can(releases):
    author, request = releases.people.author, releases.request("draft")
    before = snapshot(request)

    with pytest.raises(ValidationError, match="log of a finished run on real data"):
        services.add_file(request=request, job=releases.job, output=None, context="Log.",
                          by=author)  # fmt: skip
    assert snapshot(request) == before

    real = releases.real_job
    log = services.add_file(request=request, job=real, output=None, context="Log.", by=author)
    assert (log.name, log.output, log.sha256) == (f"job-{real.pk}-log.txt", None,
                                                  real.log_sha256)  # fmt: skip
    assert log.outcome == "review"
    assert log.sha256 == sha256((data_root() / real.folder / "log.txt").read_bytes())


# --- 6. Audit ---------------------------------------------------------------------------
# The data of each event: ids, counts, hashes, names, statuses, never a file's contents.
EVENT_KEYS: dict[str, set[str]] = {
    E.RELEASE_REQUEST_CREATED: {"request_id", "policy"},
    E.RELEASE_FILE_ADDED: {"request_id", "file_id", "job_id", "name", "sha256"},
    E.AUTOMATED_CHECKS_RUN: {"request_id", "file_id", "job_id", "name", "sha256", "outcome",
                             "rules", "policy", "checker_version"},
    E.RELEASE_FILE_REMOVED: {"request_id", "file_id"},
    E.EXCEPTION_REQUESTED: {"request_id", "file_id", "rule", "reason"},
    E.RELEASE_REQUEST_SUBMITTED: {"request_id", "round", "status", "files", "resubmission"},
    E.RELEASE_REQUEST_WITHDRAWN: {"request_id", "round", "status"},
    E.REVIEW_STARTED: {"request_id", "round", "review"},
    E.OUTPUT_FILE_VIEWED: {"request_id", "file_id", "unchanged"},
    E.FILE_DECIDED: {"request_id", "file_id", "decision"},
    E.REVIEW_SUBMITTED: {"request_id", "round", "status", "review"},
    **{outcome: {"request_id", "round", "status", "approved", "changes", "rejected"}
       for outcome in (E.RELEASE_APPROVED, E.RELEASE_REQUEST_RETURNED, E.RELEASE_REJECTED)},
    E.RELEASED: {"request_id", "round", "status", "files"},
    E.RELEASED_FILE_DOWNLOADED: {"request_id", "file_id", "sha256"},
    E.RELEASE_REVOKED: {"request_id", "round", "status", "reason"},
}  # fmt: skip


def test_every_step_view_decision_and_download_is_audited_without_file_contents(releases):
    people, job = releases.people, releases.job
    author, first, second, ig = people.author, people.first, people.second, people.ig
    start = mark()

    request = builders.draft(job, author)  # created, two files added, an exception
    services.submit(request=request, by=author)
    for checker in (first, second):
        mine = services.start_review(request=request, by=checker)
        for file in selectors.current_files(request):
            services.open_for_review(file=file, by=checker)
            services.decide_file(review=mine, file=file, decision=A, comment="Fine.",
                                 by=checker)  # fmt: skip
        services.submit_review(review=mine, by=checker)
    services.open_released(file=file_named(request, PASS_TABLE), by=author)
    services.revoke(request=request, by=ig, reason="Withdrawn by the data controller.")

    events = events_since(start)
    reviewing = [E.REVIEW_STARTED, E.OUTPUT_FILE_VIEWED, E.FILE_DECIDED,
                 E.OUTPUT_FILE_VIEWED, E.FILE_DECIDED, E.REVIEW_SUBMITTED]  # fmt: skip
    assert [e.event_type for e in events] == [
        E.RELEASE_REQUEST_CREATED, *EDITING, *EDITING, E.EXCEPTION_REQUESTED,
        E.RELEASE_REQUEST_SUBMITTED, *reviewing, *reviewing[:-1], *RELEASING,
        E.RELEASED_FILE_DOWNLOADED, E.RELEASE_REVOKED,
    ]  # fmt: skip
    contents = [output_path(job, n).read_text() for n in (PASS_TABLE, FAIL_TABLE)]
    for event in events:
        assert set(event.data) == EVENT_KEYS[event.event_type], event.event_type
        assert event.project_id == request.project_id
        assert not any(line in json.dumps(event.data) for text in contents
                       for line in text.splitlines()[1:])  # fmt: skip
    actors = {e.event_type: e.actor_id for e in events}
    assert actors[E.RELEASED] == people.system.pk  # the release is the system's
    assert actors[E.AUTOMATED_CHECKS_RUN] == people.system.pk
    assert actors[E.RELEASED_FILE_DOWNLOADED] == author.pk
    assert actors[E.RELEASE_REVOKED] == ig.pk
    views = [e for e in events if e.event_type == E.OUTPUT_FILE_VIEWED]
    assert [e.actor_id for e in views] == [first.pk, first.pk, second.pk, second.pk]
    assert all(e.data["unchanged"] for e in views)
    checks = [e for e in events if e.event_type == E.AUTOMATED_CHECKS_RUN]
    assert [c.data["rules"] for c in checks] == [{}, {"T1": "fail"}]  # rule -> status only


def test_every_release_event_carries_only_ids_counts_hashes_and_statuses(releases):
    """Every kind of event the workflow writes, as the states were built (returned,
    rejected, withdrawn, revoked ...) and as a checker views, a member downloads and an
    author removes a file."""
    people = releases.people
    services.open_for_review(file=file_named(releases.request("submitted"), FAIL_TABLE),
                             by=people.checker)  # fmt: skip
    services.open_released(file=file_named(releases.request("released"), FAIL_TABLE),
                           by=people.author)  # fmt: skip
    services.remove_file(file=file_named(releases.request("draft"), FAIL_TABLE),
                         by=people.author)  # fmt: skip

    events = AuditEvent.objects.filter(event_type__startswith="outputs.")
    assert {e.event_type for e in events} == set(EVENT_KEYS)
    for event in events:
        assert set(event.data) == EVENT_KEYS[event.event_type], event.event_type
