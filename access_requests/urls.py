"""Application and review pages (mounted at /applications/ by sde/urls.py)."""

from __future__ import annotations

from django.urls import URLPattern, path

from access_requests import views

urlpatterns: list[URLPattern] = [
    path("", views.application_list, name="applications"),
    path("new/", views.application_new, name="application-new"),
    path("review/", views.review_queue, name="review-queue"),
    path("change/<int:project_id>/", views.application_change, name="application-change"),
    path("<int:pk>/", views.application_detail, name="application"),
    path("<int:pk>/review/", views.application_review, name="application-review"),
    *[
        path(
            f"<int:pk>/review/{action}/",
            views.application_decide,
            {"action": action},
            name=f"application-{action}",
        )
        for action in views.ACTIONS
    ],
    path("<int:pk>/comments/", views.application_comment, name="application-comment"),
    path("<int:pk>/attachments/", views.application_attachments, name="application-attachments"),
    path(
        "<int:pk>/attachments/<int:attachment_pk>/",
        views.attachment_download,
        name="application-attachment",
    ),
    path(
        "<int:pk>/attachments/<int:attachment_pk>/redact/",
        views.attachment_redact,
        name="application-attachment-redact",
    ),
    path("<int:pk>/submit/", views.application_submit, name="application-submit"),
    path("<int:pk>/withdraw/", views.application_withdraw, name="application-withdraw"),
    path("<int:pk>/<str:section>/", views.application_section, name="application-section"),
    path(
        "<int:pk>/<str:section>/autosave/",
        views.application_autosave,
        name="application-autosave",
    ),
]
