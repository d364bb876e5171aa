"""The population an analysis describes, and the activity it counts: canonical variables
every analysis derives the same way (reference/phm-analytics.md, "canonical variables").

``registered_population`` is one row per person registered and alive on the index date,
with their age, bands and the breakdown variables; ``activity_counts`` counts each
person's hospital activity in a window. Everything is vectorised.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import numpy as np
import pandas as pd

from sde.phm.frames import Frames, age_on, require

# European Standard Population 2013: 19 five-year bands (0-4 ... 85-89, 90+) per 100,000.
ESP2013_BANDS: Final = tuple([f"{lo}-{lo + 4}" for lo in range(0, 90, 5)] + ["90+"])
ESP2013_WEIGHTS: Final = (
    5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000,
    7000, 6500, 6000, 5500, 5000, 4000, 2500, 1500, 1000,
)  # fmt: skip
# Broad bands for breakdowns.
AGE_BANDS: Final = (("0-15", 0, 16), ("16-44", 16, 45), ("45-64", 45, 65), ("65-74", 65, 75),
                    ("75-84", 75, 85), ("85+", 85, 200))  # fmt: skip
ETHNIC_GROUPS: Final = ("White", "Asian", "Black", "Mixed", "Other", "Not stated")
CORE20_DECILES: Final = frozenset({1, 2})  # national IMD deciles 1-2: the most deprived 20%
EMERGENCY: Final = "emergency"


def band_5y(age: pd.Series) -> pd.Series:
    """The ESP2013 band of each age (categorical in band order)."""
    index = np.minimum(age.to_numpy(dtype="float64", na_value=np.nan) // 5, 18)
    codes = np.where(np.isnan(index), -1, index).astype(int)
    return pd.Series(pd.Categorical.from_codes(codes, categories=list(ESP2013_BANDS)),
                     index=age.index, name="age_band_5y")  # fmt: skip


def broad_band(age: pd.Series) -> pd.Series:
    edges = [lo for _, lo, _ in AGE_BANDS] + [AGE_BANDS[-1][2]]
    return pd.cut(age.astype("float64"), bins=edges, right=False,
                  labels=[name for name, _, _ in AGE_BANDS]).rename("age_band")  # fmt: skip


def ethnic_group(ethnicity: pd.Series) -> pd.Series:
    """ONS 2021 category ("Group: category") -> its group; "Not stated" stays. The
    string work is done once per distinct category, not per person."""
    codes, categories = pd.factorize(ethnicity.astype("str"), use_na_sentinel=False)
    groups = pd.Series(categories).str.split(":", n=1).str[0].str.strip()
    groups = groups.where(groups.isin(ETHNIC_GROUPS[:-1]), "Not stated")
    mapped = pd.Categorical(groups, categories=list(ETHNIC_GROUPS))
    return pd.Series(mapped.take(codes), index=ethnicity.index, name="ethnic_group")


POPULATION_COLUMNS: Final = (
    "person_id", "age", "age_band_5y", "age_band", "sex", "ethnic_group", "imd_decile",
    "imd_quintile", "core20", "place", "pcn_code", "practice_ods", "lsoa_code",
)  # fmt: skip


def registered_population(frames: Frames, index_date: date) -> pd.DataFrame:
    """One row per person registered (registration started on or before, not ended
    before) and alive on ``index_date``, with the columns of ``POPULATION_COLUMNS`` the
    extract allows (age needs birth_month; the rest are carried when present)."""
    patients = require(frames, "patients", ["person_id", "birth_month"])
    day = pd.Timestamp(index_date)
    keep = pd.Series(True, index=patients.index)
    if "registration_start" in patients.columns:
        keep &= patients["registration_start"].isna() | (patients["registration_start"] <= day)
    if "registration_end" in patients.columns:
        keep &= patients["registration_end"].isna() | (patients["registration_end"] >= day)
    if "date_of_death" in patients.columns:
        keep &= patients["date_of_death"].isna() | (patients["date_of_death"] > day)
    people = patients.loc[keep].drop_duplicates("person_id")
    out = pd.DataFrame({"person_id": people["person_id"].to_numpy()})
    age = age_on(people["birth_month"], index_date).reset_index(drop=True)
    out["age"] = age
    out["age_band_5y"] = band_5y(age)
    out["age_band"] = broad_band(age)
    if "sex" in people.columns:
        out["sex"] = people["sex"].to_numpy()
    if "ethnicity" in people.columns:
        out["ethnic_group"] = ethnic_group(people["ethnicity"].reset_index(drop=True))
    if "imd_decile" in people.columns:
        decile = people["imd_decile"].to_numpy()
        out["imd_decile"] = decile
        out["imd_quintile"] = (decile + 1) // 2
        out["core20"] = np.isin(decile, list(CORE20_DECILES))
    for column in ("place", "pcn_code", "practice_ods", "lsoa_code"):
        if column in people.columns:
            out[column] = people[column].to_numpy()
    return out[[c for c in POPULATION_COLUMNS if c in out.columns]]


ACTIVITY: Final = {
    # name -> (table, date column, row filter or None)
    "emergency_admissions": ("apc_spells", "admission_date", ("admission_method", EMERGENCY)),
    "elective_admissions": ("apc_spells", "admission_date", ("admission_method", "elective")),
    "ae_attendances": ("ae_attendances", "arrival_date", None),
    "outpatient_appointments": ("op_appointments", "date", None),
}


def activity_counts(frames: Frames, kind: str, start: date, end: date) -> pd.Series:
    """Per person_id, the number of ``kind`` events dated ``start`` to ``end`` inclusive
    (people with none are absent). ``kind``: a key of ``ACTIVITY``."""
    table, column, condition = ACTIVITY[kind]
    needed = ["person_id", column] + ([condition[0]] if condition else [])
    rows = require(frames, table, needed)
    mask = (rows[column] >= pd.Timestamp(start)) & (rows[column] <= pd.Timestamp(end))
    if condition:
        mask &= rows[condition[0]] == condition[1]
    return rows.loc[mask, "person_id"].value_counts().rename(kind)


def hospital_cost(frames: Frames, start: date, end: date) -> pd.Series:
    """Per person_id, the cost of their admitted spells and A&E attendances in the
    window (each table counted if the extract has its cost)."""
    parts = []
    for table, column in (("apc_spells", "admission_date"), ("ae_attendances", "arrival_date")):
        frame = frames.get(table)
        if frame is None or "cost" not in frame.columns or column not in frame.columns:
            continue
        mask = (frame[column] >= pd.Timestamp(start)) & (frame[column] <= pd.Timestamp(end))
        parts.append(frame.loc[mask, ["person_id", "cost"]])
    if not parts:
        return pd.Series(dtype="float64", name="cost")
    rows = pd.concat(parts, ignore_index=True)
    return rows.groupby("person_id")["cost"].sum().astype("float64").rename("cost")


def year_before(index_date: date) -> tuple[date, date]:
    """The 12 months up to the day before ``index_date``."""
    return index_date.replace(year=index_date.year - 1), index_date - timedelta(days=1)
