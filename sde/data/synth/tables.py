"""Building tables: the internal ``_Frame`` every table is before it becomes a DataFrame,
the helpers the builders share, and the GP tables (patients, events, medications)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from sde.data.source_format import (
    BMI,
    BNF_SECTIONS,
    CODE_LISTS,
    DIASTOLIC_BP,
    HBA1C,
    SNOMED_CODES,
    SYSTOLIC_BP,
    TYPE1_DISSENT,
)
from sde.data.synth.arrays import _YEAR, _lognormal, _pick, _spread, _uniform_days
from sde.data.synth.population import _Population, _Window
from sde.data.synth.reference import (
    ANTIBIOTICS,
    BIPOLAR,
    CKD_STAGES,
    CONDITIONS,
    DEFICITS,
    OBESITY,
    REPEAT_DAYS,
    SMOKING,
    TYPE1_DIABETES,
)

_CODE: Final = {code: i for i, code in enumerate(SNOMED_CODES)}


@dataclass
class _Frame:
    """A table before it becomes a DataFrame: a person index per row and internal columns
    (days as integers, codes as indexes into ``labels``)."""

    table: str
    person: np.ndarray
    cols: dict[str, np.ndarray]
    labels: dict[str, tuple[str, ...]]
    nhs_fault: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return int(self.person.size)

    def take(self, order: np.ndarray) -> _Frame:
        fault = None if self.nhs_fault is None else self.nhs_fault[order]
        cols = {name: values[order] for name, values in self.cols.items()}
        return _Frame(self.table, self.person[order], cols, self.labels, fault)


def _frame(
    table: str, parts: Sequence[dict[str, np.ndarray]], labels: dict[str, tuple[str, ...]]
) -> _Frame:
    cols = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return _Frame(table, cols.pop("person"), cols, labels)


def _exposure(pop: _Population, w: _Window, y: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each person's observed days in year y of the window, and the share of that year."""
    first, last = int(w.years[y]), int(w.years[y + 1]) - 1
    lo, hi = np.maximum(pop.obs_start, first), np.minimum(pop.obs_end, last)
    return lo, hi, np.clip(hi - lo + 1, 0, None) / (last - first + 1)


def _by_group(
    rng: np.random.Generator,
    group: np.ndarray,
    table: Mapping[int, Sequence[str]],
    labels: Sequence[str],
) -> np.ndarray:
    """A code drawn uniformly from ``table[group]`` for each row, as an index into labels."""
    out = np.empty(group.size, dtype=np.int64)
    u = rng.random(group.size)
    for g, codes in table.items():
        rows = group == g
        index = np.array([labels.index(code) for code in codes])
        out[rows] = index[(u[rows] * len(codes)).astype(np.int64)]
    return out


def _weighted_by_group(
    rng: np.random.Generator,
    group: np.ndarray,
    table: Mapping[int, Mapping[str, float]],
    labels: Sequence[str],
) -> np.ndarray:
    out = np.empty(group.size, dtype=np.int64)
    for g, weights in table.items():
        rows = np.flatnonzero(group == g)
        index = np.array([labels.index(code) for code in weights])
        out[rows] = index[_pick(rng, rows.size, list(weights.values()))]
    return out


def _person_choice(
    rng: np.random.Generator, pop: _Population, codes: Sequence[str | None], labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """One of each person's conditions that has a code, at random: (label index, has one)."""
    cols = [j for j, code in enumerate(codes) if code]
    scores = rng.random((pop.n, len(cols)), dtype=np.float32) * pop.flags[:, cols]
    mapping = np.array([labels.index(str(codes[j])) for j in cols])
    return mapping[scores.argmax(axis=1)], scores.max(axis=1) > 0


def _age_group(age: np.ndarray) -> np.ndarray:
    return np.where(age < 16, 0, np.where(age < 65, 1, 2))


def _patients(pop: _Population) -> _Frame:
    cols = {
        "date_of_birth": pop.dob,
        **pop.codes,
        "imd_decile": pop.decile,
        "registration_start": pop.reg_start.copy(),
        "registration_end": pop.reg_end,
        "date_of_death": pop.death,
    }
    return _Frame("patients", np.arange(pop.n), cols, dict(pop.labels))


def _gp_events(rng: np.random.Generator, pop: _Population, w: _Window) -> _Frame:
    parts: list[dict[str, np.ndarray]] = []

    def add(
        person: np.ndarray, day: np.ndarray, code: np.ndarray | str, value: np.ndarray | None = None
    ) -> None:
        codes = np.full(person.size, _CODE[code]) if isinstance(code, str) else code
        values = np.full(person.size, np.nan) if value is None else value
        parts.append({"person": person, "date": day, "snomed_code": codes, "value": values})

    for c in CONDITIONS:
        idx, when = pop.diagnosed[c.name]
        codes = np.full(idx.size, _CODE[c.snomed])
        if c.name == "diabetes":
            type1 = rng.random(idx.size) < np.where(pop.age[idx] < 25, 0.9, 0.05)
            codes[type1] = _CODE[TYPE1_DIABETES]
        elif c.name == "smi":
            codes[rng.random(idx.size) < 0.4] = _CODE[BIPOLAR]
        add(idx, when, codes)
        if c.name == "ckd":
            stages = np.array([_CODE[code] for code, _ in CKD_STAGES])
            add(idx, when, stages[_pick(rng, idx.size, [p for _, p in CKD_STAGES])])
    for d in DEFICITS:
        add(*pop.diagnosed[d.name], d.snomed)
    n = pop.n
    # Smoking status for 85% of people aged 16+, recorded in the last three years.
    lo = np.maximum(pop.dob + int(16 * _YEAR), pop.obs_end - 1095)
    idx = np.flatnonzero((pop.smoking >= 0) & (rng.random(n) < 0.85) & (lo <= pop.obs_end))
    smoking = np.array([_CODE[code] for code, _ in SMOKING])
    add(idx, _uniform_days(rng, lo[idx], pop.obs_end[idx]), smoking[pop.smoking[idx]])
    # Measurements in the window, adults only.
    lo = np.maximum(pop.obs_start, pop.dob + int(18 * _YEAR))
    years = np.clip(pop.obs_end - lo + 1, 0, None) / _YEAR
    ht, diabetes, pre = pop.has("hypertension"), pop.has("diabetes"), pop.has("prediabetes")
    chronic = ht | diabetes | pre | pop.has("chd") | pop.has("stroke") | pop.has("ckd")
    adult = pop.age >= 18
    unit, day = _spread(rng, lo, pop.obs_end, rng.poisson(adult * (0.35 + 0.5 * chronic) * years))
    add(unit, day, BMI, np.round(pop.bmi[unit] * _lognormal(rng, unit.size, 0.03), 1))
    obese = np.flatnonzero(adult & (pop.bmi >= 30) & (years > 0) & (rng.random(n) < 0.4))
    add(obese, _uniform_days(rng, lo[obese], pop.obs_end[obese]), OBESITY)
    t = (pop.age - 50) / 10
    hidden = pop.truth["undiagnosed_hypertension"].to_numpy()
    rate = np.where(ht, 1.3, np.where(hidden, 0.5 - 0.3 * pop.depr, 0.3 * (pop.age >= 30)))
    unit, day = _spread(rng, lo, pop.obs_end, rng.poisson(adult * rate * years))
    kind = np.where(ht[unit], 0, np.where(hidden[unit], 1, 2))
    e1, e2 = rng.standard_normal(unit.size), rng.standard_normal(unit.size)
    sbp_mean = np.array([138.0, 152.0, 0.0])[kind] + (kind == 2) * (116 + 4 * t[unit] + 4)
    sbp = sbp_mean + np.array([13.0, 10.0, 12.0])[kind] * e1
    dbp = np.array([80.0, 93.0, 74.0])[kind] + np.array([9.0, 7.0, 8.0])[kind] * (
        0.6 * e1 + 0.8 * e2
    )
    add(unit, day, SYSTOLIC_BP, np.clip(np.round(sbp), 80, 230))
    add(unit, day, DIASTOLIC_BP, np.clip(np.round(dbp), 40, 140))
    rate = np.where(diabetes, 1.6, np.where(pre, 1.0, 0.22 * (pop.age >= 40)))
    unit, day = _spread(rng, lo, pop.obs_end, rng.poisson(adult * rate * years))
    hba1c = np.where(
        diabetes[unit],
        np.clip(55 + 6 * pop.depr[unit] + 12 * rng.standard_normal(unit.size), 38, 140),
        np.where(
            pre[unit],
            rng.integers(42, 48, unit.size),
            np.clip(37 + 2.5 * rng.standard_normal(unit.size), 28, 41),
        ),
    )
    add(unit, day, HBA1C, np.round(hba1c))
    idx = np.flatnonzero(pop.type1)
    first = np.maximum(pop.reg_start[idx], pop.obs_end[idx] - 8 * 365)
    add(idx, _uniform_days(rng, first, pop.obs_end[idx]), TYPE1_DISSENT)
    return _frame("gp_events", parts, {"snomed_code": SNOMED_CODES})


_CHAPTERS: Final = CODE_LISTS["gp_medications"]["bnf_chapter"]
_CHAPTER_OF: Final = np.array([_CHAPTERS.index(section[:2]) for section in BNF_SECTIONS])


def _gp_medications(rng: np.random.Generator, pop: _Population, w: _Window) -> _Frame:
    """Repeat courses for treated conditions (one per person and BNF section, from the
    later of diagnosis and the window start, every 8 weeks) plus acute antibiotics."""
    persons, sections, firsts = [], [], []
    sources = [(c.name, c.medicines) for c in CONDITIONS] + [
        (d.name, d.medicines) for d in DEFICITS
    ]
    for name, medicines in sources:
        idx, when = pop.diagnosed[name]
        for code, treated_share in medicines:
            treated = rng.random(idx.size) < treated_share
            person = idx[treated]
            persons.append(person)
            sections.append(np.full(person.size, BNF_SECTIONS.index(code)))
            start = np.maximum(when[treated], pop.obs_start[person])
            firsts.append(start + rng.integers(0, 28, person.size))
    person, section, first = map(np.concatenate, (persons, sections, firsts))
    key = person * len(BNF_SECTIONS) + section
    order = np.lexsort((first, key))
    keep = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    person, section, first = person[keep], section[keep], first[keep]
    last = pop.obs_end[person]
    issues = np.where(first <= last, (last - first) // REPEAT_DAYS + 1, 0)
    course = np.repeat(np.arange(issues.size), issues)
    j = np.arange(course.size) - np.repeat(np.cumsum(issues) - issues, issues)
    day = np.minimum(
        first[course] + j * REPEAT_DAYS + rng.integers(0, 7, course.size), last[course]
    )
    parts = [{"person": person[course], "date": day, "bnf_section": section[course]}]
    rate = 0.4 * (1 + 2 * pop.has("copd") + (pop.age0 < 5) + 0.5 * (pop.age0 >= 75))
    antibiotics = BNF_SECTIONS.index(ANTIBIOTICS)
    for y in range(w.years.size - 1):
        lo, hi, share = _exposure(pop, w, y)
        unit, day = _spread(rng, lo, hi, rng.poisson(rate * share))
        parts.append({"person": unit, "date": day, "bnf_section": np.full(unit.size, antibiotics)})
    frame = _frame("gp_medications", parts, {"bnf_chapter": _CHAPTERS, "bnf_section": BNF_SECTIONS})
    frame.cols = {
        "date": frame.cols["date"],
        "bnf_chapter": _CHAPTER_OF[frame.cols["bnf_section"]],
        "bnf_section": frame.cols["bnf_section"],
    }
    return frame
