"""The code bound into the sandbox at /opt/sde: the helper library (``sdelib``) and the
pure analysis modules it uses (``sde.phm``, ``sde.exceptions`` and the source format's
code lists, ``sde.data.source_format``), copied without the
rest of the project (no settings, no models, no keys). Its content hash is the library
version every job records."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

import sde

SOURCE = Path(sde.__file__).resolve().parent
# Destination in the library -> source file; sde/__init__.py is written empty so that
# importing sde.phm inside the sandbox does not start the project (Celery, Django).
PACKAGE_INIT = '"""The analysis modules of sde, as the sandbox sees them."""\n'


def _files() -> dict[str, bytes]:
    files = {
        "sde/__init__.py": PACKAGE_INIT.encode(),
        "sde/exceptions.py": (SOURCE / "exceptions.py").read_bytes(),
        "sde/data/__init__.py": PACKAGE_INIT.encode(),
        "sde/data/source_format.py": (SOURCE / "data/source_format.py").read_bytes(),
    }
    for folder, target in ((SOURCE / "phm", "sde/phm"), (SOURCE / "analysis/sdelib", "sdelib")):
        for path in sorted(folder.glob("*.py")):
            files[f"{target}/{path.name}"] = path.read_bytes()
    return files


@cache
def _content() -> tuple[str, dict[str, bytes]]:
    files = _files()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest(), files


def library_version() -> str:
    return _content()[0]


def library_folder(root: Path) -> Path:
    """The library under ``root`` (written once per version, atomically, readable by
    everyone and writable by no one)."""
    version, files = _content()
    folder = root / "sandbox-library" / version[:20]
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".staging-"))
    for name, content in files.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(0o444)
    for directory, _, _ in os.walk(staging):
        Path(directory).chmod(0o555)
    try:
        staging.rename(folder)
    except OSError:  # another worker wrote it first
        for directory, _, _ in os.walk(staging):
            Path(directory).chmod(0o755)
        shutil.rmtree(staging)
    return folder
