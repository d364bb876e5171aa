"""Validate, pseudonymise and load a source drop as a new dataset version."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sde.audit.services import get_system_user
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.exceptions import SDEError


class Command(BaseCommand):
    help = "Ingest a source drop (a folder of CSV files) into the data layer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("drop", type=Path, help="Folder holding the drop's CSV files.")
        parser.add_argument("--label", default="", help="A name for this drop.")

    def handle(self, *args: Any, **options: Any) -> None:
        system = get_system_user()
        started = time.perf_counter()
        try:
            ingest = request_ingest(
                drop_dir=options["drop"], by=system, label=options["label"], enqueue=False
            )
            if ingest.status == Ingest.Status.SUCCEEDED:
                self.stdout.write(f"already ingested as ingest {ingest.pk}: no new version")
                return
            ingest = run_ingest(
                ingest=ingest,
                by=system,
                on_progress=lambda stage, pct: self.stderr.write(f"  {pct:3d}% {stage}"),
            )
        except SDEError as error:
            raise CommandError(f"ingest failed: {error}") from None
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"ingest {ingest.pk} succeeded in {elapsed:.1f}s: {ingest.received_rows} rows "
            f"received, {ingest.ingested_rows} ingested, {ingest.quarantined_rows} quarantined"
        )
        for version in ingest.versions.select_related("dataset").order_by("dataset__name"):
            self.stdout.write(
                f"  {version.dataset.name} v{version.version}: "
                f"{version.row_count} rows, {version.quarantined_count} quarantined"
            )
        if ingest.quarantine_path:
            self.stdout.write(f"quarantine report: $SDE_DATA_ROOT/{ingest.quarantine_path}")
