"""Ingestion validation benchmark: what reading and validating a drop costs.

    python bench/ingest_validation.py [--patients N] [--seed S] [--drop DIR] [--repeat R]

Pure (no Django, no database). It uses the drop in --drop, or generates one of N people
(default 1,000,000) with ``sde.data.synth`` into a temporary directory (not timed), then
measures, best of R runs (default 1) for each table, the two in turn table by table:

  (a) ``read_source_table`` + ``validate_table`` for every table of the drop in ingestion
      order (the clean patients frame feeds the activity tables' linkage checks), and the
      rows per second that gives;
  (b) a same-run baseline over the same files: plain ``pyarrow.csv.read_csv`` (default
      options, type inference on) and ``pyarrow.parquet.write_table`` to a temporary file,
      the least any ingestion that keeps the data must do;

and prints the ratio of (a) to (b), with the files' rows and sizes. ``quality_report`` and
``reconcile`` are timed once, for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sde.data import source_format
from sde.data.synth import generate, write_drop
from sde.data.validation import (
    TableResult,
    quality_report,
    read_source_table,
    reconcile,
    validate_table,
)

T = TypeVar("T")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument("--seed", type=int, default=20250301, help="S (default 20250301)")
    parser.add_argument("--drop", type=Path, help="validate this drop instead of generating one")
    parser.add_argument("--repeat", type=int, default=1, help="R, best of (default 1)")
    return parser.parse_args()


def _tables(drop: Path) -> list[str]:
    return [t for t in source_format.TABLES if (drop / f"{t}.csv").exists()]


def _read_and_validate(
    drop: Path, table: str, extract: date, people: pd.DataFrame | None
) -> TableResult:
    raw = read_source_table(drop / f"{table}.csv", table)
    return validate_table(table, raw, extract_date=extract, people=people)


def _read_and_write(drop: Path, table: str, scratch: Path) -> None:
    read = pa_csv.ReadOptions(autogenerate_column_names=table in source_format.HEADERLESS_TABLES)
    data = pa_csv.read_csv(drop / f"{table}.csv", read_options=read)
    pq.write_table(data, scratch / f"{table}.parquet")


def _timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def measure(
    drop: Path, extract: date, scratch: Path, repeat: int
) -> tuple[dict[str, TableResult], dict[str, float], dict[str, float]]:
    """Best-of-``repeat`` seconds per table for (a) and (b), run table by table in turn
    so that both see the same machine (other work on a shared host hits both alike)."""
    results: dict[str, TableResult] = {}
    a: dict[str, float] = {}
    b: dict[str, float] = {}
    for _ in range(repeat):
        people = None
        for table in _tables(drop):
            seconds, _ = _timed(lambda t=table: _read_and_write(drop, t, scratch))
            b[table] = min(b.get(table, float("inf")), seconds)
            results.pop(table, None)  # free the previous run's frames first
            seconds, results[table] = _timed(
                lambda t=table, p=people: _read_and_validate(drop, t, extract, p)
            )
            a[table] = min(a.get(table, float("inf")), seconds)
            if table == "patients":
                people = results[table].clean
    return results, a, b


def main() -> None:
    args = _parse_args()
    owned = args.drop is None
    drop = Path(tempfile.mkdtemp(prefix="sde-bench-drop-")) if owned else args.drop
    scratch = Path(tempfile.mkdtemp(prefix="sde-bench-parquet-"))
    try:
        if owned:
            started = time.perf_counter()
            write_drop(generate(patients=args.patients, seed=args.seed), drop)
            print(f"generated {args.patients:,} people in {time.perf_counter() - started:.1f} s")
        manifest = json.loads((drop / "manifest.json").read_text())
        extract = date.fromisoformat(manifest["date_range"]["end"])
        for table in _tables(drop):  # warm the page cache for both contenders alike
            (drop / f"{table}.csv").read_bytes()
        results, a, b = measure(drop, extract, scratch, args.repeat)
        started = time.perf_counter()
        reports = {t: quality_report(r, read_source_table(drop / f"{t}.csv", t))
                   for t, r in results.items()}  # fmt: skip
        report_seconds = time.perf_counter() - started
        discrepancies = reconcile(manifest, results)
        _print(drop, results, a, b, report_seconds, discrepancies, len(reports))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if owned:
            shutil.rmtree(drop, ignore_errors=True)


def _print(
    drop: Path,
    results: dict[str, TableResult],
    a: dict[str, float],
    b: dict[str, float],
    report_seconds: float,
    discrepancies: list[str],
    reports: int,
) -> None:
    print(f"python {platform.python_version()}, pyarrow {pa.__version__}, "
          f"{os.cpu_count()} cores, {platform.machine()}")  # fmt: skip
    print(f"{'table':<20}{'rows':>12}{'MB':>9}{'quarantined':>13}"
          f"{'validate s':>12}{'baseline s':>12}{'ratio':>8}")  # fmt: skip
    rows = size = quarantined = 0
    for table, result in results.items():
        mb = (drop / f"{table}.csv").stat().st_size / 1e6
        rows, size = rows + result.received, size + mb
        quarantined += len(result.quarantine)
        print(f"{table:<20}{result.received:>12,}{mb:>9.1f}{len(result.quarantine):>13,}"
              f"{a[table]:>12.2f}{b[table]:>12.2f}{a[table] / b[table]:>8.2f}")  # fmt: skip
    ta, tb = sum(a.values()), sum(b.values())
    print(f"{'total':<20}{rows:>12,}{size:>9.1f}{quarantined:>13,}{ta:>12.2f}{tb:>12.2f}"
          f"{ta / tb:>8.2f}")  # fmt: skip
    print(f"(a) read + validate: {rows / ta:,.0f} rows/s ({size / ta:.0f} MB/s)")
    print(f"(b) read_csv + write_table baseline: {rows / tb:,.0f} rows/s ({size / tb:.0f} MB/s)")
    print(f"ratio (a)/(b): {ta / tb:.2f}")
    print(f"quality_report for {reports} tables: {report_seconds:.2f} s; "
          f"reconcile: {'agrees' if not discrepancies else discrepancies}")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:,.0f} MB")


if __name__ == "__main__":
    main()
