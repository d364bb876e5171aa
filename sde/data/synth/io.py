"""Writing a drop: source-format CSV files, ``ndop.csv`` and ``manifest.json``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Final

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from sde.data.source_format import TABLES
from sde.data.synth.drop import SyntheticDrop
from sde.data.synth.faults import DATE_FAULTS
from sde.data.synth.reference import GENERATOR, VERSION


@dataclass(frozen=True)
class FileEntry:
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` says: enough for ingestion to check and reconcile a drop."""

    seed: int
    patients: int
    start: date
    end: date
    files: Mapping[str, FileEntry]
    fault_rates: Mapping[str, float]
    faults: Mapping[str, Mapping[str, int]]
    generator: str = GENERATOR
    version: str = VERSION

    @property
    def total_rows(self) -> int:
        return sum(entry.rows for entry in self.files.values())

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.files.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "generator": self.generator,
            "version": self.version,
            "seed": self.seed,
            "patients": self.patients,
            "date_range": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "files": {name: asdict(entry) for name, entry in self.files.items()},
            "fault_rates": dict(self.fault_rates),
            "impossible_date_kinds": {t: f"{k}:{c}" for t, (k, c) in DATE_FAULTS.items()},
            "faults": {table: dict(counts) for table, counts in self.faults.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


MANIFEST: Final = "manifest.json"


def drop_files() -> tuple[str, ...]:
    """The file names a drop consists of (``manifest.json`` last)."""
    return (*(f"{name}.csv" for name in TABLES), MANIFEST)


def _write_csv(frame: pd.DataFrame, path: Path, header: bool) -> FileEntry:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            table = table.set_column(i, column.name, table.column(i).cast(pa.date32()))
    options = pa_csv.WriteOptions(
        include_header=header, quoting_style="needed" if header else "none"
    )
    pa_csv.write_csv(table, path, options)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return FileEntry(rows=len(frame), bytes=path.stat().st_size, sha256=digest.hexdigest())


def write_drop(tables: SyntheticDrop, out_dir: Path) -> Manifest:
    """Write each table as ``<name>.csv`` (``ndop.csv``: one NHS number per line, no header,
    as the national service sends it) and ``manifest.json`` into ``out_dir``, replacing
    files of the same names. Returns the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(tables, key=lambda name: -len(tables[name]))  # largest first: balance
    with ThreadPoolExecutor(max_workers=2) as pool:
        entries = dict(
            zip(
                names,
                pool.map(
                    lambda name: _write_csv(tables[name], out_dir / f"{name}.csv", name != "ndop"),
                    names,
                ),
                strict=True,
            )
        )
    manifest = Manifest(
        seed=tables.seed,
        patients=tables.patients,
        start=tables.start,
        end=tables.end,
        files={f"{name}.csv": entries[name] for name in TABLES if name in entries},
        fault_rates=asdict(tables.config.faults),
        faults=tables.faults,
    )
    (out_dir / MANIFEST).write_text(manifest.to_json())
    return manifest
