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
      valid patient NHS numbers (all distinct) and over the GP events column (repeats);
  (e) the real ``build_extract`` (``EXTRACT_FIELDS``: research under s251, so NDOP and
      Type 1 apply; adults; GP events from two years before the drop's end), each step
      timed, against the same cohort, date range, opt-out anti-join and projection in
      DuckDB (``bench/requirements.txt``; skipped without it) on the same Parquet files,
      written as zstd Parquet. DuckDB cannot compute HMAC project pseudonyms: its files
      keep the system pseudonyms, and the builder's time in them is reported apart.
      Row counts must be equal per table (a difference stops the bench as a finding).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from measure import machine, peak_mb, timed  # bench/measure.py, beside this script

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
# (e): the scope built, by dataset slug -> fields; adults; GP events from two years back.
EXTRACT_FIELDS = {
    "patients": ("person_id", "birth_month", "sex", "imd_decile", "ethnicity"),
    "gp-events": ("person_id", "date", "snomed_code", "value"),
}
EXTRACT_PROJECT, EXTRACT_AGE_MIN, EXTRACT_YEARS = 1, 18, 2


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument("--seed", type=int, default=20250301, help="S (default 20250301)")
    return parser.parse_args()


# --- (a) synthetic data, in a child process -------------------------------------------------
def _synthesise(patients: int, seed: int, out: Path) -> dict[str, Any]:
    generate_seconds, drop = timed(lambda: generate(patients=patients, seed=seed))
    write_seconds, manifest = timed(lambda: write_drop(drop, out))
    return {
        "generate": generate_seconds,
        "write": write_seconds,
        "rows": {name.removesuffix(".csv"): e.rows for name, e in manifest.files.items()},
        "bytes": manifest.total_bytes,
        "end": manifest.end,
        "peak_mb": peak_mb(),
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
    return min(timed(action)[0] for _ in range(repeat))


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


# --- (e) extract build against DuckDB ------------------------------------------------------
class _Profile:
    """Exclusive wall time of wrapped functions (less the wrapped calls made inside)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []

    def wrap(self, name: str, function: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: Any, **kwargs: Any) -> T:
            self._inner.append(0.0)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds[name] += elapsed - self._inner.pop()
                if self._inner:
                    self._inner[-1] += elapsed

        return timed


HMAC_STEP, MAPPING_STEP = "project pseudonyms: HMAC", "project pseudonyms: unique, map, take"


@contextlib.contextmanager
def _profiled_builder(profile: _Profile) -> Iterator[None]:
    """Time the builder's steps in place, through the module attributes it calls."""
    from sde.data import extracts, optouts, pseudonymisation, register

    make_loader = extracts._version_loader
    steps: list[tuple[Any, str, Callable[..., Any]]] = [
        (extracts, "_version_loader",
         lambda versions: profile.wrap("read dataset Parquet", make_loader(versions))),
        (extracts, "_cohort", profile.wrap("cohort: ages from birth_month", extracts._cohort)),
        (extracts, "_date_range", profile.wrap("date range", extracts._date_range)),
        (register, "optout_ids", profile.wrap("read opt-out snapshot", register.optout_ids)),
        (optouts, "people_to_remove", profile.wrap("opt-out mask", optouts.people_to_remove)),
        (pseudonymisation, "project_pseudonyms",
         profile.wrap(HMAC_STEP, pseudonymisation.project_pseudonyms)),
        (extracts._ProjectPseudonyms, "replace",
         profile.wrap(MAPPING_STEP, extracts._ProjectPseudonyms.replace)),
        (pq, "write_table", profile.wrap("write Parquet (zstd)", pq.write_table)),
        (extracts, "file_sha256", profile.wrap("SHA-256 of the files", extracts.file_sha256)),
        (extracts, "_publish", profile.wrap("publish (row, audit event)", extracts._publish)),
    ]  # fmt: skip
    with contextlib.ExitStack() as stack:
        for module, name, replacement in steps:
            stack.enter_context(mock.patch.object(module, name, replacement))
        yield


def _build(end: date) -> tuple[Any, float, Any, _Profile]:
    """(scope, seconds, the Extract, its step times) of the real ``build_extract``."""
    from sde.audit.services import get_system_user
    from sde.data.extracts import CohortFilters, ExtractScope, build_extract

    scope = ExtractScope(
        project_id=EXTRACT_PROJECT, datasets=EXTRACT_FIELDS, purpose="research",
        legal_basis="s251_standard", cohort=CohortFilters(age_min=EXTRACT_AGE_MIN),
        date_from=(pd.Timestamp(end) - pd.DateOffset(years=EXTRACT_YEARS)).date(),
    )  # fmt: skip
    system, profile = get_system_user(), _Profile()
    with _profiled_builder(profile):
        seconds, extract = timed(lambda: build_extract(scope=scope, by=system))
    return scope, seconds, extract, profile


def _sql_text(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _duckdb_extract(duckdb: Any, scope: Any, out: Path) -> dict[str, Any]:
    """The builder's cohort, date range, opt-out anti-join and projection in DuckDB, on the
    latest dataset versions and the current opt-out snapshot, one zstd Parquet file per
    dataset in ``out``; ``person_id`` stays the system pseudonym (no HMAC in DuckDB)."""
    from django.utils import timezone

    from sde.data import register
    from sde.data.files import data_root
    from sde.data.models import Dataset, DatasetVersion

    people = source_format.PEOPLE_TABLE
    datasets = {d.slug: d for d in Dataset.objects.filter(slug__in=list(scope.datasets))}
    tables = [people, *(d.source_table for d in datasets.values())]
    versions = DatasetVersion.objects.filter(dataset__source_table__in=tables)
    paths = {v.dataset.source_table: data_root() / v.path
             for v in versions.select_related("dataset").order_by("version")}  # fmt: skip
    snapshot = register.current_snapshot()  # there is one: the builder needed it
    # The builder's age: whole years at date_to or today; no birth month never qualifies.
    ref = scope.date_to or timezone.localdate()
    age = f"{ref.year} - year(birth_month) - ({ref.month} < month(birth_month))::INTEGER"
    rows: dict[str, int] = {}
    out.mkdir()
    files = {slug: _sql_text(out / f"{slug}.parquet") for slug in scope.datasets}
    with duckdb.connect() as con:
        started = time.perf_counter()
        con.execute(
            f"CREATE TEMP TABLE cohort AS SELECT DISTINCT person_id "
            f"FROM read_parquet({_sql_text(paths[people])}) "
            f"WHERE {age} >= {int(scope.cohort.age_min)}"
        )
        con.execute(
            f"CREATE TEMP TABLE optouts AS SELECT DISTINCT kind, person_id "
            f"FROM read_parquet({_sql_text(data_root() / snapshot.path)})"
        )
        for slug, fields in scope.datasets.items():
            dataset = datasets[slug]
            # NDOP applies to every table, Type 1 to GP-sourced ones; no pseudonym, no row.
            kinds = "'ndop', 'type1'" if dataset.gp_sourced else "'ndop'"
            where = ["t.person_id IS NOT NULL"]
            column = source_format.MAIN_DATE.get(dataset.source_table)
            if column and dataset.source_table != people:
                for bound, op in ((scope.date_from, ">="), (scope.date_to, "<=")):
                    if bound:
                        where.append(f't."{column}" {op} TIMESTAMP {_sql_text(bound)}')
            select = ", ".join(f't."{f}"' for f in fields)
            query = (
                f"SELECT {select} "
                f"FROM read_parquet({_sql_text(paths[dataset.source_table])}) AS t "
                f"SEMI JOIN cohort AS c ON t.person_id = c.person_id "
                f"ANTI JOIN (SELECT person_id FROM optouts WHERE kind IN ({kinds})) AS o "
                f"ON t.person_id = o.person_id WHERE {' AND '.join(where)}"
            )
            copy = f"COPY ({query}) TO {files[slug]} (FORMAT parquet, COMPRESSION zstd)"
            rows[slug] = int(con.execute(copy).fetchone()[0])
        seconds = time.perf_counter() - started
        # Not timed: the people in all outputs (the builder hashes each person once).
        every = f"[{', '.join(files.values())}], union_by_name = true"
        query = f"SELECT count(DISTINCT person_id) FROM read_parquet({every})"
        (people_count,) = con.execute(query).fetchone()
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    rows_in = {slug: pq.read_metadata(paths[d.source_table]).num_rows
               for slug, d in datasets.items()}  # fmt: skip
    return {"seconds": seconds, "rows": rows, "rows_in": rows_in, "ref": ref,
            "hmacs": people_count, "people": people_count, "threads": threads}  # fmt: skip


def _size_mb(folder: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in folder.rglob(pattern)) / 1e6


def _print_extract(
    scope: Any, seconds: float, extract: Any, profile: _Profile, duck: dict[str, Any]
) -> list[str]:
    """Print (e); return what differs between the builder and DuckDB (a finding)."""
    from sde.data.files import data_root

    built = {t["dataset"]: t["rows"] for t in extract.tables.values()}
    counts = [*((slug, duck["rows_in"][slug], built.get(slug, 0), duck["rows"][slug])
                for slug in scope.datasets),
              ("people", None, extract.person_count, duck["people"])]  # fmt: skip
    print(
        "(e) extract build: build_extract (the real service) vs the same work in DuckDB\n"
        f"    project {scope.project_id}, {scope.purpose} under {scope.legal_basis}: NDOP "
        f"applied {extract.treatment['ndop_applied']}, Type 1 applied "
        f"{extract.treatment['type1_applied']}; age >= {scope.cohort.age_min} on "
        f"{duck['ref']}; GP events from {scope.date_from}"
    )
    print(f"      {'':<10} {'rows in':>12} {'builder out':>12} {'DuckDB out':>12}  fields")
    for slug, rows_in, ours, theirs in counts:
        print(
            f"      {slug:<10} {'' if rows_in is None else f'{rows_in:,}':>12} {ours:>12,} "
            f"{theirs:>12,}  {', '.join(scope.datasets.get(slug, ())) or 'distinct'}"
            + ("" if ours == theirs else "  DIFFERENT")
        )
    print(f"      opt-outs removed {extract.rows_removed:,} rows "
          f"({extract.people_removed:,} people) in the builder")  # fmt: skip
    mb = _size_mb(data_root() / extract.path, "*.parquet")
    print(f"    builder {seconds:>8.2f}s  ({mb:,.1f} MB of Parquet), of which:")
    steps = sorted(profile.seconds.items(), key=lambda item: -item[1])
    steps.append(("other (checks, keys, filters, select)", seconds - sum(profile.seconds.values())))
    for step, step_seconds in steps:
        print(f"      {step:<40} {step_seconds:>8.2f}s  {step_seconds / seconds:>4.0%}")
    print(
        f"    DuckDB  {duck['seconds']:>8.2f}s  ({duck['threads']} threads) the same cohort, date "
        f"range, opt-out anti-join,\n              projection and zstd Parquet, WITHOUT "
        f"pseudonymisation: DuckDB cannot compute\n              HMAC project pseudonyms, so "
        f"its files keep the system pseudonyms"
    )
    hmac_seconds = profile.seconds[HMAC_STEP]
    pseudonyms = hmac_seconds + profile.seconds[MAPPING_STEP]
    print(
        f"    ratio builder / DuckDB {seconds / duck['seconds']:.1f}x; less the builder's "
        f"project pseudonyms ({pseudonyms:.2f}s): {(seconds - pseudonyms) / duck['seconds']:.1f}x"
        f"\n    project_pseudonyms in this build: {duck['hmacs']:,} HMACs (each person once,"
        f" across tables) in {hmac_seconds:.2f}s = {duck['hmacs'] / hmac_seconds:,.0f}/s"
    )
    return [slug for slug, _, ours, theirs in counts if ours != theirs]


def main() -> None:
    args = _parse_args()
    try:
        import duckdb  # the baseline of (e) only: bench/requirements.txt
    except ImportError:
        duckdb = None
    n = args.patients
    var_dir = Path(tempfile.mkdtemp(prefix="sde-bench-data-"))
    drop, scratch = var_dir / "drop", var_dir / "baseline"
    scratch.mkdir()
    try:
        print("sde data layer benchmark")
        print(f"  machine   {machine()}")
        print(
            f"  python    {platform.python_version()}, pandas {pd.__version__}, "
            f"pyarrow {pa.__version__}, duckdb "
            f"{duckdb.__version__ if duckdb else 'not installed (stage e is skipped)'}"
        )
        print(f"  people    N = {n:,} (seed {args.seed}, default fault rates)", flush=True)

        # Fork before Django starts; the child's peak memory is the generator's alone.
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("fork")) as pool:
            synth = pool.submit(_synthesise, n, args.seed, drop).result()
        rows = synth["rows"]
        total_rows = sum(rows.values())
        print(f"  ... synthetic drop written: {total_rows:,} rows", file=sys.stderr, flush=True)

        database = _start_django(var_dir)
        before_ingest = peak_mb()
        ingest_seconds, ingest, stages = _ingest(drop)
        ingest_peak = peak_mb()
        print(f"  ... ingested in {ingest_seconds:.1f}s", file=sys.stderr, flush=True)
        from sde.data.models import IdentityVaultRecord

        vault_records = IdentityVaultRecord.objects.count()
        tables = [t for t in source_format.TABLES if (drop / f"{t}.csv").exists()]
        baseline_seconds = _baseline(drop, tables, scratch)
        pseudonyms = _pseudonym_rates(drop)
        if duckdb is not None:
            scope, build_seconds, extract, profile = _build(synth["end"])
            print(f"  ... extract built in {build_seconds:.1f}s", file=sys.stderr, flush=True)
            duck = _duckdb_extract(duckdb, scope, var_dir / "duckdb")

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
        print()
        if duckdb is None:
            print("(e) extract build: SKIPPED, no DuckDB (pip install -r bench/requirements.txt)")
            return
        mismatched = _print_extract(scope, build_seconds, extract, profile, duck)
        if mismatched:
            raise SystemExit(
                "FINDING: the builder's and DuckDB's counts differ: " + ", ".join(mismatched)
            )
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
