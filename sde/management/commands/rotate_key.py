"""Add a new version to a development keyring (production rotates via the environment)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from sde.audit.events import EventType
from sde.audit.services import get_system_user, record_event
from sde.keys import KEYRING_NAMES, KeyRotationRefused, rotate_development_key

# What a new current version means, so nobody rotates without knowing what follows.
_CONSEQUENCES = {
    "system": "new system pseudonyms use it; existing data keeps its recorded version "
    "until re-pseudonymised with a custodian-held crosswalk",
    "master": "project keys derived from now on use it; existing extracts keep theirs",
    "vault": "new vault records use it; re-encrypt existing records (sde.data.vault.reencrypt) "
    "before the old version is retired",
}


class Command(BaseCommand):
    help = "Rotate a development keyring: system, master or vault (development only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=KEYRING_NAMES)

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        try:
            version = rotate_development_key(name)
        except KeyRotationRefused as error:
            raise CommandError(str(error)) from None
        with transaction.atomic(durable=True):
            record_event(
                event_type=EventType.KEY_ROTATED,
                actor=get_system_user(),
                data={"keyring": name, "version": version},
            )
        self.stdout.write(
            f"{name} keyring: version {version} is now current ({_CONSEQUENCES[name]})."
        )
