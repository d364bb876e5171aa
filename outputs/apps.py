from django.apps import AppConfig


class OutputsConfig(AppConfig):
    """Disclosure checks, release requests, review and release."""

    name = "outputs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from outputs.dashboard import release_cards
        from sde.dashboard import register_cards

        register_cards(release_cards)
