"""Independent review (access_requests/services.py, ``selectors.review_queue``): a quorum of
approvals of the same terms within a round, conflicts of interest, the Caldicott
Guardian's sign-off, reasons, comments and private notes, who is told what, the review
queue, and an audit trail that carries nothing from the answers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, time, timedelta
from itertools import product
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from access_requests import selectors, services
from access_requests.models import AccessRequest, Comment, Review
from sde.audit.events import EventType as E
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.governance import governed_writes
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects.models import Project
from tests import scenarios
from tests.events import events_since, mark, types_since
from tests.unit.access_requests.builders import (
    END,
    PUBLIC_INTEREST,
    START,
    TODAY,
    Panel,
    answers,
    approve_by,
    caldicott_guardian,
    drafted,
    drive_to,
    fresh,
    ig_officer,
    join,
    panel,
)
from tests.unit.access_requests.builders import applicant as make_applicant
from tests.unit.sde.projects.builders import researcher

pytestmark = pytest.mark.django_db

S = AccessRequest.Status
D = Review.Decision
PI = "principal_investigator"


def _request(
    organisation: Organisation,
    applicant: User,
    *team: tuple[User, str, bool],
    status: str = S.IN_REVIEW,
    by: Panel,
    **sections: Any,
) -> AccessRequest:
    members = [(applicant, PI, not _is_ig(applicant)), *team]
    filled = answers(organisation, members, **sections)
    return drive_to(drafted(applicant, organisation, filled), status, by=by)


def _is_ig(user: User) -> bool:
    return user.role_assignments.filter(role=Role.IG_OFFICER, revoked_at__isnull=True).exists()


def _state(request: AccessRequest) -> dict[str, Any]:
    stored = fresh(request)
    return {
        "status": stored.status,
        "round": stored.review_round,
        "assignee": stored.assignee_id,
        "reviews": list(stored.reviews.values_list("reviewer_id", "review_round", "decision")),
        "comments": list(stored.comments.values_list("author_id", "private", "body")),
        "projects": Project.objects.count(),
    }


def _refused(
    error: type[Exception], call: Callable[[], Any], request: AccessRequest
) -> pytest.ExceptionInfo[Any]:
    """``call`` raises ``error`` and leaves the request, the log and the outbox as they were."""
    before, at, sent = _state(request), mark(), len(mail.outbox)
    with pytest.raises(error) as raised:
        call()
    assert _state(request) == before
    assert types_since(at) == []
    assert len(mail.outbox) == sent
    return raised


# =========================================================================================
# The quorum
# =========================================================================================
@pytest.mark.skipif("SDE_APPROVAL_QUORUM" in os.environ, reason="the quorum is configured")
def test_the_default_quorum_is_two_independent_approvals():
    assert django_settings.SDE_APPROVAL_QUORUM == 2


@pytest.mark.parametrize("quorum", [1, 2, 3])
def test_a_request_is_approved_when_the_quorum_approves(settings, organisation, applicant, quorum):
    settings.SDE_APPROVAL_QUORUM = quorum
    reviewers = panel(quorum)
    request = _request(organisation, applicant, by=reviewers)
    *first, last = reviewers.reviewers

    for n, reviewer in enumerate(first, start=1):
        at = mark()
        request = services.approve(request=request, by=reviewer, end_date=END, today=TODAY)
        assert request.status == S.IN_REVIEW
        assert types_since(at) == [E.REQUEST_APPROVAL_RECORDED]
        assert events_since(at)[0].data == {"round": 1, "approvals": n}
        left = quorum - n
        assert services.missing_for_approval(request) == [
            f"{left} more independent approval{'s' if left > 1 else ''}"
        ]
        assert not Project.objects.exists()
    at = mark()
    request = services.approve(request=request, by=last, end_date=END, today=TODAY)

    assert request.status == S.APPROVED
    assert request.approved_end_date == END and request.decided_at is not None
    assert services.missing_for_approval(request) == []
    recorded, approved = events_since(at)[:2]
    assert (recorded.event_type, approved.event_type) == (
        E.REQUEST_APPROVAL_RECORDED,
        E.REQUEST_APPROVED,
    )
    assert approved.actor_id == last.pk
    assert approved.data == {"round": 1, "approvers": [r.pk for r in reviewers.reviewers]}
    project = Project.objects.get()
    assert request.project == project and project.access_request_id == request.pk
    assert project.end_date == END


def test_the_same_reviewer_cannot_approve_twice_in_a_round(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers)
    first = reviewers.reviewers[0]
    request = approve_by(request, first)

    raised = _refused(
        InvalidTransition,
        lambda: services.approve(request=request, by=first, end_date=END, today=TODAY),
        request,
    )

    assert "already" in str(raised.value)
    assert len(services.approvals(request)) == 1


def test_the_database_refuses_a_second_decision_of_a_kind_by_one_reviewer_in_a_round(
    organisation, applicant
):
    reviewers = panel()
    request = approve_by(_request(organisation, applicant, by=reviewers), reviewers.reviewers[0])
    again = Review(
        request=request, reviewer=reviewers.reviewers[0], review_round=1, decision=D.APPROVE
    )

    with pytest.raises(IntegrityError), transaction.atomic(), governed_writes(Review):
        again.save()


def test_the_database_refuses_a_return_or_rejection_without_a_reason(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers)

    for decision in (D.RETURN, D.REJECT):
        review = Review(
            request=request,
            reviewer=reviewers.reviewers[1],
            review_round=1,
            decision=decision,
            reason="",
        )
        with pytest.raises(IntegrityError), transaction.atomic(), governed_writes(Review):
            review.save()


def test_approvals_of_an_earlier_round_do_not_count_after_a_return(organisation, applicant):
    reviewers = panel()
    first, second, third = reviewers.reviewers
    request = _request(organisation, applicant, by=reviewers)
    request = approve_by(request, first)
    request = services.return_request(request=request, by=second, reason="Add the REC letter.")
    request = services.submit(request=request, by=applicant, today=TODAY)
    request = services.start_review(request=request, by=second)

    assert request.review_round == 2
    assert services.approvals(request) == []
    assert services.missing_for_approval(request) == ["2 more independent approvals"]
    request = approve_by(request, third)
    assert request.status == S.IN_REVIEW  # first's approval was of round 1
    request = approve_by(request, first)  # a new round: first may approve again

    assert request.status == S.APPROVED
    assert fresh(request).reviews.filter(reviewer=first, decision=D.APPROVE).count() == 2
    (approved,) = [e for e in events_since(0) if e.event_type == E.REQUEST_APPROVED]
    assert approved.data == {"round": 2, "approvers": [third.pk, first.pk]}


def test_approvals_must_be_of_the_same_terms(organisation, applicant):
    reviewers = panel()
    first, second, _ = reviewers.reviewers
    request = _request(organisation, applicant, by=reviewers)
    request = approve_by(request, first)

    for terms in (
        {"end_date": END - timedelta(days=1), "conditions": ""},
        {"end_date": END, "conditions": "No linkage to social care."},
    ):
        raised = _refused(
            ValidationError,
            lambda terms=terms: services.approve(request=request, by=second, today=TODAY, **terms),
            request,
        )
        assert set(raised.value.errors) == {"end_date"}


def test_the_approved_terms_become_the_projects(organisation, applicant):
    reviewers = panel()
    first, second, _ = reviewers.reviewers
    request = _request(organisation, applicant, by=reviewers)
    end = END - timedelta(days=90)
    conditions = "Outputs are shared with the ICB first."

    services.approve(
        request=request, by=first, end_date=end, conditions=conditions + "  ", today=TODAY
    )
    approved = services.approve(
        request=request, by=second, end_date=end, conditions="  " + conditions, today=TODAY
    )

    assert approved.status == S.APPROVED
    assert (approved.approved_end_date, approved.conditions) == (end, conditions)
    project = Project.objects.get()
    assert (project.end_date, project.conditions) == (end, conditions)


def test_an_approval_with_an_end_date_in_the_past_or_before_the_start_is_refused(
    organisation, applicant
):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers)
    in_the_past = (TODAY - timedelta(days=1), TODAY)
    before_the_start = (START - timedelta(days=1), START - timedelta(days=30))

    for end, today in (in_the_past, before_the_start):
        raised = _refused(
            ValidationError,
            lambda end=end, today=today: services.approve(
                request=request, by=reviewers.reviewers[1], end_date=end, today=today
            ),
            request,
        )
        assert set(raised.value.errors) == {"end_date"}


# =========================================================================================
# Conflicts of interest
# =========================================================================================
def _conflict_applicant(org: Organisation, applicant: User) -> tuple[AccessRequest, User, str]:
    ig = make_applicant(org, Role.IG_OFFICER)
    return _request(org, ig, status=S.SUBMITTED, by=panel()), ig, "you applied for it"


def _conflict_member(org: Organisation, applicant: User) -> tuple[AccessRequest, User, str]:
    ig = ig_officer()
    request = _request(org, applicant, (ig, "supervisor", False), status=S.SUBMITTED, by=panel())
    return request, ig, "you are on its team"


def _conflict_lead_organisation(
    org: Organisation, applicant: User
) -> tuple[AccessRequest, User, str]:
    ig = ig_officer()
    join(ig, org)
    request = _request(org, applicant, status=S.SUBMITTED, by=panel())
    return request, ig, "you belong to one of its organisations"


def _conflict_listed_organisation(
    org: Organisation, applicant: User
) -> tuple[AccessRequest, User, str]:
    partner = scenarios.organisation()
    ig = ig_officer()
    join(ig, partner)
    filled = answers(org, [(applicant, PI, True)])
    filled["people"]["organisations"].append(
        {**filled["people"]["organisations"][0], "organisation_id": partner.pk, "role": "processor"}
    )
    request = drive_to(drafted(applicant, org, filled), S.SUBMITTED, by=panel())
    return request, ig, "you belong to one of its organisations"


CONFLICTS = {
    "applicant": _conflict_applicant,
    "listed-member": _conflict_member,
    "lead-organisation": _conflict_lead_organisation,
    "listed-organisation": _conflict_listed_organisation,
}
ORGANISATION_RULE = {"lead-organisation", "listed-organisation"}


@pytest.mark.parametrize("conflict", CONFLICTS)
def test_a_reviewer_with_a_conflict_of_interest_takes_no_part(organisation, applicant, conflict):
    request, reviewer, reason = CONFLICTS[conflict](organisation, applicant)
    independent = ig_officer()

    assert services.conflict_of(reviewer, request) == reason
    assert [e.conflict for e in selectors.review_queue(reviewer)] == [reason]
    _refused(PermissionDenied, lambda: services.start_review(request=request, by=reviewer), request)
    _refused(
        PermissionDenied,
        lambda: services.assign(request=request, assignee=independent, by=reviewer),
        request,
    )
    _refused(
        ValidationError,
        lambda: services.assign(request=request, assignee=reviewer, by=independent),
        request,
    )
    request = services.start_review(request=request, by=independent)
    for call in (
        lambda: services.approve(request=request, by=reviewer, end_date=END, today=TODAY),
        lambda: services.return_request(request=request, by=reviewer, reason="Say more."),
        lambda: services.reject(request=request, by=reviewer, reason="No."),
    ):
        raised = _refused(PermissionDenied, call, request)
        assert reason in str(raised.value)
    # They see the request (and its public comments) but not the reviewers' private notes.
    services.add_comment(request=request, by=independent, body="Check the DPIA.", private=True)
    assert not services.visible_comments(reviewer, request).exists()


def test_the_organisation_rule_can_be_switched_off(settings, organisation, applicant):
    cases = {name: make(organisation, applicant) for name, make in CONFLICTS.items()}
    settings.SDE_REVIEW_EXCLUDES_APPLICANT_ORGANISATIONS = False

    conflicts = {
        name: services.conflict_of(reviewer, request)
        for name, (request, reviewer, _) in cases.items()
    }

    assert conflicts == {
        name: None if name in ORGANISATION_RULE else reason
        for name, (_, _, reason) in cases.items()
    }  # the applicant and the team are never independent
    for name in ORGANISATION_RULE:
        request, reviewer, _ = cases[name]
        request = services.start_review(request=request, by=reviewer)
        assert approve_by(request, reviewer, ig_officer()).status == S.APPROVED


def test_an_ig_officer_who_is_independent_of_the_request_has_no_conflict(organisation, applicant):
    ig = ig_officer()
    join(ig, scenarios.organisation())  # another organisation altogether
    request = _request(organisation, applicant, status=S.SUBMITTED, by=panel())

    assert services.conflict_of(ig, request) is None


# =========================================================================================
# The Caldicott Guardian's sign-off
# =========================================================================================
NOTE = "The public interest in finding untreated hypertension outweighs confidentiality."


def test_only_overriding_public_interest_needs_the_sign_off(organisation, applicant):
    reviewers = panel()
    plain = _request(organisation, applicant, status=S.SUBMITTED, by=reviewers)
    needing = _request(
        organisation, applicant, status=S.SUBMITTED, by=reviewers, legal=PUBLIC_INTEREST
    )

    assert services.missing_for_approval(plain) == ["2 more independent approvals"]
    assert services.missing_for_approval(needing) == [
        "2 more independent approvals",
        "the Caldicott Guardian's sign-off",
    ]


@pytest.mark.parametrize("order", ["sign-off-first", "approvals-first", "sign-off-between"])
def test_overriding_public_interest_is_approved_with_the_quorum_and_the_sign_off(
    organisation, applicant, order
):
    reviewers = panel()
    first, second, _ = reviewers.reviewers
    guardian = reviewers.guardian
    request = _request(organisation, applicant, by=reviewers, legal=PUBLIC_INTEREST)
    steps: dict[str, Callable[[AccessRequest], AccessRequest]] = {
        "sign": lambda r: services.sign_off(request=r, by=guardian, note=NOTE),
        "first": lambda r: approve_by(r, first),
        "second": lambda r: approve_by(r, second),
    }
    sequence = {
        "sign-off-first": ["sign", "first", "second"],
        "approvals-first": ["first", "second", "sign"],
        "sign-off-between": ["first", "sign", "second"],
    }[order]

    for step in sequence[:-1]:
        request = steps[step](request)
        assert request.status == S.IN_REVIEW
        assert not Project.objects.exists()
    at = mark()
    request = steps[sequence[-1]](request)

    assert request.status == S.APPROVED
    signed_last = sequence[-1] == "sign"
    last_event = E.REQUEST_CALDICOTT_SIGNED_OFF if signed_last else E.REQUEST_APPROVAL_RECORDED
    assert types_since(at)[:2] == [last_event, E.REQUEST_APPROVED]
    assert fresh(request).reviews.get(decision=D.CALDICOTT_SIGN_OFF).reason == NOTE
    assert Project.objects.get().scope["legal_basis"] == "overriding_public_interest"


def test_the_quorum_alone_does_not_approve_overriding_public_interest(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers, legal=PUBLIC_INTEREST)

    request = approve_by(request, *reviewers.reviewers)

    assert request.status == S.IN_REVIEW
    assert services.missing_for_approval(request) == ["the Caldicott Guardian's sign-off"]


def test_the_sign_off_is_refused_when_the_basis_does_not_need_it(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers)

    _refused(
        InvalidTransition,
        lambda: services.sign_off(request=request, by=reviewers.guardian, note=NOTE),
        request,
    )


def test_only_an_independent_caldicott_guardian_signs_off(organisation, applicant):
    reviewers = panel()
    on_team, in_organisation = caldicott_guardian(), caldicott_guardian()
    join(in_organisation, organisation)
    request = _request(
        organisation,
        applicant,
        (on_team, "clinical_lead", False),
        by=reviewers,
        legal=PUBLIC_INTEREST,
    )
    refused = {
        "guardian-on-the-team": (on_team, PermissionDenied),
        "guardian-of-the-lead-organisation": (in_organisation, PermissionDenied),
        "ig-officer": (reviewers.reviewers[1], PermissionDenied),
        "researcher": (researcher(), NotFound),
    }

    for by, error in refused.values():
        _refused(error, lambda by=by: services.sign_off(request=request, by=by, note=NOTE), request)
    assert services.conflict_of(on_team, request) == "you are on its team"
    assert services.sign_off(request=request, by=reviewers.guardian, note=NOTE)


def test_the_sign_off_needs_a_note(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers, legal=PUBLIC_INTEREST)

    for note in ("", "  "):
        raised = _refused(
            ValidationError,
            lambda note=note: services.sign_off(request=request, by=reviewers.guardian, note=note),
            request,
        )
        assert set(raised.value.errors) == {"reason"}


def test_the_sign_off_is_given_once_a_round_and_only_in_review(organisation, applicant):
    reviewers = panel()
    guardian = reviewers.guardian
    request = _request(
        organisation, applicant, status=S.SUBMITTED, by=reviewers, legal=PUBLIC_INTEREST
    )
    _refused(
        InvalidTransition,
        lambda: services.sign_off(request=request, by=guardian, note=NOTE),
        request,
    )
    request = services.start_review(request=request, by=reviewers.reviewers[0])
    request = services.sign_off(request=request, by=guardian, note=NOTE)

    _refused(
        InvalidTransition,
        lambda: services.sign_off(request=request, by=guardian, note=NOTE),
        request,
    )
    # A return starts a new round: the sign-off is needed again.
    request = services.return_request(request=request, by=reviewers.reviewers[0], reason="More.")
    request = services.submit(request=request, by=applicant, today=TODAY)
    request = services.start_review(request=request, by=reviewers.reviewers[0])
    request = approve_by(request, *reviewers.reviewers[1:])
    assert request.status == S.IN_REVIEW
    assert services.missing_for_approval(request) == ["the Caldicott Guardian's sign-off"]
    assert services.sign_off(request=request, by=guardian, note=NOTE).status == S.APPROVED


# =========================================================================================
# Return and reject
# =========================================================================================
def test_returning_or_rejecting_needs_a_reason(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers)

    for service, reason in product((services.return_request, services.reject), ("", "   ")):
        raised = _refused(
            ValidationError,
            lambda service=service, reason=reason: service(
                request=request, by=reviewers.reviewers[1], reason=reason
            ),
            request,
        )
        assert set(raised.value.errors) == {"reason"}


def test_the_return_reason_reaches_the_applicant_as_a_comment(organisation, applicant):
    reviewers = panel()
    reviewer = reviewers.reviewers[1]
    request = _request(organisation, applicant, by=reviewers)
    request = approve_by(request, reviewers.reviewers[0])
    at = mark()

    returned = services.return_request(request=request, by=reviewer, reason="  Add the DPIA. ")

    assert returned.status == S.RETURNED
    assert types_since(at) == [E.REQUEST_RETURNED, E.REQUEST_COMMENT_ADDED]
    assert fresh(request).reviews.get(decision=D.RETURN).reason == "Add the DPIA."
    (comment,) = services.visible_comments(applicant, returned)
    assert (comment.author, comment.body, comment.private) == (reviewer, "Add the DPIA.", False)
    assert services.approvals(fresh(request)) != []  # kept as the record of round 1


def test_a_rejection_keeps_its_reason(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers)
    at = mark()

    rejected = services.reject(request=request, by=reviewers.reviewers[1], reason="No benefit.")

    assert (rejected.status, rejected.decision_reason) == (S.REJECTED, "No benefit.")
    assert rejected.decided_at is not None
    assert types_since(at) == [E.REQUEST_REJECTED]
    assert not Project.objects.exists()


# =========================================================================================
# Assignment
# =========================================================================================
def test_a_request_is_assigned_to_an_independent_ig_officer(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, status=S.SUBMITTED, by=reviewers)
    assignee = ig_officer()
    at = mark()

    assigned = services.assign(request=request, assignee=assignee, by=reviewers.reviewers[0])

    assert assigned.assignee == assignee
    (event,) = events_since(at)
    assert (event.event_type, event.data) == (E.REQUEST_ASSIGNED, {"assignee_id": assignee.pk})


def test_a_request_is_assigned_only_to_an_active_ig_officer(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, status=S.SUBMITTED, by=reviewers)
    suspended = ig_officer()
    identity.suspend_account(user=suspended, by=scenarios.administrator(), reason="left")

    for assignee in (researcher(), caldicott_guardian(), User.objects.get(pk=suspended.pk)):
        raised = _refused(
            ValidationError,
            lambda assignee=assignee: services.assign(
                request=request, assignee=assignee, by=reviewers.reviewers[0]
            ),
            request,
        )
        assert set(raised.value.errors) == {"assignee"}


# =========================================================================================
# Comments and private notes
# =========================================================================================
def test_an_applicant_comments_publicly_and_never_privately(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers)

    _refused(
        PermissionDenied,
        lambda: services.add_comment(request=request, by=applicant, body="Hi", private=True),
        request,
    )
    comment = services.add_comment(request=request, by=applicant, body="  The DPIA is attached. ")

    assert (comment.body, comment.private) == ("The DPIA is attached.", False)


def test_a_comment_needs_text_of_a_sensible_length(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers)

    for by, body in product((applicant, reviewers.reviewers[1]), ("", "   ", "x" * 5001)):
        raised = _refused(
            ValidationError,
            lambda by=by, body=body: services.add_comment(request=request, by=by, body=body),
            request,
        )
        assert set(raised.value.errors) == {"body"}
    assert services.add_comment(request=request, by=applicant, body="x" * 5000)


def _viewers(org: Organisation, applicant: User, p: Panel, team_ig: User) -> dict[str, User]:
    org_ig = ig_officer()
    join(org_ig, org)
    return {
        "applicant": applicant,
        "independent-reviewer": p.reviewers[1],
        "ig-officer-on-the-team": team_ig,
        "ig-officer-of-the-organisation": org_ig,
        "caldicott-guardian": p.guardian,
    }


def test_private_notes_are_seen_only_by_independent_reviewers(organisation, applicant):
    reviewers = panel()
    team_ig = ig_officer()
    request = _request(organisation, applicant, (team_ig, "supervisor", False), by=reviewers)
    viewers = _viewers(organisation, applicant, reviewers, team_ig)
    reviewer = reviewers.reviewers[0]
    public = services.add_comment(request=request, by=reviewer, body="Which practices?")
    note = services.add_comment(request=request, by=reviewer, body="Ask IG lead.", private=True)
    reply = services.add_comment(request=request, by=applicant, body="All of North Place.")

    seen = {name: list(services.visible_comments(user, request)) for name, user in viewers.items()}

    assert seen == {
        "applicant": [public, reply],
        "independent-reviewer": [public, note, reply],
        "ig-officer-on-the-team": [public, reply],
        "ig-officer-of-the-organisation": [public, reply],
        "caldicott-guardian": [public, reply],
    }
    with pytest.raises(NotFound):
        services.visible_comments(researcher(), request)
    # The note's event says it is private; no event carries the text.
    data = [e.data for e in events_since(0) if e.event_type == E.REQUEST_COMMENT_ADDED]
    assert data == [
        {"private": False, "comment_id": public.pk},
        {"private": True, "comment_id": note.pk},
        {"private": False, "comment_id": reply.pk},
    ]


def test_comments_refuse_direct_writes(organisation, applicant):
    from sde.exceptions import GovernedWriteRefused

    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers)
    comment = services.add_comment(request=request, by=applicant, body="Hello.")

    with pytest.raises(GovernedWriteRefused):
        Comment(request=request, author=applicant, body="Sneaked in.").save()
    with pytest.raises(GovernedWriteRefused):
        comment.delete()


# =========================================================================================
# Who is told what
# =========================================================================================
def test_a_submission_is_sent_to_every_active_ig_officer(organisation, applicant, mailoutbox):
    reviewers = panel()
    suspended = ig_officer()
    identity.suspend_account(user=suspended, by=scenarios.administrator(), reason="left")
    caldicott_guardian(), researcher()
    request = _request(organisation, applicant, status=S.DRAFT, by=reviewers)

    submitted = services.submit(request=request, by=applicant, today=TODAY)

    assert sorted(address for m in mailoutbox for address in m.to) == sorted(
        r.email for r in reviewers.reviewers
    )  # one message to each, none to the suspended officer, the Guardian or a researcher
    assert {m.subject for m in mailoutbox} == {
        f"Access request {submitted.pk} submitted for review"
    }


def test_the_applicant_is_told_of_a_return_a_rejection_and_a_public_comment(
    organisation, applicant
):
    reviewers = panel()
    first, second, third = reviewers.reviewers
    returned = _request(organisation, applicant, by=reviewers)
    rejected = _request(organisation, applicant, by=reviewers)
    commented = _request(organisation, applicant, by=reviewers)
    at = len(mail.outbox)

    services.add_comment(request=commented, by=first, body="A private note.", private=True)
    services.add_comment(request=commented, by=applicant, body="A question for you.")
    assert mail.outbox[at:] == []  # notes and the applicant's own comments are not sent
    services.return_request(request=returned, by=second, reason="Add the DPIA.")
    services.reject(request=rejected, by=third, reason="No public benefit.")
    services.add_comment(request=commented, by=first, body="Which practices?")

    messages = mail.outbox[at:]
    assert [set(m.to) for m in messages] == [{applicant.email}] * 3
    assert [m.subject for m in messages] == [
        f"Access request {returned.pk} returned for changes",
        f"Access request {rejected.pk} was not approved",
        f"A comment on access request {commented.pk}",
    ]
    assert "Add the DPIA." in messages[0].body
    assert "No public benefit." in messages[1].body
    assert "Which practices?" in messages[2].body


def test_the_reviewers_are_told_what_is_missing_and_the_applicant_of_the_approval(
    organisation, applicant
):
    reviewers = panel()
    first, second, _ = reviewers.reviewers
    request = _request(organisation, applicant, by=reviewers)
    ig_emails = {u.email for u in reviewers.reviewers}
    at = len(mail.outbox)

    approve_by(request, first)
    needing = mail.outbox[at:]
    at = len(mail.outbox)
    approved = approve_by(request, second)

    # Every independent IG officer but the one who just approved.
    assert {address for m in needing for address in m.to} == ig_emails - {first.email}
    assert {m.subject for m in needing} == {f"Access request {request.pk} needs another approval"}
    assert all("1 more independent approval" in m.body for m in needing)
    (message,) = mail.outbox[at:]
    assert set(message.to) == {applicant.email}
    assert message.subject == f"Access request {request.pk} approved"
    assert f"{approved.approved_end_date:%d %B %Y}" in message.body


def test_the_caldicott_guardian_is_asked_to_sign_off(organisation, applicant):
    reviewers = panel()
    other_guardian = caldicott_guardian()
    request = _request(organisation, applicant, by=reviewers, legal=PUBLIC_INTEREST)
    at = len(mail.outbox)

    approve_by(request, *reviewers.reviewers[:2])

    asked = [m for m in mail.outbox[at:] if "sign-off" in m.subject]
    assert {address for m in asked for address in m.to} == {
        reviewers.guardian.email,
        other_guardian.email,
    }
    assert applicant.email not in {address for m in mail.outbox[at:] for address in m.to}


def test_once_the_quorum_is_met_only_the_caldicott_guardians_are_asked(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, by=reviewers, legal=PUBLIC_INTEREST)
    request = approve_by(request, reviewers.reviewers[0])
    at = len(mail.outbox)

    approve_by(request, reviewers.reviewers[1])

    assert {address for m in mail.outbox[at:] for address in m.to} == {reviewers.guardian.email}


# =========================================================================================
# The review queue
# =========================================================================================
def _submitted_on(request: AccessRequest, when: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(timezone, "now", lambda: when)
        return services.submit(request=request, by=request.applicant, today=TODAY)


def test_the_review_queue_is_not_found_by_anyone_who_does_not_review(applicant, custodian):
    suspended = ig_officer()
    identity.suspend_account(user=suspended, by=scenarios.administrator(), reason="left")
    nobody = {
        "researcher": researcher(),
        "applicant": applicant,
        "data-custodian": custodian,
        "output-checker": scenarios.person(Role.OUTPUT_CHECKER),
        "clinician": scenarios.person(Role.CLINICIAN),
        "administrator": scenarios.administrator(),
        "suspended-ig-officer": User.objects.get(pk=suspended.pk),
        "anonymous": AnonymousUser(),
    }
    found = {}

    for who, user in nobody.items():
        try:
            found[who] = selectors.review_queue(user)
        except NotFound:
            found[who] = "NotFound"

    assert found == dict.fromkeys(nobody, "NotFound")


def test_the_review_queue_shows_age_overdue_approvals_and_conflicts(
    settings, organisation, applicant, monkeypatch
):
    settings.SDE_REVIEW_SLA_DAYS = 5
    reviewers = panel()
    today = timezone.localdate()
    team_ig = ig_officer()

    def days_ago(days: int) -> datetime:
        return timezone.make_aware(datetime.combine(today - timedelta(days=days), time(12)))

    def draft(*team: tuple[User, str, bool]) -> AccessRequest:
        return _request(organisation, applicant, *team, status=S.DRAFT, by=reviewers)

    recent = _submitted_on(draft(), days_ago(5), monkeypatch)
    old = _submitted_on(draft((team_ig, "supervisor", False)), days_ago(6), monkeypatch)
    old = services.start_review(request=old, by=reviewers.reviewers[0])
    old = approve_by(old, reviewers.reviewers[0])
    draft()  # a draft is not in the queue
    _request(organisation, applicant, status=S.REJECTED, by=reviewers)  # nor a decided one
    _request(organisation, applicant, status=S.RETURNED, by=reviewers)  # nor a returned one
    viewer = reviewers.reviewers[1]

    queue = selectors.review_queue(viewer, today=today)

    assert [(e.request.pk, e.age_days, e.overdue, e.approvals, e.conflict) for e in queue] == [
        (old.pk, 6, True, 1, None),
        (recent.pk, 5, False, 0, None),
    ]
    assert queue[0].needed == ["1 more independent approval"]
    assert [e.conflict for e in selectors.review_queue(team_ig, today=today)] == [
        "you are on its team",
        None,
    ]
    guardian_view = selectors.review_queue(reviewers.guardian, today=today)
    assert [e.request.pk for e in guardian_view] == [old.pk, recent.pk]


def test_a_resubmitted_request_is_aged_from_the_submission_of_its_round(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant, status=S.RETURNED, by=reviewers)
    request = services.submit(request=request, by=applicant, today=TODAY)
    today = timezone.localdate() + timedelta(days=2)

    (entry,) = selectors.review_queue(reviewers.reviewers[0], today=today)

    assert (entry.age_days, entry.request.review_round) == (2, 2)
    assert fresh(request).first_submitted_at < fresh(request).submitted_at


# =========================================================================================
# The audit trail of a whole review carries nothing from the answers
# =========================================================================================
def test_the_events_of_a_whole_journey_carry_no_answer_content(organisation, applicant):
    reviewers = panel()
    first, second, third = reviewers.reviewers
    # One unusual word in each text that must stay out of the log.
    secret = {
        "title": "Zebra hypertension cohort",
        "lay": "Quokka summary of who is treated",
        "aims": "Axolotl patterns in treatment",
        "benefit": "Narwhal benefit to the public",
        "comment": "Pangolin question from a reviewer",
        "note": "Okapi private note",
        "reason": "Capybara reason for the return",
        "sign_off": "Wombat note of the Guardian",
    }
    filled = answers(
        organisation,
        [(applicant, PI, True)],
        meta={"title": secret["title"]},
        project={
            "lay_summary": secret["lay"],
            "aims": secret["aims"],
            "public_benefit": secret["benefit"],
        },
        legal=PUBLIC_INTEREST,
    )
    at = mark()
    request = drafted(applicant, organisation, filled)
    request = services.submit(request=request, by=applicant, today=TODAY)
    request = services.start_review(request=request, by=first)
    services.add_comment(request=request, by=first, body=secret["comment"])
    services.add_comment(request=request, by=first, body=secret["note"], private=True)
    request = services.return_request(request=request, by=second, reason=secret["reason"])
    request, _ = services.save_answers(
        request=request,
        by=applicant,
        revision=request.revision,
        sections=["project"],
        answers={"project": {**request.answers["project"], "aims": secret["aims"] + " too"}},
    )
    request = services.submit(request=request, by=applicant, today=TODAY)
    request = services.start_review(request=request, by=third)
    request = approve_by(request, first, second)
    request = services.sign_off(request=request, by=reviewers.guardian, note=secret["sign_off"])
    assert request.status == S.APPROVED

    events = events_since(at)
    access = [e.event_type for e in events if e.event_type.startswith("access.")]
    assert access == [
        E.REQUEST_CREATED,
        E.REQUEST_DRAFT_SAVED,
        E.REQUEST_SUBMITTED,
        E.REQUEST_REVIEW_STARTED,
        E.REQUEST_COMMENT_ADDED,
        E.REQUEST_COMMENT_ADDED,
        E.REQUEST_RETURNED,
        E.REQUEST_COMMENT_ADDED,
        E.REQUEST_DRAFT_SAVED,
        E.REQUEST_SUBMITTED,
        E.REQUEST_REVIEW_STARTED,
        E.REQUEST_APPROVAL_RECORDED,
        E.REQUEST_APPROVAL_RECORDED,
        E.REQUEST_CALDICOTT_SIGNED_OFF,
        E.REQUEST_APPROVED,
    ]
    markers = [text.split()[0].lower() for text in secret.values()]
    for event in events:
        data = json.dumps(event.data).lower()
        assert [m for m in markers if m in data] == [], event.event_type
        assert "quokka" not in event.target_display.lower()
    request_events = [e for e in events if e.target_type == "access_requests.accessrequest"]
    assert {e.target_id for e in request_events} == {str(request.pk)}
