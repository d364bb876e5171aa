"""WSGI entry point (gunicorn sde.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sde.settings")
application = get_wsgi_application()
