from django.apps import AppConfig


class AccessRequestsConfig(AppConfig):
    """The application -> review -> decision -> project lifecycle (built on the core)."""

    name = "access_requests"
    default_auto_field = "django.db.models.BigAutoField"
