"""Generated microdata for the side-by-side ACRO parity tests, and the specs run on it.

One frame holds every case, so that ACRO is started once for all of them (importing
ACRO alone takes seconds). It has one row per person, because ACRO counts rows and we
count people, except in the one cell built to show that difference (``dup10``).

Cells are planted in a table of ``area`` x ``sex``: every ``M`` cell holds 20 ordinary
people, and the ``F`` cell of each area holds the case under test (``F_CELLS``):

- ``a09``/``a10``/``a11``: 9, 10 and 11 people (threshold 10; the standard deviation's
  degrees of freedom are 8, 9 and 10 against a limit of 10); ``azero``: nobody.
- ``nk8999``/``nk9000``/``nk9001``: 12 people whose two largest incomes are 8,999, 9,000
  and 9,001 of a total of 10,000 (dominance k = 0.9).
- ``p0999``/``p1000``/``p1001``: a largest income of 10,000, a second of 200 and the other
  ten summing to 999, 1,000 and 1,001, so (total - x1 - x2) / x1 is 0.0999, 0.1 and
  0.1001 (p% = 0.10). Such a cell always fails dominance too: with the rest under 0.1 x1
  the top two hold more than 1 / 1.1 = 0.909 of the total.
- ``same``: 20 people who all have 3 ``visits`` (the mode of the cell is everyone's).
- ``dup10``: one person with ten rows.

**Exact boundaries.** Incomes are whole numbers (stored as floats), so every sum, total,
top-two sum and difference both checkers form is an exact integer in float64 (all far
below 2**53), and each ratio is one IEEE division of two exact integers. Division is
correctly rounded, so 9000 / 10000 gives the very double the literal 0.9 denotes, and
8999 / 10000 the double of 0.8999: both checkers compare the same double with the same
threshold double, and "exactly at the boundary" is exact, not within a tolerance.

Other columns: ``visits`` (small integers, for the mode; at least two different values in
every cell of two or more people except ``same``), ``band`` (a third dimension),
``everyone`` (a constant, so that a one-way table can be asked for as a crosstab),
``area_b`` (``area`` with three people of ``a11``/M moved to ``a10``, as a revised
boundary would: a second release whose ``a11`` is a population nested in the first's,
three people smaller; leaving them out instead would not do, as ACRO counts people with
a missing area as an area "nan"), ``x1``, ``x2``, ``y_dof*``/``b_dof*`` (regressions
whose rows are the first ``k`` rows: the others are missing, which the formula interface
drops), survival times (``time_safe``/``event_safe``: every step has at least 10 events
and 10 at risk; ``time_tail``/``event_tail``: the same plus a step of 2 events and a tail
of 4 people), and ``score`` for a histogram.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

SEED: Final = 20240611
THRESHOLD: Final = 10
M_PEOPLE: Final = 20
# area -> (kind of F cell, its parameter); see the module docstring.
F_CELLS: Final[dict[str, tuple[str, int]]] = {
    "a09": ("plain", 9),
    "a10": ("plain", 10),
    "a11": ("plain", 11),
    "azero": ("plain", 0),
    "nk8999": ("nk", 8999),
    "nk9000": ("nk", 9000),
    "nk9001": ("nk", 9001),
    "p0999": ("p", 999),
    "p1000": ("p", 1000),
    "p1001": ("p", 1001),
    "same": ("same_visits", 20),
    "dup10": ("one_person", 10),  # last, so no regression row is one of its rows
}
# Regressions on the first k rows: residual dof = k - parameters (3 for OLS, 2 for logit).
OLS_ROWS: Final = {9: 12, 10: 13, 11: 14}
LOGIT_ROWS: Final = {9: 11, 10: 12, 11: 13}
# Three people of (a11, M) are in a10 in the second release (area_b).
NESTED_OUT: Final = 3


def _incomes(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One income per row of an F cell (the module docstring gives the arithmetic)."""
    if kind == "nk":  # size is 10,000 x the top-two share
        top = size
        rest = _split(10_000 - top, 10)
        return np.array([float(top - top // 2), float(top // 2), *rest])
    if kind == "p":  # size is the rest: (10,000 + 200 + rest - 10,000 - 200) / 10,000
        return np.array([10_000.0, 200.0, *_split(size, 10)])
    return rng.integers(900, 1100, size=size).astype(float)


def _split(total: int, parts: int) -> list[float]:
    """``total`` as ``parts`` whole numbers differing by at most one."""
    base, extra = divmod(total, parts)
    return [float(base + (i < extra)) for i in range(parts)]


def _cell_rows(kind: str, n: int) -> tuple[int, int]:
    """(rows, people) of an F cell."""
    if kind in {"nk", "p"}:
        return 12, 12
    if kind == "one_person":
        return n, 1
    return n, n


def make_microdata(seed: int = SEED) -> pd.DataFrame:
    """The parity microdata (module docstring). Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    frames, next_person = [], 0
    for area, (kind, n) in F_CELLS.items():
        for sex in ("F", "M"):
            cell_kind, (rows, people) = (
                (kind, _cell_rows(kind, n)) if sex == "F" else ("plain", (M_PEOPLE, M_PEOPLE))
            )
            if rows == 0:
                continue
            visits = rng.permutation(np.arange(rows) % 6)
            if cell_kind == "same_visits":
                visits = np.full(rows, 3)
            frames.append(
                pd.DataFrame(
                    {
                        "person_id": next_person + np.arange(rows) % people,
                        "area": area,
                        "sex": sex,
                        "income": _incomes(cell_kind, n if cell_kind in {"nk", "p"} else rows, rng),
                        "visits": visits,
                    }
                )
            )
            next_person += people
    data = pd.concat(frames, ignore_index=True)
    n = len(data)
    data["band"] = rng.choice(["old", "young"], size=n)
    data["everyone"] = "all"
    out = data.index[(data["area"] == "a11") & (data["sex"] == "M")][:NESTED_OUT]
    data["area_b"] = data["area"].where(~data.index.isin(out), "a10")
    _add_models(data, rng)
    _add_survival(data, rng)
    _add_score(data, rng)
    return data


def _add_models(data: pd.DataFrame, rng: np.random.Generator) -> None:
    n = len(data)
    data["x1"] = rng.normal(size=n)
    data["x2"] = rng.normal(size=n)
    y = 1.0 + 2.0 * data["x1"] - data["x2"] + rng.normal(size=n)
    # Alternating outcomes with a random regressor: no separation, so the logit converges.
    b = (np.arange(n) % 2).astype(float)
    for dof, rows in OLS_ROWS.items():
        data[f"y_dof{dof}"] = y.where(data.index < rows)
    for dof, rows in LOGIT_ROWS.items():
        data[f"b_dof{dof}"] = pd.Series(b, index=data.index).where(data.index < rows)


def _add_survival(data: pd.DataFrame, rng: np.random.Generator) -> None:
    """Times 1-5 for everyone, 85% with the event: each step has about 65 events. The
    ``dup10`` person's rows share one time and status (a person dies once)."""
    person = data["person_id"]
    time = pd.Series(rng.integers(1, 6, size=len(data)), index=data.index).astype(float)
    event = pd.Series((rng.random(len(data)) < 0.85).astype(int), index=data.index)
    first = ~person.duplicated()
    time = person.map(time[first].set_axis(person[first]))
    event = person.map(event[first].set_axis(person[first]))
    data["time_safe"], data["event_safe"] = time, event
    # The tail: two events at 2.5 (a step too small to publish, plenty at risk) and four
    # people still at risk at 9, three of whom have the event (a step to truncate). They
    # are ordinary (a10, M) people, one row each.
    tail = data.index[(data["area"] == "a10") & (data["sex"] == "M")][:6]
    data["time_tail"], data["event_tail"] = time.copy(), event.copy()
    data.loc[tail, "time_tail"] = [2.5, 2.5, 9.0, 9.0, 9.0, 9.0]
    data.loc[tail, "event_tail"] = [1, 1, 1, 1, 1, 0]


SCORE_BINS: Final = 5


def _add_score(data: pd.DataFrame, rng: np.random.Generator) -> None:
    """A histogram with 5 bins of width 20 from 0 to 100: two full bins, an empty inner
    bin (40-60), a bin of 5 people (60-80) and a last bin of exactly 10 people, one of
    them at the maximum, 100."""
    person = data["person_id"]
    score = pd.Series(rng.integers(0, 40, size=len(data)), index=data.index).astype(float)
    ordinary = data.index[(data["sex"] == "M")]
    score[ordinary[0]] = 0.0
    score[ordinary[1:6]] = 65.0
    score[ordinary[6:15]] = 85.0
    score[ordinary[15]] = 100.0
    # One value per person (the dup10 person's rows repeat theirs).
    first = ~person.duplicated()
    data["score"] = person.map(score[first].set_axis(person[first]))


# --- The outputs both checkers are asked about ------------------------------------------
BY = {"index": ["area"], "columns": ["sex"]}
TABLE_SPECS: Final[list[dict[str, Any]]] = [
    {"id": "counts", "kind": "crosstab", **BY},
    {"id": "counts_3d", "kind": "crosstab", "index": ["area", "band"], "columns": ["sex"]},
    {"id": "sum", "kind": "pivot_table", **BY, "values": "income", "aggfunc": "sum"},
    {"id": "mean", "kind": "crosstab", **BY, "values": "income", "aggfunc": "mean"},
    {"id": "median", "kind": "pivot_table", **BY, "values": "income", "aggfunc": "median"},
    {"id": "std", "kind": "pivot_table", **BY, "values": "income", "aggfunc": "std"},
    {"id": "min", "kind": "pivot_table", **BY, "values": "income", "aggfunc": "min"},
    {"id": "max", "kind": "pivot_table", **BY, "values": "income", "aggfunc": "max"},
    {"id": "mode", "kind": "pivot_table", **BY, "values": "visits", "aggfunc": "mode"},
    {"id": "by_area", "kind": "crosstab", "index": ["area"], "columns": ["everyone"]},
    {"id": "by_area_b", "kind": "crosstab", "index": ["area_b"], "columns": ["everyone"]},
]
MODEL_SPECS: Final[list[dict[str, Any]]] = [
    *({"id": f"ols_dof{d}", "kind": "ols", "formula": f"y_dof{d} ~ x1 + x2"} for d in OLS_ROWS),
    *({"id": f"logit_dof{d}", "kind": "logit", "formula": f"b_dof{d} ~ x1"} for d in LOGIT_ROWS),
]
OTHER_SPECS: Final[list[dict[str, Any]]] = [
    {"id": "survival_safe", "kind": "surv_func", "time": "time_safe", "status": "event_safe"},
    {"id": "survival_tail", "kind": "surv_func", "time": "time_tail", "status": "event_tail"},
    {"id": "survival_tail_suppressed", "kind": "surv_func", "time": "time_tail",
     "status": "event_tail", "suppress": True},
    {"id": "score_hist", "kind": "hist", "column": "score", "bins": SCORE_BINS},
    # The suppression hole: ACRO's suppressed table with margins, beside by_area.
    {"id": "counts_margins_suppressed", "kind": "crosstab", **BY, "margins": True,
     "suppress": True},
]  # fmt: skip
SPECS: Final = [*TABLE_SPECS, *MODEL_SPECS, *OTHER_SPECS]
