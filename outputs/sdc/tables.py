"""The cell rules for tables: T1-T3, D1-D3, S1, E1, P1, O1 (reference/disclosure-control.md).

Each rule takes a ``TableEvidence`` and a ``Policy`` and returns findings for the cells
that do not pass; all of them count distinct persons (a person with ten rows is one).
They work on whole columns at once, and only turn the failing cells into ``Finding``s.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pandas as pd

from outputs.sdc.evidence import (
    COUNT_KINDS,
    MAGNITUDE_KINDS,
    THRESHOLDED_KINDS,
    TableEvidence,
    _plain,
)
from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Status

SPREAD_KINDS: Final = frozenset({"std", "ci_lower", "ci_upper"})
EXTREME_KINDS: Final = frozenset({"min", "max"})
QUANTILE_KINDS: Final = frozenset({"median", "percentile"})
# Beyond this many combinations the implicit zeros of a long table are not enumerated.
MAX_GRID: Final = 100_000


def _findings(
    table: TableEvidence,
    column: str,
    mask: pd.Series,
    *,
    rule: str,
    status: Status,
    message: str,
    evidence: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """A finding per row where ``mask`` holds. ``evidence`` values that are Series are
    taken at the row; ``message`` is formatted with them and ``column``."""
    out = []
    for r in mask[mask.fillna(False).astype(bool)].index:
        values = {
            k: _plain(v.at[r]) if isinstance(v, pd.Series) else v
            for k, v in (evidence or {}).items()
        }
        out.append(
            Finding(
                rule=rule,
                status=status,
                row=int(r),
                column=column,
                cell=table.cell(int(r)),
                message=message.format(column=column, **values),
                evidence=values,
            )
        )
    return out


def _persons(table: TableEvidence, column: str) -> pd.Series:
    return table.persons[column].astype("Float64")


def threshold(table: TableEvidence, policy: Policy) -> list[Finding]:
    """T1: every published cell about a group of people needs ``threshold`` persons. A
    cell of no one is T2's (zeros), not a small group."""
    out = []
    for column in table.columns_of(*THRESHOLDED_KINDS):
        persons = _persons(table, column)
        shown = table.frame[column].notna()  # a blank cell is suppressed: X1 audits it
        out += _findings(
            table, column, shown & (persons > 0) & (persons < policy.threshold),
            rule="T1", status=Status.FAIL,
            message="{column} describes {persons} people; at least {threshold} are needed",
            evidence={"persons": persons.astype("Int64"), "threshold": policy.threshold},
        )  # fmt: skip
        out += _findings(
            table, column, persons.isna() & table.frame[column].notna(),
            rule="T1", status=Status.REVIEW,
            message="{column} has no evidence of how many people it describes",
            evidence={"persons": None, "threshold": policy.threshold},
        )  # fmt: skip
    return out


def zeros(table: TableEvidence, policy: Policy) -> list[Finding]:
    """T2: a zero in a frequency table says no one in that group has the attribute.
    Combinations a long table leaves out are zeros a reader can infer, so they fail the
    same way; one that cannot occur (a PCN outside its Place) is a structural zero, for
    which the researcher files an exception."""
    if not policy.zeros_disclosive:
        return []
    counts = table.columns_of(*COUNT_KINDS)
    out = []
    for column in counts:
        out += _findings(
            table, column, table.frame[column] == 0, rule="T2", status=Status.FAIL,
            message="{column} is zero: nobody in this group has it (unless it is a "
                    "structural zero)",
            evidence={"count": 0},
        )  # fmt: skip
    if counts and len(table.dimensions) >= 2:
        out += [
            Finding(
                rule="T2",
                status=Status.FAIL,
                column=counts[0],
                cell=cell,
                message="this combination is not in the table, so a reader can infer that "
                "nobody has it (unless it is a structural zero)",
                evidence={"count": 0, "implicit": True},
            )
            for cell in _absent_combinations(table)
        ]
    return out


def _absent_combinations(table: TableEvidence) -> list[dict[str, Any]]:
    levels = [table.frame[d].drop_duplicates().tolist() for d in table.dimensions]
    if int(np.prod([len(v) for v in levels])) > MAX_GRID:
        return []
    present = set(map(tuple, table.frame[list(table.dimensions)].itertuples(index=False)))
    return [
        dict(zip(table.dimensions, map(_plain, combo), strict=True))
        for combo in itertools.product(*levels)
        if combo not in present
    ]


def class_disclosure(table: TableEvidence, policy: Policy) -> list[Finding]:
    """T3: in a frequency table, a group where everyone falls in one category of another
    dimension discloses that attribute for all of them (0% / 100%) -> ``review``."""
    counts = table.columns_of(*COUNT_KINDS)
    if not counts or len(table.dimensions) < 2:
        return []
    column, out = counts[0], []
    # Total rows are not categories; a group with a blank (suppressed) cell is unknown.
    totals = table.context.get("totals")
    totals = totals if isinstance(totals, Mapping) else {}
    frame = table.frame[[*table.dimensions, column]]
    inner = pd.Series(True, index=frame.index)
    for dimension, label in totals.items():
        if dimension in table.dimensions:
            inner &= frame[dimension].astype(str) != str(label)
    frame = frame[inner].assign(blank=frame[column].isna(), shown=frame[column].fillna(0) > 0)
    for attribute in table.dimensions:
        if frame[attribute].nunique() < 2:
            continue
        groups = [d for d in table.dimensions if d != attribute]
        blank = frame.groupby(groups, sort=True)["blank"].any()
        spread = (
            frame[frame["shown"]].groupby(groups, sort=True)[attribute].agg(["nunique", "first"])
        )
        spread = spread[~blank.reindex(spread.index, fill_value=False)]
        for key, row in spread[spread["nunique"] == 1].iterrows():
            values = key if isinstance(key, tuple) else (key,)
            cell = dict(zip(groups, map(_plain, values), strict=True))
            described = ", ".join(f"{k} = {v}" for k, v in cell.items())
            out.append(
                Finding(
                    rule="T3",
                    status=Status.REVIEW,
                    column=column,
                    cell={**cell, attribute: _plain(row["first"])},
                    message=f"everyone counted with {described} has {attribute} = {row['first']}",
                    evidence={"attribute": attribute, "categories_present": 1},
                )
            )
    return out


def dominance(table: TableEvidence, policy: Policy) -> list[Finding]:
    """D1 (n, k), D2 (p%) and D3 (negatives, missing) on magnitude cells, from the
    per-person top contributions."""
    m = table.magnitudes
    if m is None:
        return []
    out: list[Finding] = []
    for column in table.columns_of(*MAGNITUDE_KINDS):
        top1, top2, total = m[f"{column}.top1"], m[f"{column}.top2"], m[f"{column}.total"]
        shown = table.frame[column].notna()
        positive = total > 0
        if policy.nk_n > 2:
            out += _findings(
                table, column, shown & positive, rule="D1", status=Status.REVIEW,
                message="the evidence holds the top 2 contributions, not the top {n}",
                evidence={"n": policy.nk_n},
            )  # fmt: skip
        else:
            share = (top1 if policy.nk_n == 1 else top1 + top2) / total.where(positive)
            out += _findings(
                table, column, shown & (share >= policy.nk_k), rule="D1", status=Status.FAIL,
                message="the {n} largest contributors make up {share:.1%} of {column}; it "
                        "must be under {k:.0%}",
                evidence={"share": share, "n": policy.nk_n, "k": policy.nk_k},
            )  # fmt: skip
        ratio = (total - top1 - top2) / top1.where(top1 > 0)
        out += _findings(
            table, column, shown & positive & (ratio < policy.p_ratio), rule="D2",
            status=Status.FAIL,
            message="the rest of {column} after the two largest contributors is "
                    "{p_ratio:.1%} of the largest; it must be at least {limit:.0%} so that "
                    "the second cannot estimate the first",
            evidence={"p_ratio": ratio, "limit": policy.p_ratio},
        )  # fmt: skip
        # Every contribution zero: the cell tells each person's value (ACRO fails it too).
        nothing = (top1 == 0) & (total == 0) & (m[f"{column}.negatives"] == 0)
        out += _findings(
            table, column, nothing & table.frame[column].notna(), rule="D2",
            status=Status.FAIL,
            message="every contribution to {column} is zero, which discloses each person's "
                    "value",
            evidence={"total": 0},
        )  # fmt: skip
        if policy.check_missing:
            odd = (m[f"{column}.negatives"] > 0) | (m[f"{column}.missing"] > 0) | ~positive
            out += _findings(
                table, column, odd & table.frame[column].notna(), rule="D3",
                status=Status.REVIEW,
                message="{column} has {negatives} negative and {missing} missing "
                        "contributions (total {total}), which the dominance rules cannot "
                        "judge",
                evidence={"negatives": m[f"{column}.negatives"].astype("Int64"),
                          "missing": m[f"{column}.missing"].astype("Int64"), "total": total},
            )  # fmt: skip
    return out


def spread(table: TableEvidence, policy: Policy) -> list[Finding]:
    """S1: a standard deviation or confidence limit from fewer than ``dof`` + 1 people."""
    out = []
    for column in table.columns_of(*SPREAD_KINDS):
        dof = (_persons(table, column) - 1).astype("Int64")
        out += _findings(
            table, column, table.frame[column].notna() & (dof < policy.dof), rule="S1",
            status=Status.FAIL,
            message="{column} rests on {dof} degrees of freedom; at least {limit} are needed",
            evidence={"dof": dof, "limit": policy.dof},
        )  # fmt: skip
    return out


def _extra(table: TableEvidence, kind: str, column: str, key: str) -> pd.Series:
    """Per-cell evidence ``key`` of ``column`` (NaN where a cell has none)."""
    info = table.extra.get(kind)
    if info is None or f"{column}.{key}" not in info:
        return pd.Series(np.nan, index=table.frame.index)
    return info[f"{column}.{key}"]


def extremes(table: TableEvidence, policy: Policy) -> list[Finding]:
    """E1: a minimum or maximum is one person's value, unless it was computed as a safe
    extreme (the mean of the ``safe_extreme`` most extreme people)."""
    out = []
    for column in table.columns_of(*EXTREME_KINDS):
        safe = _extra(table, "extremes", column, "safe").fillna(0) > 0
        out += _findings(
            table, column, ~safe & table.frame[column].notna(), rule="E1", status=Status.FAIL,
            message="{column} is one person's value; publish the mean of the {safe_extreme} "
                    "most extreme people instead",
            evidence={"safe_extreme": policy.safe_extreme},
        )  # fmt: skip
    return out


def percentiles(table: TableEvidence, policy: Policy) -> list[Finding]:
    """P1: a quantile needs ``threshold`` people on each side of it; a cell without that
    evidence (for either side) is for review."""
    out = []
    for column in table.columns_of(*QUANTILE_KINDS):
        below = _extra(table, "quantiles", column, "below")
        above = _extra(table, "quantiles", column, "above")
        shown = table.frame[column].notna()
        unknown = shown & (below.isna() | above.isna())
        out += _findings(
            table, column, unknown, rule="P1", status=Status.REVIEW,
            message="{column} has no evidence of how many people lie either side of it",
        )  # fmt: skip
        out += _findings(
            table, column,
            shown & ~unknown & ((below < policy.threshold) | (above < policy.threshold)),
            rule="P1", status=Status.FAIL,
            message="{column} has {below} people below and {above} above it; at least "
                    "{threshold} are needed on each side",
            evidence={"below": below.astype("Int64"), "above": above.astype("Int64"),
                      "threshold": policy.threshold},
        )  # fmt: skip
    return out


def modes(table: TableEvidence, policy: Policy) -> list[Finding]:
    """O1: a mode of a cell where everyone has the same value discloses it for all; a
    cell without the count of distinct values is for review."""
    out = []
    for column in table.columns_of("mode"):
        distinct = _extra(table, "modes", column, "distinct")
        shown = table.frame[column].notna()
        out += _findings(
            table, column, shown & distinct.isna(), rule="O1", status=Status.REVIEW,
            message="{column} has no evidence of how many different values it has",
        )  # fmt: skip
        out += _findings(
            table, column, shown & (distinct == 1), rule="O1", status=Status.FAIL,
            message="everyone in this cell has the same {column}",
            evidence={"distinct_values": 1},
        )  # fmt: skip
    return out


TABLE_RULES: Final = (
    threshold, zeros, class_disclosure, dominance, spread, extremes, percentiles, modes,
)  # fmt: skip


def check_table(table: TableEvidence, policy: Policy) -> list[Finding]:
    """Every table rule, in catalogue order."""
    return [finding for rule in TABLE_RULES for finding in rule(table, policy)]
