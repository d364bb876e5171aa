"""Downloads of a released request's files, for the project's current members: one file,
or all of them in a zip with manifest.json and SHA256SUMS. Every file is read through
``services.open_released``, which verifies the bytes against the reviewed hash and audits
the download; anything not released (or revoked) is 404."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import PurePosixPath

from django.http import HttpRequest, HttpResponse

from outputs import selectors, services
from outputs.models import ReleaseFile, ReleaseRequest
from outputs.views.common import user_of
from outputs.views.releases import release_of
from sde.exceptions import NotFound
from sde.projects.models import Project
from sde.views.projects import project_page

S = ReleaseRequest.Status
DOWNLOAD_TYPES = {".csv": "text/csv; charset=utf-8", ".png": "image/png",
                  ".txt": "text/plain; charset=utf-8", ".json": "application/json",
                  ".zip": "application/zip"}  # fmt: skip


def _attachment(data: bytes, name: str) -> HttpResponse:
    base = PurePosixPath(name).name
    content_type = DOWNLOAD_TYPES.get(PurePosixPath(base).suffix.lower(),
                                      "application/octet-stream")  # fmt: skip
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{_safe(base)}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "download"


# GET only: every read of a released file is audited as a download.
@project_page("GET")
def download(request: HttpRequest, project: Project, release_id: int, file_id: int) -> HttpResponse:
    release = release_of(request, project, release_id)
    file = selectors.get_file(user_of(request), release, file_id)
    return _attachment(services.open_released(file=file, by=user_of(request)), file.name)


def released_files(release: ReleaseRequest) -> list[ReleaseFile]:
    return [f for f in selectors.current_files(release).select_related("released")
            if getattr(f, "released", None) is not None]  # fmt: skip


@project_page("GET")
def download_all(request: HttpRequest, project: Project, release_id: int) -> HttpResponse:
    """Every released file of the request in one zip, with manifest.json and SHA256SUMS;
    each file is read (verified and audited) through ``open_released``."""
    release = release_of(request, project, release_id)
    files = released_files(release) if release.status == S.RELEASED else []
    if not files:
        raise NotFound("nothing of this request is released")
    buffer = io.BytesIO()
    entries, sums = [], []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            data = services.open_released(file=file, by=user_of(request))
            path = f"job-{file.job_id}/{file.name}"
            archive.writestr(path, data)
            entries.append({"path": path, "name": file.name, "file_id": file.pk,
                            "job_id": file.job_id, "size": len(data),
                            "sha256": file.released.sha256})  # fmt: skip
            sums.append(f"{file.released.sha256}  {path}\n")
        manifest = {
            "release_request": release.pk, "title": release.title, "project": project.pk,
            "round": release.round, "policy": release.policy.get("name", ""),
            "released_at": release.released_at.isoformat() if release.released_at else None,
            "files": entries,
        }  # fmt: skip
        archive.writestr("manifest.json", json.dumps(manifest, indent=1) + "\n")
        archive.writestr("SHA256SUMS", "".join(sums))
    return _attachment(buffer.getvalue(), f"release-{release.pk}.zip")
