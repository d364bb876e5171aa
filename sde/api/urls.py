from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from sde.api import views

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("v1/me", views.MeView.as_view(), name="api-me"),
    path("v1/audit/events", views.AuditEventList.as_view(), name="api-audit-events"),
    path(
        "v1/audit/events/<int:sequence>", views.AuditEventDetail.as_view(), name="api-audit-event"
    ),
    path("v1/people", views.PersonList.as_view(), name="api-people"),
    path("v1/people/<int:pk>/roles", views.PersonRoles.as_view(), name="api-person-roles"),
    path("v1/people/<int:pk>/roles/<str:role>", views.PersonRole.as_view(), name="api-person-role"),
]
