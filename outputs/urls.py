"""The release pages, mounted at the site root by sde/urls.py: the researcher's under
their project (/projects/<pk>/releases/), the output checkers' under /outputs/."""

from __future__ import annotations

from django.urls import URLPattern, path

from outputs.views import checking, downloads, releases

RELEASE = "projects/<int:pk>/releases/<int:release_id>/"

urlpatterns: list[URLPattern] = [
    # The researcher's (and, for oversight and revocation, IG's)
    path("projects/<int:pk>/releases/", releases.release_list, name="release-list"),
    path("projects/<int:pk>/releases/new/", releases.release_create, name="release-create"),
    path(RELEASE, releases.release_detail, name="release-detail"),
    path(f"{RELEASE}files/", releases.add_file, name="release-add-file"),
    path(f"{RELEASE}files/<int:file_id>/remove/", releases.remove_file,
         name="release-remove-file"),
    path(f"{RELEASE}files/<int:file_id>/exception/", releases.request_exception,
         name="release-exception"),
    path(f"{RELEASE}files/<int:file_id>/download/", downloads.download, name="release-download"),
    path(f"{RELEASE}download.zip", downloads.download_all, name="release-download-all"),
    path(f"{RELEASE}submit/", releases.submit, name="release-submit"),
    path(f"{RELEASE}withdraw/", releases.withdraw, name="release-withdraw"),
    path(f"{RELEASE}revoke/", releases.revoke, name="release-revoke"),
    # The output checkers'
    path("outputs/", checking.queue, name="output-queue"),
    path("outputs/<int:release_id>/", checking.review, name="output-review"),
    path("outputs/<int:release_id>/start/", checking.start_review, name="output-start-review"),
    path("outputs/<int:release_id>/files/<int:file_id>/decide/", checking.decide,
         name="output-decide"),
    path("outputs/<int:release_id>/files/<int:file_id>/chart.png", checking.chart,
         name="output-chart"),
    path("outputs/<int:release_id>/submit/", checking.submit_review, name="output-submit-review"),
]  # fmt: skip
