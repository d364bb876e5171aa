"""MFA cannot be bypassed. The URL list comes from the resolver, so a URL added tomorrow
is covered by these tests the day it is added."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from django.urls.resolvers import RoutePattern

from sde.identity import services
from sde.identity.models import User
from sde.identity.roles import Role
from tests import scenarios
from tests.conftest import session_client, verified_client
from tests.shared_db import shared_rows

pytestmark = pytest.mark.django_db

# A plausible value for every path converter. A URL with a converter not listed here
# fails collection, so whoever adds it decides what the gate test should request.
CONVERTER_VALUES = {
    "int": "1",
    "str": "researcher",
    "slug": "researcher",
    "path": "researcher",
    "uuid": "00000000-0000-4000-8000-000000000001",
}
# The only doors open before the second factor. Adding a @public or @mfa_stage view
# means changing these sets on purpose.
PUBLIC_VIEWS = {"login", "healthz", "favicon", "register", "register-entry", "register-json",
                "register-csv"}  # fmt: skip
# Public pages of one object: the filled-in id names nothing here, so 404 (not sign-in).
PUBLIC_OBJECT_VIEWS = {"register-entry"}
MFA_STAGE_VIEWS = {"logout", "mfa-enrol", "mfa-verify"}
MFA_REFUSAL = "Multi-factor authentication is required."


@dataclass(frozen=True)
class Url:
    path: str
    name: str
    callback: Callable[..., Any]

    @property
    def public(self) -> bool:
        return bool(getattr(self.callback, "sde_public", False))

    @property
    def mfa_stage(self) -> bool:
        return bool(getattr(self.callback, "sde_mfa_stage", False))

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")

    def __str__(self) -> str:
        return self.path


def _route(pattern: Any) -> str:
    if not isinstance(pattern, RoutePattern):
        raise TypeError(f"the MFA gate test cannot fill {pattern!r}: teach it regex patterns")
    return str(pattern)


def _fill(route: str) -> str:
    return re.sub(
        r"<(?:(?P<converter>\w+):)?\w+>",
        lambda match: CONVERTER_VALUES[match["converter"] or "str"],
        route,
    )


def _walk(resolver: URLResolver, prefix: str = "") -> Iterator[Url]:
    for entry in resolver.url_patterns:
        route = prefix + _route(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry, route)
        else:
            yield Url("/" + _fill(route), entry.name or route, entry.callback)


URLS = list(_walk(get_resolver()))
GATED_PAGES = [url for url in URLS if not (url.public or url.mfa_stage or url.api)]
API_URLS = [url for url in URLS if url.api]
NOT_PUBLIC = [url for url in URLS if not url.public]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Nobody here signs in with a password; argon2 would only slow the matrix down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@dataclass(frozen=True)
class Everyone:
    # "with_authenticator" / "without_authenticator" -> a session past the password step only
    password_only: dict[str, str]
    verified: str  # a session of the person with an authenticator, MFA done


@pytest.fixture(scope="module")
def everyone(django_db_setup: None, django_db_blocker: Any) -> Iterator[Everyone]:
    """Two people holding every role, one with an authenticator and one without, and their
    sessions, made once for the module (tests/shared_db.py): the gate's tables are
    hundreds of requests, and making the people and signing them in is what each would
    otherwise spend its time on. Sessions live in the database, so what a request does to
    one is rolled back with its test."""

    def build() -> Everyone:
        people = {
            kind: scenarios.person(*Role, mfa=kind == "with_authenticator").pk
            for kind in ("with_authenticator", "without_authenticator")
        }
        password_only = {}
        for kind, pk in people.items():
            client = Client()
            client.force_login(User.objects.get(pk=pk), backend=MODEL_BACKEND)
            password_only[kind] = client.session.session_key or ""
        verified = verified_client(User.objects.get(pk=people["with_authenticator"]))
        return Everyone(password_only, verified.session.session_key or "")

    with shared_rows(django_db_blocker, build) as made:
        yield made


@pytest.fixture(params=["with_authenticator", "without_authenticator"])
def password_only(request, everyone) -> tuple[Client, str]:
    """A client past the password step only, for a person holding every role; and the
    MFA step the gate should send them to."""
    with_authenticator = request.param == "with_authenticator"
    client = session_client(everyone.password_only[request.param])
    return client, "mfa-verify" if with_authenticator else "mfa-enrol"


def _is_login_redirect(response: Any, path: str) -> bool:
    if response.status_code != 302:
        return False
    target = urlsplit(response.url)
    return target.path == reverse("login") and parse_qs(target.query).get("next") == [path]


# --- the list itself -------------------------------------------------------------------
def test_the_resolver_walk_finds_every_kind_of_url():
    by_name = {url.name: url.path for url in URLS}

    assert by_name["dashboard"] == "/dashboard/"
    assert by_name["person-remove-role"] == "/people/1/roles/researcher/remove/"
    assert by_name["organisation-remove-member"] == "/organisations/1/members/1/remove/"
    assert by_name["api-me"] == "/api/v1/me"
    assert by_name["api-schema"] == "/api/schema/"
    assert len(GATED_PAGES) >= 20
    assert len(API_URLS) >= 7


def test_only_the_sign_in_steps_are_open_before_the_second_factor():
    assert {url.name for url in URLS if url.public} == PUBLIC_VIEWS
    assert {url.name for url in URLS if url.mfa_stage} == MFA_STAGE_VIEWS
    assert not [url for url in API_URLS if url.public or url.mfa_stage]


# --- password only ---------------------------------------------------------------------
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("url", GATED_PAGES, ids=str)
def test_every_page_sends_a_password_only_session_to_the_mfa_step(password_only, url, method):
    client, step = password_only

    response = getattr(client, method)(url.path)

    assert response.status_code == 302
    assert response.url == reverse(step)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("url", API_URLS, ids=str)
def test_every_api_url_refuses_a_password_only_session(password_only, url, method):
    client, _ = password_only

    response = getattr(client, method)(url.path)

    assert response.status_code == 403
    assert response.json() == {"detail": MFA_REFUSAL}


def test_the_mfa_step_itself_is_reachable_after_the_password(password_only):
    client, step = password_only

    response = client.get(reverse(step))

    assert response.status_code == 200


# --- anonymous -------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("url", [url for url in NOT_PUBLIC if not url.api], ids=str)
def test_every_non_public_page_sends_an_anonymous_visitor_to_sign_in(client, url, method):
    response = getattr(client, method)(url.path)

    assert _is_login_redirect(response, url.path)


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("url", API_URLS, ids=str)
def test_every_api_url_answers_401_to_an_anonymous_caller(client, url, method):
    response = getattr(client, method)(url.path)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("url", [url for url in URLS if url.public], ids=str)
def test_public_pages_are_open_to_an_anonymous_visitor(client, url):
    response = client.get(url.path)

    expected = {404} if url.name in PUBLIC_OBJECT_VIEWS else {200, 204, 503}  # healthz: 503
    assert response.status_code in expected
    assert not _is_login_redirect(response, url.path)


# --- fully signed in -------------------------------------------------------------------
@pytest.mark.parametrize("url", [url for url in NOT_PUBLIC if not url.mfa_stage], ids=str)
def test_a_verified_session_passes_the_gate_everywhere(everyone, url):
    # The control for the tests above: the gate refuses for want of MFA, not always.
    client = session_client(everyone.verified)

    response = client.get(url.path)

    redirected_to = response.url if response.status_code == 302 else ""
    assert not redirected_to.startswith(
        (reverse("login"), reverse("mfa-verify"), reverse("mfa-enrol"))
    )
    assert response.status_code not in {401, 403}
    assert response.status_code < 500


# --- API tokens ------------------------------------------------------------------------
def test_a_verified_session_reaches_the_api(client_for):
    user = scenarios.person(Role.RESEARCHER)

    response = client_for(user).get(reverse("api-me"))

    assert response.status_code == 200
    assert response.json()["username"] == user.username


def test_a_bearer_token_works_without_a_session(client):
    user = scenarios.person(Role.RESEARCHER)
    _, key = services.create_api_token(user=user, name="scripts", by=user)

    response = client.get(reverse("api-me"), HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 200
    assert response.json()["username"] == user.username
    assert response.json()["authenticated_by"] == "token"
    assert "_auth_user_id" not in client.session


def test_a_bearer_token_does_not_open_the_pages(client):
    user = scenarios.person(Role.RESEARCHER)
    _, key = services.create_api_token(user=user, name="scripts", by=user)

    response = client.get(reverse("dashboard"), HTTP_AUTHORIZATION=f"Bearer {key}")

    assert _is_login_redirect(response, reverse("dashboard"))


def _expired(user: User, key: str) -> str:
    return key  # the token was made with a negative lifetime (below)


def _revoked(user: User, key: str) -> str:
    token = user.api_tokens.get()
    services.revoke_api_token(token=token, by=user)
    return key


def _suspended(user: User, key: str) -> str:
    services.suspend_account(user=user, by=scenarios.administrator(), reason="left")
    return key


def _deactivated(user: User, key: str) -> str:
    # Not through the service (which also revokes tokens): the token check itself must
    # refuse an inactive person.
    User.objects.filter(pk=user.pk).update(is_active=False)
    return key


def _altered(user: User, key: str) -> str:
    return key[:-1] + ("A" if key[-1] != "A" else "B")


SPOILERS = {
    "expired": _expired,
    "revoked": _revoked,
    "suspended": _suspended,
    "deactivated": _deactivated,
    "altered": _altered,
}


@pytest.mark.parametrize("spoil", SPOILERS)
def test_a_spoiled_bearer_token_answers_401(client, settings, spoil):
    if spoil == "expired":
        settings.SDE_API_TOKEN_DAYS = -1
    user = scenarios.person(Role.RESEARCHER)
    _, key = services.create_api_token(user=user, name="scripts", by=user)
    key = SPOILERS[spoil](user, key)

    response = client.get(reverse("api-me"), HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or expired token."}


@pytest.mark.parametrize("header", ["Bearer", "Bearer one two", "Bearer \xe9t\xe9"])
def test_a_malformed_bearer_header_answers_401(client, header):
    response = client.get(reverse("api-me"), HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
