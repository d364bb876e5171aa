"""The cohort builder: case-finding cohorts as JSON-serialisable definitions
(reference/phm-analytics.md, "Cohort definition").

A definition is a tree: ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}`` and
leaves (``LEAVES``). The population is ``registered_population(frames, index_date)``;
each leaf gives a boolean mask over it from whole-column operations, and and/or/not
combine the masks.

Conventions (stated once, used everywhere):
- Every window ends on the index date, inclusive. ``within_days: N`` starts it N days
  before the index date, inclusive (so 365 spans 366 calendar days); without it a window
  is open ("ever, up to the index date").
- Ages are whole years on the index date; ``min`` and ``max`` are inclusive everywhere
  (16-64 is "working age": 16 to 64 inclusive).
- ``events`` counts rows with a code of the list (each coded record is one event);
  ``at_most`` includes people with none. ``activity`` counts ``population.ACTIVITY``.
- ``latest`` reads the latest recorded value of a measurement list up to the index date;
  people with no reading fail it (and so pass its ``not``).
- A person lacking what a leaf needs (no date of birth for ``age``) fails that leaf.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import pandas as pd

from sde.data.source_format import EARLIEST_DATE, SEXES
from sde.phm import codelists
from sde.phm.evidence import AnalysisResult, ChartSpec, ResultTable, count_table
from sde.phm.frames import AnalysisInputError, Frames
from sde.phm.population import ACTIVITY, ETHNIC_GROUPS, activity_counts, registered_population

Definition = Mapping[str, Any]
COMBINATORS: Final = ("all", "any", "not")
# Leaves that select on a population column: key -> (population column, patients column).
ATTRIBUTE_LEAVES: Final[Mapping[str, tuple[str, str]]] = MappingProxyType({
    "age": ("age", "birth_month"), "sex": ("sex", "sex"),
    "ethnic_group": ("ethnic_group", "ethnicity"), "imd_decile": ("imd_decile", "imd_decile"),
    "imd_quintile": ("imd_quintile", "imd_decile"), "core20": ("core20", "imd_decile"),
    "practice": ("practice_ods", "practice_ods"), "pcn": ("pcn_code", "pcn_code"),
    "place": ("place", "place"), "lsoa": ("lsoa_code", "lsoa_code"),
})  # fmt: skip
LEAVES: Final = (*ATTRIBUTE_LEAVES, "has", "events", "activity", "latest")
_CHOICES: Final[Mapping[str, tuple[Any, ...]]] = {
    "sex": SEXES, "ethnic_group": ETHNIC_GROUPS,
    "imd_decile": tuple(range(1, 11)), "imd_quintile": tuple(range(1, 6)),
}  # fmt: skip


# --- Validation -------------------------------------------------------------------------
def _at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_keys(spec: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> list[str]:
    return [f"{_at(path, k)} is not a known key (expected {', '.join(allowed)})"
            for k in spec if k not in allowed]  # fmt: skip


def _check_bounds(
    spec: Mapping[str, Any], path: str, low: str, high: str, kind: str = "whole"
) -> list[str]:
    """Optional ``low``/``high`` bounds: at least one given, right type, low <= high."""
    problems = []
    ok = _whole if kind == "whole" else _number
    noun = "a whole number" if kind == "whole" else "a number"
    for key in (low, high):
        value = spec.get(key)
        if value is not None and (not ok(value) or (kind == "whole" and value < 0)):
            problems.append(f"{_at(path, key)} must be {noun}" +
                            (" (0 or more)" if kind == "whole" else ""))  # fmt: skip
    if spec.get(low) is None and spec.get(high) is None:
        problems.append(f"{path} needs {low} or {high}")
    elif not problems and None not in (spec.get(low), spec.get(high)) and spec[low] > spec[high]:
        problems.append(f"{path}.{low} must not be more than {path}.{high}")
    return problems


def _check_days(spec: Mapping[str, Any], path: str) -> list[str]:
    days = spec.get("within_days")
    if days is None or (_whole(days) and days >= 1):
        return []
    return [f"{_at(path, 'within_days')} must be a whole number of days (1 or more)"]


def _check_codelist(value: Any, path: str, *, values: bool = False) -> list[str]:
    if not isinstance(value, str) or not value:
        return [f"{path} must be a codelist id (text)"]
    if value not in codelists.LIBRARY:
        return [f"{path}: unknown codelist {value!r}"]
    if values and not codelists.LIBRARY[value].snomed:
        return [f"{path}: codelist {value!r} has no GP codes to read values from"]
    return []


def _check_leaf(key: str, spec: Any, node: Mapping[str, Any], path: str) -> list[str]:
    where = _at(path, key)
    if key == "has":
        return _check_codelist(spec, where) + _check_days(node, path)
    if key in ("age", "events", "activity", "latest"):
        if not isinstance(spec, Mapping):
            return [f"{where} must be an object"]
    if key == "age":
        return _check_keys(spec, where, ("min", "max")) + _check_bounds(spec, where, "min", "max")
    if key in ("events", "activity"):
        first = "codelist" if key == "events" else "kind"
        allowed = (first, "within_days", "at_least", "at_most")
        problems = _check_keys(spec, where, allowed)
        if key == "events":
            problems += _check_codelist(spec.get("codelist"), _at(where, "codelist"))
        elif spec.get("kind") not in ACTIVITY:
            problems.append(f"{_at(where, 'kind')} must be one of {', '.join(ACTIVITY)}")
        return problems + _check_days(spec, where) + _check_bounds(
            spec, where, "at_least", "at_most")  # fmt: skip
    if key == "latest":
        problems = _check_keys(spec, where, ("codelist", "min", "max", "within_days"))
        problems += _check_codelist(spec.get("codelist"), _at(where, "codelist"), values=True)
        return problems + _check_days(spec, where) + _check_bounds(spec, where, "min", "max",
                                                                   kind="number")  # fmt: skip
    if key == "core20":
        return [] if isinstance(spec, bool) else [f"{where} must be true or false"]
    # A non-empty list of allowed values (or of text, for geography).
    choices = _CHOICES.get(key)
    kind = "whole numbers" if key.startswith("imd") else "text values"
    if not isinstance(spec, list) or not spec:
        return [f"{where} must be a non-empty list of {kind}"]
    problems = []
    for i, value in enumerate(spec):
        numeric = key.startswith("imd")
        if (numeric and not _whole(value)) or (not numeric and not isinstance(value, str)):
            problems.append(f"{_at(where, i)} must be {'a whole number' if numeric else 'text'}")
        elif choices is not None and value not in choices:
            listed = ", ".join(str(c) for c in choices)
            problems.append(f"{_at(where, i)}: {value!r} is not one of {listed}")
    return problems


def _check(node: Any, path: str) -> list[str]:
    where = path or "the definition"
    if not isinstance(node, Mapping):
        return [f'{where} must be an object such as {{"all": [...]}} or {{"age": {{"min": 18}}}}']
    keys = [k for k in node if k in (*COMBINATORS, *LEAVES)]
    if not keys:
        if not node:
            return [f"{where} is empty: it needs one of {', '.join((*COMBINATORS, *LEAVES))}"]
        return [f"{_at(path, k)} is not a known key (expected one of "
                f"{', '.join((*COMBINATORS, *LEAVES))})" for k in node]  # fmt: skip
    if len(keys) > 1:
        return [f"{where} has more than one condition ({', '.join(keys)}): "
                'combine them with {"all": [...]} or {"any": [...]}']  # fmt: skip
    key = keys[0]
    extra = [k for k in node if k != key and not (key == "has" and k == "within_days")]
    problems = [f"{_at(path, k)} is not allowed beside {key}" for k in extra]
    spec = node[key]
    if key in ("all", "any"):
        if not isinstance(spec, list) or not spec:
            return [*problems, f"{_at(path, key)} must be a non-empty list of conditions"]
        for i, child in enumerate(spec):
            problems += _check(child, _at(_at(path, key), i))
        return problems
    if key == "not":
        return problems + _check(spec, _at(path, key))
    return problems + _check_leaf(key, spec, node, path)


def validate(definition: Any) -> list[str]:
    """Every problem with ``definition``, as plain-English messages naming the path
    (``all[1].age.min must be a whole number (0 or more)``); empty if it is valid."""
    return _check(definition, "")


def _require_valid(definition: Any) -> None:
    if problems := validate(definition):
        raise AnalysisInputError("the cohort definition is invalid: " + "; ".join(problems))


# --- Reading a definition ---------------------------------------------------------------
def _walk(node: Definition) -> list[tuple[str, Any, Definition]]:
    """Every leaf (key, spec, node) in order."""
    key = next(k for k in node if k in (*COMBINATORS, *LEAVES))
    if key in ("all", "any"):
        return [leaf for child in node[key] for leaf in _walk(child)]
    if key == "not":
        return _walk(node[key])
    return [(key, node[key], node)]


def codelists_used(definition: Definition) -> dict[str, int]:
    """Codelist id -> current version, for every list the definition reads (sorted by
    id). AnalysisInputError if the definition is invalid."""
    _require_valid(definition)
    ids = set()
    for key, spec, _ in _walk(definition):
        if key == "has":
            ids.add(spec)
        elif key in ("events", "latest"):
            ids.add(spec["codelist"])
    return {i: codelists.get(i).version for i in sorted(ids)}


def definition_hash(definition: Definition) -> str:
    """sha256 (hex) of the canonical JSON: sorted keys, no spaces, UTF-8. Key order does
    not change it; list order does."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _name(codelist_id: str) -> str:
    name = codelists.get(codelist_id).name
    first = name.split()[0]
    return name if any(c.isupper() for c in first[1:]) else name[0].lower() + name[1:]


def _range(spec: Mapping[str, Any], low: str, high: str, unit: str = "") -> str:
    lo, hi = spec.get(low), spec.get(high)
    if lo is not None and hi is not None:
        return f"{lo} to {hi}{unit}"
    return f"{lo}{unit} or more" if lo is not None else f"{hi}{unit} or less"


def _window(spec: Mapping[str, Any], default: str = "") -> str:
    days = spec.get("within_days")
    return f" in the last {days} days" if days else default


def _or(values: list[Any]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _describe_leaf(key: str, spec: Any, node: Definition) -> str:
    if key == "age":
        return f"aged {_range(spec, 'min', 'max')}"
    if key == "core20":
        return "in Core20 (IMD deciles 1-2)" if spec else "not in Core20 (IMD deciles 3-10)"
    if key == "has":
        return f"has {_name(spec)}{_window(node)}"
    if key in ("events", "activity"):
        what = f"{_name(spec['codelist'])} events" if key == "events" else spec["kind"]
        return f"{_range(spec, 'at_least', 'at_most')} {what.replace('_', ' ')}{_window(spec)}"
    if key == "latest":
        return f"latest {_name(spec['codelist'])}{_window(spec)} {_range(spec, 'min', 'max')}"
    labels = {"sex": "sex", "ethnic_group": "ethnic group", "imd_decile": "IMD decile",
              "imd_quintile": "IMD quintile", "practice": "practice", "pcn": "PCN",
              "place": "Place", "lsoa": "LSOA"}  # fmt: skip
    return f"{labels[key]} {_or(spec)}"


def _describe(node: Definition, nested: bool) -> str:
    key = next(k for k in node if k in (*COMBINATORS, *LEAVES))
    if key == "not":
        return f"not ({_describe(node[key], nested=False)})"
    if key in ("all", "any"):
        parts = [_describe(child, nested=True) for child in node[key]]
        text = (" and " if key == "all" else " or ").join(parts)
        return f"({text})" if nested and len(parts) > 1 else text
    return _describe_leaf(key, node[key], node)


def describe(definition: Definition) -> str:
    """A one-line English description (AnalysisInputError if invalid)."""
    _require_valid(definition)
    return _describe(definition, nested=False)


# --- Evaluation -------------------------------------------------------------------------
@dataclass
class _Context:
    frames: Frames
    population: pd.DataFrame
    index_date: date
    cache: dict[tuple[Any, ...], pd.Series | pd.Index] = field(default_factory=dict)

    def start(self, spec: Mapping[str, Any]) -> date | None:
        days = spec.get("within_days")
        return self.index_date - timedelta(days=days) if days else None

    def cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def per_person(self, values: pd.Series | pd.Index) -> pd.Series:
        """``values`` (an Index of person_ids: membership; a Series by person_id: its
        values, missing for others) lined up with the population rows. Hash lookups:
        ``isin`` on Arrow strings walks the values in Python."""
        people = self.population_index
        keys = values if isinstance(values, pd.Index) else values.index
        rows = people.get_indexer(keys)
        found = rows >= 0
        if isinstance(values, pd.Index):
            mask = np.zeros(len(people), dtype=bool)
            mask[rows[found]] = True
            return pd.Series(mask)
        out = np.full(len(people), np.nan)
        out[rows[found]] = values.to_numpy(dtype="float64", na_value=np.nan)[found]
        return pd.Series(out)

    @property
    def population_index(self) -> pd.Index:
        return self.cached(("population",), lambda: pd.Index(self.population["person_id"]))


def _bounds(values: pd.Series, spec: Mapping[str, Any], low: str, high: str) -> np.ndarray:
    mask = values.notna()
    if spec.get(low) is not None:
        mask &= values >= spec[low]
    if spec.get(high) is not None:
        mask &= values <= spec[high]
    return mask.to_numpy(dtype=bool, na_value=False)


def _leaf_mask(key: str, spec: Any, node: Definition, ctx: _Context) -> np.ndarray:
    pop, day = ctx.population, ctx.index_date
    if key in ATTRIBUTE_LEAVES:
        column, source = ATTRIBUTE_LEAVES[key]
        if column not in pop.columns:
            raise AnalysisInputError(
                f"the cohort's {key} filter needs {source} in the patients table, "
                "which the extract lacks"
            )
        values = pop[column]
        if key == "age":
            return _bounds(values, spec, "min", "max")
        if key == "core20":
            return (values == spec).to_numpy(dtype=bool, na_value=False)
        return values.isin(spec).to_numpy(dtype=bool, na_value=False)
    if key == "has":
        start = ctx.start(node)
        people = ctx.cached(("has", spec, start), lambda: codelists.people_with(
            ctx.frames, spec, start=start, end=day))  # fmt: skip
        return ctx.per_person(people).to_numpy(dtype=bool)
    start = ctx.start(spec)
    if key == "events":
        counts = ctx.cached(("events", spec["codelist"], start), lambda: codelists.event_counts(
            ctx.frames, spec["codelist"], start=start, end=day))  # fmt: skip
        return _bounds(ctx.per_person(counts).fillna(0), spec, "at_least", "at_most")
    if key == "activity":
        counts = ctx.cached(("activity", spec["kind"], start), lambda: activity_counts(
            ctx.frames, spec["kind"], start or EARLIEST_DATE, day))  # fmt: skip
        return _bounds(ctx.per_person(counts).fillna(0), spec, "at_least", "at_most")
    values = ctx.cached(("latest", spec["codelist"], start), lambda: codelists.latest_values(
        ctx.frames, spec["codelist"], start=start, end=day))  # fmt: skip
    return _bounds(ctx.per_person(values), spec, "min", "max")


def _mask(node: Definition, ctx: _Context) -> np.ndarray:
    key = next(k for k in node if k in (*COMBINATORS, *LEAVES))
    if key == "not":
        return ~_mask(node[key], ctx)
    if key in ("all", "any"):
        masks = [_mask(child, ctx) for child in node[key]]
        combine = np.logical_and if key == "all" else np.logical_or
        return np.asarray(combine.reduce(masks), dtype=bool)
    return _leaf_mask(key, node[key], node, ctx)


def select(frames: Frames, definition: Definition, *, index_date: date) -> pd.DataFrame:
    """The registered population's rows (``population.POPULATION_COLUMNS``) of the people
    in the cohort on ``index_date``. AnalysisInputError if the definition is invalid or
    the extract lacks a table or column it needs (the message names them)."""
    _require_valid(definition)
    population = registered_population(frames, index_date)
    mask = _mask(definition, _Context(frames, population, index_date))
    return population.loc[mask].reset_index(drop=True)


def evaluate(frames: Frames, definition: Definition, *, index_date: date) -> pd.Index:
    """The person_ids (sorted) of the cohort on ``index_date``; see ``select``."""
    people = select(frames, definition, index_date=index_date)["person_id"]
    return pd.Index(people, name="person_id").sort_values()


# --- The pilot cohorts (reference/phm-analytics.md) -------------------------------------
# "Obese" is coded obesity or a latest BMI of 30 or more, in both cohorts that use it.
_OBESE: Final = {"any": [{"has": "obesity"}, {"latest": {"codelist": "bmi", "min": 30}}]}
PILOT_COHORTS: Final[Mapping[str, dict[str, Any]]] = MappingProxyType({
    # Over 20 (20 and over), osteoarthritis, and hypertension, obesity or depression, in
    # IMD deciles 1-2.
    "osteoarthritis_deprived": {"all": [
        {"age": {"min": 20, "max": None}}, {"has": "osteoarthritis"},
        {"any": [{"has": "hypertension"}, _OBESE, {"has": "depression"}]},
        {"imd_decile": [1, 2]},
    ]},
    # Over 18, severe mental illness with drug or alcohol dependence.
    "smi_substance_dependence": {"all": [
        {"age": {"min": 18, "max": None}}, {"has": "smi"},
        {"any": [{"has": "drug_dependence"}, {"has": "alcohol_dependence"}]},
    ]},
    # Pre-diabetic: an adult (the Diabetes Prevention Programme's 18+) without diabetes
    # (non-diabetic hyperglycaemia excludes it by definition; a well-controlled diabetic
    # HbA1c is not pre-diabetes) with a prediabetes code or a latest HbA1c of 42-47
    # mmol/mol; with depression or anxiety. "With or without deprivation": no deprivation
    # filter; the analysis breaks the cohort down by IMD quintile.
    "prediabetes_mental_health": {"all": [
        {"age": {"min": 18, "max": None}}, {"not": {"has": "diabetes"}},
        {"any": [{"has": "prediabetes"}, {"latest": {"codelist": "hba1c", "min": 42, "max": 47}}]},
        {"any": [{"has": "depression"}, {"has": "anxiety"}]},
    ]},
    # Working age (16-64), ethnic minority (a recorded group other than White), severe
    # mental illness, obese, not diabetic.
    "working_age_minority_smi_obese": {"all": [
        {"age": {"min": 16, "max": 64}}, {"ethnic_group": ["Asian", "Black", "Mixed", "Other"]},
        {"has": "smi"}, _OBESE, {"not": {"has": "diabetes"}},
    ]},
})  # fmt: skip


# --- The analysis -----------------------------------------------------------------------
def cohort_analysis(
    frames: Frames, *, index_date: date, definition: Definition, name: str = "cohort"
) -> AnalysisResult:
    """The cohort's size overall and by age band, sex and IMD quintile (those the extract
    allows), a bar chart by age band, the codelist versions, the definition with its hash
    and description, and the cohort's person_ids (kept inside the environment).
    AnalysisInputError as ``select``."""
    rows = select(frames, definition, index_date=index_date)
    overall = pd.DataFrame({"cohort": [name], "people": [int(rows["person_id"].nunique())]})
    tables = [ResultTable(
        name="cohort_size", title=f"People in the cohort {name}", frame=overall,
        dimensions=("cohort",), statistics={"people": "count"}, persons=overall[["people"]],
    )]  # fmt: skip
    for column, label in (("age_band", "age band"), ("sex", "sex"),
                          ("imd_quintile", "IMD quintile")):  # fmt: skip
        if column in rows.columns:
            tables.append(count_table(rows, name=f"cohort_by_{column}", by=[column],
                                      title=f"People in the cohort {name} by {label}"))  # fmt: skip
    chart = ChartSpec(name="cohort_by_age_band", table="cohort_by_age_band", kind="bar",
                      x="age_band", y="people",
                      title=f"People in the cohort {name} by age band")  # fmt: skip
    return AnalysisResult(
        tables=tables,
        charts=[chart],
        codelists=codelists_used(definition),
        parameters={
            "name": name,
            "index_date": index_date.isoformat(),
            "definition": definition,
            "definition_hash": definition_hash(definition),
            "description": describe(definition),
        },
        cohort=pd.Series(rows["person_id"].sort_values().to_numpy(), name="person_id"),
    )
