"""The model rules M1-M4 (reference/disclosure-control.md) and the evidence they read.

A regression's coefficients are safe only if the model rests on enough people: enough
residual degrees of freedom (M1, ACRO's MinimumDoFCheck), few parameters for its people
(M2, DataSHIELD's ``nfilter.glm``), no small group behind a binary outcome or a dummy
(M3: a dummy's coefficient is a comparison of that group's mean with the rest), and no
per-observation by-products, which are unit records (M4).

The evidence is written inside the environment by the helper library
(``model_evidence`` below) and checked here; it comes either as a whole sidecar
``{"kind": "model", "model": {...}}`` or, for a coefficient table, as the table sidecar's
``model`` mapping (``sde.phm.evidence.ResultTable.model``). The ``model`` mapping::

    {
      "family": "ols" | "logit" | "probit" | "glm" | "cox" | ...,
      "observations": <distinct persons in the rows the model was fitted on>,
      "parameters": <coefficients estimated, intercept included>,
      "residual_dof": <rows fitted on - rank of the design (statsmodels' df_resid)>,
      "binary_groups": {"<variable>": {"<level>": <distinct persons>, ...}, ...},
      "per_observation": ["residuals", "fitted", "leverage", "cooks_distance", ...],
      "events": <distinct persons with the event> (Cox models)
    }

``binary_groups`` holds the binary outcome (if any) and every 0/1 regressor, with the
persons in each category. Every field may be absent (or null): what a rule needs but is
not given makes it ``review`` ("unverifiable"), except M3 outside binary-outcome families
(there may be no binary variable at all) and M4 (a writer that lists no by-products
published none). Evidence of the wrong type, or whose numbers cannot all be true (a
category with more people than the model; fewer rows than people), raises
``EvidenceError``: evidence that describes no possible model is not evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

import numpy as np
import pandas as pd

from outputs.sdc.evidence import EvidenceError
from outputs.sdc.policy import Policy
from outputs.sdc.results import Finding, Status

# Families whose outcome is binary, so binary_groups must describe at least the outcome.
BINARY_FAMILIES: Final = frozenset({"logit", "probit", "logistic", "binomial"})


@dataclass(frozen=True)
class ModelEvidence:
    """The validated ``model`` mapping; None where the evidence does not say."""

    family: str | None
    observations: int | None
    parameters: int | None
    residual_dof: int | None
    binary_groups: Mapping[str, Mapping[str, int]] | None
    per_observation: tuple[str, ...]
    events: int | None


def read_model(sidecar: Mapping[str, Any]) -> ModelEvidence:
    """The ``model`` mapping of ``sidecar``, validated; raises ``EvidenceError``."""
    if not isinstance(sidecar, Mapping):
        raise EvidenceError("the model evidence is not a JSON object")
    if sidecar.get("kind", "model") != "model":
        raise EvidenceError(f"evidence of kind {sidecar.get('kind')!r} is not a model's")
    model = sidecar.get("model")
    if not isinstance(model, Mapping):
        raise EvidenceError("the model evidence has no 'model' object")
    family = model.get("family")
    if family is not None and not (isinstance(family, str) and family):
        raise EvidenceError(f"the model's family must be a name, not {family!r}")
    evidence = ModelEvidence(
        family=family.lower() if family else None,
        observations=_whole(model.get("observations"), "observations", minimum=0),
        parameters=_whole(model.get("parameters"), "parameters", minimum=0),
        # Negative when a model has more parameters than rows (ACRO records -1 when unknown).
        residual_dof=_whole(model.get("residual_dof"), "residual_dof", minimum=None),
        binary_groups=_groups(model.get("binary_groups")),
        per_observation=_names(model.get("per_observation")),
        events=_whole(model.get("events"), "events", minimum=0),
    )
    _consistent(evidence)
    return evidence


def _whole(value: Any, name: str, *, minimum: int | None) -> int | None:
    """A count: an int, or a float with no fraction (JSON writers emit 10.0)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvidenceError(f"the model's {name} must be a whole number, not {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise EvidenceError(f"the model's {name} must be a whole number, not {value!r}")
    if minimum is not None and value < minimum:
        raise EvidenceError(f"the model's {name} cannot be {value!r}")
    return int(value)


def _groups(value: Any) -> dict[str, dict[str, int]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise EvidenceError("the model's binary_groups must map variables to categories")
    groups: dict[str, dict[str, int]] = {}
    for variable, levels in value.items():
        if not isinstance(levels, Mapping):
            raise EvidenceError(
                f"the model's binary_groups[{variable!r}] must map categories to persons"
            )
        counts = {}
        for level, persons in levels.items():
            count = _whole(persons, f"persons in {variable} = {level}", minimum=0)
            if count is None:
                raise EvidenceError(
                    f"the model's binary_groups gives no persons for {variable} = {level}"
                )
            counts[str(level)] = count
        groups[str(variable)] = counts
    return groups


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise EvidenceError("the model's per_observation must be a list of names")
    if not all(isinstance(name, str) and name for name in value):
        raise EvidenceError("the model's per_observation must be a list of names")
    return tuple(value)


def _consistent(model: ModelEvidence) -> None:
    """Numbers that cannot all be true: a person is one row at least, so rows (dof plus
    parameters, at least) cannot be fewer than people, and no category or event count
    can exceed the people in the model."""
    n, p, dof = model.observations, model.parameters, model.residual_dof
    if n is not None and p is not None and dof is not None and dof + p < n:
        raise EvidenceError(
            f"the model's evidence does not add up: {dof} residual degrees of freedom and "
            f"{p} parameters mean at most {dof + p} rows, fewer than its {n} people"
        )
    if n is None:
        return
    for variable, levels in (model.binary_groups or {}).items():
        for level, persons in levels.items():
            if persons > n:
                raise EvidenceError(
                    f"the model's evidence does not add up: {persons} people have "
                    f"{variable} = {level} but the model has only {n}"
                )
    if model.events is not None and model.events > n:
        raise EvidenceError(
            f"the model's evidence does not add up: {model.events} people have the event "
            f"but the model has only {n}"
        )


# --- Rules ------------------------------------------------------------------------------
def residual_dof(model: ModelEvidence, policy: Policy) -> list[Finding]:
    """M1: fewer than ``policy.dof`` residual degrees of freedom fail. Exactly ``dof``
    passes, as in ACRO 1.0.2's MinimumDoFCheck (``dof < threshold`` fails)."""
    if model.residual_dof is None:
        return [_unverifiable("M1", "the model's residual degrees of freedom")]
    if model.residual_dof >= policy.dof:
        return []
    return [Finding(
        rule="M1", status=Status.FAIL,
        message=f"the model has {model.residual_dof} residual degrees of freedom; at least "
                f"{policy.dof} are needed, or its estimates come close to describing "
                "individuals",
        evidence={"residual_dof": model.residual_dof, "limit": policy.dof},
    )]  # fmt: skip


def saturation(model: ModelEvidence, policy: Policy) -> list[Finding]:
    """M2: more than ``policy.saturation`` parameters per person fail (DataSHIELD's
    ``nfilter.glm``: ``parameters > nfilter.glm * N``). The limit is computed in exact
    decimal arithmetic, so that 0.57 * 100 is 57 and not 56.99999999999999."""
    if model.parameters is None or model.observations is None:
        return [_unverifiable("M2", "how many parameters the model has and how many people "
                                    "it was fitted on")]  # fmt: skip
    limit = Fraction(str(policy.saturation)) * model.observations
    if model.parameters <= limit:
        return []
    return [Finding(
        rule="M2", status=Status.FAIL,
        message=f"the model estimates {model.parameters} parameters from "
                f"{model.observations} people; at most {policy.saturation} × "
                f"{model.observations} = {float(limit):g} are allowed, or the fit comes close "
                "to reproducing the people it was fitted on",
        evidence={"parameters": model.parameters, "observations": model.observations,
                  "saturation": policy.saturation, "limit": float(limit)},
    )]  # fmt: skip


def small_groups(model: ModelEvidence, policy: Policy) -> list[Finding]:
    """M3: every category of a binary outcome or dummy needs ``policy.threshold`` persons;
    a category of nobody fails too (everyone in the model then has the other value).
    Without the evidence, only a binary-outcome family is ``review``: another model may
    have no binary variable at all."""
    if not model.binary_groups:
        if model.family in BINARY_FAMILIES:
            return [_unverifiable("M3", "how many people are in each category of the "
                                        "binary outcome and of each dummy")]  # fmt: skip
        return []
    out = []
    for variable, levels in model.binary_groups.items():
        for level, persons in levels.items():
            if persons >= policy.threshold:
                continue
            who = (
                f"only {persons} people in the model have" if persons else "nobody in the model has"
            )
            out.append(Finding(
                rule="M3", status=Status.FAIL, cell={"variable": variable, "level": level},
                message=f"{who} {variable} = {level}; each category of a "
                        f"binary outcome or dummy needs at least {policy.threshold}",
                evidence={"persons": persons, "threshold": policy.threshold},
            ))  # fmt: skip
    return out


def per_observation(model: ModelEvidence, policy: Policy) -> list[Finding]:
    """M4: residuals, fitted values, leverage and the like are one value per row: unit
    records, whatever the thresholds."""
    return [
        Finding(
            rule="M4",
            status=Status.FAIL,
            cell={"by_product": name},
            message=f"the output includes the model's {name}, one value per observation, "
            "which are individual records; publish summaries of them instead",
            evidence={"by_product": name},
        )
        for name in model.per_observation
    ]


MODEL_RULES: Final = (residual_dof, saturation, small_groups, per_observation)


def check_model(sidecar: Mapping[str, Any], policy: Policy) -> list[Finding]:
    """M1-M4 on a model sidecar (``{"kind": "model", "model": {...}}``) or on a table's
    ``{"model": table.model}``. Raises ``EvidenceError`` if the evidence is malformed."""
    model = read_model(sidecar)
    return [finding for rule in MODEL_RULES for finding in rule(model, policy)]


def _unverifiable(rule: str, what: str) -> Finding:
    return Finding(
        rule=rule, status=Status.REVIEW,
        message=f"the evidence does not give {what}, so this cannot be checked "
                "(unverifiable); the checkers must judge it themselves",
    )  # fmt: skip


# --- Writing the evidence ---------------------------------------------------------------
def model_evidence(
    x: pd.DataFrame,
    y: pd.Series | None,
    persons: pd.Series,
    *,
    family: str,
    intercept: bool = False,
    per_observation: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``model`` mapping (module docstring) for a model of ``y`` on the design ``x``
    (numeric, dummies as 0/1 columns), one row per observation, ``persons`` the person
    id of each row; wrap it as ``{"kind": "model", "model": ...}`` for a sidecar.

    The model is taken to see the complete rows (no missing value in ``x`` or ``y``),
    as fitting code drops the rest. ``intercept``: the model adds a constant that ``x``
    lacks. ``residual_dof`` is rows - rank of the design, statsmodels' ``df_resid``, which
    is what ACRO checks; a collinear column adds a parameter but takes no freedom.
    Binary variables: ``y`` with two distinct values, and each column of ``x`` whose
    values are exactly 0 and 1 (a constant column, such as an intercept, is not one).
    For ``family="cox"``, ``y`` is the event indicator and ``events`` counts the people
    with an event. Raises ``ValueError`` on misaligned or non-numeric input."""
    if not x.index.equals(persons.index) or (y is not None and not y.index.equals(x.index)):
        raise ValueError("the design, outcome and person ids must share one index")
    if persons.isna().any():
        raise ValueError("every row needs a person id")
    outcome = "outcome" if y is None or y.name is None else str(y.name)
    if y is not None and outcome in map(str, x.columns):
        raise ValueError(f"the outcome {outcome!r} is also a column of the design")
    complete = x.notna().all(axis=1)
    if y is not None:
        complete &= y.notna()
        y = y[complete]
    x, persons = x[complete], persons[complete]
    try:
        design = x.to_numpy(dtype="float64")
    except (TypeError, ValueError) as error:
        raise ValueError(f"the design must be numeric: {error}") from error
    if intercept:
        design = np.column_stack([np.ones(len(design)), design])
    rank = int(np.linalg.matrix_rank(design)) if design.size else 0
    codes, people = pd.factorize(persons)
    groups: dict[str, dict[str, int]] = {}
    if y is not None and y.nunique() == 2:
        groups[outcome] = _persons_per_level(y, codes, len(people))
    for column in x.columns:
        if _is_dummy(x[column]):
            groups[str(column)] = _persons_per_level(x[column], codes, len(people))
    evidence: dict[str, Any] = {
        "family": family,
        "observations": len(people),
        "parameters": x.shape[1] + int(intercept),
        "residual_dof": len(x) - rank,
        "binary_groups": groups,
        "per_observation": list(per_observation),
    }
    if family.lower() == "cox" and y is not None:
        evidence["events"] = _distinct(codes, y.to_numpy(dtype="float64") != 0, len(people))
    return evidence


def _is_dummy(values: pd.Series) -> bool:
    if not (pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values)):
        return False
    levels = pd.unique(values.astype("float64"))
    return len(levels) == 2 and set(levels.tolist()) == {0.0, 1.0}


def _persons_per_level(values: pd.Series, codes: np.ndarray, people: int) -> dict[str, int]:
    """Distinct persons per value: a person with rows in both categories is in both."""
    levels, level_codes = np.unique(values.to_numpy(), return_inverse=True)
    return {
        _level(level): _distinct(codes, level_codes == i, people) for i, level in enumerate(levels)
    }


def _distinct(codes: np.ndarray, mask: np.ndarray, people: int) -> int:
    seen = np.zeros(people, dtype=bool)
    seen[codes[mask]] = True
    return int(seen.sum())


def _level(value: Any) -> str:
    """A category as a JSON key: 0/1 (and True/False, 1.0) as "0"/"1"."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)
