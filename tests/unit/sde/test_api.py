"""The REST API: who am I, the schema, people and roles, and the audited audit API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.validation import validate_schema

from sde.audit.events import EventType
from sde.audit.services import get_system_user
from sde.identity import services
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.identity.selectors import current_roles
from tests import scenarios
from tests.events import events_since as _events_since
from tests.events import mark as _mark

pytestmark = pytest.mark.django_db

R = Role
JSON = "application/json"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Nobody here signs in with a password; argon2 would only slow the matrices down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _token_client(user) -> Client:
    _, key = services.create_api_token(user=user, name="scripts", by=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


# --- /api/v1/me ------------------------------------------------------------------------
@pytest.fixture
def member_of_an_icb():
    person = scenarios.person(R.RESEARCHER, R.IG_OFFICER, accredited=True)
    icb = scenarios.organisation(Organisation.Kind.ICB, ods_code="QZZ", name="Demo ICB")
    services.add_membership(user=person, organisation=icb, by=scenarios.administrator())
    return person, icb


@pytest.mark.parametrize("way_in", ["session", "token"])
def test_me_describes_the_caller_however_they_authenticated(client_for, member_of_an_icb, way_in):
    person, icb = member_of_an_icb
    client = client_for(person) if way_in == "session" else _token_client(person)

    response = client.get(reverse("api-me"))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == person.pk
    assert body["username"] == person.username
    assert body["name"] == person.display_name
    assert body["roles"] == ["ig_officer", "researcher"]
    assert body["capabilities"] == [
        "apply_for_access",
        "manage_opt_outs",
        "read_audit_log",
        "record_accreditations",
        "review_access_requests",
        "suspend_projects",
    ]
    assert body["organisations"] == [
        {"id": icb.pk, "name": "Demo ICB", "kind": "icb", "ods_code": "QZZ", "parent": None}
    ]
    assert [a["kind"] for a in body["accreditations"]] == ["safe_researcher"]
    assert body["accredited_today"] is True
    assert body["authenticated_by"] == way_in


def test_me_shows_a_lapsed_accreditation_as_not_accredited(client_for):
    person = scenarios.person(R.RESEARCHER)
    today = timezone.localdate()
    scenarios.accredit(
        person, issued_on=today - timedelta(days=400), expires_on=today - timedelta(days=1)
    )

    body = client_for(person).get(reverse("api-me")).json()

    assert body["accreditations"] == []
    assert body["accredited_today"] is False


def test_me_needs_authentication(client):
    response = client.get(reverse("api-me"))

    assert response.status_code == 401


# --- the OpenAPI schema ----------------------------------------------------------------
def test_the_schema_needs_authentication(client):
    assert client.get(reverse("api-schema")).status_code == 401


@pytest.mark.parametrize("way_in", ["session", "token"])
def test_the_schema_is_a_valid_openapi_document_covering_the_api(client_for, way_in):
    person = scenarios.person(R.RESEARCHER)
    client = client_for(person) if way_in == "session" else _token_client(person)

    as_yaml = client.get(reverse("api-schema"))
    as_json = client.get(reverse("api-schema"), {"format": "json"})

    assert as_yaml.status_code == 200
    assert as_json.status_code == 200
    document = yaml.safe_load(as_yaml.content)
    validate_schema(document)
    assert json.loads(as_json.content) == document
    assert document["openapi"].startswith("3.")
    assert {
        "/api/v1/me",
        "/api/v1/people",
        "/api/v1/people/{id}/roles",
        "/api/v1/people/{id}/roles/{role}",
        "/api/v1/audit/events",
        "/api/v1/audit/events/{sequence}",
    } <= set(document["paths"])
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert schemes["cookieAuth"]["in"] == "cookie"
    me = document["paths"]["/api/v1/me"]["get"]
    assert {"bearerAuth": []} in me["security"]
    assert {} not in me["security"]  # no anonymous access advertised


# --- people ----------------------------------------------------------------------------
def test_a_researcher_lists_only_themselves(client_for):
    researcher = scenarios.person(R.RESEARCHER)
    scenarios.person(R.RESEARCHER)

    body = client_for(researcher).get(reverse("api-people")).json()

    assert body["count"] == 1
    assert [p["id"] for p in body["results"]] == [researcher.pk]


@pytest.mark.parametrize("viewer", [R.ADMINISTRATOR, R.IG_OFFICER])
def test_administrators_and_ig_list_everyone_but_the_system_user(client_for, viewer):
    actor = scenarios.person(viewer)
    other = scenarios.person(R.RESEARCHER)

    body = client_for(actor).get(reverse("api-people")).json()

    listed = {p["id"] for p in body["results"]}
    assert {actor.pk, other.pk} <= listed
    assert get_system_user().pk not in listed
    assert set(body["results"][0]) == {"id", "username", "name", "email", "is_active"}


# --- roles: the same rules as the pages ------------------------------------------------
ACTORS = {role.value: (role,) for role in Role} | {
    "administrator+ig_officer": (R.ADMINISTRATOR, R.IG_OFFICER)
}


def _expected(actor_roles: tuple[Role, ...], success: int) -> int:
    if R.ADMINISTRATOR in actor_roles:
        return success
    if R.IG_OFFICER in actor_roles:
        return 403  # sees the person, may not change their roles
    return 404  # may not even see them


@pytest.mark.parametrize("actor_roles", list(ACTORS.values()), ids=list(ACTORS))
def test_granting_a_role_through_the_api_follows_the_policy(client_for, actor_roles):
    actor = scenarios.person(*actor_roles)
    person = scenarios.person(R.RESEARCHER)
    mark = _mark()

    response = client_for(actor).post(
        reverse("api-person-roles", args=[person.pk]),
        {"role": "output_checker", "reason": "trained"},
        JSON,
    )

    expected = _expected(actor_roles, 201)
    assert response.status_code == expected
    granted = R.OUTPUT_CHECKER in current_roles(User.objects.get(pk=person.pk))
    assert granted is (expected == 201)
    events = _events_since(mark)
    if expected == 201:
        assert [(e.event_type, e.actor_id, e.data) for e in events] == [
            (EventType.ROLE_GRANTED, actor.pk, {"role": "output_checker"})
        ]
    else:
        assert events == []


@pytest.mark.parametrize("actor_roles", list(ACTORS.values()), ids=list(ACTORS))
def test_removing_a_role_through_the_api_follows_the_policy(client_for, actor_roles):
    actor = scenarios.person(*actor_roles)
    person = scenarios.person(R.RESEARCHER, R.CLINICIAN)
    mark = _mark()

    response = client_for(actor).delete(reverse("api-person-role", args=[person.pk, "clinician"]))

    expected = _expected(actor_roles, 204)
    assert response.status_code == expected
    held = R.CLINICIAN in current_roles(User.objects.get(pk=person.pk))
    assert held is (expected != 204)
    assert [e.event_type for e in _events_since(mark)] == (
        [EventType.ROLE_REMOVED] if expected == 204 else []
    )


def test_a_researcher_cannot_grant_themselves_a_role_through_the_api(client_for):
    researcher = scenarios.person(R.RESEARCHER)

    response = client_for(researcher).post(
        reverse("api-person-roles", args=[researcher.pk]), {"role": "administrator"}, JSON
    )

    assert response.status_code == 403
    assert current_roles(researcher) == {R.RESEARCHER}


def test_an_administrators_token_grants_roles_like_their_session():
    admin = scenarios.person(R.ADMINISTRATOR)
    person = scenarios.person(R.RESEARCHER)

    response = _token_client(admin).post(
        reverse("api-person-roles", args=[person.pk]), {"role": "clinician"}, JSON
    )

    assert response.status_code == 201
    assert R.CLINICIAN in current_roles(person)


@pytest.mark.parametrize("role", ["superuser", "", None])
def test_granting_an_unknown_role_is_a_400(client_for, role):
    admin = scenarios.person(R.ADMINISTRATOR)
    person = scenarios.person(R.RESEARCHER)
    mark = _mark()

    response = client_for(admin).post(
        reverse("api-person-roles", args=[person.pk]), {"role": role}, JSON
    )

    assert response.status_code == 400
    assert "role" in response.json()
    assert _mark() == mark


def test_removing_an_unknown_role_is_a_404(client_for):
    admin = scenarios.person(R.ADMINISTRATOR)
    person = scenarios.person(R.RESEARCHER)

    response = client_for(admin).delete(reverse("api-person-role", args=[person.pk, "superuser"]))

    assert response.status_code == 404


def test_the_system_user_is_invisible_to_the_role_api(client_for):
    admin = scenarios.person(R.ADMINISTRATOR)

    response = client_for(admin).post(
        reverse("api-person-roles", args=[get_system_user().pk]), {"role": "clinician"}, JSON
    )

    assert response.status_code == 404


# --- the audit API is itself audited ---------------------------------------------------
def test_an_audit_search_through_the_api_is_recorded(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    mark = _mark()

    response = client_for(ig).get(reverse("api-audit-events"))

    assert response.status_code == 200
    (event,) = _events_since(mark)
    assert event.event_type == EventType.AUDIT_LOG_VIEWED
    assert event.actor_id == ig.pk
    assert event.data == {"filters": {}, "via": "api"}
    assert response.json()["results"][0]["sequence"] == event.sequence


def test_an_audit_search_with_filters_records_the_filters(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    scenarios.person(R.CLINICIAN)
    mark = _mark()

    response = client_for(ig).get(
        reverse("api-audit-events"), {"event_type": EventType.ROLE_GRANTED}
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert results
    assert {row["event_type"] for row in results} == {EventType.ROLE_GRANTED}
    (event,) = _events_since(mark)
    assert event.data == {"filters": {"event_type": "identity.role_granted"}, "via": "api"}


def test_an_invalid_audit_search_is_a_400_and_records_nothing(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    mark = _mark()

    response = client_for(ig).get(reverse("api-audit-events"), {"date_from": "yesterday"})

    assert response.status_code == 400
    assert "date_from" in response.json()["errors"]
    assert _mark() == mark


def test_reading_one_audit_event_through_the_api_is_recorded_and_verified(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    sequence = _mark()

    response = client_for(ig).get(reverse("api-audit-event", args=[sequence]))

    assert response.status_code == 200
    body = response.json()
    assert body["sequence"] == sequence
    assert body["entry_hash_ok"] is True
    assert body["chain_link_ok"] is True
    (event,) = _events_since(sequence)
    assert event.event_type == EventType.AUDIT_LOG_VIEWED
    assert event.data == {"sequence": sequence, "via": "api"}


def test_reading_a_missing_audit_event_is_a_404_and_records_nothing(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    mark = _mark()

    response = client_for(ig).get(reverse("api-audit-event", args=[mark + 1000]))

    assert response.status_code == 404
    assert _mark() == mark


def test_an_administrator_without_ig_is_refused_the_audit_api_and_nothing_is_recorded(
    client_for,
):
    admin = scenarios.person(R.ADMINISTRATOR)
    mark = _mark()

    response = client_for(admin).get(reverse("api-audit-events"))

    assert response.status_code == 403
    assert _mark() == mark


@pytest.mark.django_db
def test_role_grant_by_a_non_administrator_is_403_even_with_an_invalid_body(client_for):
    ig = scenarios.person(Role.IG_OFFICER)
    other = scenarios.person(Role.RESEARCHER)

    response = client_for(ig).post(
        f"/api/v1/people/{other.pk}/roles",
        {"role": "no-such-role"},
        content_type="application/json",
    )

    assert response.status_code == 403
