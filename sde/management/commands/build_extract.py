"""Build (or rebuild, if stale) a project's extract from a data scope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sde.audit.services import get_system_user
from sde.data.extracts import ExtractScope, build_dummy_extract, build_extract
from sde.exceptions import SDEError, ValidationError


class Command(BaseCommand):
    help = (
        "Build a project extract from a data scope JSON file: {project_id, datasets: "
        "{slug: [fields]}, purpose, legal_basis, date_from, date_to, cohort: {...}}. "
        "Approved projects get theirs automatically; this is the custodian's tool."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("scope", type=Path, help="The data scope (JSON).")
        parser.add_argument("--dummy", action="store_true", help="Build the dummy extract.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            scope = ExtractScope.from_json(json.loads(options["scope"].read_text("utf-8")))
            build = build_dummy_extract if options["dummy"] else build_extract
            extract = build(scope=scope, by=get_system_user())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CommandError(f"cannot read the scope: {error}") from None
        except ValidationError as error:
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.errors.items())
            raise CommandError(f"invalid scope: {problems or error}") from None
        except SDEError as error:
            raise CommandError(f"extract not built: {error}") from None
        self.stdout.write(f"{extract} at $SDE_DATA_ROOT/{extract.path}")
        for name, table in extract.tables.items():
            self.stdout.write(f"  {name}: {table['rows']} rows, sha256 {table['sha256']}")
