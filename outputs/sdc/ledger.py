"""X2 differencing: the ledger of released tables' person sets, and the rule that no
group of fewer than ``threshold`` people can be worked out by subtracting one published
count from others (reference/disclosure-control.md).

The ledger lives inside the environment and is never released: for every released table
its extract, cohort hash, dimensions, statistic and, per cell, the people in it. People
are stored as 64-bit hashes of their pseudonyms (``person_hashes``). With n distinct
people the chance that any two share a hash is about n^2 / 2^65: 3e-8 for a million,
1e-4 for sixty million; a collision can only merge two people into one.

``differencing`` compares the table being checked with each earlier release (the
project's first, then the dataset's). Two tables whose cells each hold a person at most
once form a graph: a node per cell, plus one node for "outside the other table", and an
edge per non-empty group of people in one cell of each ("atoms"). A reader who knows how
the tables were defined knows every published cell count, which is the sum of its atoms.
A group is derivable when the edges leaving a set of cells all leave from one table's
cells; we look at four such sets:

- nested cells: one cell inside another (pairwise);
- unions: a cell holding several whole cells of the other table (overlapping bandings:
  0-24 holding 0-9 and 10-19 leaves the people aged 20-24);
- populations: a connected group of overlapping cells, e.g. the whole table, whose
  people are all in the other table or vice versa (nested populations: the same cohort
  minus three people);
- bridges: a single atom that is in no cycle of the graph, which linear algebra pins
  down exactly (the second step of a banding attack: 25-29 after 20-24).

Not covered: other unions of cells on both sides, and groups derivable only from three
or more releases together. It is conservative in one way: it assumes the reader knows
which atoms are empty, which is true for nested definitions and bandings and over-strict
for chance zeros; and it takes released counts as exact (rounding blurs a subtraction),
so a released table's entry should hold only the cells actually published. Tables where
a person can be in several cells (one row per diagnosis) get the pairwise and
whole-population checks only (their population size is taken as known, as a cohort's
usually is), since their atoms are not single cell pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, depth_first_order

from outputs.sdc.evidence import TableEvidence
from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Status
from sde.phm.ledger import Cell, LedgerTable

# Pair counts of up to this many cells are tallied densely (np.bincount), beyond it sparsely.
DENSE_PAIRS: Final = 1 << 22


@dataclass(frozen=True)
class Ledger:
    """What X2 compares: the checked table's own person sets (written by the job inside
    the environment; None if it wrote none) and the earlier released tables."""

    candidate: LedgerTable | None
    released: Sequence[LedgerTable] = ()


@dataclass(frozen=True)
class _Derived:
    """A group of people a reader can count by subtraction. ``here``/``there``: the
    cells of the checked and the earlier table involved; ``atoms``: the group's
    (here cell, earlier cell) pieces (-1: outside that table), to report it once."""

    kind: str
    here: tuple[int, ...]
    there: tuple[int, ...]
    size: int
    from_here: bool  # the group is in the checked table's cells, outside the earlier's
    atoms: frozenset[tuple[int, int]] | None = None


def differencing(table: TableEvidence, ledger: Ledger, policy: Policy) -> list[Finding]:
    """X2: fail every group of 1 to ``threshold - 1`` people that subtraction between the
    checked table and an earlier release reveals, naming both tables' cells and the
    group's size (never its people). Without the checked table's person sets: review."""
    candidate = ledger.candidate
    if candidate is None:
        return [Finding(rule="X2", status=Status.REVIEW,
                        message="no person sets recorded for this table; differencing "
                                "cannot be checked")]  # fmt: skip
    problem = _mismatch(table, candidate)
    if problem is not None:
        return [Finding(rule="X2", status=Status.FAIL,
                        message=f"the person sets recorded for this table do not describe "
                                f"it ({problem}), so differencing cannot be checked")]  # fmt: skip
    rows = {tuple(map(str, r)): n for n, r in enumerate(
        table.frame[list(table.dimensions)].itertuples(index=False))}  # fmt: skip
    column = candidate.statistic if candidate.statistic in table.statistics else None
    # The project's own releases first, then the rest of the dataset's.
    earlier = sorted(ledger.released, key=lambda t: t.project != candidate.project)
    foreign = [t for t in earlier if t.id_space != candidate.id_space]
    out: list[Finding] = []
    for other in earlier:
        if other.id_space != candidate.id_space:
            continue
        seen: set[object] = set()
        for derived in _derivations(candidate, other, policy.threshold):
            key = derived.atoms if derived.atoms is not None else (
                derived.kind, derived.here, derived.there)  # fmt: skip
            if key in seen:
                continue
            seen.add(key)
            out.append(_finding(derived, candidate, other, rows, column, policy.threshold))
    if foreign:
        names = ", ".join(sorted({f"{t.file} in {t.release}" for t in foreign})[:5])
        out.append(Finding(
            rule="X2", status=Status.REVIEW,
            message=f"{len(foreign)} earlier released tables record people under other "
                    f"pseudonyms ({names}) and could not be compared with this one",
            evidence={"tables_not_compared": len(foreign)},
        ))  # fmt: skip
    return out


def _mismatch(table: TableEvidence, candidate: LedgerTable) -> str | None:
    """Why the recorded person sets are not this table's, or None if they are."""
    if candidate.dimensions != tuple(table.dimensions):
        return (f"they are by {', '.join(candidate.dimensions) or 'nothing'} but the table "
                f"is by {', '.join(table.dimensions) or 'nothing'}")  # fmt: skip
    published = [tuple(map(str, r)) for r in
                 table.frame[list(table.dimensions)].itertuples(index=False)]  # fmt: skip
    if sorted(published) != sorted(candidate.cells):
        return f"they list {len(candidate.cells)} cells, the table {len(published)} others"
    if candidate.statistic in table.persons.columns:
        index = {c: n for n, c in enumerate(candidate.cells)}
        recorded = candidate.sizes[[index[c] for c in published]]
        evidenced = table.persons[candidate.statistic].to_numpy(dtype=float, na_value=np.nan)
        known = ~np.isnan(evidenced)
        if np.any(recorded[known] != evidenced[known]):
            return f"their cell sizes differ from the evidenced people in {candidate.statistic}"
    return None


def _overlap(a: LedgerTable, b: LedgerTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """For every pair of cells (one of ``a``, one of ``b``) sharing people: the cells and
    how many people they share; and how many people are in both tables. One merge of the
    two person-sorted entry lists, however many cells there are."""
    if len(a.person) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, 0
    lo = np.searchsorted(a.person, b.person, side="left")
    if a.disjoint:  # each person once: a hit is an exact match at ``lo``
        hit = a.person.take(lo, mode="clip") == b.person
        here, there = a.cell[lo[hit]].astype(np.int64), b.cell[hit].astype(np.int64)
    else:  # each of b's entries meets every entry of the same person in a
        n = np.searchsorted(a.person, b.person, side="right") - lo
        start = np.repeat(lo, n) + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        here, there = a.cell[start].astype(np.int64), np.repeat(b.cell, n).astype(np.int64)
        hit = n > 0
    if not b.disjoint:
        hit &= np.r_[True, b.person[1:] != b.person[:-1]]  # count each shared person once
    shared = int(np.count_nonzero(hit))
    width = len(b.cells)
    key = here * width + there
    if len(a.cells) * width <= DENSE_PAIRS:
        tally = np.bincount(key, minlength=len(a.cells) * width)
        key = np.flatnonzero(tally)
        counts = tally[key]
    else:
        key, counts = np.unique(key, return_counts=True)
    return key // width, key % width, counts.astype(np.int64), shared


def _derivations(a: LedgerTable, b: LedgerTable, threshold: int) -> list[_Derived]:
    """Every small derivable group between the checked table ``a`` and the earlier ``b``,
    in reporting order (simplest explanation first)."""
    i, j, w, shared = _overlap(a, b)
    size_a, size_b = a.sizes.astype(np.int64), b.sizes.astype(np.int64)

    def small(d: Any) -> Any:
        return (d > 0) & (d < threshold)

    graph = a.disjoint and b.disjoint
    out_a = size_a - np.bincount(i, weights=w, minlength=len(size_a)).astype(np.int64)
    out_b = size_b - np.bincount(j, weights=w, minlength=len(size_b)).astype(np.int64)

    def atoms(cell: int, skip: Iterable[int], here: bool) -> frozenset[tuple[int, int]] | None:
        """A cell (of ``a`` if ``here``, else of ``b``) without its parts that are in the
        other table's cells ``skip``; -1 stands for outside the other table."""
        if not graph:
            return None
        own, other, outside = (i, j, out_a) if here else (j, i, out_b)
        parts = set(other[own == cell].tolist()) - {int(x) for x in skip}
        parts |= {-1} if outside[cell] > 0 else set()
        return frozenset((cell, x) if here else (x, cell) for x in parts)

    found: list[_Derived] = []
    # Nested cells: one cell wholly inside a larger one of the other table.
    for inner, outer, from_here in ((size_a[i], size_b[j], False), (size_b[j], size_a[i], True)):
        for k in np.flatnonzero((w == inner) & small(outer - w)):
            cell, skip = (int(i[k]), j[k]) if from_here else (int(j[k]), i[k])
            found.append(_Derived("nested", (int(i[k]),), (int(j[k]),), int(outer[k] - w[k]),
                                  from_here, atoms(cell, [skip], from_here)))  # fmt: skip
    if not graph:
        # Each table's people as one group (its size may be published elsewhere).
        every = tuple(range(len(a.cells))), tuple(range(len(b.cells)))
        for inner, outer, from_here in ((b.population, a.population, True),
                                        (a.population, b.population, False)):  # fmt: skip
            if shared == inner and small(outer - shared):
                found.append(_Derived("population", *every, outer - shared, from_here))
        return found
    # Unions: a cell holding two or more whole cells of the other table.
    for own, other, size, inside, from_here in (
        (i, j, size_a, w == size_b[j], True), (j, i, size_b, w == size_a[i], False),
    ):  # fmt: skip
        held = np.bincount(own[inside], minlength=len(size))
        rest = size - np.bincount(own[inside], w[inside], len(size)).astype(np.int64)
        for whole in np.flatnonzero((held >= 2) & small(rest)).tolist():
            parts = tuple(other[inside & (own == whole)].tolist())
            found.append(_Derived(
                "union", (whole,) if from_here else parts, parts if from_here else (whole,),
                int(rest[whole]), from_here, atoms(whole, parts, from_here),
            ))  # fmt: skip
    found += _populations(i, j, out_a, out_b, small)
    # Bridges: a shared group that is in no cycle, and is not simply one whole cell.
    degree_a = np.bincount(i, minlength=len(size_a)) + (out_a > 0)
    degree_b = np.bincount(j, minlength=len(size_b)) + (out_b > 0)
    maybe = small(w) & (degree_a[i] >= 2) & (degree_b[j] >= 2)
    if maybe.any():
        bridge = _bridges(i, j, out_a, out_b)
        for k in np.flatnonzero(maybe & bridge):
            found.append(_Derived("overlap", (int(i[k]),), (int(j[k]),), int(w[k]), True,
                                  frozenset({(int(i[k]), int(j[k]))})))  # fmt: skip
    return found


def _populations(
    i: np.ndarray, j: np.ndarray, out_a: np.ndarray, out_b: np.ndarray, small: Any
) -> list[_Derived]:
    """Connected groups of overlapping cells whose people are all in the other table
    (one side's people outside the other table make up the whole difference)."""
    na, nb = len(out_a), len(out_b)
    adjacency = coo_matrix((np.ones(len(i)), (i, na + j)), shape=(na + nb, na + nb))
    count, label = connected_components(adjacency, directed=False)
    label_a, label_b = label[:na], label[na:]
    both = (np.bincount(label_a, minlength=count) > 0) & (np.bincount(label_b, minlength=count) > 0)
    extra_a = np.bincount(label_a, weights=out_a, minlength=count).astype(np.int64)
    extra_b = np.bincount(label_b, weights=out_b, minlength=count).astype(np.int64)
    found = []
    for group in np.flatnonzero(both & (((extra_b == 0) & small(extra_a)) |
                                        ((extra_a == 0) & small(extra_b)))):  # fmt: skip
        here = tuple(int(x) for x in np.flatnonzero(label_a == group))
        there = tuple(int(x) for x in np.flatnonzero(label_b == group))
        from_here = bool(extra_b[group] == 0)
        atoms = (frozenset((c, -1) for c in here if out_a[c] > 0) if from_here
                 else frozenset((-1, c) for c in there if out_b[c] > 0))  # fmt: skip
        size = int(extra_a[group] if from_here else extra_b[group])
        found.append(_Derived("population", here, there, size, from_here, atoms))
    return found


def _bridges(i: np.ndarray, j: np.ndarray, out_a: np.ndarray, out_b: np.ndarray) -> np.ndarray:
    """Which (i, j) edges are bridges of the graph of cells, with one node for "outside
    the other table" (``out_a``/``out_b`` > 0). A bridge's weight is fixed by the
    published counts on the side away from "outside"; an edge on a cycle is not, since
    its people can be traded round the cycle. Found with one depth-first search: an edge
    to a child is a bridge when no back edge leaves the child's subtree."""
    na, nb = len(out_a), len(out_b)
    outside, root = na + nb, na + nb + 1
    u = np.r_[i, np.flatnonzero(out_a > 0), na + np.flatnonzero(out_b > 0)]
    v = np.r_[na + j, np.full(int((out_a > 0).sum() + (out_b > 0).sum()), outside)]
    nodes = na + nb + 1
    _, label = connected_components(
        coo_matrix((np.ones(len(u)), (u, v)), shape=(nodes, nodes)), directed=False
    )
    starts = np.unique(label, return_index=True)[1]  # one node per component, from a root
    uu, vv = np.r_[u, np.full(len(starts), root)], np.r_[v, starts]
    order, parent = depth_first_order(
        coo_matrix((np.ones(len(uu)), (uu, vv)), shape=(nodes + 1, nodes + 1)).tocsr(),
        root, directed=False, return_predecessors=True,
    )  # fmt: skip
    position = np.empty(nodes + 1, dtype=np.int64)
    position[order] = np.arange(len(order))
    down, up = parent[v] == u, parent[u] == v
    tree = down | up
    child = np.where(down, v, u)
    deeper = np.where(position[u] > position[v], u, v)
    higher = np.where(position[u] > position[v], v, u)
    cover = np.zeros(nodes + 1, dtype=np.int64)
    np.add.at(cover, deeper[~tree], 1)
    np.add.at(cover, higher[~tree], -1)
    covered, parents = cover.tolist(), parent.tolist()
    for node in order[:0:-1].tolist():  # children before parents; cell nodes, not people
        covered[parents[node]] += covered[node]
    return (tree & (np.asarray(covered)[child] == 0))[: len(i)]


MAX_LISTED: Final = 20  # cells named in a finding's evidence before it only counts them
MESSAGES: Final = {
    ("nested", True): "subtracting {theirs} in {where} ({n_there} people) from this table's "
                      "{mine} ({n_here} people) leaves a group of {d}",
    ("nested", False): "subtracting this table's {mine} ({n_here} people) from {theirs} in "
                       "{where} ({n_there} people) leaves a group of {d}",
    ("union", True): "this table's {mine} ({n_here} people) minus the {k_there} cells of "
                     "{where} inside it ({theirs}) leaves a group of {d}",
    ("union", False): "{theirs} in {where} ({n_there} people) minus the {k_here} cells of "
                      "this table inside it ({mine}) leaves a group of {d}",
    ("population", True): "{scope_here} ({n_here} people) holds everyone in {scope_there} "
                          "({n_there} people) and {d} more (nested populations)",
    ("population", False): "{scope_there} ({n_there} people) holds everyone in {scope_here} "
                           "({n_here} people) and {d} more (nested populations)",
    ("overlap", True): "the {d} people in both this table's {mine} and {theirs} in {where} "
                       "can be counted by adding and subtracting the two tables' cells",
}  # fmt: skip


def _finding(
    derived: _Derived,
    here: LedgerTable,
    there: LedgerTable,
    rows: Mapping[Cell, int],
    column: str | None,
    threshold: int,
) -> Finding:
    where = f"{there.file or 'a table'} in {there.release or 'an earlier release'}"
    if there.project != here.project:
        where += " (another project's release of this data)"
    cells_here = [here.describe(c) for c in derived.here]
    cells_there = [there.describe(c) for c in derived.there]
    mine = "; ".join(map(_name, cells_here[:3])) + ("; ..." if len(cells_here) > 3 else "")
    theirs = "; ".join(map(_name, cells_there[:3])) + ("; ..." if len(cells_there) > 3 else "")
    n_here = int(here.sizes[list(derived.here)].sum())
    n_there = int(there.sizes[list(derived.there)].sum())
    whole = len(cells_here) == len(here.cells) and len(cells_there) == len(there.cells)
    if derived.kind == "population" and whole:  # people, not cell sizes, if in several cells
        n_here, n_there = here.population, there.population
    how = MESSAGES[derived.kind, derived.from_here].format(
        where=where, mine=mine, theirs=theirs, n_here=n_here, n_there=n_there,
        d=derived.size, k_here=len(cells_here), k_there=len(cells_there),
        scope_here="this table" if whole else f"this table's {mine}",
        scope_there=where if whole else f"{theirs} in {where}",
    )  # fmt: skip
    single = len(derived.here) == 1
    return Finding(
        rule="X2",
        status=Status.FAIL,
        message=f"{how}; a group of fewer than {threshold} people must not be derivable",
        row=rows.get(here.cells[derived.here[0]]) if single else None,
        column=column,
        cell=cells_here[0] if single else {},
        evidence={
            "derivation": derived.kind, "derived_persons": derived.size, "threshold": threshold,
            "earlier_release": there.release, "earlier_file": there.file,
            "same_project": there.project == here.project,
            "cells": cells_here[:MAX_LISTED], "cell_count": len(cells_here),
            "persons": n_here, "earlier_cells": cells_there[:MAX_LISTED],
            "earlier_cell_count": len(cells_there), "earlier_persons": n_there,
        },
    )  # fmt: skip


def _name(cell: Mapping[str, str]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in cell.items()) or "total"
