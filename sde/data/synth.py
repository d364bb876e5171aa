"""Synthetic linked ICS data: a pure, vectorised, deterministic generator.

``generate`` builds one *drop* (the tables a data controller would send, keyed by NHS
number) from a seed; ``write_drop`` writes it as source-format CSV files, ``ndop.csv``
and ``manifest.json``. Everything works on whole NumPy arrays: no per-person Python
loops, no Django, no settings.

The people are drawn from documented parameters (``docs/synthetic-data.md``, rendered from
the constants below by ``reference_tables_markdown``): a prevalence model per condition,
an electronic-frailty-style deficit count, and three KNOWN risk models (emergency
admission, A&E attendance, death). ``SyntheticDrop.truth`` holds each person's true
features and probabilities so analyses can be checked against the truth; it is never
written to the drop.

Every drop carries data-quality faults at configured rates (``FaultRates``); the manifest
counts exactly what was injected, table by table, so ingestion can reconcile.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from sde.exceptions import ValidationError

GENERATOR: Final = "sde.data.synth"
VERSION: Final = "1.0.0"

# ---------------------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------------------

# Share (%) of the registered population by five-year band at the extract date, 0-4 ...
# 85-89 and 90+: ONS mid-2021 England nudged towards GP lists (19% under 16, 18% 65+).
AGE_BANDS: Final = (
    5.6, 6.1, 6.2, 5.6, 6.0, 6.5, 6.8, 6.6, 6.2, 6.3, 6.8, 6.6, 5.7, 5.1, 5.1, 3.8, 2.7, 1.7, 1.1,
)  # fmt: skip

ETHNIC_GROUPS: Final = ("White", "Asian", "Black", "Mixed", "Other")
NOT_STATED: Final = "Not stated"
# ONS 2021 categories ("group: category", groups abbreviated) with England's shares (%).
ETHNICITY_ENGLAND: Final[Mapping[str, float]] = {
    "White: English, Welsh, Scottish, Northern Irish or British": 73.5,
    "White: Irish": 0.9,
    "White: Gypsy or Irish Traveller": 0.1,
    "White: Roma": 0.2,
    "White: Other White": 6.3,
    "Asian: Indian": 3.3,
    "Asian: Pakistani": 2.8,
    "Asian: Bangladeshi": 1.1,
    "Asian: Chinese": 0.7,
    "Asian: Other Asian": 1.7,
    "Black: African": 2.6,
    "Black: Caribbean": 1.1,
    "Black: Other Black": 0.5,
    "Mixed: White and Asian": 0.8,
    "Mixed: White and Black African": 0.4,
    "Mixed: White and Black Caribbean": 0.9,
    "Mixed: Other Mixed or Multiple": 0.8,
    "Other: Arab": 0.6,
    "Other: Any other ethnic group": 1.6,
}
# Ethnic minority groups are younger and live in more deprived areas: log-odds tilts
# (most vs least deprived, under 40) before the mix is raked back to the configured one.
_ETHNIC_TILT: Final = {
    "Asian": (0.9, 0.5), "Black": (1.0, 0.5), "Mixed": (0.6, 1.2), "Other": (0.7, 0.4),
    "White-other": (0.3, 0.4),
}  # fmt: skip
_BMI_BY_GROUP: Final = {"Asian": -0.8, "Black": 1.2}

PLACES: Final = ("North Place", "South Place", "East Place", "West Place", "Central Place")
PROVIDERS: Final = ("R9A", "R9B", "R9C", "R9D", "R9E")  # one synthetic acute trust per Place


@dataclass(frozen=True)
class Condition:
    """A long-term condition: its code, prevalence target and log-odds model.

    ``logit p = intercept + age*t + age2*t^2 + deprivation*d + male + latent*z + smoking
    + bmi*(BMI-27.5)/5 + ethnicity[group] + sum(after[c] if the person has c)`` where
    ``t = (age - 50)/10`` at the extract date, ``d = (10 - IMD decile)/9`` (1 = most
    deprived) and ``z`` is a standard-normal latent health factor shared by all conditions
    (so conditions cluster). Intercepts are calibrated so the default configuration meets
    ``target`` among people registered at the extract date aged ``denominator_age``+.
    """

    name: str
    snomed: str
    target: float
    denominator_age: int
    min_age: int
    intercept: float
    age: float
    age2: float
    deprivation: float
    male: float
    latent: float
    smoker: float = 0.0
    ex_smoker: float = 0.0
    bmi: float = 0.0
    ethnicity: Mapping[str, float] = field(default_factory=dict)
    after: Mapping[str, float] = field(default_factory=dict)
    excludes: tuple[str, ...] = ()
    years_since_diagnosis: float = 8.0  # mean (exponential) at the extract date
    deficit: str | None = None  # the eFI deficit it counts as
    icd10: str | None = None  # primary diagnosis when it causes an emergency admission
    specialty: str | None = None  # outpatient treatment function
    medicines: tuple[tuple[str, float], ...] = ()  # (BNF section, share treated)


_C = Condition
CONDITIONS: Final[tuple[Condition, ...]] = (
    _C("hypertension", "38341003", 0.14, 0, 18, -2.3, 0.85, -0.06, 0.3, 0.15, 0.5, bmi=0.35,
       ethnicity={"Black": 0.5, "Asian": 0.2}, years_since_diagnosis=10, deficit="hypertension",
       specialty="320", medicines=(("0205", 0.55), ("0206", 0.45), ("0202", 0.2), ("0212", 0.35))),
    _C("diabetes", "44054006", 0.075, 17, 5, -3.75, 0.6, -0.08, 0.7, 0.3, 0.5, bmi=0.6,
       ethnicity={"Asian": 1.0, "Black": 0.6, "Mixed": 0.3, "Other": 0.5},
       after={"hypertension": 0.4}, years_since_diagnosis=9, deficit="diabetes", icd10="E119",
       specialty="307", medicines=(("0601", 0.9), ("0212", 0.7), ("0205", 0.3))),
    _C("asthma", "195967001", 0.065, 0, 2, -2.95, -0.05, 0.0, 0.35, -0.1, 0.4, smoker=0.2, bmi=0.15,
       years_since_diagnosis=15, deficit="respiratory", icd10="J459", specialty="340",
       medicines=(("0301", 0.85), ("0302", 0.6))),
    _C("copd", "13645005", 0.02, 0, 35, -5.35, 0.7, -0.08, 0.9, 0.1, 0.5, smoker=2.0, ex_smoker=1.3,
       ethnicity={"Asian": -0.6, "Black": -0.6, "Mixed": -0.4, "Other": -0.6},
       years_since_diagnosis=7, deficit="respiratory", icd10="J441", specialty="340",
       medicines=(("0301", 0.9), ("0302", 0.5))),
    _C("learning_disability", "110359009", 0.005, 0, 2, -5.61, -0.15, -0.05, 0.4, 0.4, 0.3,
       years_since_diagnosis=30, icd10="G409", medicines=(("0408", 0.25),)),
    _C("atrial_fibrillation", "49436004", 0.02, 0, 30, -5.11, 1.0, -0.05, 0.05, 0.35, 0.3, bmi=0.15,
       after={"hypertension": 0.4}, years_since_diagnosis=6, deficit="atrial_fibrillation",
       icd10="I489", specialty="320", medicines=(("0208", 0.8), ("0204", 0.6))),
    _C("chd", "53741008", 0.03, 0, 30, -5.11, 0.9, -0.08, 0.5, 0.7, 0.5, smoker=0.6, ex_smoker=0.3,
       ethnicity={"Asian": 0.5}, after={"hypertension": 0.5, "diabetes": 0.5},
       years_since_diagnosis=10, deficit="ischaemic_heart_disease", icd10="I219", specialty="320",
       medicines=(("0209", 0.8), ("0212", 0.85), ("0204", 0.5), ("0206", 0.3))),
    _C("stroke", "230690007", 0.02, 0, 20, -5.18, 0.85, -0.04, 0.45, 0.2, 0.5, smoker=0.5,
       ethnicity={"Black": 0.3}, after={"atrial_fibrillation": 0.7, "hypertension": 0.5},
       years_since_diagnosis=7, deficit="cerebrovascular", icd10="I639", specialty="300",
       medicines=(("0209", 0.6), ("0212", 0.8))),
    _C("ckd", "709044004", 0.04, 18, 18, -5.15, 1.1, -0.05, 0.35, -0.1, 0.5,
       after={"diabetes": 0.7, "hypertension": 0.8}, years_since_diagnosis=6, deficit="ckd",
       icd10="N189", specialty="361", medicines=(("0205", 0.5),)),
    _C("heart_failure", "84114007", 0.01, 0, 30, -6.77, 1.0, -0.03, 0.6, 0.4, 0.6, smoker=0.3,
       after={"chd": 1.0, "atrial_fibrillation": 0.9, "hypertension": 0.4, "diabetes": 0.4},
       years_since_diagnosis=4, deficit="heart_failure", icd10="I509", specialty="320",
       medicines=(("0202", 0.8), ("0205", 0.8), ("0204", 0.7))),
    _C("cancer", "363346000", 0.035, 0, 0, -3.49, 0.9, -0.1, -0.1, 0.0, 0.3, smoker=0.3,
       years_since_diagnosis=6, icd10="C809", specialty="370",
       medicines=(("0407", 0.3), ("0803", 0.3))),
    _C("depression", "35489007", 0.13, 18, 12, -1.83, 0.05, -0.06, 0.45, -0.6, 0.6,
       years_since_diagnosis=10, icd10="F329", medicines=(("0403", 0.55),)),
    _C("smi", "58214004", 0.01, 0, 15, -5.06, 0.0, -0.05, 0.9, 0.15, 0.5, smoker=0.6,
       ethnicity={"Black": 0.7}, years_since_diagnosis=15, icd10="F209",
       medicines=(("0402", 0.85),)),
    _C("dementia", "52448006", 0.007, 0, 40, -8, 1.6, 0.0, 0.3, -0.1, 0.4,
       after={"stroke": 0.6, "learning_disability": 1.5}, years_since_diagnosis=3,
       deficit="memory_and_cognition", icd10="F03X", specialty="430",
       medicines=(("0411", 0.5),)),
    _C("osteoarthritis", "396275006", 0.06, 0, 30, -3.25, 1.0, -0.1, 0.2, -0.4, 0.4, bmi=0.5,
       years_since_diagnosis=8, deficit="arthritis", specialty="110",
       medicines=(("1001", 0.4), ("0407", 0.5))),
    _C("anxiety", "197480006", 0.06, 0, 12, -2.82, -0.1, -0.05, 0.3, -0.6, 0.5,
       after={"depression": 1.5}, years_since_diagnosis=6,
       medicines=(("0401", 0.15), ("0403", 0.3))),
    _C("alcohol_dependence", "7200002", 0.01, 16, 16, -5.69, 0.0, -0.1, 0.9, 0.8, 0.3, smoker=1.0,
       after={"smi": 1.2, "depression": 0.6}, years_since_diagnosis=6, icd10="F102"),
    _C("drug_dependence", "75544000", 0.005, 16, 16, -6.82, -0.3, -0.1, 1.2, 0.8, 0.3, smoker=1.2,
       after={"smi": 1.4, "alcohol_dependence": 1.2}, years_since_diagnosis=6, icd10="F112",
       medicines=(("0410", 0.6),)),
    _C("prediabetes", "714628002", 0.04, 18, 18, -3.77, 0.6, -0.08, 0.5, 0.1, 0.3, bmi=0.5,
       ethnicity={"Asian": 0.9, "Black": 0.5}, excludes=("diabetes",), years_since_diagnosis=3),
)  # fmt: skip
CONDITION_NAMES: Final = tuple(c.name for c in CONDITIONS)

# Extra codes used instead of the generic concept for some people.
TYPE1_DIABETES: Final = "46635009"
BIPOLAR: Final = "13746004"
CKD_STAGES: Final = (("433144002", 0.85), ("431857002", 0.10), ("433146000", 0.05))  # 3, 4, 5


@dataclass(frozen=True)
class Deficit:
    """An electronic frailty index deficit recorded by its own code (not a condition).

    ``logit p = intercept + 1.1*(age-75)/10 + 0.9*z + 0.4*d`` for people aged 40+.
    """

    name: str
    snomed: str
    intercept: float
    medicines: tuple[tuple[str, float], ...] = ()


DEFICIT_AGE: Final = 1.1
DEFICIT_LATENT: Final = 0.9
DEFICIT_DEPRIVATION: Final = 0.4
DEFICITS: Final[tuple[Deficit, ...]] = (
    Deficit("falls", "1912002", -1.66),
    Deficit("dizziness", "404640003", -2.15),
    Deficit("dyspnoea", "267036007", -2.14),
    Deficit("hearing_impairment", "15188001", -1.26),
    Deficit("visual_impairment", "397540003", -2.74),
    Deficit("urinary_incontinence", "165232002", -2.16),
    Deficit("osteoporosis", "64859006", -2.5, (("0606", 0.7),)),
    Deficit("peripheral_vascular_disease", "400047006", -3.42),
    Deficit("parkinsonism", "49049000", -5, (("0409", 0.9),)),
    Deficit("thyroid_disease", "40930008", -2.49, (("0602", 0.95),)),
    Deficit("weight_loss", "89362005", -3.42),
    Deficit("anaemia", "271737000", -2.16),
    Deficit("peptic_ulcer", "13200003", -3.41, (("0103", 0.8),)),
    Deficit("sleep_disturbance", "193462001", -2.15, (("0401", 0.3),)),
    Deficit("social_vulnerability", "105529008", -1.68),
    Deficit("fragility_fracture", "5913000", -3.65),
    Deficit("hypotension", "45007003", -3.06),
    Deficit("urinary_system_disease", "68566005", -1.67),
    Deficit("memory_impairment", "386807006", -3.03),
)
# eFI: 36 deficits; a person's index is (deficits present) / 36. Conditions count through
# their ``deficit`` group (asthma and COPD are one "respiratory" deficit; dementia and
# memory impairment one "memory and cognition" deficit).
EFI_DEFICITS: Final = 36
FRAILTY_CATEGORIES: Final = ("fit", "mild", "moderate", "severe")  # eFI <=.12, <=.24, <=.36, >

# Measurements and other GP codes.
BMI: Final = "60621009"
HBA1C: Final = "999791000000106"  # IFCC, mmol/mol
SYSTOLIC_BP: Final = "72313002"
DIASTOLIC_BP: Final = "1091811000000102"
OBESITY: Final = "414916001"
SMOKING: Final = (("266919005", "never"), ("8517006", "ex"), ("77176002", "current"))
TYPE1_DISSENT: Final = "827241000000103"

SNOMED_CODES: Final[tuple[str, ...]] = (
    *(c.snomed for c in CONDITIONS),
    TYPE1_DIABETES,
    BIPOLAR,
    *(code for code, _ in CKD_STAGES),
    *(d.snomed for d in DEFICITS),
    BMI,
    HBA1C,
    SYSTOLIC_BP,
    DIASTOLIC_BP,
    OBESITY,
    *(code for code, _ in SMOKING),
    TYPE1_DISSENT,
)
_CODE = {code: i for i, code in enumerate(SNOMED_CODES)}

BNF_SECTIONS: Final = tuple(
    "0103 0202 0204 0205 0206 0208 0209 0212 0301 0302 0401 0402 0403 0407 0408 0409 0410 0411 "
    "0501 0601 0602 0606 0803 1001".split()
)
ANTIBIOTICS: Final = "0501"
REPEAT_DAYS: Final = 56  # repeat prescriptions are issued every 8 weeks

EMERGENCY_GENERIC: Final = {  # primary diagnoses by age group: <16, 16-64, 65+
    0: ("J069", "J219", "A099", "R509", "S099"),
    1: ("R074", "R104", "K358", "N390", "J189", "S8260"),
    2: ("J189", "N390", "R55X", "S720", "R296", "R074"),
}
ELECTIVE_GENERIC: Final = {
    0: ("J353", "K409"), 1: ("K802", "K409", "M234", "N979"), 2: ("H251", "K409", "M171", "K573"),
}  # fmt: skip
CHEMOTHERAPY: Final = "Z511"
MATERNITY: Final = (("O800", 0.6), ("O820", 0.15), ("O821", 0.25))
_ICD10 = [c.icd10 for c in CONDITIONS if c.icd10] + [CHEMOTHERAPY] + [c for c, _ in MATERNITY]
_ICD10 += [
    code for table in (EMERGENCY_GENERIC, ELECTIVE_GENERIC) for g in table.values() for code in g
]
ICD10_CODES: Final[tuple[str, ...]] = tuple(dict.fromkeys(_ICD10))
ADMISSION_METHODS: Final = ("elective", "emergency", "maternity")
DISCHARGE_METHODS: Final = ("discharged", "died")
AE_DISPOSALS: Final = (
    ("admitted", 0.0), ("discharged", 0.62), ("gp_follow_up", 0.14), ("referred_to_clinic", 0.12),
    ("left_before_treatment", 0.07), ("transferred", 0.05),
)  # fmt: skip
# Outpatient treatment function codes.
SPECIALTIES: Final = tuple(
    "100 101 110 120 130 300 301 307 320 330 340 361 370 410 420 430 501 502".split()
)
OP_GENERIC: Final = {
    0: ("420", "120", "130"),
    1: ("100", "101", "110", "120", "130", "300", "301", "330", "410"),
    2: ("130", "110", "430", "101", "320", "100"),
}
COMMUNITY_SERVICES: Final = tuple(
    "health_visiting school_nursing speech_and_language_therapy physiotherapy podiatry "
    "district_nursing community_matron intermediate_care palliative_care".split()
)
MH_SERVICES: Final = tuple(
    "talking_therapies community_mental_health_team crisis_team early_intervention_psychosis "
    "memory_service camhs substance_misuse".split()
)
SOCIAL_CARE_SERVICES: Final = tuple(
    "home_care reablement equipment_and_adaptations day_care direct_payment residential_care "
    "nursing_care supported_living".split()
)

# ---------------------------------------------------------------------------------------
# Known risk models
# ---------------------------------------------------------------------------------------


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

# ---------------------------------------------------------------------------------------
# Configuration, faults, schemas
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultRates:
    """Share of each table's rows given each fault (rounded to whole rows, disjoint rows)."""

    invalid_nhs_number: float = 0.001
    impossible_date: float = 0.001
    unknown_code: float = 0.001
    duplicate_row: float = 0.001

    @classmethod
    def none(cls) -> FaultRates:
        return cls(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, eq=False)
class SynthConfig:
    """What varies between ICSs and drops. Defaults: an England-like, more deprived ICS."""

    start: date = date(2023, 4, 1)
    years: int = 2
    ethnicity_mix: Mapping[str, float] = field(default_factory=lambda: dict(ETHNICITY_ENGLAND))
    ethnicity_not_stated: float = 0.05
    imd_deciles: tuple[float, ...] = (0.14, 0.12, 0.11, 0.10, 0.10, 0.09, 0.09, 0.09, 0.08, 0.08)
    people_per_lsoa: int = 1_600
    people_per_practice: int = 9_000
    practices_per_pcn: int = 5
    people_per_place: int = 250_000
    places: tuple[str, ...] = PLACES
    joiners_per_year: float = 0.04
    leavers_per_year: float = 0.04
    type1_optout: float = 0.03
    ndop_optout: float = 0.05
    ndop_given_type1: float = 0.3
    faults: FaultRates = field(default_factory=FaultRates)


TABLES: Final = tuple(
    "patients gp_events gp_medications apc_spells ae_attendances op_appointments "
    "community_contacts mh_contacts social_care ndop".split()
)
_DTYPES = {"": "str", "date": "datetime64[s]", "int": "int64", "float": "float64", "bool": "bool"}


def _schema(columns: str) -> dict[str, str]:
    """ "name:kind ..." (kind date, int, float or bool; none for str) -> {name: pandas dtype}."""
    return {c.split(":")[0]: _DTYPES[c.partition(":")[2]] for c in columns.split()}


_EPISODE = "nhs_number start_date:date end_date:date service_type"
# Column names and pandas dtypes of every table ("str" is pandas' default string dtype).
TABLE_SCHEMAS: Final[Mapping[str, Mapping[str, str]]] = {
    "patients": _schema(
        "nhs_number date_of_birth:date sex ethnicity lsoa_code imd_decile:int practice_ods "
        "pcn_code place registration_start:date registration_end:date date_of_death:date"
    ),
    "gp_events": _schema("nhs_number date:date snomed_code value:float"),
    "gp_medications": _schema("nhs_number date:date bnf_chapter bnf_section"),
    "apc_spells": _schema(
        "nhs_number admission_date:date discharge_date:date admission_method "
        "primary_diagnosis_icd10 provider discharge_method cost:int"
    ),
    "ae_attendances": _schema("nhs_number arrival_date:date disposal provider cost:int"),
    "op_appointments": _schema("nhs_number date:date specialty attended:bool cost:int"),
    "community_contacts": _schema(_EPISODE + " contacts:int"),
    "mh_contacts": _schema(_EPISODE + " contacts:int"),
    "social_care": _schema(_EPISODE),
    "ndop": _schema("nhs_number"),
}

# Which column each fault touches, by table. Impossible dates: "before_birth" moves
# registration_start before date_of_birth; "after_death" moves an event after the person's
# date_of_death (people who died before the extract date); "future" moves a date past the
# extract date; "end_before_start" puts the end/discharge date before the start/admission.
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
_START_OF = {"apc_spells": "admission_date", "community_contacts": "start_date",
             "mh_contacts": "start_date", "social_care": "start_date",
             "patients": "date_of_birth"}  # fmt: skip
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
# Every valid value of each coded column, so ingestion can tell an unknown code.
CODE_LISTS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "gp_events": {"snomed_code": SNOMED_CODES},
    "gp_medications": {"bnf_chapter": tuple(dict.fromkeys(s[:2] for s in BNF_SECTIONS)),
                       "bnf_section": BNF_SECTIONS},
    "apc_spells": {"primary_diagnosis_icd10": ICD10_CODES, "admission_method": ADMISSION_METHODS,
                   "discharge_method": DISCHARGE_METHODS, "provider": PROVIDERS},
    "ae_attendances": {"disposal": tuple(d for d, _ in AE_DISPOSALS), "provider": PROVIDERS},
    "op_appointments": {"specialty": SPECIALTIES},
    "community_contacts": {"service_type": COMMUNITY_SERVICES},
    "mh_contacts": {"service_type": MH_SERVICES},
    "social_care": {"service_type": SOCIAL_CARE_SERVICES},
}  # fmt: skip
FAULT_KINDS: Final = ("invalid_nhs_number", "impossible_date", "unknown_code", "duplicate_row")

# ---------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------

_NA: Final = -(2**40)  # a missing day
_EPOCH: Final = date(1970, 1, 1)
_YEAR: Final = 365.25
_STR: Final = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default "str" dtype


def _day(d: date) -> int:
    return (d - _EPOCH).days


def _rng(seed: int, stream: str) -> np.random.Generator:
    """An independent stream per table, so asking for fewer tables changes none of them."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(stream.encode())]))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(rng: np.random.Generator, n: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """n draws of an index from ``weights`` (normalised)."""
    cum = np.cumsum(np.asarray(weights, dtype=float))
    return np.minimum(np.searchsorted(cum / cum[-1], rng.random(n), side="right"), cum.size - 1)


def _uniform_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return lo + (rng.random(lo.size) * (hi - lo + 1)).astype(np.int64)


def _spread(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``k[i]`` distinct days in ``[lo[i], hi[i]]``, one in each of k equal slices.

    Returns (unit index, day) per row. Distinct days by construction mean the clean data
    has no exact duplicate rows, so every duplicate in a drop is an injected one.
    """
    span = np.maximum(hi - lo + 1, 0)
    k = np.minimum(k, span)
    unit = np.repeat(np.arange(k.size), k)
    j = np.arange(unit.size) - np.repeat(np.cumsum(k) - k, k)
    kk, sp = k[unit], span[unit]
    b0, b1 = j * sp // kk, (j + 1) * sp // kk
    return unit, lo[unit] + b0 + (rng.random(unit.size) * (b1 - b0)).astype(np.int64)


def _lognormal(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    return np.exp(sigma * rng.standard_normal(n) - sigma * sigma / 2)  # mean 1


# ---------------------------------------------------------------------------------------
# NHS numbers (Modulus 11)
# ---------------------------------------------------------------------------------------

_POWERS: Final = 10 ** np.arange(8, -1, -1, dtype=np.int64)


def nhs_check_digits(base: np.ndarray) -> np.ndarray:
    """Modulus 11 check digit of 9-digit bases; 10 means no valid number has that base."""
    base = np.asarray(base, dtype=np.int64)
    total = np.zeros(base.shape, dtype=np.int64)
    for weight, power in zip(range(10, 1, -1), _POWERS, strict=True):
        total += weight * (base // power % 10)
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


def generate_nhs_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """n unique valid NHS numbers (int64) from the 9xx range.

    Numbers starting with 9 are never issued to patients (999 is the official test range;
    England uses 4xx and 6xx-7xx, Scotland's CHI starts with a day of month, Northern
    Ireland 320-399), so a synthetic number can never be a real person's.
    """
    numbers = np.empty(0, dtype=np.int64)
    while numbers.size < n:
        base = 900_000_000 + rng.integers(0, 100_000_000, size=(n - numbers.size) * 11 // 10 + 16)
        check = nhs_check_digits(base)
        drawn = np.concatenate([numbers, (base * 10 + check)[check != 10]])
        _, first = np.unique(drawn, return_index=True)
        numbers = drawn[np.sort(first)]
    return numbers[:n]


def _nhs_chars(numbers: np.ndarray) -> np.ndarray:
    """(n, 10) ASCII digits of 10-digit numbers."""
    chars = np.empty((numbers.size, 10), dtype=np.uint8)
    rest = numbers.astype(np.int64)
    for i in range(9, -1, -1):
        rest, digit = np.divmod(rest, 10)
        chars[:, i] = digit + 48
    return chars


def _nhs_column(person_chars: np.ndarray, person: np.ndarray, fault: np.ndarray) -> pd.Series:
    """NHS number strings; ``fault`` 1-9 shifts the check digit by that much (invalid),
    10 drops the last digit (nine digits), 11 types a letter O for the fourth digit."""
    records = person_chars.view("S10").ravel()[person]  # one 10-byte copy per row
    faulty = np.flatnonzero(fault)
    if faulty.size == 0:
        data = records.view(np.uint8)
        offsets = np.arange(0, 10 * person.size + 1, 10, dtype=np.int32)
    else:
        chars = records.view(np.uint8).reshape(-1, 10)
        kind = fault[faulty]
        shifted = faulty[kind <= 9]
        chars[shifted, 9] = 48 + (chars[shifted, 9] - 48 + fault[shifted]) % 10
        chars[faulty[kind == 11], 3] = ord("O")
        lengths = np.full(person.size, 10, dtype=np.int32)
        lengths[faulty[kind == 10]] = 9
        data = chars[np.arange(10) < lengths[:, None]]
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int32)]).astype(np.int32)
    array = pa.StringArray.from_buffers(person.size, pa.py_buffer(offsets), pa.py_buffer(data))
    return pd.Series(pd.array(array, dtype=_STR))


# ---------------------------------------------------------------------------------------
# The population
# ---------------------------------------------------------------------------------------


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
    tilt = np.array([_ETHNIC_TILT.get(key, (0.0, 0.0)) for key in tilt_key])
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
    labels["sex"] = ("M", "F")
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
    for name, shift in _BMI_BY_GROUP.items():
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
            "sex": pd.Categorical.from_codes(codes["sex"], ["M", "F"]).astype(_STR),
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


# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------


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
        {"disposal": tuple(d for d, _ in AE_DISPOSALS), "provider": PROVIDERS},
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


# ---------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------


def _inject_faults(
    rng: np.random.Generator,
    frame: _Frame,
    rates: FaultRates,
    w: _Window,
    death: np.ndarray,
    unlinked: np.ndarray,
) -> tuple[_Frame, dict[str, int]]:
    """Give disjoint random rows one fault each, then duplicate some clean rows in place.

    ``unlinked`` marks people whose patients row has an invalid NHS number: their events
    cannot be joined to a date of death, so they are not used for "after death" faults.
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
            died = death[frame.person]
            rows = choose(
                (died != _NA) & (died < w.end) & ~unlinked[frame.person], rates.impossible_date
            )
            gap = w.end - died[rows]
            days[rows] = died[rows] + 1 + (rng.random(rows.size) * gap).astype(np.int64)
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


# ---------------------------------------------------------------------------------------
# Generating a drop
# ---------------------------------------------------------------------------------------


def _dates(days: np.ndarray) -> np.ndarray:
    missing = days == _NA
    out = np.where(missing, 0, days).astype("datetime64[D]").astype("datetime64[s]")
    out[missing] = np.datetime64("NaT")
    return out


def _to_dataframe(frame: _Frame, person_chars: np.ndarray) -> pd.DataFrame:
    data: dict[str, object] = {}
    fault = frame.nhs_fault if frame.nhs_fault is not None else np.zeros(frame.rows, np.int64)
    for column, dtype in TABLE_SCHEMAS[frame.table].items():
        if column == "nhs_number":
            data[column] = _nhs_column(person_chars, frame.person, fault)
        elif column in frame.labels:
            labels = pa.array(frame.labels[column], type=pa.string())
            codes = pa.array(frame.cols[column].astype(np.int32))
            data[column] = pd.Series(pd.array(labels.take(codes), dtype=_STR))
        elif dtype == "datetime64[s]":
            data[column] = _dates(frame.cols[column])
        else:
            data[column] = frame.cols[column].astype(dtype)
    return pd.DataFrame(data)


@dataclass(frozen=True, eq=False)
class SyntheticDrop(Mapping[str, pd.DataFrame]):
    """The tables of one drop (a read-only mapping name -> DataFrame) and what made them.

    ``truth`` has one row per person with the true features and model probabilities
    (``p_emergency_admission``, ``ae_rate``, ``p_death``); it is not part of the drop.
    ``faults`` counts the rows given each fault, by table.
    """

    tables: Mapping[str, pd.DataFrame]
    truth: pd.DataFrame
    seed: int
    patients: int
    config: SynthConfig
    faults: Mapping[str, Mapping[str, int]]
    start: date
    end: date

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)


_BUILDERS: Final = {
    "gp_events": _gp_events,
    "gp_medications": _gp_medications,
    "op_appointments": _outpatients,
    "community_contacts": _community,
    "mh_contacts": _mental_health,
    "social_care": _social_care,
}


def _check_request(patients: int, seed: int, cfg: SynthConfig, tables: Collection[str]) -> None:
    errors: dict[str, list[str]] = {}
    if patients < 1:
        errors["patients"] = ["must be at least 1"]
    if seed < 0:
        errors["seed"] = ["must be zero or more"]
    if unknown := sorted(set(tables) - set(TABLES)):
        errors["tables"] = [f"unknown table {name!r}" for name in unknown]
    if cfg.years < 1 or (cfg.start.month, cfg.start.day) == (2, 29):
        errors["config.start"] = ["need at least one year, not starting on 29 February"]
    if len(cfg.imd_deciles) != 10 or min(cfg.imd_deciles) < 0 or sum(cfg.imd_deciles) <= 0:
        errors["config.imd_deciles"] = ["ten non-negative weights, not all zero"]
    bad = [label for label in cfg.ethnicity_mix if label.split(":")[0] not in ETHNIC_GROUPS]
    if bad or min(cfg.ethnicity_mix.values(), default=-1) < 0 or not cfg.ethnicity_mix:
        errors["config.ethnicity_mix"] = ['"Group: category" labels with non-negative weights']
    rates = asdict(cfg.faults).values()
    if min(rates) < 0 or sum(rates) > 0.5:
        errors["config.faults"] = ["rates are shares of rows: non-negative, 0.5 in all"]
    if errors:
        raise ValidationError("invalid synthetic data request", errors)


def generate(
    *,
    patients: int,
    seed: int,
    config: SynthConfig | None = None,
    tables: Collection[str] | None = None,
) -> SyntheticDrop:
    """Generate one drop of ``patients`` people, byte-for-byte reproducible from ``seed``.

    ``tables`` limits which tables are built (each has its own random stream, so a table
    is the same whichever others are asked for). Raises ``ValidationError`` on bad input.
    """
    cfg = config if config is not None else SynthConfig()
    wanted = TABLES if tables is None else tuple(name for name in TABLES if name in tables)
    _check_request(patients, seed, cfg, TABLES if tables is None else tables)
    w = _window(cfg)
    pop = _population(patients, seed, cfg, w)
    person_chars = _nhs_chars(pop.nhs)
    pending: dict[str, _Frame] = {"patients": _patients(pop)}
    faults: dict[str, dict[str, int]] = {}
    unlinked = np.zeros(pop.n, dtype=bool)
    out: dict[str, pd.DataFrame] = {}
    for name in TABLES[:-1]:  # one table at a time, so only one is held twice in memory
        if name in ("apc_spells", "ae_attendances") and name in wanted and name not in pending:
            pending["apc_spells"], pending["ae_attendances"] = _hospital(
                _rng(seed, "hospital"), pop, w
            )
        elif name in _BUILDERS and name in wanted:
            pending[name] = _BUILDERS[name](_rng(seed, name), pop, w)
        if name not in pending:
            continue
        frame, faults[name] = _inject_faults(
            _rng(seed, f"faults:{name}"), pending.pop(name), cfg.faults, w, pop.death, unlinked
        )
        if name == "patients":
            unlinked[frame.person[frame.nhs_fault > 0]] = True  # type: ignore[operator]
        if name in wanted:
            out[name] = _to_dataframe(frame, person_chars)
        del frame
    if "ndop" in wanted:
        opted = np.sort(pop.nhs[pop.ndop])
        out["ndop"] = pd.DataFrame(
            {
                "nhs_number": _nhs_column(
                    _nhs_chars(opted), np.arange(opted.size), np.zeros(opted.size, np.int64)
                )
            }
        )
        faults["ndop"] = dict.fromkeys(FAULT_KINDS, 0)
    truth = pop.truth
    truth.insert(
        0, "nhs_number", _nhs_column(person_chars, np.arange(pop.n), np.zeros(pop.n, np.int64))
    )
    truth.insert(
        4,
        "ethnicity_group",
        pd.Series(np.array([*ETHNIC_GROUPS, NOT_STATED], dtype=object)[pop.group], dtype=_STR),
    )
    truth["frailty_index"] = truth["frailty_deficits"] / EFI_DEFICITS
    truth["frailty_category"] = pd.Series(
        np.array(FRAILTY_CATEGORIES, dtype=object)[pop.frailty], dtype=_STR
    )
    truth["date_of_death"] = _dates(pop.death)
    truth["registered_at_end"] = pop.reg_end == _NA
    truth["type1_optout"] = pop.type1
    truth["ndop"] = pop.ndop
    return SyntheticDrop(
        out,
        truth,
        seed,
        patients,
        cfg,
        {name: faults[name] for name in out},
        cfg.start,
        date.fromordinal(_EPOCH.toordinal() + w.end),
    )


def generate_dummy(
    *,
    fields: Mapping[str, Sequence[str]],
    patients: int,
    seed: int,
    config: SynthConfig | None = None,
) -> dict[str, pd.DataFrame]:
    """Dummy data for a project's approved fields only: the requested tables and columns,
    with the full generator's column names and dtypes, and no faults unless ``config``
    asks for them. Raises ``ValidationError`` naming unknown tables or columns."""
    errors: dict[str, list[str]] = {}
    for table, columns in fields.items():
        if table not in TABLE_SCHEMAS:
            errors[table] = ["unknown table"]
        elif unknown := [c for c in columns if c not in TABLE_SCHEMAS[table]]:
            errors[table] = [f"unknown column {column!r}" for column in unknown]
    if errors:
        raise ValidationError("dummy data asks for fields the dataset does not have", errors)
    cfg = config if config is not None else SynthConfig(faults=FaultRates.none())
    drop = generate(patients=patients, seed=seed, config=cfg, tables=list(fields))
    return {table: drop[table].loc[:, list(columns)].copy() for table, columns in fields.items()}


# ---------------------------------------------------------------------------------------
# Writing a drop
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` says: enough for ingestion to check and reconcile a drop."""

    seed: int
    patients: int
    start: date
    end: date
    files: Mapping[str, FileEntry]
    fault_rates: Mapping[str, float]
    faults: Mapping[str, Mapping[str, int]]
    generator: str = GENERATOR
    version: str = VERSION

    @property
    def total_rows(self) -> int:
        return sum(entry.rows for entry in self.files.values())

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.files.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "generator": self.generator,
            "version": self.version,
            "seed": self.seed,
            "patients": self.patients,
            "date_range": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "files": {name: asdict(entry) for name, entry in self.files.items()},
            "fault_rates": dict(self.fault_rates),
            "impossible_date_kinds": {t: f"{k}:{c}" for t, (k, c) in DATE_FAULTS.items()},
            "faults": {table: dict(counts) for table, counts in self.faults.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


MANIFEST: Final = "manifest.json"


def drop_files() -> tuple[str, ...]:
    """The file names a drop consists of (``manifest.json`` last)."""
    return (*(f"{name}.csv" for name in TABLES), MANIFEST)


def _write_csv(frame: pd.DataFrame, path: Path, header: bool) -> FileEntry:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            table = table.set_column(i, column.name, table.column(i).cast(pa.date32()))
    options = pa_csv.WriteOptions(
        include_header=header, quoting_style="needed" if header else "none"
    )
    pa_csv.write_csv(table, path, options)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return FileEntry(rows=len(frame), bytes=path.stat().st_size, sha256=digest.hexdigest())


def write_drop(tables: SyntheticDrop, out_dir: Path) -> Manifest:
    """Write each table as ``<name>.csv`` (``ndop.csv``: one NHS number per line, no header,
    as the national service sends it) and ``manifest.json`` into ``out_dir``, replacing
    files of the same names. Returns the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(tables, key=lambda name: -len(tables[name]))  # largest first: balance
    with ThreadPoolExecutor(max_workers=2) as pool:
        entries = dict(
            zip(
                names,
                pool.map(
                    lambda name: _write_csv(tables[name], out_dir / f"{name}.csv", name != "ndop"),
                    names,
                ),
                strict=True,
            )
        )
    manifest = Manifest(
        seed=tables.seed,
        patients=tables.patients,
        start=tables.start,
        end=tables.end,
        files={f"{name}.csv": entries[name] for name in TABLES if name in entries},
        fault_rates=asdict(tables.config.faults),
        faults=tables.faults,
    )
    (out_dir / MANIFEST).write_text(manifest.to_json())
    return manifest


# ---------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(row) for row in rows)]


def reference_tables_markdown() -> str:
    """The parameter tables of docs/synthetic-data.md, rendered from the constants (a test
    checks the document contains exactly this text, so the two cannot drift apart)."""

    def terms(mapping: Mapping[str, float]) -> str:
        return ", ".join(f"{name} {beta:+g}" for name, beta in mapping.items()) or ""

    lines = ["### Long-term conditions (prevalence models)", ""]
    lines += _table(
        ["condition", "SNOMED CT", "target", "of ages", "min age", "intercept", "age", "age²",
         "deprivation", "male", "latent", "smoker / ex", "BMI", "ethnicity", "also if"],
        [[c.name, c.snomed, f"{c.target:.1%}", f"{c.denominator_age}+", c.min_age, c.intercept,
          c.age, c.age2, c.deprivation, c.male, c.latent, f"{c.smoker:g} / {c.ex_smoker:g}",
          c.bmi, terms(c.ethnicity), terms(c.after) + (" (not with diabetes)" * bool(c.excludes))]
         for c in CONDITIONS],
    )  # fmt: skip
    lines += ["", "### Frailty deficits recorded by their own code", ""]
    lines += _table(["deficit", "SNOMED CT", "intercept"],
                    [[d.name, d.snomed, d.intercept] for d in DEFICITS])  # fmt: skip
    models = (EMERGENCY_ADMISSION_MODEL, AE_ATTENDANCE_MODEL, DEATH_MODEL)
    features = list(dict.fromkeys(name for m in models for name in m.coefficients))
    lines += ["", "### Known risk models (log-odds, or log-rate for A&E)", ""]
    lines += _table(
        ["feature", "emergency admission (logit)", "A&E attendances (log rate)", "death (logit)"],
        [["intercept", *(m.intercept for m in models)]]
        + [[name, *(m.coefficients.get(name, "") for m in models)] for name in features],
    )
    lines += ["", "### Faults (share of each table's rows, disjoint rows)", ""]
    rates = asdict(FaultRates())
    date_kinds = "; ".join(f"{t}: {k} ({c})" for t, (k, c) in DATE_FAULTS.items())
    unknown = "; ".join(
        f"{t}.{c} = {v}" for t, cols in UNKNOWN_CODES.items() for c, v in cols.items()
    )
    lines += _table(
        ["fault", "default rate", "where"],
        [["invalid_nhs_number", rates["invalid_nhs_number"],
          "every table but ndop: wrong check digit (60%), nine digits (20%), a letter O (20%)"],
         ["impossible_date", rates["impossible_date"], date_kinds],
         ["unknown_code", rates["unknown_code"], unknown],
         ["duplicate_row", rates["duplicate_row"], "all but ndop: an exact copy, next to it"]],
    )  # fmt: skip
    return "\n".join(lines) + "\n"
