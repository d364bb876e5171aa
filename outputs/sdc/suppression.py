"""Primary and complementary suppression, and rule X1 (reference/disclosure-control.md).

A blank cell protects nothing if the published totals give it back: in a table with true
margins, one suppressed cell is its row total minus the rest of the row. X1 asks, for
every suppressed cell of an additive column (counts and sums), how far it can be pinned
down by linear programming over every published relation (``total = sum of its parts``,
non-negative cells, published cells fixed); a range narrower than the policy's threshold
fails.

Mitigation (``mitigate``) decides, in this order:

1. **True margins are published.** Totals the sidecar declares (``"totals": {"<dim>":
   "<label>"}``) are kept; for every other dimension a total row labelled ``Total`` is
   added (summed over that dimension with the others fixed, so a two-way table gains its
   row, column and grand totals). Their evidence is summed from the cells, which assumes
   the cells of a dimension are disjoint groups of people, as a count of distinct people
   by attributes is.
2. **Primary suppression.** A failing T1, T2, D1 or D2 cell says the *group of people* is
   too small, empty or dominated, and every statistic of its row is computed from that
   group (a sum next to its count, a mean, a rate with its numerator, and sum = mean x
   count gives one back from two others), so the whole row is blanked. A failing E1, O1,
   P1 or S1 cell is the statistic's own fault (a minimum is one person's value), and has
   no linear relation to the totals, so only that cell is blanked. Cells a researcher has
   already blanked in an additive column are suppressed rows too.
3. **Complementary suppression**, greedy: the first suppressed cell (by column, then row)
   whose range is still too narrow is protected by the cheapest set of published cells
   that lets it move by the threshold while every total stays true (a linear programme
   over cell changes, cost proportional to the cell's value, totals last). One extra cell
   is never enough in a two-way table: it takes the rectangle of four. Those rows are
   blanked and the audit repeats until it passes. Ranges only widen as cells are added,
   so cells found safe are not solved again.
4. The table rules and X1 are re-run on the published table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linprog
from scipy.sparse import csgraph

from outputs.sdc import rounding
from outputs.sdc.evidence import TableEvidence
from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Mitigation, Status
from outputs.sdc.tables import check_table

ADDITIVE_KINDS: Final = frozenset({"count", "sum"})
ROW_RULES: Final = frozenset({"T1", "T2", "D1", "D2"})
CELL_RULES: Final = frozenset({"E1", "O1", "P1", "S1"})
PRIMARY_RULES: Final = ROW_RULES | CELL_RULES
# What the re-run covers; any other finding (X2, M1-M4, F1 ...) is carried over as it was,
# so a mitigation can never make a rule it did not re-check look passed.
RERUN_RULES: Final = frozenset({"T1", "T2", "T3", "D1", "D2", "D3", "S1", "E1", "P1", "O1",
                                "X1", "R1"})  # fmt: skip
_TOLERANCE: Final = 1e-6


def table_relations(
    frame: pd.DataFrame, dimensions: Sequence[str], totals: Mapping[str, str]
) -> sparse.csr_array:
    """One row per published relation (parts +1, total -1, so ``relations @ cells == 0``):
    for each dimension with a total, each combination of the other dimensions whose rows
    include exactly one total row and at least one part."""
    n, offset = len(frame), 0
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for dimension, label in totals.items():
        others = [d for d in dimensions if d != dimension]
        is_total = (frame[dimension].astype(str) == label).to_numpy()
        group = _groups(frame, others)
        groups = int(group.max()) + 1 if n else 0
        keep = (np.bincount(group[is_total], minlength=groups) == 1)[group]
        keep &= (np.bincount(group, minlength=groups) > 1)[group]
        parts.append((np.where(is_total, -1.0, 1.0)[keep], group[keep] + offset,
                      np.flatnonzero(keep)))  # fmt: skip
        offset += groups
    if not parts:
        return sparse.csr_array((0, n))
    data, groups_kept, cols = (np.concatenate(p) for p in zip(*parts, strict=True))
    _, rows = np.unique(groups_kept, return_inverse=True)  # number the relations 0, 1, ...
    shape = (int(rows.max(initial=-1)) + 1, n)
    return sparse.csr_array(sparse.coo_array((data, (rows, cols)), shape=shape))


def _groups(frame: pd.DataFrame, by: list[str]) -> np.ndarray:
    """Each row's combination of ``by``, numbered in order of first appearance."""
    if not by:
        return np.zeros(len(frame), dtype=np.intp)
    return frame[by].astype(str).groupby(by, sort=False).ngroup().to_numpy()


class _System:
    """The relations seen from the suppressed cells, ``a @ y == b``, y >= ``lower``, split
    into connected components so that a cell's programmes carry only the cells linked to
    it. Every solution is a feasible point, and the smallest and largest value each cell
    has taken in one (``seen``) bound its range from inside: a cell whose seen spread is
    already wide enough needs no programme of its own, and a cell seen at ``lower`` has
    that minimum. ``seen`` may start from known feasible points (the true values)."""

    def __init__(
        self,
        x: np.ndarray,
        mask: np.ndarray,
        relations: Any,
        lower: float | None,
        seen: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.cells, self.lower = np.flatnonzero(mask), lower
        self.floor = -np.inf if lower is None else lower
        matrix = sparse.csc_array(relations, dtype=float)
        a = sparse.csr_array(matrix[:, self.cells])
        b = -(matrix[:, np.flatnonzero(~mask)] @ x[~mask])
        live = np.flatnonzero(np.diff(a.indptr))
        self.a, self.b = sparse.csr_array(a[live]), b[live]
        # Programmes are solved in units of the largest published value: sums of money
        # (1e10) whose margins differ from their cells by float rounding would otherwise
        # look infeasible to the solver's absolute tolerances.
        published = np.abs(x[~mask])
        self.scale = max(1.0, float(published.max())) if published.size else 1.0
        links = abs(self.a)
        _, self.labels = csgraph.connected_components(links.T @ links, directed=False)
        self.row_labels = self.labels[self.a.indices[self.a.indptr[:-1]]]
        self._parts: dict[int, tuple[np.ndarray, Any, np.ndarray]] = {}
        self._probed: set[int] = set()
        size = len(self.cells)
        self.seen_low = np.full(size, np.inf) if seen is None else seen[0][self.cells].copy()
        self.seen_high = np.full(size, -np.inf) if seen is None else seen[1][self.cells].copy()
        # With cells >= 0, a relation whose blank cells all add (its total is published)
        # caps each of them: a cell seen at its cap has that maximum.
        self.cap = np.full(size, np.inf)
        if lower == 0.0:
            entries = self.a.tocoo()
            adding = np.bincount(entries.row[entries.data < 0], minlength=self.a.shape[0]) == 0
            use = adding[entries.row]
            np.minimum.at(self.cap, entries.col[use], self.b[entries.row[use]] / entries.data[use])

    def _part(self, k: int) -> tuple[np.ndarray, Any, np.ndarray]:
        label = int(self.labels[k])
        if label not in self._parts:
            rows = np.flatnonzero(self.row_labels == label)
            members = np.flatnonzero(self.labels == label)
            self._parts[label] = (members, self.a[rows][:, members], self.b[rows])
        return self._parts[label]

    def _solve(self, k: int, objective: np.ndarray) -> tuple[int, float]:
        """Minimise ``objective`` over k's component; record the solution as seen."""
        members, a, b = self._part(k)
        scale = self.scale
        floor = None if self.lower is None else self.lower / scale
        result = linprog(objective, A_eq=a, b_eq=b / scale, bounds=(floor, None), method="highs")
        if result.status == 0:
            np.minimum.at(self.seen_low, members, result.x * scale)
            np.maximum.at(self.seen_high, members, result.x * scale)
        return int(result.status), float(result.fun) * scale if result.status == 0 else np.nan

    def range(self, k: int) -> tuple[float, float]:
        """Smallest and largest value the k-th suppressed cell can take (NaN, NaN if the
        published values contradict the relations)."""
        members, a, _ = self._part(k)
        if a.shape[0] == 0:
            return self.floor, np.inf
        unit = np.zeros(len(members))
        unit[np.searchsorted(members, k)] = 1.0
        if self.seen_low[k] <= self.floor + _TOLERANCE:
            low = self.floor
        else:
            status, low = self._solve(k, unit)
            if status not in (0, 3):
                return np.nan, np.nan
            low = -np.inf if status == 3 else low
        if self.seen_high[k] >= self.cap[k] - _TOLERANCE:
            return low, self.cap[k]
        status, high = self._solve(k, -unit)
        if status not in (0, 3):
            return np.nan, np.nan
        return low, np.inf if status == 3 else -high

    def wide(self, k: int, width: float) -> tuple[bool, float, float]:
        """Whether the k-th cell's range is at least ``width``, solving as little as
        possible: the seen spread, then the component's total pushed down and up (which
        moves most of its cells at once), then the cell's own two programmes."""
        members, a, _ = self._part(k)
        if a.shape[0] == 0:
            return True, self.floor, np.inf
        label = int(self.labels[k])
        if self.seen_high[k] - self.seen_low[k] < width and label not in self._probed:
            self._probed.add(label)
            for sign in (1.0, -1.0):
                self._solve(k, np.full(len(members), sign))
        if self.seen_high[k] - self.seen_low[k] >= width:
            return True, self.seen_low[k], self.seen_high[k]
        low, high = self.range(k)
        return bool(high - low >= width), low, high


def feasible_ranges(
    values: np.ndarray, suppressed: np.ndarray, relations: Any, *, lower: float | None = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the (low, high) a reader can deduce: published cells are their value; a
    suppressed (or NaN) cell is minimised and maximised with ``scipy.optimize.linprog``
    (HiGHS) subject to ``relations @ cells == 0`` (a sparse matrix over the flattened
    cells), the published cells fixed and every cell at least ``lower`` (None: no bound).
    ``values`` may be any shape (a full grid); the results have the same shape."""
    shape = np.shape(values)
    x = np.asarray(values, dtype=float).ravel()
    mask = np.asarray(suppressed, dtype=bool).ravel() | np.isnan(x)
    low = np.where(mask, -np.inf if lower is None else lower, x)
    high = np.where(mask, np.inf, x)
    system = _System(x, mask, relations, lower)
    for k, cell in enumerate(system.cells):
        low[cell], high[cell] = system.range(k)
    return low.reshape(shape), high.reshape(shape)


def audit_suppression(
    table: TableEvidence, suppressed: pd.DataFrame | None, policy: Policy
) -> list[Finding]:
    """X1: every suppressed cell of a count or sum column (``suppressed``, rows x columns;
    None: the blank cells) must keep a feasible range at least ``policy.threshold`` wide
    given the declared totals. Without declared totals the cells are independent and
    nothing can be deduced."""
    return _audit(table, suppressed, policy)


def _audit(
    table: TableEvidence,
    suppressed: pd.DataFrame | None,
    policy: Policy,
    seen: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[Finding]:
    """X1 given, optionally, feasible points already known (``_System``)."""
    relations = table_relations(table.frame, table.dimensions, rounding.declared_totals(table))
    out: list[Finding] = []
    if relations.shape[0] == 0:
        return out
    for column in table.columns_of(*ADDITIVE_KINDS):
        published = table.frame[column].astype(float).to_numpy()
        mask = np.isnan(published)
        if suppressed is not None and column in suppressed:
            mask |= suppressed[column].to_numpy(dtype=bool)
        if not mask.any():
            continue
        known = None if seen is None else seen.get(column)
        system = _System(published, mask, relations, _lower(table, column), known)
        for k, row in enumerate(system.cells):
            wide, low, high = system.wide(k, policy.threshold - _TOLERANCE)
            if not wide:
                out.append(_narrow(table, int(row), column, low, high, policy))
    return out


def _narrow(
    table: TableEvidence, row: int, column: str, low: float, high: float, policy: Policy
) -> Finding:
    if np.isnan(low):
        return Finding(
            rule="X1", status=Status.REVIEW, row=row, column=column, cell=table.cell(row),
            message=f"the published totals of {column} do not add up to their cells, so "
                    "whether this blank can be worked out cannot be checked",
            evidence={"low": None, "high": None, "width": None},
        )  # fmt: skip
    low, high = round(float(low), 6), round(float(high), 6)
    return Finding(
        rule="X1", status=Status.FAIL, row=row, column=column, cell=table.cell(row),
        message=f"{column} is suppressed, but the published totals put it between {low:g} "
                f"and {high:g}; that range must be at least {policy.threshold} wide",
        evidence={"low": low, "high": high, "width": round(high - low, 6),
                  "threshold": policy.threshold},
    )  # fmt: skip


def _lower(table: TableEvidence, column: str) -> float | None:
    """Counts are never negative; a sum only when none of its contributions is."""
    if table.statistics[column] == "count" or table.magnitudes is None:
        return 0.0
    negatives = table.magnitudes.get(f"{column}.negatives")
    return None if negatives is not None and (negatives.fillna(0) > 0).any() else 0.0


def _true_values(table: TableEvidence, column: str) -> pd.Series:
    """An additive cell's true value: its persons (count) or evidenced total (sum)."""
    if table.statistics[column] == "count":
        return rounding.true_counts(table, column)
    total = table.magnitudes[f"{column}.total"] if table.magnitudes is not None else None
    published = table.frame[column].astype(float)
    return published if total is None else total.astype(float).fillna(published)


def with_margins(table: TableEvidence) -> TableEvidence:
    """``table`` with a ``Total`` row added for every dimension without a declared total
    (margins of margins included), values and evidence summed from the cells (counts and
    sums; a mean is its summed total over its summed people; other statistics stay
    blank), and ``context["totals"]`` naming every total."""
    totals = rounding.declared_totals(table)
    additive = table.columns_of(*ADDITIVE_KINDS)
    if not additive or table.frame.empty:
        return replace(table, context={**table.context, "totals": totals})
    frame, persons, magnitudes = table.frame, table.persons, table.magnitudes
    summed = table.columns_of("count", "sum", "mean")
    true = pd.DataFrame({c: _true_values(table, c) for c in additive})
    for dimension in (d for d in table.dimensions if d not in totals):
        label = _free_label(frame[dimension])
        others = [d for d in table.dimensions if d != dimension]
        group = _groups(frame, others)
        first = ~pd.Series(group).duplicated().to_numpy()
        new = frame.loc[first].copy().reset_index(drop=True)
        new[dimension] = label
        new_true = true.groupby(group).sum(min_count=1).reset_index(drop=True)
        new_persons = persons.astype("Float64").groupby(group).sum(min_count=1)
        new_persons = new_persons.reset_index(drop=True).astype("Int64")
        new_persons[[c for c in persons.columns if c not in summed]] = pd.NA
        for column in table.statistics:
            new[column] = new_true[column] if column in additive else np.nan
        if magnitudes is not None:
            new_magnitudes = _summed_magnitudes(magnitudes, group)
            for column in table.columns_of("mean"):
                new[column] = new_magnitudes[f"{column}.total"] / new_persons[column].astype(float)
            magnitudes = pd.concat([magnitudes, new_magnitudes], ignore_index=True)
        frame = pd.concat([frame, new], ignore_index=True)
        persons = pd.concat([persons, new_persons], ignore_index=True)
        true = pd.concat([true, new_true], ignore_index=True)
        totals[dimension] = label
    extra = {kind: values.reindex(frame.index) for kind, values in table.extra.items()}
    return replace(
        table, frame=frame, persons=persons, magnitudes=magnitudes, extra=extra,
        context={**table.context, "totals": totals},
    )  # fmt: skip


def _free_label(levels: pd.Series) -> str:
    label, taken = rounding.TOTAL_LABEL, set(levels.astype(str))
    while label in taken:
        label = f"{label} (all)"
    return label


def _summed_magnitudes(magnitudes: pd.DataFrame, group: np.ndarray) -> pd.DataFrame:
    """Magnitude evidence of each group's margin: totals and counts add up; the two
    largest contributors are the two largest of the parts' top two (people disjoint)."""
    out = magnitudes.groupby(group).sum(min_count=1).reset_index(drop=True)
    for column in {c.rsplit(".", 1)[0] for c in magnitudes.columns}:
        stacked = pd.DataFrame({
            "g": np.concatenate([group, group]),
            "v": np.concatenate([magnitudes[f"{column}.top1"], magnitudes[f"{column}.top2"]]),
        }).dropna().sort_values(["g", "v"], ascending=[True, False], kind="stable")  # fmt: skip
        rank = stacked.groupby("g").cumcount().to_numpy()
        top1 = stacked[rank == 0].set_index("g")["v"].reindex(out.index)
        top2 = stacked[rank == 1].set_index("g")["v"].reindex(out.index)
        out[f"{column}.top1"], out[f"{column}.top2"] = top1, top2.where(top1.isna(), top2.fillna(0))
    return out[magnitudes.columns]


def mitigate(table: TableEvidence, findings: list[Finding], policy: Policy) -> Mitigation | None:
    """Make ``table`` publishable under ``policy.mitigate``: ``none`` → None; ``round`` →
    redact then round (``rounding.redact_and_round``); ``suppress`` → true margins,
    primary and complementary suppression (module docstring), the rules and X1 re-run.
    Findings of rules not re-run (``RERUN_RULES``) are carried over unchanged. None when
    nothing needs suppressing. Deterministic: the same table and findings
    always give the same published table."""
    if policy.mitigate == "none":
        return None
    carried = tuple(f for f in findings if f.rule not in RERUN_RULES and f.status > Status.PASS)
    if policy.mitigate == "round":
        rounded = rounding.redact_and_round(table, policy)
        return replace(rounded, findings=(*rounded.findings, *carried))
    full = with_margins(table)
    rows, cells = _primary(full, [*findings, *check_table(full, policy)])
    if not rows.any() and not cells.to_numpy().any():
        return None
    relations = table_relations(full.frame, full.dimensions, full.context["totals"])
    suppressed, seen = _complement(full, rows, relations, policy)
    has_value = full.frame[list(full.statistics)].notna().to_numpy()
    primary = (rows[:, None] | cells.to_numpy()) & has_value
    secondary = (suppressed & ~rows)[:, None] & has_value & ~primary
    blank = pd.DataFrame(primary | secondary, index=full.frame.index, columns=cells.columns)
    published = rounding.blank_cells(full, blank)
    # X1 re-run from scratch, except that the feasible points met on the way (the true
    # values among them) are reused: they only ever prove a range wide enough.
    rerun = [*check_table(published, policy), *_audit(published, None, policy, seen)]
    return Mitigation(
        table=rounding.display(published), primary=_cells(primary, cells.columns),
        secondary=_cells(secondary, cells.columns), rounding_base=None,
        findings=(*rerun, *carried),
    )  # fmt: skip


def _cells(mask: np.ndarray, columns: pd.Index) -> tuple[tuple[int, str], ...]:
    return tuple((int(r), str(columns[c])) for r, c in np.argwhere(mask))


def _primary(table: TableEvidence, findings: list[Finding]) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows to blank whole and single cells to blank, from the failing cell rules."""
    rows = np.zeros(len(table.frame), dtype=bool)
    cells = pd.DataFrame(False, index=table.frame.index, columns=list(table.statistics))
    for f in findings:
        if f.status is Status.FAIL and f.row is not None and f.column in table.statistics:
            if f.rule in ROW_RULES:
                rows[f.row] = True
            elif f.rule in CELL_RULES:
                cells.at[f.row, f.column] = True
    for column in table.columns_of(*ADDITIVE_KINDS):
        rows |= (table.frame[column].isna() & table.persons[column].notna()).to_numpy()
    return rows, cells


def _complement(
    table: TableEvidence, rows: np.ndarray, relations: Any, policy: Policy
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Greedy complementary suppression (module docstring, step 3): the rows to blank,
    and the values each cell was seen to take in feasible points. A cell no pattern can
    widen (totals that do not add up) is left for the re-run audit to report."""
    rows, n = rows.copy(), len(rows)
    margin = rounding.at_total(table.frame, table.dimensions, table.context["totals"]).any(axis=1)
    columns = table.columns_of(*ADDITIVE_KINDS)
    true = {c: _true_values(table, c).to_numpy() for c in columns}
    settled = {c: np.zeros(n, dtype=bool) for c in columns}
    seen = {c: _true_point(x, relations) for c, x in true.items()}
    if relations.shape[0] == 0:
        return rows, seen
    for _ in range((len(columns) + 1) * n + 1):
        narrow = _first_narrow(table, true, rows, settled, seen, relations, policy)
        if narrow is None:
            return rows, seen
        row, column = narrow
        add = _pattern(true[column], rows, relations, row, policy.threshold,
                       _lower(table, column), margin.to_numpy())  # fmt: skip
        if not add.any():
            settled[column][row] = True
        rows |= add
    raise RuntimeError("complementary suppression did not converge")


def _true_point(x: np.ndarray, relations: Any) -> tuple[np.ndarray, np.ndarray]:
    """The true values as the first feasible point, unless they break a declared total
    (then there is no point known yet)."""
    if not np.isnan(x).any() and np.allclose(relations @ x, 0):
        return x.copy(), x.copy()
    return np.full(len(x), np.inf), np.full(len(x), -np.inf)


def _first_narrow(
    table: TableEvidence,
    true: dict[str, np.ndarray],
    rows: np.ndarray,
    settled: dict[str, np.ndarray],
    seen: dict[str, tuple[np.ndarray, np.ndarray]],
    relations: Any,
    policy: Policy,
) -> tuple[int, str] | None:
    """The first suppressed cell, by column then row, still too narrow. ``seen`` carries
    the values each cell took in feasible points across calls: a point stays feasible
    when more cells are blanked, so it keeps bounding the ranges from inside."""
    for column, x in true.items():
        system = _System(x, rows | np.isnan(x), relations, _lower(table, column), seen[column])
        narrow = None
        for k, cell in enumerate(system.cells):
            if settled[column][cell]:
                continue
            if not system.wide(k, policy.threshold - _TOLERANCE)[0]:  # NaN: totals disagree
                narrow = int(cell), column
                break
            settled[column][cell] = True
        seen[column][0][system.cells], seen[column][1][system.cells] = (
            system.seen_low, system.seen_high,
        )  # fmt: skip
        if narrow is not None:
            return narrow
    return None


def _pattern(
    x: np.ndarray,
    rows: np.ndarray,
    relations: Any,
    row: int,
    threshold: int,
    lower: float | None,
    margin: np.ndarray,
) -> np.ndarray:
    """The published cells to blank so that cell ``row`` can rise by ``threshold`` with
    every relation kept: minimise the weighted change ``d = up - down`` subject to
    ``relations @ d == 0``, ``d[row] == threshold`` and every cell staying >= ``lower``.
    Blanked cells move almost free; published ones cost their size, totals the most."""
    n, x = len(x), np.nan_to_num(x)
    weight = (np.abs(x) + 1) / (np.abs(x[~margin]).max(initial=0) + 1) + np.where(margin, n + 1, 0)
    weight = np.where(rows, 1e-6, weight)
    bounds = np.zeros((2 * n, 2))
    bounds[:, 1] = np.inf
    if lower is not None:
        bounds[n:, 1] = np.maximum(x - lower, 0)
    bounds[row], bounds[n + row] = (threshold, threshold), (0, 0)
    matrix = sparse.csr_array(relations, dtype=float)
    result = linprog(
        np.concatenate([weight, weight]), A_eq=sparse.hstack([matrix, -matrix]),
        b_eq=np.zeros(matrix.shape[0]), bounds=bounds, method="highs",
    )  # fmt: skip
    if result.status != 0:
        return np.zeros(n, dtype=bool)
    move = result.x[:n] + result.x[n:]
    return ~rows & (move > _TOLERANCE * max(1, threshold))
