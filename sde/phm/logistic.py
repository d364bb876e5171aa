"""Logistic regression fitted inside the environment, and the checks of a risk score:
pure NumPy/SciPy (no scikit-learn or statsmodels), vectorised for a million rows.

``fit_logistic`` maximises the likelihood by Newton-Raphson (iteratively reweighted least
squares) with step halving, and gives standard errors from the inverse of the
information matrix at the estimate. ``auc`` is the Mann-Whitney statistic from ranks,
``auc_interval`` the Hanley-McNeil (1982) 95% interval, ``deciles`` equal-sized groups
by rank for calibration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from scipy import linalg, special, stats

from sde.phm.frames import AnalysisInputError

Z95: Final = float(stats.norm.ppf(0.975))
_CHUNK: Final = 262_144  # rows per block of the information matrix


@dataclass(frozen=True)
class LogisticFit:
    """Coefficients (intercept first), standard errors and how the fit went."""

    terms: tuple[str, ...]
    coefficients: np.ndarray
    standard_errors: np.ndarray
    iterations: int
    converged: bool
    observations: int

    def linear_predictor(self, x: np.ndarray) -> np.ndarray:
        return self.coefficients[0] + x @ self.coefficients[1:]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return special.expit(self.linear_predictor(x))


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, names: Sequence[str] | None = None,
    max_iter: int = 50, tol: float = 1e-8,
) -> LogisticFit:  # fmt: skip
    """Maximum-likelihood logistic regression of ``y`` (0/1) on ``x`` (n x k, no
    intercept column: one is added) by Newton-Raphson, with step halving if the
    log-likelihood falls. Rows that repeat (the same features and outcome, as binary
    features make common) are fitted once with their count as a frequency weight: the
    same likelihood, so the same estimates and standard errors, in a fraction of the
    time. AnalysisInputError if the information matrix is singular (a constant or
    collinear feature)."""
    n, k = x.shape
    y = np.asarray(y, dtype="float64")
    x, y, count = _collapse(np.asarray(x, dtype="float64"), y)
    design = np.column_stack([np.ones(len(y)), x])
    beta = np.zeros(k + 1)
    mean = min(max(float(np.sum(count * y) / n), 1e-6), 1 - 1e-6)
    beta[0] = np.log(mean / (1 - mean))
    loglik = _loglik(design, y, count, beta)
    converged, iteration = False, 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        gradient, information = _score(design, y, count, beta)
        step = _solve(information, gradient)
        for _ in range(30):  # halve a step that lowers the likelihood
            new = _loglik(design, y, count, beta + step)
            if new >= loglik - 1e-10 * abs(loglik):
                break
            step /= 2
        beta, loglik = beta + step, new
        if np.max(np.abs(step)) < tol:  # the information barely moves in so small a step
            converged = True
            break
    if not converged:
        _, information = _score(design, y, count, beta)
    covariance = _solve(information, np.eye(k + 1))
    terms = ("intercept", *(names if names is not None else [f"x{j}" for j in range(k)]))
    return LogisticFit(terms, beta, np.sqrt(np.diag(covariance)), iteration, converged, n)


def _collapse(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows of (x, y) and how often each occurs, when that is worth it (at
    most half as many rows, and a key that fits in 63 bits); else the rows with count 1."""
    n = len(y)
    key, radix = np.zeros(n, dtype="int64"), 1
    for column in (*x.T, y):
        codes, levels = pd.factorize(column)
        radix *= max(len(levels), 1)
        if radix > 2**62:
            return x, y, np.ones(n)
        key = key * len(levels) + codes
    distinct, first, count = np.unique(key, return_index=True, return_counts=True)
    if len(distinct) > n // 2:
        return x, y, np.ones(n)
    return x[first], y[first], count.astype("float64")


def _loglik(design: np.ndarray, y: np.ndarray, count: np.ndarray, beta: np.ndarray) -> float:
    eta = design @ beta
    return float(np.sum(count * (y * eta - np.logaddexp(0.0, eta))))


def _score(
    design: np.ndarray, y: np.ndarray, count: np.ndarray, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and information matrix, in row chunks (no n x k weighted copy)."""
    k = design.shape[1]
    gradient, information = np.zeros(k), np.zeros((k, k))
    for lo in range(0, design.shape[0], _CHUNK):
        chunk, c = design[lo : lo + _CHUNK], count[lo : lo + _CHUNK]
        p = special.expit(chunk @ beta)
        gradient += chunk.T @ (c * (y[lo : lo + _CHUNK] - p))
        weighted = chunk * np.sqrt(c * p * (1 - p))[:, None]
        information += weighted.T @ weighted
    return gradient, information


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        factor = linalg.cho_factor(matrix)
    except linalg.LinAlgError as error:
        raise AnalysisInputError(
            "the risk model cannot be fitted: a feature is constant or collinear with others"
        ) from error
    return np.asarray(linalg.cho_solve(factor, rhs))


def auc(scores: np.ndarray, outcome: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney U of the positives' ranks (ties count a
    half), vectorised. NaN unless both outcomes occur."""
    positive = np.asarray(outcome, dtype=bool)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(scores)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_interval(value: float, positives: int, negatives: int) -> tuple[float, float]:
    """Hanley-McNeil (1982) 95% interval of an AUC, clipped to [0, 1]."""
    q1, q2 = value / (2 - value), 2 * value**2 / (1 + value)
    variance = (value * (1 - value) + (positives - 1) * (q1 - value**2)
                + (negatives - 1) * (q2 - value**2)) / (positives * negatives)  # fmt: skip
    half = Z95 * float(np.sqrt(max(variance, 0.0)))
    return max(value - half, 0.0), min(value + half, 1.0)


def deciles(scores: np.ndarray) -> np.ndarray:
    """1-10: equal-sized groups by rank of ``scores`` (ties by position)."""
    order = np.argsort(scores, kind="stable")
    group = np.empty(len(scores), dtype="int64")
    group[order] = np.arange(len(scores)) * 10 // max(len(scores), 1) + 1
    return group
