"""The table rules T1-T3, D1-D3, S1, E1, P1, O1 at their boundaries, counting people.

Tables are built as the environment builds them: ``count_table`` / ``magnitude_table`` on
person-level rows (or a ``ResultTable`` by hand for the other statistics), written with
``to_csv(index=False)`` and ``json.dumps(sidecar)``, and read back with ``read_table`` and
``table_evidence``. Per-cell evidence the builders do not write yet ("quantiles",
"modes", "extremes") is added to the sidecar cells where ``table_evidence`` reads it.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import pytest

from outputs.sdc import tables
from outputs.sdc.evidence import TableEvidence, load_sidecar, read_table, table_evidence
from outputs.sdc.policy import PRESETS, Policy
from outputs.sdc.results import Finding, Status
from sde.phm.evidence import ResultTable, count_table, magnitude_table

NAME = "table.csv"
ACRO = PRESETS["acro-default"]


# --- Building tables the way the environment does ---------------------------------------
def published(
    result: ResultTable,
    *,
    cells: Sequence[Mapping[str, Any]] | None = None,
    sidecar: Callable[[dict[str, Any]], None] | None = None,
) -> TableEvidence:
    """``result`` as the checker reads it. ``cells[i]``: extra evidence merged into the
    sidecar's cell ``i`` (e.g. ``{"modes": {"mode_x": {"distinct": 1}}}``)."""
    data = result.frame.to_csv(index=False).encode()
    written = json.loads(json.dumps(result.sidecar(extract="ext-1")))
    for cell, extra in zip(written["cells"], cells or [], strict=False):
        cell.update(extra)
    if sidecar is not None:
        sidecar(written)
    evidence = load_sidecar(json.dumps(written, indent=1).encode(), NAME)
    return table_evidence(read_table(data, NAME), evidence, NAME)


def person_rows(cells: Mapping[tuple[str, ...], int], by: Sequence[str]) -> pd.DataFrame:
    """``cells[key]`` distinct people, one row each, in the group ``key`` of ``by``."""
    keys = [key for key, n in cells.items() for _ in range(n)]
    return pd.DataFrame(
        {"person_id": [f"p{i:03d}" for i in range(len(keys))],
         **{d: [k[i] for k in keys] for i, d in enumerate(by)}}
    )  # fmt: skip


def crosstab(cells: Mapping[tuple[str, str], int]) -> TableEvidence:
    rows = person_rows(cells, ("sex", "outcome"))
    return published(count_table(rows, name="t", title="t", by=["sex", "outcome"]))


def contributions(values: Sequence[tuple[str, float]], group: str = "A") -> pd.DataFrame:
    """Person-level rows ``(person, value)``; a person may have several."""
    return pd.DataFrame({"person_id": [p for p, _ in values], "place": group,
                         "cost": [v for _, v in values]})  # fmt: skip


def magnitudes(rows: pd.DataFrame, statistic: str = "sum") -> TableEvidence:
    result = magnitude_table(rows, name="cost", title="Cost", by=["place"], value="cost",
                             statistic=statistic)  # fmt: skip
    return published(result)


def by_hand(
    kind: str, values: Sequence[float | None], persons: Sequence[int | None], column: str = "x"
) -> ResultTable:
    """A one-statistic table over groups g0, g1, ... with its person counts."""
    frame = pd.DataFrame({"group": [f"g{i}" for i in range(len(values))], column: values})
    return ResultTable(
        name="t", title="t", frame=frame, dimensions=("group",), statistics={column: kind},
        persons=pd.DataFrame({column: pd.array(persons, dtype="Int64")}, index=frame.index),
    )  # fmt: skip


def of(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


# --- T1 threshold --------------------------------------------------------------------------
@pytest.mark.parametrize(("persons", "fails"), [(9, True), (10, False), (11, False)])
def test_threshold_fails_below_ten_people(persons, fails):
    table = crosstab({("F", "y"): persons, ("M", "y"): 20})

    found = tables.threshold(table, ACRO)

    if fails:
        [finding] = found
        assert (finding.status, finding.row, finding.column) == (Status.FAIL, 0, "people")
        assert finding.cell == {"sex": "F", "outcome": "y"}
        assert finding.evidence == {"persons": persons, "threshold": 10}
        assert "people" in finding.message and str(persons) in finding.message
    else:
        assert found == []


@pytest.mark.parametrize(
    ("people", "rows_each", "fails"),
    [(1, 10, True), (9, 2, True), (10, 1, False), (5, 4, True)],
    ids=["one-person-ten-rows", "nine-people-eighteen-rows", "ten-people", "five-by-four"],
)  # fmt: skip
def test_threshold_counts_people_not_rows(people, rows_each, fails):
    rows = pd.DataFrame({"person_id": [f"p{i}" for i in range(people) for _ in range(rows_each)],
                         "sex": "F"})  # fmt: skip
    table = published(count_table(rows, name="t", title="t", by=["sex"]))

    found = tables.threshold(table, ACRO)

    assert [f.evidence["persons"] for f in found] == ([people] if fails else [])


@pytest.mark.parametrize(
    ("preset", "persons", "fails"),
    [("datashield-3", 2, True), ("datashield-3", 3, False),
     ("opensafely-7-5", 7, True), ("opensafely-7-5", 8, False)],
)  # fmt: skip
def test_threshold_follows_the_policy(preset, persons, fails):
    table = crosstab({("F", "y"): persons, ("M", "y"): 20})

    assert bool(tables.threshold(table, PRESETS[preset])) is fails


@pytest.mark.parametrize(
    "kind",
    ["median", "percentile", "mode", "min", "max", "std", "rate", "proportion", "ratio",
     "ci_lower", "ci_upper"],
)  # fmt: skip
def test_threshold_applies_to_every_statistic_about_a_group(kind):
    table = published(by_hand(kind, [4.5, 6.0], [9, 10]))

    assert [(f.row, f.column) for f in tables.threshold(table, ACRO)] == [(0, "x")]


def test_threshold_applies_to_the_people_behind_a_magnitude():
    rows = contributions([(f"p{i}", 100.0) for i in range(9)])

    found = tables.threshold(magnitudes(rows), ACRO)

    assert sorted(f.column for f in found) == ["people", "sum_cost"]


@pytest.mark.parametrize("kind", ["coefficient", "statistic"])
def test_threshold_leaves_model_outputs_to_the_model_rules(kind):
    table = published(by_hand(kind, [0.3], [2]))

    assert tables.threshold(table, ACRO) == []


def test_a_zero_cell_is_for_the_zeros_rule_not_the_threshold():
    result = by_hand("count", [25, 0], [25, 0], column="people")

    found = tables.check_table(published(result), ACRO)

    assert of(found, "T1") == []
    assert [(f.rule, f.row) for f in of(found, "T2")] == [("T2", 1)]


def test_a_cell_without_person_evidence_is_for_review():
    def drop(sidecar: dict[str, Any]) -> None:
        del sidecar["cells"][1]["persons"]

    table = published(by_hand("count", [25, 30], [25, 30], column="people"), sidecar=drop)

    [finding] = tables.threshold(table, ACRO)

    assert (finding.status, finding.row, finding.column) == (Status.REVIEW, 1, "people")
    assert finding.evidence == {"persons": None, "threshold": 10}
    assert "people" in finding.message


def test_a_blank_cell_is_not_published_so_the_threshold_leaves_it_to_the_audit():
    """A cell the researcher left blank is suppressed: whether the published totals give
    it back is X1's question (tests/unit/outputs/sdc/test_check.py), not T1's."""
    table = published(by_hand("count", [None, 40.0], [4, 40], column="people"))

    assert tables.threshold(table, ACRO) == []


@pytest.mark.parametrize("kind", ["count", "std", "median", "mode", "max"])
def test_a_cell_unpublished_with_its_evidence_breaks_no_rule(kind):
    """Mitigation blanks a cell and its evidence; the re-run must then see nothing."""

    def unpublish(sidecar: dict[str, Any]) -> None:
        sidecar["cells"][0]["persons"]["x"] = None

    safe = {"quantiles": {"x": {"below": 20, "above": 19}}, "modes": {"x": {"distinct": 5}},
            "extremes": {"x": {"safe": 1}}}  # fmt: skip
    table = published(by_hand(kind, [None, 40.0], [4, 40]), cells=[{}, safe], sidecar=unpublish)

    assert tables.check_table(table, ACRO) == []


# --- T2 zeros ------------------------------------------------------------------------------
def test_an_explicit_zero_fails_naming_the_cell():
    frame = pd.DataFrame({"sex": ["F", "F", "M", "M"], "outcome": ["n", "y", "n", "y"],
                          "people": [11, 12, 0, 15]})  # fmt: skip
    result = ResultTable(name="t", title="t", frame=frame, dimensions=("sex", "outcome"),
                         statistics={"people": "count"}, persons=frame[["people"]])  # fmt: skip

    [finding] = tables.zeros(published(result), ACRO)

    assert (finding.rule, finding.status, finding.row, finding.column) == (
        "T2", Status.FAIL, 2, "people",
    )  # fmt: skip
    assert finding.cell == {"sex": "M", "outcome": "n"}
    assert finding.evidence == {"count": 0}
    assert "people" in finding.message


def test_a_combination_the_table_leaves_out_is_an_implicit_zero_and_fails():
    """A reader infers the zero; ACRO's crosstab shows it as 0 and fails it, and so must
    we (a structural zero is the researcher's exception to file)."""
    table = crosstab({("F", "n"): 11, ("F", "y"): 12, ("M", "y"): 15})

    [finding] = tables.zeros(table, ACRO)

    assert (finding.rule, finding.status, finding.row) == ("T2", Status.FAIL, None)
    assert finding.column == "people"
    assert finding.cell == {"sex": "M", "outcome": "n"}
    assert finding.evidence == {"count": 0, "implicit": True}
    assert "structural zero" in finding.message


def test_a_complete_table_has_no_implicit_zeros():
    table = crosstab({("F", "n"): 11, ("F", "y"): 12, ("M", "n"): 10, ("M", "y"): 15})

    assert tables.zeros(table, ACRO) == []


def test_a_one_dimension_table_has_no_implicit_zeros():
    table = published(count_table(person_rows({("F",): 11, ("M",): 12}, ("sex",)),
                                  name="t", title="t", by=["sex"]))  # fmt: skip

    assert tables.zeros(table, ACRO) == []


def test_zeros_are_not_findings_when_the_policy_says_they_are_not_disclosive():
    frame = pd.DataFrame({"sex": ["F", "M", "M"], "outcome": ["y", "n", "y"],
                          "people": [12, 0, 15]})  # fmt: skip
    result = ResultTable(name="t", title="t", frame=frame, dimensions=("sex", "outcome"),
                         statistics={"people": "count"}, persons=frame[["people"]])  # fmt: skip
    policy = Policy(zeros_disclosive=False)

    assert tables.zeros(published(result), policy) == []  # explicit (M, n) and implicit (F, n)


# --- T3 class disclosure -------------------------------------------------------------------
def test_a_group_all_in_one_category_is_for_review():
    # Every man has outcome y; everyone with outcome n is a woman.
    table = crosstab({("F", "n"): 11, ("F", "y"): 12, ("M", "y"): 15})

    found = tables.class_disclosure(table, ACRO)

    assert {(f.rule, f.status, f.column) for f in found} == {("T3", Status.REVIEW, "people")}
    assert sorted((f.evidence["attribute"], tuple(sorted(f.cell.items()))) for f in found) == [
        ("outcome", (("outcome", "y"), ("sex", "M"))),
        ("sex", (("outcome", "n"), ("sex", "F"))),
    ]
    assert all(f.evidence["categories_present"] == 1 for f in found)
    men = next(f for f in found if f.evidence["attribute"] == "outcome")
    assert "M" in men.message and "outcome = y" in men.message


def test_an_explicit_zero_does_not_hide_class_disclosure():
    frame = pd.DataFrame({"sex": ["F", "F", "M", "M"], "outcome": ["n", "y", "n", "y"],
                          "people": [11, 12, 0, 15]})  # fmt: skip
    result = ResultTable(name="t", title="t", frame=frame, dimensions=("sex", "outcome"),
                         statistics={"people": "count"}, persons=frame[["people"]])  # fmt: skip

    found = tables.class_disclosure(published(result), ACRO)

    assert {"sex": "M", "outcome": "y"} in [dict(f.cell) for f in found]


def test_groups_spread_over_categories_have_no_class_disclosure():
    table = crosstab({("F", "n"): 11, ("F", "y"): 12, ("M", "n"): 10, ("M", "y"): 15})

    assert tables.class_disclosure(table, ACRO) == []


# --- D1 dominance and D2 p% ----------------------------------------------------------------
def dominance_rows(second: float, rest: Sequence[float], *, largest_rows: int = 5,
                   largest: float = 5000.0) -> pd.DataFrame:  # fmt: skip
    """The largest contributor's total is ``largest_rows`` rows: one person, one
    contribution; then one person with ``second``, then one person per ``rest`` value."""
    return contributions(
        [("big", largest / largest_rows)] * largest_rows + [("second", second)]
        + [(f"r{i}", v) for i, v in enumerate(rest)]
    )  # fmt: skip


# Total 10,000 in every case; top two persons 5,000 + second.
@pytest.mark.parametrize(
    ("second", "rest", "share", "fails"),
    [(3999.0, [100.0] * 9 + [101.0], 0.8999, False),
     (4000.0, [100.0] * 10, 0.9, True),
     (4001.0, [100.0] * 9 + [99.0], 0.9001, True)],
)  # fmt: skip
@pytest.mark.parametrize("statistic", ["sum", "mean"])
def test_dominance_fails_when_the_top_two_people_hold_ninety_percent(
    second, rest, share, fails, statistic
):
    table = magnitudes(dominance_rows(second, rest), statistic)

    found = of(tables.dominance(table, ACRO), "D1")

    if fails:
        [finding] = found
        assert (finding.status, finding.row, finding.column) == (
            Status.FAIL, 0, f"{statistic}_cost",
        )  # fmt: skip
        assert finding.cell == {"place": "A"}
        assert finding.evidence == pytest.approx({"share": share, "n": 2, "k": 0.9})
        assert f"{statistic}_cost" in finding.message
    else:
        assert found == []


def test_dominance_adds_up_one_persons_rows_before_ranking():
    """Ten rows of 100 are one person's 1,000; ranked by row, the top two would be 200 of
    1,100 (18%) and pass."""
    rows = contributions([("heavy", 100.0)] * 10 + [("next", 50.0)]
                         + [(f"p{i}", 5.0) for i in range(10)])  # fmt: skip

    [finding] = of(tables.dominance(magnitudes(rows), ACRO), "D1")

    assert finding.evidence["share"] == pytest.approx(1050 / 1100)


@pytest.mark.parametrize(("k", "fails"), [(0.4999, True), (0.5, True), (0.5001, False)])
def test_dominance_of_the_single_largest_person(k, fails):
    table = magnitudes(dominance_rows(4000.0, [100.0] * 10))  # largest 5,000 of 10,000

    found = of(tables.dominance(table, Policy(nk_n=1, nk_k=k)), "D1")

    assert [f.evidence["share"] for f in found] == ([pytest.approx(0.5)] if fails else [])


def test_dominance_beyond_the_top_two_is_for_review():
    table = magnitudes(dominance_rows(1000.0, [100.0] * 40))

    [finding] = of(tables.dominance(table, Policy(nk_n=3)), "D1")

    assert finding.status is Status.REVIEW
    assert finding.evidence == {"n": 3}


# Largest 10,000 (ten rows of 1,000), second 5,000, the rest 999 / 1,000 / 1,001.
@pytest.mark.parametrize(
    ("rest", "ratio", "fails"),
    [([100.0] * 9 + [99.0], 0.0999, True),
     ([100.0] * 10, 0.1, False),
     ([100.0] * 9 + [101.0], 0.1001, False)],
)  # fmt: skip
def test_p_percent_fails_when_the_rest_is_under_a_tenth_of_the_largest(rest, ratio, fails):
    table = magnitudes(dominance_rows(5000.0, rest, largest=10000.0, largest_rows=10))

    found = of(tables.dominance(table, ACRO), "D2")

    if fails:
        [finding] = found
        assert (finding.status, finding.row, finding.column) == (Status.FAIL, 0, "sum_cost")
        assert finding.evidence == pytest.approx({"p_ratio": ratio, "limit": 0.1})
        assert "sum_cost" in finding.message
    else:
        assert found == []


# --- D3 negative and missing contributions -------------------------------------------------
@pytest.mark.parametrize(
    ("odd", "evidence"),
    [(-20.0, {"negatives": 1, "missing": 0}), (None, {"missing": 1, "negatives": 0})],
    ids=["negative", "missing"],
)  # fmt: skip
def test_negative_or_missing_contributions_are_for_review(odd, evidence):
    rows = contributions([(f"p{i}", 100.0) for i in range(11)] + [("odd", odd)])

    [finding] = of(tables.dominance(magnitudes(rows), ACRO), "D3")

    assert (finding.status, finding.row, finding.column) == (Status.REVIEW, 0, "sum_cost")
    assert {k: finding.evidence[k] for k in evidence} == evidence
    assert "sum_cost" in finding.message


def test_a_magnitude_whose_contributions_are_all_zero_fails_and_is_for_review():
    rows = contributions([(f"p{i}", 0.0) for i in range(12)])

    found = [(f.rule, f.status) for f in tables.dominance(magnitudes(rows), ACRO)]

    assert found == [("D2", Status.FAIL), ("D3", Status.REVIEW)]  # each person's value is 0


def test_a_magnitude_netting_to_zero_with_negatives_is_for_review_not_a_failure():
    rows = contributions([(f"p{i}", 5.0) for i in range(11)] + [("odd", -55.0)])

    assert [f.rule for f in tables.dominance(magnitudes(rows), ACRO)] == ["D3"]


def test_clean_contributions_are_not_for_review():
    rows = contributions([(f"p{i}", 100.0 + i) for i in range(12)])

    assert tables.dominance(magnitudes(rows), ACRO) == []


def test_negative_and_missing_contributions_pass_when_the_policy_does_not_check_them():
    rows = contributions([(f"p{i}", 100.0) for i in range(11)] + [("odd", -20.0), ("na", None)])

    assert of(tables.dominance(magnitudes(rows), Policy(check_missing=False)), "D3") == []


# --- S1 spread -----------------------------------------------------------------------------
@pytest.mark.parametrize(("persons", "dof", "fails"), [(10, 9, True), (11, 10, False)])
@pytest.mark.parametrize("kind", ["std", "ci_lower", "ci_upper"])
def test_spread_needs_ten_degrees_of_freedom(kind, persons, dof, fails):
    table = published(by_hand(kind, [3.2], [persons], column="sd_age"))

    found = tables.spread(table, ACRO)

    if fails:
        [finding] = found
        assert (finding.rule, finding.status, finding.row, finding.column) == (
            "S1", Status.FAIL, 0, "sd_age",
        )  # fmt: skip
        assert finding.evidence == {"dof": dof, "limit": 10}
        assert "sd_age" in finding.message
    else:
        assert found == []
    assert tables.threshold(table, ACRO) == []  # 10 people pass T1: only the dof fails


# --- E1 extremes ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extremes", "fails"),
    [(None, True), ({"safe": 0}, True), ({"safe": 1}, False)],
    ids=["no-evidence", "not-safe", "safe"],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["min", "max"])
def test_an_extreme_fails_unless_computed_as_a_safe_extreme(kind, extremes, fails):
    cells = [{} if extremes is None else {"extremes": {"age": extremes}}]
    table = published(by_hand(kind, [97.0], [40], column="age"), cells=cells)

    found = tables.extremes(table, ACRO)

    if fails:
        [finding] = found
        assert (finding.rule, finding.status, finding.row, finding.column) == (
            "E1", Status.FAIL, 0, "age",
        )  # fmt: skip
        assert "age" in finding.message and "10" in finding.message
    else:
        assert found == []


def test_only_the_unsafe_extremes_of_a_column_fail():
    cells = [{"extremes": {"age": {"safe": 1}}}, {"extremes": {"age": {"safe": 0}}}, {}]
    table = published(by_hand("max", [97.0, 95.0, 99.0], [40, 40, 40], column="age"),
                      cells=cells)  # fmt: skip

    assert [f.row for f in tables.extremes(table, ACRO)] == [1, 2]


# --- P1 percentiles ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("below", "above", "fails"),
    [(9, 10, True), (10, 9, True), (10, 10, False), (11, 11, False)],
)  # fmt: skip
def test_a_quantile_needs_ten_people_each_side(below, above, fails):
    cells = [{"quantiles": {"median_los": {"below": below, "above": above}}}]
    table = published(by_hand("median", [4.0], [below + above + 1], column="median_los"),
                      cells=cells)  # fmt: skip

    found = tables.percentiles(table, ACRO)

    if fails:
        [finding] = found
        assert (finding.rule, finding.status, finding.row, finding.column) == (
            "P1", Status.FAIL, 0, "median_los",
        )  # fmt: skip
        assert finding.evidence == {"below": below, "above": above, "threshold": 10}
        assert "median_los" in finding.message
    else:
        assert found == []


def test_a_quantile_without_evidence_is_for_review():
    table = published(by_hand("percentile", [4.0, 6.0], [40, 40], column="p90_los"))

    found = tables.percentiles(table, ACRO)

    assert [(f.rule, f.status, f.row) for f in found] == [
        ("P1", Status.REVIEW, 0), ("P1", Status.REVIEW, 1),
    ]  # fmt: skip
    assert all("p90_los" in f.message for f in found)


def test_a_quantile_cell_lacking_evidence_among_cells_with_it_is_for_review():
    cells = [{"quantiles": {"median_los": {"below": 20, "above": 20}}}, {}]
    table = published(by_hand("median", [4.0, 5.0], [41, 41], column="median_los"),
                      cells=cells)  # fmt: skip

    found = tables.percentiles(table, ACRO)

    assert [(f.status, f.row) for f in found] == [(Status.REVIEW, 1)]


def test_quantile_evidence_of_one_side_only_is_for_review_not_a_crash():
    cells = [{"quantiles": {"median_los": {"below": 20}}}]
    table = published(by_hand("median", [4.0], [41], column="median_los"), cells=cells)

    found = tables.percentiles(table, ACRO)

    assert [(f.status, f.row) for f in found] == [(Status.REVIEW, 0)]


# --- O1 modes --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("modes", "status"),
    [({"distinct": 1}, Status.FAIL), ({"distinct": 2}, None), (None, Status.REVIEW)],
    ids=["all-the-same", "two-values", "no-evidence"],
)  # fmt: skip
def test_a_mode_of_a_cell_where_everyone_has_the_same_value_fails(modes, status):
    cells = [{} if modes is None else {"modes": {"mode_stage": modes}}]
    table = published(by_hand("mode", [3.0], [40], column="mode_stage"), cells=cells)

    found = tables.modes(table, ACRO)

    if status is None:
        assert found == []
    else:
        [finding] = found
        assert (finding.rule, finding.status, finding.row, finding.column) == (
            "O1", status, 0, "mode_stage",
        )  # fmt: skip
        assert "mode_stage" in finding.message


def test_a_mode_cell_lacking_evidence_among_cells_with_it_is_for_review():
    cells = [{"modes": {"mode_stage": {"distinct": 3}}}, {}]
    table = published(by_hand("mode", [3.0, 2.0], [40, 40], column="mode_stage"), cells=cells)

    found = tables.modes(table, ACRO)

    assert [(f.status, f.row) for f in found] == [(Status.REVIEW, 1)]


# --- Every finding's shape ---------------------------------------------------------------------
def _every_rule() -> list[tuple[str, TableEvidence]]:
    small = crosstab({("F", "n"): 9, ("F", "y"): 12, ("M", "y"): 15})
    zero = ResultTable(
        name="t", title="t",
        frame=pd.DataFrame({"sex": ["F", "M"], "people": [12, 0]}), dimensions=("sex",),
        statistics={"people": "count"}, persons=pd.DataFrame({"people": [12, 0]}),
    )  # fmt: skip
    dominated = contributions([("big", 1000.0)] * 3 + [("odd", -5.0)]
                              + [(f"p{i}", 1.0) for i in range(10)])  # fmt: skip
    return [
        ("T1", small), ("T2", small), ("T2", published(zero)), ("T3", small),
        ("D1", magnitudes(dominated, "mean")), ("D2", magnitudes(dominated)),
        ("D3", magnitudes(dominated)),
        ("S1", published(by_hand("std", [2.0], [10], column="sd"))),
        ("E1", published(by_hand("max", [2.0], [10], column="top"))),
        ("P1", published(by_hand("median", [2.0], [30], column="mid"),
                         cells=[{"quantiles": {"mid": {"below": 3, "above": 26}}}])),
        ("O1", published(by_hand("mode", [2.0], [30], column="most"),
                         cells=[{"modes": {"most": {"distinct": 1}}}])),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "table"),
    _every_rule(),
    ids=[f"{rule}-{i}" for i, (rule, _) in enumerate(_every_rule())],
)
def test_every_finding_names_its_cell_and_column_with_numeric_evidence(rule, table):
    found = of(tables.check_table(table, ACRO), rule)

    assert found, f"the {rule} example should break {rule}"
    for finding in found:
        assert finding.column in table.statistics
        assert set(finding.cell) == set(table.dimensions)
        if finding.row is not None:
            assert finding.cell == table.cell(finding.row)
            assert finding.column in finding.message
        for value in finding.evidence.values():
            # Numbers (or a dimension's name, for T3): nothing about a person.
            assert (
                value is None
                or isinstance(value, int | float | bool)
                or (value in table.dimensions)
            )
        assert json.loads(json.dumps(finding.as_json())) == finding.as_json()


def test_check_table_runs_the_rules_in_catalogue_order():
    table = crosstab({("F", "n"): 9, ("F", "y"): 12, ("M", "y"): 15})

    rules = [f.rule for f in tables.check_table(table, ACRO)]

    assert rules == sorted(rules, key=["T1", "T2", "T3"].index)
    assert set(rules) == {"T1", "T2", "T3"}
