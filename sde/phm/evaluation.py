"""Evaluation of an intervention by difference-in-differences (reference/phm-analytics.md,
"Evaluation of interventions").

Given the pseudonyms of a cohort that received an intervention from ``start``:

- **People.** Everyone registered (and alive) on ``start`` (``registered_population``).
  Cohort members not registered then are left out and counted; everyone else registered
  is the comparison pool. People who die or leave later keep what was observed.
- **Matching.** Exact, stratified matching on five-year age band (ESP 2013 bands), sex,
  IMD quintile and the number of long-term conditions recorded before ``start``
  (``features.LONG_TERM_CONDITIONS``; 0, 1, 2, 3+). Strata with no comparison person
  drop their cohort members (counted as unmatched); strata with no cohort member drop
  their comparison people. Weights estimate the effect on the treated (ATT): each
  cohort member 1, each comparison person ``cohort members / comparison people`` of
  their stratum, so the comparison group has the cohort's mix.
- **Outcome**, per person, in two equal windows of ``window_days``: before is the
  ``window_days`` up to the day before ``start``, after is ``window_days`` from ``start``.
  ``emergency_admissions`` and ``ae_attendances`` count events (people with none count
  0); ``bmi`` is the latest BMI reading in each window, and people without a reading in
  both windows are left out (counted).
- **Estimate**: the cohort's mean change minus the comparison group's weighted mean
  change (the weighted regression of each person's change on a cohort indicator).
  **Interval**: 95% by the normal approximation with a cluster-robust (sandwich)
  standard error, a person being the cluster of their two periods, with the matching
  weights treated as fixed and the small-sample factor n/(n-1) in each group.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Final

import numpy as np
import pandas as pd
from scipy import stats

from sde.phm import codelists
from sde.phm.evidence import MAGNITUDE_FIELDS, AnalysisResult, ChartSpec, ResultTable
from sde.phm.evidence import magnitude_evidence as _evidence
from sde.phm.features import LONG_TERM_CONDITIONS, condition_flags, versions
from sde.phm.frames import AnalysisInputError, Frames, require
from sde.phm.population import ACTIVITY, activity_counts, registered_population

OUTCOMES: Final = {
    "emergency_admissions": "Emergency admissions per person",
    "ae_attendances": "A&E attendances per person",
    "bmi": "Latest BMI (kg/m2) in the window",
}
MATCH_ON: Final = ("age_band_5y", "sex", "imd_quintile", "condition_count")
CONDITION_COUNT_CAP: Final = 3  # 3 means "3 or more"
PERIODS: Final = ("before", "after")
Z95: Final = float(stats.norm.ppf(0.975))


def matched_sample(
    frames: Frames, *, cohort: Iterable[str], start: date
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The matched people (index person_id): ``treated`` (bool), ``stratum`` and
    ``weight``; and counts of who was left out."""
    population = registered_population(frames, start)
    if missing := [c for c in MATCH_ON[:3] if c not in population.columns]:
        raise AnalysisInputError(f"matching needs {', '.join(missing)}, which the extract lacks")
    ids = pd.Index(population["person_id"].to_numpy(dtype=object), name="person_id")
    wanted = pd.Index(pd.unique(np.asarray(list(cohort), dtype=object)))
    treated = wanted.get_indexer(ids.to_numpy()) >= 0
    flags = condition_flags(frames, LONG_TERM_CONDITIONS, people=ids,
                            end=start - timedelta(days=1))  # fmt: skip
    keys = pd.DataFrame({
        "age_band_5y": population["age_band_5y"].to_numpy(),
        "sex": population["sex"].to_numpy(dtype=object),
        "imd_quintile": population["imd_quintile"].to_numpy(dtype="float64"),
        "condition_count": np.minimum(flags.to_numpy().sum(axis=1), CONDITION_COUNT_CAP),
    }, index=ids)  # fmt: skip
    stratum = keys.groupby(list(MATCH_ON), observed=True, dropna=True, sort=True).ngroup()
    sample = pd.DataFrame({"treated": treated, "stratum": stratum.to_numpy()}, index=ids)
    sample = sample.loc[sample["stratum"] >= 0]  # a missing matching variable: unmatchable
    size = sample.groupby(["stratum", "treated"]).size().unstack(fill_value=0)
    size = size.reindex(columns=[False, True], fill_value=0)
    both = size.index[(size[True] > 0) & (size[False] > 0)]
    matched = sample.loc[sample["stratum"].isin(both)].copy()
    ratio = (size[True] / size[False].where(size[False] > 0)).reindex(matched["stratum"])
    matched["weight"] = np.where(matched["treated"], 1.0, ratio.to_numpy())
    counts = {
        "cohort": len(wanted),
        "cohort_not_registered": int(len(wanted) - treated.sum()),
        "cohort_unmatched": int(treated.sum() - matched["treated"].sum()),
        "cohort_matched": int(matched["treated"].sum()),
        "comparison_pool": int((~treated).sum()),
        "comparison_matched": int((~matched["treated"]).sum()),
        "strata": len(both),
    }
    return matched, counts


def outcome_values(
    frames: Frames, outcome: str, people: pd.Index, first: date, last: date
) -> pd.Series:
    """Each person's outcome from ``first`` to ``last`` inclusive (NaN: no BMI reading)."""
    if outcome == "bmi":
        events = require(frames, "gp_events", ["person_id", "date", "snomed_code", "value"])
        _check_covered(events["date"], last)
        window = {**frames, "gp_events": events.loc[events["date"] >= pd.Timestamp(first)]}
        values = codelists.latest_values(window, "bmi", end=last)
        fill: float = np.nan
    else:
        table, column, _ = ACTIVITY[outcome]
        _check_covered(require(frames, table, ["person_id", column])[column], last)
        values, fill = activity_counts(frames, outcome, first, last), 0.0
    values = pd.Series(values.to_numpy(dtype="float64"), index=values.index.astype(object))
    return values.reindex(people, fill_value=fill)


def _check_covered(dates: pd.Series, last: date) -> None:
    """Refuse a window that runs on past the extract (its latest event a month or more
    before the window ends); a table with no rows at all says nothing either way."""
    latest = dates.max()
    if not pd.isna(latest) and latest < pd.Timestamp(last - timedelta(days=31)):
        raise AnalysisInputError("the extract does not cover the window after the start date")


def did_estimate(change: np.ndarray, treated: np.ndarray, weight: np.ndarray) -> dict[str, float]:
    """The weighted difference in mean change (cohort minus comparison) and its
    cluster-robust standard error, 95% interval and p-value (module docstring)."""
    t, c = treated, ~treated
    n_t, n_c = int(t.sum()), int(c.sum())
    if n_t < 2 or n_c < 2:
        raise AnalysisInputError("too few matched people to estimate a difference")
    mean_t = change[t].mean()
    w = weight[c]
    mean_c = float(np.sum(w * change[c]) / w.sum())
    var_t = np.sum((change[t] - mean_t) ** 2) / n_t**2 * n_t / (n_t - 1)
    var_c = np.sum(w**2 * (change[c] - mean_c) ** 2) / w.sum() ** 2 * n_c / (n_c - 1)
    estimate = float(mean_t - mean_c)
    se = float(np.sqrt(var_t + var_c))
    p = float(2 * stats.norm.sf(abs(estimate) / se)) if se > 0 else float(estimate == 0)
    return {"estimate": estimate, "standard_error": se, "ci_lower": estimate - Z95 * se,
            "ci_upper": estimate + Z95 * se, "p_value": p}  # fmt: skip


def difference_in_differences(
    frames: Frames,
    *,
    cohort: Iterable[str],
    start: date,
    outcome: str,
    window_days: int = 365,
) -> AnalysisResult:
    """The difference-in-differences estimate of the intervention's effect on
    ``outcome`` (one of ``OUTCOMES``) with its 95% interval, the matching counts and the
    group means before and after (module docstring). Tables of aggregates only.

    Raises AnalysisInputError for an unknown outcome, a window the extract does not
    cover, missing matching columns or too few matched people."""
    if outcome not in OUTCOMES:
        raise AnalysisInputError(f"unknown outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
    if window_days < 1:
        raise AnalysisInputError("window_days must be at least 1")
    matched, counts = matched_sample(frames, cohort=cohort, start=start)
    days = timedelta(days=window_days)
    before = outcome_values(frames, outcome, matched.index, start - days, start - timedelta(1))
    after = outcome_values(frames, outcome, matched.index, start, start + days - timedelta(1))
    observed = before.notna().to_numpy() & after.notna().to_numpy()
    counts["no_outcome_in_both_windows"] = int((~observed).sum())
    rows = matched.assign(before=before.to_numpy(), after=after.to_numpy()).loc[observed]
    if counts["no_outcome_in_both_windows"]:  # re-weight: a stratum may have lost people
        rows = _reweight(rows)
    treated = rows["treated"].to_numpy()
    change = (rows["after"] - rows["before"]).to_numpy()
    result = did_estimate(change, treated, rows["weight"].to_numpy())
    n_t, n_c = int(treated.sum()), int((~treated).sum())
    windows = {"before": [(start - days).isoformat(), (start - timedelta(1)).isoformat()],
               "after": [start.isoformat(), (start + days - timedelta(1)).isoformat()]}  # fmt: skip
    estimate = pd.DataFrame({"outcome": [outcome], **{k: [v] for k, v in result.items()},
                             "cohort_people": [n_t], "comparison_people": [n_c]})  # fmt: skip
    kinds = {"estimate": "coefficient", "standard_error": "statistic", "ci_lower": "ci_lower",
             "ci_upper": "ci_upper", "p_value": "statistic", "cohort_people": "count",
             "comparison_people": "count"}  # fmt: skip
    persons = pd.DataFrame({c: [n_t + n_c] for c in kinds} | {"cohort_people": [n_t],
                           "comparison_people": [n_c]})  # fmt: skip
    tables = [
        ResultTable(
            name="did_estimate",
            title=f"Difference-in-differences: {OUTCOMES[outcome]}",
            frame=estimate,
            dimensions=("outcome",),
            statistics=kinds,
            persons=persons,
            model={"observations": n_t + n_c, "parameters": 2, "residual_dof": n_t + n_c - 2},
            description="Cohort mean change minus the matched comparison group's weighted "
            "mean change; 95% interval from a cluster-robust standard error.",
        ),
        _means_table(rows, outcome),
        _matching_table(counts),
    ]
    return AnalysisResult(
        tables=tables,
        charts=[
            ChartSpec(
                name="did_means",
                table="did_means",
                kind="line",
                x="period",
                y="mean",
                group="group",
                title=OUTCOMES[outcome],
            )
        ],
        codelists=versions((*LONG_TERM_CONDITIONS, *(("bmi",) if outcome == "bmi" else ()))),
        parameters={
            "start": start.isoformat(),
            "outcome": outcome,
            "window_days": window_days,
            "windows": windows,
            "match_on": list(MATCH_ON),
            **counts,
        },
    )


def _reweight(rows: pd.DataFrame) -> pd.DataFrame:
    size = rows.groupby(["stratum", "treated"]).size().unstack(fill_value=0)
    size = size.reindex(columns=[False, True], fill_value=0)
    both = size.index[(size[True] > 0) & (size[False] > 0)]
    rows = rows.loc[rows["stratum"].isin(both)].copy()
    ratio = (size[True] / size[False]).reindex(rows["stratum"]).to_numpy()
    rows["weight"] = np.where(rows["treated"], 1.0, ratio)
    return rows


def _means_table(rows: pd.DataFrame, outcome: str) -> ResultTable:
    """Mean outcome per group and period (the comparison group's weighted by the matching
    weights; its dominance evidence is of the weighted contributions)."""
    group = pd.Categorical.from_codes(np.where(rows["treated"], 0, 1), ["cohort", "comparison"])
    long = pd.concat([
        pd.DataFrame({"person_id": np.arange(len(rows)), "group": group,  # position = person
                      "period": pd.Categorical.from_codes(np.full(len(rows), k), PERIODS),
                      "value": rows[period].to_numpy() * rows["weight"].to_numpy(),
                      "weight": rows["weight"].to_numpy()})
        for k, period in enumerate(PERIODS)
    ], ignore_index=True)  # fmt: skip
    evidence = _evidence(long, by=["group", "period"], value="value").reset_index()
    weights = long.groupby(["group", "period"], observed=True, sort=True)["weight"].sum()
    frame = pd.DataFrame({
        "group": evidence["group"].astype("str"), "period": evidence["period"].astype("str"),
        "people": evidence["persons"], "mean": evidence["sum"].to_numpy() / weights.to_numpy(),
    })  # fmt: skip
    magnitudes = pd.DataFrame({f"mean.{f}": evidence[f].to_numpy() for f in MAGNITUDE_FIELDS})
    persons = pd.DataFrame({"people": frame["people"], "mean": frame["people"]})
    return ResultTable(
        name="did_means", title=f"{OUTCOMES[outcome]}: cohort and matched comparison",
        frame=frame, dimensions=("group", "period"),
        statistics={"people": "count", "mean": "mean"}, persons=persons,
        magnitudes=magnitudes, description="The comparison group's mean is weighted by the "
        "matching weights (sum of weight x value over sum of weights); its magnitude "
        "evidence is of the weighted contributions.",
    )  # fmt: skip


def _matching_table(counts: dict[str, int]) -> ResultTable:
    groups = ("cohort_matched", "cohort_unmatched", "cohort_not_registered",
              "comparison_matched", "no_outcome_in_both_windows")  # fmt: skip
    frame = pd.DataFrame({"group": list(groups), "people": [counts[g] for g in groups]})
    return ResultTable(
        name="did_matching", title="Matching: people in each group", frame=frame,
        dimensions=("group",), statistics={"people": "count"},
        persons=frame[["people"]].copy(),
        description="Exact matching on " + ", ".join(MATCH_ON) + ".",
    )  # fmt: skip
