"""The access request lifecycle (access_requests/services.py): the transition table against
the application form, and the whole matrix of status x action x actor, each expected
outcome derived from ``TRANSITIONS`` and the policy (NotFound for those who may not see
the request, PermissionDenied for those who see it but may not act, InvalidTransition in
the wrong state), with what each attempt left behind: a refusal leaves nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from access_requests import services
from access_requests.models import AccessRequest, Attachment, Comment, Review
from access_requests.selectors import QUEUE_STATUSES
from access_requests.services import COMMENTABLE, EDITABLE, TRANSITIONS
from sde.audit.events import EventType as E
from sde.audit.models import AuditEvent
from sde.audit.services import get_system_user
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.identity.selectors import users_with_role
from tests import scenarios
from tests.events import events_since, mark
from tests.unit.access_requests.builders import (
    END,
    PUBLIC_INTEREST,
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


# =========================================================================================
# The transition table
# =========================================================================================
# application-form.md, "Lifecycle", written out by hand: action -> (from, to).
DESIGNED_LIFECYCLE = {
    "submit": ({S.DRAFT, S.RETURNED}, S.SUBMITTED),
    "start_review": ({S.SUBMITTED}, S.IN_REVIEW),
    "return": ({S.IN_REVIEW}, S.RETURNED),
    "reject": ({S.IN_REVIEW}, S.REJECTED),
    "approve": ({S.IN_REVIEW}, S.APPROVED),
    "withdraw": ({S.DRAFT, S.SUBMITTED, S.RETURNED}, S.WITHDRAWN),
}


def test_the_transition_table_is_the_lifecycle_of_the_application_form():
    table = {action: (set(t.sources), t.target) for action, t in TRANSITIONS.items()}
    assert table == DESIGNED_LIFECYCLE


def test_every_transition_writes_its_own_event():
    events = [t.event for t in TRANSITIONS.values()]
    assert len(set(events)) == len(events)
    assert all(str(event).startswith("access.") for event in events)


def test_every_status_but_draft_is_reached_and_decisions_are_final():
    assert {t.target for t in TRANSITIONS.values()} == set(S.values) - {S.DRAFT}
    left = set().union(*(t.sources for t in TRANSITIONS.values()))
    assert left == {S.DRAFT, S.SUBMITTED, S.IN_REVIEW, S.RETURNED}
    assert set(S.values) - left == {S.APPROVED, S.REJECTED, S.WITHDRAWN}


def test_the_applicant_moves_a_request_to_and_from_review_and_independent_ig_decides():
    owners = {action: t.owner for action, t in TRANSITIONS.items()}
    assert owners == {
        "submit": services.APPLICANT,
        "withdraw": services.APPLICANT,
        "start_review": services.REVIEWER,
        "return": services.REVIEWER,
        "reject": services.REVIEWER,
        "approve": services.REVIEWER,
    }


def test_an_applicant_edits_only_a_draft_or_returned_request_and_comments_during_review():
    assert EDITABLE == {S.DRAFT, S.RETURNED}
    assert COMMENTABLE == {S.SUBMITTED, S.IN_REVIEW, S.RETURNED}
    assert set(QUEUE_STATUSES) == {S.SUBMITTED, S.IN_REVIEW}


# =========================================================================================
# The matrix
# =========================================================================================
@dataclass
class Ctx:
    assignee: User  # an independent IG officer the "assign" action hands requests to


def pdf() -> SimpleUploadedFile:
    return SimpleUploadedFile("protocol.pdf", b"%PDF-1.7\n1 0 obj\n", "application/pdf")


def _save(request: AccessRequest, by: Any) -> Any:
    stored = fresh(request)
    return services.save_answers(
        request=request, by=by, answers=stored.answers, revision=stored.revision
    )


RUN: dict[str, Callable[[AccessRequest, Any, Ctx], Any]] = {
    "submit": lambda r, by, ctx: services.submit(request=r, by=by, today=TODAY),
    "withdraw": lambda r, by, ctx: services.withdraw(request=r, by=by),
    "start_review": lambda r, by, ctx: services.start_review(request=r, by=by),
    "return": lambda r, by, ctx: services.return_request(
        request=r, by=by, reason="Say why exact dates are needed."
    ),
    "reject": lambda r, by, ctx: services.reject(
        request=r, by=by, reason="The public benefit is not shown."
    ),
    "approve": lambda r, by, ctx: services.approve(request=r, by=by, end_date=END, today=TODAY),
    "sign_off": lambda r, by, ctx: services.sign_off(
        request=r, by=by, note="The public interest outweighs the duty of confidence."
    ),
    "save_answers": lambda r, by, ctx: _save(r, by),
    "add_comment": lambda r, by, ctx: services.add_comment(
        request=r, by=by, body="Which practices does the cohort cover?"
    ),
    "add_attachment": lambda r, by, ctx: services.add_attachment(
        request=r, by=by, upload=pdf(), kind="protocol"
    ),
    "assign": lambda r, by, ctx: services.assign(request=r, assignee=ctx.assignee, by=by),
}


def test_every_transition_has_a_service_here():
    assert set(TRANSITIONS) <= set(RUN)


# Who acts. The applicant is an accredited researcher of the lead organisation; the team
# lists an IG officer (who does not use data). "ig_applicant" is an IG officer who applied
# (for their own request, which stands beside the researcher's in each status).
APPLICANTS = frozenset({"applicant", "ig_applicant"})
INDEPENDENT_IG = frozenset({"ig_independent"})
GUARDIANS = frozenset({"caldicott_guardian"})
# Who sees every request once it is submitted (policy.visible_access_requests).
OVERSEERS = frozenset({"ig_independent", "ig_team", "ig_organisation", "caldicott_guardian"})
OWNERS = {services.APPLICANT: APPLICANTS, services.REVIEWER: INDEPENDENT_IG}
# action -> (the statuses it applies in, who may take it)
RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    **{action: (t.sources, OWNERS[t.owner]) for action, t in TRANSITIONS.items()},
    "sign_off": (TRANSITIONS["approve"].sources, GUARDIANS),
    "save_answers": (EDITABLE, APPLICANTS),
    "add_attachment": (EDITABLE, APPLICANTS),
    "add_comment": (COMMENTABLE, APPLICANTS | INDEPENDENT_IG),
    "assign": (frozenset(QUEUE_STATUSES), INDEPENDENT_IG),
}


def test_every_action_of_the_matrix_has_a_rule():
    assert set(RULES) == set(RUN)


@dataclass
class People:
    applicant: User
    ig_applicant: User
    ig_team: User
    organisation: Organisation
    panel: Panel
    ctx: Ctx
    actors: dict[str, User]


def _people(organisation: Organisation, applicant: User, custodian: User) -> People:
    ig_team, ig_organisation = ig_officer(), ig_officer()
    join(ig_organisation, organisation)
    suspended = ig_officer()
    identity.suspend_account(user=suspended, by=scenarios.administrator(), reason="left")
    ig_applicant = make_applicant(organisation, Role.IG_OFFICER)
    actors = {
        "applicant": applicant,
        "ig_independent": ig_officer(),
        "ig_applicant": ig_applicant,
        "ig_team": ig_team,
        "ig_organisation": ig_organisation,
        "caldicott_guardian": caldicott_guardian(),
        "researcher": researcher(),
        "data_custodian": custodian,
        "output_checker": scenarios.person(Role.OUTPUT_CHECKER),
        "administrator": scenarios.administrator(),
        "ig_suspended": User.objects.get(pk=suspended.pk),
    }
    return People(
        applicant, ig_applicant, ig_team, organisation, panel(), Ctx(ig_officer()), actors
    )


def expected_outcome(actor: str, status: str, action: str) -> str:
    """Derived from the tables: the applicant sees their request in every status, IG
    officers and Caldicott Guardians every request but a draft, nobody else any; among
    those who see it, only the action's owners act (reviewers only when independent of
    the request), and only in the statuses the action applies in."""
    if not (actor in APPLICANTS or (actor in OVERSEERS and status != S.DRAFT)):
        return "NotFound"
    statuses, owners = RULES[action]
    if actor not in owners:
        return "PermissionDenied"
    return "allowed" if status in statuses else "InvalidTransition"


def _request(people: People, *, ig_applicant: bool, status: str) -> AccessRequest:
    """A complete application (overriding public interest, so the Guardian signs off)
    driven into ``status``."""
    if ig_applicant:
        who, team = people.ig_applicant, [(people.ig_applicant, "principal_investigator", False)]
    else:
        who = people.applicant
        team = [(who, "principal_investigator", True), (people.ig_team, "supervisor", False)]
    filled = answers(people.organisation, team, legal=PUBLIC_INTEREST)
    return drive_to(drafted(who, people.organisation, filled), status, by=people.panel)


# What the allowed actor's own request needs first: the approval that completes it is the
# last one missing.
PREPARE: dict[str, Callable[[AccessRequest, Panel], AccessRequest]] = {
    "approve": lambda r, p: approve_by(
        services.sign_off(request=r, by=p.guardian, note="Justified."), p.reviewers[0]
    ),
    "sign_off": lambda r, p: approve_by(r, *p.reviewers[:2]),
}


def _files() -> int:
    root = services.attachment_root()
    return len(list(root.iterdir())) if root.exists() else 0


def _trace(request: AccessRequest, at: int, mail_at: int) -> dict[str, Any]:
    """What an attempt left behind on the request, in the audit log, on disk and in mail."""
    stored = fresh(request)
    events = events_since(at)
    return {
        "status": stored.status,
        "round": stored.review_round,
        "revision": stored.revision,
        "assignee": stored.assignee_id,
        "reviews": [(r.reviewer_id, r.review_round, r.decision) for r in stored.reviews.all()],
        "comments": [(c.author_id, c.private) for c in stored.comments.all()],
        "attachments": [(a.uploaded_by_id, a.kind) for a in stored.attachments.all()],
        "files": _files(),
        "events": [
            (e.event_type, e.actor_id) for e in events if e.event_type.startswith("access.")
        ],
        "other_events": {
            (e.event_type, e.actor_id) for e in events if not e.event_type.startswith("access.")
        },
        "mail_to": {address for m in mail.outbox[mail_at:] for address in m.to},
    }


def _fingerprint(request: AccessRequest) -> tuple[Any, ...]:
    """Cheap, and different whenever ``_trace`` (but for files and mail) would be: the
    services only ever add reviews, comments, attachments and events, and every save of
    the request moves its ``updated_at``. One plain query, as the matrix reads it after
    each of some 800 refusals."""
    tables = {
        m.__name__: m._meta.db_table
        for m in (AccessRequest, Review, Comment, Attachment, AuditEvent)
    }
    sql = (
        f"SELECT r.updated_at, r.status,"
        f" (SELECT COUNT(*) FROM {tables['Review']} WHERE request_id = r.id),"
        f" (SELECT COUNT(*) FROM {tables['Comment']} WHERE request_id = r.id),"
        f" (SELECT COUNT(*) FROM {tables['Attachment']} WHERE request_id = r.id),"
        f" (SELECT MAX(sequence) FROM {tables['AuditEvent']})"
        f" FROM {tables['AccessRequest']} r WHERE r.id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [request.pk])
        return tuple(cursor.fetchone())


def _effect(
    action: str, before: dict[str, Any], by: User, request: AccessRequest, ctx: Ctx
) -> dict:
    """What the allowed ``action`` by ``by`` must change, and nothing else."""
    applicant = request.applicant
    after = {**before, "events": [], "other_events": set(), "mail_to": set()}
    step = TRANSITIONS.get(action)
    if step is not None:
        after["status"] = step.target
        after["events"] = [(step.event, by.pk)]
    review = (by.pk, before["round"])
    if action == "submit":
        after["round"] += 1
        after["assignee"] = None  # each round is assigned afresh
        after["mail_to"] = {  # the IG officers who may review it
            u.email
            for u in users_with_role(Role.IG_OFFICER)
            if services.conflict_of(u, request) is None
        }
    elif action == "start_review":
        after["assignee"] = by.pk
    elif action == "return":
        after["reviews"] = [*before["reviews"], (*review, "return")]
        after["comments"] = [*before["comments"], (by.pk, False)]
        after["events"] += [(E.REQUEST_COMMENT_ADDED, by.pk)]
        after["mail_to"] = {applicant.email}
    elif action == "reject":
        after["reviews"] = [*before["reviews"], (*review, "reject")]
        after["mail_to"] = {applicant.email}
    elif action in ("approve", "sign_off"):
        decision, event = {
            "approve": ("approve", E.REQUEST_APPROVAL_RECORDED),
            "sign_off": ("caldicott_sign_off", E.REQUEST_CALDICOTT_SIGNED_OFF),
        }[action]
        after["status"] = S.APPROVED
        after["reviews"] = [*before["reviews"], (*review, decision)]
        after["events"] = [(event, by.pk), (TRANSITIONS["approve"].event, by.pk)]
        system = get_system_user().pk
        after["other_events"] = {
            (E.PROJECT_CREATED, system),
            (E.PROJECT_MEMBER_ADDED, system),
            (E.OBJECT_PERMISSION_GRANTED, system),
            (E.PROJECT_ACTIVATED, system),
        }
        after["mail_to"] = {applicant.email}
    elif action == "save_answers":
        after["revision"] += 1
        after["events"] = [(E.REQUEST_DRAFT_SAVED, by.pk)]
    elif action == "add_comment":
        after["comments"] = [*before["comments"], (by.pk, False)]
        after["events"] = [(E.REQUEST_COMMENT_ADDED, by.pk)]
        if by.pk != applicant.pk:  # a reviewer's public comment is sent to the applicant
            after["mail_to"] = {applicant.email}
    elif action == "add_attachment":
        after["attachments"] = [*before["attachments"], (by.pk, "protocol")]
        after["files"] += 1
        after["events"] = [(E.REQUEST_ATTACHMENT_ADDED, by.pk)]
    elif action == "assign":
        after["assignee"] = ctx.assignee.pk
        after["events"] = [(E.REQUEST_ASSIGNED, by.pk)]
    return after


@pytest.mark.parametrize("status", S.values)
def test_transition_matrix(organisation, applicant, custodian, status):
    """One row per status: every action by every actor, its outcome and what it left
    behind, compared as a whole with what the tables say. A refusal changes nothing, so
    refused actors share one request per status (two: the IG officer who applied acts on
    their own); each allowed attempt gets its own request, driven into the same status."""
    people = _people(organisation, applicant, custodian)
    shared = {mine: _request(people, ig_applicant=mine, status=status) for mine in (False, True)}
    # Refusals leave the shared requests as they are, so their state is read once, and
    # after each refusal only a fingerprint is read (the whole trace if it moved).
    untouched = {
        mine: _trace(request, mark(), len(mail.outbox)) for mine, request in shared.items()
    }
    quiet = {mine: _fingerprint(request)[:-1] for mine, request in shared.items()}
    observed: dict[tuple[str, str], Any] = {}
    expected: dict[tuple[str, str], Any] = {}
    for action, (actor, by) in product(RUN, people.actors.items()):
        mine = actor == "ig_applicant"
        outcome = expected_outcome(actor, status, action)
        request = shared[mine]
        if outcome == "allowed":
            request = _request(people, ig_applicant=mine, status=status)
            request = PREPARE.get(action, lambda r, p: r)(request, people.panel)
        at, mail_at, files = mark(), len(mail.outbox), _files()
        if outcome == "allowed":
            before = _trace(request, at, mail_at)
        else:
            before = {**untouched[mine], "files": files}

        try:
            RUN[action](request, by, people.ctx)
        except (NotFound, PermissionDenied, InvalidTransition) as error:
            result = type(error).__name__
        else:
            result = "allowed"
        *row, last_event = _fingerprint(request)
        unmoved = (tuple(row), last_event or 0, len(mail.outbox), _files()) == (
            quiet[mine],
            at,
            mail_at,
            files,
        )
        if outcome != "allowed" and unmoved:
            observed[action, actor] = (result, before)
        else:
            observed[action, actor] = (result, _trace(request, at, mail_at))

        if outcome == "allowed":
            effect = _effect(action, before, by, request, people.ctx)
            expected[action, actor] = ("allowed", effect)
        else:
            expected[action, actor] = (outcome, before)

    assert observed == expected


# =========================================================================================
# Callers who are not signed-in, active people
# =========================================================================================
REVIEW_ACTIONS = ("start_review", "return", "reject", "approve", "sign_off", "assign")


def _attempts(request: AccessRequest, by: Any, actions: Any, ctx: Ctx) -> dict[str, Any]:
    """Each action by ``by``: the error it raised and whether it left the request as it
    was (status, reviews, comments, attachments, files, audit events and mail)."""
    outcome = {}
    for action in actions:
        at, mail_at = mark(), len(mail.outbox)
        before = _trace(request, at, mail_at)
        try:
            RUN[action](request, by, ctx)
        except Exception as error:  # noqa: BLE001  (the table shows which error)
            outcome[action] = (type(error).__name__, _trace(request, at, mail_at) == before)
        else:
            outcome[action] = ("allowed", False)
    return outcome


def _in_review(organisation: Organisation, applicant: User) -> AccessRequest:
    filled = answers(
        organisation, [(applicant, "principal_investigator", True)], legal=PUBLIC_INTEREST
    )
    return drive_to(drafted(applicant, organisation, filled), S.IN_REVIEW, by=panel())


def test_an_anonymous_caller_finds_no_request_to_act_on(organisation, applicant):
    request = _in_review(organisation, applicant)
    actions = [a for a in RUN if a not in REVIEW_ACTIONS]

    outcome = _attempts(request, AnonymousUser(), actions, Ctx(ig_officer()))

    assert outcome == dict.fromkeys(actions, ("NotFound", True))


def test_an_anonymous_caller_finds_no_request_to_review(organisation, applicant):
    request = _in_review(organisation, applicant)

    outcome = _attempts(request, AnonymousUser(), REVIEW_ACTIONS, Ctx(ig_officer()))

    assert outcome == dict.fromkeys(REVIEW_ACTIONS, ("NotFound", True))


def test_a_suspended_applicant_finds_their_request_no_more(organisation, applicant):
    filled = answers(organisation, [(applicant, "principal_investigator", True)])
    draft = drafted(applicant, organisation, filled)
    submitted = services.submit(
        request=drafted(applicant, organisation, filled), by=applicant, today=TODAY
    )
    identity.suspend_account(user=applicant, by=scenarios.administrator(), reason="left")
    suspended, ctx = User.objects.get(pk=applicant.pk), Ctx(ig_officer())
    mine = sorted(a for a, (_, who) in RULES.items() if who & APPLICANTS)

    outcome = _attempts(draft, suspended, [a for a in mine if a != "add_comment"], ctx)
    outcome |= _attempts(submitted, suspended, ["add_comment"], ctx)

    assert outcome == dict.fromkeys(mine, ("NotFound", True))


def test_a_draft_withdrawn_before_submission_stays_the_applicants_alone(organisation, applicant):
    filled = answers(organisation, [(applicant, "principal_investigator", True)])
    request = services.withdraw(request=drafted(applicant, organisation, filled), by=applicant)
    overseers = {"ig_officer": ig_officer(), "caldicott_guardian": caldicott_guardian()}
    found = {}

    for who, user in overseers.items():
        try:
            found[who] = services.get_request(user, request.pk)
        except NotFound:
            found[who] = "NotFound"

    assert found == dict.fromkeys(overseers, "NotFound")
    assert services.get_request(applicant, request.pk) == request


def test_the_system_user_does_not_act_on_requests(organisation, applicant):
    request = drive_to(
        drafted(
            applicant,
            organisation,
            answers(organisation, [(applicant, "principal_investigator", True)]),
        ),
        S.SUBMITTED,
        by=panel(),
    )
    system, ctx = get_system_user(), Ctx(ig_officer())
    at = mark()

    for action in ("start_review", "withdraw", "add_comment", "assign"):
        with pytest.raises(NotFound):
            RUN[action](request, system, ctx)

    assert fresh(request).status == S.SUBMITTED
    assert events_since(at) == []
