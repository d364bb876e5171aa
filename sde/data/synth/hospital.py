"""Hospital activity: admitted patient spells and A&E attendances (drawn together, since
emergency admissions mostly arrive through A&E) and outpatient appointments."""

from __future__ import annotations

import numpy as np

from sde.data.source_format import (
    ADMISSION_METHODS,
    AE_DISPOSAL_CODES,
    DISCHARGE_METHODS,
    ICD10_CODES,
    PROVIDERS,
    SPECIALTIES,
)
from sde.data.synth.arrays import _NA, _lognormal, _pick, _sigmoid, _spread, _uniform_days
from sde.data.synth.population import _Population, _Window
from sde.data.synth.reference import (
    AE_DISPOSALS,
    CHEMOTHERAPY,
    CONDITIONS,
    ELECTIVE_GENERIC,
    EMERGENCY_GENERIC,
    MATERNITY,
    OP_GENERIC,
)
from sde.data.synth.risk import AE_BEFORE_ADMISSION, DIED_IN_HOSPITAL, EXTRA_EMERGENCY_ADMISSIONS
from sde.data.synth.tables import _age_group, _by_group, _exposure, _Frame, _frame, _person_choice


def _hospital(rng: np.random.Generator, pop: _Population, w: _Window) -> tuple[_Frame, _Frame]:
    """Admitted patient spells and A&E attendances (emergency admissions mostly arrive
    through A&E, so the two are drawn together)."""
    n, age = pop.n, pop.age0
    group = _age_group(age)
    p_admission = pop.truth["p_emergency_admission"].to_numpy()
    ae_rate = pop.truth["ae_rate"].to_numpy()
    condition_code, has_code = _person_choice(rng, pop, [c.icd10 for c in CONDITIONS], ICD10_CODES)
    cancer = pop.has("cancer")
    elective_rate = 0.04 + 0.12 * (age / 80) ** 2 + 0.9 * cancer + 0.15 * pop.has("osteoarthritis")
    fertility = pop.female * np.interp(
        age,
        [15, 20, 25, 30, 35, 40, 45, 50],
        [0.01, 0.05, 0.08, 0.1, 0.07, 0.025, 0.004, 0],
        left=0,
    )
    maternity = np.array([ICD10_CODES.index(code) for code, _ in MATERNITY])
    spells: list[dict[str, np.ndarray]] = []
    attendances: list[dict[str, np.ndarray]] = []

    def emergency(unit: np.ndarray) -> dict[str, np.ndarray]:
        own = has_code[unit] & (rng.random(unit.size) < 0.5)
        generic = _by_group(rng, group[unit], EMERGENCY_GENERIC, ICD10_CODES)
        los = (1 + rng.lognormal(np.log(2.5 + 0.05 * np.maximum(age[unit] - 50, 0)), 0.8)).astype(
            np.int64
        )
        los = np.where(rng.random(unit.size) < 0.3, 0, np.minimum(los, 60))
        return {
            "diagnosis": np.where(own, condition_code[unit], generic),
            "los": los,
            "method": np.full(unit.size, 1),
            "died": np.zeros(unit.size, dtype=bool),
        }

    for y in range(w.years.size - 1):
        lo, hi, share = _exposure(pop, w, y)
        first = rng.random(n) < 1 - (1 - p_admission) ** share
        count = np.where(first, 1 + rng.poisson(EXTRA_EMERGENCY_ADMISSIONS, n), 0)
        unit, day = _spread(rng, lo, hi, count)
        spells.append({"person": unit, "admission": day, **emergency(unit)})
        unit, day = _spread(rng, lo, hi, rng.poisson(elective_rate * share))
        chemo = cancer[unit] & (rng.random(unit.size) < 0.7)
        day_case = rng.random(unit.size) < np.where(chemo, 0.95, 0.75)
        generic = _by_group(rng, group[unit], ELECTIVE_GENERIC, ICD10_CODES)
        spells.append(
            {
                "person": unit,
                "admission": day,
                "diagnosis": np.where(chemo, ICD10_CODES.index(CHEMOTHERAPY), generic),
                "los": np.where(day_case, 0, 1 + rng.poisson(2.5, unit.size)),
                "method": np.zeros(unit.size, dtype=np.int64),
                "died": np.zeros(unit.size, dtype=bool),
            }
        )
        unit = np.flatnonzero(rng.random(n) < 1 - (1 - fertility) ** share)
        delivery = _pick(rng, unit.size, [p for _, p in MATERNITY])
        spells.append(
            {
                "person": unit,
                "admission": _uniform_days(rng, lo[unit], hi[unit]),
                "diagnosis": maternity[delivery],
                "los": _pick(rng, unit.size, [0.25, 0.4, 0.25, 0.1]) + (delivery > 0),
                "method": np.full(unit.size, 2),
                "died": np.zeros(unit.size, dtype=bool),
            }
        )
        unit, day = _spread(rng, lo, hi, rng.poisson(ae_rate * share))
        attendances.append(
            {
                "person": unit,
                "arrival": day,
                "disposal": 1 + _pick(rng, unit.size, [p for _, p in AE_DISPOSALS[1:]]),
            }
        )
    # Deaths in hospital end an emergency spell; nothing of that person's starts after it.
    dead = np.flatnonzero((pop.death != _NA) & (rng.random(n) < DIED_IN_HOSPITAL))
    stay = np.minimum(
        1 + rng.lognormal(np.log(6), 0.8, dead.size).astype(np.int64),
        pop.death[dead] - pop.obs_start[dead],
    )
    last_start = np.full(n, np.iinfo(np.int64).max)
    last_start[dead] = pop.death[dead] - stay
    cols = {name: np.concatenate([s[name] for s in spells]) for name in spells[0]}
    keep = cols["admission"] < last_start[cols["person"]]
    cols = {name: values[keep] for name, values in cols.items()}
    terminal = {"person": dead, "admission": last_start[dead], **emergency(dead)}
    terminal["los"], terminal["died"] = stay, np.ones(dead.size, dtype=bool)
    cols = {name: np.concatenate([cols[name], terminal[name]]) for name in cols}
    order = np.lexsort((cols["admission"], cols["person"]))
    cols = {name: values[order] for name, values in cols.items()}
    person, admission, method = cols["person"], cols["admission"], cols["method"]
    discharge = np.minimum(admission + cols["los"], pop.obs_end[person])
    same = person[1:] == person[:-1]  # a spell ends by the time the next one starts
    discharge[:-1][same] = np.minimum(discharge[:-1][same], admission[1:][same])
    los = discharge - admission
    base = np.select(
        [method == 1, (method == 0) & (los == 0), method == 0],
        [600 + 420 * los, 900 + 0 * los, 2500 + 400 * los],
        1800 + 500 * los,
    )
    provider = _provider(rng, pop, person)
    apc = _Frame(
        "apc_spells",
        person,
        {
            "admission_date": admission,
            "discharge_date": discharge,
            "admission_method": method,
            "primary_diagnosis_icd10": cols["diagnosis"],
            "provider": provider,
            "discharge_method": cols["died"].astype(np.int64),
            "cost": np.round(base * _lognormal(rng, person.size, 0.25)).astype(np.int64),
        },
        {
            "admission_method": ADMISSION_METHODS,
            "primary_diagnosis_icd10": ICD10_CODES,
            "provider": PROVIDERS,
            "discharge_method": DISCHARGE_METHODS,
        },
    )
    via_ae = np.flatnonzero((method == 1) & (rng.random(person.size) < AE_BEFORE_ADMISSION))
    ae = {name: np.concatenate([a[name] for a in attendances]) for name in attendances[0]}
    ae_person = np.concatenate([person[via_ae], ae["person"]])
    disposal = np.concatenate([np.zeros(via_ae.size, dtype=np.int64), ae["disposal"]])
    base = np.where(disposal == 0, 300.0, 160.0)
    attendances_frame = _Frame(
        "ae_attendances",
        ae_person,
        {
            "arrival_date": np.concatenate([admission[via_ae], ae["arrival"]]),
            "disposal": disposal,
            "provider": np.concatenate([provider[via_ae], _provider(rng, pop, ae["person"])]),
            "cost": np.round(base * _lognormal(rng, disposal.size, 0.35)).astype(np.int64),
        },
        {"disposal": AE_DISPOSAL_CODES, "provider": PROVIDERS},
    )
    return apc, attendances_frame


def _provider(rng: np.random.Generator, pop: _Population, person: np.ndarray) -> np.ndarray:
    """The acute trust of the person's Place for 85% of activity, another one otherwise."""
    home = pop.codes["place"][person] % len(PROVIDERS)
    other = rng.integers(0, len(PROVIDERS), person.size)
    return np.where(rng.random(person.size) < 0.85, home, other)


def _outpatients(rng: np.random.Generator, pop: _Population, w: _Window) -> _Frame:
    age = pop.age0
    conditions = np.minimum(pop.flags.sum(axis=1), 6)
    rate = np.where(age < 16, 0.6, 0.95 + 0.03 * np.maximum(age - 20, 0)) + 0.4 * conditions
    rate += 1.5 * pop.has("cancer")
    code, has = _person_choice(rng, pop, [c.specialty for c in CONDITIONS], SPECIALTIES)
    miss = _sigmoid(-2.9 + 1.1 * pop.depr + 0.4 * ((age >= 16) & (age < 40)) - 0.3 * (age >= 65))
    parts = []
    for y in range(w.years.size - 1):
        lo, hi, share = _exposure(pop, w, y)
        unit, day = _spread(rng, lo, hi, rng.poisson(rate * share))
        own = has[unit] & (rng.random(unit.size) < 0.55)
        generic = _by_group(rng, _age_group(age[unit]), OP_GENERIC, SPECIALTIES)
        attended = rng.random(unit.size) >= miss[unit]
        cost = np.where(attended, np.round(140 * _lognormal(rng, unit.size, 0.3)), 0)
        parts.append(
            {
                "person": unit,
                "date": day,
                "specialty": np.where(own, code[unit], generic),
                "attended": attended,
                "cost": cost.astype(np.int64),
            }
        )
    return _frame("op_appointments", parts, {"specialty": SPECIALTIES})
