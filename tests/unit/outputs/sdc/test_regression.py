"""M1-M4 on model evidence, at the boundaries, under the presets, and the evidence writer."""

import json

import numpy as np
import pandas as pd
import pytest

from outputs.sdc.evidence import EvidenceError
from outputs.sdc.policy import PRESETS, Policy
from outputs.sdc.regression import check_model, model_evidence
from outputs.sdc.results import Status

DEFAULT = PRESETS["acro-default"]


def sidecar(**model):
    """A model sidecar that passes every rule under acro-default, with ``model`` changes
    (None deletes a field)."""
    base = {
        "family": "ols", "observations": 200, "parameters": 5, "residual_dof": 195,
        "binary_groups": {"smoker": {"0": 150, "1": 50}}, "per_observation": [],
    }  # fmt: skip
    base.update(model)
    return {"kind": "model", "model": {k: v for k, v in base.items() if v is not None}}


def by_rule(findings, rule):
    return [f for f in findings if f.rule == rule]


def test_a_model_with_enough_people_and_no_by_products_passes():
    assert check_model(sidecar(), DEFAULT) == []


# --- M1 residual degrees of freedom -----------------------------------------------------
@pytest.mark.parametrize(("dof", "fails"), [(9, True), (10, False), (11, False), (-1, True)])
def test_residual_dof_below_the_policy_fails_and_equal_passes_as_in_acro(dof, fails):
    # A person-level model: rows = people = dof + parameters.
    evidence = sidecar(observations=max(dof + 2, 0), parameters=2, residual_dof=dof,
                       binary_groups=None)  # fmt: skip

    findings = by_rule(check_model(evidence, DEFAULT), "M1")

    assert [f.status for f in findings] == ([Status.FAIL] if fails else [])
    if fails:
        assert findings[0].evidence == {"residual_dof": dof, "limit": 10}
        assert f"has {dof} residual degrees of freedom" in findings[0].message


def test_residual_dof_given_as_a_whole_float_is_read_as_a_count():
    evidence = sidecar(residual_dof=10.0, observations=12, parameters=2, binary_groups=None)

    assert by_rule(check_model(evidence, DEFAULT), "M1") == []


def test_missing_residual_dof_is_review_unverifiable():
    (finding,) = by_rule(check_model(sidecar(residual_dof=None), DEFAULT), "M1")

    assert finding.status is Status.REVIEW
    assert "unverifiable" in finding.message


# --- M2 saturation ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("observations", "parameters", "fails"),
    [(100, 32, False), (100, 33, False), (100, 34, True),  # 0.33 * 100 = 33
     (30, 9, False), (30, 10, True),  # 0.33 * 30 = 9.9
     (300, 99, False), (300, 100, True)],  # 0.33 * 300 = 99
)  # fmt: skip
def test_more_parameters_than_a_third_of_the_people_fails(observations, parameters, fails):
    evidence = sidecar(observations=observations, parameters=parameters, residual_dof=1000,
                       binary_groups=None)  # fmt: skip

    findings = by_rule(check_model(evidence, DEFAULT), "M2")

    assert [f.status for f in findings] == ([Status.FAIL] if fails else [])
    if fails:
        assert findings[0].evidence["limit"] == pytest.approx(0.33 * observations)
        assert findings[0].evidence["parameters"] == parameters


def test_saturation_limit_is_exact_where_floating_point_falls_short():
    # 0.57 * 100 is 56.99999999999999 in floating point; 57 parameters are allowed.
    policy = Policy(name="test", saturation=0.57)

    def evidence(parameters):
        return sidecar(observations=100, parameters=parameters, residual_dof=1000,
                       binary_groups=None)  # fmt: skip

    assert by_rule(check_model(evidence(57), policy), "M2") == []
    assert len(by_rule(check_model(evidence(58), policy), "M2")) == 1


@pytest.mark.parametrize("missing", ["observations", "parameters"])
def test_missing_observations_or_parameters_is_review(missing):
    (finding,) = by_rule(check_model(sidecar(**{missing: None}), DEFAULT), "M2")

    assert finding.status is Status.REVIEW


# --- M3 small binary groups -------------------------------------------------------------
@pytest.mark.parametrize(("persons", "fails"), [(0, True), (9, True), (10, False), (11, False)])
def test_a_category_of_a_dummy_with_fewer_than_threshold_people_fails(persons, fails):
    groups = {"smoker": {"0": 190, "1": persons}}

    findings = by_rule(check_model(sidecar(binary_groups=groups), DEFAULT), "M3")

    assert [f.status for f in findings] == ([Status.FAIL] if fails else [])
    if fails:
        assert findings[0].cell == {"variable": "smoker", "level": "1"}
        assert findings[0].evidence == {"persons": persons, "threshold": 10}


def test_one_finding_per_small_category_of_each_variable():
    groups = {"died": {"0": 195, "1": 5}, "smoker": {"0": 3, "1": 197},
              "female": {"0": 100, "1": 100}}  # fmt: skip

    findings = check_model(sidecar(binary_groups=groups), DEFAULT)

    assert [(f.rule, dict(f.cell)) for f in findings] == [
        ("M3", {"variable": "died", "level": "1"}),
        ("M3", {"variable": "smoker", "level": "0"}),
    ]


@pytest.mark.parametrize(
    ("family", "groups", "statuses"),
    [("logit", None, [Status.REVIEW]), ("probit", None, [Status.REVIEW]),
     ("logit", {}, [Status.REVIEW]), ("ols", None, []), ("cox", None, []), (None, None, [])],
)  # fmt: skip
def test_missing_binary_groups_is_review_only_for_binary_outcome_families(family, groups, statuses):
    findings = check_model(sidecar(family=family, binary_groups=groups), DEFAULT)

    assert [f.status for f in by_rule(findings, "M3")] == statuses


# --- M4 per-observation by-products -----------------------------------------------------
@pytest.mark.parametrize(
    ("by_products", "failing"),
    [([], []), (None, []), (["residuals"], ["residuals"]),
     (["fitted", "leverage"], ["fitted", "leverage"])],
)  # fmt: skip
def test_per_observation_by_products_in_the_output_fail(by_products, failing):
    findings = by_rule(check_model(sidecar(per_observation=by_products), DEFAULT), "M4")

    assert [(f.status, f.cell["by_product"]) for f in findings] == [
        (Status.FAIL, name) for name in failing
    ]


# --- Presets ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("preset", "rules"),
    [("acro-default", ["M1", "M3", "M3"]), ("ons-10-5", ["M1", "M3", "M3"]),
     ("opensafely-7-5", ["M1", "M3", "M3"]), ("datashield-3", [])],
)  # fmt: skip
def test_datashield_thresholds_pass_a_model_the_others_fail(preset, rules):
    # dof 5 and categories of 4 and 3 pass threshold 3 / dof 3; 2 <= 0.33 * 7 everywhere.
    evidence = sidecar(observations=7, parameters=2, residual_dof=5,
                       binary_groups={"smoker": {"0": 4, "1": 3}})  # fmt: skip

    assert [f.rule for f in check_model(evidence, PRESETS[preset])] == rules


def test_opensafely_threshold_of_eight_passes_a_category_of_eight():
    evidence = sidecar(binary_groups={"smoker": {"0": 192, "1": 8}})

    assert check_model(evidence, PRESETS["opensafely-7-5"]) == []
    assert len(check_model(evidence, DEFAULT)) == 1


# --- The two shapes of evidence ---------------------------------------------------------
def test_a_coefficient_tables_model_mapping_is_checked_like_a_model_sidecar():
    # What sde.phm.risk writes today: no family, binary groups or by-products.
    table_model = {"observations": 11, "parameters": 2, "residual_dof": 9}

    findings = check_model({"model": table_model}, DEFAULT)

    assert [(f.rule, f.status) for f in findings] == [("M1", Status.FAIL)]


# --- Malformed and impossible evidence --------------------------------------------------
@pytest.mark.parametrize(
    ("evidence", "message"),
    [([1, 2], "not a JSON object"),
     ({"kind": "table", "model": {}}, "not a model's"),
     ({"kind": "model"}, "no 'model' object"),
     ({"model": [1]}, "no 'model' object"),
     (sidecar(family=3), "family must be a name"),
     (sidecar(residual_dof="ten"), "residual_dof must be a whole number"),
     (sidecar(residual_dof=9.5), "residual_dof must be a whole number"),
     (sidecar(residual_dof=float("nan")), "residual_dof must be a whole number"),
     (sidecar(parameters=True), "parameters must be a whole number"),
     (sidecar(observations=-1), "observations cannot be -1"),
     (sidecar(binary_groups=["smoker"]), "binary_groups must map variables"),
     (sidecar(binary_groups={"smoker": 12}), "must map categories to persons"),
     (sidecar(binary_groups={"smoker": {"1": "many"}}), "must be a whole number"),
     (sidecar(binary_groups={"smoker": {"1": -2}}), "cannot be -2"),
     (sidecar(binary_groups={"smoker": {"1": 201}}), "201 people have smoker = 1"),
     (sidecar(per_observation="residuals"), "per_observation must be a list"),
     (sidecar(per_observation=["residuals", 4]), "per_observation must be a list"),
     (sidecar(events=250), "250 people have the event"),
     (sidecar(observations=200, parameters=5, residual_dof=100), "at most 105 rows")],
)  # fmt: skip
def test_malformed_or_impossible_evidence_raises_with_a_clear_message(evidence, message):
    with pytest.raises(EvidenceError, match=message):
        check_model(evidence, DEFAULT)


# --- model_evidence ---------------------------------------------------------------------
@pytest.fixture
def rows():
    """Six people over eight rows: a has two rows, d quit smoking (a row in each
    category), f's smoking is unknown so the model never sees f."""
    frame = pd.DataFrame({
        "person": ["a", "a", "b", "c", "d", "d", "e", "f"],
        "const": 1.0,
        "smoker": [1, 1, 0, 0, 1, 0, 0, np.nan],
        "age": [50, 51, 40, 35, 60, 61, 45, 30],
        "admitted": [1, 1, 0, 1, 0, 0, 1, 0],
    }, index=range(10, 18))  # fmt: skip
    return frame


def test_model_evidence_counts_distinct_people_per_category_over_complete_rows(rows):
    evidence = model_evidence(rows[["const", "smoker", "age"]], rows["admitted"],
                              rows["person"], family="logit")  # fmt: skip

    assert evidence == {
        "family": "logit",
        "observations": 5,  # a-e; f's row is incomplete
        "parameters": 3,
        "residual_dof": 7 - 3,  # seven complete rows, full rank
        # admitted 0: b, d; 1: a, c, e. smoker 0: b, c, d, e; 1: a, d.
        "binary_groups": {"admitted": {"0": 2, "1": 3}, "smoker": {"0": 4, "1": 2}},
        "per_observation": [],
    }


def test_model_evidence_counts_an_added_intercept_and_takes_dof_from_the_rank(rows):
    x = rows[["smoker", "age"]].assign(smoker_again=rows["smoker"])

    evidence = model_evidence(x, rows["admitted"], rows["person"], family="ols",
                              intercept=True, per_observation=["residuals"])  # fmt: skip

    # Four coefficients, but the repeated column adds no rank: dof = 7 - 3, as statsmodels'
    # df_resid (and so ACRO) gives it.
    assert (evidence["parameters"], evidence["residual_dof"]) == (4, 4)
    assert evidence["binary_groups"]["smoker_again"] == {"0": 4, "1": 2}
    assert evidence["per_observation"] == ["residuals"]


def test_model_evidence_reads_boolean_dummies_and_skips_constants_and_continuous(rows):
    x = pd.DataFrame({"const": 1, "female": [True, False, True, True, False, False, True,
                                             False], "age": rows["age"]},
                     index=rows.index)  # fmt: skip

    evidence = model_evidence(x, None, rows["person"], family="ols")

    assert evidence["binary_groups"] == {"female": {"0": 3, "1": 4}}  # a,d,f / a,b,c,e
    assert evidence["observations"] == 6


def test_model_evidence_counts_events_for_a_cox_model(rows):
    evidence = model_evidence(rows[["smoker", "age"]], rows["admitted"], rows["person"],
                              family="cox")  # fmt: skip

    assert evidence["events"] == 3  # a, c, e among the complete rows


def test_model_evidence_round_trips_through_json_into_the_rules(rows):
    evidence = model_evidence(
        rows[["const", "smoker", "age"]],
        rows["admitted"],
        rows["person"],
        family="logit",
        per_observation=["fitted"],
    )
    sidecar_bytes = json.dumps({"kind": "model", "model": evidence})

    findings = check_model(json.loads(sidecar_bytes), DEFAULT)

    # dof 4 < 10; 3 parameters > 0.33 * 5; four categories under 10; fitted values.
    assert [f.rule for f in findings] == ["M1", "M2", "M3", "M3", "M3", "M3", "M4"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("misaligned", "share one index"),
        ("text", "must be numeric"),
        ("no_person", "needs a person id"),
        ("clash", "also a column"),
    ],
)
def test_model_evidence_refuses_input_it_cannot_describe(rows, change, message):
    x, y, persons = rows[["smoker", "age"]], rows["admitted"], rows["person"]
    if change == "misaligned":
        persons = persons.reset_index(drop=True)
    elif change == "text":
        x = x.assign(region=list("nnssnnss"))
    elif change == "no_person":
        persons = persons.where(persons != "c")
    else:
        y = y.rename("smoker")

    with pytest.raises(ValueError, match=message):
        model_evidence(x, y, persons, family="logit")
