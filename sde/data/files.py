"""Where the data layer keeps its files, and how it fingerprints them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings


def data_root() -> Path:
    """``SDE_DATA_ROOT``: dataset versions, opt-out snapshots and extracts live under it."""
    return Path(settings.SDE_DATA_ROOT)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def intact(path: Path, sha256: str) -> bool:
    """Whether ``path`` is a regular file whose bytes have the SHA-256 recorded for it."""
    return path.is_file() and not path.is_symlink() and file_sha256(path) == sha256
