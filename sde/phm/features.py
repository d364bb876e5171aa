"""Person-level variables the built-in analyses share, derived one way: which codelists
a person has as of a date (read through ``sde.phm.codelists``), the long-term
conditions that count towards multimorbidity, and the "share of a group" table that
segmentation and frailty publish.

``coded_rows`` cuts the coded tables (GP events, admitted spells, GP medications) down
to the rows carrying any code of the lists an analysis needs, in one pass per table, so
that asking ``codelists.people_with`` about 30 lists reads a few percent of a
million-person extract 30 times instead of all of it. ``coded_records`` goes one step
further for a known set of people: their pseudonyms become positions, so each list's
answer is an array index (matching Arrow-backed strings per list is what is slow).
Codelist semantics are untouched: every look-up still goes through ``codelists``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from sde.phm import codelists
from sde.phm.evidence import ResultTable
from sde.phm.frames import Frames

# Long-term conditions counted for "one or more long-term conditions" (segmentation) and
# the condition count (matching): the codelist ids. Prediabetes and coded obesity are
# risk states, not conditions; type 1 diabetes is inside diabetes.
LONG_TERM_CONDITIONS: Final = (
    "hypertension", "diabetes", "asthma", "copd", "atrial_fibrillation", "chd", "stroke",
    "ckd", "heart_failure", "cancer", "depression", "anxiety", "smi", "dementia",
    "osteoarthritis", "learning_disability", "alcohol_dependence", "drug_dependence",
)  # fmt: skip

# table -> (code column, date column); apc_spells codes are ICD-10 prefixes.
_CODED: Final = {
    "gp_events": ("snomed_code", "date"),
    "apc_spells": ("primary_diagnosis_icd10", "admission_date"),
    "gp_medications": ("bnf_section", "date"),
}


def versions(ids: Iterable[str]) -> dict[str, int]:
    """``{id: version}`` of the current codelists, for ``AnalysisResult.codelists``."""
    return {i: codelists.get(i).version for i in ids}


def coded_rows(frames: Frames, ids: Iterable[str], *, end: date) -> dict[str, pd.DataFrame]:
    """``frames`` with each coded table cut to the rows dated on or before ``end`` that
    carry a code of one of the lists ``ids`` (other tables untouched). Use it only for
    codelist look-ups: activity counts need the whole tables. A table lacking the columns
    is left whole, so ``codelists`` reports what is missing exactly as it would."""
    lists = [codelists.get(i) for i in ids]
    wanted: dict[str, frozenset[str] | tuple[str, ...]] = {
        "gp_events": frozenset().union(*(c.snomed for c in lists)),
        "apc_spells": tuple(sorted(set().union(*(c.icd10 for c in lists)))),
        "gp_medications": frozenset().union(*(c.bnf_sections for c in lists)),
    }
    out = dict(frames)
    for table, (code_column, date_column) in _CODED.items():
        frame = frames.get(table)
        needed = ("person_id", code_column, date_column)
        if frame is None or any(c not in frame.columns for c in needed):
            continue
        codes = frame[code_column]
        if table == "apc_spells":  # prefixes: matched once on the distinct codes
            distinct = pd.Series(codes.dropna().unique()).astype("str")
            prefixes = tuple(wanted[table])
            hits = distinct[distinct.str.startswith(prefixes)] if prefixes else distinct[:0]
            mask = codes.isin(list(hits))
        else:
            mask = codes.isin(list(wanted[table]))
        mask &= frame[date_column] <= pd.Timestamp(end)
        out[table] = frame.loc[mask, list(needed)]
    return out


@dataclass(frozen=True)
class CodedRecords:
    """The coded rows of ``people`` dated on or before ``end`` that carry a code of one
    of the lists read, with ``person_id`` replaced by the person's position in
    ``people`` (an int64): codelist look-ups then come back as positions, with no
    string matching per list. Make one with ``coded_records``."""

    people: pd.Index
    frames: Mapping[str, pd.DataFrame]
    end: date

    def flags(self, ids: Sequence[str]) -> pd.DataFrame:
        """One bool column per codelist id: has each person any code of it."""
        out = np.zeros((len(self.people), len(ids)), dtype=bool)
        for j, i in enumerate(ids):
            out[codelists.people_with(self.frames, i, end=self.end).to_numpy(), j] = True
        return pd.DataFrame(out, index=self.people, columns=list(ids))

    def first_dates(self, codelist_id: str) -> pd.Series:
        """Per person (by person_id) with a code of the list, its first date."""
        first = codelists.first_dates(self.frames, codelist_id, end=self.end)
        return pd.Series(first.to_numpy(), index=self.people[first.index.to_numpy()],
                         name=codelist_id)  # fmt: skip


def coded_records(
    frames: Frames, ids: Iterable[str], *, people: pd.Index | Sequence[str], end: date
) -> CodedRecords:
    """The records of ``people`` that the codelists ``ids`` read, up to ``end``."""
    index = pd.Index(np.asarray(people, dtype=object), name="person_id")
    rows = coded_rows(frames, ids, end=end)
    for table in _CODED:
        frame = rows.get(table)
        if frame is None or frame is frames.get(table):
            continue  # absent or lacking columns: codelists will say so
        # One hash lookup per row (Arrow-backed strings are slow to match per list).
        position = index.get_indexer(frame["person_id"].to_numpy(dtype=object))
        rows[table] = frame.assign(person_id=position).loc[position >= 0]
    return CodedRecords(people=index, frames=rows, end=end)


def condition_flags(
    frames: Frames, ids: Sequence[str], *, people: pd.Index | Sequence[str], end: date
) -> pd.DataFrame:
    """One bool column per codelist id: has each of ``people`` (index, in that order) any
    code of the list dated on or before ``end``."""
    return coded_records(frames, ids, people=people, end=end).flags(ids)


def share_table(
    rows: pd.DataFrame,
    *,
    name: str,
    title: str,
    category: str,
    categories: Sequence[str],
    by: str | None = None,
    description: str = "",
) -> ResultTable:
    """People per ``category`` (every level, zeros included) within each observed group
    of ``by`` (or overall), the group's people and the share. ``rows``: one per person.
    The share is a proportion derived from ``people`` over ``group_people``."""
    keys = [by, category] if by else [category]
    counts = rows.groupby(keys, observed=True, sort=True).size()
    if by:
        groups = counts.index.get_level_values(0).unique()
        grid = pd.MultiIndex.from_product([groups, list(categories)], names=keys)
    else:
        grid = pd.Index(list(categories), name=category)
    people = counts.reindex(grid, fill_value=0).astype("int64")
    if by:
        totals = people.groupby(level=0, sort=False).transform("sum")
    else:
        totals = pd.Series(int(people.sum()), index=people.index, dtype="int64")
    frame = pd.DataFrame({"people": people, "group_people": totals}).reset_index()
    frame[category] = frame[category].astype("str")
    share = frame["people"] / frame["group_people"].where(frame["group_people"] > 0)
    frame["share"] = share.astype("float64")
    persons = pd.DataFrame(
        {
            "people": frame["people"],
            "group_people": frame["group_people"],
            "share": frame["people"],
        }
    )
    return ResultTable(
        name=name, title=title, frame=frame, dimensions=tuple(keys),
        statistics={"people": "count", "group_people": "count", "share": "proportion"},
        persons=persons, derived_from={"share": ("people", "group_people")},
        description=description,
    )  # fmt: skip
