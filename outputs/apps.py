from django.apps import AppConfig


class OutputsConfig(AppConfig):
    """Disclosure checks, release requests, review and release."""

    name = "outputs"
    default_auto_field = "django.db.models.BigAutoField"
