"""Opt-out decision logic: every row of the spec's decision table (and each "unless",
Caldicott and fail-closed variant), IG platform policy, the table's JSON round-trip and
validation, and the vectorised mask of rows an extract drops."""

import copy
import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sde.data.optouts import (
    DEFAULT_DECISION_TABLE,
    Application,
    ConfidentialityBasis,
    DecisionRow,
    DecisionTable,
    DecisionTableError,
    OptOutKind,
    Purpose,
    PurposeGroup,
    Treatment,
    decision_table_from_json,
    people_to_remove,
    removed_count,
    removed_people_count,
    treatment_for,
)
from sde.exceptions import ValidationError

B = ConfidentialityBasis
RESEARCH_OR_PLANNING = (Purpose.RESEARCH, Purpose.PLANNING)

# optouts.md's decision table, transcribed: (purpose, basis, NDOP cell, Type 1 cell).
SPEC_ROWS = [
    ("direct_care", None, "not_applied", "not_applied"),
    ("research_or_planning", "s251_standard", "applied", "applied"),
    ("research_or_planning", "s251_cag_ndop_exemption", "not_applied", "applied_unless_cag_letter"),
    ("research_or_planning", "explicit_consent", "consented_only", "consented_only"),
    ("research_or_planning", "copi_reg3", "not_applied", "platform_policy"),
    ("research_or_planning", "legal_requirement", "not_applied", "applied_unless_instrument"),
    ("research_or_planning", "overriding_public_interest", "not_applied", "case_by_case"),
    ("research_or_planning", "not_confidential", "not_applied", "platform_policy"),
]

# (basis, treatment_for flags, expected (ndop_applied, type1_applied, consented_only)) for
# research and for planning alike.
RESEARCH_CASES: list[tuple[Any, dict[str, Any], tuple[bool, bool, bool]]] = [
    (B.S251_STANDARD, {}, (True, True, False)),
    (B.S251_CAG_NDOP_EXEMPTION, {}, (False, True, False)),
    (B.S251_CAG_NDOP_EXEMPTION, {"cag_letter_disapplies_type1": True}, (False, False, False)),
    (B.EXPLICIT_CONSENT, {}, (True, True, True)),
    (B.COPI_REG3, {}, (False, True, False)),
    (B.LEGAL_REQUIREMENT, {}, (False, True, False)),
    (B.LEGAL_REQUIREMENT, {"instrument_overrides_type1": True}, (False, False, False)),
    (B.OVERRIDING_PUBLIC_INTEREST, {}, (False, True, False)),
    (B.OVERRIDING_PUBLIC_INTEREST, {"caldicott_type1_decision": "applied"}, (False, True, False)),
    (
        B.OVERRIDING_PUBLIC_INTEREST,
        {"caldicott_type1_decision": "not_applied"},
        (False, False, False),
    ),
    (B.OVERRIDING_PUBLIC_INTEREST, {"caldicott_type1_decision": "maybe"}, (False, True, False)),
    (B.NOT_CONFIDENTIAL, {}, (False, True, False)),
    (B.UNKNOWN, {}, (True, True, False)),
    (None, {}, (True, True, False)),
    ("s251", {}, (True, True, False)),  # not a basis at all
    ("s251_standard", {}, (True, True, False)),  # stored string values work too
]
ALL_FLAGS = {
    "cag_letter_disapplies_type1": True,
    "instrument_overrides_type1": True,
    "caldicott_type1_decision": "not_applied",
}


def applied(treatment: Treatment) -> tuple[bool, bool, bool]:
    return treatment.ndop_applied, treatment.type1_applied, treatment.consented_only


def test_default_table_mirrors_every_row_of_the_spec() -> None:
    rows = DEFAULT_DECISION_TABLE.to_json()["rows"]

    assert [(r["purpose"], r["basis"], r["ndop"], r["type1"]) for r in rows] == SPEC_ROWS
    assert DEFAULT_DECISION_TABLE.version == 1
    assert dict(DEFAULT_DECISION_TABLE.platform_policy) == {
        (B.COPI_REG3, OptOutKind.TYPE1): Application.APPLIED,
        (B.NOT_CONFIDENTIAL, OptOutKind.TYPE1): Application.APPLIED,
    }


@pytest.mark.parametrize("purpose", RESEARCH_OR_PLANNING)
@pytest.mark.parametrize(("basis", "flags", "expected"), RESEARCH_CASES)
def test_treatment_for_research_and_planning_follows_the_table(
    purpose: Purpose, basis: Any, flags: dict[str, Any], expected: tuple[bool, bool, bool]
) -> None:
    treatment = treatment_for(DEFAULT_DECISION_TABLE, purpose=purpose, basis=basis, **flags)

    assert applied(treatment) == expected
    assert treatment.table_version == 1


@pytest.mark.parametrize("basis", [*B, None, "nonsense"])
@pytest.mark.parametrize("flags", [{}, ALL_FLAGS])
def test_treatment_for_direct_care_applies_nothing_whatever_the_basis(
    basis: Any, flags: dict[str, Any]
) -> None:
    treatment = treatment_for(
        DEFAULT_DECISION_TABLE, purpose=Purpose.DIRECT_CARE, basis=basis, **flags
    )

    assert applied(treatment) == (False, False, False)
    assert "Direct care" in treatment.explanation


@pytest.mark.parametrize("purpose", [None, "", "marketing", "DIRECT_CARE"])
@pytest.mark.parametrize("basis", [B.S251_CAG_NDOP_EXEMPTION, B.NOT_CONFIDENTIAL, None])
def test_treatment_for_missing_or_unknown_purpose_applies_both(purpose: Any, basis: Any) -> None:
    treatment = treatment_for(DEFAULT_DECISION_TABLE, purpose=purpose, basis=basis, **ALL_FLAGS)

    assert applied(treatment) == (True, True, False)
    assert "fail closed" in treatment.explanation


@pytest.mark.parametrize(
    "basis",
    [B.S251_STANDARD, B.EXPLICIT_CONSENT, B.COPI_REG3, B.NOT_CONFIDENTIAL, B.UNKNOWN],
)
def test_treatment_for_unless_flags_only_change_the_cells_that_name_them(basis: B) -> None:
    plain = treatment_for(DEFAULT_DECISION_TABLE, purpose=Purpose.RESEARCH, basis=basis)
    flagged = treatment_for(
        DEFAULT_DECISION_TABLE, purpose=Purpose.RESEARCH, basis=basis, **ALL_FLAGS
    )

    assert applied(flagged) == applied(plain)


@pytest.mark.parametrize(
    ("basis", "flags", "words"),
    [
        (B.S251_CAG_NDOP_EXEMPTION, {}, "CAG letter is kept as evidence"),
        (B.S251_CAG_NDOP_EXEMPTION, {"cag_letter_disapplies_type1": True}, "disapplies it"),
        (B.LEGAL_REQUIREMENT, {"instrument_overrides_type1": True}, "overrides it"),
        (B.OVERRIDING_PUBLIC_INTEREST, {}, "no valid Caldicott Guardian decision"),
        (B.COPI_REG3, {}, "applied (platform policy)"),
        (B.EXPLICIT_CONSENT, {}, "not applied for people who consented"),
        (B.UNKNOWN, {}, "basis for setting aside confidentiality is missing"),
    ],
)
def test_treatment_explanation_says_why_in_plain_english(
    basis: B, flags: dict[str, Any], words: str
) -> None:
    treatment = treatment_for(
        DEFAULT_DECISION_TABLE, purpose=Purpose.PLANNING, basis=basis, **flags
    )

    assert words in treatment.explanation
    assert "Decision table version 1." in treatment.explanation


def test_treatment_is_frozen() -> None:
    treatment = treatment_for(DEFAULT_DECISION_TABLE, purpose="research", basis="copi_reg3")

    with pytest.raises(dataclasses.FrozenInstanceError):
        treatment.type1_applied = False  # type: ignore[misc]


def all_treatments(table: DecisionTable) -> dict[tuple[Any, ...], tuple[bool, bool, bool]]:
    return {
        (purpose, basis, json.dumps(flags)): applied(
            treatment_for(table, purpose=purpose, basis=basis, **flags)
        )
        for purpose in [*Purpose, None]
        for basis, flags, _ in RESEARCH_CASES
    }


@pytest.mark.parametrize(
    "flipped",
    [
        {B.COPI_REG3},
        {B.NOT_CONFIDENTIAL},
        {B.COPI_REG3, B.NOT_CONFIDENTIAL},
    ],
)
def test_platform_policy_change_flips_exactly_the_platform_policy_cells(
    flipped: set[B],
) -> None:
    policy = {
        (basis, OptOutKind.TYPE1): Application.NOT_APPLIED
        if basis in flipped
        else Application.APPLIED
        for basis in (B.COPI_REG3, B.NOT_CONFIDENTIAL)
    }
    table = dataclasses.replace(DEFAULT_DECISION_TABLE, version=2, platform_policy=policy)

    before, after = all_treatments(DEFAULT_DECISION_TABLE), all_treatments(table)

    changed = {key for key in before if before[key] != after[key]}
    expected = {key for key in before if key[0] in RESEARCH_OR_PLANNING and key[1] in flipped}
    assert changed == expected
    assert all(after[key] == (False, False, False) for key in changed)
    assert treatment_for(table, purpose="research", basis="copi_reg3").table_version == 2


def test_platform_policy_cell_left_out_is_applied() -> None:
    table = dataclasses.replace(DEFAULT_DECISION_TABLE, platform_policy={})

    assert dict(table.platform_policy) == dict(DEFAULT_DECISION_TABLE.platform_policy)
    treatment = treatment_for(table, purpose="research", basis="not_confidential")
    assert treatment.type1_applied is True


def test_platform_policy_cannot_be_changed_in_place() -> None:
    with pytest.raises(TypeError):
        DEFAULT_DECISION_TABLE.platform_policy[(B.COPI_REG3, OptOutKind.TYPE1)] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    "table",
    [
        DEFAULT_DECISION_TABLE,
        dataclasses.replace(
            DEFAULT_DECISION_TABLE,
            version=7,
            platform_policy={(B.COPI_REG3, OptOutKind.TYPE1): Application.NOT_APPLIED},
        ),
    ],
)
def test_decision_table_json_round_trip(table: DecisionTable) -> None:
    stored = json.loads(json.dumps(table.to_json()))

    restored = decision_table_from_json(stored)

    assert restored == table
    assert restored.to_json() == table.to_json()


def spec_json() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_DECISION_TABLE.to_json())


def rows_where(data: dict[str, Any], basis: str | None) -> dict[str, Any]:
    return next(row for row in data["rows"] if row["basis"] == basis)


def _set(path: str, value: Any) -> Any:
    """A mutation of the default table's JSON: "key", "basis.field" or "basis.-" (drop row)."""

    def mutate(data: dict[str, Any]) -> None:
        where, _, field = path.partition(".")
        if not field:
            data[where] = value
            return
        row = rows_where(data, None if where == "care" else where)
        if field == "-":
            data["rows"].remove(row)
        elif value is KeyError:
            del row[field]
        else:
            row[field] = value

    return mutate


def _without(key: str) -> Any:
    return lambda data: data.pop(key)


def _extra_row(row: dict[str, Any]) -> Any:
    return lambda data: data["rows"].append(row)


def _policy(policy: Any) -> Any:
    return _set("platform_policy", policy)


CARE = {"purpose": "direct_care", "basis": None, "ndop": "not_applied", "type1": "not_applied",
        "note": ""}  # fmt: skip
BAD_TABLES = [
    (_set("colour", "red"), "unknown key 'colour'"),
    (_without("version"), "missing key 'version'"),
    (_without("rows"), "missing key 'rows'"),
    (_set("rows", {"a": 1}), "rows must be a list of objects"),
    (_set("rows", ["x"]), "rows must be a list of objects"),
    (_policy(["copi_reg3"]), "platform_policy must map each basis"),
    (_set("version", 0), "version must be a whole number from 1"),
    (_set("version", "1"), "version must be a whole number from 1"),
    (_set("version", True), "version must be a whole number from 1"),
    (_set("copi_reg3.colour", "red"), "rows[4]: unknown key 'colour'"),
    (_set("copi_reg3.note", KeyError), "rows[4]: missing key 'note'"),
    (_set("copi_reg3.note", None), "note must be text"),
    (_set("copi_reg3.purpose", "marketing"), "'marketing' is not one of direct_care"),
    (_set("copi_reg3.basis", "copi"), "'copi' is not one of s251_standard"),
    (_set("copi_reg3.type1", "sometimes"), "'sometimes' is not one of applied"),
    (_set("copi_reg3.ndop", 1), "1 is not one of applied"),
    (_set("copi_reg3.-", None), "no research_or_planning row for copi_reg3"),
    (_set("copi_reg3.basis", "s251_standard"), "s251_standard: appears more than once"),
    (_set("copi_reg3.basis", "unknown"), "needs a known basis"),
    (_set("copi_reg3.basis", None), "needs a known basis"),
    (_set("copi_reg3.ndop", "case_by_case"), "case_by_case is only allowed in the type1"),
    (_set("s251_standard.ndop", "applied_unless_cag_letter"), "only allowed in the type1"),
    (_set("explicit_consent.type1", "applied"), "consented_only can only be paired"),
    (_set("care.ndop", "applied"), "opt-outs never apply to direct care"),
    (_set("care.type1", "platform_policy"), "opt-outs never apply to direct care"),
    (_set("care.basis", "s251_standard"), "basis must be null"),
    (_set("care.-", None), "exactly one direct care row, not 0"),
    (_extra_row(CARE), "exactly one direct care row, not 2"),
    (_policy({"s251_standard": {"type1": "applied"}}), "s251_standard/type1: not a platform"),
    (_policy({"copi_reg3": {"ndop": "applied"}}), "copi_reg3/ndop: not a platform_policy"),
    (_policy({"copi_reg3": {"type2": "applied"}}), "'type2' is not one of ndop, type1"),
    (_policy({"copi": {"type1": "applied"}}), "'copi' is not one of s251_standard"),
    (_policy({"copi_reg3": {"type1": "yes"}}), "'yes' is not one of applied"),
    (_policy({"copi_reg3": {"type1": "case_by_case"}}), "must be applied or not_applied"),
]


@pytest.mark.parametrize(("mutate", "message"), BAD_TABLES)
def test_decision_table_from_json_rejects_bad_tables_clearly(mutate: Any, message: str) -> None:
    data = spec_json()
    mutate(data)

    with pytest.raises(DecisionTableError) as raised:
        decision_table_from_json(data)

    assert message in str(raised.value)
    assert isinstance(raised.value, ValidationError)
    assert raised.value.errors["decision_table"] == raised.value.problems


def test_decision_table_from_json_reports_every_problem_at_once() -> None:
    data = spec_json()
    data["rows"][1]["ndop"] = "maybe"
    data["rows"][2]["type1"] = "perhaps"

    with pytest.raises(DecisionTableError) as raised:
        decision_table_from_json(data)

    assert [p.split(":")[0] for p in raised.value.problems] == ["rows[1]", "rows[2]"]


def test_decision_table_from_json_rejects_a_non_object() -> None:
    with pytest.raises(DecisionTableError, match="must be a JSON object"):
        decision_table_from_json([])  # type: ignore[arg-type]


def test_decision_table_constructor_validates_too() -> None:
    care = DecisionRow(PurposeGroup.DIRECT_CARE, None, Application.APPLIED, Application.APPLIED)

    with pytest.raises(DecisionTableError, match="never apply to direct care"):
        dataclasses.replace(DEFAULT_DECISION_TABLE, rows=(care, *DEFAULT_DECISION_TABLE.rows[1:]))


# --- people_to_remove -----------------------------------------------------------------

# Rows of one dataset, keyed by system pseudonym: "n" has an NDOP opt-out, "t" a Type 1
# opt-out, "nt" both, "c" consented with both, "x" neither; "n" appears twice.
IDS = pd.Series(["n", "t", "nt", "c", "x", "n"], index=[10, 11, 12, 13, 14, 15])
NDOP = {"n", "nt", "c"}
TYPE1 = {"t", "nt", "c"}
CONSENTED = {"c", "x"}


def remove(basis: Any, *, gp_sourced: bool, purpose: str = "research", **kwargs: Any) -> list[str]:
    treatment = treatment_for(DEFAULT_DECISION_TABLE, purpose=purpose, basis=basis)
    mask = people_to_remove(
        person_ids=IDS, ndop=NDOP, type1=TYPE1, treatment=treatment, gp_sourced=gp_sourced,
        **kwargs,
    )  # fmt: skip
    assert mask.dtype == bool
    assert mask.index.equals(IDS.index)
    return IDS[mask].tolist()


@pytest.mark.parametrize("gp_sourced", [True, False])
def test_ndop_removes_from_every_dataset(gp_sourced: bool) -> None:
    removed = remove(B.S251_STANDARD, gp_sourced=gp_sourced)

    assert {"n", "nt", "c"} <= set(removed)
    assert removed.count("n") == 2


def test_type1_removes_only_from_gp_sourced_datasets() -> None:
    assert remove(B.COPI_REG3, gp_sourced=True) == ["t", "nt", "c"]
    assert remove(B.COPI_REG3, gp_sourced=False) == []
    assert remove(B.S251_STANDARD, gp_sourced=True) == ["n", "t", "nt", "c", "n"]
    assert remove(B.S251_STANDARD, gp_sourced=False) == ["n", "nt", "c", "n"]


@pytest.mark.parametrize("gp_sourced", [True, False])
@pytest.mark.parametrize("consented", [CONSENTED, pd.Series(sorted(CONSENTED))])
def test_consent_exempts_consented_people_only(gp_sourced: bool, consented: Any) -> None:
    removed = remove(B.EXPLICIT_CONSENT, gp_sourced=gp_sourced, consented=consented)

    assert "c" not in removed
    assert removed == (["n", "t", "nt", "n"] if gp_sourced else ["n", "nt", "n"])


def test_consent_with_no_consented_people_given_exempts_nobody() -> None:
    assert remove(B.EXPLICIT_CONSENT, gp_sourced=True) == ["n", "t", "nt", "c", "n"]


def test_consented_people_are_not_exempt_under_other_bases() -> None:
    assert "c" in remove(B.S251_STANDARD, gp_sourced=True, consented=CONSENTED)


@pytest.mark.parametrize("gp_sourced", [True, False])
@pytest.mark.parametrize("basis", [*B, None])
def test_direct_care_removes_nobody(gp_sourced: bool, basis: Any) -> None:
    assert remove(basis, gp_sourced=gp_sourced, purpose="direct_care") == []


def test_opt_outs_given_as_series_work_like_sets() -> None:
    treatment = treatment_for(DEFAULT_DECISION_TABLE, purpose="planning", basis="s251_standard")

    mask = people_to_remove(
        person_ids=IDS, ndop=pd.Series(sorted(NDOP)), type1=pd.Series(sorted(TYPE1)),
        treatment=treatment, gp_sourced=True,
    )  # fmt: skip

    assert IDS[mask].tolist() == ["n", "t", "nt", "c", "n"]


@pytest.mark.parametrize(
    ("basis", "gp_sourced", "missing_removed"),
    [
        (B.S251_STANDARD, False, True),
        (B.COPI_REG3, True, True),
        (B.COPI_REG3, False, False),  # no opt-out applies to this dataset
        (B.EXPLICIT_CONSENT, True, True),
    ],
)
def test_rows_without_a_pseudonym_are_removed_when_an_opt_out_applies(
    basis: B, gp_sourced: bool, missing_removed: bool
) -> None:
    ids = pd.Series(["x", None, np.nan])
    treatment = treatment_for(DEFAULT_DECISION_TABLE, purpose="research", basis=basis)

    mask = people_to_remove(
        person_ids=ids, ndop={"n"}, type1={"t"}, treatment=treatment, gp_sourced=gp_sourced,
        consented=pd.Series(["x", None]),
    )  # fmt: skip

    assert mask.tolist() == [False, missing_removed, missing_removed]


@pytest.mark.parametrize(
    ("ids", "ndop", "expected"),
    [
        (pd.Series(["n", "x", None], dtype=object), {"n"}, [True, False, True]),
        (pd.Series(["n", "x", None], dtype=object), set(), [False, False, True]),
        (pd.Series(["n", "x", None]), pd.Series([], dtype=object), [False, False, True]),
        (pd.Series([None, None], dtype=object), {"n"}, [True, True]),
        (pd.Series([], dtype="str"), {"n"}, []),
        (pd.Series([1, 2]), {"1"}, [False, False]),  # not text: nothing matches a string
    ],
)
def test_people_to_remove_handles_any_dtype_and_empty_lists(
    ids: pd.Series, ndop: Any, expected: list[bool]
) -> None:
    treatment = treatment_for(DEFAULT_DECISION_TABLE, purpose="research", basis="s251_standard")

    mask = people_to_remove(
        person_ids=ids, ndop=ndop, type1=set(), treatment=treatment, gp_sourced=False
    )

    assert mask.tolist() == expected


def test_people_to_remove_is_vectorised_over_a_million_rows() -> None:
    n = np.arange(1_000_000)
    ids = pd.Series(n).astype(str)
    ndop, type1 = set(ids[n % 7 == 0]), pd.Series(ids[n % 11 == 0])
    consented = set(ids[n % 13 == 0])
    treatment = treatment_for(DEFAULT_DECISION_TABLE, purpose="research", basis="explicit_consent")

    mask = people_to_remove(
        person_ids=ids, ndop=ndop, type1=type1, treatment=treatment, gp_sourced=True,
        consented=consented,
    )  # fmt: skip

    expected = ((n % 7 == 0) | (n % 11 == 0)) & (n % 13 != 0)
    assert np.array_equal(mask.to_numpy(), expected)
    assert removed_count(mask) == int(expected.sum())


def test_removed_counts_report_rows_and_distinct_people_across_datasets() -> None:
    treatment = treatment_for(DEFAULT_DECISION_TABLE, purpose="research", basis="s251_standard")
    events = pd.Series(["n", "n", "t", "x", None])
    spells = pd.Series(["n", "nt", "x"])
    masks = [
        people_to_remove(person_ids=ids, ndop=NDOP, type1=TYPE1, treatment=treatment,
                         gp_sourced=gp)
        for ids, gp in ((events, True), (spells, False))
    ]  # fmt: skip

    assert [removed_count(mask) for mask in masks] == [4, 2]
    assert removed_people_count(zip([events, spells], masks, strict=True)) == 3  # n, t, nt
    assert removed_people_count([]) == 0
    assert isinstance(removed_people_count(zip([events], masks[:1], strict=True)), int)
