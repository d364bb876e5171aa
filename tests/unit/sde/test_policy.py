"""The permission policy, as DESIGN.md section 2 states it: role x capability and
role x action matrices, separation of duties, and "denied means invisible"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import product
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from sde import policy
from sde.audit.events import EventType
from sde.audit.services import get_system_user
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.governance import governed_writes
from sde.identity import authentication, services
from sde.identity.models import Accreditation, Organisation, RoleAssignment, User
from sde.identity.roles import Capability, Role, capabilities_of
from sde.identity.selectors import current_roles, is_accredited
from tests import scenarios
from tests.events import mark as _mark
from tests.events import types_since as _types_since

pytestmark = pytest.mark.django_db

R, C = Role, Capability

# DESIGN.md section 2, "May" column, as capabilities. Written out here (not read from
# sde.identity.roles) so that a change to the roles table has to change the design too.
DESIGNED_CAPABILITIES: dict[Role, set[Capability]] = {
    R.RESEARCHER: {C.APPLY_FOR_ACCESS},
    R.IG_OFFICER: {
        C.REVIEW_ACCESS_REQUESTS,
        C.MANAGE_OPT_OUTS,
        C.READ_AUDIT_LOG,
        C.SUSPEND_PROJECTS,
        C.RECORD_ACCREDITATIONS,
    },
    R.CALDICOTT_GUARDIAN: {C.SIGN_OFF_REIDENTIFICATION, C.SIGN_OFF_PUBLIC_INTEREST},
    R.OUTPUT_CHECKER: {C.CHECK_OUTPUTS},
    R.DATA_CUSTODIAN: {C.MANAGE_DATASETS, C.MANAGE_KEYS},
    R.CLINICIAN: {C.REQUEST_REIDENTIFICATION},
    R.ADMINISTRATOR: {
        C.MANAGE_ACCOUNTS,
        C.MANAGE_ROLES,
        C.MANAGE_ORGANISATIONS,
        C.RECORD_ACCREDITATIONS,
    },
}

# Every single role, plus the combination the design singles out: an Administrator who
# is also an IG officer.
ACTORS: dict[str, tuple[Role, ...]] = {role.value: (role,) for role in Role} | {
    "administrator+ig_officer": (R.ADMINISTRATOR, R.IG_OFFICER)
}
ACTOR_IDS = list(ACTORS)
ACTOR_ROLES = list(ACTORS.values())
PEOPLE_VIEWERS = {R.ADMINISTRATOR, R.IG_OFFICER}  # who may list and open other people


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Nobody here signs in with a password; argon2 would only slow the matrices down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


# --- role x capability -----------------------------------------------------------------
def test_the_design_table_covers_every_role():
    assert set(DESIGNED_CAPABILITIES) == set(Role)


@pytest.mark.parametrize(
    ("role", "capability"),
    list(product(Role, Capability)),
    ids=[f"{r.value}-{c.value}".replace("_", "-") for r, c in product(Role, Capability)],
)
def test_a_role_carries_exactly_the_capabilities_of_the_design(role, capability):
    assert (capability in capabilities_of({role})) is (capability in DESIGNED_CAPABILITIES[role])


@pytest.mark.parametrize("role", Role)
def test_has_capability_follows_the_roles_a_person_holds(role):
    person = scenarios.person(role)

    held = {capability for capability in Capability if policy.has_capability(person, capability)}

    assert held == DESIGNED_CAPABILITIES[role]


def test_only_ig_officers_read_audit_events_and_no_data_custodian_reviews_requests():
    # The design's "may never" column, stated directly.
    readers = {role for role in Role if C.READ_AUDIT_LOG in capabilities_of({role})}
    reviewers = {role for role in Role if C.REVIEW_ACCESS_REQUESTS in capabilities_of({role})}

    assert readers == {R.IG_OFFICER}
    assert R.DATA_CUSTODIAN not in reviewers
    assert R.ADMINISTRATOR not in reviewers


def test_a_suspended_person_has_no_capabilities():
    person = scenarios.person(R.ADMINISTRATOR, R.IG_OFFICER)
    services.suspend_account(user=person, by=scenarios.administrator(), reason="left")

    assert not [c for c in Capability if policy.has_capability(_fresh(person), c)]


def test_the_system_user_has_no_capabilities():
    system = get_system_user()

    assert not [c for c in Capability if policy.has_capability(system, c)]


def test_a_removed_role_no_longer_grants_its_capabilities():
    person = scenarios.person(R.IG_OFFICER)
    assert policy.has_capability(person, C.READ_AUDIT_LOG)

    services.remove_role(user=person, role=R.IG_OFFICER, by=scenarios.administrator())

    assert not policy.has_capability(person, C.READ_AUDIT_LOG)
    assert not policy.has_capability(_fresh(person), C.READ_AUDIT_LOG)


# --- role x action, through the services -----------------------------------------------
@dataclass(frozen=True)
class Action:
    act: Callable[[User, User, Any], object]
    allowed: frozenset[Role]
    event: EventType | None
    arrange: Callable[[User], Any] = field(default=lambda target: None)


def _suspended(target: User) -> None:
    services.suspend_account(user=target, by=scenarios.administrator(), reason="left")


def _locked(target: User) -> None:
    User.objects.filter(pk=target.pk).update(
        locked_until=timezone.now() + timedelta(minutes=5), failed_login_count=5
    )


def _an_organisation(target: User) -> Organisation:
    return scenarios.organisation()


def _accredit(actor: User, target: User, _: Any) -> object:
    return services.record_accreditation(
        user=target,
        kind=Accreditation.Kind.DATA_SECURITY,
        issued_on=date(2025, 1, 1),
        expires_on=date(2026, 1, 1),
        by=actor,
    )


def _create_account(actor: User, target: User, _: Any) -> object:
    return services.create_account(
        username=f"new-{target.username}",
        email="new@example.invalid",
        first_name="New",
        last_name="Person",
        password="a sturdy passphrase 2025",
        by=actor,
    )


ADMIN_ONLY = frozenset({R.ADMINISTRATOR})
ADMIN_OR_IG = frozenset({R.ADMINISTRATOR, R.IG_OFFICER})
ACTIONS: dict[str, Action] = {
    "grant_role": Action(
        lambda actor, target, _: services.grant_role(user=target, role=R.OUTPUT_CHECKER, by=actor),
        ADMIN_ONLY,
        EventType.ROLE_GRANTED,
    ),
    "remove_role": Action(
        lambda actor, target, _: services.remove_role(user=target, role=R.RESEARCHER, by=actor),
        ADMIN_ONLY,
        EventType.ROLE_REMOVED,
    ),
    "record_accreditation": Action(_accredit, ADMIN_OR_IG, EventType.ACCREDITATION_RECORDED),
    "suspend_account": Action(
        lambda actor, target, _: services.suspend_account(user=target, by=actor, reason="x"),
        ADMIN_OR_IG,
        EventType.ACCOUNT_SUSPENDED,
    ),
    "reinstate_account": Action(
        lambda actor, target, _: services.reinstate_account(user=target, by=actor),
        ADMIN_OR_IG,
        EventType.ACCOUNT_REINSTATED,
        _suspended,
    ),
    "unlock_account": Action(
        lambda actor, target, _: services.unlock_account(user=target, by=actor),
        ADMIN_ONLY,
        EventType.ACCOUNT_UNLOCKED,
        _locked,
    ),
    "reset_mfa": Action(
        lambda actor, target, _: authentication.reset_mfa(user=target, by=actor),
        ADMIN_ONLY,
        EventType.MFA_RESET,
    ),
    "create_account": Action(_create_account, ADMIN_ONLY, EventType.ACCOUNT_CREATED),
    "create_organisation": Action(
        lambda actor, target, _: services.create_organisation(
            name="New Trust", kind=Organisation.Kind.COMPANY, by=actor
        ),
        ADMIN_ONLY,
        EventType.ORGANISATION_CREATED,
    ),
    "add_membership": Action(
        lambda actor, target, organisation: services.add_membership(
            user=target, organisation=organisation, by=actor
        ),
        ADMIN_ONLY,
        EventType.MEMBERSHIP_ADDED,
        _an_organisation,
    ),
    "read-audit-events": Action(
        lambda actor, target, _: policy.check_read_audit_log(actor),
        frozenset({R.IG_OFFICER}),
        None,
    ),
}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("actor_roles", ACTOR_ROLES, ids=ACTOR_IDS)
def test_an_action_on_another_person_is_allowed_only_to_the_designed_roles(actor_roles, action):
    spec = ACTIONS[action]
    actor = scenarios.person(*actor_roles)
    target = scenarios.person(R.RESEARCHER)
    context = spec.arrange(target)
    mark = _mark()

    if set(actor_roles) & spec.allowed:
        spec.act(actor, target, context)
        assert _types_since(mark) == ([spec.event] if spec.event else [])
    else:
        with pytest.raises(PermissionDenied):
            spec.act(actor, target, context)
        assert _types_since(mark) == []  # a refusal changes nothing


SELF_ACTIONS = [
    "grant_role",
    "remove_role",
    "record_accreditation",
    "suspend_account",
    "unlock_account",
    "reset_mfa",
    "add_membership",
]


@pytest.mark.parametrize("action", SELF_ACTIONS)
def test_nobody_does_it_to_themselves_whatever_roles_they_hold(action):
    spec = ACTIONS[action]
    actor = scenarios.person(R.ADMINISTRATOR, R.IG_OFFICER, R.RESEARCHER)
    context = spec.arrange(actor)
    mark = _mark()

    with pytest.raises(PermissionDenied):
        spec.act(actor, actor, context)

    assert _types_since(mark) == []


def test_the_system_user_is_never_the_target_of_a_role_grant():
    admin = scenarios.person(R.ADMINISTRATOR)

    with pytest.raises(NotFound):
        services.grant_role(user=get_system_user(), role=R.ADMINISTRATOR, by=admin)


# --- granting roles: pages, API and the database agree ----------------------------------
def test_an_administrator_cannot_grant_themselves_a_role_on_the_page_or_the_api(client_for):
    admin = scenarios.person(R.ADMINISTRATOR)
    client = client_for(admin)

    page = client.post(reverse("person-grant-role", args=[admin.pk]), {"role": "ig_officer"})
    api = client.post(
        reverse("api-person-roles", args=[admin.pk]), {"role": "ig_officer"}, "application/json"
    )

    assert page.status_code == 403
    assert api.status_code == 403
    assert current_roles(_fresh(admin)) == {R.ADMINISTRATOR}


def test_an_administrator_cannot_remove_their_own_role_on_the_page_or_the_api(client_for):
    admin = scenarios.person(R.ADMINISTRATOR)
    client = client_for(admin)

    page = client.post(reverse("person-remove-role", args=[admin.pk, "administrator"]))
    api = client.delete(reverse("api-person-role", args=[admin.pk, "administrator"]))

    assert page.status_code == 403
    assert api.status_code == 403
    assert current_roles(_fresh(admin)) == {R.ADMINISTRATOR}


def test_the_database_refuses_a_self_granted_role_even_past_the_service():
    person = scenarios.person()

    with pytest.raises(IntegrityError), transaction.atomic(), governed_writes(RoleAssignment):
        RoleAssignment(
            user=person, role=R.ADMINISTRATOR, granted_by=person, granted_at=timezone.now()
        ).save()

    assert not RoleAssignment.objects.filter(user=person).exists()


def test_the_database_refuses_a_second_current_assignment_of_a_role():
    person = scenarios.person(R.RESEARCHER)
    admin = scenarios.administrator()

    with pytest.raises(IntegrityError), transaction.atomic(), governed_writes(RoleAssignment):
        RoleAssignment(
            user=person, role=R.RESEARCHER, granted_by=admin, granted_at=timezone.now()
        ).save()


def test_granting_a_role_already_held_is_an_invalid_transition_everywhere(client_for):
    admin = scenarios.person(R.ADMINISTRATOR)
    person = scenarios.person(R.RESEARCHER)
    client = client_for(admin)
    mark = _mark()

    with pytest.raises(InvalidTransition):
        services.grant_role(user=person, role=R.RESEARCHER, by=admin)
    page = client.post(reverse("person-grant-role", args=[person.pk]), {"role": "researcher"})
    api = client.post(
        reverse("api-person-roles", args=[person.pk]), {"role": "researcher"}, "application/json"
    )

    assert page.status_code == 409
    assert api.status_code == 409
    assert _types_since(mark) == []
    assert RoleAssignment.objects.filter(user=person, role=R.RESEARCHER).count() == 1


def test_removing_a_role_not_held_is_an_invalid_transition_everywhere(client_for):
    admin = scenarios.person(R.ADMINISTRATOR)
    person = scenarios.person(R.RESEARCHER)
    client = client_for(admin)
    mark = _mark()

    with pytest.raises(InvalidTransition):
        services.remove_role(user=person, role=R.CLINICIAN, by=admin)
    page = client.post(reverse("person-remove-role", args=[person.pk, "clinician"]))
    api = client.delete(reverse("api-person-role", args=[person.pk, "clinician"]))

    assert page.status_code == 409
    assert api.status_code == 409
    assert _types_since(mark) == []


def test_a_role_can_be_granted_again_after_it_was_removed():
    admin = scenarios.administrator()
    person = scenarios.person(R.OUTPUT_CHECKER)
    services.remove_role(user=person, role=R.OUTPUT_CHECKER, by=admin)

    services.grant_role(user=person, role=R.OUTPUT_CHECKER, by=admin)

    assert current_roles(_fresh(person)) == {R.OUTPUT_CHECKER}
    assert RoleAssignment.objects.filter(user=person, role=R.OUTPUT_CHECKER).count() == 2


# --- people pages: denied means invisible ----------------------------------------------
def _page_expectation(actor_roles: tuple[Role, ...], allowed: frozenset[Role]) -> int:
    if set(actor_roles) & allowed:
        return 302
    if set(actor_roles) & PEOPLE_VIEWERS:
        return 403  # they can see the person, not act on them
    return 404


@pytest.mark.parametrize("actor_roles", ACTOR_ROLES, ids=ACTOR_IDS)
def test_another_persons_page_is_visible_only_to_administrators_and_ig(client_for, actor_roles):
    actor = scenarios.person(*actor_roles)
    other = scenarios.person(R.RESEARCHER)
    client = client_for(actor)

    own = client.get(reverse("person-detail", args=[actor.pk]))
    theirs = client.get(reverse("person-detail", args=[other.pk]))

    assert own.status_code == 200
    assert theirs.status_code == (200 if set(actor_roles) & PEOPLE_VIEWERS else 404)


def test_a_researcher_sees_only_themselves_in_the_people_list(client_for):
    researcher = scenarios.person(R.RESEARCHER)
    other = scenarios.person(R.RESEARCHER)

    response = client_for(researcher).get(reverse("people-list"))

    listed = [person.pk for person in response.context["page_obj"]]
    assert response.status_code == 200
    assert listed == [researcher.pk]
    assert other.username.encode() not in response.content


@pytest.mark.parametrize("viewer", [R.ADMINISTRATOR, R.IG_OFFICER])
def test_administrators_and_ig_see_everyone_but_the_system_user(client_for, viewer):
    actor = scenarios.person(viewer)
    other = scenarios.person(R.RESEARCHER)
    services.suspend_account(user=other, by=scenarios.administrator(), reason="left")

    visible = set(policy.visible_people_for(actor).values_list("pk", flat=True))

    assert {actor.pk, other.pk} <= visible
    assert get_system_user().pk not in visible


@pytest.mark.parametrize("viewer", [AnonymousUser, get_system_user], ids=["anonymous", "system"])
def test_no_one_but_a_signed_in_person_sees_anyone(viewer):
    scenarios.person(R.RESEARCHER)
    scenarios.organisation()

    assert not policy.visible_people_for(viewer()).exists()
    assert not policy.visible_organisations_for(viewer()).exists()


def _role_data(_: User) -> dict[str, str]:
    return {"role": "output_checker"}


def _accreditation_data(_: User) -> dict[str, str]:
    return {"kind": "data_security", "issued_on": "2025-01-01", "expires_on": "2026-01-01"}


@dataclass(frozen=True)
class PageAction:
    url: Callable[[User], str]
    allowed: frozenset[Role]
    data: Callable[[User], dict[str, str]] = field(default=lambda target: {})
    arrange: Callable[[User], Any] = field(default=lambda target: None)


PAGE_ACTIONS: dict[str, PageAction] = {
    "grant-role": PageAction(
        lambda t: reverse("person-grant-role", args=[t.pk]), ADMIN_ONLY, _role_data
    ),
    "remove-role": PageAction(
        lambda t: reverse("person-remove-role", args=[t.pk, "researcher"]), ADMIN_ONLY
    ),
    "record-accreditation": PageAction(
        lambda t: reverse("person-record-accreditation", args=[t.pk]),
        ADMIN_OR_IG,
        _accreditation_data,
    ),
    "suspend": PageAction(
        lambda t: reverse("person-suspend", args=[t.pk]), ADMIN_OR_IG, lambda t: {"reason": "left"}
    ),
    "reinstate": PageAction(
        lambda t: reverse("person-reinstate", args=[t.pk]), ADMIN_OR_IG, arrange=_suspended
    ),
    "unlock": PageAction(
        lambda t: reverse("person-unlock", args=[t.pk]), ADMIN_ONLY, arrange=_locked
    ),
    "reset-mfa": PageAction(lambda t: reverse("person-reset-mfa", args=[t.pk]), ADMIN_ONLY),
}


@pytest.mark.parametrize("action", PAGE_ACTIONS)
@pytest.mark.parametrize("actor_roles", ACTOR_ROLES, ids=ACTOR_IDS)
def test_a_people_page_action_is_refused_as_403_or_404_by_visibility(
    client_for, actor_roles, action
):
    spec = PAGE_ACTIONS[action]
    actor = scenarios.person(*actor_roles)
    target = scenarios.person(R.RESEARCHER)
    spec.arrange(target)
    mark = _mark()

    response = client_for(actor).post(spec.url(target), spec.data(target))

    expected = _page_expectation(actor_roles, spec.allowed)
    assert response.status_code == expected
    if expected == 302:
        assert response.url == reverse("person-detail", args=[target.pk])
        assert len(_types_since(mark)) == 1
    else:
        assert _types_since(mark) == []


@pytest.mark.parametrize("action", PAGE_ACTIONS)
def test_a_people_page_action_on_yourself_is_403(client_for, action):
    spec = PAGE_ACTIONS[action]
    actor = scenarios.person(R.ADMINISTRATOR, R.IG_OFFICER, R.RESEARCHER)
    client = client_for(actor)
    if action == "unlock":
        _locked(actor)
    mark = _mark()

    response = client.post(spec.url(actor), spec.data(actor))

    assert response.status_code == 403
    assert _types_since(mark) == []
    assert current_roles(_fresh(actor)) == {R.ADMINISTRATOR, R.IG_OFFICER, R.RESEARCHER}
    assert _fresh(actor).is_active


def test_an_ig_officer_suspends_and_reinstates_a_person():
    ig = scenarios.person(R.IG_OFFICER)
    person = scenarios.person(R.RESEARCHER)
    mark = _mark()

    services.suspend_account(user=person, by=ig, reason="left the university")
    suspended = _fresh(person).is_active
    services.reinstate_account(user=person, by=ig)

    assert suspended is False
    assert _fresh(person).is_active
    assert _types_since(mark) == [EventType.ACCOUNT_SUSPENDED, EventType.ACCOUNT_REINSTATED]


@pytest.mark.parametrize(
    ("arrange", "act"),
    [
        (_suspended, lambda ig, p: services.suspend_account(user=p, by=ig, reason="again")),
        (lambda p: None, lambda ig, p: services.reinstate_account(user=p, by=ig)),
    ],
    ids=["suspend-suspended", "reinstate-active"],
)
def test_suspension_in_the_wrong_state_is_an_invalid_transition(arrange, act):
    ig = scenarios.person(R.IG_OFFICER)
    person = scenarios.person(R.RESEARCHER)
    arrange(person)

    with pytest.raises(InvalidTransition):
        act(ig, person)


def test_suspending_needs_a_reason():
    ig = scenarios.person(R.IG_OFFICER)
    person = scenarios.person(R.RESEARCHER)

    with pytest.raises(ValidationError):
        services.suspend_account(user=person, by=ig, reason="   ")

    assert _fresh(person).is_active


def test_suspension_revokes_the_persons_api_tokens():
    person = scenarios.person(R.RESEARCHER)
    token, _ = services.create_api_token(user=person, name="scripts", by=person)

    services.suspend_account(user=person, by=scenarios.administrator(), reason="left")

    token.refresh_from_db()
    assert token.revoked_at is not None


def test_nobody_creates_or_revokes_a_token_for_someone_else():
    admin = scenarios.person(R.ADMINISTRATOR)
    person = scenarios.person(R.RESEARCHER)
    token, _ = services.create_api_token(user=person, name="scripts", by=person)

    with pytest.raises(NotFound):
        services.create_api_token(user=person, name="mine", by=admin)
    with pytest.raises(NotFound):
        services.revoke_api_token(token=token, by=admin)

    token.refresh_from_db()
    assert token.revoked_at is None


# --- audit log: IG only ----------------------------------------------------------------
VIEWED, EXPORTED = EventType.AUDIT_LOG_VIEWED, EventType.AUDIT_LOG_EXPORTED
AUDIT_URLS: dict[str, tuple[Callable[[int], str], EventType]] = {
    "audit-log": (lambda seq: reverse("audit-log"), VIEWED),
    "audit-export": (lambda seq: reverse("audit-export"), EXPORTED),
    "audit-event": (lambda seq: reverse("audit-event", args=[seq]), VIEWED),
    "api-audit-events": (lambda seq: reverse("api-audit-events"), VIEWED),
    "api-audit-event": (lambda seq: reverse("api-audit-event", args=[seq]), VIEWED),
}


@pytest.mark.parametrize("url", AUDIT_URLS)
@pytest.mark.parametrize("actor_roles", ACTOR_ROLES, ids=ACTOR_IDS)
def test_only_ig_officers_read_audit_events(client_for, actor_roles, url):
    actor = scenarios.person(*actor_roles)
    mark = _mark()

    address, event = AUDIT_URLS[url]

    response = client_for(actor).get(address(mark))

    if R.IG_OFFICER in actor_roles:
        assert response.status_code == 200
        assert _types_since(mark) == [event]
    else:
        assert response.status_code == 403
        assert _types_since(mark) == []


# --- organisations ---------------------------------------------------------------------
@pytest.mark.parametrize("actor_roles", ACTOR_ROLES, ids=ACTOR_IDS)
def test_only_administrators_create_organisations_on_the_page(client_for, actor_roles):
    actor = scenarios.person(*actor_roles)

    response = client_for(actor).post(
        reverse("organisation-list"), {"name": "Northern Trust", "kind": "company"}
    )

    created = Organisation.objects.filter(name="Northern Trust").first()
    if R.ADMINISTRATOR in actor_roles:
        assert response.status_code == 302
        assert response.url == reverse("organisation-detail", args=[created.pk])
    else:
        assert response.status_code == 403
        assert created is None


@pytest.mark.parametrize("ods_code", [None, "", "   "])
def test_a_gp_practice_without_an_ods_code_is_refused(ods_code):
    admin = scenarios.person(R.ADMINISTRATOR)

    with pytest.raises(ValidationError) as refused:
        services.create_organisation(
            name="Riverside Surgery",
            kind=Organisation.Kind.GP_PRACTICE,
            ods_code=ods_code,
            by=admin,
        )

    assert "ods_code" in refused.value.errors
    assert not Organisation.objects.filter(name="Riverside Surgery").exists()


def test_the_page_shows_the_missing_ods_code_as_a_form_error(client_for):
    admin = scenarios.person(R.ADMINISTRATOR)

    response = client_for(admin).post(
        reverse("organisation-list"), {"name": "Riverside Surgery", "kind": "gp_practice"}
    )

    assert response.status_code == 400
    assert response.context["form"].errors["ods_code"] == ["A GP practice needs its ODS code."]
    assert not Organisation.objects.filter(name="Riverside Surgery").exists()


def test_the_database_refuses_a_gp_practice_without_an_ods_code_even_past_the_service():
    with pytest.raises(IntegrityError), transaction.atomic(), governed_writes(Organisation):
        Organisation(name="Riverside Surgery", kind=Organisation.Kind.GP_PRACTICE).save()


def test_an_ods_code_is_registered_once_only():
    admin = scenarios.person(R.ADMINISTRATOR)
    scenarios.organisation(Organisation.Kind.GP_PRACTICE, ods_code="Y12345")

    with pytest.raises(ValidationError):
        services.create_organisation(
            name="Copy", kind=Organisation.Kind.GP_PRACTICE, ods_code="y12345 ", by=admin
        )


def test_every_signed_in_person_reads_the_organisation_directory(client_for):
    organisation = scenarios.organisation()
    researcher = scenarios.person(R.RESEARCHER)

    response = client_for(researcher).get(reverse("organisation-detail", args=[organisation.pk]))

    assert response.status_code == 200
    assert response.context["form"] is None  # but may not manage memberships


# --- accreditation ---------------------------------------------------------------------
def test_an_accreditation_must_expire_after_it_was_issued():
    admin = scenarios.person(R.ADMINISTRATOR)
    person = scenarios.person(R.RESEARCHER)

    with pytest.raises(ValidationError):
        services.record_accreditation(
            user=person,
            kind=Accreditation.Kind.SAFE_RESEARCHER,
            issued_on=date(2025, 1, 1),
            expires_on=date(2025, 1, 1),
            by=admin,
        )


ISSUED, EXPIRES = date(2024, 1, 10), date(2025, 1, 10)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (ISSUED - timedelta(days=1), False),
        (ISSUED, True),
        (date(2024, 7, 1), True),
        (EXPIRES, True),
        (EXPIRES + timedelta(days=1), False),
    ],
    ids=["before-issue", "issue-day", "midway", "expiry-day", "after-expiry"],
)
def test_is_accredited_on_a_day(day, expected):
    person = scenarios.person(R.RESEARCHER)
    scenarios.accredit(person, issued_on=ISSUED, expires_on=EXPIRES)

    assert is_accredited(person, on=day) is expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (None, True),
        (Accreditation.Kind.SAFE_RESEARCHER, True),
        (Accreditation.Kind.DATA_SECURITY, False),
        (Accreditation.Kind.OUTPUT_CHECKER, False),
    ],
    ids=["any-kind", "same-kind", "other-kind", "third-kind"],
)
def test_is_accredited_filters_by_kind(kind, expected):
    person = scenarios.person(R.RESEARCHER)
    scenarios.accredit(
        person, kind=Accreditation.Kind.SAFE_RESEARCHER, issued_on=ISSUED, expires_on=EXPIRES
    )

    assert is_accredited(person, on=ISSUED, kind=kind) is expected


def test_is_accredited_counts_only_the_persons_own_records():
    person = scenarios.person(R.RESEARCHER)
    other = scenarios.person(R.RESEARCHER)
    scenarios.accredit(other, issued_on=ISSUED, expires_on=EXPIRES)

    assert is_accredited(person, on=ISSUED) is False
    assert is_accredited(other, on=ISSUED) is True


def test_a_lapsed_record_does_not_hide_a_current_one():
    person = scenarios.person(R.RESEARCHER)
    scenarios.accredit(person, issued_on=date(2022, 1, 1), expires_on=date(2023, 1, 1))
    scenarios.accredit(person, issued_on=ISSUED, expires_on=EXPIRES)

    assert is_accredited(person, on=date(2022, 6, 1))
    assert not is_accredited(person, on=date(2023, 6, 1))
    assert is_accredited(person, on=date(2024, 6, 1))
