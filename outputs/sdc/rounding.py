"""Redact-then-round mitigation and rule R1 (reference/disclosure-control.md).

Rounding is deterministic: a count at or below the policy's redaction level is blanked,
every other count is rounded to the nearest multiple of the base with ties rounded up, so
the same true count always publishes the same value and two releases cannot be averaged
to recover it. Published totals are the sums of the rounded cells that are shown (a
redacted cell adds nothing), never rounded true totals: a rounded true total beside rounded
cells gives the rounding error of the cells away.

The helpers for published totals (``declared_totals``, ``sum_of_cells``) and for what a
blanked cell is (``blank_cells``) live here and are shared with ``suppression``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

import numpy as np
import pandas as pd

from outputs.sdc.evidence import THRESHOLDED_KINDS, TableEvidence, _plain
from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Mitigation, Status
from outputs.sdc.tables import check_table

TOTAL_LABEL: Final = "Total"


def declared_totals(table: TableEvidence) -> dict[str, str]:
    """The sidecar's ``"totals": {"<dimension>": "<label>"}``: rows whose value in that
    dimension is ``<label>`` hold the sum over the dimension's other levels. Dimensions
    the table does not have are ignored."""
    declared = table.context.get("totals") or {}
    if not isinstance(declared, Mapping):
        return {}
    return {str(d): str(label) for d, label in declared.items() if d in table.dimensions}


def at_total(
    frame: pd.DataFrame, dimensions: Sequence[str], totals: Mapping[str, str]
) -> pd.DataFrame:
    """Per row and dimension: is the row that dimension's total?"""
    return pd.DataFrame(
        {d: frame[d].astype(str) == totals[d] if d in totals else False for d in dimensions},
        index=frame.index, dtype=bool,
    )  # fmt: skip


def sum_of_cells(
    frame: pd.DataFrame, dimensions: Sequence[str], totals: Mapping[str, str], values: pd.Series
) -> pd.Series:
    """For each total row, the sum of ``values`` over the innermost cells (rows at no
    total) it covers; NaN on the innermost rows and where no covered cell has a value.
    One group-by per pattern of total dimensions (at most 2^dimensions of them)."""
    flags = at_total(frame, dimensions, totals)
    inner = ~flags.any(axis=1)
    keys = frame[list(dimensions)].astype(str)
    out = pd.Series(np.nan, index=frame.index, dtype=float)
    for _, pattern in flags[~inner].drop_duplicates().iterrows():
        rows = (flags == pattern).all(axis=1)
        by = [d for d in dimensions if not pattern[d]]
        if not by:
            out[rows] = values[inner].sum(min_count=1)
            continue
        sums = (
            keys.loc[inner, by].assign(_v=values[inner].astype(float))
            .groupby(by, sort=False)["_v"].sum(min_count=1).rename("_s").reset_index()
        )  # fmt: skip
        out[rows] = keys.loc[rows, by].merge(sums, on=by, how="left")["_s"].to_numpy()
    return out


def blank_cells(table: TableEvidence, blank: pd.DataFrame) -> TableEvidence:
    """``table`` with the cells marked in ``blank`` (rows x statistic columns) unpublished:
    the value and its evidence removed, so every rule sees a cell that is not there."""
    frame, persons = table.frame.copy(), table.persons.copy()
    magnitudes = None if table.magnitudes is None else table.magnitudes.copy()
    extra = {kind: values.copy() for kind, values in table.extra.items()}
    for column in table.statistics:
        mask = blank[column].to_numpy(dtype=bool) if column in blank else None
        if mask is None or not mask.any():
            continue
        frame.loc[mask, column] = np.nan
        persons.loc[mask, column] = pd.NA
        for values in (magnitudes, *extra.values()):
            if values is not None:
                own = [c for c in values.columns if c.startswith(f"{column}.")]
                values.loc[mask, own] = np.nan
    return replace(table, frame=frame, persons=persons, magnitudes=magnitudes, extra=extra)


def round_to_base(values: pd.Series, base: int) -> pd.Series:
    """Nearest multiple of ``base``, ties up (15 → 20 for base 10): a fixed rule, so the
    same count always rounds the same way."""
    return np.floor(values.astype(float) / base + 0.5) * base


def true_counts(table: TableEvidence, column: str) -> pd.Series:
    """A count column's true values: its distinct persons, or the published value where
    the evidence has none."""
    return table.persons[column].astype("Float64").fillna(table.frame[column]).astype(float)


def redact_and_round(table: TableEvidence, policy: Policy) -> Mitigation:
    """The ``round`` mitigation: counts at or below ``policy.redaction_level`` are blanked,
    the rest rounded to ``policy.rounding_base``; any other statistic of a group of that
    few people is blanked with them; declared total rows become the sums of the shown
    rounded cells (blank when none is shown or their own true count is redacted). The
    rules and R1 are re-run on the result."""
    level, base = policy.redaction_level, policy.rounding_base
    totals = declared_totals(table)
    is_total = at_total(table.frame, table.dimensions, totals).any(axis=1)
    frame = table.frame.copy()
    blank = pd.DataFrame(False, index=frame.index, columns=list(table.statistics))
    for column in table.columns_of(*THRESHOLDED_KINDS):
        blank[column] = (
            (table.persons[column].astype("Float64") <= level).fillna(False).astype(bool)
        )
    for column in table.columns_of("count"):
        true = true_counts(table, column)
        blank[column] |= (true <= level).to_numpy()
        frame[column] = round_to_base(true, base).where(~blank[column])
        summed = sum_of_cells(frame, table.dimensions, totals, frame[column])
        frame.loc[is_total, column] = summed[is_total].where(~blank.loc[is_total, column])
        blank[column] |= frame[column].isna() & table.frame[column].notna()
    rounding = {"base": base, "redaction": level}
    published = blank_cells(
        replace(table, frame=frame, context={**table.context, "rounding": rounding}), blank
    )
    findings = [*check_table(published, policy), *check_rounding(published, policy)]
    shown = table.frame[list(table.statistics)].notna().to_numpy()
    primary = tuple((int(r), blank.columns[c]) for r, c in np.argwhere(blank.to_numpy() & shown))
    return Mitigation(
        table=display(published), primary=primary, secondary=(), rounding_base=base,
        findings=tuple(findings),
    )  # fmt: skip


def display(table: TableEvidence) -> pd.DataFrame:
    """The frame as it would be written: counts as whole numbers, blanks empty."""
    frame = table.frame.copy()
    for column in table.columns_of("count"):
        values = frame[column].astype(float)
        if np.allclose(values.dropna(), values.dropna().round()):
            frame[column] = values.round().astype("Int64")
    return frame


def check_rounding(
    table: TableEvidence, policy: Policy, earlier_bases: Sequence[int] = ()
) -> list[Finding]:
    """R1, for a table whose sidecar declares ``"rounding": {"base": 5, "redaction": 7}``:
    every shown count a multiple of the base; no true count at or below the redaction
    level (the declared one or the policy's, whichever is higher) shown; every declared
    total the sum of its shown cells; the same base as the project's earlier releases
    (``earlier_bases``), since two bases for one count narrow it down."""
    declared = table.context.get("rounding")
    if not declared:
        return []
    try:
        spec: Mapping[str, Any] = declared if isinstance(declared, Mapping) else {}
        base = int(spec.get("base", policy.rounding_base))
        level = max(int(spec.get("redaction", policy.redaction_level)), policy.redaction_level)
        if base < 1:
            raise ValueError(base)
    except (TypeError, ValueError):
        return [Finding(rule="R1", status=Status.FAIL, evidence={"declared": str(declared)},
                        message="the table says it is rounded but its rounding base or "
                                "redaction level cannot be read")]  # fmt: skip
    totals = declared_totals(table)
    is_total = at_total(table.frame, table.dimensions, totals).any(axis=1)
    out: list[Finding] = []
    for column in table.columns_of("count"):
        shown = table.frame[column].astype(float)
        off = (
            shown.notna()
            & ~np.isclose(np.mod(shown, base), 0)
            & ~np.isclose(np.mod(shown, base), base)
        )
        true = table.persons[column].astype("Float64")
        small = (shown.notna() & (true <= level)).fillna(False)
        expected = sum_of_cells(table.frame, table.dimensions, totals, shown).fillna(0.0)
        unsummed = is_total & shown.notna() & ~np.isclose(shown, expected)
        out += [_finding(table, r, column, f"{column} is {_plain(shown[r])}, not a multiple "
                         f"of the rounding base {base}",
                         {"published": _plain(shown[r]), "base": base})
                for r in shown.index[off]]  # fmt: skip
        out += [_finding(table, r, column, f"{column} is shown but its true count is at or "
                         f"below the redaction level {level}; it must be blank",
                         {"true_count": int(true[r]), "redaction": level})
                for r in shown.index[small]]  # fmt: skip
        out += [_finding(table, r, column, f"this total of {column} is {_plain(shown[r])} but "
                         f"its shown cells add up to {_plain(expected[r])}; totals must be "
                         "the sum of the rounded cells",
                         {"published": _plain(shown[r]), "sum_of_cells": _plain(expected[r])})
                for r in shown.index[unsummed]]  # fmt: skip
    earlier = sorted({int(b) for b in earlier_bases})
    if any(b != base for b in earlier):
        out.append(Finding(
            rule="R1", status=Status.FAIL, evidence={"base": base, "earlier_bases": earlier},
            message=f"this table is rounded to {base} but the project's earlier releases were "
                    f"rounded to {', '.join(map(str, earlier))}; one count rounded to two "
                    "bases can be narrowed down",
        ))  # fmt: skip
    return out


def _finding(
    table: TableEvidence, row: Any, column: str, message: str, evidence: dict[str, Any]
) -> Finding:
    return Finding(rule="R1", status=Status.FAIL, row=int(row), column=column,
                   cell=table.cell(int(row)), message=message, evidence=evidence)  # fmt: skip
