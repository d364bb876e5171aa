"""H1: histograms. Each bar is a count of people, and the outer bars and edges hold the
most extreme values of the data, so a histogram is a frequency table whose ends need the
most care.

The evidence (kind "histogram"), one entry per bin in edge order, so that bin ``i`` is row
``i`` of the published table::

    {"kind": "histogram", "column": "age", "edges": [0, 10, 20, 30],
     "persons": [12, 40, 15], "data_min": 0.5, "data_max": 29.0, "edges_rounded": false}

``edges``: the bin boundaries, strictly increasing, one more than the bins. ``persons``:
distinct persons per bin. ``data_min``/``data_max``: the smallest and largest value in the
data, which must lie within the edges. ``edges_rounded``: the edges were rounded outwards
to round numbers rather than taken from the data (absent means false).

Decisions where the reference ("first/last bin < 10") is silent: an empty first or last
bin fails too (drop it, so that the next bin becomes the outer one and is judged); an
empty inner bin says nobody has a value in that range, a zero like T2's, so it fails when
the policy holds zeros disclosive (as ACRO does). Edges are compared with the
data's extremes to a relative tolerance of 1e-9, since a float edge a rounding error away
from the minimum still publishes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from outputs.sdc.evidence import EvidenceError
from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Status


@dataclass(frozen=True)
class Histogram:
    """Validated histogram evidence."""

    column: str
    edges: np.ndarray
    persons: np.ndarray
    data_min: float
    data_max: float
    edges_rounded: bool


def read_histogram(sidecar: Mapping[str, Any]) -> Histogram:
    """The histogram evidence in ``sidecar``; raises ``EvidenceError`` naming what is
    wrong when it is malformed or inconsistent (people outside every bin)."""
    if sidecar.get("kind") != "histogram":
        raise EvidenceError(f"histogram evidence must have kind 'histogram', not "
                            f"{sidecar.get('kind')!r}")  # fmt: skip
    column = sidecar.get("column")
    if not isinstance(column, str) or not column:
        raise EvidenceError("histogram evidence must name its column")
    edges = np.array(_numbers(sidecar.get("edges"), "edges"), dtype=float)
    persons = np.array(_numbers(sidecar.get("persons"), "persons"), dtype=float)
    if len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise EvidenceError("histogram edges must be at least two, strictly increasing")
    if len(persons) != len(edges) - 1:
        bins = len(edges) - 1
        raise EvidenceError(f"a histogram with {len(edges)} edges has {bins} "
                            f"bin{'s' if bins != 1 else ''}, but its evidence gives "
                            f"{len(persons)} counts")  # fmt: skip
    if np.any(persons < 0) or np.any(persons != np.floor(persons)):
        raise EvidenceError("histogram persons must be whole numbers, none negative")
    data_min, data_max = (_number(sidecar.get(k), k) for k in ("data_min", "data_max"))
    if data_min > data_max:
        raise EvidenceError(f"histogram data_min {data_min:g} exceeds data_max {data_max:g}")
    if data_min < edges[0] or data_max > edges[-1]:
        raise EvidenceError(
            f"the data runs from {data_min:g} to {data_max:g}, outside the edges "
            f"{edges[0]:g} to {edges[-1]:g}: some people are in no bin"
        )
    rounded = sidecar.get("edges_rounded", False)
    if not isinstance(rounded, bool):
        raise EvidenceError("histogram edges_rounded must be true or false")
    return Histogram(column, edges, persons.astype(np.int64), data_min, data_max, rounded)


def check_histogram(sidecar: Mapping[str, Any], policy: Policy) -> list[Finding]:
    """H1: a non-empty bin with fewer than ``policy.threshold`` persons fails, as does a
    first or last bin with fewer (even none); so does an outer edge equal to the data's
    minimum or maximum unless the edges were rounded. Raises ``EvidenceError`` when the
    evidence is malformed."""
    h = read_histogram(sidecar)
    persons, edges, limit = h.persons, h.edges, policy.threshold
    outer = np.zeros(len(persons), dtype=bool)
    outer[[0, -1]] = True
    small = np.flatnonzero((persons < limit) & ((persons > 0) | outer | policy.zeros_disclosive))
    findings = [_small_bin(h, int(i), bool(outer[i]), limit) for i in small]
    if not h.edges_rounded:
        for row, edge, extreme, which in (
            (0, edges[0], h.data_min, ("lowest", "smallest")),
            (len(persons) - 1, edges[-1], h.data_max, ("highest", "largest")),
        ):
            if math.isclose(edge, extreme, rel_tol=1e-9, abs_tol=1e-12):
                findings.append(Finding(
                    rule="H1", status=Status.FAIL, row=row, cell=_bin(h, row),
                    message=f"The {which[0]} edge of the {h.column} histogram ({edge:g}) is "
                            f"the {which[1]} value in the data, so it publishes one person's "
                            "value; round the edges outwards to round numbers",
                    evidence={"edge": float(edge), "data_extreme": float(extreme),
                              "edges_rounded": False},
                ))  # fmt: skip
    return sorted(findings, key=lambda f: f.row or 0)


def _small_bin(h: Histogram, row: int, outer: bool, limit: int) -> Finding:
    count = int(h.persons[row])
    where = f"{h.edges[row]:g} to {h.edges[row + 1]:g}"
    if outer:
        end = "first" if row == 0 else "last"
        holds = "is empty" if count == 0 else f"holds {count} people"
        message = (f"The {end} bin of the {h.column} histogram ({where}) {holds}; the first "
                   f"and last bins need at least {limit}, as they hold the most extreme "
                   "values: widen it or merge it with its neighbour"
                   + (", or drop it" if count == 0 else ""))  # fmt: skip
    elif count == 0:
        message = (f"The {h.column} bin {where} is empty, which says nobody has a value in "
                   "that range: merge it with a neighbour")  # fmt: skip
    else:
        message = (f"The {h.column} bin {where} holds {count} people; at least {limit} are "
                   "needed: merge it with a neighbour")  # fmt: skip
    return Finding(rule="H1", status=Status.FAIL, row=row, cell=_bin(h, row), message=message,
                   evidence={"persons": count, "threshold": limit, "outer": outer})  # fmt: skip


def _bin(h: Histogram, row: int) -> dict[str, Any]:
    return {"bin": row, "from": float(h.edges[row]), "to": float(h.edges[row + 1])}


def _numbers(values: Any, what: str) -> Sequence[float]:
    if not isinstance(values, list):
        raise EvidenceError(f"histogram {what} must be a list of numbers")
    return [_number(v, what) for v in values]


def _number(value: Any, what: str) -> float:
    """A finite JSON number (a boolean is not one, though Python says it is an int)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EvidenceError(f"histogram {what} must be finite numbers, not {value!r}")
    return float(value)
