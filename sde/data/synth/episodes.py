"""Episodes of care: community health, mental health and adult social care services."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sde.data.source_format import COMMUNITY_SERVICES, MH_SERVICES, SOCIAL_CARE_SERVICES
from sde.data.synth.arrays import _NA, _YEAR, _sigmoid, _spread
from sde.data.synth.population import _Population, _Window
from sde.data.synth.tables import _exposure, _Frame, _frame, _weighted_by_group


def _episodes(
    rng: np.random.Generator,
    pop: _Population,
    w: _Window,
    table: str,
    rate: np.ndarray,
    mean_days: float,
    contact_every: float,
    service: Callable[[np.ndarray], np.ndarray],
    labels: tuple[str, ...],
) -> _Frame:
    """Episodes of care starting in the window: open (no end date) if still running at the
    extract date, closed at death or deregistration otherwise."""
    parts = []
    for y in range(w.years.size - 1):
        lo, hi, share = _exposure(pop, w, y)
        unit, start = _spread(rng, lo, hi, rng.poisson(rate * share))
        end = start + rng.exponential(mean_days, unit.size).astype(np.int64)
        running = end > pop.obs_end[unit]
        end = np.where(running, np.where(pop.reg_end[unit] == _NA, _NA, pop.obs_end[unit]), end)
        seen = np.where(end == _NA, w.end, end) - start
        contacts = 1 + rng.poisson(seen / contact_every)
        parts.append(
            {
                "person": unit,
                "start_date": start,
                "end_date": end,
                "service_type": service(unit),
                "contacts": contacts,
            }
        )
    return _frame(table, parts, {"service_type": labels})


def _community(rng: np.random.Generator, pop: _Population, w: _Window) -> _Frame:
    age, frailty = pop.age0, pop.frailty
    rate = 0.08 + 0.7 * (age < 5) + 0.05 * ((age >= 5) & (age < 16)) + 0.3 * (age >= 75)
    rate += 0.12 * ((age >= 65) & (age < 75)) + 0.4 * (frailty == 2) + 0.9 * (frailty == 3)
    rate += 0.1 * pop.depr
    group = np.select([age < 5, age < 16, age < 65], [0, 1, 2], 3)
    weights = {
        0: {"health_visiting": 1.0},
        1: {"school_nursing": 0.6, "speech_and_language_therapy": 0.4},
        2: {"physiotherapy": 0.5, "podiatry": 0.3, "district_nursing": 0.2},
        3: {
            "district_nursing": 0.4,
            "physiotherapy": 0.2,
            "podiatry": 0.2,
            "community_matron": 0.1,
            "intermediate_care": 0.07,
            "palliative_care": 0.03,
        },
    }

    def service(unit: np.ndarray) -> np.ndarray:
        return _weighted_by_group(rng, group[unit], weights, COMMUNITY_SERVICES)

    return _episodes(rng, pop, w, "community_contacts", rate, 60, 10, service, COMMUNITY_SERVICES)


def _mental_health(rng: np.random.Generator, pop: _Population, w: _Window) -> _Frame:
    age = pop.age0
    reasons = np.column_stack(
        [
            0.005 + 0.03 * (age < 18),
            0.2 * pop.has("depression") + 0.15 * pop.has("anxiety"),
            1.0 * pop.has("smi"),
            0.4 * pop.has("dementia"),
            0.35 * (pop.has("alcohol_dependence") | pop.has("drug_dependence")),
        ]
    )
    weights = {
        0: {"talking_therapies": 1.0},
        1: {"talking_therapies": 0.8, "community_mental_health_team": 0.2},
        2: {
            "community_mental_health_team": 0.6,
            "crisis_team": 0.2,
            "early_intervention_psychosis": 0.2,
        },
        3: {"memory_service": 1.0},
        4: {"substance_misuse": 1.0},
        5: {"camhs": 1.0},
        6: {"community_mental_health_team": 0.75, "crisis_team": 0.25},
    }

    def service(unit: np.ndarray) -> np.ndarray:
        cum = np.cumsum(reasons[unit], axis=1)
        reason = (rng.random(unit.size)[:, None] * cum[:, -1:] > cum).sum(axis=1)
        reason = np.where((reason == 0) & (age[unit] < 18), 5, reason)
        reason = np.where((reason == 2) & (age[unit] >= 35), 6, reason)  # EIP is for under 35s
        return _weighted_by_group(rng, reason, weights, MH_SERVICES)

    rate = reasons.sum(axis=1)
    return _episodes(rng, pop, w, "mh_contacts", rate, 90, 14, service, MH_SERVICES)


def _social_care(rng: np.random.Generator, pop: _Population, w: _Window) -> _Frame:
    """Long-term and short-term services for adults, mostly old, frail, with dementia or a
    learning disability; services that ended before the window are not in the drop."""
    age, frailty = pop.age0, pop.frailty
    dementia, ld = pop.has("dementia"), pop.has("learning_disability")
    eta = -3.3 + 0.9 * (age - 80) / 10 + np.array([0, 0.8, 1.5, 2.2])[frailty] + 1.5 * dementia
    eta += 2.8 * ld + 0.3 * pop.depr
    has = (age >= 18) & (rng.random(pop.n) < _sigmoid(eta))
    count = has * (1 + rng.poisson(0.3, pop.n))
    lo = np.maximum(pop.dob + int(18 * _YEAR), w.start - 3 * 365)
    unit, start = _spread(rng, lo, pop.obs_end, count)
    group = np.where(ld[unit], 0, np.where(dementia[unit] | (frailty[unit] == 3), 1, 2))
    weights = {
        0: {"supported_living": 0.6, "day_care": 0.2, "direct_payment": 0.2},
        1: {"home_care": 0.45, "residential_care": 0.25, "nursing_care": 0.2, "reablement": 0.1},
        2: {
            "home_care": 0.4,
            "reablement": 0.2,
            "equipment_and_adaptations": 0.25,
            "day_care": 0.05,
            "direct_payment": 0.1,
        },
    }
    service = _weighted_by_group(rng, group, weights, SOCIAL_CARE_SERVICES)
    mean_days = np.select(
        [
            service == SOCIAL_CARE_SERVICES.index("reablement"),
            service == SOCIAL_CARE_SERVICES.index("equipment_and_adaptations"),
        ],
        [42.0, 0.0],
        2 * _YEAR,
    )
    end = start + rng.exponential(1.0, unit.size) * mean_days
    end = end.astype(np.int64)
    running = end > pop.obs_end[unit]
    end = np.where(running, np.where(pop.reg_end[unit] == _NA, _NA, pop.obs_end[unit]), end)
    keep = (end == _NA) | (end >= w.start)
    cols = {"start_date": start[keep], "end_date": end[keep], "service_type": service[keep]}
    return _Frame("social_care", unit[keep], cols, {"service_type": SOCIAL_CARE_SERVICES})
