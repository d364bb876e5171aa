"""Rates and their confidence intervals, and the slope and relative indices of
inequality (reference/phm-analytics.md, "Inequalities"). Pure NumPy/SciPy statistics,
vectorised over arrays, Series and (for standardised rates) a DataFrame of groups.

Methods follow Public Health England's "Technical guide: confidence intervals" (2018):

* proportions: **Wilson** score interval;
* counts: **exact Poisson** (Garwood) limits from the chi-squared distribution;
* crude rates: the exact Poisson limits of the count, divided by the population;
* directly age-standardised rates: the European Standard Population 2013 (19 bands,
  ``population.ESP2013_BANDS``/``ESP2013_WEIGHTS``) and the **Dobson** method;
* SII and RII: population-weighted least squares of each group's value on the midpoint
  of its cumulative population rank, with the uncertainty of the group values carried
  through analytically (see ``slope_index_of_inequality``).

Scalars give 0-d arrays (``float()`` them); a Series input gives ndarray output in the
Series' order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2, norm

from sde.phm.population import ESP2013_BANDS, ESP2013_WEIGHTS

Floats = NDArray[np.float64]
ESP_WEIGHTS: Final = np.asarray(ESP2013_WEIGHTS, dtype="float64")


class Interval(NamedTuple):
    lower: Floats
    upper: Floats


class Rate(NamedTuple):
    rate: Floats
    lower: Floats
    upper: Floats


def _floats(values: ArrayLike) -> Floats:
    return np.asarray(values, dtype="float64")


def z_for(level: float) -> float:
    """The two-sided standard normal quantile of a confidence level (0.95 -> 1.95996)."""
    if not 0 < level < 1:
        raise ValueError("the confidence level must be between 0 and 1")
    return float(norm.ppf(0.5 + level / 2))


def wilson_interval(k: ArrayLike, n: ArrayLike, z: float = 1.96) -> Interval:
    """Wilson score interval of the proportion ``k / n`` (as a fraction, 0-1).

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``; it stays inside [0, 1]
    and behaves at k = 0 and k = n, unlike the normal approximation. ``n = 0`` gives
    NaN limits. Raises ValueError if ``k`` is negative or exceeds ``n``.
    """
    k, n = np.broadcast_arrays(_floats(k), _floats(n))
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("a proportion needs 0 <= k <= n")
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        z2n = z * z / n
        centre = p + z2n / 2
        half = z * np.sqrt(p * (1 - p) / n + z2n / (4 * n))
        denominator = 1 + z2n
        lower = np.where(n > 0, (centre - half) / denominator, np.nan)
        upper = np.where(n > 0, (centre + half) / denominator, np.nan)
    # Exactly 0 at k = 0 and 1 at k = n (rounding leaves a hair either way).
    lower = np.where((k == 0) & (n > 0), 0.0, np.clip(lower, 0.0, 1.0))
    upper = np.where((k == n) & (n > 0), 1.0, np.clip(upper, 0.0, 1.0))
    return Interval(lower, upper)


def poisson_interval(k: ArrayLike, level: float = 0.95) -> Interval:
    """Exact (Garwood) limits of a Poisson count ``k``, with ``a = 1 - level``:
    ``lower = chi2.ppf(a/2, 2k) / 2`` (0 when k = 0), ``upper = chi2.ppf(1 - a/2, 2k + 2) / 2``.
    Raises ValueError for a negative count."""
    k = _floats(k)
    if np.any(k < 0):
        raise ValueError("a count cannot be negative")
    alpha = 1 - level
    with np.errstate(invalid="ignore"):
        lower = np.where(k > 0, chi2.ppf(alpha / 2, 2 * k) / 2, 0.0)
    upper = chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
    return Interval(_floats(lower), _floats(upper))


def crude_rate(
    events: ArrayLike, population: ArrayLike, per: float = 100_000, level: float = 0.95
) -> Rate:
    """``events / population * per`` with the exact Poisson limits of the event count
    scaled the same way. A zero population gives NaN."""
    events, population = np.broadcast_arrays(_floats(events), _floats(population))
    lower, upper = poisson_interval(events, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(population > 0, per / population, np.nan)
    return Rate(events * scale, lower * scale, upper * scale)


def _by_band(counts: pd.DataFrame | pd.Series | ArrayLike, what: str) -> pd.DataFrame:
    """Counts as a DataFrame of groups x the 19 ESP2013 bands, in band order."""
    if isinstance(counts, pd.Series):
        counts = counts.to_frame().T
    elif not isinstance(counts, pd.DataFrame):
        array = np.atleast_2d(_floats(counts))
        if array.ndim != 2 or array.shape[1] != len(ESP2013_BANDS):
            raise ValueError(f"{what} needs exactly the 19 ESP2013 bands as columns")
        counts = pd.DataFrame(array, columns=list(ESP2013_BANDS))
    columns = [str(c) for c in counts.columns]
    if sorted(columns) != sorted(ESP2013_BANDS):
        raise ValueError(f"{what} needs exactly the 19 ESP2013 bands as columns")
    counts = counts.set_axis(columns, axis=1)[list(ESP2013_BANDS)].astype("float64")
    if counts.isna().to_numpy().any() or (counts.to_numpy() < 0).any():
        raise ValueError(f"{what} must be non-negative counts")
    return counts


def directly_standardised_rate(
    events_by_band: pd.DataFrame | pd.Series | ArrayLike,
    population_by_band: pd.DataFrame | pd.Series | ArrayLike,
    *,
    per: float = 100_000,
    level: float = 0.95,
) -> pd.DataFrame:
    """Directly age-standardised rate per ``per`` (European Standard Population 2013)
    with its confidence interval by the Dobson method, one row per group.

    Input: DataFrames indexed by group with the 19 ESP2013 bands as columns (a Series
    indexed by band, or an array of 19 or g x 19, is one group); the two must have the
    same groups. ``DSR = per · Σ wᵢ Oᵢ/nᵢ`` with weights ``wᵢ`` summing to 1, and
    ``var(DSR) = per² · Σ wᵢ² Oᵢ/nᵢ²``. Dobson: with ``O = Σ Oᵢ`` and ``O_L``, ``O_U`` its
    exact Poisson limits, ``DSR_L = DSR + sqrt(var(DSR)/O) · (O_L - O)`` and likewise
    ``DSR_U`` (PHE technical guide; the DSR is a weighted sum of Poisson counts).

    Bands with **no population** contribute a rate of 0 (as a band with people and no
    events would): a small group that has nobody aged 90+ still gets a rate, which
    understates it by at most that band's weight times its true rate. Events in a band
    with no population are an error (ValueError). A group with no population at all gets
    NaN; a group with no events gets a DSR of 0 and NaN limits (Dobson is undefined at
    O = 0). PHE publish no DSR on fewer than 10 events: the ``events`` column is returned
    so callers can apply that rule.

    Returns columns ``events``, ``population``, ``rate``, ``lower``, ``upper``.
    """
    events = _by_band(events_by_band, "events_by_band")
    population = _by_band(population_by_band, "population_by_band")
    if not events.index.equals(population.index):
        raise ValueError("events and population need the same groups (index)")
    observed, people = events.to_numpy(), population.to_numpy()
    if np.any((people == 0) & (observed > 0)):
        raise ValueError("events in an age band with no population")
    weights = ESP_WEIGHTS / ESP_WEIGHTS.sum()
    safe = np.where(people > 0, people, 1.0)
    rate = per * (weights * observed / safe).sum(axis=1)
    variance = per**2 * (weights**2 * observed / safe**2).sum(axis=1)
    total = observed.sum(axis=1)
    total_lower, total_upper = poisson_interval(total, level)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(total > 0, np.sqrt(variance / total), np.nan)
    empty = people.sum(axis=1) == 0
    return pd.DataFrame(
        {
            "events": total,
            "population": people.sum(axis=1),
            "rate": np.where(empty, np.nan, rate),
            "lower": rate + factor * (total_lower - total),
            "upper": rate + factor * (total_upper - total),
        },
        index=events.index,
    )


def standard_error_from_interval(lower: ArrayLike, upper: ArrayLike, z: float = 1.96) -> Floats:
    """``(upper - lower) / 2z``: the standard error implied by a (possibly asymmetric)
    confidence interval, as PHE's SII tool derives it from the groups' limits."""
    return (_floats(upper) - _floats(lower)) / (2 * z)


@dataclass(frozen=True)
class InequalityIndex:
    """The slope index of inequality (SII), the relative index (RII = SII / mean) and
    their confidence limits; ``mean`` is the population-weighted mean of the values."""

    sii: float
    sii_lower: float
    sii_upper: float
    rii: float
    rii_lower: float
    rii_upper: float
    mean: float
    groups: int
    level: float


def slope_index_of_inequality(
    values: ArrayLike,
    population: ArrayLike,
    *,
    standard_errors: ArrayLike | None = None,
    level: float = 0.95,
) -> InequalityIndex:
    """SII and RII of ``values`` (a rate or proportion per group) across groups ordered
    from **most deprived to least deprived** (IMD decile 1 first), weighted by
    ``population``.

    Each group is placed at the midpoint of its cumulative share of the population,
    ranked so that x = 0 is the least deprived end and x = 1 the most deprived; the SII
    is the slope of the population-weighted least-squares line through the values, i.e.
    **the fitted value for the most deprived minus that for the least deprived** (positive
    when the value is higher in more deprived areas). RII = SII / mean, the
    population-weighted mean of the values (for crude rates, the overall rate): the gap
    as a share of the average. Groups with no population are left out; at least two
    groups must remain.

    Confidence interval: the sampling error of the group values (``standard_errors``,
    e.g. ``standard_error_from_interval`` of their CIs) carried through the regression.
    The SII is a fixed linear combination ``Σ cᵢ yᵢ`` of the values, so
    ``var(SII) = Σ cᵢ² seᵢ²``, and the mean likewise; the RII's limits are Fieller's for
    the ratio of the two (correlated, normal) estimates. This is the closed form of
    PHE's simulation method (which draws each value from a normal with its standard
    error, refits, and takes percentiles): same model, no Monte Carlo error, no seed.
    We do not use the regression's residual standard error: with ten points it measures
    how far the deciles depart from a straight line, not how precisely their rates are
    known, and it is zero for a perfectly linear gradient however small the population.
    Without ``standard_errors`` the limits are NaN. If the mean is not clearly non-zero
    (Fieller's ``g >= 1``) the RII limits are NaN.
    """
    y, weight = np.broadcast_arrays(_floats(values), _floats(population))
    se = np.zeros_like(y) if standard_errors is None else _floats(standard_errors) + 0 * y
    if y.ndim != 1:
        raise ValueError("one value per group, in order from most to least deprived")
    if np.any(weight < 0) or np.any(np.isnan(weight)):
        raise ValueError("populations must be non-negative")
    keep = weight > 0
    y, weight, se = y[keep], weight[keep], se[keep]
    if y.size < 2:
        raise ValueError("the SII needs at least two groups with a population")
    if np.any(np.isnan(y)) or np.any(np.isnan(se)):
        raise ValueError("every group with a population needs a value (and standard error)")
    share = weight / weight.sum()
    x = 1 - (np.cumsum(share) - share / 2)  # most deprived (first) near 1
    x_bar = float(share @ x)
    sxx = float(share @ (x - x_bar) ** 2)
    slope_weights = share * (x - x_bar) / sxx  # SII = Σ cᵢ yᵢ
    sii, mean = float(slope_weights @ y), float(share @ y)
    var_sii = float(slope_weights**2 @ se**2)
    var_mean = float(share**2 @ se**2)
    covariance = float((slope_weights * share) @ se**2)
    z = z_for(level)
    known = standard_errors is not None
    half = float(z * np.sqrt(var_sii)) if known else np.nan
    rii = sii / mean if mean != 0 else np.nan
    rii_lower, rii_upper = (
        _fieller(sii, mean, var_sii, var_mean, covariance, z) if known else (np.nan, np.nan)
    )
    return InequalityIndex(
        sii=sii, sii_lower=sii - half, sii_upper=sii + half, rii=rii, rii_lower=rii_lower,
        rii_upper=rii_upper, mean=mean, groups=int(y.size), level=level,
    )  # fmt: skip


def _fieller(
    a: float, b: float, var_a: float, var_b: float, cov: float, z: float
) -> tuple[float, float]:
    """Fieller's limits for a / b when (a, b) is bivariate normal: the θ with
    ``(a - θb)² <= z² var(a - θb)``. NaN if b is not clearly non-zero."""
    if b == 0:
        return np.nan, np.nan
    theta, q = a / b, z * z / (b * b)
    g = q * var_b
    discriminant = var_a - 2 * theta * cov + theta**2 * var_b - q * (var_a * var_b - cov**2)
    if g >= 1 or discriminant < 0:
        return np.nan, np.nan
    centre = theta - q * cov
    half = z / abs(b) * np.sqrt(discriminant)
    return float((centre - half) / (1 - g)), float((centre + half) / (1 - g))
