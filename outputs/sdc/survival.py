"""K1: survival curves (Kaplan-Meier, life tables). Each step of a curve is a count of
events among the people still at risk, so a step with a few events tells a reader when
those few people died, and the tail of a curve, where few remain at risk, follows
individuals. ACRO 1.0.2 fails every survival table; this checks each step.

The evidence (kind "survival"), steps in time order::

    {"kind": "survival",
     "steps": [{"time": 30.0, "at_risk": 120, "events": 12, "censored": 3}, ...],
     "groups": {"female": [<steps>], "male": [<steps>]}}

``at_risk``: distinct persons at risk just before ``time``; ``events`` and ``censored``:
persons with the event at ``time`` and censored from ``time`` until the next step (the
lifelines convention, so without late entry the next step's at_risk is this one's less
both). ``groups`` is optional: one curve per group, by label; ``steps`` (the overall curve)
may then be left out. Times strictly increase; counts are whole and not negative; no step
has more events and censored than people at risk.

Decision where the reference is silent: a step with fewer than ``threshold`` at risk is
reported once, as "truncate" (merging cannot mend it), not also as "merge steps".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from outputs.sdc.evidence import EvidenceError
from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Status

FIELDS: Final = ("time", "at_risk", "events", "censored")


@dataclass(frozen=True)
class Steps:
    """One validated curve: arrays of equal length, a step per element."""

    time: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    censored: np.ndarray

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"time": float(t), "at_risk": int(n), "events": int(d), "censored": int(c)}
            for t, n, d, c in zip(self.time, self.at_risk, self.events, self.censored,
                                  strict=True)
        ]  # fmt: skip


def read_steps(steps: Any, where: str = "survival steps") -> Steps:
    """A step list of the evidence as arrays; raises ``EvidenceError`` naming the step and
    field at fault when it is malformed."""
    if not isinstance(steps, list):
        raise EvidenceError(f"{where} must be a list of steps")
    columns: dict[str, list[float]] = {key: [] for key in FIELDS}
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise EvidenceError(f"{where}: step {index} is not an object")
        for key in FIELDS:
            value = step.get(key)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise EvidenceError(f"{where}: step {index} needs a number {key}, not {value!r}")
            columns[key].append(value)
    time = np.array(columns["time"], dtype=float)
    counts = {key: np.array(columns[key], dtype=float) for key in FIELDS[1:]}
    for key, values in counts.items():
        bad = np.flatnonzero((values < 0) | (values != np.floor(values)))
        if len(bad):
            raise EvidenceError(f"{where}: step {bad[0]} has {key} {values[bad[0]]:g}; counts "
                                "are whole numbers, none negative")  # fmt: skip
    if np.any(np.diff(time) <= 0):
        raise EvidenceError(f"{where}: times must strictly increase")
    at_risk, events, censored = (counts[k].astype(np.int64) for k in FIELDS[1:])
    over = np.flatnonzero(events + censored > at_risk)
    if len(over):
        raise EvidenceError(f"{where}: step {over[0]} has more events and censored than "
                            "people at risk")  # fmt: skip
    return Steps(time, at_risk, events, censored)


def curves(sidecar: Mapping[str, Any]) -> list[tuple[str | None, Steps]]:
    """Every curve of the evidence: the overall one (label None), then each group's."""
    if sidecar.get("kind") != "survival":
        raise EvidenceError(f"survival evidence must have kind 'survival', not "
                            f"{sidecar.get('kind')!r}")  # fmt: skip
    groups = sidecar.get("groups")
    if "steps" not in sidecar and groups is None:
        raise EvidenceError("survival evidence needs steps or groups")
    if groups is not None and not isinstance(groups, dict):
        raise EvidenceError("survival groups must map each group's label to its steps")
    out: list[tuple[str | None, Steps]] = []
    if "steps" in sidecar:
        out.append((None, read_steps(sidecar["steps"])))
    for label, steps in (groups or {}).items():
        out.append((str(label), read_steps(steps, f"survival steps of group {label}")))
    return out


def check_survival(sidecar: Mapping[str, Any], policy: Policy) -> list[Finding]:
    """K1: a step with fewer than ``policy.threshold`` at risk fails (truncate the curve
    there); any other step with between 1 and ``threshold - 1`` events fails (merge it
    with its neighbours). ``row`` is the step's index in its curve. Raises
    ``EvidenceError`` when the evidence is malformed."""
    limit, findings = policy.threshold, []
    for group, s in curves(sidecar):
        truncate = s.at_risk < limit
        merge = (s.events > 0) & (s.events < limit) & ~truncate
        for row in np.flatnonzero(truncate | merge):
            t, n, d = float(s.time[row]), int(s.at_risk[row]), int(s.events[row])
            curve = "" if group is None else f" in {group}"
            message = (
                f"At time {t:g}{curve} only {n} people are at risk; at least {limit} are "
                "needed: end the curve before this step"
                if truncate[row]
                else f"At time {t:g}{curve} {d} people have the event; a step needs at least "
                f"{limit} (or none): merge it with the next steps"
            )
            findings.append(Finding(
                rule="K1", status=Status.FAIL, row=int(row), message=message,
                cell={"time": t} if group is None else {"group": group, "time": t},
                evidence={"time": t, "at_risk": n, "events": d, "threshold": limit,
                          "fix": "truncate" if truncate[row] else "merge"},
            ))  # fmt: skip
    return findings


def safe_steps(steps: Sequence[Mapping[str, Any]], policy: Policy) -> list[dict[str, Any]]:
    """The curve ``steps`` made safe under K1: cut before the first step with fewer than
    ``threshold`` at risk, then consecutive steps merged until each has at least
    ``threshold`` events (a step of only censoring joins the next one; what is left at the
    end joins the last merged step). A merged step has the time of its last step, the
    people at risk at its start plus any who entered during it, and the summed events and
    censored. Empty when the curve has fewer than ``threshold`` events before the cut."""
    s = read_steps(list(steps))
    limit = policy.threshold
    small = np.flatnonzero(s.at_risk < limit)
    n = int(small[0]) if len(small) else len(s.time)
    cumulative = np.cumsum(s.events[:n])
    ends: list[int] = []
    before = 0  # events in the merged steps so far
    # One iteration per merged step, not per step: the next end is found by bisection.
    while (end := int(np.searchsorted(cumulative, before + limit, side="left"))) < n:
        ends.append(end)
        before = int(cumulative[end])
    if not ends:
        return []
    ends[-1] = n - 1
    starts = np.array([0, *(e + 1 for e in ends[:-1])])
    entering = np.zeros(n, dtype=np.int64)
    entering[1:] = np.maximum(0, s.at_risk[1:n] - (s.at_risk[: n - 1] - s.events[: n - 1]
                                                   - s.censored[: n - 1]))  # fmt: skip
    merged = Steps(
        time=s.time[ends],
        at_risk=s.at_risk[starts] + np.add.reduceat(entering, starts) - entering[starts],
        events=np.add.reduceat(s.events[:n], starts),
        censored=np.add.reduceat(s.censored[:n], starts),
    )
    return merged.as_json()
