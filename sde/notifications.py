"""Email notifications for events a person must act on (console backend by default)."""

from __future__ import annotations

import logging

from django.core.mail import send_mail

from sde.identity.models import User
from sde.identity.roles import Role
from sde.identity.selectors import users_with_role

logger = logging.getLogger(__name__)


def notify_user(*, user: User, subject: str, body: str) -> None:
    if not user.email:
        logger.warning("notification not sent: user id %s has no email address", user.pk)
        return
    send_mail(subject, body, None, [user.email])


def notify_role(*, role: Role, subject: str, body: str) -> None:
    for user in users_with_role(role):
        notify_user(user=user, subject=subject, body=body)
