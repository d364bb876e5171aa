"""Synthetic data benchmark: what a drop of N people costs to generate and write.

    python bench/synth.py [--patients N] [--seed S] [--out DIR]

Pure (no Django, no database). In one run it measures

  (a) ``generate`` for N people (default 1,000,000) with every table, then ``write_drop``
      (CSV files, ndop.csv, manifest.json with SHA-256s) into a temporary directory or
      --out; rows per table, the files' total size, and the process's peak resident memory
      (``ru_maxrss``) when it is done;
  (b) a baseline: NumPy drawing as many rows as the drop has, four random integer columns
      below 10^9 each (so the CSV is about the same size), and pyarrow writing them as CSV
      in two files on two threads, as ``write_drop`` does;

and prints the ratio of (a) to (b): the price of realism over writing that much data.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sde.data.synth import generate, write_drop


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000, help="people (1,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--out", type=Path, help="keep the drop here (default: a temp dir)")
    return parser.parse_args()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _baseline(rows: int, out: Path) -> tuple[float, float, int]:
    """(generate seconds, write seconds, bytes) for ``rows`` rows of four random ints."""
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    halves = [
        pa.table({f"c{i}": rng.integers(0, 10**9, size=part) for i in range(4)})
        for part in (rows // 2, rows - rows // 2)
    ]
    generated = time.perf_counter()
    paths = [out / f"baseline_{i}.csv" for i in range(2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda job: pa_csv.write_csv(*job), zip(halves, paths, strict=True)))
    written = time.perf_counter()
    return generated - started, written - generated, sum(p.stat().st_size for p in paths)


def main() -> None:
    args = _parse_args()
    print(__doc__.split("\n\n")[0])
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"pyarrow {pa.__version__}, {platform.machine()}, {os.cpu_count()} CPUs"
    )
    temporary = args.out is None
    out = Path(tempfile.mkdtemp(prefix="synth-bench-")) if temporary else args.out
    try:
        rss_before = _peak_rss_mb()
        started = time.perf_counter()
        drop = generate(patients=args.patients, seed=args.seed)
        generated = time.perf_counter()
        manifest = write_drop(drop, out / "drop")
        written = time.perf_counter()
        peak = _peak_rss_mb()
        t_generate, t_write = generated - started, written - generated
        rows = manifest.total_rows
        print(f"\n(a) generate + write_drop: {args.patients:,} people, seed {args.seed}")
        for name, entry in manifest.files.items():
            print(f"  {name:<24} {entry.rows:>12,d} rows {entry.bytes / 1e6:>9,.1f} MB")
        print(f"  {'total':<24} {rows:>12,d} rows {manifest.total_bytes / 1e6:>9,.1f} MB")
        print(f"  generate                   {t_generate:6.2f} s")
        print(f"  write_drop (2 threads)     {t_write:6.2f} s")
        print(f"  total                      {t_generate + t_write:6.2f} s")
        print(f"  peak RSS                   {peak:,.0f} MB (after imports: {rss_before:,.0f} MB)")
        del drop

        b_generate, b_write, b_bytes = _baseline(rows, out)
        print(f"\n(b) baseline: {rows:,} rows x 4 random int64 columns, pyarrow CSV, 2 threads")
        print(f"  numpy generate             {b_generate:6.2f} s")
        print(f"  pyarrow write              {b_write:6.2f} s ({b_bytes / 1e6:,.1f} MB)")
        print(f"  total                      {b_generate + b_write:6.2f} s")
        ratio = (t_generate + t_write) / (b_generate + b_write)
        print(f"\n(a) / (b) total time         {ratio:6.2f}x")
    finally:
        if temporary:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
