"""sde: the Secure Data Environment project package and its core."""

from sde.celery import app as celery_app

__all__ = ["celery_app"]
