"""Small vectorised helpers shared by the generator's modules (package-private)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

_NA: Final = -(2**40)  # a missing day
_EPOCH: Final = date(1970, 1, 1)
_YEAR: Final = 365.25
_STR: Final = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default "str" dtype


def _day(d: date) -> int:
    return (d - _EPOCH).days


def _rng(seed: int, stream: str) -> np.random.Generator:
    """An independent stream per table, so asking for fewer tables changes none of them."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(stream.encode())]))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(rng: np.random.Generator, n: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """n draws of an index from ``weights`` (normalised)."""
    cum = np.cumsum(np.asarray(weights, dtype=float))
    return np.minimum(np.searchsorted(cum / cum[-1], rng.random(n), side="right"), cum.size - 1)


def _uniform_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return lo + (rng.random(lo.size) * (hi - lo + 1)).astype(np.int64)


def _spread(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``k[i]`` distinct days in ``[lo[i], hi[i]]``, one in each of k equal slices.

    Returns (unit index, day) per row. Distinct days by construction mean the clean data
    has no exact duplicate rows, so every duplicate in a drop is an injected one.
    """
    span = np.maximum(hi - lo + 1, 0)
    k = np.minimum(k, span)
    unit = np.repeat(np.arange(k.size), k)
    j = np.arange(unit.size) - np.repeat(np.cumsum(k) - k, k)
    kk, sp = k[unit], span[unit]
    b0, b1 = j * sp // kk, (j + 1) * sp // kk
    return unit, lo[unit] + b0 + (rng.random(unit.size) * (b1 - b0)).astype(np.int64)


def _lognormal(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    return np.exp(sigma * rng.standard_normal(n) - sigma * sigma / 2)  # mean 1
