"""Create the demo organisations and one account per role (idempotent)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sde.demo import seed_demo


class Command(BaseCommand):
    help = "Create demo organisations and one demo account per role (development only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo is refused when SDE_ENV=production")
        for account in seed_demo():
            self.stdout.write(f"  {account['username']:<14} {account['roles']}")
