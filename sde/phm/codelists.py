"""The codelist library: canonical, versioned definitions of conditions, measurements and
frailty deficits (reference/phm-analytics.md, "Canonical variables (codelists)").

A ``Codelist`` is literal data: SNOMED CT concepts matched exactly in
``gp_events.snomed_code``, ICD-10 prefixes matched against
``apc_spells.primary_diagnosis_icd10`` and BNF sections matched exactly in
``gp_medications.bnf_section``. Analyses refer to a list by id and record the version they
used (``{id: version}``); a list that changes gets a new version and its old one moves to
``HISTORY``, so an old result can always name what it counted.

Policy:
- Condition lists are diagnoses (SNOMED CT, plus ICD-10 where a hospital primary
  diagnosis identifies the condition); medicines are separate ``med_*`` lists, because a
  prescription is not a diagnosis (ACE inhibitors treat hypertension, heart failure and
  CKD alike).
- Related codes a condition should count are in its list: type 1 diabetes in diabetes,
  bipolar disorder in SMI, the CKD stage codes in CKD.
- Osteoarthritis has no ICD-10 codes: hospital M15-M19 spells are joint surgery for a
  diagnosis the GP record holds, and counting them would add people on the strength of
  an elective procedure code. Learning disability uses F70-F79, never epilepsy (G40),
  though an emergency admission of a person with a learning disability is often one.

The helpers are vectorised (``isin`` on the codes, prefix matching done once on the
distinct codes) for extracts of a million people.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final

import pandas as pd

from sde.phm.frames import AnalysisInputError, Frames


@dataclass(frozen=True)
class Codelist:
    """One version of a canonical definition (see the module docstring for matching)."""

    id: str
    version: int
    name: str
    description: str
    snomed: frozenset[str] = frozenset()
    icd10: tuple[str, ...] = ()
    bnf_sections: frozenset[str] = frozenset()

    @property
    def tables(self) -> tuple[str, ...]:
        """The source tables this list reads, in a fixed order."""
        used = (("gp_events", self.snomed), ("apc_spells", self.icd10),
                ("gp_medications", self.bnf_sections))  # fmt: skip
        return tuple(table for table, codes in used if codes)


def _c(
    id: str, name: str, description: str, snomed: str = "", icd10: str = "", bnf: str = "",
    version: int = 1,
) -> Codelist:  # fmt: skip
    return Codelist(id=id, version=version, name=name, description=description,
                    snomed=frozenset(snomed.split()), icd10=tuple(icd10.split()),
                    bnf_sections=frozenset(bnf.split()))  # fmt: skip


_CONDITIONS: Final = (
    _c("hypertension", "Hypertension", "Diagnosed hypertension (not raised readings alone)",
       "38341003", "I10 I11 I12 I13 I15"),
    _c("diabetes", "Diabetes mellitus", "Diabetes of any type, including type 1",
       "44054006 46635009", "E10 E11 E12 E13 E14"),
    _c("type1_diabetes", "Type 1 diabetes", "Type 1 diabetes mellitus", "46635009", "E10"),
    _c("prediabetes", "Non-diabetic hyperglycaemia", "Prediabetes (non-diabetic "
       "hyperglycaemia) recorded as a diagnosis; see also the hba1c list", "714628002",
       "R730 R731"),
    _c("asthma", "Asthma", "Asthma", "195967001", "J45 J46"),
    _c("copd", "COPD", "Chronic obstructive pulmonary disease", "13645005", "J43 J44"),
    _c("learning_disability", "Learning disability", "Learning disability", "110359009",
       "F70 F71 F72 F73 F78 F79"),
    _c("atrial_fibrillation", "Atrial fibrillation", "Atrial fibrillation or flutter",
       "49436004", "I48"),
    _c("chd", "Coronary heart disease", "Coronary (ischaemic) heart disease", "53741008",
       "I20 I21 I22 I23 I24 I25"),
    _c("stroke", "Stroke", "Stroke (haemorrhagic, ischaemic or unspecified)", "230690007",
       "I60 I61 I63 I64"),
    _c("ckd", "Chronic kidney disease", "Chronic kidney disease, including stages 3 to 5",
       "709044004 433144002 431857002 433146000", "N18"),
    _c("ckd_stage_4_5", "CKD stage 4-5", "Chronic kidney disease stage 4 or 5",
       "431857002 433146000", "N184 N185"),
    _c("heart_failure", "Heart failure", "Heart failure", "84114007", "I50"),
    _c("cancer", "Cancer", "Malignant neoplasm", "363346000", "C"),
    _c("depression", "Depression", "Depressive episode or recurrent depression", "35489007",
       "F32 F33"),
    _c("anxiety", "Anxiety", "Anxiety disorder", "197480006", "F40 F41"),
    _c("smi", "Severe mental illness", "Schizophrenia, bipolar disorder and other psychoses",
       "58214004 13746004", "F20 F21 F22 F23 F24 F25 F28 F29 F30 F31"),
    _c("dementia", "Dementia", "Dementia", "52448006", "F00 F01 F02 F03 G30"),
    _c("osteoarthritis", "Osteoarthritis", "Osteoarthritis (GP diagnosis; see module notes)",
       "396275006"),
    _c("alcohol_dependence", "Alcohol dependence", "Alcohol dependence syndrome", "7200002",
       "F102"),
    _c("drug_dependence", "Drug dependence", "Dependence on opioids or other drugs (not "
       "alcohol or tobacco)", "75544000", "F112 F122 F132 F142 F152 F162 F182 F192"),
    _c("obesity", "Obesity (coded)", "Obesity recorded as a diagnosis; see also the bmi list",
       "414916001", "E66"),
)  # fmt: skip
_MEASUREMENTS: Final = (
    _c("bmi", "Body mass index", "BMI observation (kg/m2)", "60621009"),
    _c("hba1c", "HbA1c", "Haemoglobin A1c, IFCC (mmol/mol)", "999791000000106"),
    _c("systolic_bp", "Systolic blood pressure", "Systolic blood pressure (mmHg)", "72313002"),
    _c("diastolic_bp", "Diastolic blood pressure", "Diastolic blood pressure (mmHg)",
       "1091811000000102"),
)  # fmt: skip
# eFI deficits recorded by their own code (the others count through a condition list).
_EFI_CODES: Final = (
    ("falls", "Falls", "1912002"), ("dizziness", "Dizziness", "404640003"),
    ("dyspnoea", "Dyspnoea", "267036007"), ("hearing_impairment", "Hearing impairment", "15188001"),
    ("visual_impairment", "Visual impairment", "397540003"),
    ("urinary_incontinence", "Urinary incontinence", "165232002"),
    ("osteoporosis", "Osteoporosis", "64859006"),
    ("peripheral_vascular_disease", "Peripheral vascular disease", "400047006"),
    ("parkinsonism", "Parkinsonism and tremor", "49049000"),
    ("thyroid_disease", "Thyroid disease", "40930008"),
    ("weight_loss", "Weight loss and anorexia", "89362005"),
    ("anaemia", "Anaemia and haematinic deficiency", "271737000"),
    ("peptic_ulcer", "Peptic ulcer", "13200003"),
    ("sleep_disturbance", "Sleep disturbance", "193462001"),
    ("social_vulnerability", "Social vulnerability", "105529008"),
    ("fragility_fracture", "Fragility fracture", "5913000"),
    ("hypotension", "Hypotension and syncope", "45007003"),
    ("urinary_system_disease", "Urinary system disease", "68566005"),
    ("memory_impairment", "Memory impairment", "386807006"),
)  # fmt: skip
_EFI: Final = tuple(
    _c(f"efi_{key}", name, f"eFI deficit: {name.lower()}", code) for key, name, code in _EFI_CODES
)
_MEDICINES: Final = (
    _c("med_antihypertensives", "Antihypertensives", "Diuretics, beta-blockers, "
       "renin-angiotensin drugs, nitrates and calcium-channel blockers",
       bnf="0202 0204 0205 0206"),
    _c("med_lipid_regulating", "Lipid-regulating drugs", "Statins and other lipid-regulating "
       "drugs", bnf="0212"),
    _c("med_antidiabetics", "Drugs used in diabetes", "Insulins and antidiabetic drugs",
       bnf="0601"),
    _c("med_respiratory", "Inhaled respiratory drugs", "Bronchodilators and respiratory "
       "corticosteroids", bnf="0301 0302"),
    _c("med_antipsychotics", "Antipsychotics", "Antipsychotic drugs", bnf="0402"),
    _c("med_antidepressants", "Antidepressants", "Antidepressant drugs", bnf="0403"),
)  # fmt: skip
_PROCEDURES: Final = (
    _c("chemotherapy_admission", "Chemotherapy admission",
       "Admitted spell for a chemotherapy session (ICD-10 Z51.1)", icd10="Z511"),
)  # fmt: skip

LIBRARY: Final[Mapping[str, Codelist]] = MappingProxyType(
    {c.id: c for c in (*_CONDITIONS, *_MEASUREMENTS, *_EFI, *_MEDICINES, *_PROCEDURES)}
)
# Earlier versions, id -> older versions (oldest first); empty until a list changes.
HISTORY: Final[Mapping[str, tuple[Codelist, ...]]] = MappingProxyType({})

# The 36 deficits of the electronic frailty index (Clegg et al. 2016) -> the lists that
# count for each. The eight with no list are not recorded as codes in this environment
# (polypharmacy is a count of medicines, not a code); they still count in the denominator.
EFI_DEFICITS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "activity_limitation": (), "anaemia": ("efi_anaemia",), "arthritis": ("osteoarthritis",),
    "atrial_fibrillation": ("atrial_fibrillation",), "cerebrovascular": ("stroke",),
    "ckd": ("ckd",), "diabetes": ("diabetes",), "dizziness": ("efi_dizziness",),
    "dyspnoea": ("efi_dyspnoea",), "falls": ("efi_falls",), "foot_problems": (),
    "fragility_fracture": ("efi_fragility_fracture",),
    "hearing_impairment": ("efi_hearing_impairment",), "heart_failure": ("heart_failure",),
    "heart_valve_disease": (), "housebound": (), "hypertension": ("hypertension",),
    "hypotension": ("efi_hypotension",), "ischaemic_heart_disease": ("chd",),
    "memory_and_cognition": ("dementia", "efi_memory_impairment"),
    "mobility_and_transfer_problems": (), "osteoporosis": ("efi_osteoporosis",),
    "parkinsonism": ("efi_parkinsonism",), "peptic_ulcer": ("efi_peptic_ulcer",),
    "peripheral_vascular_disease": ("efi_peripheral_vascular_disease",), "polypharmacy": (),
    "requirement_for_care": (), "respiratory": ("asthma", "copd"),
    "skin_ulcer": (), "sleep_disturbance": ("efi_sleep_disturbance",),
    "social_vulnerability": ("efi_social_vulnerability",),
    "thyroid_disease": ("efi_thyroid_disease",),
    "urinary_incontinence": ("efi_urinary_incontinence",),
    "urinary_system_disease": ("efi_urinary_system_disease",),
    "visual_impairment": ("efi_visual_impairment",), "weight_loss": ("efi_weight_loss",),
})  # fmt: skip


def get(codelist_id: str, *, version: int | None = None) -> Codelist:
    """The current version of ``codelist_id`` (or the given ``version`` of it);
    AnalysisInputError naming the id (and version) if the library has no such list."""
    current = LIBRARY.get(codelist_id)
    if current is None:
        raise AnalysisInputError(f"unknown codelist {codelist_id!r}")
    if version is None or version == current.version:
        return current
    for older in HISTORY.get(codelist_id, ()):
        if older.version == version:
            return older
    raise AnalysisInputError(f"codelist {codelist_id!r} has no version {version}")


# table -> (code column, date column); apc_spells codes match by ICD-10 prefix.
_SOURCES: Final = {
    "gp_events": ("snomed_code", "date"),
    "apc_spells": ("primary_diagnosis_icd10", "admission_date"),
    "gp_medications": ("bnf_section", "date"),
}


def _codes_for(codelist: Codelist, table: str) -> frozenset[str] | tuple[str, ...]:
    if table == "gp_events":
        return codelist.snomed
    if table == "apc_spells":
        return codelist.icd10
    return codelist.bnf_sections


def _matches(codes: pd.Series, wanted: frozenset[str] | tuple[str, ...], prefix: bool) -> pd.Series:
    """Boolean mask of ``codes`` in ``wanted`` (or starting with one of its prefixes).
    Prefixes are matched once on the distinct codes, then looked up with ``isin``."""
    if prefix:
        distinct = pd.Series(codes.dropna().unique()).astype("str")
        wanted = frozenset(distinct[distinct.str.startswith(tuple(wanted))])
    return codes.isin(list(wanted))


def _matching_rows(
    frames: Frames, codelist: Codelist, *, start: date | None, end: date | None,
    need_dates: bool, value: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """``person_id`` and ``date`` (and ``value``) of every row with a code of the list in
    the window, from each table the list uses that the extract has."""
    tables = ("gp_events",) if value else codelist.tables
    parts, problems = [], []
    for table in tables:
        code_column, date_column = _SOURCES[table]
        needed = ["person_id", code_column]
        if need_dates:
            needed.append(date_column)
        if value:
            needed.append("value")
        frame = frames.get(table)
        if frame is None:
            problems.append(f"the {table} table")
            continue
        if missing := [c for c in needed if c not in frame.columns]:
            problems.append(f"{', '.join(missing)} in the {table} table")
            continue
        mask = _matches(frame[code_column], _codes_for(codelist, table), table == "apc_spells")
        if start is not None:
            mask &= frame[date_column] >= pd.Timestamp(start)
        if end is not None:
            mask &= frame[date_column] <= pd.Timestamp(end)
        columns = {"person_id": frame["person_id"]}
        if need_dates:
            columns["date"] = frame[date_column]
        if value:
            columns["value"] = frame["value"]
        parts.append(pd.DataFrame(columns).loc[mask])
    if not tables:
        raise AnalysisInputError(f"codelist {codelist.id!r} has no codes")
    if not parts:
        raise AnalysisInputError(
            f"codelist {codelist.id!r} needs {' or '.join(problems)}, which the extract lacks"
        )
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _resolve(codelist: Codelist | str) -> Codelist:
    return get(codelist) if isinstance(codelist, str) else codelist


def people_with(
    frames: Frames, codelist: Codelist | str, *, start: date | None = None, end: date | None = None
) -> pd.Index:
    """Distinct person_ids (sorted) with any code of the list dated ``start`` to ``end``
    inclusive (None: open), from whichever of the list's tables the extract has.
    AnalysisInputError if it has none of them (or lacks their columns)."""
    codelist = _resolve(codelist)
    rows = _matching_rows(frames, codelist, start=start, end=end,
                          need_dates=start is not None or end is not None)  # fmt: skip
    people = pd.unique(rows["person_id"].to_numpy())
    return pd.Index(people, name="person_id").sort_values()


def first_dates(frames: Frames, codelist: Codelist | str, *, end: date | None = None) -> pd.Series:
    """Per person_id, the earliest date of a code of the list up to ``end`` inclusive
    (people with none are absent)."""
    codelist = _resolve(codelist)
    rows = _matching_rows(frames, codelist, start=None, end=end, need_dates=True)
    return rows.groupby("person_id", sort=True)["date"].min().rename(codelist.id)


def event_counts(
    frames: Frames, codelist: Codelist | str, *, start: date | None = None, end: date | None = None
) -> pd.Series:
    """Per person_id, the number of rows with a code of the list dated ``start`` to ``end``
    inclusive, over the list's tables the extract has (people with none are absent)."""
    codelist = _resolve(codelist)
    rows = _matching_rows(frames, codelist, start=start, end=end,
                          need_dates=start is not None or end is not None)  # fmt: skip
    return rows["person_id"].value_counts().sort_index().rename(codelist.id)


def latest_values(
    frames: Frames,
    codelist: Codelist | str,
    *,
    end: date | None = None,
    start: date | None = None,
) -> pd.Series:
    """Per person_id, the value of the latest ``gp_events`` row with a code of the list
    and a value, dated ``start`` (None: open) to ``end`` inclusive (people with none are
    absent). Of several readings on the latest day, the one later in the table wins."""
    codelist = _resolve(codelist)
    if not codelist.snomed:
        raise AnalysisInputError(f"codelist {codelist.id!r} has no GP codes to take values from")
    rows = _matching_rows(frames, codelist, start=start, end=end, need_dates=True, value=True)
    rows = rows.loc[rows["value"].notna()].sort_values("date", kind="stable")
    latest = rows.drop_duplicates("person_id", keep="last").set_index("person_id")["value"]
    return latest.sort_index().astype("float64").rename(codelist.id)
