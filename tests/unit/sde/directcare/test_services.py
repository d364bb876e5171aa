"""The direct care workflow's rules (sde.directcare.services, the policy's re-identification
section and sde.directcare.selectors): every state against every action, every person
against every action, and the separation of duties issue 7 asks for. A refused action
changes nothing: no status, no decision, no audit event, no file."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from sde.audit.models import AuditEvent
from sde.data.files import data_root
from sde.directcare import selectors, services
from sde.directcare.models import ReidentificationDecision, ReidentificationRequest
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects import services as projects
from tests import scenarios

pytestmark = pytest.mark.django_db
S = ReidentificationRequest.Status
REASON = "Invite these patients for an annual physical health check."
OK = "allowed"


def _clinician_at(practice) -> User:
    person = scenarios.person(Role.CLINICIAN)
    identity.add_membership(user=person, organisation=practice, by=scenarios.administrator())
    return person


@pytest.fixture
def caldicott2(world) -> User:
    """A second Caldicott Guardian, so an action can come from someone who has not signed."""
    return scenarios.person(Role.CALDICOTT_GUARDIAN)


@pytest.fixture
def same_practice_clinician(practice) -> User:
    """A clinician at the requester's practice who did not make the request."""
    return _clinician_at(practice)


@pytest.fixture
def administrator(world) -> User:
    return scenarios.person(Role.ADMINISTRATOR)


@pytest.fixture
def output_checker(world) -> User:
    return scenarios.person(Role.OUTPUT_CHECKER)


@pytest.fixture
def data_custodian(world) -> User:
    return scenarios.person(Role.DATA_CUSTODIAN)


@pytest.fixture
def suspended_clinician(practice) -> User:
    person = _clinician_at(practice)
    identity.suspend_account(user=person, by=scenarios.administrator(), reason="Left the NHS.")
    return User.objects.get(pk=person.pk)


@pytest.fixture
def cast(cohort, practice, clinician, ig, ig2, caldicott, caldicott2) -> SimpleNamespace:
    return SimpleNamespace(
        cohort=cohort,
        practice=practice,
        clinician=clinician,
        ig=ig,
        ig2=ig2,
        caldicott=caldicott,
        caldicott2=caldicott2,
    )


def _request(c: SimpleNamespace, by: User | None = None) -> ReidentificationRequest:
    return services.request_reidentification(
        cohort=c.cohort, practice=c.practice, reason=REASON, by=by or c.clinician
    )


def _files() -> list[str]:
    folder = data_root() / "direct-care"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _snapshot() -> dict[str, Any]:
    """Everything an action could change."""
    return {
        "requests": list(
            ReidentificationRequest.objects.order_by("pk").values_list(
                "pk", "status", "status_changed_at", "path"
            )
        ),
        "decisions": list(ReidentificationDecision.objects.values_list("pk", flat=True)),
        "events": AuditEvent.objects.count(),
        "files": _files(),
    }


def _new_events(before: int) -> list[str]:
    return list(
        AuditEvent.objects.order_by("sequence").values_list("event_type", flat=True)[before:]
    )


def _status(request: ReidentificationRequest) -> str:
    return ReidentificationRequest.objects.get(pk=request.pk).status


# --- Building each state through the services ------------------------------------------
def _submitted(c: SimpleNamespace) -> ReidentificationRequest:
    return _request(c)


def _partially_approved(c: SimpleNamespace) -> ReidentificationRequest:
    return services.sign_off(request=_request(c), by=c.ig, role="ig", outcome="approve")


def _approved(c: SimpleNamespace) -> ReidentificationRequest:
    request = _partially_approved(c)
    return services.sign_off(request=request, by=c.caldicott, role="caldicott", outcome="approve")


def _ready(c: SimpleNamespace) -> ReidentificationRequest:
    return services.perform(request=_approved(c))


def _refused(c: SimpleNamespace) -> ReidentificationRequest:
    return services.sign_off(
        request=_request(c),
        by=c.ig,
        role="ig",
        outcome="refuse",
        comment="This is not direct care.",
    )


def _withdrawn(c: SimpleNamespace) -> ReidentificationRequest:
    return services.withdraw(request=_request(c), by=c.clinician)


def _failed(c: SimpleNamespace) -> ReidentificationRequest:
    request = _approved(c)
    (data_root() / c.cohort.path).unlink()  # the cohort's file is gone
    return services.perform(request=request)


def _expired(c: SimpleNamespace) -> ReidentificationRequest:
    ready = _ready(c)
    services.sweep(now=ready.expires_at + timezone.timedelta(seconds=1))
    return ReidentificationRequest.objects.get(pk=ready.pk)


BUILD: dict[str, Callable[[SimpleNamespace], ReidentificationRequest]] = {
    S.SUBMITTED: _submitted, S.PARTIALLY_APPROVED: _partially_approved, S.APPROVED: _approved,
    S.READY: _ready, S.REFUSED: _refused, S.WITHDRAWN: _withdrawn, S.FAILED: _failed,
    S.EXPIRED: _expired,
}  # fmt: skip


# --- The transition matrix -------------------------------------------------------------
# The actors never signed the state's request: ``ig`` and ``caldicott`` built the states,
# ``ig2`` and ``caldicott2`` act, so each outcome is the state's, not a conflict's.
ACTIONS: dict[str, Callable[[ReidentificationRequest, SimpleNamespace], Any]] = {
    "approve_ig": lambda r, c: services.sign_off(request=r, by=c.ig2, role="ig",
                                                 outcome="approve"),
    "approve_caldicott": lambda r, c: services.sign_off(request=r, by=c.caldicott2,
                                                        role="caldicott", outcome="approve"),
    "refuse": lambda r, c: services.sign_off(request=r, by=c.caldicott2, role="caldicott",
                                             outcome="refuse", comment="Not for direct care."),
    "withdraw": lambda r, c: services.withdraw(request=r, by=c.clinician),
    "view_list": lambda r, c: services.view_list(request=r, by=c.clinician),
    "download_list": lambda r, c: services.download_list(request=r, by=c.clinician),
    "perform": lambda r, c: services.perform(request=r),
}  # fmt: skip
EVENT = {
    "approve_ig": "directcare.reid_approved", "approve_caldicott": "directcare.reid_approved",
    "refuse": "directcare.reid_rejected", "withdraw": "directcare.reid_withdrawn",
    "view_list": "directcare.list_viewed", "download_list": "directcare.list_downloaded",
    "perform": "directcare.reid_performed",
}  # fmt: skip
IT, NF, PD = InvalidTransition, NotFound, PermissionDenied
CLOSED = {
    "approve_ig": IT,
    "approve_caldicott": IT,
    "refuse": IT,
    "withdraw": IT,
    "view_list": NF,
    "download_list": NF,
}
MATRIX: dict[str, dict[str, Any]] = {
    S.SUBMITTED: {"approve_ig": S.PARTIALLY_APPROVED, "approve_caldicott": S.PARTIALLY_APPROVED,
                  "refuse": S.REFUSED, "withdraw": S.WITHDRAWN, "view_list": NF,
                  "download_list": NF, "perform": S.SUBMITTED},
    # ig approved: a second IG officer cannot give the IG sign-off again.
    S.PARTIALLY_APPROVED: {"approve_ig": IT, "approve_caldicott": S.APPROVED,
                           "refuse": S.REFUSED, "withdraw": S.WITHDRAWN, "view_list": NF,
                           "download_list": NF, "perform": S.PARTIALLY_APPROVED},
    S.APPROVED: {**CLOSED, "perform": S.READY},
    S.READY: {**CLOSED, "view_list": S.READY, "download_list": S.READY, "perform": S.READY},
    S.REFUSED: {**CLOSED, "perform": S.REFUSED},
    S.WITHDRAWN: {**CLOSED, "perform": S.WITHDRAWN},
    S.FAILED: {**CLOSED, "perform": S.FAILED},
    S.EXPIRED: {**CLOSED, "perform": S.EXPIRED},
}  # fmt: skip
CASES = [(state, action, MATRIX[state][action]) for state in MATRIX for action in ACTIONS]


def test_the_matrix_covers_every_status_and_action():
    assert set(MATRIX) == set(BUILD) == set(S.values)
    assert all(set(row) == set(ACTIONS) for row in MATRIX.values())


@pytest.mark.parametrize(
    ("state", "action", "expected"), CASES, ids=[f"{s}-{a}" for s, a, _ in CASES]
)
def test_transition_matrix(cast, state, action, expected):
    request = BUILD[state](cast)
    assert request.status == state
    before = _snapshot()

    if isinstance(expected, type):
        with pytest.raises(expected):
            ACTIONS[action](request, cast)
        assert _snapshot() == before
        return

    result = ACTIONS[action](request, cast)

    assert _status(request) == expected
    changed = expected != state or action in ("view_list", "download_list")
    assert _new_events(before["events"]) == ([EVENT[action]] if changed else [])
    if action == "view_list":
        assert len(result) == request.people > 0
    elif action == "download_list":
        assert result.decode().count("\n") == request.people + 1  # a header and a row each
    else:
        assert result.status == expected
    if not changed:  # a no-op: the request is as it was, to the second and the file
        assert _snapshot() == before


def test_the_transition_table_is_the_one_the_matrix_walks():
    table = {
        name: (sorted(step.sources), step.target) for name, step in services.TRANSITIONS.items()
    }
    assert table == {
        "approve": ([S.SUBMITTED], S.PARTIALLY_APPROVED),
        "second_approval": ([S.PARTIALLY_APPROVED], S.APPROVED),
        "refuse": (sorted([S.SUBMITTED, S.PARTIALLY_APPROVED]), S.REFUSED),
        "withdraw": (sorted([S.SUBMITTED, S.PARTIALLY_APPROVED]), S.WITHDRAWN),
        "perform": ([S.APPROVED], S.READY),
        "fail": ([S.APPROVED], S.FAILED),
        "expire": ([S.READY], S.EXPIRED),
    }


# --- The people matrix -----------------------------------------------------------------
PEOPLE_ACTIONS: dict[str, Callable[[User, SimpleNamespace], Any]] = {
    "request": lambda u, c: _request(c, by=u),
    "sign_ig": lambda u, c: services.sign_off(request=c.submitted, by=u, role="ig",
                                              outcome="approve"),
    "sign_caldicott": lambda u, c: services.sign_off(request=c.submitted, by=u,
                                                     role="caldicott", outcome="approve"),
    "withdraw": lambda u, c: services.withdraw(request=c.submitted, by=u),
    "view_list": lambda u, c: services.view_list(request=c.ready, by=u),
    "download_list": lambda u, c: services.download_list(request=c.ready, by=u),
}  # fmt: skip
NOBODY = dict.fromkeys(PEOPLE_ACTIONS, NF)
PEOPLE: dict[str, dict[str, Any]] = {
    "clinician": {"request": OK, "sign_ig": PD, "sign_caldicott": PD, "withdraw": OK,
                  "view_list": OK, "download_list": OK},
    # A clinician at Y99002 asking about Y99001, and a colleague at Y99001 who did not ask.
    "other_clinician": {**NOBODY, "request": PD},
    "same_practice_clinician": {**NOBODY, "request": OK},
    "ig": {**NOBODY, "sign_ig": OK, "sign_caldicott": PD, "withdraw": PD},
    "ig2": {**NOBODY, "sign_ig": OK, "sign_caldicott": PD, "withdraw": PD},
    "caldicott": {**NOBODY, "sign_ig": PD, "sign_caldicott": OK, "withdraw": PD},
    "member": NOBODY,
    "administrator": NOBODY,
    "output_checker": NOBODY,
    "data_custodian": NOBODY,
    "suspended_clinician": NOBODY,
}  # fmt: skip
PEOPLE_CASES = [(who, action, PEOPLE[who][action]) for who in PEOPLE for action in PEOPLE_ACTIONS]
ALLOWED_STATUS = {
    "request": S.SUBMITTED,
    "sign_ig": S.PARTIALLY_APPROVED,
    "sign_caldicott": S.PARTIALLY_APPROVED,
    "withdraw": S.WITHDRAWN,
    "view_list": S.READY,
    "download_list": S.READY,
}


@pytest.mark.parametrize(
    ("who", "action", "expected"), PEOPLE_CASES, ids=[f"{w}-{a}" for w, a, _ in PEOPLE_CASES]
)
def test_people_matrix(request, cast, who, action, expected):
    person = request.getfixturevalue(who)
    if action in ("view_list", "download_list"):
        cast.ready = _ready(cast)
    elif action != "request":
        cast.submitted = _request(cast)
    before = _snapshot()

    if expected is not OK:
        with pytest.raises(expected):
            PEOPLE_ACTIONS[action](person, cast)
        assert _snapshot() == before
        return

    result = PEOPLE_ACTIONS[action](person, cast)

    if action == "request":
        assert (result.requested_by, result.status) == (person, S.SUBMITTED)
    else:
        target = cast.ready if action in ("view_list", "download_list") else cast.submitted
        assert _status(target) == ALLOWED_STATUS[action]
    assert len(_new_events(before["events"])) == 1


def test_the_requester_suspended_after_the_list_is_made_cannot_obtain_it(cast):
    ready = _ready(cast)
    identity.suspend_account(
        user=cast.clinician, by=scenarios.administrator(), reason="Under investigation."
    )
    before = _snapshot()

    for obtain in (services.view_list, services.download_list):
        with pytest.raises(NotFound):
            obtain(request=ready, by=cast.clinician)
    assert _snapshot() == before


# --- Separation of duties (issue 7's acceptance tests) --------------------------------
@pytest.mark.parametrize("who", ["other_clinician", "member", "ig", "caldicott"])
def test_only_the_requesting_clinician_can_obtain_the_list(request, cast, who):
    ready = _ready(cast)
    before = _snapshot()

    for obtain in (services.view_list, services.download_list):
        with pytest.raises(NotFound):
            obtain(request=ready, by=request.getfixturevalue(who))
    assert _snapshot() == before
    assert len(services.view_list(request=ready, by=cast.clinician)) == ready.people


def test_one_approval_is_not_enough(cast):
    request = _partially_approved(cast)
    before = _snapshot()

    after = services.perform(request=request)

    assert after.status == S.PARTIALLY_APPROVED and after.path == ""
    with pytest.raises(NotFound):
        services.view_list(request=request, by=cast.clinician)
    assert _snapshot() == before and _files() == []


def test_the_second_approval_queues_the_list_after_commit_and_the_first_does_not(
    cast, sent, django_capture_on_commit_callbacks
):
    request = _request(cast)
    with django_capture_on_commit_callbacks(execute=True):
        services.sign_off(request=request, by=cast.ig, role="ig", outcome="approve")
    assert sent == []

    with django_capture_on_commit_callbacks(execute=True):
        services.sign_off(request=request, by=cast.caldicott, role="caldicott", outcome="approve")

    assert sent == [request.pk]


@pytest.mark.parametrize("first", ["ig", "caldicott"])
def test_one_person_holding_both_roles_cannot_give_both_approvals(cast, first):
    both = scenarios.person(Role.IG_OFFICER, Role.CALDICOTT_GUARDIAN)
    second = "caldicott" if first == "ig" else "ig"
    request = services.sign_off(request=_request(cast), by=both, role=first, outcome="approve")
    before = _snapshot()

    with pytest.raises(PermissionDenied, match="signed it off already"):
        services.sign_off(request=request, by=both, role=second, outcome="approve")

    assert _snapshot() == before and request.status == S.PARTIALLY_APPROVED


def test_one_person_holding_both_roles_cannot_refuse_after_approving(cast):
    both = scenarios.person(Role.IG_OFFICER, Role.CALDICOTT_GUARDIAN)
    request = services.sign_off(request=_request(cast), by=both, role="ig", outcome="approve")
    before = _snapshot()

    with pytest.raises(PermissionDenied):
        services.sign_off(
            request=request, by=both, role="caldicott", outcome="refuse", comment="Changed my mind."
        )

    assert _snapshot() == before


def test_two_ig_officers_cannot_stand_in_for_the_caldicott_guardian(cast):
    request = services.sign_off(request=_request(cast), by=cast.ig, role="ig", outcome="approve")
    before = _snapshot()

    with pytest.raises(InvalidTransition, match="sign-off is in already"):
        services.sign_off(request=request, by=cast.ig2, role="ig", outcome="approve")
    with pytest.raises(PermissionDenied):  # nor sign as the Guardian without the role
        services.sign_off(request=request, by=cast.ig2, role="caldicott", outcome="approve")

    assert _snapshot() == before


@pytest.mark.parametrize(
    ("role", "sign_as"),
    [(Role.IG_OFFICER, "ig"), (Role.CALDICOTT_GUARDIAN, "caldicott")],
)
def test_the_requester_cannot_sign_off_even_holding_a_sign_off_role(cast, role, sign_as):
    requester = _clinician_at(cast.practice)
    identity.grant_role(user=requester, role=role, by=scenarios.administrator())
    request = _request(cast, by=requester)
    before = _snapshot()

    with pytest.raises(PermissionDenied, match="you made the request"):
        services.sign_off(request=request, by=requester, role=sign_as, outcome="approve")

    assert _snapshot() == before


@pytest.mark.parametrize(
    ("role", "sign_as"),
    [(Role.IG_OFFICER, "ig"), (Role.CALDICOTT_GUARDIAN, "caldicott")],
)
def test_a_member_of_the_cohorts_project_cannot_sign_off(cast, member, role, sign_as):
    identity.grant_role(user=member, role=role, by=scenarios.administrator())
    request = _request(cast)
    before = _snapshot()

    with pytest.raises(PermissionDenied, match="member of the project"):
        services.sign_off(request=request, by=member, role=sign_as, outcome="approve")

    assert _snapshot() == before


def test_a_former_member_of_the_cohorts_project_cannot_sign_off(cast, member):
    identity.grant_role(user=member, role=Role.CALDICOTT_GUARDIAN, by=scenarios.administrator())
    projects.remove_member(project=cast.cohort.project, user=member, by=cast.ig)
    request = _request(cast)
    before = _snapshot()

    with pytest.raises(PermissionDenied, match="member of the project"):
        services.sign_off(request=request, by=member, role="caldicott", outcome="approve")

    assert _snapshot() == before


def test_a_research_projects_cohort_is_invisible_to_the_clinician(cast, research_cohort):
    before = _snapshot()

    with pytest.raises(NotFound):
        services.request_reidentification(
            cohort=research_cohort, practice=cast.practice, reason=REASON, by=cast.clinician
        )

    assert _snapshot() == before


@pytest.mark.parametrize("practice", ["other_practice", None])
def test_a_clinician_cannot_ask_about_a_practice_they_do_not_belong_to(request, cast, practice):
    chosen = request.getfixturevalue(practice) if practice else None
    before = _snapshot()

    with pytest.raises(PermissionDenied, match="practice you work at"):
        services.request_reidentification(
            cohort=cast.cohort, practice=chosen, reason=REASON, by=cast.clinician
        )

    assert _snapshot() == before


def test_a_clinician_cannot_ask_about_an_organisation_that_is_not_a_gp_practice(cast):
    icb = scenarios.organisation(Organisation.Kind.ICB)
    identity.add_membership(user=cast.clinician, organisation=icb, by=scenarios.administrator())
    before = _snapshot()

    with pytest.raises(PermissionDenied, match="practice you work at"):
        services.request_reidentification(
            cohort=cast.cohort, practice=icb, reason=REASON, by=cast.clinician
        )

    assert _snapshot() == before


def test_a_clinician_removed_from_the_practice_cannot_ask_about_it(cast):
    membership = cast.clinician.memberships.get(organisation=cast.practice)
    identity.remove_membership(membership=membership, by=scenarios.administrator())
    before = _snapshot()

    with pytest.raises(PermissionDenied):
        _request(cast)

    assert _snapshot() == before


def test_a_cohort_of_a_suspended_project_is_invisible(cast):
    projects.suspend_project(project=cast.cohort.project, reason="Audit.", by=cast.ig)
    before = _snapshot()

    with pytest.raises(NotFound):
        _request(cast)

    assert _snapshot() == before


@pytest.mark.parametrize("comment", ["", "   \n "])
def test_a_refusal_needs_a_comment(cast, comment):
    request = _request(cast)
    before = _snapshot()

    with pytest.raises(ValidationError) as error:
        services.sign_off(request=request, by=cast.ig, role="ig", outcome="refuse", comment=comment)

    assert "comment" in error.value.errors
    assert _snapshot() == before


def test_a_refusal_records_the_comment_and_ends_the_request(cast):
    request = _partially_approved(cast)

    refused = services.sign_off(
        request=request,
        by=cast.caldicott,
        role="caldicott",
        outcome="refuse",
        comment="  Not direct care.  ",
    )

    assert refused.status == S.REFUSED
    decisions = list(refused.decisions.values_list("role", "outcome", "comment", "decided_by"))
    assert decisions == [
        ("ig", "approve", "", cast.ig.pk),
        ("caldicott", "refuse", "Not direct care.", cast.caldicott.pk),
    ]


@pytest.mark.parametrize(
    ("outcome", "role", "error"),
    [("maybe", "ig", ValidationError), ("", "ig", ValidationError),
     ("approve", "admin", PermissionDenied), ("approve", "", PermissionDenied)],
)  # fmt: skip
def test_an_unknown_outcome_or_role_is_refused(cast, outcome, role, error):
    request = _request(cast)
    before = _snapshot()

    with pytest.raises(error):
        services.sign_off(request=request, by=cast.ig, role=role, outcome=outcome)

    assert _snapshot() == before


@pytest.mark.parametrize(
    ("reason", "accepted"),
    [("", False), (None, False), ("x" * 19, False), ("  " + "x" * 19 + "\n  ", False),
     ("x" * 20, True), ("  " + "x" * 20 + "  ", True)],
    ids=["empty", "none", "19", "19-padded", "20", "20-padded"],
)  # fmt: skip
def test_the_reason_needs_at_least_twenty_characters(cast, reason, accepted):
    before = _snapshot()

    if not accepted:
        with pytest.raises(ValidationError) as error:
            services.request_reidentification(
                cohort=cast.cohort, practice=cast.practice, reason=reason, by=cast.clinician
            )
        assert "reason" in error.value.errors
        assert _snapshot() == before
        return

    made = services.request_reidentification(
        cohort=cast.cohort, practice=cast.practice, reason=reason, by=cast.clinician
    )
    assert made.reason == "x" * 20


def test_a_request_records_the_practice_the_fields_and_how_long_the_list_is_kept(cast):
    before = AuditEvent.objects.count()

    made = _request(cast)

    assert (made.practice, made.practice_ods, made.project) == (
        cast.practice,
        "Y99001",
        cast.cohort.project,
    )
    assert made.valid_days == settings.SDE_REID_LIST_DAYS
    assert made.fields == ["birth_month", "sex"]
    event = AuditEvent.objects.order_by("sequence").last()
    assert _new_events(before) == ["directcare.reid_requested"]
    assert event.actor_id == cast.clinician.pk and event.project_id == cast.cohort.project_id
    assert event.data == {
        "request_id": made.pk,
        "cohort_id": cast.cohort.pk,
        "practice": "Y99001",
        "status": "submitted",
    }
    assert REASON not in str(event.data)


# --- Selectors -------------------------------------------------------------------------
def test_cohorts_for_a_clinician_are_the_planning_cohorts_and_not_the_research_ones(
    cast, research_cohort, member, ig
):
    assert list(selectors.cohorts_for(cast.clinician)) == [cast.cohort]
    assert selectors.cohort_for(cast.clinician, cast.cohort.pk) == cast.cohort
    with pytest.raises(NotFound):
        selectors.cohort_for(cast.clinician, research_cohort.pk)
    # Only clinicians ask: the project's own member and IG see none here.
    assert not selectors.cohorts_for(member).exists()
    assert not selectors.cohorts_for(ig).exists()


@pytest.fixture
def two_requests(cast, other_practice, other_clinician) -> SimpleNamespace:
    mine = _request(cast)
    theirs = services.request_reidentification(
        cohort=cast.cohort, practice=other_practice, reason=REASON, by=other_clinician
    )
    return SimpleNamespace(mine=mine, theirs=theirs)


VISIBLE = {
    "clinician": {"mine"}, "other_clinician": {"theirs"}, "same_practice_clinician": set(),
    "ig": {"mine", "theirs"}, "ig2": {"mine", "theirs"}, "caldicott": {"mine", "theirs"},
    "member": set(), "administrator": set(), "output_checker": set(), "data_custodian": set(),
    "suspended_clinician": set(),
}  # fmt: skip


@pytest.mark.parametrize(("who", "visible"), VISIBLE.items(), ids=list(VISIBLE))
def test_requests_for_each_person(request, two_requests, who, visible):
    person = request.getfixturevalue(who)
    expected = {getattr(two_requests, name).pk for name in visible}

    assert set(selectors.requests_for(person).values_list("pk", flat=True)) == expected
    for name in ("mine", "theirs"):
        pk = getattr(two_requests, name).pk
        if name in visible:
            assert selectors.request_for(person, pk).pk == pk
        else:
            with pytest.raises(NotFound):
                selectors.request_for(person, pk)


def test_awaiting_sign_off_excludes_what_the_person_signed_and_closed_requests(cast, two_requests):
    both = lambda user: list(selectors.awaiting_sign_off(user).values_list("pk", flat=True))  # noqa: E731
    mine, theirs = two_requests.mine.pk, two_requests.theirs.pk
    assert both(cast.ig) == both(cast.caldicott) == [mine, theirs]  # oldest first

    services.sign_off(request=two_requests.mine, by=cast.ig, role="ig", outcome="approve")

    assert both(cast.ig) == [theirs]
    assert both(cast.caldicott) == [mine, theirs]

    services.sign_off(
        request=two_requests.theirs,
        by=cast.caldicott,
        role="caldicott",
        outcome="refuse",
        comment="No.",
    )

    assert both(cast.caldicott) == [mine]
    assert both(cast.ig) == []
    assert both(cast.clinician) == []


def test_awaiting_sign_off_excludes_the_persons_own_requests(cast):
    requester = _clinician_at(cast.practice)
    identity.grant_role(user=requester, role=Role.IG_OFFICER, by=scenarios.administrator())
    own = _request(cast, by=requester)
    other = _request(cast)

    assert list(selectors.awaiting_sign_off(requester)) == [other]
    assert set(selectors.awaiting_sign_off(cast.ig)) == {own, other}


def test_awaiting_sign_off_excludes_a_request_whose_sign_off_for_your_role_is_in(
    cast, two_requests
):
    services.sign_off(request=two_requests.mine, by=cast.ig, role="ig", outcome="approve")
    with pytest.raises(InvalidTransition):
        services.sign_off(request=two_requests.mine, by=cast.ig2, role="ig", outcome="approve")

    assert list(selectors.awaiting_sign_off(cast.ig2)) == [two_requests.theirs]


@pytest.mark.parametrize("role", [Role.IG_OFFICER, Role.CALDICOTT_GUARDIAN])
def test_awaiting_sign_off_excludes_requests_about_the_persons_own_project(cast, member, role):
    identity.grant_role(user=member, role=role, by=scenarios.administrator())
    request = _request(cast)

    assert list(selectors.awaiting_sign_off(member)) == []
    assert request in selectors.requests_for(member)  # they may see it, not sign it
