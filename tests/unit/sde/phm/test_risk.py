"""Risk stratification: the fitting and scoring pieces against exact answers, the model
against the synthetic generator's KNOWN emergency-admission model (coefficients,
discrimination, calibration), and the tiers' sizes."""

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from sde.data import synth
from sde.phm import logistic, risk
from sde.phm.frames import AnalysisInputError, frames_from_tables
from sde.phm.population import registered_population

TRUE = synth.EMERGENCY_ADMISSION_MODEL
GENERATOR_FEATURES = tuple(TRUE.coefficients)
# The recovery drop: one year (2023-04-01 to 2024-03-31), so that with the "year_before"
# design at 2024-04-01 the outcome year is the generator's year, ages are on its first
# day (the generator's "age at the window start"), every diagnosis and deficit is
# recorded by the index date, and the people are those observed all year.
RECOVERY_PEOPLE = 200_000
RECOVERY_INDEX = date(2024, 4, 1)
TIER_CONFIGS = [
    risk.DEFAULT_TIERS,
    (("top", 0.01), ("rest", 0.99)),
    (("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4)),
    (("only", 1.0),),
]


# --- The pieces -------------------------------------------------------------------------
def test_fit_logistic_matches_the_two_by_two_table():
    # x=0: 30 events of 100; x=1: 60 of 80. The MLE is the table's log-odds.
    x = np.r_[np.zeros(100), np.ones(80)]
    y = np.r_[np.ones(30), np.zeros(70), np.ones(60), np.zeros(20)]

    fit = logistic.fit_logistic(x[:, None], y, names=["x"])

    assert fit.converged
    assert fit.terms == ("intercept", "x")
    assert fit.coefficients == pytest.approx([np.log(30 / 70), np.log(60 / 20) - np.log(30 / 70)])
    assert fit.standard_errors == pytest.approx(
        [np.sqrt(1 / 30 + 1 / 70), np.sqrt(1 / 30 + 1 / 70 + 1 / 60 + 1 / 20)]
    )
    assert fit.predict(np.array([[0.0], [1.0]])) == pytest.approx([0.3, 0.75])


def test_fit_logistic_refuses_a_constant_feature():
    x = np.column_stack([np.ones(50), np.arange(50) % 2])
    y = np.arange(50) % 3 == 0

    with pytest.raises(AnalysisInputError, match="constant or collinear"):
        logistic.fit_logistic(x, y)


def test_auc_is_the_share_of_pairs_ranked_right_ties_counting_half():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.2, 0.4])
    outcome = np.array([0, 0, 1, 1, 1, 0, 0], dtype=bool)
    pairs = [(s1 > s0) + 0.5 * (s1 == s0) for s1 in scores[outcome] for s0 in scores[~outcome]]

    assert logistic.auc(scores, outcome) == pytest.approx(np.mean(pairs))
    assert np.isnan(logistic.auc(scores, np.zeros(7, dtype=bool)))


def test_auc_interval_brackets_the_auc_and_narrows_with_more_people():
    lower, upper = logistic.auc_interval(0.75, 100, 900)
    wide = upper - lower

    assert lower < 0.75 < upper
    lower, upper = logistic.auc_interval(0.75, 1000, 9000)
    assert upper - lower < wide / 3


def test_deciles_are_equal_sized_by_rank():
    scores = np.random.default_rng(1).random(1003)

    groups = logistic.deciles(scores)

    assert sorted(np.bincount(groups)[1:]) == [100] * 7 + [101] * 3
    assert scores[groups == 10].min() > scores[groups == 9].max()


@pytest.mark.parametrize("tiers", TIER_CONFIGS)
@pytest.mark.parametrize("people", [1, 199, 10_000, 123_457])
def test_tiers_have_the_configured_sizes(tiers, people):
    scores = np.random.default_rng(people).random(people)
    cumulative = np.cumsum([share for _, share in tiers])

    tier = risk.assign_tiers(scores, tiers)

    sizes = pd.Series(tier).value_counts().reindex([n for n, _ in tiers], fill_value=0)
    expected = np.diff(np.r_[0, np.floor(cumulative * people + 0.5)])
    expected[-1] = people - expected[:-1].sum()
    assert sizes.to_numpy() == pytest.approx(expected)
    assert np.all(np.abs(sizes.to_numpy() - np.array([s for _, s in tiers]) * people) <= 1)


@pytest.mark.parametrize("tiers", TIER_CONFIGS[:3])
def test_tiers_take_the_highest_scores_first(tiers):
    scores = np.random.default_rng(5).random(5_000)

    codes = risk.assign_tiers(scores, tiers).codes

    for k in range(len(tiers) - 1):
        assert scores[codes == k].min() > scores[codes == k + 1].max()


@pytest.mark.parametrize(
    "tiers",
    [(("a", 0.5), ("b", 0.4)), (("a", 0.5), ("a", 0.5)), (("a", 1.2), ("b", -0.2)), ()],
)
def test_tiers_refuse_shares_that_do_not_partition(tiers):
    with pytest.raises(AnalysisInputError, match="tiers"):
        risk.assign_tiers(np.zeros(3), tiers)


def test_tier_ties_are_broken_by_position():
    tier = risk.assign_tiers(np.zeros(10), (("top", 0.3), ("rest", 0.7)))

    assert list(tier.codes) == [0, 0, 0] + [1] * 7


# --- Against the generator's known model --------------------------------------------------
@pytest.fixture(scope="module")
def recovery_drop():
    config = synth.SynthConfig(years=1, faults=synth.FaultRates.none())
    return synth.generate(patients=RECOVERY_PEOPLE, seed=11, config=config,
                          tables=["patients", "gp_events", "apc_spells"])  # fmt: skip


@pytest.fixture(scope="module")
def recovery_frames(recovery_drop):
    return frames_from_tables(recovery_drop)


@pytest.fixture(scope="module")
def recovered(recovery_frames):
    return risk.risk_stratification(
        recovery_frames, index_date=RECOVERY_INDEX, design="year_before",
        features=GENERATOR_FEATURES, seed=3,
    )  # fmt: skip


def test_risk_model_recovers_the_generators_coefficients(recovered):
    model = recovered.table("risk_model").frame.set_index("term")
    true = pd.Series({"intercept": TRUE.intercept, **TRUE.coefficients})
    z = (model["coefficient"] - true[model.index]) / model["standard_error"]

    assert list(model.index) == ["intercept", *GENERATOR_FEATURES]
    assert (model["standard_error"] < 0.15).all()  # precise enough to mean something
    assert (z.abs() < 4).all(), z[z.abs() >= 4]
    assert (model["coefficient"] - true[model.index]).abs().max() < 0.3
    assert ((model["ci_lower"] <= true) & (true <= model["ci_upper"])).mean() > 0.85


def test_risk_model_summary_is_a_model_table(recovered):
    table = recovered.table("risk_model")

    assert table.statistics["coefficient"] == "coefficient"
    assert table.model is not None
    assert table.model["parameters"] == len(GENERATOR_FEATURES) + 1
    assert table.model["residual_dof"] == table.model["observations"] - table.model["parameters"]
    assert (table.frame["events_with_feature"] <= table.frame["people_with_feature"]).all()
    assert (table.persons["coefficient"] == table.frame["people_with_feature"]).all()


def test_risk_model_discriminates_like_the_true_model(recovered, recovery_drop, recovery_frames):
    performance = recovered.table("risk_performance").frame.set_index("metric")
    # The true probabilities' AUC over the generator's one year, for the people observed
    # all of it (registered from its start; no leaving or dying in it).
    patients = recovery_frames["patients"]
    start = pd.Timestamp(RECOVERY_INDEX - timedelta(days=366))
    all_year = patients.loc[(patients["registration_start"] <= start)
                            & patients["registration_end"].isna(), "person_id"]  # fmt: skip
    ids = dict(zip(recovery_drop["patients"]["nhs_number"], patients["person_id"], strict=True))
    truth = recovery_drop.truth.set_index(recovery_drop.truth["nhs_number"].map(ids))
    truth = truth.loc[all_year.to_numpy()]
    spells = recovery_frames["apc_spells"]
    admitted = spells.loc[spells["admission_method"] == "emergency", "person_id"]
    true_auc = logistic.auc(truth["p_emergency_admission"].to_numpy(), truth.index.isin(admitted))

    auc = performance.loc["auc", "value"]
    assert 0.7 < auc < 0.85
    assert auc == pytest.approx(true_auc, abs=0.015)
    assert performance.loc["auc", "ci_lower"] < true_auc < performance.loc["auc", "ci_upper"]


def test_risk_model_is_calibrated_on_the_held_out_people(recovered):
    calibration = recovered.table("risk_calibration").frame
    performance = recovered.table("risk_performance").frame.set_index("metric")["value"]
    p, n = calibration["predicted"], calibration["people"]

    assert list(calibration["decile"]) == list(range(1, 11))
    assert (calibration["predicted"].diff().dropna() > 0).all()
    assert ((calibration["observed"] - p).abs() < 4 * np.sqrt(p * (1 - p) / n) + 0.003).all()
    assert 0.9 < performance["calibration_slope"] < 1.1
    assert performance["mean_predicted_risk"] == pytest.approx(
        performance["observed_risk"], abs=0.005
    )


def test_risk_tiers_have_the_default_sizes_and_the_cohort_is_the_top_tier(recovered):
    tiers = recovered.table("risk_tiers").frame.set_index("tier")
    people = int(tiers["people"].sum())
    expected = np.diff(np.r_[0, np.floor(np.cumsum([0.005, 0.045, 0.15, 0.8]) * people + 0.5)])

    assert list(tiers.index) == ["very_high", "high", "rising", "low"]
    assert tiers["people"].to_numpy() == pytest.approx(expected)
    assert len(recovered.cohort) == tiers.loc["very_high", "people"]
    assert recovered.cohort.is_unique
    assert (tiers["mean_predicted_risk"].diff().dropna() < 0).all()
    assert tiers.loc["very_high", "mean_age"] > tiers.loc["low", "mean_age"]


def test_risk_tier_characteristics_rise_with_risk(recovered):
    frame = recovered.table("risk_tier_characteristics").frame
    heart_failure = frame.loc[frame["characteristic"] == "heart_failure"].set_index("tier")

    assert (heart_failure["people"] <= heart_failure["tier_people"]).all()
    assert heart_failure.loc["very_high", "share"] > heart_failure.loc["low", "share"] * 10


def test_risk_stratification_publishes_no_individual_rows(recovered):
    for table in recovered.tables:
        assert len(table.frame) <= 200, table.name
        assert "person_id" not in table.frame.columns
        assert table.persons.index.equals(table.frame.index)


def test_risk_stratification_evidence_serialises(recovered):
    for table in recovered.tables:
        sidecar = json.loads(json.dumps(table.sidecar()))
        assert sidecar["rows"] == len(table.frame)
    assert (
        json.loads(json.dumps(recovered.table("risk_model").sidecar()))["model"]["parameters"]
        == len(GENERATOR_FEATURES) + 1
    )


# --- The prospective design on a two-year drop ---------------------------------------------
@pytest.fixture(scope="module")
def two_year_frames():
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    drop = synth.generate(patients=15_000, seed=4, config=config,
                          tables=["patients", "gp_events", "apc_spells"])  # fmt: skip
    return frames_from_tables(drop)


@pytest.mark.parametrize("tiers", TIER_CONFIGS[:3])
def test_prospective_risk_stratification_tiers_have_the_configured_sizes(two_year_frames, tiers):
    result = risk.risk_stratification(two_year_frames, index_date=date(2024, 4, 1),
                                      tiers=tiers, seed=1)  # fmt: skip
    table = result.table("risk_tiers").frame
    people = len(registered_population(two_year_frames, date(2024, 4, 1)))
    expected = np.diff(np.r_[0, np.floor(np.cumsum([s for _, s in tiers]) * people + 0.5)])

    assert list(table["tier"]) == [name for name, _ in tiers]
    assert table["people"].to_numpy() == pytest.approx(expected)
    assert len(result.cohort) == expected[0]
    assert result.parameters["features"][-2:] == ["prior_emergency_1", "prior_emergency_2_plus"]
    characteristics = set(result.table("risk_tier_characteristics").frame["characteristic"])
    assert "emergency_admission_next_12_months" in characteristics


def test_prospective_design_needs_the_following_year_in_the_extract(two_year_frames):
    with pytest.raises(AnalysisInputError, match="12 months after the index date"):
        risk.risk_stratification(two_year_frames, index_date=date(2024, 10, 1))


def test_risk_stratification_refuses_unknown_features_and_designs(two_year_frames):
    with pytest.raises(AnalysisInputError, match="shoe_size"):
        risk.risk_stratification(two_year_frames, index_date=date(2024, 4, 1),
                                 features=("male", "shoe_size"))  # fmt: skip
    with pytest.raises(AnalysisInputError, match="design"):
        risk.risk_stratification(two_year_frames, index_date=date(2024, 4, 1), design="later")


def test_an_extract_without_deprivation_is_refused_clearly_unless_the_feature_is_left_out():
    drop = synth.generate(patients=3000, seed=3, config=synth.SynthConfig(
        faults=synth.FaultRates.none()))  # fmt: skip
    frames = frames_from_tables(drop)
    frames["patients"] = frames["patients"].drop(columns=["imd_decile"])
    index_date = drop.end

    with pytest.raises(AnalysisInputError, match="deprivation needs imd_decile"):
        risk.risk_stratification(frames, index_date=index_date, design="year_before")
    without = [f for f in risk.FEATURES if f != "deprivation"]
    result = risk.risk_stratification(frames, index_date=index_date, design="year_before",
                                      features=without)  # fmt: skip
    terms = set(result.table("risk_model").frame["term"])
    assert "deprivation" not in terms and "age_85_plus" in terms
    assert "deprivation" not in result.parameters["features"]
