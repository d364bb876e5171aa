"""Downloads of a released request's files, for the project's current members: one file,
or all of them in a zip with manifest.json and SHA256SUMS. Every file is read through
``services.open_released``, which verifies the bytes against the reviewed hash and audits
the download; anything not released (or revoked) is 404."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.http import HttpRequest, HttpResponse

from outputs import selectors, services
from outputs.models import ReleaseRequest
from outputs.views.common import user_of
from outputs.views.releases import release_of
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


@project_page("GET")
def download_all(request: HttpRequest, project: Project, release_id: int) -> HttpResponse:
    """Every released file of the request in one zip, with manifest.json and SHA256SUMS
    (``services.released_archive``: each verified, then audited)."""
    release = release_of(request, project, release_id)
    data = services.released_archive(request=release, by=user_of(request))
    return _attachment(data, f"release-{release.pk}.zip")
