"""Rates, confidence intervals and the SII/RII against published and hand-worked values."""

import numpy as np
import pandas as pd
import pytest

from sde.phm.population import ESP2013_BANDS, ESP2013_WEIGHTS
from sde.phm.rates import (
    crude_rate,
    directly_standardised_rate,
    poisson_interval,
    slope_index_of_inequality,
    standard_error_from_interval,
    wilson_interval,
    z_for,
)


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
# method 3 (Wilson score, no continuity correction).
@pytest.mark.parametrize(
    ("k", "n", "lower", "upper"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
     (1, 29, 0.0061, 0.1718)],
)  # fmt: skip
def test_wilson_interval_matches_newcombe(k, n, lower, upper):
    result = wilson_interval(k, n)

    assert float(result.lower) == pytest.approx(lower, abs=5e-5)
    assert float(result.upper) == pytest.approx(upper, abs=5e-5)


def test_wilson_interval_is_exactly_zero_and_one_at_the_ends_and_nan_without_people():
    lower, upper = wilson_interval([0, 5, 0], [5, 5, 0])

    assert lower[0] == 0.0 and upper[1] == 1.0
    assert np.isnan(lower[2]) and np.isnan(upper[2])


def test_wilson_interval_of_a_series_keeps_its_order():
    k, n = pd.Series([15, 81], index=["b", "a"]), pd.Series([148, 263], index=["b", "a"])

    lower, _ = wilson_interval(k, n)

    assert lower == pytest.approx([0.0624, 0.2553], abs=5e-5)


def test_wilson_interval_rejects_more_successes_than_trials():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(6, 5)


# Exact (Garwood) 95% limits for a Poisson count, as tabulated (e.g. PHE's technical guide
# and any table of chi-squared based limits).
@pytest.mark.parametrize(
    ("k", "lower", "upper"),
    [(0, 0.0, 3.689), (1, 0.0253, 5.572), (5, 1.623, 11.668), (10, 4.795, 18.390),
     (100, 81.364, 121.627)],
)  # fmt: skip
def test_poisson_interval_matches_published_exact_limits(k, lower, upper):
    result = poisson_interval(k)

    assert float(result.lower) == pytest.approx(lower, abs=6e-4)
    assert float(result.upper) == pytest.approx(upper, abs=6e-4)


def test_poisson_interval_at_another_level():
    # 90%: k = 0 -> upper = -ln(0.05) = 2.996
    assert float(poisson_interval(0, level=0.90).upper) == pytest.approx(2.9957, abs=1e-4)


def test_crude_rate_scales_the_count_and_its_limits():
    rate, lower, upper = crude_rate([10, 0], [1_000, 0], per=1_000)

    assert rate[0] == 10.0
    assert lower[0] == pytest.approx(4.795, abs=1e-3)
    assert upper[0] == pytest.approx(18.390, abs=1e-3)
    assert np.isnan(rate[1]) and np.isnan(upper[1])


def test_directly_standardised_rate_by_hand():
    # 1,000 people in each of the 19 bands; band i (0-based) has i + 1 events.
    events = pd.Series(range(1, 20), index=list(ESP2013_BANDS))
    population = pd.Series(1_000, index=list(ESP2013_BANDS))
    # Weights per 100,000 and per = 100,000, so DSR = Σ wᵢ·Oᵢ/nᵢ = Σ wᵢ·Oᵢ / 1,000:
    # Σ wᵢ·Oᵢ = 5000·1 + 5500·2 + 5500·3 + 5500·4 + 6000·5 + 6000·6 + 6500·7 + 7000·8
    #         + 7000·9 + 7000·10 + 7000·11 + 6500·12 + 6000·13 + 5500·14 + 5000·15
    #         + 4000·16 + 2500·17 + 1500·18 + 1000·19
    #         = 5000 + 11000 + 16500 + 22000 + 30000 + 36000 + 45500 + 56000 + 63000
    #         + 70000 + 77000 + 78000 + 78000 + 77000 + 75000 + 64000 + 42500 + 27000
    #         + 19000 = 892,500
    dsr = 892_500 / 1_000  # 892.5 per 100,000
    # var(DSR) = Σ wᵢ²·Oᵢ/nᵢ² = Σ wᵢ²·Oᵢ / 1,000,000
    weighted = sum(w * w * o for w, o in zip(ESP2013_WEIGHTS, range(1, 20), strict=True))
    assert weighted == 5_046_250_000
    variance = 5_046_250_000 / 1_000_000  # 5046.25
    # Dobson: O = 190 events; its exact Poisson 95% limits are 163.943 and 219.022.
    total, total_lower, total_upper = 190, 163.94302, 219.02161
    factor = (variance / total) ** 0.5  # sqrt(26.5592) = 5.15356
    lower = dsr + factor * (total_lower - total)  # 892.5 - 134.286 = 758.214
    upper = dsr + factor * (total_upper - total)  # 892.5 + 149.564 = 1042.065

    result = directly_standardised_rate(events, population)

    row = result.iloc[0]
    assert (row["events"], row["population"]) == (190, 19_000)
    assert row["rate"] == pytest.approx(dsr)
    assert row["lower"] == pytest.approx(lower, abs=1e-3)
    assert row["upper"] == pytest.approx(upper, abs=1e-3)
    assert (round(row["lower"], 2), round(row["upper"], 2)) == (758.21, 1042.06)


def test_directly_standardised_rate_equals_the_crude_rate_for_the_standard_population():
    # Each group has exactly the ESP2013 age structure (people = 3·weight), and its own
    # age-specific rates: the DSR is then the crude rate.
    rng = np.random.default_rng(1)
    people = np.tile(3 * np.asarray(ESP2013_WEIGHTS), (4, 1))
    events = rng.binomial(people, rng.uniform(0.001, 0.2, people.shape))
    frame = lambda a: pd.DataFrame(a, index=list("abcd"), columns=list(ESP2013_BANDS))  # noqa: E731

    result = directly_standardised_rate(frame(events), frame(people))

    crude = events.sum(axis=1) / people.sum(axis=1) * 100_000
    assert result["rate"].to_numpy() == pytest.approx(crude)
    assert list(result.index) == list("abcd")


def test_directly_standardised_rate_reorders_band_columns_by_name():
    events = pd.Series(range(1, 20), index=list(ESP2013_BANDS))[::-1]
    population = pd.Series(1_000, index=list(ESP2013_BANDS))[::-1]

    assert directly_standardised_rate(events, population)["rate"].iloc[0] == pytest.approx(892.5)


def test_directly_standardised_rate_counts_an_empty_band_as_a_zero_rate():
    events = np.r_[np.full(18, 10), 0]
    people = np.r_[np.full(18, 1_000), 0]  # nobody aged 90+

    rate = directly_standardised_rate(events, people)["rate"].iloc[0]

    assert rate == pytest.approx(1_000 * (100_000 - 1_000) / 100_000)


@pytest.mark.parametrize(
    ("events", "people", "message"),
    [(np.r_[np.zeros(18), 1], np.r_[np.full(18, 10), 0], "no population"),
     (np.full(19, -1), np.full(19, 10), "non-negative"),
     (np.ones(18), np.ones(18), "19 ESP2013 bands")],
)  # fmt: skip
def test_directly_standardised_rate_rejects_impossible_input(events, people, message):
    with pytest.raises(ValueError, match=message):
        directly_standardised_rate(events, people)


def test_directly_standardised_rate_without_events_has_no_dobson_limits():
    result = directly_standardised_rate(np.zeros(19), np.full(19, 100)).iloc[0]

    assert result["rate"] == 0.0
    assert np.isnan(result["lower"]) and np.isnan(result["upper"])


# --- SII / RII -----------------------------------------------------------------------------
POPULATION = np.array([140, 120, 110, 100, 100, 90, 90, 90, 80, 80], dtype=float)


def _midpoints(population):
    """x of each group, most deprived first: 1 at the most deprived end, 0 at the least."""
    share = population / population.sum()
    return 1 - (np.cumsum(share) - share / 2)


@pytest.mark.parametrize(("intercept", "slope"), [(100.0, 250.0), (50.0, -30.0), (7.0, 0.0)])
def test_sii_recovers_a_constructed_linear_gradient_exactly(intercept, slope):
    x = _midpoints(POPULATION)
    values = intercept + slope * x
    mean = float(POPULATION @ values / POPULATION.sum())

    result = slope_index_of_inequality(values, POPULATION)

    assert result.sii == pytest.approx(slope, abs=1e-9)
    assert result.rii == pytest.approx(slope / mean, abs=1e-12)
    assert result.mean == pytest.approx(mean)
    assert result.groups == 10


def test_sii_is_most_deprived_minus_least_deprived():
    # Higher in the most deprived (listed first): positive.
    result = slope_index_of_inequality(np.linspace(20, 10, 10), POPULATION)

    assert result.sii > 0 and result.rii > 0


def test_sii_of_a_flat_gradient_is_zero_with_an_interval_around_it():
    se = np.full(10, 0.5)

    result = slope_index_of_inequality(np.full(10, 12.0), POPULATION, standard_errors=se)

    assert result.sii == pytest.approx(0.0, abs=1e-9)
    assert result.rii == pytest.approx(0.0, abs=1e-9)
    assert result.sii_lower < 0 < result.sii_upper
    assert result.rii_lower < 0 < result.rii_upper


def test_sii_interval_is_the_propagated_standard_error():
    se = np.linspace(1, 3, 10)
    x = _midpoints(POPULATION)
    share = POPULATION / POPULATION.sum()
    c = share * (x - share @ x) / (share @ (x - share @ x) ** 2)

    result = slope_index_of_inequality(10 + 5 * x, POPULATION, standard_errors=se)

    half = z_for(0.95) * np.sqrt(np.sum(c**2 * se**2))
    assert (result.sii_lower, result.sii_upper) == pytest.approx((5 - half, 5 + half))


def test_sii_and_rii_intervals_agree_with_phe_simulation():
    # PHE's method: draw each decile's value from a normal with its standard error,
    # refit, take the 2.5th and 97.5th percentiles. Ours is its closed form.
    rng = np.random.default_rng(20240401)
    values = np.array([30, 27, 26, 22, 21, 19, 18, 16, 15, 14], dtype=float)
    se = np.array([2.0, 1.8, 1.9, 1.5, 1.5, 1.4, 1.3, 1.3, 1.2, 1.2])
    result = slope_index_of_inequality(values, POPULATION, standard_errors=se)
    draws = values + se * rng.standard_normal((200_000, 10))
    x = _midpoints(POPULATION)
    share = POPULATION / POPULATION.sum()
    c = share * (x - share @ x) / (share @ (x - share @ x) ** 2)
    sii, mean = draws @ c, draws @ share

    assert (result.sii_lower, result.sii_upper) == pytest.approx(
        np.percentile(sii, [2.5, 97.5]), abs=0.1
    )
    assert (result.rii_lower, result.rii_upper) == pytest.approx(
        np.percentile(sii / mean, [2.5, 97.5]), abs=0.005
    )


def test_sii_leaves_out_groups_without_population_and_needs_two():
    with_empty = slope_index_of_inequality([5.0, 9.0, 3.0], [10, 0, 10])

    assert with_empty.groups == 2
    assert with_empty.sii == pytest.approx(4.0)  # from 3 to 5 across x = 0.25 .. 0.75
    with pytest.raises(ValueError, match="two groups"):
        slope_index_of_inequality([5.0, 9.0], [10, 0])


def test_sii_without_standard_errors_has_no_limits():
    result = slope_index_of_inequality(np.linspace(5, 1, 10), POPULATION)

    assert np.isnan(result.sii_lower) and np.isnan(result.rii_upper)


def test_standard_error_from_an_interval():
    assert standard_error_from_interval(8.04, 11.96) == pytest.approx(1.0)
