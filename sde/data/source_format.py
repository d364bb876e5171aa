"""The source-format contract: what a drop's files must look like to be ingested.

One folder per drop: ``<table>.csv`` for every table below (UTF-8, comma-separated, a
header row, ISO ``YYYY-MM-DD`` dates, ``true``/``false`` booleans, empty = missing) and
``ndop.csv``, one NHS number per line and no header, as the national opt-out service
sends it. ``validation`` checks files against this module; the catalogue is seeded from
it (descriptions and sensitivities); the synthetic generator writes to it.

Pure data: no Django, no settings. This module is the one definition of the tables, their
columns and the code lists: ``sde.data.synth`` imports them from here (its pandas dtypes
are ``pandas_schema``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

TABLES: Final = tuple(
    "patients gp_events gp_medications apc_spells ae_attendances op_appointments "
    "community_contacts mh_contacts social_care ndop".split()
)
PEOPLE_TABLE: Final = "patients"
PERSON_LEVEL_TABLES: Final = ("patients",)
# Type 1 opt-outs apply to GP-sourced data.
GP_SOURCED_TABLES: Final = ("patients", "gp_events", "gp_medications")
# Tables whose rows must belong to a person in the patients table. The opt-out list is
# not one of them: an opt-out applies whether or not the person is in this drop.
ACTIVITY_TABLES: Final = tuple(t for t in TABLES if t not in ("patients", "ndop"))
HEADERLESS_TABLES: Final = ("ndop",)

LOGICAL_TYPES: Final = ("nhs_number", "date", "str", "code", "int", "float", "bool")
# The pandas dtype of each logical type in a validated (clean) frame; "str" is pandas'
# default string dtype.
PANDAS_DTYPES: Final[Mapping[str, str]] = {
    "nhs_number": "str", "date": "datetime64[s]", "str": "str", "code": "str",
    "int": "int64", "float": "float64", "bool": "bool",
}  # fmt: skip
SENSITIVITIES: Final = ("identifier", "quasi_identifier", "sensitive", "standard")
BOOL_VALUES: Final[Mapping[str, bool]] = {"true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True)
class Column:
    """One column of a source table. ``required``: an empty value quarantines the row."""

    type: str
    description: str
    sensitivity: str
    required: bool = True


_ID, _QI, _SENS, _STD = SENSITIVITIES
_NHS = Column("nhs_number", "NHS number (10 digits, Modulus 11); pseudonymised at ingestion", _ID)


def _episode(service: str, sensitivity: str, contacts: bool) -> dict[str, Column]:
    columns = {
        "nhs_number": _NHS,
        "start_date": Column("date", "Date the episode of care or service started", _STD),
        "end_date": Column(
            "date", "Date it ended; empty while it is still open", _STD, required=False
        ),
        "service_type": Column("code", f"{service} service (local code list)", sensitivity),
    }
    if contacts:
        columns["contacts"] = Column("int", "Number of contacts in the episode", _STD)
    return columns


COLUMNS: Final[Mapping[str, Mapping[str, Column]]] = {
    "patients": {
        "nhs_number": _NHS,
        "date_of_birth": Column("date", "Date of birth (generalised to month at ingestion)", _QI),
        "sex": Column("code", "Sex: M, F, I (indeterminate) or U (not known)", _QI),
        "ethnicity": Column("str", 'Ethnic category (ONS 2021, "Group: category") or "Not stated"',
                            _SENS),
        "lsoa_code": Column("str", "Lower layer super output area of residence (2021)", _QI),
        "imd_decile": Column("int", "Index of Multiple Deprivation decile (1 = most deprived)",
                             _QI),
        "practice_ods": Column("str", "ODS code of the registered GP practice", _QI),
        "pcn_code": Column("str", "ODS code of the practice's primary care network", _QI),
        "place": Column("str", "ICS Place of the practice", _STD),
        "registration_start": Column("date", "Date of registration with the practice", _QI),
        "registration_end": Column("date", "Date registration ended; empty if still registered",
                                   _QI, required=False),
        "date_of_death": Column("date", "Date of death; empty if alive", _QI, required=False),
    },
    "gp_events": {
        "nhs_number": _NHS,
        "date": Column("date", "Date the event was recorded", _STD),
        "snomed_code": Column("code", "SNOMED CT concept: diagnosis, observation or finding",
                              _SENS),
        "value": Column("float", "Numeric value (BMI, HbA1c mmol/mol, blood pressure mmHg)",
                        _SENS, required=False),
    },
    "gp_medications": {
        "nhs_number": _NHS,
        "date": Column("date", "Date the prescription was issued", _STD),
        "bnf_chapter": Column("code", "BNF chapter (2 digits)", _SENS),
        "bnf_section": Column("code", "BNF section (4 digits)", _SENS),
    },
    "apc_spells": {
        "nhs_number": _NHS,
        "admission_date": Column("date", "Date of admission", _STD),
        "discharge_date": Column("date", "Date of discharge", _STD),
        "admission_method": Column("code", "elective, emergency or maternity", _STD),
        "primary_diagnosis_icd10": Column("code", "Primary diagnosis (ICD-10, 4 characters)",
                                          _SENS),
        "provider": Column("code", "ODS code of the acute trust", _STD),
        "discharge_method": Column("code", "discharged or died", _SENS),
        "cost": Column("int", "Cost of the spell (GBP, national tariff estimate)", _STD),
    },
    "ae_attendances": {
        "nhs_number": _NHS,
        "arrival_date": Column("date", "Date of arrival at A&E", _STD),
        "disposal": Column("code", "How the attendance ended (admitted, discharged ...)", _STD),
        "provider": Column("code", "ODS code of the acute trust", _STD),
        "cost": Column("int", "Cost of the attendance (GBP)", _STD),
    },
    "op_appointments": {
        "nhs_number": _NHS,
        "date": Column("date", "Date of the appointment", _STD),
        "specialty": Column("code", "Treatment function code of the clinic", _SENS),
        "attended": Column("bool", "Whether the patient attended", _STD),
        "cost": Column("int", "Cost of the appointment (GBP; 0 if not attended)", _STD),
    },
    "community_contacts": _episode("Community health", _STD, contacts=True),
    "mh_contacts": _episode("Mental health", _SENS, contacts=True),
    "social_care": _episode("Adult social care", _SENS, contacts=False),
    "ndop": {
        "nhs_number": Column("nhs_number", "NHS number of a person with a national data opt-out",
                             _ID),
    },
}  # fmt: skip
TABLE_SCHEMAS: Final[Mapping[str, Mapping[str, str]]] = {
    table: {name: column.type for name, column in columns.items()}
    for table, columns in COLUMNS.items()
}
TABLE_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "patients": "Registered population: one row per person, from GP registrations",
    "gp_events": "Coded GP events: diagnoses, observations and measurements (SNOMED CT)",
    "gp_medications": "GP prescription issues by BNF section",
    "apc_spells": "Admitted patient care: one row per hospital spell",
    "ae_attendances": "Accident and emergency attendances",
    "op_appointments": "Outpatient appointments",
    "community_contacts": "Community health services: episodes of care",
    "mh_contacts": "Mental health services: episodes of care",
    "social_care": "Adult social care services",
    "ndop": "National data opt-out list (NHS numbers)",
}
# The date a table's rows are "about" (quality report date range); None: no dates.
MAIN_DATE: Final[Mapping[str, str | None]] = {
    "patients": "registration_start", "gp_events": "date", "gp_medications": "date",
    "apc_spells": "admission_date", "ae_attendances": "arrival_date", "op_appointments": "date",
    "community_contacts": "start_date", "mh_contacts": "start_date", "social_care": "start_date",
    "ndop": None,
}  # fmt: skip

# ---------------------------------------------------------------------------------------
# Code lists (the synthetic generator draws from these; its models name the codes they record)
# ---------------------------------------------------------------------------------------

SNOMED_CODES: Final[tuple[str, ...]] = (
    # Long-term conditions: hypertension, diabetes, asthma, COPD, learning disability, AF,
    # CHD, stroke, CKD, heart failure, cancer, depression, SMI, dementia, osteoarthritis,
    # anxiety, alcohol dependence, drug dependence, prediabetes.
    "38341003", "44054006", "195967001", "13645005", "110359009", "49436004", "53741008",
    "230690007", "709044004", "84114007", "363346000", "35489007", "58214004", "52448006",
    "396275006", "197480006", "7200002", "75544000", "714628002",
    # Type 1 diabetes, bipolar disorder, CKD stages 3, 4 and 5.
    "46635009", "13746004", "433144002", "431857002", "433146000",
    # Frailty deficits: falls, dizziness, dyspnoea, hearing impairment, visual impairment,
    # urinary incontinence, osteoporosis, peripheral vascular disease, parkinsonism,
    # thyroid disease, weight loss, anaemia, peptic ulcer, sleep disturbance, social
    # vulnerability, fragility fracture, hypotension, urinary system disease, memory
    # impairment.
    "1912002", "404640003", "267036007", "15188001", "397540003", "165232002", "64859006",
    "400047006", "49049000", "40930008", "89362005", "271737000", "13200003", "193462001",
    "105529008", "5913000", "45007003", "68566005", "386807006",
    # BMI, HbA1c (IFCC), systolic BP, diastolic BP, obesity, never/ex/current smoker,
    # Type 1 opt-out (dissent from secondary use of GP data).
    "60621009", "999791000000106", "72313002", "1091811000000102", "414916001", "266919005",
    "8517006", "77176002", "827241000000103",
)  # fmt: skip
BMI: Final = "60621009"
HBA1C: Final = "999791000000106"  # IFCC, mmol/mol
SYSTOLIC_BP: Final = "72313002"
DIASTOLIC_BP: Final = "1091811000000102"
TYPE1_DISSENT: Final = "827241000000103"

BNF_SECTIONS: Final = tuple(
    "0103 0202 0204 0205 0206 0208 0209 0212 0301 0302 0401 0402 0403 0407 0408 0409 0410 0411 "
    "0501 0601 0602 0606 0803 1001".split()
)
ICD10_CODES: Final[tuple[str, ...]] = tuple(
    "E119 J459 J441 G409 I489 I219 I639 N189 I509 C809 F329 F209 F03X F102 F112 Z511 O800 "
    "O820 O821 J069 J219 A099 R509 S099 R074 R104 K358 N390 J189 S8260 R55X S720 R296 J353 "
    "K409 K802 M234 N979 H251 M171 K573".split()
)
ADMISSION_METHODS: Final = ("elective", "emergency", "maternity")
DISCHARGE_METHODS: Final = ("discharged", "died")
PROVIDERS: Final = ("R9A", "R9B", "R9C", "R9D", "R9E")  # synthetic acute trusts, one per Place
AE_DISPOSAL_CODES: Final = (
    "admitted", "discharged", "gp_follow_up", "referred_to_clinic", "left_before_treatment",
    "transferred",
)  # fmt: skip
SPECIALTIES: Final = tuple(
    "100 101 110 120 130 300 301 307 320 330 340 361 370 410 420 430 501 502".split()
)
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
# Every valid value of each coded column of the activity tables.
CODE_LISTS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "gp_events": {"snomed_code": SNOMED_CODES},
    "gp_medications": {"bnf_chapter": tuple(dict.fromkeys(s[:2] for s in BNF_SECTIONS)),
                       "bnf_section": BNF_SECTIONS},
    "apc_spells": {"primary_diagnosis_icd10": ICD10_CODES, "admission_method": ADMISSION_METHODS,
                   "discharge_method": DISCHARGE_METHODS, "provider": PROVIDERS},
    "ae_attendances": {"disposal": AE_DISPOSAL_CODES, "provider": PROVIDERS},
    "op_appointments": {"specialty": SPECIALTIES},
    "community_contacts": {"service_type": COMMUNITY_SERVICES},
    "mh_contacts": {"service_type": MH_SERVICES},
    "social_care": {"service_type": SOCIAL_CARE_SERVICES},
}  # fmt: skip
# M and F as the generator writes them; I (indeterminate) and U (not known) as the NHS
# Data Dictionary allows, so a real feed's unknowns are not quarantined.
SEXES: Final = ("M", "F", "I", "U")
NOT_STATED: Final = "Not stated"
# CODE_LISTS plus the patients table's coded column: what ingestion checks codes against.
CODED_COLUMNS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    **CODE_LISTS,
    "patients": {"sex": SEXES},
}

# ---------------------------------------------------------------------------------------
# Plausibility rules
# ---------------------------------------------------------------------------------------

# (earlier, later, reason): the later date may equal the earlier one, never precede it.
DATE_ORDER: Final[Mapping[str, tuple[tuple[str, str, str], ...]]] = {
    "patients": (
        ("date_of_birth", "registration_start", "before_birth"),
        ("date_of_birth", "date_of_death", "before_birth"),
        ("registration_start", "registration_end", "end_before_start"),
    ),
    "apc_spells": (("admission_date", "discharge_date", "end_before_start"),),
    "community_contacts": (("start_date", "end_date", "end_before_start"),),
    "mh_contacts": (("start_date", "end_date", "end_before_start"),),
    "social_care": (("start_date", "end_date", "end_before_start"),),
}
# No real record predates this; earlier dates are typing errors or placeholders.
EARLIEST_DATE: Final = date(1900, 1, 1)
# Activity dated up to this many days after death is accepted (a discharge or a record
# made the day after); later activity is quarantined as after_death.
DEATH_GRACE_DAYS: Final = 1

_ANY: Final = (-math.inf, math.inf)
# Inclusive (low, high) for numeric columns; columns not listed accept any finite value.
VALUE_RANGES: Final[Mapping[str, Mapping[str, tuple[float, float]]]] = {
    "patients": {"imd_decile": (1, 10)},
    "apc_spells": {"cost": (0, math.inf)},
    "ae_attendances": {"cost": (0, math.inf)},
    "op_appointments": {"cost": (0, math.inf)},
    "community_contacts": {"contacts": (0, math.inf)},
    "mh_contacts": {"contacts": (0, math.inf)},
}
# Plausible gp_events values by SNOMED code; other codes accept any value.
MEASUREMENT_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    BMI: (10, 90),
    HBA1C: (15, 200),
    SYSTOLIC_BP: (50, 260),
    DIASTOLIC_BP: (20, 160),
}
DEFAULT_MEASUREMENT_RANGE: Final = _ANY


def required_columns(table: str) -> tuple[str, ...]:
    """The columns of ``table`` that may not be empty."""
    return tuple(name for name, column in COLUMNS[table].items() if column.required)


def pandas_schema(table: str) -> dict[str, str]:
    """Column -> pandas dtype of ``table`` as a validated frame holds it (an optional int
    or bool column would be nullable: ``Int64``, ``boolean``)."""
    nullable = {"int": "Int64", "bool": "boolean"}
    return {
        name: nullable.get(column.type, PANDAS_DTYPES[column.type])
        if not column.required
        else PANDAS_DTYPES[column.type]
        for name, column in COLUMNS[table].items()
    }
