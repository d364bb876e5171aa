"""Write a synthetic linked ICS data drop: ``manage.py synth --patients N --seed S --out DIR``.

Thin: checks the arguments, then calls the pure generator (``sde.data.synth``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sde.data.synth import drop_files, generate, write_drop
from sde.exceptions import ValidationError

MIN_PATIENTS = 100


class Command(BaseCommand):
    help = "Generate a synthetic linked ICS data drop: source-format CSV files and a manifest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--patients", type=int, required=True, help=f"people (at least {MIN_PATIENTS})"
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="the same seed gives byte-identical files"
        )
        parser.add_argument("--out", type=Path, required=True, help="directory for the drop")
        parser.add_argument("--force", action="store_true", help="replace a drop already there")

    def handle(self, *args: Any, **options: Any) -> None:
        patients: int = options["patients"]
        seed: int = options["seed"]
        out: Path = options["out"]
        if patients < MIN_PATIENTS:
            raise CommandError(f"--patients must be at least {MIN_PATIENTS}, not {patients}")
        if seed < 0:
            raise CommandError(f"--seed must be zero or more, not {seed}")
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out {out} exists and is not a directory")
        existing = [name for name in drop_files() if (out / name).exists()]
        if existing and not options["force"]:
            raise CommandError(
                f"{out} already contains a drop ({', '.join(existing)}); use --force to replace it"
            )
        started = time.perf_counter()
        try:
            drop = generate(patients=patients, seed=seed)
        except ValidationError as error:
            raise CommandError(f"{error}: {error.errors}") from error
        generated = time.perf_counter()
        manifest = write_drop(drop, out)
        finished = time.perf_counter()
        for name, entry in manifest.files.items():
            faults = sum(drop.faults[name.removesuffix(".csv")].values())
            self.stdout.write(f"  {name:<24} {entry.rows:>12,d} rows  ({faults:,d} with faults)")
        self.stdout.write(
            f"{manifest.total_rows:,d} rows, {manifest.total_bytes / 1e6:,.1f} MB for "
            f"{patients:,d} people (seed {seed}) in {finished - started:.1f}s "
            f"(generate {generated - started:.1f}s, write {finished - generated:.1f}s) -> {out}"
        )
