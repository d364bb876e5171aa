"""Difference-in-differences: matching, weights, the estimate and its interval on a
hand-computed example; exact recovery of an effect added to synthetic data; no effect."""

import json
from datetime import date, timedelta
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from sde.data import synth
from sde.phm import codelists, evaluation
from sde.phm.frames import AnalysisInputError, frames_from_tables
from sde.phm.population import registered_population

START = date(2024, 4, 1)  # before: 2023-04-02 to 2024-03-31; after: 2024-04-01 to 2025-03-31
BEFORE, AFTER = "2023-09-01", "2024-09-01"
BMI = min(codelists.get("bmi").snomed)
HYPERTENSION = min(codelists.get("hypertension").snomed)


def _frame(rows, columns, dates):
    frame = pd.DataFrame(list(rows), columns=columns)
    for column in dates:
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[s]")
    return frame.astype({"person_id": "str"})


# --- A hand-computed example --------------------------------------------------------------
# Stratum A (woman, 73, IMD decile 1, no conditions): T1, T2 in the cohort, C1 not.
# Stratum B (man, 33, decile 9, none): T3 in the cohort; C2, C3, C4 not.
# T4 (as A, but with hypertension): no comparison -> unmatched. T5 left in 2023.
# X (man, 50): comparison pool, no cohort member like him -> unmatched.
A = ("1950-06-01", "F", 1)
B = ("1990-06-01", "M", 9)
PEOPLE = {"T1": A, "T2": A, "C1": A, "T3": B, "C2": B, "C3": B, "C4": B, "T4": A, "T5": A,
          "X": ("1974-01-01", "M", 5)}  # fmt: skip
COHORT = ["T1", "T2", "T3", "T4", "T5"]
ADMISSIONS = {  # person: (before, after)
    "T1": (1, 3), "T2": (0, 2), "C1": (1, 1), "T3": (0, 1), "C2": (0, 0), "C3": (2, 1),
    "C4": (0, 2), "T4": (0, 5), "X": (3, 0),
}  # fmt: skip
BMIS = {  # person: [(date, value)]
    "T1": [("2023-06-01", 30.0), ("2024-01-01", 31.0), ("2025-03-01", 29.0)],
    "C1": [("2023-06-01", 30.0), ("2025-03-01", 30.0)],
    "T2": [("2023-06-01", 28.0)],
    "T3": [("2023-06-01", 25.0), ("2024-06-01", 25.0)],
    "C2": [("2023-06-01", 26.0), ("2024-06-01", 27.0)],
}


def _hand_built():
    patients = [(pid, born, sex, "White: Irish", decile, "Y001", "U01", "North Place",
                 "E01000001", "2000-01-01", "2023-06-30" if pid == "T5" else None, None)
                for pid, (born, sex, decile) in PEOPLE.items()]  # fmt: skip
    spells = []
    for pid, (before, after) in ADMISSIONS.items():
        for k in range(before):
            spells.append((pid, pd.Timestamp(BEFORE) + timedelta(days=k), "emergency"))
        for k in range(after):
            spells.append((pid, pd.Timestamp(AFTER) + timedelta(days=k), "emergency"))
    spells.append(("C2", "2025-03-20", "elective"))  # the extract runs to the window's end
    events = [(pid, day, BMI, value) for pid, readings in BMIS.items() for day, value in readings]
    events.append(("T4", "2010-01-01", HYPERTENSION, None))
    columns = ["person_id", "birth_month", "sex", "ethnicity", "imd_decile", "practice_ods",
               "pcn_code", "place", "lsoa_code", "registration_start", "registration_end",
               "date_of_death"]  # fmt: skip
    return {
        "patients": _frame(patients, columns, ["birth_month", "registration_start",
                                               "registration_end", "date_of_death"]),
        "gp_events": _frame(events, ["person_id", "date", "snomed_code", "value"], ["date"]),
        "apc_spells": _frame(spells, ["person_id", "admission_date", "admission_method"],
                             ["admission_date"]),
    }  # fmt: skip


@pytest.fixture(scope="module")
def hand_built():
    return _hand_built()


def test_matching_weights_give_the_comparison_group_the_cohorts_mix(hand_built):
    matched, counts = evaluation.matched_sample(hand_built, cohort=COHORT, start=START)

    assert matched.loc[["T1", "T2", "T3"], "weight"].tolist() == [1, 1, 1]
    assert matched.loc["C1", "weight"] == 2
    assert matched.loc[["C2", "C3", "C4"], "weight"].to_numpy() == pytest.approx([1 / 3] * 3)
    assert set(matched.index) == {"T1", "T2", "T3", "C1", "C2", "C3", "C4"}
    assert counts == {"cohort": 5, "cohort_not_registered": 1, "cohort_unmatched": 1,
                      "cohort_matched": 3, "comparison_pool": 5, "comparison_matched": 4,
                      "strata": 2}  # fmt: skip


def test_difference_in_differences_matches_the_hand_computed_estimate(hand_built):
    result = evaluation.difference_in_differences(
        hand_built, cohort=COHORT, start=START, outcome="emergency_admissions"
    )
    row = result.table("did_estimate").frame.iloc[0]
    # Cohort changes 2, 2, 1 (mean 5/3); comparison 0 (weight 2) and 0, -1, 2 (1/3 each):
    # weighted mean 1/9. Sandwich variances with n/(n-1): 1/9 and 568/6561.
    estimate = Fraction(5, 3) - Fraction(1, 9)
    se = np.sqrt(1 / 9 + 568 / 6561)

    assert row["estimate"] == pytest.approx(float(estimate))  # 14/9
    assert row["standard_error"] == pytest.approx(se)
    assert row["ci_lower"] == pytest.approx(14 / 9 - 1.959964 * se, abs=1e-6)
    assert row["ci_upper"] == pytest.approx(14 / 9 + 1.959964 * se, abs=1e-6)
    assert (row["cohort_people"], row["comparison_people"]) == (3, 4)


def test_difference_in_differences_publishes_the_group_means(hand_built):
    result = evaluation.difference_in_differences(
        hand_built, cohort=COHORT, start=START, outcome="emergency_admissions"
    )
    means = result.table("did_means").frame.set_index(["group", "period"])["mean"]

    assert means[("cohort", "before")] == pytest.approx(1 / 3)
    assert means[("cohort", "after")] == pytest.approx(2)
    assert means[("comparison", "before")] == pytest.approx((2 * 1 + (0 + 2 + 0) / 3) / 3)
    assert means[("comparison", "after")] == pytest.approx((2 * 1 + (0 + 1 + 2) / 3) / 3)
    matching = result.table("did_matching").frame.set_index("group")["people"]
    assert matching.to_dict() == {"cohort_matched": 3, "cohort_unmatched": 1,
                                  "cohort_not_registered": 1, "comparison_matched": 4,
                                  "no_outcome_in_both_windows": 0}  # fmt: skip


def test_difference_in_differences_evidence_serialises(hand_built):
    result = evaluation.difference_in_differences(
        hand_built, cohort=COHORT, start=START, outcome="emergency_admissions"
    )

    for table in result.tables:
        sidecar = json.loads(json.dumps(table.sidecar()))
        assert sidecar["rows"] == len(table.frame)
    means = json.loads(json.dumps(result.table("did_means").sidecar()))
    assert means["cells"][0]["magnitudes"]["mean"]["total"] == pytest.approx(1)  # T1's one


def test_difference_in_differences_of_bmi_uses_people_with_a_reading_in_both_windows(hand_built):
    result = evaluation.difference_in_differences(hand_built, cohort=COHORT, start=START,
                                                  outcome="bmi")  # fmt: skip
    row = result.table("did_estimate").frame.iloc[0]

    # T1 31 -> 29 and T3 25 -> 25 against C1 30 -> 30 and C2 26 -> 27 (one to one).
    assert row["estimate"] == pytest.approx(-1.5)
    assert (row["cohort_people"], row["comparison_people"]) == (2, 2)
    assert result.parameters["no_outcome_in_both_windows"] == 3
    assert result.codelists["bmi"] == codelists.get("bmi").version


def test_a_constant_effect_is_recovered_exactly_with_no_spread(hand_built):
    frames = dict(hand_built)
    # Everyone's admissions as C1's (1 and 1), plus two more after the start for the cohort.
    spells = [(p, BEFORE, "emergency") for p in PEOPLE] + [(p, AFTER, "emergency") for p in PEOPLE]
    spells += [(p, "2025-03-01", "emergency") for p in COHORT] * 2
    frames["apc_spells"] = _frame(spells, ["person_id", "admission_date", "admission_method"],
                                  ["admission_date"])  # fmt: skip

    row = (
        evaluation.difference_in_differences(
            frames, cohort=COHORT, start=START, outcome="emergency_admissions"
        )
        .table("did_estimate")
        .frame.iloc[0]
    )

    assert row["estimate"] == pytest.approx(2)
    assert row["standard_error"] == pytest.approx(0)
    assert row["ci_lower"] == pytest.approx(2) and row["ci_upper"] == pytest.approx(2)


def test_difference_in_differences_refuses_unknown_outcomes_and_uncovered_windows(hand_built):
    with pytest.raises(AnalysisInputError, match="unknown outcome"):
        evaluation.difference_in_differences(hand_built, cohort=COHORT, start=START,
                                             outcome="happiness")  # fmt: skip
    with pytest.raises(AnalysisInputError, match="does not cover"):
        evaluation.difference_in_differences(hand_built, cohort=COHORT, start=date(2025, 1, 1),
                                             outcome="emergency_admissions")  # fmt: skip


def test_difference_in_differences_needs_people_to_compare(hand_built):
    with pytest.raises(AnalysisInputError, match="too few"):
        evaluation.difference_in_differences(hand_built, cohort=["T4"], start=START,
                                             outcome="emergency_admissions")  # fmt: skip


# --- Synthetic data ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frames():
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    tables = ["patients", "gp_events", "apc_spells", "ae_attendances"]
    drop = synth.generate(patients=40_000, seed=99, config=config, tables=tables)
    return frames_from_tables(drop)


@pytest.fixture(scope="module")
def cohort(frames):
    """2,000 people drawn at random: an 'intervention' with no effect."""
    people = registered_population(frames, START)["person_id"].to_numpy()
    return np.random.default_rng(8).choice(people, 2_000, replace=False)


@pytest.mark.parametrize("outcome", list(evaluation.OUTCOMES))
def test_no_effect_gives_an_interval_covering_zero(frames, cohort, outcome):
    result = evaluation.difference_in_differences(frames, cohort=cohort, start=START,
                                                  outcome=outcome)  # fmt: skip
    row = result.table("did_estimate").frame.iloc[0]

    assert row["ci_lower"] < 0 < row["ci_upper"]
    assert row["standard_error"] > 0
    assert result.parameters["cohort_matched"] > 1_900
    table = result.table("did_estimate")
    assert table.model == {
        "observations": row["cohort_people"] + row["comparison_people"],
        "parameters": 2,
        "residual_dof": row["cohort_people"] + row["comparison_people"] - 2,
    }


def test_an_added_admission_per_cohort_member_is_recovered_exactly(frames, cohort):
    before = (
        evaluation.difference_in_differences(
            frames, cohort=cohort, start=START, outcome="emergency_admissions"
        )
        .table("did_estimate")
        .frame.iloc[0]
    )
    extra = pd.DataFrame({"person_id": pd.array(cohort, dtype="str"),
                          "admission_date": pd.Timestamp("2024-10-01"),
                          "admission_method": "emergency"})  # fmt: skip
    treated = {**frames, "apc_spells": pd.concat([frames["apc_spells"], extra], ignore_index=True)}

    after = (
        evaluation.difference_in_differences(
            treated, cohort=cohort, start=START, outcome="emergency_admissions"
        )
        .table("did_estimate")
        .frame.iloc[0]
    )

    assert after["estimate"] - before["estimate"] == pytest.approx(1, abs=1e-12)
    assert after["standard_error"] == pytest.approx(before["standard_error"], rel=1e-12)
    assert after["ci_lower"] > 0.8


def test_comparison_means_are_weighted_to_the_cohorts_mix(frames, cohort):
    matched, counts = evaluation.matched_sample(frames, cohort=cohort, start=START)
    weights = matched.groupby(["stratum", "treated"])["weight"].sum().unstack()

    assert weights[True].to_numpy() == pytest.approx(weights[False].to_numpy())
    assert counts["cohort_matched"] + counts["cohort_unmatched"] == 2_000
    assert counts["comparison_matched"] <= counts["comparison_pool"]
