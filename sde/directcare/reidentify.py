"""Who is on a re-identification list: pure pandas, no ORM, no settings, no keys read.

The cohort is a set of project pseudonyms (``PP = HMAC(K_project, SP)``). HMAC cannot be
reversed, so the mapping runs forwards from the practice: take the people **currently
registered** at the clinician's practice in the data layer (no registration end on or
before today, not dead), compute their project pseudonyms with the project's key, and keep
those in the cohort. Hashing only one practice's list keeps it cheap, and nobody
registered elsewhere can ever be on the list, whatever the cohort holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from sde.data.pseudonymisation import project_pseudonyms

# Columns of the data layer's people table a list may carry besides the NHS number, in
# order; a project's list carries those its approved scope includes.
DEMOGRAPHICS: tuple[str, ...] = ("birth_month", "sex")
REGISTRATION_COLUMNS: tuple[str, ...] = (
    "person_id",
    "practice_ods",
    "registration_end",
    "date_of_death",
)


def registered_at(people: pd.DataFrame, practice_ods: str, today: date) -> pd.DataFrame:
    """The rows of ``people`` (the data layer's people table: ``person_id`` is the system
    pseudonym) registered at ``practice_ods`` on ``today``: a registration with no end, or
    one ending after today, and no date of death on or before today."""
    day = pd.Timestamp(today)
    ended = pd.to_datetime(people["registration_end"]).le(day).fillna(False)
    died = pd.to_datetime(people["date_of_death"]).le(day).fillna(False)
    here = people["practice_ods"].astype("string").eq(practice_ods).fillna(False)
    return people[here.to_numpy(bool) & ~ended.to_numpy(bool) & ~died.to_numpy(bool)]


def cohort_members(
    people: pd.DataFrame,
    cohort: pd.Series,
    *,
    project_key: bytes,
    practice_ods: str,
    today: date,
    fields: Sequence[str] = (),
) -> pd.DataFrame:
    """The cohort's members registered at the practice today: ``system_pseudonym`` and
    the ``fields`` asked for (each one of DEMOGRAPHICS), one row per person, in system
    pseudonym order. ``cohort`` holds project pseudonyms made with ``project_key``."""
    unknown = [f for f in fields if f not in DEMOGRAPHICS]
    if unknown:
        raise ValueError(f"not a list field: {', '.join(unknown)}")
    registered = registered_at(people, practice_ods, today).drop_duplicates("person_id")
    pseudonyms = project_pseudonyms(registered["person_id"].astype("string"), project_key)
    wanted = pd.Index(cohort.astype("string").unique())
    members = registered[pseudonyms.isin(wanted).to_numpy(bool)]
    out = pd.DataFrame({"system_pseudonym": members["person_id"].astype("string")})
    for name in fields:
        out[name] = members[name].to_numpy()
    return out.sort_values("system_pseudonym", kind="stable").reset_index(drop=True)
