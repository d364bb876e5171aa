"""The release API (mounted at /api/v1/ by sde/api/urls.py)."""

from __future__ import annotations

from django.urls import path

from outputs import api

_ONE = "releases/<int:pk>"
_FILE = f"{_ONE}/files/<int:file_id>"
_REVIEW = "reviews/<int:pk>"

urlpatterns = [
    path("releases", api.ReleaseList.as_view(), name="api-releases"),
    path("projects/<int:pk>/releases", api.ProjectReleases.as_view(), name="api-project-releases"),
    path(_ONE, api.ReleaseDetail.as_view(), name="api-release"),
    path(f"{_ONE}/submit", api.Submit.as_view(), name="api-release-submit"),
    path(f"{_ONE}/withdraw", api.Withdraw.as_view(), name="api-release-withdraw"),
    path(f"{_ONE}/revoke", api.Revoke.as_view(), name="api-release-revoke"),
    path(f"{_ONE}/results.json", api.Results.as_view(), name="api-release-results"),
    path(f"{_ONE}/download.zip", api.DownloadAll.as_view(), name="api-release-download-all"),
    path(f"{_ONE}/files", api.Files.as_view(), name="api-release-files"),
    path(_FILE, api.FileDetail.as_view(), name="api-release-file"),
    path(f"{_FILE}/exceptions", api.Exceptions.as_view(), name="api-release-file-exceptions"),
    path(f"{_FILE}/download", api.Download.as_view(), name="api-release-file-download"),
    path(f"{_FILE}/content", api.Content.as_view(), name="api-release-file-content"),
    # The output checkers: the queue, a review per round, a decision per file.
    path("outputs/queue", api.Queue.as_view(), name="api-output-queue"),
    path(f"{_ONE}/reviews", api.StartReview.as_view(), name="api-release-reviews"),
    path(_REVIEW, api.ReviewDetail.as_view(), name="api-review"),
    path(
        f"{_REVIEW}/files/<int:file_id>/decision",
        api.Decision.as_view(),
        name="api-review-decision",
    ),
    path(f"{_REVIEW}/submit", api.ReviewSubmit.as_view(), name="api-review-submit"),
]
