"""Key material, kept out of the database and out of the repository.

Production keys come from the environment. In development each key is generated on
first use into a 0600 file under ``SDE_KEY_DIR`` (git-ignored). Analysis jobs never get
these: the sandbox runs with a scrubbed environment and no route to the key directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


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


@lru_cache(maxsize=1)
def audit_signing_key() -> Ed25519PrivateKey:
    """The Ed25519 key that signs audit checkpoints."""
    configured = settings.SDE_AUDIT_SIGNING_KEY
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
