"""Reading an output and its evidence sidecar into what the rules check.

A table's evidence is written inside the environment by the helper library
(``sde.phm.evidence.ResultTable.sidecar``): per cell, the distinct persons behind each
statistic and, for magnitudes, the two largest per-person contributions, the total and
the negative and missing counts. The checker does not take it on trust: it re-derives
what the published file allows (the dimensions and row count must match; every count
must equal its persons; a magnitude's total must equal its sum) and a mismatch fails the
file, since a table whose evidence describes something else is unverifiable.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from outputs.sdc.results import Finding, Status

MAGNITUDE_KINDS: Final = frozenset({"sum", "mean"})
COUNT_KINDS: Final = frozenset({"count"})
# Statistics whose cells publish something about a group of people and so need T1.
THRESHOLDED_KINDS: Final = frozenset(
    {"count", "sum", "mean", "median", "percentile", "mode", "min", "max", "std", "rate",
     "proportion", "ratio", "ci_lower", "ci_upper"}
)  # fmt: skip
# Every kind the helper library writes (sde.phm.evidence.STATISTIC_KINDS).
KNOWN_KINDS: Final = THRESHOLDED_KINDS | {"coefficient", "statistic"}
MAGNITUDE_FIELDS: Final = ("top1", "top2", "total", "negatives", "missing")


class EvidenceError(ValueError):
    """The evidence cannot be read, or does not describe the published file."""


@dataclass(frozen=True)
class TableEvidence:
    """A published table with its evidence, aligned row by row.

    ``frame``: the published table (dimension columns, then statistic columns).
    ``persons``: distinct persons per statistic cell (same index, a column per statistic).
    ``magnitudes``: ``<column>.<field>`` per magnitude statistic, fields as
    ``MAGNITUDE_FIELDS``. ``extra``: other per-cell evidence by kind ("quantiles":
    persons ``below``/``above``; "modes": ``distinct`` values; "extremes": ``safe``).
    """

    name: str
    frame: pd.DataFrame
    dimensions: tuple[str, ...]
    statistics: Mapping[str, str]
    persons: pd.DataFrame
    magnitudes: pd.DataFrame | None = None
    derived_from: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    model: Mapping[str, Any] | None = None
    extra: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)

    def cell(self, row: int) -> dict[str, Any]:
        """The dimension values naming row ``row``."""
        return {d: _plain(self.frame.at[row, d]) for d in self.dimensions}

    def columns_of(self, *kinds: str) -> list[str]:
        return [c for c, k in self.statistics.items() if k in kinds]


def read_table(csv: bytes, name: str) -> pd.DataFrame:
    """A published CSV as strings-for-dimensions, numbers-for-statistics is decided by
    the evidence; here everything is read as text and converted by ``table_evidence``."""
    try:
        return pd.read_csv(io.BytesIO(csv), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise EvidenceError(f"{name} is not a readable CSV table: {error}") from error


def table_evidence(frame: pd.DataFrame, sidecar: Mapping[str, Any], name: str) -> TableEvidence:
    """Line the published ``frame`` (read as text) up with its ``sidecar``; raises
    ``EvidenceError`` if they do not describe the same table (and for any evidence it
    cannot read: the caller turns only that error into an unverifiable verdict)."""
    try:
        dimensions = tuple(str(d) for d in sidecar["dimensions"])
        statistics = {str(c): str(k) for c, k in dict(sidecar["statistics"]).items()}
        cells = list(sidecar["cells"])
    except (KeyError, TypeError, ValueError) as error:
        raise EvidenceError(f"{name}: the evidence lacks {error}") from error
    unknown = sorted(set(statistics.values()) - KNOWN_KINDS)
    if unknown:
        # A kind no rule knows would get no rules at all, and pass.
        raise EvidenceError(f"{name}: the evidence has statistics of unknown kinds: {unknown}")
    missing = [c for c in (*dimensions, *statistics) if c not in frame.columns]
    if missing:
        raise EvidenceError(f"{name}: the evidence names columns the table lacks: {missing}")
    undescribed = [c for c in frame.columns if c not in (*dimensions, *statistics)]
    if undescribed:
        raise EvidenceError(
            f"{name}: the table has columns its evidence does not describe: {undescribed}"
        )
    if len(cells) != len(frame):
        raise EvidenceError(
            f"{name}: the table has {len(frame)} rows but its evidence describes {len(cells)}"
        )
    if not all(isinstance(cell, dict) for cell in cells):
        raise EvidenceError(f"{name}: the evidence's cells are not all JSON objects")
    frame = frame.reset_index(drop=True).copy()
    for column in statistics:
        text = frame[column]
        numbers = pd.to_numeric(text.replace("", np.nan), errors="coerce")
        # Only an empty cell is a suppression; other text would be published unchecked.
        unreadable = text.ne("") & numbers.isna()
        if unreadable.any():
            row = int(unreadable.idxmax())
            raise EvidenceError(
                f"{name}: {column} in row {row + 1} is {text.at[row]!r}, not a number"
            )
        frame[column] = numbers
    try:
        return _lined_up(frame, sidecar, dimensions, statistics, cells, name)
    except EvidenceError:
        raise
    except (AttributeError, TypeError, ValueError) as error:
        raise EvidenceError(f"{name}: the evidence cannot be read: {error}") from error


def _lined_up(
    frame: pd.DataFrame,
    sidecar: Mapping[str, Any],
    dimensions: tuple[str, ...],
    statistics: dict[str, str],
    cells: list[dict[str, Any]],
    name: str,
) -> TableEvidence:
    persons = pd.DataFrame(
        {c: [_int(cell.get("persons", {}).get(c)) for cell in cells] for c in statistics},
        index=frame.index, dtype="Int64",
    )  # fmt: skip
    for position, cell in enumerate(cells):
        published = {d: str(frame.at[position, d]) for d in dimensions}
        recorded = {d: _text(cell.get("dimensions", {}).get(d)) for d in dimensions}
        if published != recorded:
            raise EvidenceError(
                f"{name}: row {position + 1} is {published} in the table but {recorded} "
                "in its evidence"
            )
    magnitude_columns = [c for c, k in statistics.items() if k in MAGNITUDE_KINDS]
    magnitudes = None
    if magnitude_columns:
        magnitudes = pd.DataFrame(
            {
                f"{c}.{f}": [
                    _float((cell.get("magnitudes") or {}).get(c, {}).get(f)) for cell in cells
                ]
                for c in magnitude_columns
                for f in MAGNITUDE_FIELDS
            },
            index=frame.index,
        )
    extra = {
        kind: pd.DataFrame(
            {
                f"{c}.{k}": [_float(((cell.get(kind) or {}).get(c) or {}).get(k)) for cell in cells]
                for c, keys in _extra_keys(cells, kind).items()
                for k in keys
            },
            index=frame.index,
        )
        for kind in ("quantiles", "modes", "extremes")
        if any(kind in cell for cell in cells)
    }
    context = {k: v for k, v in sidecar.items() if k not in {"cells", "dimensions", "statistics"}}
    return TableEvidence(
        name=name, frame=frame, dimensions=dimensions, statistics=statistics, persons=persons,
        magnitudes=magnitudes,
        derived_from={k: tuple(v) for k, v in dict(sidecar.get("derived_from") or {}).items()},
        model=sidecar.get("model"), extra=extra, context=context,
    )  # fmt: skip


def consistency(table: TableEvidence) -> list[Finding]:
    """Re-derive what the published table allows: a count must equal its persons, a sum
    its evidenced total, a mean its total over persons. A mismatch fails the cell (the
    evidence is not about what is published)."""
    findings = []
    rounding = table.context.get("rounding")
    base = int(rounding.get("base", 1)) if isinstance(rounding, Mapping) else 1
    for column in table.columns_of(*COUNT_KINDS):
        published, persons = table.frame[column], table.persons[column].astype("Float64")
        if base > 1:  # a declared rounding: R1 checks the rest
            persons = np.floor(persons / base + 0.5) * base
        bad = published.notna() & persons.notna() & (published != persons)
        findings += _mismatches(table, column, bad, persons, "its evidenced persons")
    for column in table.columns_of(*MAGNITUDE_KINDS):
        assert table.magnitudes is not None
        total = table.magnitudes[f"{column}.total"]
        expected = (
            total if table.statistics[column] == "sum"
            else total / table.persons[column].astype("Float64")
        )  # fmt: skip
        published = table.frame[column]
        bad = published.notna() & ~np.isclose(
            published.astype(float), expected.astype(float), rtol=1e-6, atol=1e-6
        )
        findings += _mismatches(table, column, pd.Series(bad, index=published.index), expected,
                                "the value its evidence gives")  # fmt: skip
    return findings


def _mismatches(
    table: TableEvidence, column: str, bad: pd.Series, expected: pd.Series, what: str
) -> list[Finding]:
    return [
        Finding(
            rule="evidence",
            status=Status.FAIL,
            row=int(row),
            column=column,
            cell=table.cell(int(row)),
            message=f"{column} is {_plain(table.frame.at[row, column])} but {what} is "
            f"{_plain(expected.at[row])}: the evidence does not describe this table",
            evidence={
                "published": _plain(table.frame.at[row, column]),
                "evidenced": _plain(expected.at[row]),
            },
        )
        for row in bad[bad.fillna(True).astype(bool)].index
    ]


def load_sidecar(data: bytes, name: str) -> dict[str, Any]:
    try:
        sidecar = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise EvidenceError(f"{name}: the evidence is not JSON: {error}") from error
    if not isinstance(sidecar, dict):
        raise EvidenceError(f"{name}: the evidence is not a JSON object")
    return sidecar


def _extra_keys(cells: list[dict[str, Any]], kind: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for cell in cells:
        for column, values in (cell.get(kind) or {}).items():
            for key in values or {}:
                keys.setdefault(column, [])
                if key not in keys[column]:
                    keys[column].append(key)
    return keys


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float:
    return np.nan if value is None else float(value)


def _text(value: Any) -> str:
    """A dimension value as ``to_csv`` writes it (None as an empty string)."""
    return "" if value is None else str(value)


def _plain(value: Any) -> Any:
    """A JSON-safe scalar."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
