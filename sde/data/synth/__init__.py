"""Synthetic linked ICS data: a pure, vectorised, deterministic generator.

``generate`` builds one *drop* (the tables a data controller would send, keyed by NHS
number) from a seed; ``write_drop`` writes it as source-format CSV files, ``ndop.csv``
and ``manifest.json``. Everything works on whole NumPy arrays: no per-person Python
loops, no Django, no settings.

The people are drawn from documented parameters (``docs/synthetic-data.md``, rendered from
the constants by ``reference_tables_markdown``): a prevalence model per condition, an
electronic-frailty-style deficit count, and three KNOWN risk models (emergency admission,
A&E attendance, death). ``SyntheticDrop.truth`` holds each person's true features and
probabilities so analyses can be checked against the truth; it is never written to the
drop.

Every drop carries data-quality faults at configured rates (``FaultRates``); the manifest
counts exactly what was injected, table by table, so ingestion can reconcile.

The files follow the source-format contract (``sde.data.source_format``), which owns the
tables, their columns and every code list; the generator imports them from there.

Modules: ``reference`` (parameters and codes), ``risk`` (the known risk models),
``config``, ``population``, ``tables``/``hospital``/``episodes`` (the table builders),
``faults``, ``drop`` (``generate``), ``io`` (``write_drop``, the manifest) and
``markdown``. This module is the public API; names with a leading underscore in the
modules are private to the package.
"""

from __future__ import annotations

# The contract's names, re-exported so ``synth.CODE_LISTS`` etc. keep working; new code
# imports them from sde.data.source_format.
from sde.data.source_format import (
    ADMISSION_METHODS,
    BMI,
    BNF_SECTIONS,
    CODE_LISTS,
    COMMUNITY_SERVICES,
    DIASTOLIC_BP,
    DISCHARGE_METHODS,
    HBA1C,
    ICD10_CODES,
    MH_SERVICES,
    NOT_STATED,
    PROVIDERS,
    SNOMED_CODES,
    SOCIAL_CARE_SERVICES,
    SPECIALTIES,
    SYSTOLIC_BP,
    TABLES,
    TYPE1_DISSENT,
)
from sde.data.synth.config import FaultRates, SynthConfig
from sde.data.synth.drop import SyntheticDrop, generate, generate_dummy
from sde.data.synth.faults import DATE_FAULTS, FAULT_KINDS, UNKNOWN_CODES
from sde.data.synth.io import MANIFEST, FileEntry, Manifest, drop_files, write_drop
from sde.data.synth.markdown import reference_tables_markdown
from sde.data.synth.nhs import generate_nhs_numbers, nhs_check_digits
from sde.data.synth.reference import (
    AE_DISPOSALS,
    AGE_BANDS,
    ANTIBIOTICS,
    BIPOLAR,
    CHEMOTHERAPY,
    CKD_STAGES,
    CONDITION_NAMES,
    CONDITIONS,
    DEFICIT_AGE,
    DEFICIT_DEPRIVATION,
    DEFICIT_LATENT,
    DEFICITS,
    EFI_DEFICITS,
    ELECTIVE_GENERIC,
    EMERGENCY_GENERIC,
    ETHNIC_GROUPS,
    ETHNICITY_ENGLAND,
    FRAILTY_CATEGORIES,
    GENERATOR,
    MATERNITY,
    OBESITY,
    OP_GENERIC,
    PLACES,
    REPEAT_DAYS,
    SMOKING,
    TABLE_SCHEMAS,
    TYPE1_DIABETES,
    VERSION,
    Condition,
    Deficit,
)
from sde.data.synth.risk import (
    AE_ATTENDANCE_MODEL,
    AE_BEFORE_ADMISSION,
    DEATH_MODEL,
    DIED_IN_HOSPITAL,
    EMERGENCY_ADMISSION_MODEL,
    EXTRA_EMERGENCY_ADMISSIONS,
    MODEL_AGE_BANDS,
    RiskModel,
    emergency_admission_probability,
    frailty_category,
    predict,
    risk_features,
)

__all__ = [
    "ADMISSION_METHODS",
    "AE_ATTENDANCE_MODEL",
    "AE_BEFORE_ADMISSION",
    "AE_DISPOSALS",
    "AGE_BANDS",
    "ANTIBIOTICS",
    "BIPOLAR",
    "BMI",
    "BNF_SECTIONS",
    "CHEMOTHERAPY",
    "CKD_STAGES",
    "CODE_LISTS",
    "COMMUNITY_SERVICES",
    "CONDITIONS",
    "CONDITION_NAMES",
    "DATE_FAULTS",
    "DEATH_MODEL",
    "DEFICITS",
    "DEFICIT_AGE",
    "DEFICIT_DEPRIVATION",
    "DEFICIT_LATENT",
    "DIASTOLIC_BP",
    "DIED_IN_HOSPITAL",
    "DISCHARGE_METHODS",
    "EFI_DEFICITS",
    "ELECTIVE_GENERIC",
    "EMERGENCY_ADMISSION_MODEL",
    "EMERGENCY_GENERIC",
    "ETHNICITY_ENGLAND",
    "ETHNIC_GROUPS",
    "EXTRA_EMERGENCY_ADMISSIONS",
    "FAULT_KINDS",
    "FRAILTY_CATEGORIES",
    "GENERATOR",
    "HBA1C",
    "ICD10_CODES",
    "MANIFEST",
    "MATERNITY",
    "MH_SERVICES",
    "MODEL_AGE_BANDS",
    "NOT_STATED",
    "OBESITY",
    "OP_GENERIC",
    "PLACES",
    "PROVIDERS",
    "REPEAT_DAYS",
    "SMOKING",
    "SNOMED_CODES",
    "SOCIAL_CARE_SERVICES",
    "SPECIALTIES",
    "SYSTOLIC_BP",
    "TABLES",
    "TABLE_SCHEMAS",
    "TYPE1_DIABETES",
    "TYPE1_DISSENT",
    "UNKNOWN_CODES",
    "VERSION",
    "Condition",
    "Deficit",
    "FaultRates",
    "FileEntry",
    "Manifest",
    "RiskModel",
    "SynthConfig",
    "SyntheticDrop",
    "drop_files",
    "emergency_admission_probability",
    "frailty_category",
    "generate",
    "generate_dummy",
    "generate_nhs_numbers",
    "nhs_check_digits",
    "predict",
    "reference_tables_markdown",
    "risk_features",
    "write_drop",
]
