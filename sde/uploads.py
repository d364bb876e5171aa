"""Uploaded files, for the pages and the API alike: the checks every upload gets, and
the copies written to disk for a service to read.

Uploads here are source data (NHS numbers and all), so a copy is kept only while
something needs it: a drop until its ingest has run (and not at all when the same drop
was ingested before), an opt-out file only while it is imported.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from sde.data import ingestion, register
from sde.data.models import Ingest, OptOutSnapshot
from sde.identity.models import User

DROP_FILES_FIELD = "drop_files"
NDOP_DEFAULT_NAME = "ndop.csv"


def base_name(upload: UploadedFile) -> str:
    return Path(upload.name or "").name


def safe_file_name(upload: UploadedFile, *, default: str) -> str:
    """Only the last part of the name, in safe characters: it names the file on disk and
    in error messages."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", base_name(upload))[:100]
    return name.lstrip(".") or default


def size_error(upload: UploadedFile, *, per_file: bool = False) -> str | None:
    """The message for a file over ``SDE_MAX_UPLOAD_BYTES``, or None."""
    limit = settings.SDE_MAX_UPLOAD_BYTES
    if (upload.size or 0) <= limit:
        return None
    each = " per file" if per_file else ""
    return f"{base_name(upload)} is {upload.size:,} bytes; the limit is {limit:,}{each}."


def drop_files_error(files: Sequence[UploadedFile]) -> str | None:
    """Why these files are not a drop that can be uploaded, or None: only ``.csv`` files
    and ``manifest.json``, by plain name, each within the size limit, with
    ``patients.csv`` among them."""
    for upload in files:
        name = base_name(upload)
        if name != upload.name or not (name.endswith(".csv") or name == "manifest.json"):
            return f"{name}: only .csv files and manifest.json can be part of a drop."
        too_big = size_error(upload, per_file=True)
        if too_big:
            return too_big
    if not any(upload.name == "patients.csv" for upload in files):
        return "A drop needs patients.csv."
    return None


def _write(upload: UploadedFile, path: Path) -> None:
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)


def ingest_uploaded_drop(*, files: Sequence[UploadedFile], label: str, by: User) -> Ingest:
    """Write a drop's files (already checked with ``drop_files_error``) to a new folder
    under the data root, where the worker reads them, and request its ingest.

    The folder is removed when the ingest is refused (IngestError, re-raised), when
    anything else goes wrong, and when the same drop was ingested before (the existing
    ingest is returned; nothing references this copy). Event: as ``request_ingest``.
    """
    folder = Path(settings.SDE_DATA_ROOT) / "uploads" / secrets.token_hex(8)
    folder.mkdir(parents=True)
    try:
        for upload in files:
            _write(upload, folder / base_name(upload))
        ingest = ingestion.request_ingest(drop_dir=folder, by=by, label=label)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if ingest.drop_path != str(folder.resolve()):
        # An earlier upload of the same drop was ingested: this copy of its files (NHS
        # numbers and all) is referenced by nothing, so it is not kept.
        shutil.rmtree(folder, ignore_errors=True)
    return ingest


@contextmanager
def temporary_copy(upload: UploadedFile, *, prefix: str, default_name: str) -> Iterator[Path]:
    """The upload written to a private folder under the var dir, deleted on leaving the
    block whatever happens (for files a service reads once, e.g. an NDOP list)."""
    uploads = Path(settings.VAR_DIR) / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=uploads))
    try:
        path = folder / safe_file_name(upload, default=default_name)
        _write(upload, path)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def import_ndop_upload(upload: UploadedFile, *, label: str, by: User) -> OptOutSnapshot:
    """Import an uploaded national data opt-out list (labelled with its file name when no
    label is given). The file is a list of NHS numbers and is never kept. Raises as
    ``register.import_ndop_file``."""
    label = label or safe_file_name(upload, default=NDOP_DEFAULT_NAME)
    with temporary_copy(upload, prefix="ndop-", default_name=NDOP_DEFAULT_NAME) as path:
        return register.import_ndop_file(path=path, by=by, label=label)
