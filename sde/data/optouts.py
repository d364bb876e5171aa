"""Patient opt-outs: the decision table, the treatment it gives an access request, and the
mask of rows an extract drops. Pure (pandas, pyarrow; no Django, no settings).

The table is data (``DecisionTable``), mirroring ``optouts.md`` row for row, so IG can
store it versioned and change its platform-policy cells as a new version. Everything fails
closed: a purpose or basis that is missing or not recognised gets both opt-outs applied.
Opt-outs never apply to direct care; the table is refused if it says otherwise.

``people_to_remove`` gives one dataset's rows to drop at provisioning (vectorised: one
arrow ``is_in`` per opt-out list); the count helpers report numbers only, never who was removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sde.exceptions import ValidationError


class Purpose(StrEnum):
    DIRECT_CARE = "direct_care"
    RESEARCH = "research"
    PLANNING = "planning"


class PurposeGroup(StrEnum):
    """The table's purpose column: research and planning share every row."""

    DIRECT_CARE = "direct_care"
    RESEARCH_OR_PLANNING = "research_or_planning"


class ConfidentialityBasis(StrEnum):
    S251_STANDARD = "s251_standard"
    S251_CAG_NDOP_EXEMPTION = "s251_cag_ndop_exemption"
    EXPLICIT_CONSENT = "explicit_consent"
    COPI_REG3 = "copi_reg3"
    LEGAL_REQUIREMENT = "legal_requirement"
    OVERRIDING_PUBLIC_INTEREST = "overriding_public_interest"
    NOT_CONFIDENTIAL = "not_confidential"
    UNKNOWN = "unknown"  # never has a row: it always fails closed


class OptOutKind(StrEnum):
    NDOP = "ndop"
    TYPE1 = "type1"


class Application(StrEnum):
    """One cell of the table. ``treatment_for`` resolves the last four to applied or not:
    from the recorded Caldicott decision, the IG platform policy, or the evidence recorded
    on the request (CAG letter, legal instrument)."""

    APPLIED = "applied"
    NOT_APPLIED = "not_applied"
    CONSENTED_ONLY = "consented_only"  # not applied for consented people, applied otherwise
    CASE_BY_CASE = "case_by_case"  # Type 1 only: the recorded Caldicott decision
    PLATFORM_POLICY = "platform_policy"  # "applied (platform policy)": IG-owned config
    APPLIED_UNLESS_CAG_LETTER = "applied_unless_cag_letter"  # Type 1 only
    APPLIED_UNLESS_INSTRUMENT = "applied_unless_instrument"  # Type 1 only


PolicyKey: TypeAlias = tuple[ConfidentialityBasis, OptOutKind]
Ids: TypeAlias = Set[str] | pd.Series

_TYPE1_ONLY: Final = frozenset(
    {Application.CASE_BY_CASE, Application.APPLIED_UNLESS_CAG_LETTER,
     Application.APPLIED_UNLESS_INSTRUMENT}
)  # fmt: skip
_POLICY_VALUES: Final = frozenset({Application.APPLIED, Application.NOT_APPLIED})
BASIS_LABELS: Final = {
    ConfidentialityBasis.S251_STANDARD: "s251 support (Regulation 5 or 2), standard conditions",
    ConfidentialityBasis.S251_CAG_NDOP_EXEMPTION: "s251 support with a CAG exemption from NDOP",
    ConfidentialityBasis.EXPLICIT_CONSENT: "explicit consent covering this use",
    ConfidentialityBasis.COPI_REG3: "COPI Regulation 3",
    ConfidentialityBasis.LEGAL_REQUIREMENT: "a legal requirement",
    ConfidentialityBasis.OVERRIDING_PUBLIC_INTEREST: "overriding public interest",
    ConfidentialityBasis.NOT_CONFIDENTIAL: "not confidential patient information",
}
_KIND_LABELS: Final = {
    OptOutKind.NDOP: "National data opt-out",
    OptOutKind.TYPE1: "GP Type 1 opt-out (GP-sourced datasets)",
}


class DecisionTableError(ValidationError):
    """A decision table (or its JSON) is not valid; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid opt-out decision table: " + "; ".join(problems))
        self.problems = problems
        self.errors = {"decision_table": problems}


def _member(enum: type[StrEnum], value: Any, where: str) -> Any:
    try:
        return enum(value)
    except (ValueError, TypeError):
        allowed = ", ".join(m.value for m in enum)
        raise DecisionTableError([f"{where}: {value!r} is not one of {allowed}"]) from None


@dataclass(frozen=True)
class DecisionRow:
    """One row of the table; ``basis`` is None only for direct care (the spec's "—")."""

    purpose: PurposeGroup
    basis: ConfidentialityBasis | None
    ndop: Application
    type1: Application
    note: str = ""

    def __post_init__(self) -> None:
        # Coerce strings so a row built from stored values compares and hashes as enums.
        where = f"row {self.purpose}/{self.basis}"
        object.__setattr__(self, "purpose", _member(PurposeGroup, self.purpose, where))
        if self.basis is not None:
            object.__setattr__(self, "basis", _member(ConfidentialityBasis, self.basis, where))
        object.__setattr__(self, "ndop", _member(Application, self.ndop, f"{where} ndop"))
        object.__setattr__(self, "type1", _member(Application, self.type1, f"{where} type1"))
        if not isinstance(self.note, str):
            raise DecisionTableError([f"{where}: note must be text"])

    def cell(self, kind: OptOutKind) -> Application:
        return self.ndop if kind is OptOutKind.NDOP else self.type1


@dataclass(frozen=True)
class DecisionTable:
    """The whole table, as one version. ``platform_policy`` gives the value (applied or
    not applied) of each "applied (platform policy)" cell; a cell left out is applied."""

    version: int
    rows: tuple[DecisionRow, ...]
    platform_policy: Mapping[PolicyKey, Application]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        policy = {
            (_member(ConfidentialityBasis, b, "platform_policy"),
             _member(OptOutKind, k, f"platform_policy {b}")):
            _member(Application, v, f"platform_policy {b}/{k}")
            for (b, k), v in self.platform_policy.items()
        }  # fmt: skip
        problems = _problems(self.version, self.rows, policy)
        if problems:
            raise DecisionTableError(problems)
        for key in self.policy_cells():
            policy.setdefault(key, Application.APPLIED)  # IG's default, and fail-closed
        object.__setattr__(self, "platform_policy", MappingProxyType(policy))

    def policy_cells(self) -> list[PolicyKey]:
        return [
            (row.basis, kind)
            for row in self.rows
            for kind in OptOutKind
            if row.basis is not None and row.cell(kind) is Application.PLATFORM_POLICY
        ]

    def row_for(
        self, group: PurposeGroup, basis: ConfidentialityBasis | None
    ) -> DecisionRow | None:
        """The row for ``group``/``basis`` (None if there is none: the caller fails closed);
        direct care has one row whatever the basis."""
        for row in self.rows:
            if row.purpose is group and (group is PurposeGroup.DIRECT_CARE or row.basis is basis):
                return row
        return None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that ``decision_table_from_json`` reads back to an equal table."""
        policy: dict[str, dict[str, str]] = {}
        for (basis, kind), value in self.platform_policy.items():
            policy.setdefault(basis.value, {})[kind.value] = value.value
        return {
            "version": self.version,
            "rows": [
                {"purpose": r.purpose.value, "basis": r.basis.value if r.basis else None,
                 "ndop": r.ndop.value, "type1": r.type1.value, "note": r.note}
                for r in self.rows
            ],
            "platform_policy": policy,
        }  # fmt: skip


def _problems(
    version: object, rows: tuple[DecisionRow, ...], policy: Mapping[PolicyKey, Application]
) -> list[str]:
    problems: list[str] = []
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(f"version must be a whole number from 1, not {version!r}")
    care = [r for r in rows if r.purpose is PurposeGroup.DIRECT_CARE]
    if len(care) != 1:
        problems.append(f"there must be exactly one direct care row, not {len(care)}")
    for row in care:
        if row.basis is not None:
            problems.append("the direct care row applies whatever the basis: basis must be null")
        if (row.ndop, row.type1) != (Application.NOT_APPLIED, Application.NOT_APPLIED):
            problems.append("opt-outs never apply to direct care: both cells must be not_applied")
    seen: set[ConfidentialityBasis] = set()
    for row in rows:
        if row.purpose is PurposeGroup.DIRECT_CARE:
            continue
        name = f"row research_or_planning/{row.basis}"
        if row.basis is None or row.basis is ConfidentialityBasis.UNKNOWN:
            problems.append(f"{name}: needs a known basis (unknown always fails closed)")
            continue
        if row.basis in seen:
            problems.append(f"{name}: appears more than once")
        seen.add(row.basis)
        if row.ndop in _TYPE1_ONLY:
            problems.append(f"{name}: {row.ndop} is only allowed in the type1 column")
        cells = {row.ndop, row.type1}
        if Application.CONSENTED_ONLY in cells and not cells <= {
            Application.CONSENTED_ONLY, Application.NOT_APPLIED
        }:  # fmt: skip
            problems.append(f"{name}: consented_only can only be paired with itself or not_applied")
    missing = set(ConfidentialityBasis) - {ConfidentialityBasis.UNKNOWN} - seen
    if missing:
        problems.append("no research_or_planning row for " + ", ".join(sorted(missing)))
    policy_cells = {
        (row.basis, kind)
        for row in rows
        for kind in OptOutKind
        if row.cell(kind) is Application.PLATFORM_POLICY
    }
    for (basis, kind), value in policy.items():
        if (basis, kind) not in policy_cells:
            problems.append(f"platform_policy {basis}/{kind}: not a platform_policy cell")
        elif value not in _POLICY_VALUES:
            problems.append(f"platform_policy {basis}/{kind}: must be applied or not_applied")
    return problems


_ROW_KEYS: Final = frozenset({"purpose", "basis", "ndop", "type1", "note"})
_TOP_KEYS: Final = frozenset({"version", "rows", "platform_policy"})


def decision_table_from_json(data: Mapping[str, Any]) -> DecisionTable:
    """Read a table stored by ``DecisionTable.to_json``; raise ``DecisionTableError``
    naming every unknown key or value, missing field, and broken table rule."""
    if not isinstance(data, Mapping):
        raise DecisionTableError(["the table must be a JSON object"])
    problems = [f"unknown key {k!r}" for k in sorted(set(data) - _TOP_KEYS, key=str)]
    problems += [f"missing key {k!r}" for k in sorted(_TOP_KEYS - set(data))]
    rows, policy = data.get("rows", []), data.get("platform_policy", {})
    if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
        problems.append("rows must be a list of objects")
    if not isinstance(policy, Mapping) or not all(isinstance(v, Mapping) for v in policy.values()):
        problems.append('platform_policy must map each basis to {"ndop"|"type1": value}')
    if problems:
        raise DecisionTableError(problems)
    parsed: list[DecisionRow] = []
    for i, row in enumerate(rows):
        keys = [f"rows[{i}]: unknown key {k!r}" for k in sorted(set(row) - _ROW_KEYS, key=str)]
        keys += [f"rows[{i}]: missing key {k!r}" for k in sorted(_ROW_KEYS - set(row))]
        if keys:
            problems += keys
            continue
        try:
            parsed.append(DecisionRow(**row))
        except DecisionTableError as error:
            problems += [f"rows[{i}]: {p}" for p in error.problems]
    if problems:
        raise DecisionTableError(problems)
    flat = {(b, k): v for b, cells in policy.items() for k, v in cells.items()}
    return DecisionTable(version=data["version"], rows=tuple(parsed), platform_policy=flat)


_R, _A = PurposeGroup.RESEARCH_OR_PLANNING, Application
_B = ConfidentialityBasis
DEFAULT_DECISION_TABLE: Final = DecisionTable(
    version=1,
    rows=(
        DecisionRow(PurposeGroup.DIRECT_CARE, None, _A.NOT_APPLIED, _A.NOT_APPLIED,
                    "Opt-outs never apply to direct care."),
        DecisionRow(_R, _B.S251_STANDARD, _A.APPLIED, _A.APPLIED),
        DecisionRow(_R, _B.S251_CAG_NDOP_EXEMPTION, _A.NOT_APPLIED,
                    _A.APPLIED_UNLESS_CAG_LETTER, "The CAG letter is kept as evidence."),
        DecisionRow(_R, _B.EXPLICIT_CONSENT, _A.CONSENTED_ONLY, _A.CONSENTED_ONLY),
        DecisionRow(_R, _B.COPI_REG3, _A.NOT_APPLIED, _A.PLATFORM_POLICY,
                    "Communicable disease and public health."),
        DecisionRow(_R, _B.LEGAL_REQUIREMENT, _A.NOT_APPLIED, _A.APPLIED_UNLESS_INSTRUMENT),
        DecisionRow(_R, _B.OVERRIDING_PUBLIC_INTEREST, _A.NOT_APPLIED, _A.CASE_BY_CASE,
                    "Needs Caldicott Guardian sign-off."),
        DecisionRow(_R, _B.NOT_CONFIDENTIAL, _A.NOT_APPLIED, _A.PLATFORM_POLICY,
                    "Anonymised or aggregate data only."),
    ),
    platform_policy={
        (_B.COPI_REG3, OptOutKind.TYPE1): _A.APPLIED,
        (_B.NOT_CONFIDENTIAL, OptOutKind.TYPE1): _A.APPLIED,
    },
)  # fmt: skip


@dataclass(frozen=True)
class Treatment:
    """How one access request's extracts treat opt-outs. With ``consented_only`` the
    applied opt-outs are ignored for consented people only (see ``people_to_remove``)."""

    ndop_applied: bool
    type1_applied: bool
    consented_only: bool
    explanation: str
    table_version: int


def _enum_or_none(enum: type[StrEnum], value: Any) -> Any:
    try:
        return enum(value)
    except (ValueError, TypeError):
        return None


def _resolve(
    table: DecisionTable,
    row: DecisionRow,
    kind: OptOutKind,
    *,
    cag_letter: bool,
    instrument: bool,
    caldicott: str | None,
) -> tuple[bool, str]:
    """(applied, plain-English reason) for one cell; anything unrecognised is applied."""
    cell = row.cell(kind)
    if cell is Application.NOT_APPLIED:
        return False, "not applied"
    if cell is Application.CONSENTED_ONLY:
        return True, "not applied for people who consented; applied for everyone else"
    if cell is Application.PLATFORM_POLICY and row.basis is not None:
        policy = table.platform_policy.get((row.basis, kind), Application.APPLIED)
        return (
            policy is not Application.NOT_APPLIED,
            f"{policy.replace('_', ' ')} (platform policy)",
        )
    if cell is Application.APPLIED_UNLESS_CAG_LETTER:
        if cag_letter:
            return False, "not applied (the CAG letter disapplies it)"
        return True, "applied (the CAG letter does not disapply it)"
    if cell is Application.APPLIED_UNLESS_INSTRUMENT:
        if instrument:
            return False, "not applied (the legal instrument overrides it)"
        return True, "applied (the legal instrument does not override it)"
    if cell is Application.CASE_BY_CASE:
        if caldicott == Application.NOT_APPLIED:
            return False, "not applied (recorded Caldicott Guardian decision)"
        if caldicott == Application.APPLIED:
            return True, "applied (recorded Caldicott Guardian decision)"
        return True, "applied (no valid Caldicott Guardian decision is recorded: fail closed)"
    return True, "applied"


def treatment_for(
    table: DecisionTable,
    *,
    purpose: Purpose | str | None,
    basis: ConfidentialityBasis | str | None,
    cag_letter_disapplies_type1: bool = False,
    instrument_overrides_type1: bool = False,
    caldicott_type1_decision: str | None = None,
) -> Treatment:
    """The opt-out treatment the table gives a request's purpose and basis. A missing or
    unrecognised purpose or basis fails closed (both applied); direct care applies neither.
    The flags only matter in the cells that name them; a Caldicott decision is "applied"
    or "not_applied", and anything else (or none) counts as applied."""
    version = f"Decision table version {table.version}."
    known_purpose: Purpose | None = _enum_or_none(Purpose, purpose)
    known_basis: ConfidentialityBasis | None = _enum_or_none(ConfidentialityBasis, basis)
    if known_purpose is Purpose.DIRECT_CARE:  # never applied, whatever the table says
        explanation = f"Direct care: neither opt-out is applied. {version}"
        return Treatment(False, False, False, explanation, table.version)
    row = table.row_for(PurposeGroup.RESEARCH_OR_PLANNING, known_basis)
    if known_purpose is None or row is None or row.basis is None:
        what = "purpose" if known_purpose is None else "basis for setting aside confidentiality"
        explanation = (
            f"The {what} is missing or not recognised, so the national data opt-out and the "
            f"GP Type 1 opt-out are both applied (fail closed). {version}"
        )
        return Treatment(True, True, False, explanation, table.version)
    sentences = [f"{known_purpose.value.capitalize()} under {BASIS_LABELS[row.basis]}."]
    applied: dict[OptOutKind, bool] = {}
    for kind in OptOutKind:
        applied[kind], reason = _resolve(
            table, row, kind, cag_letter=cag_letter_disapplies_type1,
            instrument=instrument_overrides_type1, caldicott=caldicott_type1_decision,
        )  # fmt: skip
        sentences.append(f"{_KIND_LABELS[kind]}: {reason}.")
    sentences += [row.note, version] if row.note else [version]
    consented = Application.CONSENTED_ONLY in (row.ndop, row.type1)
    return Treatment(
        ndop_applied=applied[OptOutKind.NDOP],
        type1_applied=applied[OptOutKind.TYPE1],
        consented_only=consented,
        explanation=" ".join(sentences),
        table_version=table.version,
    )


def people_to_remove(
    *,
    person_ids: pd.Series,
    ndop: Ids,
    type1: Ids,
    treatment: Treatment,
    gp_sourced: bool,
    consented: Ids | None = None,
) -> pd.Series:
    """A boolean mask, aligned with ``person_ids`` (system pseudonyms, one per row of one
    dataset), of the rows to drop. NDOP applies to every dataset, Type 1 to GP-sourced ones
    only. A row with no pseudonym is dropped whenever an opt-out applies to the dataset,
    since it cannot be shown not to be opted out. With ``consented_only``, a person in
    ``consented`` is never dropped (no ``consented`` given: nobody is exempt)."""
    mask = pd.Series(False, index=person_ids.index, dtype=bool)
    applied = ((ndop, treatment.ndop_applied), (type1, treatment.type1_applied and gp_sourced))
    kinds = [ids for ids, on in applied if on]
    if not kinds:
        return mask
    for ids in kinds:
        mask |= _isin(person_ids, ids)
    if treatment.consented_only and consented is not None:
        mask &= ~_isin(person_ids, consented)
    mask |= person_ids.isna().to_numpy(dtype=bool)
    return mask


def _isin(values: pd.Series, ids: Ids) -> np.ndarray:
    """``values.isin(ids)`` as a NumPy array, missing values never matching. pandas'
    ``isin`` on arrow strings converts the value set one Python scalar at a time (seconds
    for a national opt-out list); arrow's ``is_in`` does it in one call."""
    haystack = pa.array(values, from_pandas=True)
    needles = pa.array(ids if isinstance(ids, pd.Series) else list(ids), from_pandas=True)
    if not (_is_text(haystack.type) and _is_text(needles.type)):
        # Not text (or empty/all missing, typed null): pandas is right, and fast enough.
        return (values.isin(ids) & values.notna()).to_numpy(dtype=bool)
    found = pc.is_in(haystack, value_set=needles.cast(haystack.type), skip_nulls=True)
    return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def removed_count(mask: pd.Series) -> int:
    """How many rows the mask drops."""
    return int(mask.sum())


def removed_people_count(removals: Iterable[tuple[pd.Series, pd.Series]]) -> int:
    """How many distinct people are dropped across (person_ids, mask) pairs, one per
    dataset of an extract; rows without a pseudonym are not people and are not counted."""
    dropped = [ids[mask.to_numpy(dtype=bool)].dropna() for ids, mask in removals]
    return int(pd.concat(dropped, ignore_index=True).nunique()) if dropped else 0
