"""Shared fixtures. Tests talk to the real database (SQLite by default, PostgreSQL when
DATABASE_URL is set) and the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.backends.signals import connection_created
from django.test import Client, override_settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from sde.identity.models import User
from sde.identity.roles import Role
from sde.middleware import SESSION_SAVED_AT
from tests import scenarios
from tests.shared_db import shared_rows


def _commit_without_waiting_for_the_disk(sender: Any, connection: Any, **kwargs: Any) -> None:
    """The tests' PostgreSQL databases are thrown away, so a commit here need not wait for
    its WAL to reach the disk (visibility between sessions is unchanged). Only this
    process's connections: the worker, web and fault-scenario processes the integration
    tests start keep the server's setting, so a killed PostgreSQL loses nothing they saw
    committed."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")


connection_created.connect(_commit_without_waiting_for_the_disk)


@pytest.fixture(autouse=True)
def _email_to_memory(settings: pytest.FixtureRequest) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _fast_password_hashing(request: pytest.FixtureRequest, settings: pytest.FixtureRequest) -> None:
    """Argon2 is deliberately slow, and hashing a password is never what a test is about
    (the bootstrap Administrator every test makes has one). Tests of the configured hasher
    itself are marked ``configured_password_hashers`` and keep it."""
    if request.node.get_closest_marker("configured_password_hashers") is None:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


def verified_client(user: User) -> Client:
    """A test client signed in as ``user`` with MFA completed (as after the TOTP step)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[SESSION_SAVED_AT] = int(time.time())  # as the sign-in's response leaves it
    session.save()
    return client


def session_client(session_key: str) -> Client:
    """A test client carrying an existing session (made once and shared by many tests)."""
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return client


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    return verified_client


@pytest.fixture
def make_person() -> Callable[..., User]:
    return scenarios.person


@pytest.fixture
def admin_user(db: None) -> User:
    return scenarios.administrator()


@pytest.fixture
def ig_officer(db: None) -> User:
    return scenarios.person(Role.IG_OFFICER)


@pytest.fixture
def researcher(db: None) -> User:
    return scenarios.person(Role.RESEARCHER, accredited=True)


def private_settings(folder: Path, *, key_dir: Path | None = None) -> override_settings:
    """What private_data_root sets, as ``override_settings`` over ``folder`` (its data,
    keys and attachments), with mail kept in memory: for a world built once per module."""
    return override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        SDE_DATA_ROOT=folder / "data",
        SDE_KEY_DIR=key_dir or folder / "keys",
        SDE_ATTACHMENT_ROOT=folder / "attachments",
        PRODUCTION=False,
        SDE_SYSTEM_KEYS=None,
        SDE_MASTER_KEYS=None,
        SDE_VAULT_KEYS=None,
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )


@pytest.fixture
def private_data_root(settings: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A private data root and development key folder, so nothing touches real data or
    keys; fast password hashing (argon2 is deliberately slow and nobody signs in here)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
    settings.SDE_DATA_ROOT = tmp_path / "data"  # type: ignore[attr-defined]
    settings.SDE_KEY_DIR = tmp_path / "keys"  # type: ignore[attr-defined]
    settings.SDE_ATTACHMENT_ROOT = tmp_path / "attachments"  # type: ignore[attr-defined]
    settings.PRODUCTION = False  # type: ignore[attr-defined]
    for variable in ("SDE_SYSTEM_KEYS", "SDE_MASTER_KEYS", "SDE_VAULT_KEYS"):
        setattr(settings, variable, None)
    return tmp_path / "data"


@pytest.fixture
def custodian(db: None) -> User:
    """A data custodian, with the standard datasets registered."""
    from sde.data.catalogue import register_standard_datasets

    person = scenarios.person(Role.DATA_CUSTODIAN)
    register_standard_datasets(by=person)
    return person


@pytest.fixture(scope="module")
def module_catalogue(django_db_setup: None, django_db_blocker: Any) -> Iterator[int]:
    """What ``custodian`` makes, made once for a module whose every test has it (through an
    autouse fixture), and shared by its tests (tests/shared_db.py): the custodian's pk. Such
    a module adopts ``custodian = module_custodian`` (tests/shared_db.py)."""
    from sde.data.catalogue import register_standard_datasets

    def build() -> int:
        with override_settings(
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        ):
            person = scenarios.person(Role.DATA_CUSTODIAN)
            register_standard_datasets(by=person)
            return person.pk

    with shared_rows(django_db_blocker, build) as pk:
        yield pk
