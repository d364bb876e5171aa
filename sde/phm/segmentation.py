"""Bridges to Health segmentation (reference/phm-analytics.md, "Segmentation"), costed.

Every person registered on the index date is in exactly one segment: the first of
``SEGMENTS``, in order, for which any of its facts is true (the last, healthy, has none
and takes everyone left). The facts, all as of the index date (codes dated on or before
the day before it; "last 12 months" is ``population.year_before``):

- ``active_cancer``: a cancer code first recorded in the last 12 months, or an admission
  for chemotherapy (ICD-10 Z51.1, ``CHEMOTHERAPY``) in the last 12 months;
- ``severe_frailty``: eFI above 0.36, aged 65+ (``frailty.FRAILTY_MIN_AGE``: the eFI's
  categories mean nothing younger); ``dementia``, ``heart_failure``, ``copd``,
  ``ckd_stage_4_5``, ``learning_disability``: ever recorded (the codelists);
- ``long_term_condition``: any of ``features.LONG_TERM_CONDITIONS`` ever recorded;
- ``maternity_admission``: a maternity spell admitted in the last 12 months;
  ``infant``: aged under 1;
- ``emergency_admission``: an emergency spell admitted in the last 12 months.

Costed segmentation adds each segment's hospital cost (admitted spells and A&E, from
``population.hospital_cost``) in the 12 months before the index date, with the
dominance evidence output checking needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from sde.phm.codelists import get, people_with
from sde.phm.evidence import MAGNITUDE_FIELDS, AnalysisResult, ChartSpec, ResultTable
from sde.phm.evidence import magnitude_evidence as _evidence
from sde.phm.features import LONG_TERM_CONDITIONS, coded_records, share_table, versions
from sde.phm.frailty import FRAILTY_MIN_AGE, efi, efi_lists
from sde.phm.frames import AnalysisInputError, Frames, require
from sde.phm.population import hospital_cost, registered_population, year_before


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    definition: str
    facts: tuple[str, ...]  # any of these puts a person here (if no earlier segment has)


SEGMENTS: Final = (
    Segment("end_of_life", "End of life / short decline",
            "Active cancer: first cancer code or a chemotherapy admission in the last "
            "12 months", ("active_cancer",)),
    Segment("frailty_dementia", "Frailty and dementia",
            "Severe frailty (eFI > 0.36, aged 65+) or dementia", ("severe_frailty", "dementia")),
    Segment("limited_reserve", "Limited reserve",
            "Organ failure: heart failure, COPD or CKD stage 4-5",
            ("heart_failure", "copd", "ckd_stage_4_5")),
    Segment("stable_disability", "Stable but serious disability", "Learning disability",
            ("learning_disability",)),
    Segment("chronic_conditions", "Chronic conditions, normal function",
            "One or more long-term conditions", ("long_term_condition",)),
    Segment("maternal_infant", "Maternal and infant health",
            "Maternity admission in the last 12 months, or aged under 1",
            ("maternity_admission", "infant")),
    Segment("acutely_ill", "Acutely ill",
            "Emergency admission in the last 12 months, otherwise well",
            ("emergency_admission",)),
    Segment("healthy", "Healthy", "None of the above", ()),
)  # fmt: skip
SEGMENT_KEYS: Final = tuple(s.key for s in SEGMENTS)
# Not in the codelist library yet: a chemotherapy session recorded as an admission's
# primary diagnosis (the library's condition lists are diagnoses, not treatments).
CHEMOTHERAPY: Final = get("chemotherapy_admission")
_FACT_LISTS: Final = ("dementia", "heart_failure", "copd", "ckd_stage_4_5", "learning_disability")
BREAKDOWNS: Final = ("place", "pcn_code", "imd_quintile", "ethnic_group", "age_band")


def codelist_ids() -> tuple[str, ...]:
    """Every library codelist segmentation reads (the eFI's included)."""
    return tuple(dict.fromkeys(("cancer", *_FACT_LISTS, *LONG_TERM_CONDITIONS, *efi_lists())))


def segment_facts(
    frames: Frames, *, index_date: date, population: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The facts of the module docstring (bool columns), one row per person registered on
    ``index_date`` (or of ``population``), indexed by person_id."""
    people = population if population is not None else registered_population(frames, index_date)
    ids = pd.Index(people["person_id"].to_numpy(dtype=object), name="person_id")
    start, end = year_before(index_date)
    lists = tuple(dict.fromkeys(("cancer", *_FACT_LISTS, *LONG_TERM_CONDITIONS)))
    records = coded_records(frames, codelist_ids(), people=ids, end=end)  # the eFI's too
    flags = records.flags(lists)
    facts = pd.DataFrame(index=ids)
    new_cancer = records.first_dates("cancer")
    new_cancer = new_cancer.index[new_cancer >= pd.Timestamp(start)]
    spells = require(frames, "apc_spells", ["person_id", "admission_date", "admission_method"])
    chemo = people_with(frames, CHEMOTHERAPY, start=start, end=end)
    facts["active_cancer"] = ids.isin(new_cancer.union(chemo))
    age = people["age"].to_numpy(dtype="float64", na_value=np.nan)
    severe = efi(frames, index_date=index_date, records=records)["category"] == "severe"
    facts["severe_frailty"] = severe.to_numpy() & (age >= FRAILTY_MIN_AGE)
    for name in _FACT_LISTS:
        facts[name] = flags[name].to_numpy()
    facts["long_term_condition"] = flags[list(LONG_TERM_CONDITIONS)].to_numpy().any(axis=1)
    in_year = (spells["admission_date"] >= pd.Timestamp(start)) & (
        spells["admission_date"] <= pd.Timestamp(end)
    )
    for fact, method in (
        ("maternity_admission", "maternity"),
        ("emergency_admission", "emergency"),
    ):
        admitted = spells.loc[in_year & (spells["admission_method"] == method), "person_id"]
        facts[fact] = ids.isin(pd.unique(admitted.to_numpy(dtype=object)))
    facts["infant"] = age < 1
    return facts


def assign_segments(facts: pd.DataFrame) -> pd.Categorical:
    """The segment of each row of ``facts``: the first of ``SEGMENTS`` with a true fact."""
    conditions = [facts[list(s.facts)].to_numpy().any(axis=1) for s in SEGMENTS if s.facts]
    codes = np.select(conditions, np.arange(len(conditions)), default=len(SEGMENTS) - 1)
    return pd.Categorical.from_codes(codes, categories=list(SEGMENT_KEYS))


def segment(frames: Frames, *, index_date: date) -> pd.DataFrame:
    """person_id and segment (categorical, in hierarchy order) for everyone registered
    on ``index_date``."""
    facts = segment_facts(frames, index_date=index_date)
    return pd.DataFrame({"person_id": facts.index.to_numpy(), "segment": assign_segments(facts)})


def segmentation_analysis(
    frames: Frames,
    *,
    index_date: date,
    by: Sequence[str] = BREAKDOWNS,
    costed: bool = True,
) -> AnalysisResult:
    """People and share per segment, overall and by each of ``by`` (columns of
    ``registered_population``); if ``costed``, hospital cost in the 12 months before
    ``index_date`` per segment (total and per person), overall and by each of ``by``.

    Raises AnalysisInputError if the extract lacks a breakdown's column, the tables the
    facts read, or (costed) any hospital cost."""
    population = registered_population(frames, index_date)
    if missing := [b for b in by if b not in population.columns]:
        raise AnalysisInputError(f"the extract cannot break segments down by {', '.join(missing)}")
    facts = segment_facts(frames, index_date=index_date, population=population)
    rows = population.assign(segment=assign_segments(facts))
    about = (f"Registered on {index_date.isoformat()}; Bridges to Health segments, first "
             "matching rule in hierarchy order.")  # fmt: skip
    tables = [share_table(rows, name="segments", title="People by segment", category="segment",
                          categories=SEGMENT_KEYS, description=about)]  # fmt: skip
    tables += [
        share_table(rows, name=f"segments_by_{column}", title=f"Segments by {column}",
                    category="segment", categories=SEGMENT_KEYS, by=column, description=about)
        for column in by
    ]  # fmt: skip
    charts = [ChartSpec(name="segments", table="segments", kind="bar", x="segment", y="share",
                        title="Share of the population by segment")]  # fmt: skip
    start, end = year_before(index_date)
    if costed:
        costed_tables = [t for t in ("apc_spells", "ae_attendances")
                         if t in frames and "cost" in frames[t].columns]  # fmt: skip
        if not costed_tables:
            raise AnalysisInputError(
                "costed segmentation needs cost in apc_spells or ae_attendances"
            )
        cost = hospital_cost(frames, start, end)
        ids = rows["person_id"].to_numpy(dtype=object)
        rows["cost"] = pd.Series(cost.to_numpy(), index=cost.index.astype(object)).reindex(
            ids, fill_value=0.0).to_numpy()  # fmt: skip
        cost_about = (f"Hospital cost (admitted spells and A&E, GBP) {start.isoformat()} to "
                      f"{end.isoformat()}, per segment; per person = total / people.")  # fmt: skip
        tables.append(_cost_table(rows, name="segment_costs", by=["segment"], about=cost_about))
        tables += [
            _cost_table(
                rows, name=f"segment_costs_by_{column}", by=[column, "segment"], about=cost_about
            )
            for column in by
        ]
        charts.append(ChartSpec(name="segment_costs", table="segment_costs", kind="bar",
                                x="segment", y="cost_per_person",
                                title="Hospital cost per person by segment"))  # fmt: skip
    return AnalysisResult(
        tables=tables,
        charts=charts,
        codelists={**versions(codelist_ids()), CHEMOTHERAPY.id: CHEMOTHERAPY.version},
        parameters={"index_date": index_date.isoformat(), "by": list(by), "costed": costed,
                    "segments": [[s.key, s.definition] for s in SEGMENTS],
                    "window": [start.isoformat(), end.isoformat()]},
    )  # fmt: skip


def _cost_table(rows: pd.DataFrame, *, name: str, by: list[str], about: str) -> ResultTable:
    """Total and per-person cost per group, with the dominance evidence of both (the same
    per-person contributions: a mean's evidence is its total's)."""
    # One row per person: their position is their identity (faster than the pseudonym).
    person = rows[by].assign(cost=rows["cost"].to_numpy(), person=np.arange(len(rows)))
    evidence = _evidence(person, by=by, value="cost", person="person").reset_index()
    frame = evidence[by].assign(
        people=evidence["persons"], total_cost=evidence["sum"],
        cost_per_person=evidence["sum"] / evidence["persons"],
    )  # fmt: skip
    frame["segment"] = frame["segment"].astype("str")
    persons = pd.DataFrame({c: evidence["persons"] for c in ("people", "total_cost",
                                                              "cost_per_person")})  # fmt: skip
    magnitudes = pd.DataFrame(
        {f"{c}.{f}": evidence[f] for c in ("total_cost", "cost_per_person")
         for f in MAGNITUDE_FIELDS}, index=frame.index,
    )  # fmt: skip
    return ResultTable(
        name=name, title=f"Hospital cost by {', '.join(by)}", frame=frame, dimensions=tuple(by),
        statistics={"people": "count", "total_cost": "sum", "cost_per_person": "mean"},
        persons=persons, magnitudes=magnitudes, description=about,
    )  # fmt: skip
