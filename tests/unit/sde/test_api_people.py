"""The API of the people, organisation and token pages: each action as every role, the
answer derived from the policy the page uses (a person the caller may not see is a 404,
one they see but may not change a 403), the change made only when allowed, and audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from sde import policy
from sde.audit.events import EventType
from sde.identity import services
from sde.identity.models import ApiToken, Organisation, OrganisationMembership, User
from sde.identity.roles import Role
from tests import scenarios
from tests.events import events_since, mark

pytestmark = pytest.mark.django_db

R = Role
JSON = "application/json"
ACTORS = {role.value: role for role in Role}
PASSWORD = "correct horse battery 9"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _token_client(user: User) -> Client:
    _, key = services.create_api_token(user=user, name="scripts", by=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@dataclass(frozen=True)
class Action:
    url: str
    body: dict[str, Any]
    allowed: Callable[[User, User], bool]  # the policy's answer, for the actor and person
    success: int
    done: Callable[[User], bool]  # whether the change was made to the person
    event: EventType


def _locked(person: User) -> User:
    person.locked_until = timezone.now() + timedelta(minutes=30)
    person.failed_login_count = 5
    person.save(update_fields=["locked_until", "failed_login_count"])
    return person


def _fresh(person: User) -> User:
    return User.objects.get(pk=person.pk)


PERSON_ACTIONS = {
    "accreditation": Action(
        "api-person-accreditations",
        {"kind": "safe_researcher", "issued_on": "2026-01-01", "expires_on": "2029-01-01"},
        policy.user_can_record_accreditation, 201,
        lambda p: p.accreditations.exists(), EventType.ACCREDITATION_RECORDED,
    ),
    "suspend": Action(
        "api-person-suspend", {"reason": "left the organisation"},
        policy.user_can_suspend_person, 204,
        lambda p: not _fresh(p).is_active, EventType.ACCOUNT_SUSPENDED,
    ),
    "unlock": Action(
        "api-person-unlock", {},
        lambda actor, person: policy.user_can_manage_accounts(actor) and actor.pk != person.pk,
        204, lambda p: _fresh(p).locked_until is None, EventType.ACCOUNT_UNLOCKED,
    ),
}  # fmt: skip


@pytest.mark.parametrize("actor_role", list(ACTORS.values()), ids=list(ACTORS))
@pytest.mark.parametrize("name", list(PERSON_ACTIONS))
def test_a_person_action_through_the_api_follows_the_policy(name, actor_role):
    action = PERSON_ACTIONS[name]
    actor = scenarios.person(actor_role)
    person = _locked(scenarios.person(R.RESEARCHER))
    since = mark()

    response = _token_client(actor).post(reverse(action.url, args=[person.pk]), action.body, JSON)

    if not policy.visible_people_for(actor).filter(pk=person.pk).exists():
        expected = 404
    else:
        expected = action.success if action.allowed(actor, person) else 403
    assert response.status_code == expected, response.content
    assert action.done(person) is (expected == action.success)
    types = [e.event_type for e in events_since(since) if e.actor_id == actor.pk]
    assert (action.event in types) is (expected == action.success)


def test_suspend_then_reinstate_through_the_api():
    admin = scenarios.administrator()
    person = scenarios.person(R.RESEARCHER)
    client = _token_client(admin)

    assert client.post(reverse("api-person-suspend", args=[person.pk]), {}, JSON).status_code == 400
    assert _fresh(person).is_active  # no reason, no suspension
    suspended = client.post(
        reverse("api-person-suspend", args=[person.pk]), {"reason": "on leave"}, JSON
    )
    reinstated = client.post(reverse("api-person-reinstate", args=[person.pk]), {}, JSON)
    again = client.post(reverse("api-person-reinstate", args=[person.pk]), {}, JSON)

    assert (suspended.status_code, reinstated.status_code, again.status_code) == (204, 204, 409)
    assert _fresh(person).is_active


def test_nobody_suspends_or_resets_themselves_through_the_api():
    admin = scenarios.administrator()
    client = _token_client(admin)

    suspend = client.post(reverse("api-person-suspend", args=[admin.pk]), {"reason": "x"}, JSON)
    reset = client.post(reverse("api-person-reset-mfa", args=[admin.pk]), {}, JSON)

    assert (suspend.status_code, reset.status_code) == (403, 403)
    assert _fresh(admin).is_active


def test_an_administrator_resets_someones_mfa_through_the_api():
    admin = scenarios.administrator()
    person = scenarios.person(R.RESEARCHER)
    since = mark()

    response = _token_client(admin).post(reverse("api-person-reset-mfa", args=[person.pk]))

    assert response.status_code == 204
    assert EventType.MFA_RESET in [e.event_type for e in events_since(since)]


@pytest.mark.parametrize("actor_role", list(ACTORS.values()), ids=list(ACTORS))
def test_creating_an_account_through_the_api_follows_the_policy(actor_role):
    actor = scenarios.person(actor_role)
    body = {"username": "new.person", "first_name": "New", "last_name": "Person",
            "email": "new.person@example.nhs.uk", "password": PASSWORD}  # fmt: skip

    response = _token_client(actor).post(reverse("api-people"), body, JSON)

    allowed = policy.user_can_manage_accounts(actor)
    assert response.status_code == (201 if allowed else 403)
    made = User.objects.filter(username="new.person").first()
    assert (made is not None) is allowed
    if allowed:
        assert response.json() == {
            "id": made.pk, "username": "new.person", "name": "New Person",
            "email": "new.person@example.nhs.uk", "is_active": True,
        }  # fmt: skip
        assert "password" not in response.content.decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "x"}, "username"),  # too short, and the rest missing
        ({"username": "ok.name", "first_name": "A", "last_name": "B", "email": "not-an-email",
          "password": PASSWORD}, "email"),
        ({"username": "ok.name", "first_name": "A", "last_name": "B",
          "email": "a@example.nhs.uk", "password": "password"}, "password"),  # too weak
    ],
    ids=["short username", "bad email", "weak password"],
)  # fmt: skip
def test_an_invalid_account_is_a_400_naming_the_field(body, field):
    response = _token_client(scenarios.administrator()).post(reverse("api-people"), body, JSON)

    assert response.status_code == 400
    assert field in response.content.decode()
    assert not User.objects.filter(username="ok.name").exists()


# --- organisations ----------------------------------------------------------------------
@pytest.mark.parametrize("actor_role", list(ACTORS.values()), ids=list(ACTORS))
def test_organisations_through_the_api_follow_the_policy(actor_role):
    actor = scenarios.person(actor_role)
    person = scenarios.person(R.RESEARCHER)
    client = _token_client(actor)
    allowed = policy.user_can_manage_organisations(actor)
    existing = scenarios.organisation(Organisation.Kind.ICB, ods_code="QZZ", name="Demo ICB")

    listed = client.get(reverse("api-organisations"))
    detail = client.get(reverse("api-organisation", args=[existing.pk]))
    created = client.post(
        reverse("api-organisations"),
        {"name": "Riverside", "kind": "gp_practice", "ods_code": "Y12345", "parent": existing.pk},
        JSON,
    )
    added = client.post(
        reverse("api-organisation-members", args=[existing.pk]),
        {"username": person.username, "job_title": "Analyst"},
        JSON,
    )

    assert (listed.status_code, detail.status_code) == (200, 200)  # directory information
    assert existing.pk in [row["id"] for row in listed.json()["results"]]
    assert created.status_code == (201 if allowed else 403)
    assert Organisation.objects.filter(ods_code="Y12345").exists() is allowed
    # The person to add must be visible to the caller: administrators and IG see everyone.
    sees_person = policy.visible_people_for(actor).filter(pk=person.pk).exists()
    assert added.status_code == (201 if allowed and sees_person else 403 if not allowed else 404)
    membership = OrganisationMembership.objects.filter(user=person, organisation=existing).first()
    assert (membership is not None) is (added.status_code == 201)
    if membership is not None:
        removed = client.delete(
            reverse("api-organisation-member", args=[existing.pk, membership.pk])
        )
        assert removed.status_code == 204
        assert not OrganisationMembership.objects.filter(pk=membership.pk).exists()


def test_an_organisation_lists_its_members():
    admin = scenarios.administrator()
    icb = scenarios.organisation(Organisation.Kind.ICB, ods_code="QZZ", name="Demo ICB")
    person = scenarios.person(R.RESEARCHER)
    services.add_membership(user=person, organisation=icb, by=admin, job_title="Analyst")

    body = (
        _token_client(scenarios.person(R.RESEARCHER))
        .get(reverse("api-organisation", args=[icb.pk]))
        .json()
    )

    assert body["name"] == "Demo ICB"
    assert [(m["person"]["username"], m["job_title"]) for m in body["members"]] == [
        (person.username, "Analyst")
    ]


def test_a_gp_practice_without_an_ods_code_is_a_400():
    response = _token_client(scenarios.administrator()).post(
        reverse("api-organisations"), {"name": "No code", "kind": "gp_practice"}, JSON
    )

    assert response.status_code == 400
    assert not Organisation.objects.filter(name="No code").exists()


# --- one's own tokens -------------------------------------------------------------------
def test_a_person_lists_and_revokes_only_their_own_tokens():
    owner, other = scenarios.person(R.RESEARCHER), scenarios.person(R.RESEARCHER)
    spare, _ = services.create_api_token(user=owner, name="spare", by=owner)
    theirs, _ = services.create_api_token(user=other, name="theirs", by=other)
    client = _token_client(owner)

    listed = client.get(reverse("api-tokens")).json()
    not_mine = client.delete(reverse("api-token", args=[theirs.pk]))
    mine = client.delete(reverse("api-token", args=[spare.pk]))

    assert sorted(row["name"] for row in listed) == ["scripts", "spare"]
    assert all("key" not in row and "key_hash" not in row for row in listed)
    assert (not_mine.status_code, mine.status_code) == (404, 204)
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None
    assert ApiToken.objects.get(pk=spare.pk).revoked_at is not None
