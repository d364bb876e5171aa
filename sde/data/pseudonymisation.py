"""Pseudonymisation primitives: NHS number validation, system and project pseudonyms,
and generalisation of dates of birth, as the pseudonymisation reference specifies.

Pure: pandas/numpy in, pandas out. No Django, no settings, no key loading: callers pass
the key bytes (from ``sde.keys``), so nothing here can reach key material on its own.

- ``SP = HMAC-SHA256(K_system, nhs_number)`` over the 10 ASCII digits of the normalised
  number, as 64 lower-case hex characters. A plain SHA-256 would not do: there are fewer
  than 10^10 NHS numbers, so an unkeyed hash is reversed by enumeration in minutes.
- ``K_project = HKDF-SHA256(K_master, salt=None, info="project:<id>:v<version>")``.
- ``PP = HMAC-SHA256(K_project, SP)`` over the SP's 64 hex characters, as hex. Two
  projects' PPs for one person differ, so their outputs cannot be joined.
"""

from __future__ import annotations

import hmac
from typing import Literal

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_KEY_BYTES = 32
# Modulus 11 weights for digits 1..9 (NHS Data Dictionary).
_WEIGHTS = np.arange(10, 1, -1, dtype=np.uint32)
_SEPARATORS = str.maketrans("", "", " -")
_PSEUDONYM_PATTERN = r"[0-9a-f]{64}"


def is_valid_nhs_number(value: str) -> bool:
    """True if ``value``, with spaces and hyphens removed, is 10 ASCII digits whose last
    digit is the Modulus 11 check digit of the first nine (a check digit of 10 is never
    valid). Anything that is not a ``str`` is invalid."""
    if not isinstance(value, str):
        return False
    digits = value.translate(_SEPARATORS)
    if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
        return False
    total = sum(
        int(digit) * weight for digit, weight in zip(digits[:9], range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def normalise_nhs_numbers(values: pd.Series) -> pd.Series:
    """The values with spaces and hyphens removed, as a string Series (same index; missing
    values stay missing). Valid numbers come back as their 10-digit form; invalid ones come
    back stripped but otherwise unchanged, so use ``valid_nhs_numbers`` to tell them apart.

    Raises ``TypeError`` unless the values are strings: integer NHS numbers would have lost
    any leading zeros, and silently reformatting them could join the wrong people.
    """
    if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        raise TypeError(f"NHS numbers must be strings, got dtype {values.dtype}")
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in {
        "string",
        "empty",
    }:
        raise TypeError("NHS numbers must be strings, got a column of mixed types")
    strings = values.astype("string")
    return strings.str.replace(" ", "", regex=False).str.replace("-", "", regex=False)


def valid_nhs_numbers(values: pd.Series) -> pd.Series:
    """Vectorised ``is_valid_nhs_number``: a bool Series with the same index."""
    return pd.Series(_valid(normalise_nhs_numbers(values)), index=values.index, dtype=bool)


def _valid(normalised: pd.Series) -> np.ndarray:
    valid = np.zeros(len(normalised), dtype=bool)
    ten_long = (normalised.str.len() == 10).fillna(False).to_numpy(dtype=bool)
    if ten_long.any():
        # Ten characters each, so the fixed-width UCS-4 array is an (n, 10) code matrix.
        codes = normalised[ten_long].to_numpy(dtype="U10").view(np.uint32).reshape(-1, 10)
        digits = codes - np.uint32(ord("0"))  # unsigned: anything below "0" wraps high
        all_digits = (digits <= 9).all(axis=1)
        check = 11 - (digits[:, :9] @ _WEIGHTS).astype(np.int64) % 11
        check[check == 11] = 0  # 10 stays 10 and never matches a single digit
        valid[ten_long] = all_digits & (check == digits[:, 9])
    return valid


def _require_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{what} must be at least {MIN_KEY_BYTES} bytes")


def _hmac_hex_unique(values: pd.Series, key: bytes) -> pd.Series:
    """Hex HMAC-SHA256 of each value, computed once per distinct value.

    This is the one sanctioned per-value Python loop in the data layer: HMAC has no numpy
    form, so we factorise, call OpenSSL's one-shot ``hmac.digest`` once for each distinct
    value (a population has one row per event but far fewer people), and map the digests
    back to every row with a vectorised ``take``.
    """
    codes, uniques = pd.factorize(values)
    if (codes < 0).any():  # callers validate first; a missing value must never be hashed
        raise ValueError("missing values cannot be pseudonymised")
    # .tolist() first: iterating a pandas Index element by element is much slower.
    digests = [
        hmac.digest(key, value.encode("ascii"), "sha256").hex() for value in uniques.tolist()
    ]
    mapped = np.asarray(digests, dtype=object).take(codes) if len(digests) else []
    return pd.Series(mapped, index=values.index, dtype="string")


def system_pseudonyms(nhs_numbers: pd.Series, key: bytes) -> pd.Series:
    """``SP = HMAC-SHA256(K_system, nhs_number)`` as 64 hex characters, per row.

    Raises ``ValueError`` if any value is not a valid NHS number (invalid numbers are never
    hashed: quarantine them with ``valid_nhs_numbers`` first) or the key is short. The
    message gives counts only, never values.
    """
    _require_key(key, "the system key")
    normalised = normalise_nhs_numbers(nhs_numbers)
    valid = _valid(normalised)
    if not valid.all():
        raise ValueError(
            f"{int((~valid).sum())} of {len(valid)} values are not valid NHS numbers; "
            "invalid numbers are never hashed (quarantine them first)"
        )
    return _hmac_hex_unique(normalised, key)


def project_key(master_key: bytes, project_id: int, key_version: int) -> bytes:
    """``K_project = HKDF-SHA256(K_master, info="project:<id>:v<version>")``, 32 bytes."""
    _require_key(master_key, "the master key")
    for name, number in (("project_id", project_id), ("key_version", key_version)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(f"{name} must be a positive integer")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"project:{project_id}:v{key_version}".encode("ascii"),
    )
    return hkdf.derive(master_key)


def project_pseudonyms(system_pseudonyms: pd.Series, key: bytes) -> pd.Series:
    """``PP = HMAC-SHA256(K_project, SP)`` as 64 hex characters, per row.

    Raises ``ValueError`` unless every value is a system pseudonym (64 lower-case hex
    characters), so an NHS number passed here by mistake is refused rather than hashed.
    """
    _require_key(key, "the project key")
    pseudonyms = system_pseudonyms.astype("string")
    well_formed = pseudonyms.str.fullmatch(_PSEUDONYM_PATTERN).fillna(False).astype(bool)
    if not well_formed.all():
        raise ValueError(
            f"{int((~well_formed).sum())} of {len(well_formed)} values are not system "
            "pseudonyms (64 lower-case hex characters)"
        )
    return _hmac_hex_unique(pseudonyms, key)


def generalise_date_of_birth(dates: pd.Series, to: Literal["year", "month"] = "year") -> pd.Series:
    """Coarsen dates of birth at ingestion, as the spec requires for quasi-identifiers.

    ``to="year"`` gives the year as a nullable integer (``Int64``); ``to="month"`` gives
    the first day of the month as ``datetime64`` (time of day dropped). Missing values stay
    missing. Input is datetimes, ``date`` objects or ISO 8601 strings: a format such as
    05/06/1980 is ambiguous (day or month first), so the source's parser converts it first.
    Raises ``ValueError`` if ``to`` is anything else or if any non-missing value is not
    such a date (the message gives a count, never the values).
    """
    if to not in ("year", "month"):
        raise ValueError(f"to must be 'year' or 'month', got {to!r}")
    parsed = pd.to_datetime(dates, errors="coerce", format="ISO8601")
    unparsed = int((parsed.isna() & dates.notna()).sum())
    if unparsed:
        raise ValueError(f"{unparsed} of {len(dates)} values are not dates")
    if to == "year":
        return parsed.dt.year.astype("Int64")
    return parsed.dt.to_period("M").dt.to_timestamp()


def pseudonymise_frame(clean: pd.DataFrame, system_key: bytes) -> pd.DataFrame:
    """A validated source frame as the data layer holds it: the NHS number replaced by the
    system pseudonym (``person_id``, first), the date of birth by ``birth_month``, and
    helper columns (``_row``) dropped."""
    frame = clean.copy()
    frame.insert(0, "person_id", system_pseudonyms(frame["nhs_number"], system_key))
    frame = frame.drop(columns=["nhs_number"])
    if "date_of_birth" in frame.columns:
        # In the date of birth's place: the catalogue's field order is the file's.
        frame.insert(
            frame.columns.get_loc("date_of_birth"),
            "birth_month",
            generalise_date_of_birth(frame["date_of_birth"], to="month"),
        )
        frame = frame.drop(columns=["date_of_birth"])
    return frame.drop(columns=[c for c in frame.columns if c.startswith("_")])
