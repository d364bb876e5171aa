"""Sign a checkpoint of the audit chain's head now (normally done on a schedule)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sde.audit.services import get_system_user, sign_checkpoint
from sde.exceptions import AuditError


class Command(BaseCommand):
    help = "Verify the audit chain and sign a checkpoint of its head."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checkpoint = sign_checkpoint(by=get_system_user())
        except AuditError as error:
            raise CommandError(str(error)) from None
        if checkpoint is None:
            self.stdout.write("nothing to sign: the head is already checkpointed")
        else:
            self.stdout.write(
                f"signed checkpoint at sequence {checkpoint.sequence} (key {checkpoint.key_id})"
            )
