"""Headers, cookies, sessions, CSRF, password hashing, and the settings' refusals."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from sde.identity import services
from sde.identity.roles import Role
from sde.middleware import SESSION_SAVED_AT
from tests import scenarios

BASE_DIR = Path(settings.BASE_DIR)


# --- response headers ------------------------------------------------------------------
def _csp(response: Any) -> dict[str, list[str]]:
    directives = {}
    for part in response["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def _page(client_for: Any) -> Any:
    return client_for(scenarios.person(Role.RESEARCHER)).get(reverse("dashboard"))


def _api(client_for: Any) -> Any:
    return client_for(scenarios.person(Role.RESEARCHER)).get(reverse("api-me"))


def _sign_in_page(client_for: Any) -> Any:
    return Client().get(reverse("login"))


def _api_refusal(client_for: Any) -> Any:
    return Client().get(reverse("api-me"))


RESPONSES = {
    "page": _page,
    "api": _api,
    "sign-in-page": _sign_in_page,
    "api-refusal": _api_refusal,
}


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", RESPONSES)
def test_every_response_carries_the_security_headers(client_for, fast_hashing, kind):
    response = RESPONSES[kind](client_for)

    assert response.status_code in {200, 401}
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]
    assert "camera=()" in response["Permissions-Policy"]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", RESPONSES)
def test_the_content_security_policy_allows_no_inline_code(client_for, fast_hashing, kind):
    response = RESPONSES[kind](client_for)

    policy = _csp(response)
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response["Content-Security-Policy"]
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]


INLINE_CODE = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)", re.IGNORECASE),
    "style element": re.compile(r"<style\b", re.IGNORECASE),
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "event handler": re.compile(r"\son[a-z]+\s*=\s*[\"']", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


def _templates() -> list[Path]:
    folders = [Path(folder) for folder in settings.TEMPLATES[0]["DIRS"]]
    folders += [BASE_DIR / app / "templates" for app in ("sde", "access_requests", "outputs")]
    return sorted(path for folder in folders if folder.is_dir() for path in folder.rglob("*.html"))


def test_no_template_has_code_the_content_security_policy_would_block():
    templates = _templates()
    offences = [
        f"{path.relative_to(BASE_DIR)}: {what}"
        for path in templates
        for what, pattern in INLINE_CODE.items()
        if pattern.search(path.read_text())
    ]

    assert templates, "no templates found: the scan would prove nothing"
    assert not offences


# --- sessions and cookies --------------------------------------------------------------
def test_sessions_expire_after_the_idle_limit_and_requests_extend_them():
    assert settings.SESSION_COOKIE_AGE == settings.SDE_SESSION_IDLE_MINUTES * 60
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    # Requests push the expiry on through IdleSessionMiddleware, which must sit inside
    # SessionMiddleware (that saves the session on the way out).
    order = settings.MIDDLEWARE
    sessions = order.index("django.contrib.sessions.middleware.SessionMiddleware")
    assert order.index("sde.middleware.IdleSessionMiddleware") > sessions
    assert settings.SDE_SESSION_REFRESH_SECONDS < settings.SESSION_COOKIE_AGE / 10


@pytest.mark.django_db
def test_the_session_cookie_is_http_only_and_same_site(client_for, fast_hashing):
    client = client_for(scenarios.person(Role.RESEARCHER))
    session = client.session
    del session[SESSION_SAVED_AT]  # due a refresh: this response sets the cookie again
    session.save()

    response = client.get(reverse("dashboard"))

    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert settings.CSRF_COOKIE_HTTPONLY is True


def _session(client: Client) -> Session:
    return Session.objects.get(session_key=client.session.session_key)


@pytest.mark.django_db
def test_a_session_idle_past_the_limit_is_signed_out(client_for, fast_hashing):
    client = client_for(scenarios.person(Role.RESEARCHER))
    Session.objects.filter(session_key=client.session.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )

    response = client.get(reverse("dashboard"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("saved_ago", "pushed"),
    [
        (None, True),  # a session saved before the marker existed
        (0, False),
        (58, False),  # within the refresh interval (60 s): no write
        (60, True),
        (3600, True),
        (-120, True),  # "saved" in the future: the clock went back
    ],
)
def test_a_request_pushes_the_idle_expiry_on_once_a_refresh_interval(
    client_for, fast_hashing, saved_ago, pushed
):
    client = client_for(scenarios.person(Role.RESEARCHER))
    session = client.session
    session.pop(SESSION_SAVED_AT, None)
    if saved_ago is not None:
        session[SESSION_SAVED_AT] = int(time.time()) - saved_ago
    session.save()
    soon = timezone.now() + timedelta(minutes=1)
    Session.objects.filter(session_key=session.session_key).update(expire_date=soon)

    response = client.get(reverse("dashboard"))

    assert response.status_code == 200
    expiry = _session(client).expire_date
    if pushed:
        expected = timezone.now() + timedelta(minutes=settings.SDE_SESSION_IDLE_MINUTES)
        assert abs(expiry - expected) < timedelta(seconds=30)
        assert 0 <= time.time() - client.session[SESSION_SAVED_AT] < 30
    else:
        assert expiry == soon


# --- CSRF ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_signing_in_without_a_csrf_token_is_refused():
    client = Client(enforce_csrf_checks=True)

    response = client.post(reverse("login"), {"username": "someone", "password": "anything"})

    assert response.status_code == 403


@pytest.mark.django_db
def test_signing_in_with_the_csrf_token_from_the_form_is_accepted():
    client = Client(enforce_csrf_checks=True)
    form = client.get(reverse("login")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]

    response = client.post(
        reverse("login"),
        {"username": "someone", "password": "anything", "csrfmiddlewaretoken": token},
    )

    assert response.status_code == 200  # the form again, with the sign-in error


@pytest.mark.django_db
def test_the_api_enforces_csrf_for_a_session_but_not_for_a_token(client_for, fast_hashing):
    admin = scenarios.person(Role.ADMINISTRATOR)
    person = scenarios.person(Role.RESEARCHER)
    session_client = Client(enforce_csrf_checks=True)
    session_client.cookies = client_for(admin).cookies
    _, key = services.create_api_token(user=admin, name="scripts", by=admin)
    url = reverse("api-person-roles", args=[person.pk])

    with_session = session_client.post(url, {"role": "clinician"}, "application/json")
    with_token = Client(enforce_csrf_checks=True).post(
        url, {"role": "clinician"}, "application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )

    assert with_session.status_code == 403
    assert "CSRF" in with_session.json()["detail"]
    assert with_token.status_code == 201


# --- password hashing ------------------------------------------------------------------
@pytest.mark.configured_password_hashers
def test_argon2_is_the_password_hasher():
    assert settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"


@pytest.mark.django_db
@pytest.mark.configured_password_hashers
def test_new_passwords_are_stored_as_argon2():
    person = scenarios.person(Role.RESEARCHER, password="a sturdy passphrase 2025")

    assert person.password.startswith("argon2$")


# --- settings refusals, in fresh processes ---------------------------------------------
SETUP = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='sde.settings'; django.setup()"
PRINT_SETTINGS = (
    SETUP + "; import json; from django.conf import settings as s; print(json.dumps({"
    "'DEBUG': s.DEBUG, 'SESSION_COOKIE_SECURE': s.SESSION_COOKIE_SECURE, "
    "'CSRF_COOKIE_SECURE': s.CSRF_COOKIE_SECURE, 'SECURE_SSL_REDIRECT': s.SECURE_SSL_REDIRECT, "
    "'SECURE_HSTS_SECONDS': s.SECURE_HSTS_SECONDS}))"
)


def _run(args: list[str], var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run Python in a clean environment: none of this process's sde settings leak in."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SDE_", "DJANGO_", "DATABASE_URL", "CELERY_"))
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env={**clean, "SDE_VAR_DIR": str(var_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _key32() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _production(var_dir: Path) -> dict[str, str]:
    """A complete production environment (SQLite and a Redis URL: nothing is contacted)."""
    return {
        "SDE_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "SDE_ALLOWED_HOSTS": "sde.example.org",
        "DATABASE_URL": f"sqlite:///{var_dir / 'production.sqlite3'}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "SDE_AUDIT_SIGNING_KEY": _key32(),
        "SDE_SYSTEM_KEYS": f"1:{_key32()}",
        "SDE_MASTER_KEYS": f"1:{_key32()}",
        "SDE_VAULT_KEYS": f"1:{_key32()}",
    }


# Read from the settings module, so a newly required variable is tested the day it is added.
REQUIRED_IN_PRODUCTION = sorted(
    set(re.findall(r'_required\("(\w+)"\)', (BASE_DIR / "sde" / "settings.py").read_text()))
)


def test_the_production_environment_here_sets_every_required_variable(tmp_path):
    assert "DJANGO_SECRET_KEY" in REQUIRED_IN_PRODUCTION
    assert set(REQUIRED_IN_PRODUCTION) <= set(_production(tmp_path))


def test_with_no_environment_at_all_settings_load_and_make_a_private_development_key(
    tmp_path,
):
    result = _run(["-c", SETUP], tmp_path)

    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "keys" / "django-secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_demo_mode_is_refused_when_debug_is_off(tmp_path):
    result = _run(["-c", SETUP], tmp_path, SDE_DEMO_MODE="1", SDE_DEBUG="0")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SDE_DEMO_MODE" in result.stderr


def test_demo_mode_is_allowed_in_development_with_debug_on(tmp_path):
    result = _run(["-c", SETUP], tmp_path, SDE_DEMO_MODE="1", SDE_DEBUG="1")

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", REQUIRED_IN_PRODUCTION)
def test_production_refuses_to_start_without_a_required_variable(tmp_path, missing):
    env = _production(tmp_path)
    del env[missing]

    result = _run(["-c", SETUP], tmp_path, **env)

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {missing} must be set when SDE_ENV=production" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SDE_DEBUG", "1", "SDE_DEBUG cannot be on when SDE_ENV=production"),
        ("SDE_ENV", "staging", "SDE_ENV must be 'development' or 'production'"),
        ("SDE_DEBUG", "maybe", "SDE_DEBUG must be a boolean"),
        ("SDE_LOCKOUT_THRESHOLD", "five", "SDE_LOCKOUT_THRESHOLD must be an integer"),
    ],
)
def test_a_bad_setting_fails_fast_with_a_clear_message(tmp_path, name, value, message):
    env = {**_production(tmp_path), name: value}

    result = _run(["-c", SETUP], tmp_path, **env)

    assert result.returncode != 0
    assert message in result.stderr


def test_production_with_everything_set_starts_secure(tmp_path):
    result = _run(["-c", PRINT_SETTINGS], tmp_path, **_production(tmp_path))

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000


def test_production_passes_the_deployment_checklist_without_warnings(tmp_path):
    result = _run(["manage.py", "check", "--deploy"], tmp_path, **_production(tmp_path))

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in output
    assert "WARNING" not in output
