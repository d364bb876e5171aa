"""Invariants of the checker, over generated tables (hypothesis).

Tables are built as the environment builds them (``sde.phm.evidence`` on person-level
rows), written as the job writes them (``to_csv(index=False)`` and the JSON sidecar) and
checked with ``check_output`` under ``acro-default``. Hypothesis keeps no example
database here (``database=None``); its own caches go in ``.hypothesis/``, which it
git-ignores itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from outputs.sdc.check import check_output
from outputs.sdc.policy import PRESETS, Policy
from outputs.sdc.results import Finding, Status, Verdict, worst
from sde.phm.evidence import ResultTable, count_table, magnitude_table

POLICY = PRESETS["acro-default"]
# The rules alone, without mitigation (which only adds a suppressed copy of the table and
# takes most of the time): for the properties about findings.
RULES_ONLY = replace(POLICY, mitigate="none")
SEXES = ("F", "M")
GROUPS = ("a", "b", "c")
CELLS = [(sex, group) for sex in SEXES for group in GROUPS]
CHECKS = settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def person_rows(draw: st.DrawFn, max_people: int = 24) -> pd.DataFrame:
    """One row per person in a sex x group table: 0 to ``max_people`` people per cell
    (so cells below, at and above the threshold, and empty ones), each with a whole,
    non-negative income."""
    sizes = draw(st.lists(st.integers(0, max_people), min_size=len(CELLS), max_size=len(CELLS)))
    assume(sum(sizes) > 0)
    cells = [cell for cell, n in zip(CELLS, sizes, strict=True) for _ in range(n)]
    incomes = draw(st.lists(st.integers(0, 5_000), min_size=len(cells), max_size=len(cells)))
    return pd.DataFrame(
        {
            "person_id": [f"p{i:04d}" for i in range(len(cells))],
            "sex": [sex for sex, _ in cells],
            "group": [group for _, group in cells],
            "income": np.array(incomes, dtype=float),
        }
    )


def counts(rows: pd.DataFrame) -> ResultTable:
    return count_table(rows, name="counts", title="counts", by=["sex", "group"])


def sums(rows: pd.DataFrame) -> ResultTable:
    return magnitude_table(rows, name="sums", title="sums", by=["sex", "group"], value="income")


def check(result: ResultTable, policy: Policy = POLICY) -> Verdict:
    csv = result.frame.to_csv(index=False).encode()
    sidecar = json.dumps(result.sidecar()).encode()
    return check_output(f"{result.name}.csv", csv, policy=policy, evidence=sidecar)


def cell_key(finding: Finding) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in finding.cell.items()))


def failing_cells(verdict: Verdict) -> set[tuple[tuple[str, str], ...]]:
    return {cell_key(f) for f in verdict.findings if f.status is Status.FAIL}


def comparable(findings: Sequence[Finding]) -> list[str]:
    """Findings without their row position, in a canonical order."""
    return sorted(
        json.dumps({**f.as_json(), "row": None}, sort_keys=True, default=str) for f in findings
    )


# --- The verdict is the worst finding ------------------------------------------------------
@CHECKS
@given(rows=person_rows())
def test_the_verdicts_status_is_its_worst_finding_and_fails_exactly_on_small_or_empty_cells(
    rows: pd.DataFrame,
) -> None:
    verdict = check(counts(rows))
    sizes = rows.groupby(["sex", "group"])["person_id"].nunique()
    sizes = sizes.reindex(
        pd.MultiIndex.from_product([rows["sex"].unique(), rows["group"].unique()]), fill_value=0
    )
    # Hand oracle: a cell of 1-9 people (T1) or an empty combination of levels that do
    # occur (T2, an implicit zero) fails the table; nothing else in a count table can.
    should_fail = bool(((sizes > 0) & (sizes < 10)).any() or (sizes == 0).any())

    assert verdict.status is worst(verdict.findings)
    assert verdict.status is max(verdict.rules().values(), default=Status.PASS)
    assert verdict.as_json()["status"] == str(verdict.status)
    assert (verdict.status is Status.FAIL) is should_fail
    assert verdict.outcome <= verdict.status


# --- Monotonicity -------------------------------------------------------------------------
@CHECKS
@given(rows=person_rows(), data=st.data())
def test_adding_a_person_to_a_failing_t1_cell_never_makes_a_passing_cell_fail(
    rows: pd.DataFrame, data: st.DataObject
) -> None:
    sizes = rows.groupby(["sex", "group"])["person_id"].nunique()
    small = sizes[(sizes > 0) & (sizes < POLICY.threshold)]
    assume(len(small) > 0)
    sex, group = data.draw(st.sampled_from(list(small.index)), label="cell")
    income = data.draw(st.integers(0, 5_000), label="income")
    more = pd.concat(
        [rows, pd.DataFrame({"person_id": ["new"], "sex": [sex], "group": [group],
                             "income": [float(income)]})],
        ignore_index=True,
    )  # fmt: skip
    target = (("group", group), ("sex", sex))

    for build in (counts, sums):
        before, after = check(build(rows), RULES_ONLY), check(build(more), RULES_ONLY)
        assert failing_cells(after) <= failing_cells(before), build.__name__
        t1 = [f.status for f in after.findings if f.rule == "T1" and cell_key(f) == target]
        persons = int(small[(sex, group)]) + 1
        assert (Status.FAIL in t1) is (persons < POLICY.threshold), build.__name__


# --- Row order ----------------------------------------------------------------------------
def reordered(result: ResultTable, order: Sequence[int]) -> ResultTable:
    """``result`` with its rows (and every per-row piece of evidence) in ``order``."""

    def take(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.iloc[list(order)].reset_index(drop=True)

    return ResultTable(
        name=result.name, title=result.title, frame=take(result.frame),
        dimensions=result.dimensions, statistics=result.statistics,
        persons=take(result.persons),
        magnitudes=None if result.magnitudes is None else take(result.magnitudes),
        extra={kind: take(values) for kind, values in result.extra.items()},
    )  # fmt: skip


@CHECKS
@given(rows=person_rows(), data=st.data())
def test_rules_are_invariant_to_the_row_order_of_the_published_table(
    rows: pd.DataFrame, data: st.DataObject
) -> None:
    for build in (counts, sums):
        result = build(rows)
        order = data.draw(st.permutations(range(len(result.frame))), label="order")
        shuffled = reordered(result, order)

        assert comparable(check(shuffled, RULES_ONLY).findings) == comparable(
            check(result, RULES_ONLY).findings
        )


# --- Never raises on bad input ------------------------------------------------------------
NAMES = st.sampled_from(
    ["table.csv", "table.tsv", "chart.png", "notes.txt", "data.parquet", "run.log",
     "analysis.ipynb", "model.pkl", "README", "table.CSV", "figure.svg"]
)  # fmt: skip


@settings(max_examples=150, deadline=None, database=None)
@given(name=NAMES, data=st.binary(max_size=2_000), evidence=st.none() | st.binary(max_size=500))
def test_checking_arbitrary_bytes_never_raises_and_never_passes(
    name: str, data: bytes, evidence: bytes | None
) -> None:
    verdict = check_output(name, data, policy=POLICY, evidence=evidence)

    assert isinstance(verdict, Verdict)
    assert verdict.status in {Status.REVIEW, Status.FAIL}


SCALARS = st.none() | st.booleans() | st.integers(-5, 30) | st.floats() | st.text(max_size=5)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                      children, max_size=3),
    max_leaves=12,
)  # fmt: skip
SIDECAR_KEYS = ["kind", "dimensions", "statistics", "cells", "model", "steps", "edges",
                "persons", "data_min", "data_max", "totals", "column"]  # fmt: skip


@settings(max_examples=150, deadline=None, database=None)
@given(
    name=st.sampled_from(["table.csv", "chart.png", "model.csv"]),
    csv=st.lists(st.lists(st.sampled_from(["F", "M", "a", "0", "9", "12", "", "x,y"]),
                          min_size=2, max_size=2), max_size=5),
    sidecar=st.dictionaries(st.sampled_from(SIDECAR_KEYS), JSON, max_size=6),
)  # fmt: skip
def test_checking_malformed_evidence_never_raises(
    name: str, csv: list[list[str]], sidecar: dict[str, Any]
) -> None:
    data = pd.DataFrame(csv, columns=["sex", "people"]).to_csv(index=False).encode()
    verdict = check_output(name, data, policy=POLICY, evidence=json.dumps(sidecar).encode())

    assert isinstance(verdict, Verdict)


# --- Counting people, not rows ------------------------------------------------------------
@CHECKS
@given(rows=person_rows(), data=st.data())
def test_a_count_table_from_duplicated_rows_gives_the_same_verdict(
    rows: pd.DataFrame, data: st.DataObject
) -> None:
    copies = data.draw(
        st.lists(st.integers(1, 4), min_size=len(rows), max_size=len(rows)), label="copies"
    )
    duplicated = rows.loc[rows.index.repeat(copies)].sample(frac=1.0, random_state=0)

    once, many = check(counts(rows)), check(counts(duplicated))

    assert many.as_json() == once.as_json()
