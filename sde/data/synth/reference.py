"""The generator's documented parameters: age and ethnicity mixes, the condition and
frailty-deficit models, the codes the activity tables draw from, and each table's pandas
schema.

The source-format contract (``sde.data.source_format``) owns every code list and the
table schemas; this module only adds what the generator needs on top (which code a model
records, shares and weights). ``docs/synthetic-data.md`` renders the tables below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from sde.data.source_format import AE_DISPOSAL_CODES, TABLES, pandas_schema

GENERATOR: Final = "sde.data.synth"
VERSION: Final = "1.0.0"

# Share (%) of the registered population by five-year band at the extract date, 0-4 ...
# 85-89 and 90+: ONS mid-2021 England nudged towards GP lists (19% under 16, 18% 65+).
AGE_BANDS: Final = (
    5.6, 6.1, 6.2, 5.6, 6.0, 6.5, 6.8, 6.6, 6.2, 6.3, 6.8, 6.6, 5.7, 5.1, 5.1, 3.8, 2.7, 1.7, 1.1,
)  # fmt: skip

ETHNIC_GROUPS: Final = ("White", "Asian", "Black", "Mixed", "Other")
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
ETHNIC_TILT: Final = {
    "Asian": (0.9, 0.5), "Black": (1.0, 0.5), "Mixed": (0.6, 1.2), "Other": (0.7, 0.4),
    "White-other": (0.3, 0.4),
}  # fmt: skip
BMI_BY_GROUP: Final = {"Asian": -0.8, "Black": 1.2}

PLACES: Final = ("North Place", "South Place", "East Place", "West Place", "Central Place")


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

# Measurements (BMI, HBA1C, SYSTOLIC_BP, DIASTOLIC_BP) and TYPE1_DISSENT are named in the
# contract; these other GP codes only the generator records.
OBESITY: Final = "414916001"
SMOKING: Final = (("266919005", "never"), ("8517006", "ex"), ("77176002", "current"))

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
# (code, share of the attendances that do not end in admission), in the contract's order;
# "admitted" attendances are the emergency admissions that arrive through A&E.
AE_DISPOSALS: Final = tuple(
    zip(AE_DISPOSAL_CODES, (0.0, 0.62, 0.14, 0.12, 0.07, 0.05), strict=True)
)
# Outpatient treatment function codes by age group when not chosen by a condition.
OP_GENERIC: Final = {
    0: ("420", "120", "130"),
    1: ("100", "101", "110", "120", "130", "300", "301", "330", "410"),
    2: ("130", "110", "430", "101", "320", "100"),
}

# Column names and pandas dtypes of every table, as the contract types them.
TABLE_SCHEMAS: Final[Mapping[str, Mapping[str, str]]] = {
    table: pandas_schema(table) for table in TABLES
}
