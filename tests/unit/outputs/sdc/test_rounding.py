"""Redact-then-round mitigation and rule R1, at their boundaries.

Tables go through the real reading path (CSV plus sidecar, ``table_evidence``); a count's
evidence is its true number of people, the published value what the table shows.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from outputs.sdc.evidence import TableEvidence, read_table, table_evidence
from outputs.sdc.policy import PRESETS, Policy
from outputs.sdc.results import Status
from outputs.sdc.rounding import check_rounding, redact_and_round, round_to_base

OPENSAFELY = PRESETS["opensafely-7-5"]  # redact <= 7, round to 5
ONS = PRESETS["ons-10-5"]  # redact <= 9, round to 5
T = "Total"


def read(
    keys: Sequence[Sequence[str]],
    values: Sequence[float | None],
    true: Sequence[int] | None = None,
    *,
    dimensions: Sequence[str] = ("g",),
    totals: Mapping[str, str] | None = None,
    rounding: Any = None,
    others: Mapping[str, tuple[str, Sequence[float]]] | None = None,
) -> TableEvidence:
    """A count table ``people`` showing ``values`` (None: blank) whose true counts are
    ``true`` (default: as shown), with optional other statistic columns of the same
    people."""
    true = list(true if true is not None else [int(v or 0) for v in values])
    frame = pd.DataFrame([list(k) for k in keys], columns=list(dimensions))
    frame["people"] = ["" if v is None else f"{v:g}" for v in values]
    statistics = {"people": "count"}
    for name, (kind, values) in (others or {}).items():
        frame[name] = [f"{v:g}" for v in values]
        statistics[name] = kind
    sidecar: dict[str, Any] = {
        "dimensions": list(dimensions),
        "statistics": statistics,
        "cells": [
            {"dimensions": dict(zip(dimensions, k, strict=True)),
             "persons": {c: true[i] for c in statistics}}
            for i, k in enumerate(keys)
        ],
    }  # fmt: skip
    if totals is not None:
        sidecar["totals"] = dict(totals)
    if rounding is not None:
        sidecar["rounding"] = rounding
    return table_evidence(read_table(frame.to_csv(index=False).encode(), "t.csv"), sidecar, "t.csv")


def shown(frame: pd.DataFrame, column: str = "people") -> list[int | None]:
    return [None if pd.isna(v) else int(v) for v in frame[column]]


# --- round_to_base ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("base", "count", "expected"),
    [
        (5, 2, 0), (5, 3, 5),  # either side of the midpoint 2.5
        (5, 12, 10), (5, 13, 15), (5, 17, 15), (5, 18, 20),
        (10, 14, 10), (10, 15, 20), (10, 25, 30), (10, 5, 10),  # exact ties go up, always
        (2, 3, 4), (2, 5, 6),
    ],
)  # fmt: skip
def test_round_to_base_is_nearest_with_ties_up(base: int, count: int, expected: int) -> None:
    assert round_to_base(pd.Series([count]), base).tolist() == [expected]


# --- redact_and_round ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "count", "expected"),
    [
        (OPENSAFELY, 0, None), (OPENSAFELY, 7, None), (OPENSAFELY, 8, 10),
        (OPENSAFELY, 12, 10), (OPENSAFELY, 13, 15),
        (ONS, 9, None), (ONS, 10, 10), (ONS, 12, 10), (ONS, 13, 15),
    ],
)  # fmt: skip
def test_redaction_comes_before_rounding(policy: Policy, count: int, expected: int | None) -> None:
    # 7 would round to 5 and 8 to 10: redacting first means 7 is never shown as 5.
    table = read([("a",), ("b",)], [count, 100])

    mitigation = redact_and_round(table, policy)

    assert shown(mitigation.table) == [expected, 100]
    assert mitigation.primary == (((0, "people"),) if expected is None else ())
    assert mitigation.rounding_base == 5


def test_the_same_true_count_always_publishes_the_same_value() -> None:
    first = read([("a",), ("b",), ("c",)], [13, 13, 22])
    second = read([("x",), ("y",)], [22, 13])

    once, again = redact_and_round(first, OPENSAFELY), redact_and_round(first, OPENSAFELY)

    assert shown(once.table) == [15, 15, 20]
    assert shown(redact_and_round(second, OPENSAFELY).table) == [20, 15]
    pd.testing.assert_frame_equal(once.table, again.table)


def test_a_total_is_the_sum_of_its_rounded_cells() -> None:
    # True 7 + 8 + 12 + 13 = 40; shown blank + 10 + 10 + 15 = 35, not round(40) = 40.
    table = read([("a",), ("b",), ("c",), ("d",), (T,)], [7, 8, 12, 13, 40], totals={"g": T})

    mitigation = redact_and_round(table, OPENSAFELY)

    assert shown(mitigation.table) == [None, 10, 10, 15, 35]
    assert [f for f in mitigation.findings if f.status is Status.FAIL] == []


def test_two_way_totals_are_sums_of_the_rounded_inner_cells() -> None:
    inner = {("m", "x"): 12, ("m", "y"): 3, ("f", "x"): 21, ("f", "y"): 9}
    rows = {r: inner[(r, "x")] + inner[(r, "y")] for r in ("m", "f")}
    cols = {c: inner[("m", c)] + inner[("f", c)] for c in ("x", "y")}
    keys = [*inner, ("m", T), ("f", T), (T, "x"), (T, "y"), (T, T)]
    counts = [*inner.values(), *rows.values(), *cols.values(), sum(inner.values())]
    table = read(keys, counts, dimensions=("sex", "band"), totals={"sex": T, "band": T})

    mitigation = redact_and_round(table, OPENSAFELY)

    # inner 10, -, 20, 10; rows 10, 30; columns 30, 10; grand 40
    assert shown(mitigation.table) == [10, None, 20, 10, 10, 30, 30, 10, 40]
    assert (
        check_rounding(table_with(table, mitigation.table, {"base": 5, "redaction": 7}), OPENSAFELY)
        == []
    )


def table_with(table: TableEvidence, frame: pd.DataFrame, rounding: Any) -> TableEvidence:
    """``table`` republished as ``frame`` with a rounding declaration."""
    return TableEvidence(
        name=table.name, frame=frame.astype({"people": float}), dimensions=table.dimensions,
        statistics=table.statistics, persons=table.persons,
        context={**table.context, "rounding": rounding},
    )  # fmt: skip


def test_a_total_whose_cells_are_all_redacted_is_blank() -> None:
    table = read([("a",), ("b",), (T,)], [6, 7, 13], totals={"g": T})
    assert shown(redact_and_round(table, OPENSAFELY).table) == [None, None, None]


def test_other_statistics_of_a_redacted_group_are_blanked_with_it() -> None:
    table = read([("a",), ("b",)], [5, 30], others={"median_age": ("median", [41.0, 52.5])})

    mitigation = redact_and_round(table, OPENSAFELY)

    assert mitigation.table["median_age"].isna().tolist() == [True, False]
    assert mitigation.primary == ((0, "people"), (0, "median_age"))


# --- R1 -----------------------------------------------------------------------------------
ROUNDED = {"base": 5, "redaction": 7}


@pytest.mark.parametrize(
    ("shown_values", "true", "failing"),
    [
        ([10, 15, None, 25], [8, 13, 3, 23], []),  # correctly rounded, 3 redacted
        ([10, 12, None, 25], [8, 12, 3, 23], [(1, "not a multiple")]),
        ([5, 15, None, 25], [7, 13, 3, 23], [(0, "redaction level")]),  # true 7 shown
        ([10, 15, 0, 25], [8, 13, 0, 23], [(2, "redaction level")]),  # a true 0 shown
        ([10, 15, None, 25], [10, 15, 8, 25], []),  # a blank is always allowed
    ],
)  # fmt: skip
def test_r1_cells(
    shown_values: list[int | None], true: list[int], failing: list[tuple[int, str]]
) -> None:
    table = read([("a",), ("b",), ("c",), ("d",)], shown_values, true, rounding=ROUNDED)

    findings = check_rounding(table, OPENSAFELY)

    assert [(f.row, f.status) for f in findings] == [(r, Status.FAIL) for r, _ in failing]
    assert all(what in f.message for f, (_, what) in zip(findings, failing, strict=True))


@pytest.mark.parametrize(("total", "fails"), [(35, False), (40, True), (30, True)])
def test_r1_a_declared_total_must_be_the_sum_of_its_shown_cells(total: int, fails: bool) -> None:
    table = read([("a",), ("b",), ("c",), (T,)], [10, None, 25, total], [8, 4, 23, 35],
                 totals={"g": T}, rounding=ROUNDED)  # fmt: skip

    findings = check_rounding(table, OPENSAFELY)

    assert [(f.row, f.evidence) for f in findings] == (
        [(3, {"published": total, "sum_of_cells": 35})] if fails else []
    )


@pytest.mark.parametrize(
    ("earlier", "fails"),
    [((), False), ((5,), False), ((5, 5), False), ((5, 10), True), ((3,), True)],
)
def test_r1_the_base_must_match_earlier_releases(earlier: tuple[int, ...], fails: bool) -> None:
    table = read([("a",)], [10], [9], rounding=ROUNDED)

    findings = check_rounding(table, OPENSAFELY, earlier_bases=earlier)

    assert [(f.row, f.evidence) for f in findings] == (
        [(None, {"base": 5, "earlier_bases": sorted(set(earlier))})] if fails else []
    )


def test_r1_uses_the_stricter_of_the_declared_and_policy_redaction() -> None:
    # Declared 7 (OpenSAFELY), checked under ONS (redact <= 9): a true 9 shown as 10 fails.
    table = read([("a",)], [10], [9], rounding=ROUNDED)

    assert check_rounding(table, OPENSAFELY) == []
    assert [f.evidence for f in check_rounding(table, ONS)] == [{"true_count": 9, "redaction": 9}]


def test_r1_ignores_a_table_that_does_not_say_it_is_rounded() -> None:
    assert check_rounding(read([("a",)], [12]), OPENSAFELY) == []


@pytest.mark.parametrize("declared", [{"base": "five"}, {"base": 0}])
def test_r1_fails_a_rounding_declaration_it_cannot_read(declared: dict[str, Any]) -> None:
    findings = check_rounding(read([("a",)], [10], rounding=declared), OPENSAFELY)
    assert [(f.rule, f.status, f.row) for f in findings] == [("R1", Status.FAIL, None)]


def test_rounded_table_passes_r1_and_the_rules_after_mitigation() -> None:
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 60, size=30).tolist()
    table = read([(f"g{i:02d}",) for i in range(30)], counts)

    mitigation = redact_and_round(table, OPENSAFELY)

    values = mitigation.table["people"].astype(float)
    assert (values.dropna() % 5 == 0).all()
    assert values.isna().tolist() == [c <= 7 for c in counts]
    assert mitigation.findings == ()
