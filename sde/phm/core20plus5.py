"""The Core20PLUS5 view (reference/phm-analytics.md, "Inequalities"): prevalence,
recorded care and gaps in the five clinical areas (and diabetes where configured) for
Core20, the chosen PLUS groups and the rest.

The measures are defined in the module-level table ``DEFINITIONS`` (and the PLUS groups
in ``PLUS_GROUPS``); ``core20plus5`` computes exactly those rows. Population, breakdowns
and person look-ups are those of ``inequalities``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from sde.phm import codelists
from sde.phm.evidence import AnalysisResult, ChartSpec, ResultTable
from sde.phm.frames import AnalysisInputError, Frames, require
from sde.phm.inequalities import (
    CORE20,
    REST,
    Z,
    aligned,
    id_index,
    known_only,
    members,
)
from sde.phm.population import registered_population, year_before
from sde.phm.rates import wilson_interval


# --- Core20PLUS5 -------------------------------------------------------------------------
@dataclass(frozen=True)
class Measure:
    """One Core20PLUS5 measure: the share of ``denominator`` people who are ``numerator``
    people. "Recorded" means a code of the list dated before the index date; "in the 12
    months" is ``year_before(index_date)``. Codelists are named by id."""

    area: str
    measure: str
    numerator: str
    denominator: str
    codelists: tuple[str, ...] = ()


_MOTHERS: Final = "registered women aged 15-44 with a maternity admission in the 12 months"
_SMI: Final = "registered people with severe mental illness recorded"
_RESP: Final = "registered people with asthma or COPD recorded"
_NEW_CANCER: Final = "registered people first recorded with cancer (GP or hospital) in 12 months"
_ADULTS: Final = "registered adults (18+)"
_HT: Final = "registered adults with hypertension recorded"
_DM_AGE: Final = "registered people aged 17+"
DEFINITIONS: Final[tuple[Measure, ...]] = (
    # Maternity: the extract has maternity admissions (apc_spells admission_method
    # "maternity"), no antenatal or continuity-of-carer data, so care is the postnatal
    # blood pressure check (NICE) and the gap a postnatal emergency readmission.
    Measure("maternity", "prevalence", "women aged 15-44 with a maternity admission in the "
            "12 months", "registered women aged 15-44"),
    Measure("maternity", "care", "with a systolic blood pressure recorded from a maternity "
            "admission to 56 days after it (the postnatal check; follow-up ends at the index "
            "date)", _MOTHERS, ("systolic_bp",)),
    Measure("maternity", "gap", "with an emergency admission from a maternity spell's "
            "discharge to 42 days after it (postnatal emergency readmission)", _MOTHERS),
    # SMI: blood pressure and BMI are the two measured parts of the annual physical health
    # check the extract can see (no lipids, alcohol or smoking review in one code).
    Measure("smi", "prevalence", "with severe mental illness recorded", "registered people",
            ("smi",)),
    Measure("smi", "care", "with both a blood pressure and a BMI recorded in the 12 months",
            _SMI, ("smi", "systolic_bp", "bmi")),
    Measure("smi", "gap", "with neither a blood pressure nor a BMI recorded in the 12 months",
            _SMI, ("smi", "systolic_bp", "bmi")),
    # Chronic respiratory disease: no vaccination data, so care is an inhaled medicine
    # issued, and the gap the emergency admissions Core20PLUS5 aims to prevent.
    Measure("respiratory", "prevalence", "with asthma or COPD recorded", "registered people",
            ("asthma", "copd")),
    Measure("respiratory", "care", "with an inhaled respiratory medicine issued in the 12 "
            "months", _RESP, ("asthma", "copd", "med_respiratory")),
    Measure("respiratory", "gap", "with an emergency admission for asthma or COPD (primary "
            "diagnosis in their ICD-10 lists) in the 12 months", _RESP, ("asthma", "copd")),
    # Early cancer diagnosis: there is no stage in the extract, so the proxy is the route:
    # a cancer found through an emergency admission is disproportionately late-stage.
    Measure("cancer", "prevalence", "with cancer recorded", "registered people", ("cancer",)),
    Measure("cancer", "care", "not presenting as an emergency: no emergency admission for "
            "cancer from the first record to 28 days after it", _NEW_CANCER, ("cancer",)),
    Measure("cancer", "gap", "presenting as an emergency: an emergency admission with a "
            "primary diagnosis in the cancer list from the first record to 28 days after it",
            _NEW_CANCER, ("cancer",)),
    # Hypertension: recorded against expected (recorded, or a high latest reading);
    # care is treatment to target (NICE NG136: below 140 mmHg systolic, 150 at 80+).
    Measure("hypertension", "prevalence", "with hypertension recorded", _ADULTS,
            ("hypertension",)),
    Measure("hypertension", "expected", "with hypertension recorded or a latest systolic blood "
            "pressure of 140 mmHg or more", _ADULTS, ("hypertension", "systolic_bp")),
    Measure("hypertension", "care", "with a reading in the 12 months and the latest systolic "
            "blood pressure below target (140 mmHg; 150 at 80+)", _HT,
            ("hypertension", "systolic_bp")),
    Measure("hypertension", "gap", "without hypertension recorded whose latest systolic blood "
            "pressure is 140 mmHg or more (case finding)", _ADULTS,
            ("hypertension", "systolic_bp")),
    # Diabetes (where configured): HbA1c monitoring, and case finding like hypertension.
    Measure("diabetes", "prevalence", "with diabetes recorded", _DM_AGE, ("diabetes",)),
    Measure("diabetes", "care", "with an HbA1c recorded in the 12 months",
            "registered people aged 17+ with diabetes recorded", ("diabetes", "hba1c")),
    Measure("diabetes", "gap", "without diabetes recorded whose latest HbA1c is 48 mmol/mol or "
            "more (possible undiagnosed diabetes)", _DM_AGE, ("diabetes", "hba1c")),
)  # fmt: skip
AREAS: Final = tuple(dict.fromkeys(m.area for m in DEFINITIONS))
AREA_TITLES: Final = {
    "maternity": "Maternity", "smi": "Severe mental illness",
    "respiratory": "Chronic respiratory disease", "cancer": "Early cancer diagnosis",
    "hypertension": "Hypertension case finding", "diabetes": "Diabetes",
}  # fmt: skip


@dataclass(frozen=True)
class PlusGroup:
    """A PLUS population: people in one of ``ethnic_groups`` or with ``codelist``."""

    description: str
    ethnic_groups: tuple[str, ...] = ()
    codelist: str | None = None


PLUS_GROUPS: Final[Mapping[str, PlusGroup]] = {
    "ethnic_minority": PlusGroup("Asian, Black, Mixed or Other ethnic group",
                                 ("Asian", "Black", "Mixed", "Other")),
    "asian": PlusGroup("Asian ethnic group", ("Asian",)),
    "black": PlusGroup("Black ethnic group", ("Black",)),
    "mixed": PlusGroup("Mixed ethnic group", ("Mixed",)),
    "other_ethnic_group": PlusGroup("Other ethnic group", ("Other",)),
    "learning_disability": PlusGroup("learning disability recorded",
                                     codelist="learning_disability"),
}  # fmt: skip
Masks = dict[str, tuple[np.ndarray, np.ndarray]]  # measure -> (numerator, denominator)


@dataclass
class _Context:
    """What the area functions read: the population (one row per person) and the
    windows, with the codelists they use recorded in ``used``."""

    frames: Frames
    population: pd.DataFrame
    start: date
    end: date
    used: dict[str, int]
    ids: pd.Index = field(init=False)
    age: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.ids = id_index(self.population["person_id"])
        self.age = self.population["age"].fillna(-1).to_numpy(dtype="int64")

    def codelist(self, codelist_id: str) -> codelists.Codelist:
        codelist = codelists.get(codelist_id)
        self.used[codelist.id] = codelist.version
        return codelist

    def mask(self, people: pd.Index | pd.Series | np.ndarray) -> np.ndarray:
        return members(self.ids, people)

    def has(self, codelist_id: str, *, recent: bool = False) -> np.ndarray:
        """Recorded (ever, or in the 12 months if ``recent``) before the index date."""
        start = self.start if recent else None
        return self.mask(codelists.people_with(self.frames, self.codelist(codelist_id),
                                               start=start, end=self.end))  # fmt: skip

    def latest(self, codelist_id: str) -> np.ndarray:
        values = codelists.latest_values(self.frames, self.codelist(codelist_id), end=self.end)
        return aligned(self.ids, values)

    def dated(self, codelist_id: str) -> pd.DataFrame:
        """``person_id`` and ``event_date`` of GP events with a code of the list."""
        codelist = self.codelist(codelist_id)
        events = require(self.frames, "gp_events", ["person_id", "date", "snomed_code"])
        rows = events.loc[events["snomed_code"].isin(list(codelist.snomed)), ["person_id", "date"]]
        return rows.rename(columns={"date": "event_date"})

    def emergencies(self, *codelist_ids: str) -> pd.DataFrame:
        """``person_id`` and ``event_date`` of emergency admissions up to the end of the
        window (with a primary diagnosis in the lists' ICD-10 prefixes, if any given)."""
        columns = ["person_id", "admission_date", "admission_method"]
        columns += ["primary_diagnosis_icd10"] if codelist_ids else []
        spells = require(self.frames, "apc_spells", columns)
        mask = (spells["admission_method"] == "emergency") & (
            spells["admission_date"] <= pd.Timestamp(self.end)
        )
        if codelist_ids:
            prefixes = tuple(p for c in codelist_ids for p in self.codelist(c).icd10)
            codes = spells["primary_diagnosis_icd10"]
            distinct = pd.Series(codes.dropna().unique()).astype("str")
            mask &= codes.isin(list(distinct[distinct.str.startswith(prefixes)]))
        rows = spells.loc[mask, ["person_id", "admission_date"]]
        return rows.rename(columns={"admission_date": "event_date"})


def _followed_by(
    anchors: pd.DataFrame, anchor: str, events: pd.DataFrame, days: int, end: date
) -> pd.Index:
    """People with an event (``event_date``) from their ``anchor`` date to ``days`` after
    it, and no later than ``end``."""
    events = events.loc[events["person_id"].isin(anchors["person_id"])]
    pairs = anchors[["person_id", anchor]].merge(events, on="person_id")
    after = pairs["event_date"] - pairs[anchor]
    ok = (after >= pd.Timedelta(0)) & (after <= pd.Timedelta(days=days))
    ok &= pairs["event_date"] <= pd.Timestamp(end)
    return pd.Index(pairs.loc[ok, "person_id"].unique())


def _maternity(ctx: _Context) -> Masks:
    if "sex" not in ctx.population.columns:
        raise AnalysisInputError(
            "the maternity measures need sex in the patients table, which the extract lacks"
        )
    female = (ctx.population["sex"] == "F").to_numpy(dtype=bool, na_value=False)
    women = female & (ctx.age >= 15) & (ctx.age <= 44)
    columns = ["person_id", "admission_date", "discharge_date", "admission_method"]
    spells = require(ctx.frames, "apc_spells", columns)
    window = (spells["admission_date"] >= pd.Timestamp(ctx.start)) & (
        spells["admission_date"] <= pd.Timestamp(ctx.end)
    )
    deliveries = spells.loc[(spells["admission_method"] == "maternity") & window,
                            ["person_id", "admission_date", "discharge_date"]]  # fmt: skip
    delivered = ctx.mask(deliveries["person_id"]) & women
    deliveries = deliveries.loc[members(deliveries["person_id"], ctx.ids[delivered])]
    checked = _followed_by(deliveries, "admission_date", ctx.dated("systolic_bp"), 56, ctx.end)
    readmitted = _followed_by(deliveries, "discharge_date", ctx.emergencies(), 42, ctx.end)
    return {"prevalence": (delivered, women), "care": (ctx.mask(checked), delivered),
            "gap": (ctx.mask(readmitted), delivered)}  # fmt: skip


def _smi(ctx: _Context) -> Masks:
    smi = ctx.has("smi")
    bp, bmi = ctx.has("systolic_bp", recent=True), ctx.has("bmi", recent=True)
    return {"prevalence": (smi, np.ones_like(smi)), "care": (smi & bp & bmi, smi),
            "gap": (smi & ~bp & ~bmi, smi)}  # fmt: skip


def _respiratory(ctx: _Context) -> Masks:
    respiratory = ctx.has("asthma") | ctx.has("copd")
    treated = ctx.has("med_respiratory", recent=True)
    admissions = ctx.emergencies("asthma", "copd")
    admitted = ctx.mask(admissions.loc[admissions["event_date"] >= pd.Timestamp(ctx.start),
                                       "person_id"])  # fmt: skip
    return {"prevalence": (respiratory, np.ones_like(respiratory)),
            "care": (respiratory & treated, respiratory),
            "gap": (respiratory & admitted, respiratory)}  # fmt: skip


def _cancer(ctx: _Context) -> Masks:
    first = codelists.first_dates(ctx.frames, ctx.codelist("cancer"), end=ctx.end)
    first = first.loc[first >= pd.Timestamp(ctx.start)]
    new = ctx.mask(first.index)
    anchors = pd.DataFrame({"person_id": first.index.to_numpy(), "first_date": first.to_numpy()})
    emergency = ctx.mask(_followed_by(anchors, "first_date", ctx.emergencies("cancer"), 28,
                                      ctx.end))  # fmt: skip
    return {"prevalence": (ctx.has("cancer"), np.ones_like(new)),
            "care": (new & ~emergency, new), "gap": (new & emergency, new)}  # fmt: skip


def _hypertension(ctx: _Context) -> Masks:
    adult = ctx.age >= 18
    recorded = ctx.has("hypertension") & adult
    systolic = ctx.latest("systolic_bp")  # NaN (no reading) compares False
    high = adult & ~recorded & (systolic >= 140)
    target = np.where(ctx.age >= 80, 150, 140)
    controlled = recorded & ctx.has("systolic_bp", recent=True) & (systolic < target)
    return {"prevalence": (recorded, adult), "expected": (recorded | high, adult),
            "care": (controlled, recorded), "gap": (high, adult)}  # fmt: skip


def _diabetes(ctx: _Context) -> Masks:
    eligible = ctx.age >= 17
    recorded = ctx.has("diabetes") & eligible
    undiagnosed = eligible & ~recorded & (ctx.latest("hba1c") >= 48)
    return {"prevalence": (recorded, eligible),
            "care": (recorded & ctx.has("hba1c", recent=True), recorded),
            "gap": (undiagnosed, eligible)}  # fmt: skip


_AREA_MEASURES: Final = {"maternity": _maternity, "smi": _smi, "respiratory": _respiratory,
                         "cancer": _cancer, "hypertension": _hypertension,
                         "diabetes": _diabetes}  # fmt: skip


def _groups(ctx: _Context, plus_groups: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Core20, each PLUS group, and the rest (in none of them); the groups overlap."""
    groups = {CORE20: ctx.population["core20"].to_numpy(dtype=bool)}
    for name in plus_groups:
        spec = PLUS_GROUPS.get(name)
        if spec is None or name in (CORE20, REST):
            raise AnalysisInputError(
                f"unknown PLUS group {name!r}: use one of {', '.join(PLUS_GROUPS)}"
            )
        if spec.codelist is not None:
            groups[name] = ctx.has(spec.codelist)
            continue
        if "ethnic_group" not in ctx.population.columns:
            raise AnalysisInputError(
                f"the PLUS group {name} needs ethnicity in the patients table, "
                "which the extract lacks"
            )
        groups[name] = ctx.population["ethnic_group"].isin(spec.ethnic_groups).to_numpy(bool)
    groups[REST] = ~np.logical_or.reduce(list(groups.values()))
    return groups


def _area_table(area: str, masks: Masks, groups: dict[str, np.ndarray]) -> ResultTable:
    definitions = [m for m in DEFINITIONS if m.area == area]
    rows = [
        {"measure": m.measure, "group": group,
         "numerator": int(np.count_nonzero(masks[m.measure][0] & masks[m.measure][1] & member)),
         "denominator": int(np.count_nonzero(masks[m.measure][1] & member))}
        for m in definitions
        for group, member in groups.items()
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    k, n = frame["numerator"].to_numpy(), frame["denominator"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["proportion"] = np.where(n > 0, k / n, np.nan)
    frame["proportion_lower"], frame["proportion_upper"] = wilson_interval(k, n, Z)
    derived = ("proportion", "proportion_lower", "proportion_upper")
    persons = frame[["numerator", "denominator"]].copy()
    for column in derived:
        persons[column] = frame["numerator"]
    return ResultTable(
        name=f"core20plus5_{area}", title=f"Core20PLUS5: {AREA_TITLES[area]}", frame=frame,
        dimensions=("measure", "group"),
        statistics={"numerator": "count", "denominator": "count", "proportion": "proportion",
                    "proportion_lower": "ci_lower", "proportion_upper": "ci_upper"},
        persons=persons, derived_from=dict.fromkeys(derived, ("numerator", "denominator")),
        description="; ".join(f"{m.measure}: {m.numerator} / {m.denominator}"
                              for m in definitions) + ". 95% CI Wilson score.",
    )  # fmt: skip


def core20plus5(
    frames: Frames,
    *,
    index_date: date,
    plus_groups: tuple[str, ...] = ("ethnic_minority",),
    include_diabetes: bool = True,
    areas: tuple[str, ...] | None = None,
) -> AnalysisResult:
    """The Core20PLUS5 view on ``index_date``: for each clinical area (``areas``, default
    all five, plus diabetes if ``include_diabetes``), the measures of ``DEFINITIONS``
    (prevalence, recorded care, gaps) for Core20 (IMD deciles 1-2), each of
    ``plus_groups`` (keys of ``PLUS_GROUPS``) and the rest, as proportions with Wilson
    limits: one table ``core20plus5_<area>`` and a bar chart per area.

    The groups overlap (a Core20 resident may be in a PLUS group); "Rest" is everyone in
    none of them, including people whose ethnicity is not stated; people with an
    unknown IMD decile are left out. Every cell counts people. Raises
    AnalysisInputError naming a table or column an area needs, or an unknown area or
    PLUS group.
    """
    chosen = tuple(a for a in AREAS if a != "diabetes" or include_diabetes)
    if areas is not None:
        if unknown := [a for a in areas if a not in AREAS]:
            raise AnalysisInputError(f"unknown areas {unknown}: use some of {', '.join(AREAS)}")
        chosen = tuple(a for a in chosen if a in areas)
    population, left_out = known_only(registered_population(frames, index_date), "core20")
    start, end = year_before(index_date)
    ctx = _Context(frames, population, start, end, {})
    groups = _groups(ctx, tuple(plus_groups))
    tables = [_area_table(area, _AREA_MEASURES[area](ctx), groups) for area in chosen]
    charts = [ChartSpec(name=t.name, table=t.name, kind="bar", x="group", y="proportion",
                        title=t.title, lower="proportion_lower", upper="proportion_upper",
                        group="measure") for t in tables]  # fmt: skip
    return AnalysisResult(
        tables=tables, charts=charts, codelists=dict(sorted(ctx.used.items())),
        parameters={"index_date": index_date.isoformat(), "plus_groups": list(plus_groups),
                    "areas": list(chosen), "people": len(population), **left_out},
    )  # fmt: skip
