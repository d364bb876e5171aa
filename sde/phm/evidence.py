"""What an analysis returns: published tables with the evidence output checking reads.

Output checking (reference/disclosure-control.md) checks evidence, not pictures: for each
published cell, the number of **distinct people** behind it, and for magnitude cells
(sums, means, costs) the two largest contributions aggregated by person, the total, and
how many contributions were negative or missing. That evidence can only be computed
inside the environment, from the rows, so every analysis returns it with its tables;
the job writes it beside each CSV as a JSON sidecar, and a researcher never edits it.

``ResultTable`` is one published table; ``ChartSpec`` draws a chart from a table (never
from rows); ``AnalysisResult`` is everything one analysis produced. ``count_table`` and
``magnitude_table`` build the common shapes from person-level rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

# The kinds of statistic a column can hold; output checking picks its rules by kind.
STATISTIC_KINDS: Final = frozenset(
    {
        "count",  # people (or events) in the cell: threshold, zeros
        "sum", "mean",  # magnitudes: threshold, dominance, p%
        "median", "percentile", "mode", "min", "max", "std",
        "rate", "proportion", "ratio",  # derived from counts named in ``derived_from``
        "ci_lower", "ci_upper",  # a confidence limit of another column
        "coefficient", "statistic",  # model outputs (dof in ``model``)
    }
)  # fmt: skip
MAGNITUDE_KINDS: Final = frozenset({"sum", "mean"})
EVIDENCE_VERSION: Final = 1


@dataclass(frozen=True)
class ResultTable:
    """A published table and its evidence.

    ``frame``: the dimension columns, then the statistic columns, one row per cell group.
    ``persons``: same index as ``frame``, one column per statistic column: the distinct
    people behind that cell (for a rate, the people in its numerator; its denominator is
    named in ``derived_from``). ``magnitudes``: for each magnitude column, per row,
    ``top1``, ``top2`` (the two largest per-person totals), ``total``, ``negatives`` and
    ``missing`` (columns named ``"<column>.<field>"``). ``model``: for a model summary,
    ``{"observations", "parameters", "residual_dof"}``. ``extra``: further per-cell
    evidence by kind, columns ``"<column>.<key>"``: "quantiles" (people ``below`` and
    ``above`` a median or percentile), "modes" (``distinct`` values in the cell),
    "extremes" (``safe``: 1 when a min or max is the mean of the most extreme people).
    """

    name: str
    title: str
    frame: pd.DataFrame
    dimensions: tuple[str, ...]
    statistics: Mapping[str, str]
    persons: pd.DataFrame
    derived_from: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    magnitudes: pd.DataFrame | None = None
    model: Mapping[str, Any] | None = None  # schema: outputs/sdc/regression.py
    description: str = ""
    extra: Mapping[str, pd.DataFrame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = {k for k in self.statistics.values() if k not in STATISTIC_KINDS}
        if unknown:
            raise ValueError(f"unknown statistic kinds: {sorted(unknown)}")
        missing = [c for c in (*self.dimensions, *self.statistics) if c not in self.frame.columns]
        if missing:
            raise ValueError(f"{self.name}: columns not in the table: {missing}")
        if not self.persons.index.equals(self.frame.index):
            raise ValueError(f"{self.name}: the person counts do not line up with the rows")
        lacking = [c for c in self.statistics if c not in self.persons.columns]
        if lacking:
            raise ValueError(f"{self.name}: no person counts for {lacking}")
        needs = [c for c, k in self.statistics.items() if k in MAGNITUDE_KINDS]
        evidenced = self.magnitudes is not None and self.magnitudes.index.equals(self.frame.index)
        if needs and not evidenced:
            raise ValueError(f"{self.name}: magnitude columns {needs} need their evidence")

    def sidecar(self, **context: Any) -> dict[str, Any]:
        """The JSON evidence for this table (``context``: extract id, cohort, codelist
        versions ... added by the job)."""
        cells = []
        for position, (index, row) in enumerate(self.frame.iterrows()):
            cell: dict[str, Any] = {
                "row": position,
                "dimensions": {d: _json(row[d]) for d in self.dimensions},
                "persons": {c: _json(self.persons.at[index, c]) for c in self.statistics},
            }
            if self.magnitudes is not None:
                cell["magnitudes"] = {
                    c: {f: _json(self.magnitudes.at[index, f"{c}.{f}"]) for f in MAGNITUDE_FIELDS}
                    for c, k in self.statistics.items()
                    if k in MAGNITUDE_KINDS
                }
            for kind, values in self.extra.items():
                cell[kind] = _extra_cell(values, index)
            cells.append(cell)
        return {
            "evidence_version": EVIDENCE_VERSION,
            "table": self.name,
            "title": self.title,
            "description": self.description,
            "dimensions": list(self.dimensions),
            "statistics": dict(self.statistics),
            "derived_from": {k: list(v) for k, v in self.derived_from.items()},
            "model": dict(self.model) if self.model is not None else None,
            "rows": len(self.frame),
            "cells": cells,
            **context,
        }


MAGNITUDE_FIELDS: Final = ("top1", "top2", "total", "negatives", "missing")


@dataclass(frozen=True)
class ChartSpec:
    """A chart drawn from one of the result's tables: ``kind`` "bar" or "line"; ``y`` a
    statistic column; optional confidence limits; ``group`` splits bars or lines."""

    name: str
    table: str
    kind: str
    x: str
    y: str
    title: str
    lower: str | None = None
    upper: str | None = None
    group: str | None = None


@dataclass
class AnalysisResult:
    """Everything one analysis produced. ``cohort``: the project pseudonyms of a case-
    finding cohort, kept inside the environment and never written as an output."""

    tables: list[ResultTable]
    charts: list[ChartSpec] = field(default_factory=list)
    codelists: dict[str, int] = field(default_factory=dict)  # id -> version used
    parameters: dict[str, Any] = field(default_factory=dict)
    cohort: pd.Series | None = None

    def table(self, name: str) -> ResultTable:
        return next(t for t in self.tables if t.name == name)


# --- Builders ---------------------------------------------------------------------------
def count_table(
    rows: pd.DataFrame,
    *,
    name: str,
    title: str,
    by: Sequence[str],
    person: str = "person_id",
    count: str = "people",
    description: str = "",
) -> ResultTable:
    """Distinct people per combination of ``by`` in person-level (or event-level) rows:
    one row per observed group, in sorted order."""
    counts = rows.groupby(list(by), observed=True, sort=True)[person].nunique().rename(count)
    frame = counts.reset_index()
    persons = frame[[count]].copy()
    return ResultTable(
        name=name, title=title, frame=frame, dimensions=tuple(by),
        statistics={count: "count"}, persons=persons, description=description,
    )  # fmt: skip


def magnitude_evidence(
    rows: pd.DataFrame, *, by: Sequence[str], value: str, person: str = "person_id"
) -> pd.DataFrame:
    """Per group of ``by``: people, the sum, and the dominance evidence of ``value`` with
    contributions aggregated by person first (one person's ten rows are one contribution).
    Columns: persons, sum, top1, top2, total, negatives, missing."""
    keys = list(by)
    values = rows[value]
    per_person = (
        rows[[*keys, person]]
        .assign(total=values.fillna(0.0), negatives=(values < 0).astype("int64"),
                missing=values.isna().astype("int64"))
        .groupby([*keys, person], observed=True, sort=False)[["total", "negatives", "missing"]]
        .sum()
        .sort_values("total", ascending=False, kind="stable")
        .reset_index()
    )  # fmt: skip
    grouped = per_person.groupby(keys, observed=True, sort=True)
    out = grouped.agg(
        persons=(person, "size"), sum=("total", "sum"), top1=("total", "first"),
        negatives=("negatives", "sum"), missing=("missing", "sum"),
    )  # fmt: skip
    second = per_person[grouped.cumcount() == 1].set_index(keys)["total"]
    out["top2"] = second.reindex(out.index, fill_value=0.0)
    out["total"] = out["sum"]
    return out


def magnitude_table(
    rows: pd.DataFrame,
    *,
    name: str,
    title: str,
    by: Sequence[str],
    value: str,
    statistic: str = "sum",
    person: str = "person_id",
    description: str = "",
) -> ResultTable:
    """The sum (or mean per person) of ``value`` per group of ``by``, with people counts
    and dominance evidence."""
    if statistic not in MAGNITUDE_KINDS:
        raise ValueError(f"not a magnitude statistic: {statistic}")
    evidence = magnitude_evidence(rows, by=by, value=value, person=person).reset_index()
    column = f"{statistic}_{value}"
    result = evidence["sum"] if statistic == "sum" else evidence["sum"] / evidence["persons"]
    frame = evidence[list(by)].assign(people=evidence["persons"], **{column: result})
    persons = pd.DataFrame({"people": evidence["persons"], column: evidence["persons"]})
    magnitudes = pd.DataFrame(
        {f"{column}.{f}": evidence[f] for f in MAGNITUDE_FIELDS}, index=frame.index
    )
    return ResultTable(
        name=name, title=title, frame=frame, dimensions=tuple(by),
        statistics={"people": "count", column: statistic}, persons=persons,
        magnitudes=magnitudes, description=description,
    )  # fmt: skip


def _extra_cell(values: pd.DataFrame, index: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in values.columns:
        column, key = name.rsplit(".", 1)
        out.setdefault(column, {})[key] = _json(values.at[index, name])
    return out


ORDER_KINDS: Final = frozenset({"median", "percentile", "std", "min", "max", "mode"})


def statistic_table(
    rows: pd.DataFrame,
    *,
    name: str,
    title: str,
    by: Sequence[str],
    value: str,
    statistic: str,
    person: str = "person_id",
    quantile: float = 0.5,
    safe_extreme: int | None = None,
    description: str = "",
) -> ResultTable:
    """A median, percentile, standard deviation, minimum, maximum or mode of ``value``
    per group of ``by``, with the people behind each cell and the evidence its rule
    needs: people either side of a quantile (P1), the number of distinct values (O1), and
    whether an extreme is safe (E1). ``safe_extreme``: publish a minimum or maximum as
    the mean of that many most extreme people's values instead of one person's."""
    if statistic not in ORDER_KINDS:
        raise ValueError(f"not an order statistic: {statistic}")
    keys = list(by)
    data = rows[[*keys, person, value]].dropna(subset=[value])
    grouped = data.groupby(keys, observed=True, sort=True)
    people = grouped[person].nunique().rename("people")
    column = f"{statistic}_{value}"
    extra: dict[str, pd.DataFrame] = {}
    if statistic in {"median", "percentile"}:
        q = 0.5 if statistic == "median" else quantile
        result = grouped[value].quantile(q).rename(column)
        cut = data.join(result, on=keys)
        sides = cut.assign(below=cut[value] < cut[column], above=cut[value] > cut[column])
        counted = {
            side: sides[sides[side]].groupby(keys, observed=True)[person].nunique()
            for side in ("below", "above")
        }
        extra["quantiles"] = pd.DataFrame(
            {
                f"{column}.{side}": n.reindex(result.index, fill_value=0)
                for side, n in counted.items()
            }
        )
    elif statistic == "std":
        result = grouped[value].std(ddof=1).rename(column)
    elif statistic == "mode":
        result = grouped[value].agg(lambda v: v.mode().iloc[0]).rename(column)
        extra["modes"] = grouped[value].nunique().rename(f"{column}.distinct").to_frame()
    else:
        if safe_extreme is None:
            result = grouped[value].agg(statistic).rename(column)
        else:
            per_person = data.groupby([*keys, person], observed=True)[value].agg(statistic)
            ascending = statistic == "min"
            ranked = per_person.sort_values(ascending=ascending, kind="stable")
            top = ranked.groupby(level=keys, observed=True, sort=True).head(safe_extreme)
            result = top.groupby(level=keys, observed=True, sort=True).mean().rename(column)
        safe = pd.Series(int(safe_extreme is not None), index=result.index)
        extra["extremes"] = safe.rename(f"{column}.safe").to_frame()
    frame = pd.concat([people, result], axis=1).reset_index()
    index = frame.index
    return ResultTable(
        name=name, title=title, frame=frame, dimensions=tuple(keys),
        statistics={"people": "count", column: statistic},
        persons=pd.DataFrame({"people": frame["people"], column: frame["people"]}),
        extra={kind: v.reset_index(drop=True).set_axis(index) for kind, v in extra.items()},
        description=description,
    )  # fmt: skip


def _json(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.date().isoformat()
    return value
