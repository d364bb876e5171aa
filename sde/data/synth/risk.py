"""The KNOWN risk models (emergency admission, A&E attendance, death) and the features
they read, so analyses of a drop can be checked against the truth."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from sde.data.synth.arrays import _sigmoid
from sde.data.synth.reference import CONDITION_NAMES, EFI_DEFICITS


@dataclass(frozen=True)
class RiskModel:
    """``link(E[y]) = intercept + sum(coefficient * feature)``; features: ``risk_features``."""

    outcome: str
    link: str  # "logit" (probability) or "log" (rate)
    intercept: float
    coefficients: Mapping[str, float]


MODEL_AGE_BANDS: Final = (
    ("age_0_4", 0, 5), ("age_5_15", 5, 16), ("age_45_64", 45, 65), ("age_65_74", 65, 75),
    ("age_75_84", 75, 85), ("age_85_plus", 85, 999),
)  # fmt: skip
_FRAILTY_FEATURES: Final = ("frailty_mild", "frailty_moderate", "frailty_severe")  # vs fit

EMERGENCY_ADMISSION_MODEL: Final = RiskModel(
    outcome="at least one emergency admission in a 12-month year of the window",
    link="logit",
    intercept=-4.03,
    coefficients={
        "age_0_4": 1.1, "age_5_15": -0.6, "age_45_64": 0.2, "age_65_74": 0.6,
        "age_75_84": 1.1, "age_85_plus": 1.6, "male": 0.05, "deprivation": 0.7,
        "heart_failure": 0.9, "copd": 1.0, "ckd": 0.4, "diabetes": 0.4, "cancer": 0.8,
        "dementia": 0.7, "atrial_fibrillation": 0.35, "chd": 0.45, "stroke": 0.4, "smi": 0.9,
        "depression": 0.35, "asthma": 0.45, "learning_disability": 0.8,
        "alcohol_dependence": 1.2, "drug_dependence": 1.2,
        "frailty_mild": 0.6, "frailty_moderate": 1.2, "frailty_severe": 1.8,
    },
)  # fmt: skip
# Admissions in a year given at least one: 1 + Poisson(mean), dates spread over the year.
EXTRA_EMERGENCY_ADMISSIONS: Final = 0.45
AE_ATTENDANCE_MODEL: Final = RiskModel(
    outcome="A&E attendances a year not ending in admission (Poisson rate)",
    link="log",
    intercept=-1.56,
    coefficients={
        "age_0_4": 0.5, "age_5_15": -0.15, "age_45_64": -0.25, "age_65_74": -0.25,
        "age_75_84": 0.05, "age_85_plus": 0.4, "male": 0.05, "deprivation": 0.6, "copd": 0.3,
        "heart_failure": 0.3, "smi": 0.6, "depression": 0.2, "asthma": 0.2, "diabetes": 0.1,
        "dementia": 0.2, "learning_disability": 0.3, "alcohol_dependence": 0.9,
        "drug_dependence": 0.9, "frailty_mild": 0.2, "frailty_moderate": 0.4,
        "frailty_severe": 0.6,
    },
)  # fmt: skip
AE_BEFORE_ADMISSION: Final = 0.7  # share of emergency admissions that arrive through A&E
DEATH_MODEL: Final = RiskModel(
    outcome="death in a 12-month year (annual probability, constant hazard)",
    link="logit",
    intercept=-6.67,
    coefficients={
        "age_decades_from_50": 0.85, "male": 0.3, "deprivation": 0.4, "cancer": 1.0,
        "heart_failure": 0.8, "dementia": 0.9, "copd": 0.6, "ckd": 0.3, "stroke": 0.3,
        "diabetes": 0.2, "smi": 0.7, "learning_disability": 0.8, "alcohol_dependence": 0.9,
        "drug_dependence": 1.2, "frailty_mild": 0.3, "frailty_moderate": 0.6,
        "frailty_severe": 1.0,
    },
)  # fmt: skip
DIED_IN_HOSPITAL: Final = 0.45  # share of deaths at the end of an emergency spell


def frailty_category(deficits: np.ndarray | pd.Series) -> np.ndarray:
    """eFI category index (FRAILTY_CATEGORIES) from deficit counts out of 36."""
    efi = np.asarray(deficits, dtype=float) / EFI_DEFICITS
    return np.digitize(efi, [0.12, 0.24, 0.36], right=True)


def risk_features(people: pd.DataFrame) -> pd.DataFrame:
    """Model features from ``age`` (years at the window start), ``sex`` (F/M), ``imd_decile``,
    one bool column per condition and ``frailty_deficits``."""
    age = people["age"].to_numpy(dtype=float)
    features = {name: ((age >= lo) & (age < hi)).astype(float) for name, lo, hi in MODEL_AGE_BANDS}
    features["age_decades_from_50"] = (age - 50) / 10
    features["male"] = (people["sex"].to_numpy(dtype=object) == "M").astype(float)
    features["deprivation"] = (10 - people["imd_decile"].to_numpy(dtype=float)) / 9
    for name in CONDITION_NAMES:
        features[name] = people[name].to_numpy(dtype=float)
    category = frailty_category(people["frailty_deficits"])
    for i, name in enumerate(_FRAILTY_FEATURES, start=1):
        features[name] = (category == i).astype(float)
    return pd.DataFrame(features, index=people.index)


def predict(model: RiskModel, people: pd.DataFrame) -> np.ndarray:
    """The model's true probability (logit link) or yearly rate (log link) per person."""
    features = risk_features(people)
    eta = np.full(len(people), model.intercept)
    for name, beta in model.coefficients.items():
        eta += beta * features[name].to_numpy()
    return _sigmoid(eta) if model.link == "logit" else np.exp(eta)


def emergency_admission_probability(people: pd.DataFrame) -> np.ndarray:
    """True probability of at least one emergency admission in a year (see ``predict``)."""
    return predict(EMERGENCY_ADMISSION_MODEL, people)
