"""The helper library analyses use inside the sandbox (``import sdelib``).

It reads the project's extract (read-only, at /input) and writes tables, charts and
model summaries to /output, each table with the evidence sidecar output checking reads:
per-cell distinct-person counts and, for magnitudes, dominance evidence, computed here
from the rows. A script cannot hand in evidence of its own: the library computes it.

    import sdelib
    patients = sdelib.read("patients")
    sdelib.table(patients, by=["sex"], name="people_by_sex", title="People by sex")
    sdelib.table(spells, by=["place"], value="cost", statistic="sum", name="cost_by_place",
                 title="Hospital cost by Place")

Files: ``<name>.csv`` and ``<name>.evidence.json`` per table, ``<name>.png`` per chart.
Progress (``sdelib.progress(50, "fitting")``), a cohort (built-in analyses only) and the
people behind each cell of a ``table`` (``ledger/<name>.parquet``, for output checking's
differencing rule) go to ``/output/.sde/``, which the environment reads and never
releases.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sde.phm.evidence import AnalysisResult, ChartSpec, ResultTable, count_table, magnitude_table
from sde.phm.ledger import LedgerTable

INPUT = Path(os.environ.get("SDE_SANDBOX_INPUT", "/input"))
OUTPUT = Path(os.environ.get("SDE_SANDBOX_OUTPUT", "/output"))
JOB = Path(os.environ.get("SDE_SANDBOX_JOB", "/job"))
CONTROL = OUTPUT / ".sde"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

__all__ = [
    "chart", "frames", "progress", "read", "table", "tables", "write_result", "write_table",
    "write_text",
]  # fmt: skip


def _context() -> dict[str, Any]:
    try:
        return dict(json.loads((JOB / "job.json").read_text()).get("context", {}))
    except (OSError, ValueError):
        return {}


def tables() -> list[str]:
    """The extract's tables (source table names, e.g. "patients", "gp_events")."""
    return sorted(p.stem.replace("-", "_") for p in INPUT.glob("*.parquet"))


def read(name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One table of the extract, by source table name (``gp_events``) or dataset slug."""
    path = INPUT / f"{name.replace('_', '-')}.parquet"
    if not path.is_file():
        raise KeyError(f"the extract has no table {name!r}; it has {', '.join(tables())}")
    return pd.read_parquet(path, columns=list(columns) if columns else None)


def frames() -> dict[str, pd.DataFrame]:
    """Every table of the extract, keyed by source table name."""
    return {name: read(name) for name in tables()}


def progress(percent: int, message: str = "") -> None:
    """Tell the page how far the analysis has got (0-100)."""
    CONTROL.mkdir(exist_ok=True)
    temporary = CONTROL / "progress.json.tmp"
    temporary.write_text(json.dumps({"progress": max(0, min(100, int(percent))),
                                     "message": str(message)[:200]}))  # fmt: skip
    temporary.replace(CONTROL / "progress.json")


def _checked(name: str) -> str:
    if not NAME.match(name) or name.startswith(".sde"):
        raise ValueError(f"{name!r} is not a file name (letters, digits, _ . -; 100 at most)")
    return name


def write_table(result: ResultTable, **context: Any) -> Path:
    """Write a table as CSV with its evidence sidecar; returns the CSV's path."""
    name = _checked(result.name)
    path = OUTPUT / f"{name}.csv"
    result.frame.to_csv(path, index=False)
    sidecar = result.sidecar(**_context(), **context)
    (OUTPUT / f"{name}.evidence.json").write_text(json.dumps(sidecar, indent=1))
    return path


def table(
    rows: pd.DataFrame,
    *,
    by: Sequence[str],
    name: str,
    title: str,
    value: str | None = None,
    statistic: str = "count",
    person: str = "person_id",
) -> ResultTable:
    """Aggregate ``rows`` by ``by`` (distinct people per group, or the sum or mean of
    ``value``), write it with its evidence, and return it."""
    if person not in rows.columns:
        raise KeyError(f"the rows need the {person!r} column so that people can be counted")
    if statistic == "count":
        result = count_table(rows, name=name, title=title, by=by, person=person)
    elif value is None:
        raise ValueError(f"a {statistic} needs the value column")
    else:
        result = magnitude_table(rows, name=name, title=title, by=by, value=value,
                                 statistic=statistic, person=person)  # fmt: skip
    write_table(result)
    _write_ledger(rows, by=by, person=person, name=result.name, statistic=statistic)
    return result


def _write_ledger(
    rows: pd.DataFrame, *, by: Sequence[str], person: str, name: str, statistic: str
) -> None:
    """The people behind each cell, for output checking's differencing rule; kept in the
    control folder, which the environment reads and never releases."""
    context = _context()
    ledger = LedgerTable.from_rows(
        rows, by, person, file=f"{name}.csv", statistic=statistic,
        extract=str(context.get("extract_id", "")), project=str(context.get("project_id", "")),
        id_space=f"project-{context.get('project_id', '')}",
    )  # fmt: skip
    folder = CONTROL / "ledger"
    folder.mkdir(parents=True, exist_ok=True)
    ledger.to_parquet(folder / f"{name}.parquet")


def chart(spec: ChartSpec, source: ResultTable) -> Path:
    """Draw ``spec`` from the published table ``source`` (never from rows) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    frame = source.frame
    figure, axes = pyplot.subplots(figsize=(8, 4.5), dpi=100)
    groups = [(None, frame)] if spec.group is None else list(frame.groupby(spec.group))
    width = 0.8 / max(1, len(groups))
    labels = frame[spec.x].astype(str).drop_duplicates().tolist()
    positions = {label: i for i, label in enumerate(labels)}
    for n, (group, part) in enumerate(groups):
        xs = [positions[str(v)] + (n - (len(groups) - 1) / 2) * width for v in part[spec.x]]
        ys = part[spec.y].astype(float)
        errors = None
        if spec.lower and spec.upper:
            errors = [ys - part[spec.lower].astype(float), part[spec.upper].astype(float) - ys]
        label = None if group is None else str(group)
        if spec.kind == "line":
            axes.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=label)
        else:
            axes.bar(xs, ys, width=width, yerr=errors, capsize=3, label=label)
    axes.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0)
    axes.set_xlabel(spec.x.replace("_", " "))
    axes.set_ylabel(spec.y.replace("_", " "))
    axes.set_title(spec.title)
    if spec.group is not None:
        axes.legend(title=spec.group.replace("_", " "))
    figure.tight_layout()
    path = OUTPUT / f"{_checked(spec.name)}.png"
    figure.savefig(path, format="png")
    pyplot.close(figure)
    described = {"chart": spec.name, "table": source.name, "kind": spec.kind, "x": spec.x,
                 "y": spec.y, "title": spec.title}  # fmt: skip
    (OUTPUT / f"{spec.name}.chart.json").write_text(json.dumps(described, indent=1))
    return path


def write_text(name: str, text: str) -> Path:
    """A plain-text output (e.g. a model summary written by hand)."""
    path = OUTPUT / f"{_checked(name)}.txt"
    path.write_text(text)
    return path


def write_result(result: AnalysisResult) -> None:
    """Write everything a built-in analysis produced: its tables with evidence, its
    charts, and its cohort (kept inside the environment)."""
    context = {"codelists": result.codelists, "parameters": result.parameters}
    for item in result.tables:
        write_table(item, **context)
    for spec in result.charts:
        chart(spec, result.table(spec.table))
    if result.cohort is not None:
        CONTROL.mkdir(exist_ok=True)
        people = pd.DataFrame({"person_id": pd.Series(result.cohort, dtype="str").unique()})
        people.to_parquet(CONTROL / "cohort.parquet", index=False)
