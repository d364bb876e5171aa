from django.apps import AppConfig


class AccessRequestsConfig(AppConfig):
    """The application -> review -> decision -> project lifecycle (built on the core)."""

    name = "access_requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from access_requests.dashboard import access_request_cards
        from sde.dashboard import register_cards

        register_cards(access_request_cards)
