"""The Celery application. Tasks live in ``<app>/tasks.py`` and call services."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sde.settings")

app = Celery("sde")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
