from django.apps import AppConfig


class SdeConfig(AppConfig):
    name = "sde"
    verbose_name = "sde core"
    default_auto_field = "django.db.models.BigAutoField"
