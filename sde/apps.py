from django.apps import AppConfig


class SdeConfig(AppConfig):
    name = "sde"
    verbose_name = "sde core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the API's authentication schemes with drf-spectacular.
        from sde.api import schema  # noqa: F401
