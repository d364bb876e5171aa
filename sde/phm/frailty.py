"""The electronic frailty index (eFI; Clegg et al. 2016) and its published breakdowns.

A person's eFI is the number of the 36 deficits (``codelists.EFI_DEFICITS``) recorded in
their record on or before the day before the index date, divided by 36; a deficit counts
if any of its codelists has a code (GP event or, where the list has ICD-10 codes, an
admission's primary diagnosis). Deficits with no list in this environment (polypharmacy,
housebound ...) count in the denominator only, as the eFI defines it.

Categories: fit (eFI <= 0.12), mild (<= 0.24), moderate (<= 0.36), severe (above). The
eFI was developed and validated for people aged 65 and over: it is computed for everyone
registered (other analyses use it as a feature at any age), but the categories are only
meaningful, and only published, for people aged 65+ (``FRAILTY_MIN_AGE``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import numpy as np
import pandas as pd

from sde.phm import codelists
from sde.phm.evidence import AnalysisResult, ChartSpec
from sde.phm.features import CodedRecords, coded_records, share_table, versions
from sde.phm.frames import AnalysisInputError, Frames
from sde.phm.population import registered_population

FRAILTY_CATEGORIES: Final = ("fit", "mild", "moderate", "severe")
FRAILTY_CUTS: Final = (0.12, 0.24, 0.36)  # upper limits (inclusive) of fit, mild, moderate
FRAILTY_MIN_AGE: Final = 65
# An index within this of a cut-off is on it (3/25 and 9/75 are 0.12 give or take 1e-17).
_ON_THE_CUT: Final = 1e-9
FRAILTY_BREAKDOWNS: Final = ("age_band", "sex", "imd_quintile")


def efi_lists() -> tuple[str, ...]:
    """Every codelist id the eFI reads, in deficit order."""
    return tuple(dict.fromkeys(i for ids in codelists.EFI_DEFICITS.values() for i in ids))


def frailty_category(efi: np.ndarray | pd.Series) -> pd.Categorical:
    """The eFI category of each index (missing stays missing)."""
    values = np.asarray(efi, dtype="float64")
    codes = np.digitize(values - _ON_THE_CUT, FRAILTY_CUTS, right=True)
    codes = np.where(np.isnan(values), -1, codes)
    return pd.Categorical.from_codes(codes, categories=list(FRAILTY_CATEGORIES))


def deficit_counts(records: CodedRecords) -> pd.Series:
    """Per person of ``records.people`` (in that order), the number of eFI deficits
    recorded on or before ``records.end``; ``records`` must have read ``efi_lists()``."""
    flags = records.flags(efi_lists())
    count = np.zeros(len(records.people), dtype="int64")
    for ids in codelists.EFI_DEFICITS.values():
        if ids:  # a deficit is present if any of its lists is
            count += flags[list(ids)].to_numpy().any(axis=1)
    return pd.Series(count, index=records.people, name="deficits")


def efi(
    frames: Frames,
    *,
    index_date: date,
    population: pd.DataFrame | None = None,
    records: CodedRecords | None = None,
) -> pd.DataFrame:
    """One row per person registered on ``index_date`` (or of ``population``, a
    ``registered_population`` frame; or of ``records``, coded records up to the day
    before ``index_date`` that include the eFI's lists): person_id, deficits, efi
    (deficits / 36) and category (meaningful for people aged 65+ only)."""
    if records is None:
        people = population if population is not None else registered_population(
            frames, index_date)  # fmt: skip
        records = coded_records(frames, efi_lists(), people=people["person_id"].to_numpy(),
                                end=index_date - timedelta(days=1))  # fmt: skip
    counts = deficit_counts(records)
    index = counts.to_numpy() / len(codelists.EFI_DEFICITS)
    return pd.DataFrame(
        {
            "person_id": records.people.to_numpy(),
            "deficits": counts.to_numpy(),
            "efi": index,
            "category": frailty_category(index),
        }
    )


def frailty_analysis(
    frames: Frames,
    *,
    index_date: date,
    min_age: int = FRAILTY_MIN_AGE,
    by: tuple[str, ...] = FRAILTY_BREAKDOWNS,
) -> AnalysisResult:
    """People aged ``min_age``+ registered on ``index_date`` by eFI category: overall and
    by each of ``by`` (columns of ``registered_population``: age band, sex, IMD quintile
    ...), with each category's share of the group. Tables of counts only.

    Raises AnalysisInputError if the extract lacks a breakdown's column or the tables the
    eFI reads."""
    population = registered_population(frames, index_date)
    if missing := [b for b in by if b not in population.columns]:
        raise AnalysisInputError(f"the extract cannot break frailty down by {', '.join(missing)}")
    older = population.loc[population["age"].fillna(-1).to_numpy() >= min_age]
    scores = efi(frames, index_date=index_date, population=older)
    rows = older.reset_index(drop=True).assign(category=scores["category"].to_numpy())
    about = f"Registered on {index_date.isoformat()}, aged {min_age}+; eFI categories."
    tables = [
        share_table(rows, name="frailty_categories", title="People by eFI category",
                    category="category", categories=FRAILTY_CATEGORIES, description=about),
    ]  # fmt: skip
    for column in by:
        tables.append(
            share_table(
                rows,
                name=f"frailty_by_{column}",
                title=f"eFI category by {column}",
                category="category",
                categories=FRAILTY_CATEGORIES,
                by=column,
                description=about,
            )
        )
    charts = [
        ChartSpec(name=f"frailty_by_{column}", table=f"frailty_by_{column}", kind="bar",
                  x=column, y="share", group="category", title=f"eFI category by {column}")
        for column in by
    ]  # fmt: skip
    return AnalysisResult(
        tables=tables,
        charts=charts,
        codelists=versions(efi_lists()),
        parameters={"index_date": index_date.isoformat(), "min_age": min_age,
                    "deficits": len(codelists.EFI_DEFICITS), "cuts": list(FRAILTY_CUTS)},
    )  # fmt: skip
