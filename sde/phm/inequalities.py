"""Inequality analyses (reference/phm-analytics.md, "Inequalities"): rates by a breakdown,
and the deprivation gradient (SII and RII); the Core20PLUS5 view, which shares these
helpers, is ``core20plus5``. Each is a pure function
of the extract's frames returning an ``evidence.AnalysisResult`` whose every published
cell carries the distinct people behind it.

Conventions shared by the analyses:

* The population is ``population.registered_population`` on the index date, less anyone
  whose age or breakdown value is unknown (how many is in ``parameters``).
* An **event rate** counts the activity (``population.ACTIVITY``) of that population in
  the 12 months before the index date (``year_before``); events of people not registered
  on the index date are not counted. Its cell evidence is the distinct people with those
  events. A **prevalence** counts people with a code of the codelist ever up to the index
  date (inclusive), as a proportion (0-1) with Wilson limits.
* Age-standardised rates (both kinds) use ESP2013 and Dobson limits
  (``rates.directly_standardised_rate``); there is none for the age-band breakdown,
  where standardising for age within an age band means nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from sde.phm import codelists
from sde.phm.evidence import AnalysisResult, ChartSpec, ResultTable
from sde.phm.frames import AnalysisInputError, Frames
from sde.phm.population import (
    ACTIVITY,
    ESP2013_BANDS,
    activity_counts,
    registered_population,
    year_before,
)
from sde.phm.rates import (
    crude_rate,
    directly_standardised_rate,
    slope_index_of_inequality,
    standard_error_from_interval,
    wilson_interval,
)

Outcome = str | Mapping[str, str]
# breakdown -> the patients column it comes from (to name it when the extract lacks it)
BREAKDOWNS: Final[Mapping[str, str]] = {
    "imd_decile": "imd_decile", "imd_quintile": "imd_decile", "core20": "imd_decile",
    "ethnic_group": "ethnicity", "sex": "sex", "age_band": "birth_month", "place": "place",
    "pcn_code": "pcn_code",
}  # fmt: skip
CORE20: Final = "Core20"
REST: Final = "Rest"
Z: Final = 1.96


@dataclass(frozen=True)
class PersonOutcome:
    """An outcome per person of the population (``counts``: events, or 1/0 for having the
    code), what it is called, and the codelist versions it used."""

    key: str
    title: str
    events: bool
    counts: np.ndarray
    codelists: Mapping[str, int]


def person_outcome(
    frames: Frames, population: pd.DataFrame, index_date: date, outcome: Outcome
) -> PersonOutcome:
    """``outcome`` (an ACTIVITY kind, or ``{"prevalence": "<codelist id>"}``) per row of
    ``population``. AnalysisInputError for an unknown outcome or a missing table."""
    if isinstance(outcome, str):
        if outcome not in ACTIVITY:
            raise AnalysisInputError(
                f"unknown outcome {outcome!r}: use one of {', '.join(ACTIVITY)} "
                'or {"prevalence": "<codelist id>"}'
            )
        start, end = year_before(index_date)
        per_person = activity_counts(frames, outcome, start, end)
        ids = id_index(population["person_id"])
        counts = aligned(ids, per_person, missing=0).astype("int64")
        title = f"{outcome.replace('_', ' ')} in the 12 months before {index_date.isoformat()}"
        return PersonOutcome(outcome, title, True, counts, {})
    if isinstance(outcome, Mapping) and set(outcome) == {"prevalence"}:
        codelist = codelists.get(outcome["prevalence"])
        people = codelists.people_with(frames, codelist, end=index_date)
        counts = members(population["person_id"], people).astype("int64")
        title = f"{codelist.name} recorded by {index_date.isoformat()}"
        return PersonOutcome(f"prevalence_{codelist.id}", title, False, counts,
                             {codelist.id: codelist.version})  # fmt: skip
    raise AnalysisInputError('outcome must be an activity kind or {"prevalence": "<codelist id>"}')


def id_index(person_ids: pd.Series | pd.Index | np.ndarray) -> pd.Index:
    """The ids as an object Index, whose hash table is built once and kept (an Arrow
    string Index converts itself on every lookup)."""
    return pd.Index(np.asarray(person_ids, dtype=object))


def members(
    person_ids: pd.Series | pd.Index, people: pd.Index | pd.Series | np.ndarray
) -> np.ndarray:
    """Whether each of ``person_ids`` (unique) is among ``people``: a hash lookup of
    ``people`` in an index of the ids (``Series.isin`` on Arrow strings walks ``people``
    in Python, too slow for a million). Pass ``id_index(...)`` to look up many times."""
    index = person_ids if isinstance(person_ids, pd.Index) else id_index(person_ids)
    positions = index.get_indexer(id_index(people))
    out = np.zeros(len(index), dtype=bool)
    out[positions[positions >= 0]] = True
    return out


def aligned(person_ids: pd.Index, values: pd.Series, missing: float = np.nan) -> np.ndarray:
    """``values`` (indexed by person_id) per id of ``person_ids`` (``id_index``)."""
    positions = person_ids.get_indexer(id_index(values.index))
    out = np.full(len(person_ids), missing, dtype="float64")
    found = positions >= 0
    out[positions[found]] = values.to_numpy(dtype="float64")[found]
    return out


def breakdown(population: pd.DataFrame, by: str) -> pd.Series:
    """The group of each person for breakdown ``by`` (Core20 as "Core20"/"Rest")."""
    if by not in BREAKDOWNS:
        raise AnalysisInputError(f"unknown breakdown {by!r}: use one of {', '.join(BREAKDOWNS)}")
    if by not in population.columns:
        raise AnalysisInputError(
            f"a breakdown by {by} needs {BREAKDOWNS[by]} in the patients table, "
            "which the extract lacks"
        )
    if by == "core20":
        labels = np.where(population["core20"].to_numpy(dtype=bool), CORE20, REST).astype(object)
        labels[population["imd_decile"].isna().to_numpy()] = None  # unknown, not "Rest"
        return pd.Series(pd.Categorical(labels, categories=[CORE20, REST]),
                         index=population.index, name=by)  # fmt: skip
    return population[by].rename(by)


def known_only(population: pd.DataFrame, by: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The population with a known age and ``by`` group, and how many were left out."""
    group = breakdown(population, by)
    known = population["age"].notna() & group.notna()
    return population.loc[known], {f"people_without_{by}_or_age": int((~known).sum())}


# --- Tables ------------------------------------------------------------------------------
def _crude_frame(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.groupby("group", observed=True, sort=True).agg(
        people=("n", "size"), numerator=("n", "sum"), persons=("any", "sum")
    )


def _band_frames(rows: pd.DataFrame, groups: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, population) by group x ESP2013 band, zero-filled."""
    banded = rows.groupby(["group", "band"], observed=True, sort=True).agg(
        people=("n", "size"), numerator=("n", "sum")
    )
    out = []
    for column in ("numerator", "people"):
        wide = banded[column].unstack("band", fill_value=0)
        wide.columns = [str(c) for c in wide.columns]
        out.append(wide.reindex(index=groups, columns=list(ESP2013_BANDS), fill_value=0))
    return out[0], out[1]


def _names(outcome: PersonOutcome) -> tuple[str, str]:
    """(numerator column, crude statistic) for the outcome's kind."""
    return ("events", "rate") if outcome.events else ("people_with", "proportion")


def _rate_table(
    stats: pd.DataFrame, *, by: str, outcome: PersonOutcome, name: str, title: str,
    statistic: str, kind: str, description: str,
) -> ResultTable:  # fmt: skip
    """A published rate table from ``stats`` (indexed by group: people, numerator,
    persons, value, lower, upper) with the evidence for each cell."""
    numerator, _ = _names(outcome)
    cells = [statistic, f"{statistic}_lower", f"{statistic}_upper"]
    frame = pd.DataFrame({
        by: stats.index.to_numpy(), "people": stats["people"].to_numpy(dtype="int64"),
        numerator: stats["numerator"].to_numpy(dtype="int64"),
        **{c: stats[s].to_numpy(dtype="float64") for c, s in zip(cells, ("value", "lower", "upper"),
                                                               strict=True)},
    })  # fmt: skip
    persons = pd.DataFrame({"people": frame["people"],
                            numerator: stats["persons"].to_numpy(dtype="int64")})  # fmt: skip
    for column in cells:
        persons[column] = persons[numerator]
    return ResultTable(
        name=name, title=title, frame=frame, dimensions=(by,),
        statistics={"people": "count", numerator: "count", statistic: kind,
                    f"{statistic}_lower": "ci_lower", f"{statistic}_upper": "ci_upper"},
        persons=persons, derived_from=dict.fromkeys(cells, (numerator, "people")),
        description=description,
    )  # fmt: skip


def _chart(table: ResultTable, statistic: str, by: str) -> ChartSpec:
    return ChartSpec(name=table.name, table=table.name, kind="bar", x=by, y=statistic,
                     title=table.title, lower=f"{statistic}_lower",
                     upper=f"{statistic}_upper")  # fmt: skip


def _crude_stats(crude: pd.DataFrame, outcome: PersonOutcome, per: float) -> pd.DataFrame:
    if outcome.events:
        value, lower, upper = crude_rate(crude["numerator"], crude["people"], per)
    else:
        value = crude["numerator"].to_numpy() / crude["people"].to_numpy()
        lower, upper = wilson_interval(crude["numerator"], crude["people"], Z)
    return crude.assign(value=value, lower=lower, upper=upper)


def _standardised_stats(rows: pd.DataFrame, crude: pd.DataFrame, per: float) -> pd.DataFrame:
    events, population = _band_frames(rows, crude.index)
    dsr = directly_standardised_rate(events, population, per=per)
    return crude.assign(value=dsr["rate"], lower=dsr["lower"], upper=dsr["upper"])


@dataclass(frozen=True)
class _Breakdown:
    tables: list[ResultTable]
    charts: list[ChartSpec]
    crude: pd.DataFrame
    standardised: pd.DataFrame | None


def _breakdown_tables(
    population: pd.DataFrame, outcome: PersonOutcome, *, by: str, standardise: bool, per: float
) -> _Breakdown:
    rows = pd.DataFrame({"group": breakdown(population, by).to_numpy(),
                         "band": population["age_band_5y"].to_numpy(),
                         "n": outcome.counts, "any": outcome.counts > 0})  # fmt: skip
    crude = _crude_stats(_crude_frame(rows), outcome, per)
    numerator, statistic = _names(outcome)
    per_text = f"per {per:,g}" if outcome.events else "as a proportion (0-1)"
    base = f"{outcome.key}_by_{by}"
    tables = [_rate_table(
        crude, by=by, outcome=outcome, name=base, statistic=statistic,
        kind="rate" if outcome.events else "proportion",
        title=f"{outcome.title}: crude {statistic} by {by.replace('_', ' ')}",
        description=f"{numerator} / people {per_text}; 95% CI "
        + ("exact Poisson" if outcome.events else "Wilson score"),
    )]  # fmt: skip
    charts = [_chart(tables[0], statistic, by)]
    standardised = None
    if standardise and by != "age_band":
        standardised = _standardised_stats(rows, crude, per)
        tables.append(_rate_table(
            standardised, by=by, outcome=outcome, name=f"{base}_standardised",
            statistic="dsr", kind="rate",
            title=f"{outcome.title}: age-standardised rate by {by.replace('_', ' ')}",
            description=f"directly standardised to the European Standard Population 2013, "
            f"per {per:,g}; 95% CI Dobson (exact Poisson limits of the total count)",
        ))  # fmt: skip
        charts.append(_chart(tables[-1], "dsr", by))
    return _Breakdown(tables, charts, crude, standardised)


# --- Analyses ----------------------------------------------------------------------------
def rates_by(
    frames: Frames,
    *,
    index_date: date,
    outcome: Outcome,
    by: str,
    standardise: bool = True,
    per: float = 100_000,
) -> AnalysisResult:
    """Crude (and, unless ``standardise`` is off or ``by`` is age_band, age-standardised)
    rates of ``outcome`` per group of ``by`` in the population registered on
    ``index_date``. ``outcome``: an ACTIVITY kind (events in the 12 months before) or
    ``{"prevalence": "<codelist id>"}``; ``by``: a key of ``BREAKDOWNS``.

    Tables ``<outcome>_by_<by>`` (people, events or people_with, rate or proportion and
    its 95% limits) and ``<outcome>_by_<by>_standardised`` (DSR with Dobson limits); a
    bar chart with its limits for each. Raises AnalysisInputError naming a table or
    column the extract lacks, or an unknown outcome, codelist or breakdown.
    """
    population = registered_population(frames, index_date)
    known, left_out = known_only(population, by)
    outcome_rows = person_outcome(frames, known, index_date, outcome)
    result = _breakdown_tables(known, outcome_rows, by=by, standardise=standardise, per=per)
    return AnalysisResult(
        tables=result.tables, charts=result.charts, codelists=dict(outcome_rows.codelists),
        parameters={"index_date": index_date.isoformat(), "outcome": _jsonable(outcome),
                    "by": by, "standardise": standardise, "per": per,
                    "people": len(known), **left_out},
    )  # fmt: skip


def inequality_gradient(
    frames: Frames,
    *,
    index_date: date,
    outcome: Outcome,
    standardise: bool = True,
    per: float = 100_000,
) -> AnalysisResult:
    """The deprivation gradient of ``outcome``: rates by IMD decile, the SII and RII
    across the deciles (``rates.slope_index_of_inequality``: SII = most deprived minus
    least deprived; RII = SII / the population-weighted mean) and Core20 against the rest.

    The SII is fitted to the age-standardised rates (unless ``standardise`` is off), so
    a younger or older population in deprived areas does not make or hide a gradient;
    each decile's standard error is ``(upper - lower) / 2·1.96`` of its 95% limits. If a
    decile has no events its Dobson limits are undefined and the SII limits are left
    empty. Table ``<outcome>_sii``: one row; its cells' evidence is the whole population.
    """
    population = registered_population(frames, index_date)
    known, left_out = known_only(population, "imd_decile")
    outcome_rows = person_outcome(frames, known, index_date, outcome)
    deciles = _breakdown_tables(known, outcome_rows, by="imd_decile", standardise=standardise,
                                per=per)  # fmt: skip
    core20 = _breakdown_tables(known, outcome_rows, by="core20", standardise=standardise, per=per)
    stats = deciles.standardised if deciles.standardised is not None else deciles.crude
    sii = _sii_table(stats, outcome_rows, standardised=deciles.standardised is not None, per=per)
    return AnalysisResult(
        tables=[*deciles.tables, sii, *core20.tables], charts=[*deciles.charts, *core20.charts],
        codelists=dict(outcome_rows.codelists),
        parameters={"index_date": index_date.isoformat(), "outcome": _jsonable(outcome),
                    "standardise": standardise, "per": per, "people": len(known), **left_out},
    )  # fmt: skip


def _sii_table(
    stats: pd.DataFrame, outcome: PersonOutcome, *, standardised: bool, per: float
) -> ResultTable:
    stats = stats.sort_index()  # IMD decile 1 (most deprived) first
    if int((stats["people"] > 0).sum()) < 2:
        raise AnalysisInputError("the slope index of inequality needs people in two IMD deciles")
    se = standard_error_from_interval(stats["lower"], stats["upper"], Z)
    index = slope_index_of_inequality(
        stats["value"], stats["people"], standard_errors=None if np.isnan(se).any() else se
    )
    numerator, statistic = _names(outcome)
    measure = ("age-standardised rate" if standardised else f"crude {statistic}") + (
        f" per {per:,g}" if standardised or outcome.events else ""
    )
    values = {"sii": index.sii, "sii_lower": index.sii_lower, "sii_upper": index.sii_upper,
              "rii": index.rii, "rii_lower": index.rii_lower, "rii_upper": index.rii_upper,
              "mean": index.mean}  # fmt: skip
    people, persons = int(stats["people"].sum()), int(stats["persons"].sum())
    frame = pd.DataFrame([{"measure": measure, "people": people,
                           numerator: int(stats["numerator"].sum()), **values}])  # fmt: skip
    kinds = {"sii": "rate", "sii_lower": "ci_lower", "sii_upper": "ci_upper", "rii": "ratio",
             "rii_lower": "ci_lower", "rii_upper": "ci_upper",
             "mean": "rate" if standardised or outcome.events else "proportion"}  # fmt: skip
    evidence = {"people": people, numerator: persons, **dict.fromkeys(values, people)}
    return ResultTable(
        name=f"{outcome.key}_sii", title=f"{outcome.title}: slope and relative index of "
        "inequality across IMD deciles", frame=frame, dimensions=("measure",),
        statistics={"people": "count", numerator: "count", **kinds},
        persons=pd.DataFrame([evidence]), derived_from=dict.fromkeys(values, (numerator, "people")),
        description="SII: population-weighted regression of the decile values on the midpoint "
        "of each decile's cumulative population rank; fitted most deprived minus least "
        "deprived. RII = SII / mean (population-weighted mean of the decile values). 95% CI "
        "from the deciles' standard errors (closed form of PHE's simulation; RII by Fieller).",
    )  # fmt: skip


def _jsonable(outcome: Outcome) -> str | dict[str, str]:
    return outcome if isinstance(outcome, str) else dict(outcome)
