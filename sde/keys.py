"""Key material, kept out of the database and out of the repository.

Production keys come from the environment. In development each key is generated on
first use into a 0600 file under ``SDE_KEY_DIR`` (git-ignored). Analysis jobs never get
these: the sandbox runs with a scrubbed environment and no route to the key directory.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from sde.exceptions import SDEError


def _development_key_file(name: str, nbytes: int) -> bytes:
    """Read, or atomically create, a random development key file with mode 0600."""
    key_dir = Path(settings.SDE_KEY_DIR)
    path = key_dir / name
    if not path.exists():
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = key_dir / f".{name}.{secrets.token_hex(8)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(nbytes)).decode())
        try:
            os.link(temporary, path)  # atomic: a concurrent process's key wins
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return _decode(path.read_text().strip(), str(path), nbytes)


def _decode(value: str, source: str, nbytes: int) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise ImproperlyConfigured(f"{source} is not valid base64") from None
    if len(raw) != nbytes:
        raise ImproperlyConfigured(f"{source} must decode to {nbytes} bytes, got {len(raw)}")
    return raw


def public_key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def audit_signing_key() -> Ed25519PrivateKey:
    """The Ed25519 key that signs audit checkpoints: the configured one, or the development
    key file in SDE_KEY_DIR (cached by where it comes from, so that a process whose key
    folder changes signs and verifies with that folder's key, never a stale one)."""
    return _audit_signing_key(settings.SDE_AUDIT_SIGNING_KEY, str(settings.SDE_KEY_DIR))


@lru_cache(maxsize=4)
def _audit_signing_key(configured: str | None, key_dir: str) -> Ed25519PrivateKey:
    raw = (
        _decode(configured, "SDE_AUDIT_SIGNING_KEY", 32)
        if configured
        else _development_key_file("audit-signing-ed25519.key", 32)
    )
    return Ed25519PrivateKey.from_private_bytes(raw)


def trusted_audit_public_keys() -> dict[str, Ed25519PublicKey]:
    """Public keys that may have signed checkpoints: the current key plus retired ones
    listed (base64 raw public keys, comma-separated) in SDE_AUDIT_TRUSTED_PUBLIC_KEYS."""
    keys = [audit_signing_key().public_key()]
    for value in os.environ.get("SDE_AUDIT_TRUSTED_PUBLIC_KEYS", "").split(","):
        if value.strip():
            raw = _decode(value.strip(), "SDE_AUDIT_TRUSTED_PUBLIC_KEYS", 32)
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
    return {public_key_id(key): key for key in keys}


# --- Versioned keyrings: system pseudonyms, project keys, the identity vault -------------

KEYRING_NAMES = ("system", "master", "vault")
KEYRING_KEY_BYTES = 32
_KEYRING_VARIABLES = {
    "system": "SDE_SYSTEM_KEYS",
    "master": "SDE_MASTER_KEYS",
    "vault": "SDE_VAULT_KEYS",
}
_KEYRING_FORMAT = "'1:<base64 of 32 bytes>,2:<base64 of 32 bytes>'"


class UnknownKeyVersion(LookupError):
    """The keyring holds no key with this version (never issued, or retired)."""


class KeyRotationRefused(SDEError):
    """Rotation by file is for development; elsewhere keys come from the environment."""


@dataclass(frozen=True)
class KeyRing:
    """Versioned 32-byte keys for one purpose: ``system`` (K_system, system pseudonyms),
    ``master`` (K_master, from which project keys are derived) or ``vault`` (the identity
    vault's AES-256-GCM key). The highest version is current and used for new work; every
    dataset version, extract and vault record stores the version it used, so older
    versions stay readable until their data has been re-keyed. The repr hides the keys.
    """

    name: str
    current_version: int
    keys: Mapping[int, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        keys = MappingProxyType(dict(self.keys))
        if self.current_version not in keys:
            raise ValueError(f"the {self.name} keyring has no current version")
        if any(len(key) != KEYRING_KEY_BYTES for key in keys.values()):
            raise ValueError(f"every {self.name} key must be {KEYRING_KEY_BYTES} bytes")
        object.__setattr__(self, "keys", keys)

    def current(self) -> tuple[int, bytes]:
        return self.current_version, self.keys[self.current_version]

    def get(self, version: int) -> bytes:
        try:
            return self.keys[version]
        except KeyError:
            raise UnknownKeyVersion(f"the {self.name} keyring has no version {version}") from None


def keyring(name: str) -> KeyRing:
    """The ``system``, ``master`` or ``vault`` keyring.

    Production reads ``SDE_SYSTEM_KEYS`` / ``SDE_MASTER_KEYS`` / ``SDE_VAULT_KEYS``
    (``1:<base64>,2:<base64>``; highest version current). Development uses the variable
    if set, otherwise a JSON keyring file under ``SDE_KEY_DIR``, created (mode 0600) on
    first use. Read on every call, so a rotation is seen at once. Key material is never
    logged or put in an exception message.

    Only ingestion, provisioning and the re-identification service may call this. Analysis
    jobs are to run with a scrubbed environment and no access to ``SDE_KEY_DIR`` (enforced
    by the job sandbox, a later issue), so job code must never import this module.

    Raises ``ValueError`` for an unknown name and ``ImproperlyConfigured`` naming the
    variable or file when the keys are missing (in production) or malformed.
    """
    variable = _keyring_variable(name)
    configured = getattr(settings, variable, None)
    if configured:
        return _parse_keyring(name, variable, configured)
    if settings.PRODUCTION:
        raise ImproperlyConfigured(
            f"{variable} must be set when SDE_ENV=production (see dotenv-sample)."
        )
    return _development_keyring(name)


def rotate_development_key(name: str) -> int:
    """Append a new random version to a development keyring file; return its number.

    Old versions are kept, so data keyed under them stays readable. Re-keying that data
    (a pseudonym crosswalk, vault re-encryption) is the caller's job. Raises
    ``KeyRotationRefused`` in production, or whenever the keyring comes from the
    environment: there, rotation means deploying a new value of the variable.
    """
    variable = _keyring_variable(name)
    if settings.PRODUCTION or getattr(settings, variable, None):
        raise KeyRotationRefused(
            f"The {name} keyring comes from {variable}, not a file. To rotate it, generate "
            "a key (python -c 'import base64, secrets; "
            "print(base64.b64encode(secrets.token_bytes(32)).decode())'), append it with "
            f"the next version number, keeping the old versions (e.g. {_KEYRING_FORMAT}), "
            "then deploy and restart."
        )
    path = _keyring_path(name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = os.open(path.parent / f".keyring-{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # one rotation at a time, or a version is lost
        ring = _development_keyring(name)
        version = ring.current_version + 1
        keys = {**ring.keys, version: secrets.token_bytes(KEYRING_KEY_BYTES)}
        _write_keyring_file(path, keys, replace=True)
    finally:
        os.close(lock_fd)  # releases the lock
    return version


def _keyring_variable(name: str) -> str:
    if name not in _KEYRING_VARIABLES:
        raise ValueError(f"unknown keyring {name!r}; expected one of {KEYRING_NAMES}")
    return _KEYRING_VARIABLES[name]


def _parse_keyring(name: str, variable: str, value: str) -> KeyRing:
    keys: dict[int, bytes] = {}
    for entry in value.split(","):
        version_text, separator, encoded = entry.strip().partition(":")
        if not (separator and version_text.isascii() and version_text.isdigit()):
            raise ImproperlyConfigured(f"{variable} must look like {_KEYRING_FORMAT}")
        version = int(version_text)
        if version < 1 or version in keys:
            raise ImproperlyConfigured(f"{variable}: versions must be distinct and from 1")
        key = _decode(encoded.strip(), f"{variable} version {version}", KEYRING_KEY_BYTES)
        if key in keys.values():
            raise ImproperlyConfigured(f"{variable}: version {version} repeats an older key")
        keys[version] = key
    return KeyRing(name, max(keys), keys)


def _keyring_path(name: str) -> Path:
    return Path(settings.SDE_KEY_DIR) / f"keyring-{name}.json"


def _development_keyring(name: str) -> KeyRing:
    path = _keyring_path(name)
    if not path.exists():
        _write_keyring_file(path, {1: secrets.token_bytes(KEYRING_KEY_BYTES)}, replace=False)
    if path.stat().st_mode & 0o077:
        raise ImproperlyConfigured(f"{path} must be readable by its owner only (chmod 600)")
    try:
        entries = json.loads(path.read_text())["keys"]
        keys = {
            int(version): _decode(encoded, f"{path} version {version}", KEYRING_KEY_BYTES)
            for version, encoded in entries.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ImproperlyConfigured(f"{path} is not a valid keyring file") from None
    if not keys or min(keys) < 1:
        raise ImproperlyConfigured(f"{path} is not a valid keyring file")
    return KeyRing(name, max(keys), keys)


def _write_keyring_file(path: Path, keys: Mapping[int, bytes], *, replace: bool) -> None:
    """Write a 0600 keyring file atomically: a temporary file, then a rename (rotation) or
    a hard link that fails if another process created the file first (creation)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    document = {
        "name": path.stem,
        "keys": {str(v): base64.b64encode(k).decode() for v, k in sorted(keys.items())},
    }
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError:
        pass  # a concurrent process created it first: its keys win
    finally:
        temporary.unlink(missing_ok=True)
