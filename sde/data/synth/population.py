"""The people every table is drawn from: age, sex, geography, ethnicity, risk factors,
conditions, frailty, registration, death and opt-outs, as person-level arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from sde.data.source_format import NOT_STATED, SEXES
from sde.data.synth.arrays import _NA, _STR, _YEAR, _day, _pick, _rng, _sigmoid, _uniform_days
from sde.data.synth.config import SynthConfig
from sde.data.synth.nhs import generate_nhs_numbers
from sde.data.synth.reference import (
    AGE_BANDS,
    BMI_BY_GROUP,
    CONDITION_NAMES,
    CONDITIONS,
    DEFICIT_AGE,
    DEFICIT_DEPRIVATION,
    DEFICIT_LATENT,
    DEFICITS,
    ETHNIC_GROUPS,
    ETHNIC_TILT,
)
from sde.data.synth.risk import (
    AE_ATTENDANCE_MODEL,
    DEATH_MODEL,
    emergency_admission_probability,
    frailty_category,
    predict,
)

# The generator writes M and F only (the contract also accepts I and U).
_SEXES: Final = SEXES[:2]


@dataclass(frozen=True)
class _Window:
    start: int  # first day (days since 1970-01-01)
    end: int  # extract date, inclusive
    years: np.ndarray  # first day of each year of the window, then end + 1


def _window(cfg: SynthConfig) -> _Window:
    firsts = [_day(cfg.start.replace(year=cfg.start.year + y)) for y in range(cfg.years + 1)]
    return _Window(firsts[0], firsts[-1] - 1, np.asarray(firsts, dtype=np.int64))


@dataclass
class _Population:
    """Person-level arrays (index = person) that every table is drawn from."""

    n: int
    nhs: np.ndarray
    dob: np.ndarray
    age: np.ndarray  # years at the extract date
    age0: np.ndarray  # years at the window start (0 if born during it)
    female: np.ndarray
    decile: np.ndarray
    depr: np.ndarray  # (10 - decile) / 9: 1 = most deprived
    group: np.ndarray  # index into ETHNIC_GROUPS, -1 not stated
    z: np.ndarray
    smoking: np.ndarray  # -1 under 16, 0 never, 1 ex, 2 current
    bmi: np.ndarray
    flags: np.ndarray  # (n, conditions) bool
    frailty: np.ndarray  # category index
    labels: dict[str, tuple[str, ...]]
    codes: dict[str, np.ndarray]  # coded person columns for the patients table
    truth: pd.DataFrame
    reg_start: np.ndarray = field(default_factory=lambda: np.empty(0))
    reg_end: np.ndarray = field(default_factory=lambda: np.empty(0))
    death: np.ndarray = field(default_factory=lambda: np.empty(0))
    obs_start: np.ndarray = field(default_factory=lambda: np.empty(0))
    obs_end: np.ndarray = field(default_factory=lambda: np.empty(0))
    diagnosed: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    type1: np.ndarray = field(default_factory=lambda: np.empty(0))
    ndop: np.ndarray = field(default_factory=lambda: np.empty(0))

    def has(self, condition: str) -> np.ndarray:
        return self.flags[:, CONDITION_NAMES.index(condition)]


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
    counts = np.round(total * weights / weights.sum()).astype(np.int64)
    return np.where(weights > 0, np.maximum(counts, 1), 0)


def _codes(prefix: str, count: int) -> tuple[str, ...]:
    """ODS-style codes: Y99001, Y99002 ... Y99999, Y98001 ... (the demo uses Y99001/2)."""
    return tuple(f"{prefix}{99 - i // 999:02d}{i % 999 + 1:03d}" for i in range(count))


def _geography(
    rng: np.random.Generator, n: int, cfg: SynthConfig
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]], np.ndarray]:
    imd = np.asarray(cfg.imd_deciles, dtype=float)
    decile = _pick(rng, n, imd) + 1
    per_decile = _allocate(max(20, round(n / cfg.people_per_lsoa)), imd)
    n_lsoa = int(per_decile.sum())
    first = np.cumsum(per_decile) - per_decile
    lsoa = first[decile - 1] + (rng.random(n) * per_decile[decile - 1]).astype(np.int64)
    lsoa_decile = np.repeat(np.arange(10), per_decile)
    # Practices serve neighbouring LSOAs, and neighbourhoods are partly sorted by deprivation.
    geo = np.argsort(np.argsort(0.6 * lsoa_decile / 9 + 0.4 * rng.random(n_lsoa), kind="stable"))
    n_practices = max(2, round(n / cfg.people_per_practice))
    position = (geo[lsoa] + rng.random(n)) / n_lsoa
    practice = np.minimum((position * n_practices).astype(np.int64), n_practices - 1)
    elsewhere = rng.random(n) < 0.1
    practice[elsewhere] = rng.integers(0, n_practices, int(elsewhere.sum()))
    pcn = practice // cfg.practices_per_pcn
    n_pcns = int((n_practices - 1) // cfg.practices_per_pcn + 1)
    n_places = min(len(cfg.places), max(2, round(n / cfg.people_per_place)))
    place = pcn * n_places // n_pcns
    lsoa_numbers = 900_001 + rng.permutation(n_lsoa)
    labels = {
        "lsoa_code": tuple(f"E01{number:06d}" for number in lsoa_numbers),
        "practice_ods": _codes("Y", n_practices),
        "pcn_code": _codes("U", n_pcns),
        "place": tuple(cfg.places[:n_places]),
    }
    codes = {"lsoa_code": lsoa, "practice_ods": practice, "pcn_code": pcn, "place": place}
    return codes, labels, decile


def _ethnicity(
    rng: np.random.Generator, cfg: SynthConfig, age: np.ndarray, decile: np.ndarray
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    """Draw ethnicity tilted to the young and deprived, raked back to the configured mix."""
    labels = (*cfg.ethnicity_mix, NOT_STATED)
    weights = np.asarray(list(cfg.ethnicity_mix.values()), dtype=float)
    target = np.append(
        weights / weights.sum() * (1 - cfg.ethnicity_not_stated), cfg.ethnicity_not_stated
    )
    group = np.array([ETHNIC_GROUPS.index(label.split(":")[0]) for label in labels[:-1]] + [-1])
    tilt_key = [
        "White-other" if g == 0 and not label.startswith("White: English") else ETHNIC_GROUPS[g]
        for g, label in zip(group[:-1], labels[:-1], strict=True)
    ] + [NOT_STATED]
    tilt = np.array([ETHNIC_TILT.get(key, (0.0, 0.0)) for key in tilt_key])
    cell = (age < 40).astype(np.int64) * 10 + decile - 1  # 20 cells: young x decile
    cell_depr = np.tile((10 - np.arange(1, 11)) / 9, 2)
    cell_young = np.repeat([0.0, 1.0], 10)
    odds = np.exp(np.outer(cell_depr, tilt[:, 0]) + np.outer(cell_young, tilt[:, 1]))
    share = np.bincount(cell, minlength=20) / cell.size
    w = target.copy()
    for _ in range(60):  # rake the cell distributions so the margin matches the target
        probs = odds * w
        probs /= probs.sum(axis=1, keepdims=True)
        w *= target / np.maximum(share @ probs, 1e-12)
    probs = odds * w
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(cell.size)
    ethnicity = np.empty(cell.size, dtype=np.int64)
    for c in range(20):
        members = cell == c
        ethnicity[members] = np.searchsorted(cum[c], u[members], side="right")
    ethnicity = np.minimum(ethnicity, len(labels) - 1)
    return ethnicity, labels, group[ethnicity]


def _draw_conditions(rng: np.random.Generator, pop: _Population) -> None:
    t = (pop.age - 50) / 10
    male = (~pop.female).astype(float)
    current, ex = pop.smoking == 2, pop.smoking == 1
    bmi = np.nan_to_num(np.clip((pop.bmi - 27.5) / 5, -2, 4))
    for j, c in enumerate(CONDITIONS):
        eta = c.intercept + c.age * t + c.age2 * t * t + c.deprivation * pop.depr
        eta += c.male * male + c.latent * pop.z + c.smoker * current + c.ex_smoker * ex
        eta += c.bmi * bmi
        for name, beta in c.ethnicity.items():
            eta += beta * (pop.group == ETHNIC_GROUPS.index(name))
        for name, beta in c.after.items():
            eta += beta * pop.has(name)
        p = _sigmoid(eta)
        p[pop.age < c.min_age] = 0.0
        for name in c.excludes:
            p[pop.has(name)] = 0.0
        pop.flags[:, j] = rng.random(pop.n) < p


def _draw_deficits(rng: np.random.Generator, pop: _Population) -> tuple[np.ndarray, np.ndarray]:
    """Extra deficit flags (n, len(DEFICITS)) and each person's eFI deficit count."""
    eta = (
        DEFICIT_AGE * (pop.age - 75) / 10 + DEFICIT_LATENT * pop.z + DEFICIT_DEPRIVATION * pop.depr
    )
    extra = np.zeros((pop.n, len(DEFICITS)), dtype=bool, order="F")
    for k, d in enumerate(DEFICITS):
        extra[:, k] = (pop.age >= 40) & (rng.random(pop.n) < _sigmoid(d.intercept + eta))
    groups: dict[str, np.ndarray] = {}
    for j, c in enumerate(CONDITIONS):
        if c.deficit:
            groups[c.deficit] = groups.get(c.deficit, False) | pop.flags[:, j]
    for k, d in enumerate(DEFICITS):
        name = "memory_and_cognition" if d.name == "memory_impairment" else d.name
        groups[name] = groups.get(name, False) | extra[:, k]
    return extra, np.sum([g.astype(np.int64) for g in groups.values()], axis=0)


def _registration(
    rng: np.random.Generator, pop: _Population, w: _Window, p_death: np.ndarray, cfg: SynthConfig
) -> None:
    n, years = pop.n, cfg.years
    born = pop.dob >= w.start
    reg = w.start - (rng.exponential(9 * _YEAR, n)).astype(np.int64)
    reg = np.maximum(reg, pop.dob + rng.integers(0, 43, n))
    joiner = ~born & (rng.random(n) < cfg.joiners_per_year * years)
    lo = np.maximum(w.start, pop.dob)
    reg[joiner] = _uniform_days(rng, lo[joiner], np.full(int(joiner.sum()), w.end - 30))
    reg = np.minimum(reg, w.end)
    obs_start = np.maximum(reg, w.start)
    leaver = (rng.random(n) < cfg.leavers_per_year * years) & (obs_start < w.end - 60)
    reg_end = np.full(n, _NA, dtype=np.int64)
    reg_end[leaver] = _uniform_days(rng, obs_start[leaver] + 30, np.full(int(leaver.sum()), w.end))
    obs_end = np.where(leaver, reg_end, w.end)
    hazard = np.maximum(-np.log1p(-p_death) / _YEAR, 1e-12)  # per day, constant
    at = obs_start + np.floor(rng.exponential(1.0, n) / hazard).astype(np.int64)
    died = at <= obs_end
    death = np.where(died, at, _NA)
    pop.reg_start, pop.obs_start = reg, obs_start
    pop.reg_end = np.where(died, at, reg_end)
    pop.obs_end = np.where(died, at, obs_end)
    pop.death = death


def _diagnosis_dates(rng: np.random.Generator, pop: _Population, extra: np.ndarray) -> None:
    sources: list[tuple[str, np.ndarray, float, int]] = [
        (c.name, pop.flags[:, j], c.years_since_diagnosis, c.min_age)
        for j, c in enumerate(CONDITIONS)
    ] + [(d.name, extra[:, k], 4.0, 40) for k, d in enumerate(DEFICITS)]
    for name, flag, mean_years, min_age in sources:
        idx = np.flatnonzero(flag)
        last = pop.obs_end[idx]
        day = last - (rng.exponential(mean_years * _YEAR, idx.size)).astype(np.int64)
        earliest = pop.dob[idx] + int(min_age * _YEAR)
        pop.diagnosed[name] = (idx, np.minimum(np.maximum(day, earliest), last))


def _population(n: int, seed: int, cfg: SynthConfig, w: _Window) -> _Population:
    rng = _rng(seed, "people")
    nhs = generate_nhs_numbers(_rng(seed, "nhs_numbers"), n)
    band = _pick(rng, n, AGE_BANDS)
    within = rng.random(n) * 5
    top = band == len(AGE_BANDS) - 1
    within[top] = np.minimum(rng.exponential(3.5, int(top.sum())), 15)
    dob = w.end - ((band * 5 + within) * _YEAR).astype(np.int64)
    age = (w.end - dob) / _YEAR
    female = rng.random(n) < np.interp(age, [0, 50, 75, 85, 95], [0.488, 0.5, 0.54, 0.6, 0.7])
    codes, labels, decile = _geography(rng, n, cfg)
    ethnicity, labels["ethnicity"], group = _ethnicity(rng, cfg, age, decile)
    codes["ethnicity"] = ethnicity
    codes["sex"] = female.astype(np.int64)
    labels["sex"] = _SEXES
    depr = (10 - decile) / 9
    z = rng.standard_normal(n)
    t40 = (age - 40) / 10
    current = rng.random(n) < _sigmoid(
        -2.05 + 1.3 * (depr - 0.5) - 0.2 * t40 - 0.08 * t40**2 + 0.2 * ~female + 0.2 * z
    )
    ex = ~current & (rng.random(n) < _sigmoid(-1.3 + 0.35 * t40 + 0.2 * ~female))
    smoking = np.where(age < 16, -1, np.where(current, 2, np.where(ex, 1, 0)))
    bmi_mean = (
        27.0
        + 1.6 * (depr - 0.5)
        + 0.3 * ~female
        + np.interp(age, [18, 30, 45, 60, 75, 90, 110], [-2.0, -0.6, 0.6, 1.2, 0.6, -1.2, -2.0])
    )
    for name, shift in BMI_BY_GROUP.items():
        bmi_mean += shift * (group == ETHNIC_GROUPS.index(name))
    bmi = np.where(age >= 18, bmi_mean * np.exp(0.16 * rng.standard_normal(n) + 0.03 * z), np.nan)
    pop = _Population(
        n=n,
        nhs=nhs,
        dob=dob,
        age=age,
        age0=np.maximum((w.start - dob) / _YEAR, 0),
        female=female,
        decile=decile,
        depr=depr,
        group=group,
        z=z,
        smoking=smoking,
        bmi=bmi,
        flags=np.zeros((n, len(CONDITIONS)), dtype=bool, order="F"),
        frailty=np.zeros(n, dtype=np.int64),
        labels=labels,
        codes=codes,
        truth=pd.DataFrame(),
    )
    _draw_conditions(_rng(seed, "conditions"), pop)
    extra, deficits = _draw_deficits(_rng(seed, "deficits"), pop)
    pop.frailty = frailty_category(deficits)
    truth = pd.DataFrame(
        {
            "age": pop.age0,
            "sex": pd.Categorical.from_codes(codes["sex"], list(_SEXES)).astype(_STR),
            "imd_decile": decile,
            **{name: pop.flags[:, j] for j, name in enumerate(CONDITION_NAMES)},
            "frailty_deficits": deficits,
        }
    )
    truth["p_emergency_admission"] = emergency_admission_probability(truth)
    truth["ae_rate"] = predict(AE_ATTENDANCE_MODEL, truth)
    truth["p_death"] = predict(DEATH_MODEL, truth)
    # High blood pressure never diagnosed: found by case finding (readings >= 140/90).
    eta = -3.2 + 0.6 * depr + 0.5 * (age - 50) / 10 + 0.3 * ~female
    hidden = ~pop.has("hypertension") & (age >= 40)
    truth["undiagnosed_hypertension"] = hidden & (
        _rng(seed, "undiagnosed").random(n) < _sigmoid(eta)
    )
    pop.truth = truth
    rng = _rng(seed, "registration")
    _registration(rng, pop, w, truth["p_death"].to_numpy(), cfg)
    _diagnosis_dates(rng, pop, extra)
    pop.type1 = rng.random(n) < cfg.type1_optout
    q = (cfg.ndop_optout - cfg.type1_optout * cfg.ndop_given_type1) / (1 - cfg.type1_optout)
    pop.ndop = rng.random(n) < np.where(pop.type1, cfg.ndop_given_type1, max(q, 0.0))
    return pop
