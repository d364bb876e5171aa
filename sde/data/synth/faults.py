"""Data-quality faults: which rows get which fault, at the configured rates, so that the
manifest can count exactly what was injected and ingestion can reconcile."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from sde.data.source_format import DATE_ORDER, DEATH_GRACE_DAYS, PEOPLE_TABLE
from sde.data.synth.arrays import _NA, _uniform_days
from sde.data.synth.config import FaultRates
from sde.data.synth.population import _Window
from sde.data.synth.tables import _Frame

FAULT_KINDS: Final = ("invalid_nhs_number", "impossible_date", "unknown_code", "duplicate_row")
# Which column each fault touches, by table. Impossible dates: "before_birth" moves
# registration_start before date_of_birth; "after_death" moves an event past the contract's
# grace days after the person's date_of_death (people who died early enough before the
# extract date); "future" moves a date past the extract date; "end_before_start" puts the
# end/discharge date before the start/admission.
DATE_FAULTS: Final[Mapping[str, tuple[str, str]]] = {
    "patients": ("before_birth", "registration_start"),
    "gp_events": ("after_death", "date"),
    "gp_medications": ("future", "date"),
    "apc_spells": ("end_before_start", "discharge_date"),
    "ae_attendances": ("future", "arrival_date"),
    "op_appointments": ("future", "date"),
    "community_contacts": ("end_before_start", "end_date"),
    "mh_contacts": ("end_before_start", "end_date"),
    "social_care": ("end_before_start", "end_date"),
}
# The date a before_birth or end_before_start fault goes before: the earlier column of
# the contract's date-order rule for the faulty column.
_START_OF: Final[Mapping[str, str]] = {
    table: earlier
    for table, (kind, column) in DATE_FAULTS.items()
    for earlier, later, reason in DATE_ORDER.get(table, ())
    if (later, reason) == (column, kind)
}
# The value an unknown-code fault writes, by table and column (never in CODE_LISTS).
UNKNOWN_CODES: Final[Mapping[str, Mapping[str, str]]] = {
    "gp_events": {"snomed_code": "999999999"},
    "gp_medications": {"bnf_chapter": "99", "bnf_section": "9999"},
    "apc_spells": {"primary_diagnosis_icd10": "U999"},
    "ae_attendances": {"disposal": "99"},
    "op_appointments": {"specialty": "999"},
    "community_contacts": {"service_type": "99"},
    "mh_contacts": {"service_type": "99"},
    "social_care": {"service_type": "99"},
}


def _unlinkable(patients: _Frame) -> np.ndarray:
    """The people whose patients row ingestion quarantines, after faults: an invalid NHS
    number or dates out of the contract's order (registration before birth). Their
    activity cannot be joined to a date of death."""
    assert patients.table == PEOPLE_TABLE and patients.nhs_fault is not None
    quarantined = patients.nhs_fault > 0
    for earlier, later, _ in DATE_ORDER[PEOPLE_TABLE]:
        a, b = patients.cols[earlier], patients.cols[later]
        quarantined |= (a != _NA) & (b != _NA) & (b < a)
    return patients.person[quarantined]


def _inject_faults(
    rng: np.random.Generator,
    frame: _Frame,
    rates: FaultRates,
    w: _Window,
    death: np.ndarray,
    unlinked: np.ndarray,
) -> tuple[_Frame, dict[str, int]]:
    """Give disjoint random rows one fault each, then duplicate some clean rows in place.

    ``unlinked`` marks people whose patients row ingestion quarantines (``_unlinkable``):
    their events cannot be joined to a date of death, so they are not used for "after
    death" faults.
    """
    n = frame.rows
    counts = dict.fromkeys(FAULT_KINDS, 0)
    taken = np.zeros(n, dtype=bool)

    def choose(eligible: np.ndarray | bool, rate: float) -> np.ndarray:
        pool = np.flatnonzero(eligible & ~taken)
        wanted = min(int(np.floor(rate * n + 0.5)), pool.size)
        rows = np.sort(rng.choice(pool, size=wanted, replace=False))
        taken[rows] = True
        return rows

    if frame.table in DATE_FAULTS:
        kind, column = DATE_FAULTS[frame.table]
        days = frame.cols[column]
        if kind == "future":
            rows = choose(True, rates.impossible_date)
            days[rows] = w.end + rng.integers(1, 366, rows.size)
        elif kind == "after_death":
            # Past the grace days: activity the day after death is accepted as clean.
            first = death[frame.person] + DEATH_GRACE_DAYS + 1
            eligible = (death[frame.person] != _NA) & (first <= w.end) & ~unlinked[frame.person]
            rows = choose(eligible, rates.impossible_date)
            days[rows] = _uniform_days(rng, first[rows], np.full(rows.size, w.end))
        else:  # end before start, registration before birth
            start = frame.cols[_START_OF[frame.table]]
            rows = choose(days != _NA, rates.impossible_date)
            days[rows] = start[rows] - rng.integers(
                1, 31 if kind != "before_birth" else 366, rows.size
            )
        counts["impossible_date"] = rows.size
    rows = choose(True, rates.invalid_nhs_number)
    frame.nhs_fault = np.zeros(n, dtype=np.int64)
    # 60% a wrong check digit, 20% nine digits, 20% a letter for a digit.
    frame.nhs_fault[rows] = np.where(
        rng.random(rows.size) < 0.6, rng.integers(1, 10, rows.size), rng.integers(10, 12, rows.size)
    )
    counts["invalid_nhs_number"] = rows.size
    if frame.table in UNKNOWN_CODES:
        rows = choose(True, rates.unknown_code)
        frame.labels = dict(frame.labels)
        for column, code in UNKNOWN_CODES[frame.table].items():
            frame.labels[column] = (*frame.labels[column], code)
            frame.cols[column][rows] = len(frame.labels[column]) - 1
        counts["unknown_code"] = rows.size
    rows = choose(True, rates.duplicate_row)
    counts["duplicate_row"] = rows.size
    if rows.size:
        copies = np.zeros(n, dtype=np.int64)
        copies[rows] = 1
        frame = frame.take(np.repeat(np.arange(n), 1 + copies))
    return frame, counts
