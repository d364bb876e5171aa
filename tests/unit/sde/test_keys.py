import base64
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from sde.audit.events import EventType
from sde.audit.models import AuditEvent
from sde.data.pseudonymisation import system_pseudonyms
from sde.keys import (
    KEYRING_NAMES,
    KeyRing,
    KeyRotationRefused,
    UnknownKeyVersion,
    _development_key_file,
    audit_signing_key,
    keyring,
    rotate_development_key,
)

VARIABLES = {"system": "SDE_SYSTEM_KEYS", "master": "SDE_MASTER_KEYS", "vault": "SDE_VAULT_KEYS"}
REPO = Path(__file__).resolve().parents[3]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


KEY_1, KEY_2 = bytes(range(32)), bytes(range(32, 64))
GOOD_VALUE = f"1:{_b64(KEY_1)},2:{_b64(KEY_2)}"


@pytest.fixture
def key_dir(settings, tmp_path: Path) -> Path:
    """A private SDE_KEY_DIR in development, with no keyring variables set."""
    settings.SDE_KEY_DIR = tmp_path / "keys"
    settings.PRODUCTION = False
    for variable in VARIABLES.values():
        setattr(settings, variable, None)
    return settings.SDE_KEY_DIR


@pytest.fixture
def production(settings, key_dir: Path):
    settings.PRODUCTION = True
    return settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("name", KEYRING_NAMES)
def test_development_keyring_is_created_on_first_use_with_mode_0600(key_dir, name) -> None:
    ring = keyring(name)

    path = key_dir / f"keyring-{name}.json"
    assert _mode(path) == 0o600
    assert _mode(key_dir) == 0o700
    version, key = ring.current()
    assert (version, len(key)) == (1, 32)
    assert not [p for p in key_dir.iterdir() if p.name.startswith(".keyring")]  # no temp left


def test_development_keyring_is_stable_across_calls(key_dir) -> None:
    assert keyring("system") == keyring("system")


def test_each_keyring_has_its_own_key(key_dir) -> None:
    keys = {keyring(name).current()[1] for name in KEYRING_NAMES}

    assert len(keys) == 3


def test_rotation_adds_a_version_and_keeps_the_old_ones_readable(key_dir) -> None:
    before = keyring("vault")

    assert rotate_development_key("vault") == 2
    assert rotate_development_key("vault") == 3

    after = keyring("vault")
    assert after.current_version == 3
    assert after.get(1) == before.get(1)
    assert len({after.get(1), after.get(2), after.get(3)}) == 3
    assert _mode(key_dir / "keyring-vault.json") == 0o600


def test_rotated_system_key_gives_new_pseudonyms_and_the_old_version_still_reproduces(
    key_dir,
) -> None:
    numbers = pd.Series(["9434765919"])
    old = system_pseudonyms(numbers, keyring("system").current()[1]).iloc[0]

    rotate_development_key("system")

    ring = keyring("system")
    assert system_pseudonyms(numbers, ring.current()[1]).iloc[0] != old
    assert system_pseudonyms(numbers, ring.get(1)).iloc[0] == old


def test_concurrent_rotations_lose_no_version(key_dir) -> None:
    keyring("master")
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(rotate_development_key("master")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == list(range(2, 10))
    assert sorted(keyring("master").keys) == list(range(1, 10))


def test_unknown_version_raises(key_dir) -> None:
    with pytest.raises(UnknownKeyVersion, match="the system keyring has no version 7"):
        keyring("system").get(7)


def test_unknown_keyring_name_is_refused(key_dir) -> None:
    with pytest.raises(ValueError, match="unknown keyring"):
        keyring("../audit-signing-ed25519.key")


def test_keyring_repr_never_shows_key_material() -> None:
    ring = KeyRing("vault", 1, {1: KEY_1})

    assert "keys" not in repr(ring)
    assert repr(KEY_1) not in repr(ring) and _b64(KEY_1) not in repr(ring)


def test_keyring_is_immutable() -> None:
    source = {1: KEY_1}
    ring = KeyRing("vault", 1, source)
    source[2] = KEY_2

    assert list(ring.keys) == [1]
    with pytest.raises(TypeError):
        ring.keys[2] = KEY_2  # type: ignore[index]


@pytest.mark.parametrize(
    ("current", "keys"), [(2, {1: KEY_1}), (1, {1: b"short"})], ids=["no-current", "short-key"]
)
def test_keyring_refuses_inconsistent_contents(current: int, keys: dict[int, bytes]) -> None:
    with pytest.raises(ValueError):
        KeyRing("vault", current, keys)


def test_development_keyring_file_readable_by_others_is_refused(key_dir) -> None:
    keyring("vault")
    (key_dir / "keyring-vault.json").chmod(0o644)

    with pytest.raises(ImproperlyConfigured, match="owner only"):
        keyring("vault")


@pytest.mark.parametrize(
    "content",
    ["not json", "{}", '{"keys": {}}', '{"keys": {"one": "AAAA"}}', '{"keys": {"1": "AAAA"}}'],
)
def test_corrupt_development_keyring_file_is_refused(key_dir, content: str) -> None:
    key_dir.mkdir(mode=0o700)
    path = key_dir / "keyring-system.json"
    path.write_text(content)
    path.chmod(0o600)

    with pytest.raises(ImproperlyConfigured, match=r"keyring-system\.json"):
        keyring("system")


def test_keyrings_leave_the_audit_signing_key_file_alone(key_dir) -> None:
    # The private helper: the audit key file is read, not created, by what is tested.
    audit_key = _development_key_file("audit-signing-ed25519.key", 32)

    for name in KEYRING_NAMES:
        keyring(name)
        rotate_development_key(name)

    assert _development_key_file("audit-signing-ed25519.key", 32) == audit_key
    assert json.loads((key_dir / "keyring-system.json").read_text())["keys"].keys() == {"1", "2"}


@pytest.mark.parametrize("name", KEYRING_NAMES)
def test_production_keyring_comes_from_its_variable(production, name) -> None:
    setattr(production, VARIABLES[name], f" 2:{_b64(KEY_2)} , 1:{_b64(KEY_1)} ")

    ring = keyring(name)

    assert ring.current() == (2, KEY_2)
    assert ring.get(1) == KEY_1
    assert not production.SDE_KEY_DIR.exists()  # no development file in production


@pytest.mark.parametrize("name", KEYRING_NAMES)
def test_production_keyring_missing_names_the_variable(production, name) -> None:
    with pytest.raises(ImproperlyConfigured, match=VARIABLES[name]):
        keyring(name)


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        _b64(KEY_1),  # no version
        f"x:{_b64(KEY_1)}",
        f"0:{_b64(KEY_1)}",
        f"-1:{_b64(KEY_1)}",
        f"1:{_b64(KEY_1)},1:{_b64(KEY_2)}",  # a version twice
        f"1:{_b64(KEY_1)},2:{_b64(KEY_1)}",  # a "rotation" that repeats the key
        f"1:{_b64(KEY_1)},",
        "1:not base64!",
        f"1:{_b64(bytes(16))}",
        f"1:{_b64(bytes(33))}",
    ],
)
def test_production_keyring_garbage_names_the_variable_not_the_value(production, value) -> None:
    production.SDE_VAULT_KEYS = value

    with pytest.raises(ImproperlyConfigured, match="SDE_VAULT_KEYS") as caught:
        keyring("vault")
    assert _b64(KEY_1) not in str(caught.value)


@pytest.mark.parametrize("name", KEYRING_NAMES)
def test_rotation_is_refused_in_production(production, name) -> None:
    setattr(production, VARIABLES[name], GOOD_VALUE)

    with pytest.raises(KeyRotationRefused, match=VARIABLES[name]):
        rotate_development_key(name)
    assert not production.SDE_KEY_DIR.exists()


def test_development_uses_the_variable_when_set_and_then_refuses_file_rotation(
    settings, key_dir
) -> None:
    settings.SDE_MASTER_KEYS = GOOD_VALUE

    assert keyring("master").current() == (2, KEY_2)
    with pytest.raises(KeyRotationRefused):
        rotate_development_key("master")


@pytest.mark.django_db
def test_rotate_key_command_rotates_in_development_and_is_audited(key_dir, capsys) -> None:
    call_command("rotate_key", "vault")

    assert "vault keyring: version 2 is now current" in capsys.readouterr().out
    assert keyring("vault").current_version == 2
    event = AuditEvent.objects.get(event_type=EventType.KEY_ROTATED)
    assert event.data == {"keyring": "vault", "version": 2}


def test_rotate_key_command_in_production_explains_and_fails(production) -> None:
    production.SDE_SYSTEM_KEYS = GOOD_VALUE

    with pytest.raises(CommandError, match=r"SDE_SYSTEM_KEYS.*deploy"):
        call_command("rotate_key", "system")


def test_rotate_key_command_rejects_unknown_names(key_dir) -> None:
    with pytest.raises(CommandError):
        call_command("rotate_key", "audit")


def _production_environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDE_", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    env.update(
        SDE_ENV="production",
        SDE_VAR_DIR=str(tmp_path / "var"),
        DJANGO_SECRET_KEY="x" * 50,
        SDE_ALLOWED_HOSTS="sde.example.nhs.uk",
        DATABASE_URL="postgres://sde@db:5432/sde",
        CELERY_BROKER_URL="redis://redis:6379/0",
        SDE_AUDIT_SIGNING_KEY=_b64(bytes(32)),
        SDE_SYSTEM_KEYS=GOOD_VALUE,
        SDE_MASTER_KEYS=f"1:{_b64(bytes(range(64, 96)))}",
        SDE_VAULT_KEYS=f"3:{_b64(bytes(range(96, 128)))}",
        DJANGO_SETTINGS_MODULE="sde.settings",
    )
    env.update(overrides)
    return env


_PROBE = (
    "from sde.keys import keyring; "
    "print([keyring(n).current_version for n in ('system', 'master', 'vault')])"
)


def test_production_settings_read_the_keyrings_from_the_environment(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=_production_environment(tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[2, 1, 3]"
    assert not (tmp_path / "var" / "keys").exists()


def test_production_settings_fail_fast_naming_a_missing_keyring_variable(tmp_path) -> None:
    env = _production_environment(tmp_path)
    del env["SDE_VAULT_KEYS"]

    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, cwd=REPO, capture_output=True, text=True
    )

    assert result.returncode != 0
    assert "SDE_VAULT_KEYS must be set when SDE_ENV=production" in result.stderr


def test_settings_define_every_keyring_variable() -> None:
    for variable in VARIABLES.values():
        assert hasattr(django_settings, variable)


def test_the_audit_signing_key_follows_the_key_folder(key_dir, settings, tmp_path) -> None:
    """A process whose key folder changes (a test's private one, then the default again)
    signs with the folder's own key: a cached key from another folder would sign
    checkpoints that the worker's key cannot verify."""
    settings.SDE_AUDIT_SIGNING_KEY = None
    first = audit_signing_key().public_key().public_bytes_raw()
    settings.SDE_KEY_DIR = tmp_path / "other-keys"
    second = audit_signing_key().public_key().public_bytes_raw()
    settings.SDE_KEY_DIR = key_dir

    assert first != second
    assert audit_signing_key().public_key().public_bytes_raw() == first
    stored = base64.b64decode((tmp_path / "other-keys" / "audit-signing-ed25519.key").read_text())
    assert Ed25519PrivateKey.from_private_bytes(stored).public_key().public_bytes_raw() == second
