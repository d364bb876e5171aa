"""Import a national data opt-out file into the opt-out register."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sde.audit.services import get_system_user
from sde.data import register
from sde.exceptions import SDEError


class Command(BaseCommand):
    help = (
        "Import a national data opt-out file (one NHS number per line, no header) as a new "
        "opt-out register snapshot. It replaces the previously imported list."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The NDOP file.")
        parser.add_argument("--label", default="", help="A name for this import.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        before = register.current_snapshot()
        try:
            snapshot = register.import_ndop_file(
                path=path, by=get_system_user(), label=options["label"]
            )
        except SDEError as error:
            raise CommandError(f"import failed: {error}") from None
        if before is not None and snapshot.pk == before.pk:
            self.stdout.write(f"no change: the register is still snapshot {snapshot.number}")
            return
        self.stdout.write(
            f"snapshot {snapshot.number}: {register.suppressed(snapshot.ndop_count)} people "
            f"with a national data opt-out; {snapshot.invalid_count} invalid lines skipped; "
            f"content hash {snapshot.content_hash}"
        )
