"""Analysis benchmark: the standard PHM pack against plain pandas, and the sandbox's cost.

    SDE_VAR_DIR=$PWD/var/bench python bench/analysis.py [--patients N | --quick] [--seed S]
        [--repeat R] [--runs K] [--skip-sandbox-pack]

Pure (no Django, no database). The extract is synthetic: ``synth.generate`` of N people
(default 1,000,000; ``--quick``: 50,000) with no faults, the tables the pack reads
(patients, GP events, admitted spells, A&E), as ``frames_from_tables`` shapes them, written
once as an extract folder the way ``sdelib.read`` reads it (``<slug>.parquet``, zstd) under
``$SDE_VAR_DIR/bench-analysis/`` and reused by later runs. The index date is the drop's
last day. In one run:

  (a) the standard pack with the library, in a fresh interpreter: ``segmentation_analysis``
      (costed, every breakdown), ``risk_stratification`` (year_before design, default
      tiers) and ``rates_by`` of emergency admissions, age-standardised, by IMD decile and
      by ethnic group; each step timed, and the child's peak resident memory;
  (b) the baseline, in another fresh interpreter: a plain pandas script computing the same
      numbers the way an analyst would (merges, groupby, ``np.select``, Newton iterations in
      NumPy, a merge to the ESP2013 weights), with the same codelists, features and split;
      no disclosure evidence (the library also computes dominance evidence for every
      magnitude). The results must agree (segment counts and tier sizes equal, costs and
      DSRs to 1e-9 relative, model to 1e-6): a difference stops the bench as a finding.
      Ratio library / baseline;
  (c) sandbox start-up per job: ``sandbox.run`` of ``import sdelib`` (isolated, if this host
      allows it, and not), and of ``/bin/true`` isolated, against a plain ``python -c "import
      pandas"`` subprocess (the baseline); median of K runs (default 10);
  (d) the pack as one job script (``sdelib.frames``, the four analyses, ``write_result``)
      through ``sandbox.run`` against the same script in a plain subprocess with the same
      environment; first under the production default limits (``Limits()``), and again
      with 16 GiB of address space if those stop it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from measure import machine, peak_mb, timed  # bench/measure.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("patients", "gp_events", "apc_spells", "ae_attendances")
BREAKDOWNS = ("place", "pcn_code", "imd_quintile", "ethnic_group", "age_band")
DSR_BY = ("imd_decile", "ethnic_group")
QUICK, GiB = 50_000, 1024**3
# The summaries both sides return, and how close they must be (None: equal).
TOLERANCE: dict[str, float | None] = {"count": None, "cost": 1e-9, "rate": 1e-9, "model": 1e-6}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument("--quick", action="store_true", help=f"N = {QUICK:,} (a smoke test)")
    parser.add_argument("--seed", type=int, default=20250301, help="S (default 20250301)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of (a) and (b), best kept")
    parser.add_argument("--runs", type=int, default=10, help="runs per mode in (c) (10)")
    parser.add_argument("--skip-sandbox-pack", action="store_true", help="leave out (d)")
    for name in ("--worker", "--extract", "--library", "--result", "--day"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    return parser.parse_args()


def _key(*parts: object) -> str:
    return "|".join(str(p) for p in parts)


# --- The extract (a child process: the generator's memory is its own) --------------------
def _prepare(patients: int, seed: int, folder: Path) -> dict[str, Any]:
    import pandas as pd  # noqa: F401 (pyarrow engine for to_parquet)

    from sde.data import synth
    from sde.phm.frames import frames_from_tables

    config = synth.SynthConfig(faults=synth.FaultRates.none())
    seconds, drop = timed(
        lambda: synth.generate(patients=patients, seed=seed, config=config, tables=TABLES)
    )
    frames = frames_from_tables(drop.tables)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in TABLES:
        frames[name].to_parquet(staging / f"{name.replace('_', '-')}.parquet", index=False,
                                compression="zstd")  # fmt: skip
    meta = {"patients": patients, "seed": seed, "end": drop.end.isoformat(),
            "rows": {n: len(frames[n]) for n in TABLES}, "generate_seconds": seconds,
            "peak_mb": peak_mb()}  # fmt: skip
    (staging / "meta.json").write_text(json.dumps(meta))
    for path in (staging, *staging.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the sandbox runs as nobody
    staging.rename(folder)
    return meta


# --- (a) the library -----------------------------------------------------------------------
def _library(extract: Path, day: date) -> dict[str, Any]:
    os.environ["SDE_SANDBOX_INPUT"] = str(extract)
    import sdelib

    from sde.phm import inequalities, risk, segmentation

    read, frames = timed(sdelib.frames)
    after_read = peak_mb()
    steps: dict[str, Callable[[], Any]] = {
        "segmentation_analysis (costed)": lambda: segmentation.segmentation_analysis(
            frames, index_date=day),
        "risk_stratification (year_before)": lambda: risk.risk_stratification(
            frames, index_date=day, design="year_before"),
        **{f"rates_by {by}, standardised": partial(
            inequalities.rates_by, frames, index_date=day, outcome="emergency_admissions",
            by=by, standardise=True) for by in DSR_BY},
    }  # fmt: skip
    seconds, results = {}, []
    for name, step in steps.items():
        seconds[name], result = timed(step)
        results.append(result)
    return {"read": read, "steps": seconds, "after_read_mb": after_read, "peak_mb": peak_mb(),
            "summary": _library_summary(*results)}  # fmt: skip


def _pairs(frame: Any, keys: list[str], value: str) -> dict[str, float]:
    return {_key(*row[:-1]): row[-1].item() if hasattr(row[-1], "item") else row[-1]
            for row in frame[[*keys, value]].itertuples(index=False)}  # fmt: skip


def _library_summary(seg: Any, rsk: Any, *rates: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    shares = seg.table("segments").frame
    out["count:segments"] = _pairs(shares[shares["people"] > 0], ["segment"], "people")
    out["cost:segment_costs"] = _pairs(seg.table("segment_costs").frame, ["segment"], "total_cost")
    for by in BREAKDOWNS:
        counts = seg.table(f"segments_by_{by}").frame
        out[f"count:segments_by_{by}"] = _pairs(counts[counts["people"] > 0], [by, "segment"],
                                                "people")  # fmt: skip
        out[f"cost:segment_costs_by_{by}"] = _pairs(
            seg.table(f"segment_costs_by_{by}").frame, [by, "segment"], "total_cost")  # fmt: skip
    tiers = rsk.table("risk_tiers").frame
    out["count:tiers"] = _pairs(tiers, ["tier"], "people")
    out["model:tier_risk"] = _pairs(tiers, ["tier"], "mean_predicted_risk")
    out["model:coefficients"] = _pairs(rsk.table("risk_model").frame, ["term"], "coefficient")
    performance = rsk.table("risk_performance").frame.set_index("metric")["value"]
    out["model:auc"] = {"auc": float(performance["auc"])}
    out["count:cohort"] = _cohort(rsk.cohort)
    for by, result in zip(DSR_BY, rates, strict=True):
        crude = result.table(f"emergency_admissions_by_{by}").frame
        out[f"rate:crude_{by}"] = _pairs(crude, [by], "rate")
        dsr = result.table(f"emergency_admissions_by_{by}_standardised").frame
        for column in ("dsr", "dsr_lower", "dsr_upper"):
            out[f"rate:{column}_{by}"] = _pairs(dsr, [by], column)
    return out


def _cohort(ids: Any) -> dict[str, Any]:
    people = sorted(str(i) for i in ids)
    digest = hashlib.sha256("\n".join(people).encode()).hexdigest()
    return {"people": len(people), "sha256": digest}


# --- (b) the baseline: a plain pandas script -----------------------------------------------
def _baseline(extract: Path, day: date) -> dict[str, Any]:
    import pandas as pd
    import scipy.stats  # noqa: F401 (imported before the clock starts, as the library's are)

    from sde.phm import codelists, features, frailty, population, risk, segmentation  # noqa: F401

    read, frames = timed(lambda: {n: pd.read_parquet(extract / f"{n.replace('_', '-')}.parquet")
                                   for n in TABLES})  # fmt: skip
    after_read = peak_mb()
    d = pd.Timestamp(day)
    seconds: dict[str, float] = {}
    seconds["population and codelist flags"], pop = timed(lambda: _population(frames, d))
    steps: dict[str, Callable[[], dict[str, dict[str, Any]]]] = {
        "segmentation (costed, every breakdown)": lambda: _segmentation(frames, pop, d),
        "risk model and tiers": lambda: _risk(frames, pop, d),
        **{f"DSR by {by}": partial(_dsr, frames, pop, d, by) for by in DSR_BY},
    }  # fmt: skip
    summary: dict[str, dict[str, Any]] = {}
    for name, step in steps.items():
        seconds[name], result = timed(step)
        summary.update(result)
    return {"read": read, "steps": seconds, "after_read_mb": after_read, "peak_mb": peak_mb(),
            "summary": summary}  # fmt: skip


def _registered(patients: Any, day: Any) -> Any:
    """Registered and alive on ``day``, with age, bands, ethnic group and IMD quintile."""
    import pandas as pd

    from sde.phm.population import AGE_BANDS, ESP2013_BANDS, ETHNIC_GROUPS

    p = patients
    on = ((p["registration_start"].isna() | (p["registration_start"] <= day))
          & (p["registration_end"].isna() | (p["registration_end"] >= day))
          & (p["date_of_death"].isna() | (p["date_of_death"] > day)))  # fmt: skip
    pop = p[on].drop_duplicates("person_id").copy()
    born = pop["birth_month"]
    before_birthday = (born.dt.month > day.month) | (
        (born.dt.month == day.month) & (born.dt.day > day.day))  # fmt: skip
    pop["age"] = day.year - born.dt.year - before_birthday.astype(int)
    pop["age_band_5y"] = pd.cut(pop["age"], [*range(0, 95, 5), 999], right=False,
                                labels=list(ESP2013_BANDS))  # fmt: skip
    pop["age_band"] = pd.cut(pop["age"], [0, 16, 45, 65, 75, 85, 200], right=False,
                             labels=[b for b, _, _ in AGE_BANDS])  # fmt: skip
    group = pop["ethnicity"].str.split(":").str[0].str.strip()
    pop["ethnic_group"] = group.where(group.isin(ETHNIC_GROUPS[:-1]), "Not stated")
    pop["imd_quintile"] = (pop["imd_decile"] + 1) // 2
    return pop.sort_values("person_id").reset_index(drop=True)


def _population(frames: dict[str, Any], day: Any) -> Any:
    """The people registered on ``day`` with one bool column per codelist (any code up to
    the day before), the eFI and its category."""
    import pandas as pd

    from sde.phm.codelists import EFI_DEFICITS, LIBRARY
    from sde.phm.frailty import FRAILTY_CATEGORIES

    end = day - pd.Timedelta(days=1)
    gp, apc = frames["gp_events"], frames["apc_spells"]
    gp, apc = gp[gp["date"] <= end], apc[apc["admission_date"] <= end]
    lists = [c for c in LIBRARY.values() if not c.id.startswith("med_") and c.id not in
             ("bmi", "hba1c", "systolic_bp", "diastolic_bp", "chemotherapy_admission")]  # fmt: skip
    snomed = pd.DataFrame([(code, c.id) for c in lists for code in c.snomed],
                          columns=["snomed_code", "codelist"])  # fmt: skip
    parts = [gp.merge(snomed, on="snomed_code")[["person_id", "codelist", "date"]]]
    for c in lists:
        if c.icd10:
            hit = apc[apc["primary_diagnosis_icd10"].str.startswith(c.icd10)]
            parts.append(pd.DataFrame({"person_id": hit["person_id"], "codelist": c.id,
                                       "date": hit["admission_date"]}))  # fmt: skip
    codes = pd.concat(parts, ignore_index=True)
    ids = [c.id for c in lists]
    flags = (codes.drop_duplicates(["person_id", "codelist"]).assign(has=True)
             .pivot(index="person_id", columns="codelist", values="has")
             .reindex(columns=ids).notna())  # fmt: skip
    first = codes[codes["codelist"] == "cancer"].groupby("person_id")["date"].min()
    pop = _registered(frames["patients"], day)
    pop = pop.merge(flags, left_on="person_id", right_index=True, how="left")
    pop[ids] = pop[ids].fillna(False).astype(bool)
    pop = pop.merge(first.rename("first_cancer"), left_on="person_id", right_index=True,
                    how="left")  # fmt: skip
    deficits = sum(pop[list(d)].any(axis=1).astype(int) for d in EFI_DEFICITS.values() if d)
    pop["efi"] = deficits / len(EFI_DEFICITS)
    pop["frailty"] = pd.cut(pop["efi"], [-1, 0.12, 0.24, 0.36, 2], labels=FRAILTY_CATEGORIES)
    return pop


def _per_person(rows: Any, name: str) -> Any:
    return rows.groupby("person_id").size().rename(name)


def _with(pop: Any, *counts: Any) -> Any:
    """``pop`` with per-person counts merged in (0 for people without any)."""
    for series in counts:
        pop = pop.merge(series, left_on="person_id", right_index=True, how="left")
        pop[series.name] = pop[series.name].fillna(0)
    return pop


def _segmentation(frames: dict[str, Any], pop: Any, day: Any) -> dict[str, dict[str, Any]]:
    import numpy as np
    import pandas as pd

    from sde.phm.features import LONG_TERM_CONDITIONS
    from sde.phm.segmentation import SEGMENTS

    start, end = day - pd.DateOffset(years=1), day - pd.Timedelta(days=1)
    apc, ae = frames["apc_spells"], frames["ae_attendances"]
    year = apc[(apc["admission_date"] >= start) & (apc["admission_date"] <= end)]
    ae_year = ae[(ae["arrival_date"] >= start) & (ae["arrival_date"] <= end)]
    cost = pd.concat([year[["person_id", "cost"]], ae_year[["person_id", "cost"]]])
    pop = _with(
        pop, _per_person(year[year["primary_diagnosis_icd10"].str.startswith("Z511")], "chemo"),
        _per_person(year[year["admission_method"] == "maternity"], "maternity"),
        _per_person(year[year["admission_method"] == "emergency"], "emergency"),
        cost.groupby("person_id")["cost"].sum().rename("cost"),
    )  # fmt: skip
    facts = pd.DataFrame({
        "active_cancer": (pop["first_cancer"] >= start) | (pop["chemo"] > 0),
        "severe_frailty": (pop["frailty"] == "severe") & (pop["age"] >= 65),
        "long_term_condition": pop[list(LONG_TERM_CONDITIONS)].any(axis=1),
        "maternity_admission": pop["maternity"] > 0, "infant": pop["age"] < 1,
        "emergency_admission": pop["emergency"] > 0,
    })  # fmt: skip
    for name in ("dementia", "heart_failure", "copd", "ckd_stage_4_5", "learning_disability"):
        facts[name] = pop[name]
    ruled = [s for s in SEGMENTS if s.facts]
    pop["segment"] = np.select([facts[list(s.facts)].any(axis=1) for s in ruled],
                               [s.key for s in ruled], default="healthy")  # fmt: skip
    counts = pop.groupby("segment").size()
    out: dict[str, dict[str, Any]] = {"count:segments": {k: int(v) for k, v in counts.items()}}
    costs = pop.groupby("segment")["cost"].agg(["size", "sum"])
    costs["per_person"] = costs["sum"] / costs["size"]
    out["cost:segment_costs"] = {k: float(v) for k, v in costs["sum"].items()}
    for by in BREAKDOWNS:
        cells = pop.groupby([by, "segment"], observed=True)["cost"].agg(["size", "sum"])
        cells["share"] = cells["size"] / cells.groupby(level=0)["size"].transform("sum")
        cells["per_person"] = cells["sum"] / cells["size"]
        out[f"count:segments_by_{by}"] = {_key(*k): int(v) for k, v in cells["size"].items()}
        out[f"cost:segment_costs_by_{by}"] = {_key(*k): float(v) for k, v in cells["sum"].items()}
    return out


def _features(frames: dict[str, Any], people: Any, day: Any) -> Any:
    """The model's features for ``people`` (ages on ``day``; emergency admissions in the
    year before ``day``); NaN where unknown."""
    import numpy as np
    import pandas as pd

    from sde.phm.risk import AGE_FEATURES

    apc = frames["apc_spells"]
    prior = apc[(apc["admission_method"] == "emergency")
                & (apc["admission_date"] >= day - pd.DateOffset(years=1))
                & (apc["admission_date"] < day)]  # fmt: skip
    f = _with(people, _per_person(prior, "prior"))
    for name, lo, hi in AGE_FEATURES:
        f[name] = np.where(f["age"].isna(), np.nan, (f["age"] >= lo) & (f["age"] < hi))
    f["male"] = (f["sex"] == "M").astype(float)
    f["deprivation"] = (10 - f["imd_decile"]) / 9
    for level in ("mild", "moderate", "severe"):
        f[f"frailty_{level}"] = (f["frailty"] == level).astype(float)
    f["prior_emergency_1"] = (f["prior"] == 1).astype(float)
    f["prior_emergency_2_plus"] = (f["prior"] >= 2).astype(float)
    return f


def _newton(x: Any, y: Any) -> Any:
    """Logistic regression by plain Newton-Raphson: coefficients (intercept first)."""
    import numpy as np

    x = np.column_stack([np.ones(len(x)), x])
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ beta)))
        step = np.linalg.solve((x * (p * (1 - p))[:, None]).T @ x, x.T @ (y - p))
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def _risk(frames: dict[str, Any], pop: Any, day: Any) -> dict[str, dict[str, Any]]:
    import numpy as np
    import pandas as pd

    from sde.phm.risk import DEFAULT_TIERS, FEATURES, MIN_GROUP, RISK_CONDITIONS

    year_ago = day - pd.DateOffset(years=1)
    scoring = _features(frames, pop, day)
    coded = pop[["person_id", *RISK_CONDITIONS, "frailty"]]
    earlier = _registered(frames["patients"], year_ago)[
        ["person_id", "age", "sex", "imd_decile"]].merge(coded, on="person_id")  # fmt: skip
    model = _features(frames, earlier, year_ago)
    apc = frames["apc_spells"]
    outcome = apc[(apc["admission_method"] == "emergency") & (apc["admission_date"] >= year_ago)
                  & (apc["admission_date"] < day)]  # fmt: skip
    model = _with(model, _per_person(outcome, "admissions"))
    model["outcome"] = (model["admissions"] > 0).astype(float)
    model[list(RISK_CONDITIONS)] = model[list(RISK_CONDITIONS)].astype(float)
    scoring[list(RISK_CONDITIONS)] = scoring[list(RISK_CONDITIONS)].astype(float)
    data = model.dropna(subset=list(FEATURES)).sort_values("person_id").reset_index(drop=True)
    test = np.random.default_rng(0).random(len(data)) < 0.3
    train = data[~test]
    used = []
    for name in FEATURES:  # estimable: enough people with and without it, not separated
        has = train[name] > 0
        events = train.loc[has, "outcome"].sum()
        if MIN_GROUP <= has.sum() <= len(train) - MIN_GROUP and 0 < events < has.sum():
            used.append(name)
    beta = _newton(train[used].to_numpy(float), train["outcome"].to_numpy())
    out: dict[str, dict[str, Any]] = {
        "model:coefficients": dict(zip(["intercept", *used], beta.tolist(), strict=True))
    }

    def predict(rows: Any) -> Any:
        return 1 / (1 + np.exp(-(beta[0] + rows[used].to_numpy(float) @ beta[1:])))

    held = data[test].assign(p=lambda t: predict(t))
    rank = held["p"].rank()
    n1, n0 = int(held["outcome"].sum()), int((held["outcome"] == 0).sum())
    out["model:auc"] = {"auc": (rank[held["outcome"] == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)}
    held["decile"] = pd.qcut(held["p"].rank(method="first"), 10, labels=range(1, 11))
    held.groupby("decile", observed=True).agg(observed=("outcome", "mean"), predicted=("p", "mean"))
    logit = np.log(held["p"] / (1 - held["p"])).to_numpy()[:, None]
    _newton(logit, held["outcome"].to_numpy())  # calibration slope and intercept
    scored = scoring.dropna(subset=used).sort_values("person_id").reset_index(drop=True)
    scored["p"] = predict(scored)
    rank = scored["p"].rank(method="first", ascending=False)
    bounds = np.floor(np.cumsum([s for _, s in DEFAULT_TIERS]) * len(scored) + 0.5)
    scored["tier"] = pd.cut(rank, [0, *bounds[:-1], len(scored)],
                            labels=[t for t, _ in DEFAULT_TIERS])  # fmt: skip
    tiers = scored.groupby("tier", observed=False).agg(
        people=("p", "size"), mean_age=("age", "mean"), mean_predicted_risk=("p", "mean")
    )
    scored.groupby("tier", observed=False)[[*RISK_CONDITIONS, "male", "frailty_moderate",
                                            "frailty_severe"]].mean()  # fmt: skip
    out["count:tiers"] = {str(k): int(v) for k, v in tiers["people"].items()}
    out["model:tier_risk"] = {str(k): float(v) for k, v in tiers["mean_predicted_risk"].items()}
    out["count:cohort"] = _cohort(scored.loc[scored["tier"] == DEFAULT_TIERS[0][0], "person_id"])
    return out


def _dsr(frames: dict[str, Any], pop: Any, day: Any, by: str) -> dict[str, dict[str, Any]]:
    import numpy as np
    import pandas as pd
    from scipy.stats import chi2

    from sde.phm.population import ESP2013_BANDS, ESP2013_WEIGHTS

    apc = frames["apc_spells"]
    emergency = apc[(apc["admission_method"] == "emergency")
                    & (apc["admission_date"] >= day - pd.DateOffset(years=1))
                    & (apc["admission_date"] < day)]  # fmt: skip
    people = _with(pop[pop["age"].notna() & pop[by].notna()], _per_person(emergency, "events"))
    esp = pd.DataFrame({"age_band_5y": ESP2013_BANDS, "weight": ESP2013_WEIGHTS})
    esp["weight"] = esp["weight"] / esp["weight"].sum()
    bands = (people.groupby([by, "age_band_5y"], observed=True)
             .agg(people=("person_id", "size"), events=("events", "sum")).reset_index()
             .merge(esp, on="age_band_5y"))  # fmt: skip
    bands["term"] = bands["weight"] * bands["events"] / bands["people"]
    bands["variance"] = bands["weight"] ** 2 * bands["events"] / bands["people"] ** 2
    rates = bands.groupby(by).agg(events=("events", "sum"), people=("people", "sum"),
                                  dsr=("term", "sum"), variance=("variance", "sum"))  # fmt: skip
    rates["dsr"] *= 100_000
    events = rates["events"]
    low = np.where(events > 0, chi2.ppf(0.025, 2 * events) / 2, 0.0)
    high = chi2.ppf(0.975, 2 * events + 2) / 2
    factor = np.sqrt(100_000**2 * rates["variance"] / events)
    rates["dsr_lower"] = rates["dsr"] + factor * (low - events)
    rates["dsr_upper"] = rates["dsr"] + factor * (high - events)
    crude = people.groupby(by).agg(people=("person_id", "size"), events=("events", "sum"))
    crude["rate"] = crude["events"] / crude["people"] * 100_000
    crude["lower"] = np.where(crude["events"] > 0, chi2.ppf(0.025, 2 * crude["events"]) / 2, 0)
    crude["upper"] = chi2.ppf(0.975, 2 * crude["events"] + 2) / 2
    out = {f"rate:crude_{by}": {str(k): float(v) for k, v in crude["rate"].items()}}
    for column in ("dsr", "dsr_lower", "dsr_upper"):
        out[f"rate:{column}_{by}"] = {str(k): float(v) for k, v in rates[column].items()}
    return out


# --- Comparing the two -----------------------------------------------------------------------
def _differences(ours: dict[str, dict[str, Any]], theirs: dict[str, dict[str, Any]]) -> list[str]:
    """What differs beyond the tolerance of its kind (an empty list: they agree)."""
    found = []
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name, {}), theirs.get(name, {})
        if set(a) != set(b):
            found.append(f"{name}: cells {sorted(set(a) ^ set(b))[:5]} on one side only")
            continue
        tolerance = TOLERANCE[name.split(":")[0]]
        for cell in a:
            x, y = a[cell], b[cell]
            if tolerance is None or isinstance(x, str):
                same = x == y
            else:  # both NaN is the same: a group with no events has no DSR limits
                same = abs(x - y) <= tolerance * max(abs(x), abs(y), 1.0) or (x != x and y != y)
            if not same:
                found.append(f"{name}[{cell}]: library {x!r}, baseline {y!r}")
    return found


def _largest_gap(ours: dict[str, dict[str, Any]], theirs: dict[str, dict[str, Any]],
                 kind: str) -> float:  # fmt: skip
    gaps = [abs(a[c] - b[c]) / max(abs(a[c]), abs(b[c]), 1e-300)
            for n, a in ours.items() if n.startswith(kind) and (b := theirs.get(n))
            for c in a if c in b and not isinstance(a[c], str)]  # fmt: skip
    return max(gaps, default=0.0)


# --- (c), (d) the sandbox ----------------------------------------------------------------------
PACK_SCRIPT = '''\
"""The standard pack as one job script: read the extract, run four analyses, write them."""
import json, resource, sys, time
from datetime import date

started = time.perf_counter()
import sdelib
from sde.phm import inequalities, risk, segmentation

marks = {"import": time.perf_counter()}
day = date.fromisoformat(sys.argv[1])
frames = sdelib.frames()
marks["read"] = time.perf_counter()
results = [
    segmentation.segmentation_analysis(frames, index_date=day),
    risk.risk_stratification(frames, index_date=day, design="year_before"),
    *(inequalities.rates_by(frames, index_date=day, outcome="emergency_admissions", by=by,
                            standardise=True) for by in ("imd_decile", "ethnic_group")),
]
marks["analyses"] = time.perf_counter()
for result in results:
    sdelib.write_result(result)
marks["write"] = time.perf_counter()
steps, last = {}, started
for step, at in marks.items():
    steps[step], last = at - last, at
usage = resource.getrusage(resource.RUSAGE_SELF)
print("PACK " + json.dumps({"steps": steps, "peak_mb": usage.ru_maxrss / 1024,
                            "cpu": usage.ru_utime + usage.ru_stime}), flush=True)
'''


class _Jobs:
    """Job folders laid out as the worker lays them out, under one scratch folder."""

    def __init__(self, base: Path, extract: Path, library: Path) -> None:
        from sde.analysis import sandbox

        self.sandbox, self.extract, self.library = sandbox, extract, library
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)

    def spec(self, argv: list[str], script: str, *, isolate: bool, limits: Any = None) -> Any:
        folder = Path(tempfile.mkdtemp(dir=self.base))
        job, tmp = folder / "job", folder / "tmp"
        job.mkdir()
        tmp.mkdir()
        (job / "script.py").write_text(script)
        for path in (folder, job, tmp, job / "script.py"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if os.geteuid() == 0:
            os.chown(tmp, self.sandbox.NOBODY, self.sandbox.NOBODY)
        self.sandbox.prepare_output(folder / "output")
        return self.sandbox.SandboxSpec(
            argv=argv, job_dir=job, output_dir=folder / "output", log_path=folder / "log.txt",
            input_dir=self.extract, library=self.library, isolate=isolate,
            limits=limits or self.sandbox.Limits(),
        )  # fmt: skip

    def in_sandbox(self, argv: list[str], script: str, *, isolate: bool,
                   limits: Any = None) -> tuple[float, Any, str]:  # fmt: skip
        """(seconds as the caller waits, SandboxResult, log) of one sandbox.run."""
        spec = self.spec(argv, script, isolate=isolate, limits=limits)
        seconds, result = timed(lambda: self.sandbox.run(spec))
        log = spec.log_path.read_text(errors="replace")
        shutil.rmtree(spec.job_dir.parent, ignore_errors=True)
        return seconds, result, log

    def plain(self, argv: list[str], script: str) -> tuple[float, int, str]:
        """The same argv in a plain subprocess: the environment an unisolated run gets,
        no limits, no watcher; (seconds, exit code, output)."""
        spec = self.spec(argv, script, isolate=False)
        env = {**self.sandbox._environment(spec), **self.sandbox._outside_env(spec)}
        argv = [self.sandbox._outside(a, spec) for a in argv]
        seconds, done = timed(lambda: subprocess.run(
            argv, env=env, cwd=spec.output_dir, capture_output=True, check=False))  # fmt: skip
        shutil.rmtree(spec.job_dir.parent, ignore_errors=True)
        return seconds, done.returncode, (done.stdout + done.stderr).decode(errors="replace")


def _start_up(jobs: _Jobs, runs: int, isolated: bool) -> dict[str, list[float]]:
    """Seconds per run of each mode, the modes interleaved (shared machines drift)."""
    python = [sys.executable, "-s", "/job/script.py"]
    modes: dict[str, Callable[[], float]] = {
        'plain python -c "import pandas" (baseline)': lambda: timed(lambda: subprocess.run(
            [sys.executable, "-c", "import pandas"], check=True,
            env=dict(jobs.sandbox.BASE_ENV)))[0],
        "plain python: import sdelib": lambda: _ok(jobs.plain(python, "import sdelib\n")),
        "sandbox.run unisolated: import sdelib": lambda: _ok(
            jobs.in_sandbox(python, "import sdelib\n", isolate=False)),
    }  # fmt: skip
    if isolated:
        modes["sandbox.run isolated: import sdelib"] = lambda: _ok(
            jobs.in_sandbox(python, "import sdelib\n", isolate=True)
        )
        modes["sandbox.run isolated: /bin/true"] = lambda: _ok(
            jobs.in_sandbox(["/bin/true"], "", isolate=True)
        )
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(runs):
        for mode, run in modes.items():
            times[mode].append(run())
    return times


def _ok(ran: tuple[float, Any, str]) -> float:
    seconds, result, log = ran
    code = result if isinstance(result, int) else result.exit_code
    if code != 0:
        raise SystemExit(f"a start-up run failed ({result}):\n{log[-2000:]}")
    return seconds


def _pack(jobs: _Jobs, day: date, isolated: bool) -> list[tuple[str, float, Any, str]]:
    """(mode, seconds, SandboxResult or exit code, log) of the pack script: plain, then
    sandboxed under the default limits, and with 16 GiB if those stopped it."""
    argv = [sys.executable, "-s", "/job/script.py", day.isoformat()]
    seconds, code, log = jobs.plain(argv, PACK_SCRIPT)
    runs = [("plain subprocess, same script and environment", seconds, code, log)]
    print(f"  ... pack, plain: {seconds:.1f}s", file=sys.stderr, flush=True)
    for isolate in (True, False) if isolated else (False,):
        label = f"sandbox.run, {'isolated' if isolate else 'unisolated'}"
        default = jobs.sandbox.Limits()
        for limits in (default, replace(default, memory_bytes=16 * GiB)):
            seconds, result, log = jobs.in_sandbox(argv, PACK_SCRIPT, isolate=isolate,
                                                   limits=limits)  # fmt: skip
            gib = limits.memory_bytes / GiB
            runs.append((f"{label}, {gib:.0f} GiB limit", seconds, result, log))
            print(f"  ... pack, {label} ({gib:.0f} GiB): {seconds:.1f}s, {result.outcome} "
                  f"{result.exit_code}", file=sys.stderr, flush=True)  # fmt: skip
            if result.outcome == "exited" and result.exit_code == 0:
                break
    return runs


def _pack_steps(log: str) -> dict[str, Any] | None:
    for line in reversed(log.splitlines()):
        if line.startswith("PACK "):
            return dict(json.loads(line[5:]))
    return None


def _why(log: str) -> str:
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else "(empty log)"


# --- Running and printing ----------------------------------------------------------------------
def _worker(args: argparse.Namespace) -> None:
    extract = Path(args.extract)
    if args.worker == "prepare":
        sys.path.insert(0, str(ROOT))
        patients, seed = (int(v) for v in args.day.split(":"))
        result = _prepare(patients, seed, extract)
    else:  # the sandbox's copy of the code: no Django, no Celery, as a job imports it
        sys.path.insert(0, args.library)
        work = _library if args.worker == "library" else _baseline
        result = work(extract, date.fromisoformat(args.day))
    Path(args.result).write_text(json.dumps(result))


def _child(worker: str, extract: Path, day: str, library: Path | str = "") -> dict[str, Any]:
    """Run a worker in a fresh interpreter; its JSON result."""
    from sde.analysis.sandbox import BASE_ENV

    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [sys.executable, __file__, "--worker", worker, "--extract", str(extract),
                "--day", day, "--library", str(library), "--result", out.name]  # fmt: skip
        # BLAS on one thread, as in the sandbox (BASE_ENV): jobs run so, and a shared
        # machine's busy cores make multi-threaded OpenBLAS erratic.
        threads = {k: v for k, v in BASE_ENV.items() if k.endswith("_NUM_THREADS")}
        subprocess.run(argv, check=True, env={**os.environ, **threads})
        return dict(json.loads(Path(out.name).read_text()))


def _print_steps(title: str, run: dict[str, Any], read_as: str) -> float:
    total = sum(run["steps"].values())
    print(title)
    print(f"      {'read the extract (' + read_as + ')':<44} {run['read']:>8.2f}s")
    for step, seconds in run["steps"].items():
        print(f"      {step:<44} {seconds:>8.2f}s")
    print(f"      {'all the computations':<44} {total:>8.2f}s;  peak resident memory "
          f"{run['peak_mb']:,.0f} MB ({run['after_read_mb']:,.0f} MB after reading)")  # fmt: skip
    return total


def main() -> None:
    args = _parse_args()
    if args.worker:
        _worker(args)
        return
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import scipy

    from sde.analysis import library as sandbox_library
    from sde.analysis import sandbox

    n = QUICK if args.quick else args.patients
    var = Path(os.environ.get("SDE_VAR_DIR", ROOT / "var" / "bench")) / "bench-analysis"
    extract = var / f"extract-{n}-seed{args.seed}"
    print("sde analysis benchmark")
    print(f"  machine   {machine()}")
    print(f"  python    {platform.python_version()}, pandas {pd.__version__}, numpy "
          f"{np.__version__}, pyarrow {pa.__version__}, scipy {scipy.__version__}")  # fmt: skip
    if not (extract / "meta.json").exists():
        print(f"  ... generating {n:,} people into {extract}", file=sys.stderr, flush=True)
        _child("prepare", extract, f"{n}:{args.seed}")
        cached = "generated now"
    else:
        cached = "cached, reused"
    meta = json.loads((extract / "meta.json").read_text())
    day = meta["end"]
    print(f"  people    N = {n:,} (seed {args.seed}, no faults); index date {day} (the drop's "
          f"last day)")  # fmt: skip
    print(f"  extract   {extract} ({cached}; generated in {meta['generate_seconds']:.1f}s, "
          f"peak {meta['peak_mb']:,.0f} MB)")  # fmt: skip
    for name, rows in meta["rows"].items():
        slug = name.replace("_", "-")
        mb = (extract / f"{slug}.parquet").stat().st_size / 1e6
        print(f"      {slug + '.parquet':<24} {rows:>12,} rows  {mb:>8.1f} MB")
    print(flush=True)
    library_seconds, library = timed(lambda: sandbox_library.library_folder(var))

    runs: dict[str, list[dict[str, Any]]] = {"library": [], "baseline": []}
    for attempt in range(args.repeat):
        for worker in runs:
            runs[worker].append(_child(worker, extract, day, library))
            seconds = sum(runs[worker][-1]["steps"].values())
            print(f"  ... {worker} run {attempt + 1}: {seconds:.1f}s", file=sys.stderr, flush=True)
    ours, theirs = (min(r, key=lambda run: sum(run["steps"].values())) for r in runs.values())
    best = f" (best of {args.repeat})" if args.repeat > 1 else ""
    ours_total = _print_steps(
        f"(a) the standard pack with the library, in a fresh interpreter{best}", ours,
        "sdelib.frames")  # fmt: skip
    print()
    theirs_total = _print_steps(
        f"(b) baseline: a plain pandas script, the same numbers, in a fresh interpreter{best}",
        theirs, "pd.read_parquet")  # fmt: skip
    a, b = ours["summary"], theirs["summary"]
    differences = _differences(a, b)
    cells = sum(len(v) for k, v in a.items() if k.startswith("count:segments_by"))
    print(
        f"    results: {len(a['count:segments'])} segments and {cells:,} breakdown cells "
        f"{'equal' if not differences else 'compared'}; tier sizes "
        f"{', '.join(f'{v:,}' for v in a['count:tiers'].values())}; highest tier "
        f"{a['count:cohort']['people']:,} people, the same in both: "
        f"{a['count:cohort'] == b['count:cohort']}\n"
        f"    largest relative differences: costs {_largest_gap(a, b, 'cost'):.1e}, rates "
        f"and DSRs {_largest_gap(a, b, 'rate'):.1e}, model (coefficients, AUC, tier risk) "
        f"{_largest_gap(a, b, 'model'):.1e}"
    )
    print(
        f"    ratio library / baseline: {ours_total / theirs_total:.2f}x the time of the "
        f"computations ({(ours_total + ours['read']) / (theirs_total + theirs['read']):.2f}x "
        f"with reading); {ours['peak_mb'] / theirs['peak_mb']:.2f}x the peak memory"
    )
    if differences:
        print("\n".join(["FINDING: the library and the baseline differ:", *differences[:20]]))
        raise SystemExit(1)
    print(flush=True)

    probe_seconds, refusal = timed(sandbox.isolation_refusal)
    isolated = refusal is None
    jobs = _Jobs(var / "jobs", extract, library)
    try:
        times = _start_up(jobs, args.runs, isolated)
        medians = {mode: statistics.median(seconds) for mode, seconds in times.items()}
        baseline = next(iter(medians.values()))
        print(f"(c) sandbox start-up per job: median of {args.runs} runs (min-max), the modes "
              f"interleaved; isolation: {refusal or 'bubblewrap, available'}")  # fmt: skip
        for mode, seconds in times.items():
            print(f"      {mode:<44} {medians[mode]:>6.2f}s  ({min(seconds):.2f}-"
                  f"{max(seconds):.2f})  {medians[mode] / baseline:>5.2f}x")  # fmt: skip
        plain = medians["plain python: import sdelib"]
        for mode in (m for m in medians if m.startswith("sandbox.run") and "sdelib" in m):
            print(
                f"    {mode.removeprefix('sandbox.run ').split(':')[0]} sandbox overhead per "
                f"job: {medians[mode] - plain:+.2f}s over the same script run plainly"
            )
        print(f"    the watcher polls every {sandbox.POLL_SECONDS}s, so it sees a job end up to "
              f"that late; once per worker\n    process: isolation probe {probe_seconds:.2f}s; "
              f"library folder {library_seconds:.2f}s (written once per version)")  # fmt: skip
        print(flush=True)
        if args.skip_sandbox_pack:
            return
        pack = _pack(jobs, date.fromisoformat(day), isolated)
    finally:
        shutil.rmtree(jobs.base, ignore_errors=True)
    print("(d) the pack as one job script (sdelib.frames, the four analyses, write_result: "
          "CSVs, evidence, PNGs)")  # fmt: skip
    plain_seconds = pack[0][1]
    plain_cpu = (_pack_steps(pack[0][3]) or {}).get("cpu") or float("nan")
    for mode, seconds, result, log in pack:
        steps = _pack_steps(log)
        ok = result == 0 if isinstance(result, int) else (
            result.outcome == "exited" and result.exit_code == 0)  # fmt: skip
        if not ok or steps is None:
            outcome = (
                result if isinstance(result, int) else f"{result.outcome} {result.limit or ''}"
            )
            print(f"      {mode:<46} FAILED after {seconds:.1f}s ({outcome}): {_why(log)}")
            continue
        detail = ", ".join(f"{k} {v:.1f}s" for k, v in steps["steps"].items())
        print(f"      {mode:<46} {seconds:>7.1f}s  {seconds / plain_seconds:>5.2f}x  ({detail}; "
              f"CPU {steps['cpu']:.1f}s, {steps['cpu'] / plain_cpu:.2f}x; "
              f"peak {steps['peak_mb']:,.0f} MB)")  # fmt: skip
        if not isinstance(result, int):  # what the job records of itself
            print(f"      {'':<46} recorded: {result.wall_seconds:.1f}s wall, "
                  f"{result.cpu_seconds:.1f}s CPU, max RSS "
                  f"{result.max_rss_kb / 1024:,.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
