"""The access request API (mounted at /api/v1/ by sde/api/urls.py)."""

from __future__ import annotations

from django.urls import path

from access_requests import api

_ONE = "access-requests/<int:pk>"

urlpatterns = [
    path("access-requests", api.AccessRequestList.as_view(), name="api-access-requests"),
    path(
        "access-requests/review-queue",
        api.ReviewQueue.as_view(),
        name="api-access-request-review-queue",
    ),
    path(_ONE, api.AccessRequestDetail.as_view(), name="api-access-request"),
    path(f"{_ONE}/submit", api.Submit.as_view(), name="api-access-request-submit"),
    path(f"{_ONE}/withdraw", api.Withdraw.as_view(), name="api-access-request-withdraw"),
    path(f"{_ONE}/comments", api.Comments.as_view(), name="api-access-request-comments"),
    path(f"{_ONE}/attachments", api.Attachments.as_view(), name="api-access-request-attachments"),
    path(
        f"{_ONE}/attachments/<int:attachment_pk>",
        api.AttachmentDownload.as_view(),
        name="api-access-request-attachment",
    ),
    path(
        f"{_ONE}/attachments/<int:attachment_pk>/redact",
        api.AttachmentRedact.as_view(),
        name="api-access-request-attachment-redact",
    ),
    path(f"{_ONE}/review/start", api.StartReview.as_view(), name="api-access-request-start"),
    path(f"{_ONE}/review/approve", api.Approve.as_view(), name="api-access-request-approve"),
    path(f"{_ONE}/review/return", api.Return.as_view(), name="api-access-request-return"),
    path(f"{_ONE}/review/reject", api.Reject.as_view(), name="api-access-request-reject"),
    path(f"{_ONE}/review/assign", api.Assign.as_view(), name="api-access-request-assign"),
    path(f"{_ONE}/review/sign-off", api.SignOff.as_view(), name="api-access-request-sign-off"),
    # A change to a live project is a new access request (members of the project).
    path("projects/<int:pk>/changes", api.ProjectChange.as_view(), name="api-project-changes"),
]
