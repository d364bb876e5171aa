"""X1 (secondary suppression audit) and suppression mitigation.

Tables go through the real reading path: a CSV (blank cells written as "") and its
sidecar, read with ``read_table`` and ``table_evidence``. Expected ranges are worked out
by hand in the comments; the property check recomputes every range with its own grid
relations, not the module's.
"""

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from outputs.sdc.evidence import TableEvidence, read_table, table_evidence
from outputs.sdc.policy import PRESETS, Policy
from outputs.sdc.results import Finding, Status
from outputs.sdc.suppression import (
    audit_suppression,
    feasible_ranges,
    mitigate,
    table_relations,
    with_margins,
)
from outputs.sdc.tables import check_table

ACRO = PRESETS["acro-default"]
T = "Total"
# The 3x3 table used throughout, with its true margins:
#          x    y    z  | Total
#   a      3   20   30  |   53
#   b     25   40   15  |   80
#   c     12   18   50  |   80
#   Total 40   78   95  |  213
GRID = np.array([[3, 20, 30], [25, 40, 15], [12, 18, 50]])
ROWS, COLS = ("a", "b", "c"), ("x", "y", "z")


def read(
    dimensions: Sequence[str],
    keys: Sequence[Sequence[str]],
    columns: Mapping[str, tuple[str, Sequence[float | None]]],
    *,
    persons: Mapping[str, Sequence[int | None]] | None = None,
    magnitudes: Mapping[str, Sequence[Mapping[str, float]]] | None = None,
    extra: Sequence[Mapping[str, Any]] | None = None,
    totals: Mapping[str, str] | None = None,
) -> TableEvidence:
    """A table as the checker reads it. ``columns``: name -> (kind, published values; None
    is a blank). ``persons`` defaults to the published values of each column."""
    frame = pd.DataFrame([list(k) for k in keys], columns=list(dimensions))
    for name, (_, values) in columns.items():
        frame[name] = ["" if v is None else f"{v:g}" for v in values]
    people = dict(persons or {})
    cells: list[dict[str, Any]] = []
    for i, key in enumerate(keys):
        cell: dict[str, Any] = {
            "dimensions": dict(zip(dimensions, key, strict=True)),
            "persons": {
                c: people[c][i] if c in people else values[i] for c, (_, values) in columns.items()
            },
        }
        if magnitudes:
            cell["magnitudes"] = {c: dict(m[i]) for c, m in magnitudes.items()}
        cell.update((extra or [{}] * len(keys))[i])
        cells.append(cell)
    sidecar: dict[str, Any] = {
        "dimensions": list(dimensions),
        "statistics": {c: kind for c, (kind, _) in columns.items()},
        "cells": cells,
    }
    if totals is not None:
        sidecar["totals"] = dict(totals)
    data = frame.to_csv(index=False).encode()
    return table_evidence(read_table(data, "t.csv"), sidecar, "t.csv")


def crosstab(grid: np.ndarray, *, margins: bool = False) -> TableEvidence:
    """A two-way count table ``grid`` (rows r0.., columns c0.. unless 3x3: a-c, x-z), with
    its true margins as declared total rows when ``margins``."""
    rows = ROWS if grid.shape == (3, 3) else tuple(f"r{i}" for i in range(grid.shape[0]))
    cols = COLS if grid.shape == (3, 3) else tuple(f"c{j}" for j in range(grid.shape[1]))
    full = with_grid_margins(grid) if margins else grid
    row_labels = (*rows, T) if margins else rows
    col_labels = (*cols, T) if margins else cols
    keys = [(r, c) for r in row_labels for c in col_labels]
    return read(
        ("row", "col"), keys, {"people": ("count", [int(v) for v in full.ravel()])},
        totals={"row": T, "col": T} if margins else None,
    )  # fmt: skip


def with_grid_margins(grid: np.ndarray) -> np.ndarray:
    full = np.zeros((grid.shape[0] + 1, grid.shape[1] + 1), dtype=grid.dtype)
    full[:-1, :-1] = grid
    full[-1, :-1], full[:-1, -1], full[-1, -1] = grid.sum(0), grid.sum(1), grid.sum()
    return full


def grid_relations(shape: tuple[int, ...]) -> sparse.csr_array:
    """Relations of a full grid whose last index on every axis is the total: one row per
    line along an axis, parts +1 and total -1 (built here independently of the module)."""
    index = np.arange(int(np.prod(shape))).reshape(shape)
    lines = [
        line
        for axis in range(len(shape))
        for line in np.moveaxis(index, axis, -1).reshape(-1, shape[axis])
    ]
    rows = np.concatenate([np.full(len(line), r) for r, line in enumerate(lines)])
    cols = np.concatenate(lines)
    data = np.concatenate([np.r_[np.ones(len(line) - 1), -1.0] for line in lines])
    return sparse.csr_array((data, (rows, cols)), shape=(len(lines), index.size))


def published_grid(table: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """The mitigated crosstab (with ``Total`` rows) as a full grid, blanks as NaN, rows
    and columns in order with the totals last."""
    pivot = table.pivot(index="row", columns="col", values="people").astype(float)
    rows = [r for r in pivot.index if r != T] + [T]
    cols = [c for c in pivot.columns if c != T] + [T]
    grid = pivot.loc[rows, cols].to_numpy()
    assert grid.shape == (shape[0] + 1, shape[1] + 1)
    return grid


def x1(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.rule == "X1"]


# --- feasible_ranges --------------------------------------------------------------------
def test_one_suppressed_cell_is_given_back_by_its_margins() -> None:
    values = with_grid_margins(GRID)
    mask = np.zeros_like(values, dtype=bool)
    mask[0, 0] = True

    low, high = feasible_ranges(values, mask, grid_relations(values.shape))

    assert (low[0, 0], high[0, 0]) == (3, 3)  # 53 - 20 - 30
    assert np.array_equal(low[~mask], values[~mask]) and np.array_equal(high[~mask], values[~mask])


def test_a_rectangle_of_suppressions_leaves_each_cell_a_range() -> None:
    # a.x + a.y = 23, a.x + c.x = 15, c.x + c.y = 30: with t = a.x, a.y = 23 - t,
    # c.x = 15 - t, c.y = 15 + t, and every cell >= 0 gives t in [0, 15].
    values = with_grid_margins(GRID)
    mask = np.zeros_like(values, dtype=bool)
    mask[[0, 0, 2, 2], [0, 1, 0, 1]] = True

    low, high = feasible_ranges(values, mask, grid_relations(values.shape))

    assert low[mask].tolist() == pytest.approx([0, 8, 0, 15])
    assert high[mask].tolist() == pytest.approx([15, 23, 15, 30])


def test_cells_without_relations_are_unbounded() -> None:
    low, high = feasible_ranges(
        np.array([3.0, 40.0]), np.array([True, False]), sparse.csr_array((0, 2))
    )
    assert (low[0], high[0]) == (0, np.inf)


def test_a_sum_with_negative_contributions_has_no_floor() -> None:
    relations = sparse.csr_array(np.array([[1.0, 1.0, -1.0]]))
    low, high = feasible_ranges(
        np.array([3.0, 5.0, 8.0]), np.array([True, True, False]), relations, lower=None
    )
    assert (low[0], high[0]) == (-np.inf, np.inf)


def test_totals_that_contradict_the_cells_give_no_range() -> None:
    # cells 3 + 5 must equal 20 with the third published as 30: impossible.
    relations = sparse.csr_array(np.array([[1.0, 1.0, 1.0, -1.0]]))
    low, high = feasible_ranges(
        np.array([3.0, 5.0, 30.0, 20.0]), np.array([True, False, False, False]), relations
    )
    assert np.isnan(low[0]) and np.isnan(high[0])


# --- table_relations ----------------------------------------------------------------------
def test_declared_totals_become_one_relation_per_line() -> None:
    table = crosstab(GRID, margins=True)

    relations = table_relations(table.frame, table.dimensions, {"row": T, "col": T})

    assert relations.shape == (8, 16)  # 4 columns summed down, 4 rows summed across
    cells = table.frame["people"].to_numpy(dtype=float)
    assert np.allclose(relations @ cells, 0)


# --- audit_suppression (X1) --------------------------------------------------------------
def suppressed(table: TableEvidence, rows: Sequence[int]) -> pd.DataFrame:
    return pd.DataFrame({"people": np.isin(np.arange(len(table.frame)), rows)})


def test_x1_fails_a_suppressed_cell_its_margins_give_back() -> None:
    table = crosstab(GRID, margins=True)

    findings = audit_suppression(table, suppressed(table, [0]), ACRO)

    assert [(f.rule, f.status, f.row, f.column) for f in findings] == [
        ("X1", Status.FAIL, 0, "people")
    ]
    assert findings[0].evidence == {"low": 3.0, "high": 3.0, "width": 0.0, "threshold": 10}
    assert findings[0].cell == {"row": "a", "col": "x"}


def test_x1_passes_a_rectangle_whose_ranges_are_fifteen_wide() -> None:
    table = crosstab(GRID, margins=True)  # rows: a.x=0, a.y=1, c.x=8, c.y=9 (4 per row)
    assert audit_suppression(table, suppressed(table, [0, 1, 8, 9]), ACRO) == []


def test_x1_reads_the_blank_cells_of_a_published_table() -> None:
    full = with_grid_margins(GRID).ravel().tolist()
    full[0] = None
    keys = [(r, c) for r in (*ROWS, T) for c in (*COLS, T)]
    table = read(("row", "col"), keys, {"people": ("count", full)},
                 persons={"people": with_grid_margins(GRID).ravel().tolist()},
                 totals={"row": T, "col": T})  # fmt: skip

    findings = audit_suppression(table, None, ACRO)

    assert [(f.row, f.evidence["low"], f.evidence["high"]) for f in findings] == [(0, 3.0, 3.0)]


def test_x1_finds_nothing_without_declared_totals() -> None:
    table = crosstab(GRID)
    assert audit_suppression(table, suppressed(table, [0]), ACRO) == []


@pytest.mark.parametrize(("total", "fails"), [(9, True), (10, False), (11, False)])
def test_x1_threshold_on_the_width(total: int, fails: bool) -> None:
    # Both cells blank: each lies in [0, total].
    table = read(("g",), [("a",), ("b",), (T,)], {"people": ("count", [4, total - 4, total])},
                 totals={"g": T})  # fmt: skip

    findings = audit_suppression(table, suppressed(table, [0, 1]), ACRO)

    assert [f.evidence["width"] for f in findings] == ([total, total] if fails else [])


def test_x1_reviews_totals_that_do_not_add_up() -> None:
    table = read(("g",), [("a",), ("b",), ("c",), (T,)],
                 {"people": ("count", [4, 15, 30, 20])}, totals={"g": T})  # fmt: skip

    findings = audit_suppression(table, suppressed(table, [0]), ACRO)

    assert [(f.status, f.evidence["width"]) for f in findings] == [(Status.REVIEW, None)]


# --- mitigate -----------------------------------------------------------------------------
def test_mitigate_adds_true_margins_labelled_total() -> None:
    table = crosstab(GRID)

    full = with_margins(table)

    assert full.context["totals"] == {"row": T, "col": T}
    added = full.frame.iloc[9:].set_index(["row", "col"])["people"].to_dict()
    assert added == {
        (T, "x"): 40, (T, "y"): 78, (T, "z"): 95,
        ("a", T): 53, ("b", T): 80, ("c", T): 80, (T, T): 213,
    }  # fmt: skip
    assert full.persons["people"].iloc[9:].tolist() == [40, 78, 95, 53, 80, 80, 213]


def test_mitigate_keeps_declared_totals_and_adds_the_missing_dimension() -> None:
    keys = [(r, c) for r in (*ROWS, T) for c in COLS]
    grid = np.vstack([GRID, GRID.sum(0)])
    table = read(("row", "col"), keys, {"people": ("count", grid.ravel().tolist())},
                 totals={"row": T})  # fmt: skip

    full = with_margins(table)

    assert len(full.frame) == 12 + 4  # a-c and Total, each with a new col = Total
    assert full.frame.iloc[12:]["people"].tolist() == [53, 80, 80, 213]


def test_margin_of_magnitudes_takes_the_two_largest_contributors_of_its_parts() -> None:
    evidence = [
        {"top1": 50.0, "top2": 30.0, "total": 200.0, "negatives": 0, "missing": 0},
        {"top1": 40.0, "top2": 35.0, "total": 300.0, "negatives": 0, "missing": 1},
    ]
    table = read(("g",), [("a",), ("b",)],
                 {"people": ("count", [20, 30]), "cost": ("mean", [10, 10])},
                 persons={"cost": [20, 30]}, magnitudes={"cost": evidence})  # fmt: skip

    full = with_margins(table)

    margin = full.magnitudes.iloc[2]
    assert (margin["cost.top1"], margin["cost.top2"]) == (50.0, 40.0)
    assert (margin["cost.total"], margin["cost.missing"]) == (500.0, 1)
    assert full.frame.at[2, "cost"] == 10.0  # 500 over 50 people


def test_mitigate_suppresses_the_failing_cell_and_the_cheapest_rectangle() -> None:
    table = crosstab(GRID)
    findings = check_table(table, ACRO)

    mitigation = mitigate(table, findings, ACRO)

    # Rectangles through a.x: {a.y, c.x, c.y} costs 20+12+18 = 50, the cheapest of
    # {a.y, b.x, b.y} 85, {a.z, c.x, c.z} 92 and {a.z, b.x, b.z} 70.
    assert mitigation is not None
    assert mitigation.primary == ((0, "people"),)
    assert mitigation.secondary == ((1, "people"), (6, "people"), (7, "people"))
    published = mitigation.table
    assert published["people"].isna().tolist()[:9] == [
        True, True, False, False, False, False, True, True, False,
    ]  # fmt: skip
    grid = published_grid(published, (3, 3))
    assert np.array_equal(grid[:, -1][:-1], [53, 80, 80]) and grid[-1, -1] == 213
    low, high = feasible_ranges(grid, np.isnan(grid), grid_relations(grid.shape))
    assert (high - low)[np.isnan(grid)].tolist() == pytest.approx([15, 15, 15, 15])
    assert [f for f in mitigation.findings if f.status is Status.FAIL] == []


def test_rerun_rules_see_suppressed_cells_as_unpublished() -> None:
    table = crosstab(GRID)  # a.x has 3 people: T1 fails before mitigation

    mitigation = mitigate(table, check_table(table, ACRO), ACRO)

    assert mitigation is not None and mitigation.findings == ()


def test_a_dominated_sum_suppresses_its_whole_row() -> None:
    def dominance(top1: float, total: float) -> dict[str, float]:
        return {"top1": top1, "top2": 1.0, "total": total, "negatives": 0, "missing": 0}

    table = read(
        ("g",), [("a",), ("b",), ("c",)],
        {"people": ("count", [40, 30, 50]), "cost": ("sum", [1000, 900, 1500])},
        persons={"cost": [40, 30, 50]},
        magnitudes={"cost": [dominance(950, 1000), dominance(50, 900), dominance(60, 1500)]},
    )  # fmt: skip
    findings = check_table(table, ACRO)
    assert {(f.rule, f.row) for f in findings} == {("D1", 0), ("D2", 0)}

    mitigation = mitigate(table, findings, ACRO)

    assert mitigation is not None
    assert mitigation.primary == ((0, "people"), (0, "cost"))
    assert mitigation.secondary == ((1, "people"), (1, "cost"))  # b is smaller than c
    assert mitigation.table["cost"].tolist()[2:] == [1500, 3400]  # c, then the true Total
    assert [f for f in mitigation.findings if f.status is not Status.PASS] == []


def test_an_unsafe_maximum_blanks_only_its_own_cell() -> None:
    table = read(("g",), [("a",), ("b",)],
                 {"people": ("count", [40, 30]), "max_age": ("max", [90, 88])},
                 persons={"max_age": [40, 30]})  # fmt: skip
    findings = check_table(table, ACRO)
    assert {(f.rule, f.row) for f in findings} == {("E1", 0), ("E1", 1)}

    mitigation = mitigate(table, findings, ACRO)

    assert mitigation is not None
    assert mitigation.primary == ((0, "max_age"), (1, "max_age")) and mitigation.secondary == ()
    assert mitigation.table["people"].tolist() == [40, 30, 70]
    assert mitigation.table["max_age"].isna().all()
    assert mitigation.findings == ()


def test_mitigate_policy_none_and_nothing_to_suppress_give_none() -> None:
    small = crosstab(GRID)
    safe = crosstab(GRID + 10)
    assert mitigate(small, check_table(small, ACRO), Policy(mitigate="none")) is None
    assert mitigate(safe, check_table(safe, ACRO), ACRO) is None


def test_mitigate_with_a_rounding_policy_rounds() -> None:
    table = crosstab(GRID)
    policy = PRESETS["opensafely-7-5"]

    mitigation = mitigate(table, check_table(table, policy), policy)

    assert mitigation is not None and mitigation.rounding_base == 5
    people = mitigation.table["people"]
    assert people.isna().iloc[0] and people.iloc[1:3].tolist() == [20, 30]  # 3 redacted


@pytest.mark.parametrize("policy", [ACRO, PRESETS["opensafely-7-5"]], ids=lambda p: p.name)
def test_findings_of_rules_not_rerun_are_carried_over(policy: Policy) -> None:
    table = crosstab(GRID)
    differencing = Finding(rule="X2", status=Status.FAIL, message="derivable", row=4,
                           column="people")  # fmt: skip
    model = Finding(rule="M1", status=Status.FAIL, message="residual dof 3")
    passed = Finding(rule="F1", status=Status.PASS, message="fine")

    mitigation = mitigate(table, [*check_table(table, policy), differencing, model, passed],
                          policy)  # fmt: skip

    assert mitigation is not None
    assert [f for f in mitigation.findings if f.rule not in {"T3"}] == [differencing, model]
    assert mitigation.status is Status.FAIL


def test_mitigate_is_deterministic() -> None:
    grid = np.array([[3, 12, 8, 25], [14, 2, 30, 11], [40, 18, 5, 16]])
    table = crosstab(grid)
    findings = check_table(table, ACRO)

    first, second = mitigate(table, findings, ACRO), mitigate(table, findings, ACRO)

    assert first is not None and second is not None
    pd.testing.assert_frame_equal(first.table, second.table)
    assert (first.primary, first.secondary) == (second.primary, second.secondary)


def test_after_mitigation_no_suppressed_cell_is_narrow_and_no_published_cell_small() -> None:
    values = np.array([0, 2, 5, 8, 12, 20, 35, 60])
    for seed in range(50):
        rng = np.random.default_rng(seed)
        shape = (int(rng.integers(2, 6)), int(rng.integers(2, 6)))
        grid = rng.choice(values, size=shape, p=[0.05, 0.1, 0.1, 0.1, 0.2, 0.2, 0.15, 0.1])
        table = crosstab(grid)

        mitigation = mitigate(table, check_table(table, ACRO), ACRO)

        if mitigation is None:
            assert grid.min() >= ACRO.threshold, seed
            continue
        published = published_grid(mitigation.table, shape)
        blank = np.isnan(published)
        truth = with_grid_margins(grid).astype(float)
        assert np.array_equal(published[~blank], truth[~blank]), seed  # true values, margins
        assert (published[~blank] >= ACRO.threshold).all(), seed
        low, high = feasible_ranges(published, blank, grid_relations(published.shape))
        assert ((high - low)[blank] >= ACRO.threshold - 1e-6).all(), seed
        assert not x1(mitigation.findings), seed


def test_a_three_way_table_gains_every_margin_and_stays_protected() -> None:
    levels = (("m", "f"), ("x", "y", "z"), ("p", "q", "r"))
    grid = np.random.default_rng(3).choice([2, 5, 12, 20, 40], size=(2, 3, 3))
    keys = list(itertools.product(*levels))
    counts = [int(grid[tuple(lv.index(v) for lv, v in zip(levels, k, strict=True))]) for k in keys]
    table = read(("a", "b", "c"), keys, {"people": ("count", counts)})

    mitigation = mitigate(table, check_table(table, ACRO), ACRO)

    assert mitigation is not None and len(mitigation.table) == 3 * 4 * 4  # 18 cells + 30
    labels = [(*lv, T) for lv in levels]
    published = np.full((3, 4, 4), np.nan)
    for a, b, c, people in mitigation.table.itertuples(index=False):
        published[labels[0].index(a), labels[1].index(b), labels[2].index(c)] = (
            np.nan if pd.isna(people) else people
        )
    truth = np.zeros((3, 4, 4))
    truth[:2, :3, :3] = grid
    truth[2] = truth[:2].sum(0)
    truth[:, 3] = truth[:, :3].sum(1)
    truth[:, :, 3] = truth[:, :, :3].sum(2)
    blank = np.isnan(published)
    assert np.array_equal(published[~blank], truth[~blank])
    assert (published[~blank] >= ACRO.threshold).all()
    low, high = feasible_ranges(published, blank, grid_relations(published.shape))
    assert ((high - low)[blank] >= ACRO.threshold - 1e-6).all()


def test_sums_of_money_whose_margins_differ_by_float_rounding_are_still_feasible():
    """Margins of sums near 1e10 miss their cells' sum in the last digits; the audit must
    still find the ranges, not call the totals contradictory."""
    cells = np.array([[3.6e10 + 0.1, 1.2e10 + 0.2], [2.4e10 + 0.3, 0.7e10 + 0.4]])
    rows, cols = cells.sum(axis=1) * (1 + 1e-16), cells.sum(axis=0)
    grid = np.vstack([np.column_stack([cells, rows]), [*cols, cells.sum()]])
    frame = pd.DataFrame(
        [(r, c) for r in ("a", "b", T) for c in ("x", "y", T)], columns=["row", "col"]
    )
    relations = table_relations(frame, ["row", "col"], {"row": T, "col": T})
    suppressed = np.zeros(9, dtype=bool)
    suppressed[[0, 1, 3, 4]] = True  # the four inner cells

    low, high = feasible_ranges(grid.ravel(), suppressed, relations)

    assert not np.isnan(low[suppressed]).any()
    assert (high[suppressed] - low[suppressed] > 1e9).all()
