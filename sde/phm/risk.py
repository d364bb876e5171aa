"""Risk stratification (reference/phm-analytics.md, "Risk stratification"): a logistic
model of at least one emergency admission in 12 months, fitted inside the environment,
checked on a held-out set, and used to put the population into tiers by rank.

Designs (``design``):

- ``"prospective"`` (default): the people registered on the index date; features as of
  the index date (age on it; codes dated up to the day before; emergency admissions in
  the 12 months before); outcome: an emergency admission in the 12 months from the index
  date. People who die or leave in those 12 months keep what was observed (no censoring
  adjustment). The extract must cover the 12 months (AnalysisInputError otherwise).
- ``"year_before"``: for an extract that ends at the index date. The people registered
  both 12 months before the index date and on it (so observed for the whole year); the
  outcome: an emergency admission in the 12 months before the index date; age on the
  first day of that year and admissions in the year before it, but codes recorded up to
  the day before the index date (conditions diagnosed during the year count: a
  cross-sectional view of conditions, documented as such).

Either way the tiers are for the people registered on the index date, scored from
features as of the index date. Features (``FEATURES``; ``features=`` picks a subset;
one the training people cannot estimate is dropped and reported: constant, fewer than
``MIN_GROUP`` people with or without it (too few to estimate, and disclosive: rule M3),
or no admission, or only admissions, among those with it (separation)): age bands
(reference 16-44), male, deprivation ``(10 - IMD decile) / 9``, each condition of
``RISK_CONDITIONS`` (codelists, ever recorded), eFI category (vs fit, at any age: a
feature here, not a clinical label) and prior emergency admissions (1, 2+ vs none).
People with a missing feature (no IMD decile, say) are left out and counted.

The model is fitted by Newton-Raphson (IRLS) on a training split (a deterministic draw
from ``seed`` over the people sorted by pseudonym), with standard errors from the
inverse information matrix and Wald 95% intervals. Discrimination is the AUC on the
held-out people (Mann-Whitney, with the Hanley-McNeil 95% interval); calibration is
observed vs mean predicted risk by decile of predicted risk there, and the calibration
slope and intercept. Tiers are by rank of predicted risk (ties by pseudonym): the first
``round(cumulative share x people)`` are in the first tier, and so on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Final

import numpy as np
import pandas as pd
from scipy import special

from sde.phm import codelists
from sde.phm.evidence import MAGNITUDE_FIELDS, AnalysisResult, ChartSpec, ResultTable
from sde.phm.evidence import magnitude_evidence as _evidence
from sde.phm.features import CodedRecords, coded_records, versions
from sde.phm.frailty import deficit_counts, efi_lists, frailty_category
from sde.phm.frames import AnalysisInputError, Frames, require
from sde.phm.logistic import Z95, LogisticFit, auc, auc_interval, deciles, fit_logistic
from sde.phm.population import activity_counts, registered_population, year_before

# The synthetic generator's bands (sde.data.synth.MODEL_AGE_BANDS); 16-44 is the reference.
AGE_FEATURES: Final = (
    ("age_0_4", 0, 5), ("age_5_15", 5, 16), ("age_45_64", 45, 65), ("age_65_74", 65, 75),
    ("age_75_84", 75, 85), ("age_85_plus", 85, 999),
)  # fmt: skip
RISK_CONDITIONS: Final = (
    "heart_failure", "copd", "ckd", "diabetes", "cancer", "dementia", "atrial_fibrillation",
    "chd", "stroke", "smi", "depression", "asthma", "learning_disability",
    "alcohol_dependence", "drug_dependence",
)  # fmt: skip
FRAILTY_FEATURES: Final = ("frailty_mild", "frailty_moderate", "frailty_severe")
PRIOR_FEATURES: Final = ("prior_emergency_1", "prior_emergency_2_plus")
FEATURES: Final = (
    *(name for name, _, _ in AGE_FEATURES), "male", "deprivation", *RISK_CONDITIONS,
    *FRAILTY_FEATURES, *PRIOR_FEATURES,
)  # fmt: skip
DESIGNS: Final = ("prospective", "year_before")
DEFAULT_TIERS: Final = (("very_high", 0.005), ("high", 0.045), ("rising", 0.15), ("low", 0.80))
_CHARACTERISTICS: Final = (*RISK_CONDITIONS, "frailty_moderate", "frailty_severe", "male")


# --- Tiers ----------------------------------------------------------------------------
def assign_tiers(
    scores: np.ndarray, tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS
) -> pd.Categorical:
    """Each score's tier: rank by descending score (ties by position), the first
    ``round(share_1 x n)`` in the first tier, up to ``round((share_1 + share_2) x n)`` in
    the second, and so on. Shares must be positive and add up to 1."""
    names = [name for name, _ in tiers]
    shares = np.array([share for _, share in tiers], dtype="float64")
    if len(set(names)) != len(names) or (shares <= 0).any() or abs(shares.sum() - 1) > 1e-9:
        raise AnalysisInputError("tiers need distinct names and positive shares adding up to 1")
    n = len(scores)
    bounds = np.floor(np.cumsum(shares) * n + 0.5).astype("int64")
    bounds[-1] = n
    rank = np.empty(n, dtype="int64")
    rank[np.argsort(-np.asarray(scores, dtype="float64"), kind="stable")] = np.arange(n)
    codes = np.searchsorted(bounds, rank, side="right")
    return pd.Categorical.from_codes(codes, categories=names)


# --- The data -------------------------------------------------------------------------
def _coded_features(records: CodedRecords) -> pd.DataFrame:
    """The condition and eFI-category features (float) of ``records.people``."""
    out = records.flags(RISK_CONDITIONS).astype("float64")
    category = frailty_category(deficit_counts(records) / len(codelists.EFI_DEFICITS)).codes
    for level, name in enumerate(FRAILTY_FEATURES, start=1):
        out[name] = (category == level).astype("float64")
    return out


def _features(
    frames: Frames, people: pd.DataFrame, *, coded: pd.DataFrame, prior: tuple[date, date]
) -> pd.DataFrame:
    """FEATURES (float, NaN where unknown) and age, indexed by person_id; ``coded``: the
    coded features of (at least) these people."""
    ids = pd.Index(people["person_id"].to_numpy(dtype=object), name="person_id")
    age = people["age"].to_numpy(dtype="float64", na_value=np.nan)
    out = pd.DataFrame(index=ids)
    out["age"] = age
    for name, lo, hi in AGE_FEATURES:
        out[name] = np.where(np.isnan(age), np.nan, (age >= lo) & (age < hi))
    sex = people["sex"].to_numpy(dtype=object) if "sex" in people.columns else None
    out["male"] = (sex == "M").astype("float64") if sex is not None else np.nan
    nothing = pd.Series(np.nan, index=people.index)
    decile = people["imd_decile"] if "imd_decile" in people.columns else nothing
    out["deprivation"] = (10 - decile.to_numpy(dtype="float64", na_value=np.nan)) / 9
    out = out.join(coded if coded.index.equals(ids) else coded.reindex(ids))
    admissions = _admissions(frames, ids, *prior)
    out["prior_emergency_1"] = (admissions == 1).astype("float64")
    out["prior_emergency_2_plus"] = (admissions >= 2).astype("float64")
    return out


def _admissions(frames: Frames, ids: pd.Index, start: date, end: date) -> np.ndarray:
    counts = activity_counts(frames, "emergency_admissions", start, end)
    return pd.Series(counts.to_numpy(), index=counts.index.astype(object)).reindex(
        ids, fill_value=0).to_numpy()  # fmt: skip


def model_frames(
    frames: Frames, *, index_date: date, design: str = "prospective"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(model, scoring): the modelling people with FEATURES, age and ``outcome`` (0/1),
    and the people registered on ``index_date`` with FEATURES as of it (the same people
    and features under the prospective design). Both sorted by person_id."""
    if design not in DESIGNS:
        raise AnalysisInputError(f"unknown design {design!r}: one of {', '.join(DESIGNS)}")
    if design == "prospective":
        window = (index_date, index_date.replace(year=index_date.year + 1) - timedelta(days=1))
        _check_covered(frames, window[1])  # before the work
    else:
        window = year_before(index_date)
    current = registered_population(frames, index_date).sort_values("person_id")
    lists = (*RISK_CONDITIONS, *efi_lists())
    day_before = index_date - timedelta(days=1)
    records = coded_records(frames, lists, people=current["person_id"], end=day_before)
    coded = _coded_features(records)
    scoring = _features(frames, current, coded=coded, prior=year_before(index_date))
    if design == "prospective":
        model = scoring.copy()
    else:
        earlier = registered_population(frames, window[0]).sort_values("person_id")
        still = pd.Index(current["person_id"].to_numpy(dtype=object))  # hashed, not Arrow isin
        earlier = earlier.loc[still.get_indexer(earlier["person_id"].to_numpy(dtype=object)) >= 0]
        model = _features(frames, earlier, coded=coded, prior=year_before(window[0]))
    model["outcome"] = (_admissions(frames, model.index, *window) > 0).astype("float64")
    return model, scoring


def _check_covered(frames: Frames, outcome_end: date) -> None:
    spells = require(frames, "apc_spells", ["person_id", "admission_date", "admission_method"])
    latest = spells["admission_date"].max()
    if pd.isna(latest) or latest < pd.Timestamp(outcome_end - timedelta(days=31)):
        raise AnalysisInputError(
            "the extract's admitted spells stop before the end of the 12 months after the "
            "index date: choose an earlier index date or the year_before design"
        )


# --- The analysis ---------------------------------------------------------------------
MIN_GROUP: Final = 10


def _estimable(feature: np.ndarray, outcome: np.ndarray) -> bool:
    """Whether a (0/1 or graded) feature can be estimated from these people: it varies,
    at least MIN_GROUP people have it and lack it, and those with it include people
    with and without the outcome."""
    present = feature > 0
    with_it = int(present.sum())
    if with_it < MIN_GROUP or len(feature) - with_it < MIN_GROUP:
        return False
    events = int(outcome[present].sum())
    return 0 < events < with_it


def risk_stratification(
    frames: Frames,
    *,
    index_date: date,
    design: str = "prospective",
    features: Sequence[str] = FEATURES,
    tiers: Sequence[tuple[str, float]] = DEFAULT_TIERS,
    seed: int = 0,
    holdout: float = 0.3,
) -> AnalysisResult:
    """Fit, check and apply the emergency-admission model (module docstring). Publishes
    the model summary, its held-out performance and calibration, and the tiers' sizes and
    characteristics: aggregates only, never a person's score. ``cohort``: the pseudonyms
    of the first (highest-risk) tier, for case finding inside the environment.

    Raises AnalysisInputError for unknown features or design, bad tiers, an extract that
    cannot answer (missing tables, outcome window not covered), or too few people or
    events to fit and check the model."""
    if unknown := [f for f in features if f not in FEATURES]:
        raise AnalysisInputError(f"unknown risk features: {', '.join(unknown)}")
    if not 0 < holdout < 1:
        raise AnalysisInputError("holdout must be a share between 0 and 1")
    assign_tiers(np.zeros(1), tiers)  # validate before the work
    model, scoring = model_frames(frames, index_date=index_date, design=design)
    names = list(features)
    unknown = [f for f in names if model[f].isna().all()]
    if unknown:
        raise AnalysisInputError(
            f"the extract lacks what {', '.join(unknown)} needs (deprivation needs imd_decile "
            "in the patients table); leave it out with features="
        )
    complete = model[names].notna().all(axis=1).to_numpy()
    data = model.loc[complete]
    test = np.random.default_rng(seed).random(len(data)) < holdout
    train = data.loc[~test]
    y_train, y_test = train["outcome"].to_numpy(), data.loc[test, "outcome"].to_numpy()
    constant = [f for f in names if not _estimable(train[f].to_numpy(dtype="float64"), y_train)]
    used = [f for f in names if f not in constant]
    if min(y_train.sum(), (1 - y_train).sum(), y_test.sum(), (1 - y_test).sum()) < 1:
        raise AnalysisInputError("too few people with and without an emergency admission")
    fit = fit_logistic(train[used].to_numpy(dtype="float64"), y_train, names=used)
    p_test = fit.predict(data.loc[test, used].to_numpy(dtype="float64"))
    scored = scoring.loc[scoring[used].notna().all(axis=1)]
    p_all = fit.predict(scored[used].to_numpy(dtype="float64"))
    tier = assign_tiers(p_all, tiers)
    tables = [
        _model_table(fit, train, used),
        _performance_table(fit, p_test, y_test),
        _calibration_table(p_test, y_test),
        _tiers_table(scored, tier, p_all),
        _characteristics_table(scored, tier, model if design == "prospective" else None),
    ]
    cohort = pd.Series(scored.index[np.asarray(tier.codes) == 0].to_numpy(), name="person_id")
    return AnalysisResult(
        tables=tables,
        charts=[
            ChartSpec(
                name="risk_calibration",
                table="risk_calibration",
                kind="line",
                x="decile",
                y="observed",
                title="Observed risk by decile of predicted risk",
            ),
            ChartSpec(
                name="risk_tiers",
                table="risk_tiers",
                kind="bar",
                x="tier",
                y="people",
                title="People by risk tier",
            ),
        ],
        codelists=versions((*RISK_CONDITIONS, *efi_lists())),
        parameters={
            "index_date": index_date.isoformat(),
            "design": design,
            "seed": seed,
            "holdout": holdout,
            "tiers": [[n, s] for n, s in tiers],
            "features": used,
            "dropped_constant_features": constant,
            "converged": fit.converged,
            "iterations": fit.iterations,
            "excluded_missing": int((~complete).sum()),
            "not_scored_missing": int(len(scoring) - len(scored)),
        },
        cohort=cohort,
    )


def _table(
    name: str,
    title: str,
    frame: pd.DataFrame,
    dimensions: tuple[str, ...],
    statistics: dict[str, str],
    persons: Mapping[str, object],
    *,
    derived_from: Mapping[str, tuple[str, ...]] | None = None,
    magnitudes: pd.DataFrame | None = None,
    model: Mapping[str, int] | None = None,
    description: str = "",
) -> ResultTable:
    """A ResultTable with ``persons`` given per statistic column (arrays or one number)."""
    frame = frame.reset_index(drop=True)
    people = pd.DataFrame({c: persons[c] for c in statistics}, index=frame.index)
    if magnitudes is not None:
        magnitudes = magnitudes.set_axis(frame.index)
    return ResultTable(
        name=name, title=title, frame=frame, dimensions=dimensions, statistics=statistics,
        persons=people.astype("int64"), derived_from=derived_from or {}, magnitudes=magnitudes,
        model=model, description=description,
    )  # fmt: skip


def _model_table(fit: LogisticFit, train: pd.DataFrame, used: list[str]) -> ResultTable:
    x = train[used].to_numpy(dtype="float64") != 0
    outcome = train["outcome"].to_numpy() == 1
    with_feature = np.concatenate([[len(train)], x.sum(axis=0)])
    events = np.concatenate([[outcome.sum()], (x & outcome[:, None]).sum(axis=0)])
    beta, se = fit.coefficients, fit.standard_errors
    frame = pd.DataFrame({
        "term": fit.terms, "coefficient": beta, "standard_error": se,
        "ci_lower": beta - Z95 * se, "ci_upper": beta + Z95 * se, "odds_ratio": np.exp(beta),
        "people_with_feature": with_feature, "events_with_feature": events,
    })  # fmt: skip
    kinds = {"coefficient": "coefficient", "standard_error": "statistic",
             "ci_lower": "ci_lower", "ci_upper": "ci_upper", "odds_ratio": "statistic",
             "people_with_feature": "count", "events_with_feature": "count"}  # fmt: skip
    persons = {c: with_feature for c in kinds} | {"events_with_feature": events}
    k = len(beta)
    return _table(
        "risk_model", "Emergency admission model (logistic regression, log-odds)", frame,
        ("term",), kinds, persons,
        model={"observations": fit.observations, "parameters": k,
               "residual_dof": fit.observations - k},
        description="Fitted on the training people; Wald 95% intervals; "
        "odds ratio = exp(coefficient).",
    )  # fmt: skip


def _performance_table(fit: LogisticFit, p: np.ndarray, y: np.ndarray) -> ResultTable:
    value = auc(p, y)
    lower, upper = auc_interval(value, int(y.sum()), int(len(y) - y.sum()))
    logit = special.logit(np.clip(p, 1e-12, 1 - 1e-12))
    recal = fit_logistic(logit[:, None], y, names=["slope"])
    slope, intercept = recal.coefficients[1], recal.coefficients[0]
    slope_se, intercept_se = recal.standard_errors[1], recal.standard_errors[0]
    frame = pd.DataFrame({
        "metric": ["auc", "calibration_slope", "calibration_intercept",
                   "observed_risk", "mean_predicted_risk", "brier_score"],
        "value": [value, slope, intercept, y.mean(), p.mean(), np.mean((p - y) ** 2)],
        "ci_lower": [lower, slope - Z95 * slope_se, intercept - Z95 * intercept_se,
                     np.nan, np.nan, np.nan],
        "ci_upper": [upper, slope + Z95 * slope_se, intercept + Z95 * intercept_se,
                     np.nan, np.nan, np.nan],
        "people": len(y), "events": int(y.sum()),
    })  # fmt: skip
    kinds = {"value": "statistic", "ci_lower": "ci_lower", "ci_upper": "ci_upper",
             "people": "count", "events": "count"}  # fmt: skip
    persons = {c: len(y) for c in kinds} | {"events": int(y.sum())}
    return _table(
        "risk_performance", "Model performance on the held-out people", frame, ("metric",),
        kinds, persons, model={"observations": len(y), "parameters": len(fit.coefficients),
                               "residual_dof": len(y) - len(fit.coefficients)},
        description="AUC with the Hanley-McNeil 95% interval; calibration slope and "
        "intercept from a logistic regression of the outcome on the logit of predicted risk.",
    )  # fmt: skip


def _calibration_table(p: np.ndarray, y: np.ndarray) -> ResultTable:
    rows = pd.DataFrame({"person_id": np.arange(len(p)), "decile": deciles(p), "p": p})
    evidence = _evidence(rows, by=["decile"], value="p", person="person_id").reset_index()
    events = np.bincount(rows["decile"], weights=y, minlength=11)[evidence["decile"]].astype(int)
    frame = pd.DataFrame({
        "decile": evidence["decile"], "people": evidence["persons"], "events": events,
        "observed": events / evidence["persons"],
        "predicted": evidence["sum"] / evidence["persons"],
    })  # fmt: skip
    magnitudes = pd.DataFrame({f"predicted.{f}": evidence[f] for f in MAGNITUDE_FIELDS})
    kinds = {"people": "count", "events": "count", "observed": "proportion", "predicted": "mean"}
    persons = {"people": frame["people"], "events": events, "observed": events,
               "predicted": frame["people"]}  # fmt: skip
    return _table(
        "risk_calibration", "Observed and predicted risk by decile of predicted risk", frame,
        ("decile",), kinds, persons, derived_from={"observed": ("events", "people")},
        magnitudes=magnitudes, description="Held-out people; decile 10 is the highest risk.",
    )  # fmt: skip


def _tiers_table(scored: pd.DataFrame, tier: pd.Categorical, p: np.ndarray) -> ResultTable:
    rows = pd.DataFrame({"person_id": np.arange(len(scored)), "tier": tier,
                         "age": scored["age"].to_numpy(), "p": p})  # fmt: skip
    age = _evidence(rows, by=["tier"], value="age").reset_index()
    risk = _evidence(rows, by=["tier"], value="p").reset_index()
    total = len(rows)
    frame = pd.DataFrame({
        "tier": age["tier"].astype("str"), "people": age["persons"], "all_people": total,
        "share": age["persons"] / total, "mean_age": age["sum"] / age["persons"],
        "mean_predicted_risk": risk["sum"] / risk["persons"],
    })  # fmt: skip
    magnitudes = pd.DataFrame(
        {
            f"{c}.{f}": e[f]
            for c, e in (("mean_age", age), ("mean_predicted_risk", risk))
            for f in MAGNITUDE_FIELDS
        }
    )
    kinds = {"people": "count", "all_people": "count", "share": "proportion",
             "mean_age": "mean", "mean_predicted_risk": "mean"}  # fmt: skip
    persons = {c: frame["people"] for c in kinds} | {"all_people": total}
    return _table(
        "risk_tiers", "Risk tiers: size, mean age and mean predicted risk", frame, ("tier",),
        kinds, persons, derived_from={"share": ("people", "all_people")},
        magnitudes=magnitudes, description="People registered on the index date, by rank of "
        "predicted risk of an emergency admission in 12 months.",
    )  # fmt: skip


def _characteristics_table(
    scored: pd.DataFrame, tier: pd.Categorical, model: pd.DataFrame | None
) -> ResultTable:
    """Per tier and characteristic: people with it, the tier's people and the share.
    Prior admissions always; the observed outcome when the design observes it."""
    columns = {c: scored[c].to_numpy() == 1 for c in _CHARACTERISTICS}
    columns["emergency_admission_previous_12_months"] = (
        scored[["prior_emergency_1", "prior_emergency_2_plus"]].to_numpy().sum(axis=1) > 0
    )
    if model is not None:
        columns["emergency_admission_next_12_months"] = model.loc[scored.index, "outcome"] == 1
    flags = pd.DataFrame(columns, index=pd.CategoricalIndex(tier, name="tier"))
    people = flags.groupby(level="tier", observed=False).sum()
    sizes = flags.groupby(level="tier", observed=False).size()
    long = people.stack().rename("people").reset_index()
    long.columns = pd.Index(["tier", "characteristic", "people"])
    long["tier_people"] = sizes.reindex(long["tier"]).to_numpy()
    long["share"] = long["people"] / long["tier_people"].where(long["tier_people"] > 0)
    long["tier"] = long["tier"].astype("str")
    kinds = {"people": "count", "tier_people": "count", "share": "proportion"}
    persons = {"people": long["people"], "tier_people": long["tier_people"],
               "share": long["people"]}  # fmt: skip
    return _table(
        "risk_tier_characteristics", "Risk tiers: share with each characteristic", long,
        ("tier", "characteristic"), kinds, persons,
        derived_from={"share": ("people", "tier_people")},
    )  # fmt: skip
