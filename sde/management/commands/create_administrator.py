"""Bootstrap the installation's first Administrator (refused once one exists)."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sde.audit.services import get_system_user
from sde.exceptions import SDEError, ValidationError
from sde.identity.services import bootstrap_administrator


class Command(BaseCommand):
    help = "Create the first Administrator account; they enrol MFA at first sign-in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", required=True)
        parser.add_argument("--first-name", default="")
        parser.add_argument("--last-name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        password = getpass.getpass("Password: ")
        try:
            user = bootstrap_administrator(
                username=options["username"],
                email=options["email"],
                first_name=options["first_name"],
                last_name=options["last_name"],
                password=password,
                by=get_system_user(),
            )
        except ValidationError as error:
            raise CommandError(f"{error}: {error.errors}") from None
        except SDEError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"administrator {user.username} created")
