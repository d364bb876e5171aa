"""Health checks for /healthz."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings

from sde.celery import app

logger = logging.getLogger(__name__)


def check_broker() -> str:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as error:  # noqa: BLE001 - report down, log the class only
        logger.warning("broker health check failed: %s", type(error).__name__)
        return "unavailable"


def check_data_root() -> str:
    root = Path(settings.SDE_DATA_ROOT)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=root, prefix=".healthz-")
        os.close(fd)
        os.unlink(name)
        return "ok"
    except OSError as error:
        logger.warning("data root health check failed: %s", type(error).__name__)
        return "unavailable"
