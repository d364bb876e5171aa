"""NHS numbers (Modulus 11): valid synthetic numbers no real person can have, and the
vectorised string column, with injected faults, that every table carries."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from sde.data.synth.arrays import _STR

_POWERS: Final = 10 ** np.arange(8, -1, -1, dtype=np.int64)


def nhs_check_digits(base: np.ndarray) -> np.ndarray:
    """Modulus 11 check digit of 9-digit bases; 10 means no valid number has that base."""
    base = np.asarray(base, dtype=np.int64)
    total = np.zeros(base.shape, dtype=np.int64)
    for weight, power in zip(range(10, 1, -1), _POWERS, strict=True):
        total += weight * (base // power % 10)
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


def generate_nhs_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """n unique valid NHS numbers (int64) from the 9xx range.

    Numbers starting with 9 are never issued to patients (999 is the official test range;
    England uses 4xx and 6xx-7xx, Scotland's CHI starts with a day of month, Northern
    Ireland 320-399), so a synthetic number can never be a real person's.
    """
    numbers = np.empty(0, dtype=np.int64)
    while numbers.size < n:
        base = 900_000_000 + rng.integers(0, 100_000_000, size=(n - numbers.size) * 11 // 10 + 16)
        check = nhs_check_digits(base)
        drawn = np.concatenate([numbers, (base * 10 + check)[check != 10]])
        _, first = np.unique(drawn, return_index=True)
        numbers = drawn[np.sort(first)]
    return numbers[:n]


def _nhs_chars(numbers: np.ndarray) -> np.ndarray:
    """(n, 10) ASCII digits of 10-digit numbers."""
    chars = np.empty((numbers.size, 10), dtype=np.uint8)
    rest = numbers.astype(np.int64)
    for i in range(9, -1, -1):
        rest, digit = np.divmod(rest, 10)
        chars[:, i] = digit + 48
    return chars


def _nhs_column(person_chars: np.ndarray, person: np.ndarray, fault: np.ndarray) -> pd.Series:
    """NHS number strings; ``fault`` 1-9 shifts the check digit by that much (invalid),
    10 drops the last digit (nine digits), 11 types a letter O for the fourth digit."""
    records = person_chars.view("S10").ravel()[person]  # one 10-byte copy per row
    faulty = np.flatnonzero(fault)
    if faulty.size == 0:
        data = records.view(np.uint8)
        offsets = np.arange(0, 10 * person.size + 1, 10, dtype=np.int32)
    else:
        chars = records.view(np.uint8).reshape(-1, 10)
        kind = fault[faulty]
        shifted = faulty[kind <= 9]
        chars[shifted, 9] = 48 + (chars[shifted, 9] - 48 + fault[shifted]) % 10
        chars[faulty[kind == 11], 3] = ord("O")
        lengths = np.full(person.size, 10, dtype=np.int32)
        lengths[faulty[kind == 10]] = 9
        data = chars[np.arange(10) < lengths[:, None]]
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int32)]).astype(np.int32)
    array = pa.StringArray.from_buffers(person.size, pa.py_buffer(offsets), pa.py_buffer(data))
    return pd.Series(pd.array(array, dtype=_STR))
