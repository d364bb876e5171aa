"""The tables an analysis reads, and the checks every analysis makes of them.

``Frames`` maps a source table name (``patients``, ``gp_events``, ``apc_spells`` ...; see
``sde.data.source_format.TABLES``) to its DataFrame as an extract holds it: ``person_id``
(the project pseudonym, a string) instead of the NHS number, ``birth_month`` (the first
of the month of birth, as ingestion generalises it) instead of the date of birth, the
other columns with the dtypes of ``source_format.PANDAS_DTYPES``. A project sees only its
approved datasets and fields, so a table or column may be missing: analyses say which,
clearly, instead of failing somewhere inside pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

import numpy as np
import pandas as pd

from sde.exceptions import SDEError

Frames = Mapping[str, pd.DataFrame]


class AnalysisInputError(SDEError):
    """The extract cannot answer the analysis as configured (the message is safe to show:
    it names tables, columns and parameters, never values)."""


def require(frames: Frames, table: str, columns: Iterable[str]) -> pd.DataFrame:
    """``frames[table]``, or AnalysisInputError naming the missing table or columns."""
    if table not in frames:
        raise AnalysisInputError(f"this analysis needs the {table} table, which the extract lacks")
    frame = frames[table]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisInputError(
            f"this analysis needs {', '.join(missing)} in the {table} table, "
            "which the extract lacks"
        )
    return frame


def age_on(birth_month: pd.Series, day: date) -> pd.Series:
    """Whole years of age on ``day`` (vectorised; missing birth months stay missing). With
    the month of birth only, a person counts as a year older from the first of it."""
    born = pd.to_datetime(birth_month)
    years = day.year - born.dt.year
    before_birthday = (born.dt.month > day.month) | (
        (born.dt.month == day.month) & (born.dt.day > day.day)
    )
    return (years - before_birthday.astype("Int64")).astype("Int64").rename("age")


def frames_from_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Source-format tables (with ``nhs_number``, as ``synth.generate`` returns them) as an
    extract would hold them: ``person_id`` instead of the NHS number, ``birth_month``
    instead of the date of birth, the opt-out list left out. For tests and benchmarks; a
    real extract's pseudonyms come from the data layer."""
    numbers = [t["nhs_number"].to_numpy(dtype=object) for n, t in tables.items()
               if n != "ndop" and "nhs_number" in t.columns]  # fmt: skip
    people = pd.unique(np.concatenate(numbers))
    ids = pd.Series([f"P{i:09d}" for i in range(len(people))], index=people, dtype="str")
    frames = {}
    for name, table in tables.items():
        if name == "ndop":
            continue
        frame = table.copy()
        if "nhs_number" in frame.columns:
            person = frame.pop("nhs_number").map(ids).astype("str")
            frame.insert(0, "person_id", person)
        if "date_of_birth" in frame.columns:
            born = frame.pop("date_of_birth")
            month = born.dt.to_period("M").dt.to_timestamp().astype(born.dtype)
            frame.insert(1, "birth_month", month)
        frames[name] = frame
    return frames
