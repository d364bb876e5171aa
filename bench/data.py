"""Data layer benchmark: synthetic data, ingestion and system pseudonyms at scale.

    python bench/data.py [--patients N] [--seed S]

Everything runs in a throwaway folder: ``SDE_VAR_DIR`` is set to a temporary directory
before Django starts, so the SQLite database (built there by ``migrate``), the data root
and the development keys are all new and are removed at the end (DATABASE_URL and any
key variables are ignored: this never touches real data or keys). In one run, on N
people (default 1,000,000), with the generator's default fault rates:

  (a) synthetic data: ``generate`` + ``write_drop`` of every table, in a child process so
      that its peak resident memory (``ru_maxrss``) is its own; rows and CSV size;
  (b) ingestion: the real ``request_ingest`` + ``run_ingest`` on that drop (validation,
      quarantine, pseudonymisation, Parquet, identity vault encryption, publishing in
      one transaction), rows per second, the time of each stage, and the peak memory of
      this process, which never holds the generator's data;
  (c) a same-run baseline over the same files: plain ``pyarrow.csv.read_csv`` and
      ``pyarrow.parquet.write_table`` (zstd, as ingestion writes), the least any ingestion
      that keeps the data must do; and the ratio of (b) to (c);
  (d) HMAC-SHA256 system pseudonyms (``system_pseudonyms``, best of 3) over the drop's
      valid patient NHS numbers (all distinct) and over the GP events column (repeats).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sde.data import source_format
from sde.data.pseudonymisation import system_pseudonyms, valid_nhs_numbers
from sde.data.synth import generate, write_drop

T = TypeVar("T")
# Never read from the caller's environment: the bench makes its own of each.
_IGNORED = (
    "DATABASE_URL", "SDE_SQLITE_PATH", "SDE_DATA_ROOT", "SDE_KEY_DIR", "SDE_ENV",
    "SDE_SYSTEM_KEYS", "SDE_MASTER_KEYS", "SDE_VAULT_KEYS",
)  # fmt: skip


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument("--seed", type=int, default=20250301, help="S (default 20250301)")
    return parser.parse_args()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _machine() -> str:
    model = platform.processor() or platform.machine()
    memory = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 1024**2:.1f} GiB RAM"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}){memory}, {platform.system()} {platform.release()}"


# --- (a) synthetic data, in a child process -------------------------------------------------
def _synthesise(patients: int, seed: int, out: Path) -> dict[str, Any]:
    generate_seconds, drop = _timed(lambda: generate(patients=patients, seed=seed))
    write_seconds, manifest = _timed(lambda: write_drop(drop, out))
    return {
        "generate": generate_seconds,
        "write": write_seconds,
        "rows": {name.removesuffix(".csv"): e.rows for name, e in manifest.files.items()},
        "bytes": manifest.total_bytes,
        "peak_mb": _peak_mb(),
    }


# --- (b) ingestion on a throwaway database ----------------------------------------------------
def _start_django(var_dir: Path) -> str:
    for variable in _IGNORED:
        os.environ.pop(variable, None)
    os.environ["SDE_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sde.settings")
    os.environ["SDE_DEBUG"] = "0"  # DEBUG keeps every query in memory
    os.environ["SDE_AUDIT_CHECKPOINT_EVERY"] = str(10**15)  # no Celery tasks

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    return f"sqlite {connection.Database.sqlite_version} (throwaway, in {var_dir})"


def _ingest(drop: Path) -> tuple[float, Any, list[tuple[str, float]]]:
    """(seconds, the ingest, [(stage, seconds)]) of the real services on ``drop``."""
    from sde.audit.services import get_system_user
    from sde.data.catalogue import register_standard_datasets
    from sde.data.ingestion import request_ingest, run_ingest

    system = get_system_user()
    register_standard_datasets(by=system)
    marks: list[tuple[str, float]] = []

    def note(stage: str, percent: int) -> None:
        if not marks or marks[-1][0] != stage:
            marks.append((stage, time.perf_counter()))

    started = time.perf_counter()
    ingest = request_ingest(drop_dir=drop, by=system, enqueue=False)
    marks.append(("fingerprinting and queueing", started))
    ingest = run_ingest(ingest=ingest, by=system, on_progress=note)
    finished = time.perf_counter()
    ends = [t for _, t in marks[1:]] + [finished]
    stages = [(stage, end - start) for (stage, start), end in zip(marks, ends, strict=True)]
    return finished - started, ingest, stages


# --- (c) the baseline -------------------------------------------------------------------------
def _baseline(drop: Path, tables: list[str], scratch: Path) -> float:
    started = time.perf_counter()
    for table in tables:
        headerless = table in source_format.HEADERLESS_TABLES
        read = pa_csv.ReadOptions(autogenerate_column_names=headerless)
        data = pa_csv.read_csv(drop / f"{table}.csv", read_options=read)
        pq.write_table(data, scratch / f"{table}.parquet", compression="zstd")
        del data
    return time.perf_counter() - started


# --- (d) pseudonyms -----------------------------------------------------------------------------
def _best_of(repeat: int, action: Callable[[], Any]) -> float:
    return min(_timed(action)[0] for _ in range(repeat))


def _pseudonym_rates(drop: Path) -> list[tuple[str, int, int, float]]:
    from sde.keys import keyring

    _, key = keyring("system").current()
    rows = []
    for table in ("patients", "gp_events"):
        column = pa_csv.read_csv(
            drop / f"{table}.csv",
            convert_options=pa_csv.ConvertOptions(
                include_columns=["nhs_number"], column_types={"nhs_number": pa.string()}
            ),
        ).column(0)
        numbers = pd.Series(column.to_pandas(), dtype="str")
        numbers = numbers[valid_nhs_numbers(numbers)].reset_index(drop=True)
        seconds = _best_of(3, lambda n=numbers: system_pseudonyms(n, key))
        rows.append((table, len(numbers), int(numbers.nunique()), seconds))
    return rows


def _size_mb(folder: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in folder.rglob(pattern)) / 1e6


def main() -> None:
    args = _parse_args()
    n = args.patients
    var_dir = Path(tempfile.mkdtemp(prefix="sde-bench-data-"))
    drop, scratch = var_dir / "drop", var_dir / "baseline"
    scratch.mkdir()
    try:
        print("sde data layer benchmark")
        print(f"  machine   {_machine()}")
        print(
            f"  python    {platform.python_version()}, pandas {pd.__version__}, "
            f"pyarrow {pa.__version__}"
        )
        print(f"  people    N = {n:,} (seed {args.seed}, default fault rates)", flush=True)

        # Fork before Django starts; the child's peak memory is the generator's alone.
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("fork")) as pool:
            synth = pool.submit(_synthesise, n, args.seed, drop).result()
        rows = synth["rows"]
        total_rows = sum(rows.values())
        print(f"  ... synthetic drop written: {total_rows:,} rows", file=sys.stderr, flush=True)

        database = _start_django(var_dir)
        before_ingest = _peak_mb()
        ingest_seconds, ingest, stages = _ingest(drop)
        ingest_peak = _peak_mb()
        print(f"  ... ingested in {ingest_seconds:.1f}s", file=sys.stderr, flush=True)
        from sde.data.models import IdentityVaultRecord

        vault_records = IdentityVaultRecord.objects.count()
        tables = [t for t in source_format.TABLES if (drop / f"{t}.csv").exists()]
        baseline_seconds = _baseline(drop, tables, scratch)
        pseudonyms = _pseudonym_rates(drop)

        csv_mb = synth["bytes"] / 1e6
        print(f"  database  {database}")
        print()
        print("(a) synthetic data: generate + write_drop, every table")
        width = max(len(t) for t in rows)
        for table, count in rows.items():
            mb = (drop / f"{table}.csv").stat().st_size / 1e6
            print(f"      {table:<{width}}  {count:>12,} rows  {mb:>9.1f} MB")
        print(f"      {'total':<{width}}  {total_rows:>12,} rows  {csv_mb:>9.1f} MB CSV")
        print(
            f"    generate {synth['generate']:.1f}s + write {synth['write']:.1f}s = "
            f"{synth['generate'] + synth['write']:.1f}s; "
            f"peak resident memory {synth['peak_mb']:,.0f} MB (child process)"
        )
        print()
        print("(b) ingestion: request_ingest + run_ingest (the real services); a table's")
        print("    stage also pseudonymises it and writes its Parquet file")
        for stage, seconds in stages:
            print(f"      {stage:<32} {seconds:>8.2f}s")
        print(
            f"    {ingest.status}: {ingest.received_rows:,} rows received, "
            f"{ingest.ingested_rows:,} ingested, {ingest.quarantined_rows:,} quarantined; "
            f"{ingest.versions.count()} dataset versions, {vault_records:,} vault records"
        )
        print(
            f"    {ingest_seconds:.1f}s = {ingest.received_rows / ingest_seconds:,.0f} rows/s "
            f"({csv_mb / ingest_seconds:.0f} MB/s of CSV); Parquet written "
            f"{_size_mb(var_dir / 'data' / 'versions', '*.parquet'):,.1f} MB"
        )
        print(
            f"    peak resident memory {ingest_peak:,.0f} MB "
            f"({before_ingest:,.0f} MB before ingesting)"
        )
        print()
        print("(c) baseline: pyarrow read_csv + write_table (zstd) of the same files")
        print(
            f"    {baseline_seconds:.1f}s = {total_rows / baseline_seconds:,.0f} rows/s; "
            f"ingestion takes {ingest_seconds / baseline_seconds:.1f}x the baseline's time"
        )
        print()
        print("(d) system pseudonyms: HMAC-SHA256 once per distinct number (best of 3)")
        for table, count, distinct, seconds in pseudonyms:
            print(
                f"      {table:<10} {count:>12,} values ({distinct:>10,} distinct) "
                f"{seconds:>7.2f}s  {count / seconds:>12,.0f} values/s  "
                f"{distinct / seconds:>10,.0f} HMACs/s"
            )
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
