"""Template filters for cohorts as the direct care pages and the workspace show them: the
definition in words and as compact JSON, and whether clinicians may ask to re-identify
the cohort (the answer is ``sde.policy.cohort_refusal``'s; nothing is decided here)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django import template

from sde import policy
from sde.phm import cohorts
from sde.phm.frames import AnalysisInputError

register = template.Library()


@register.filter
def compact_json(value: Any) -> str:
    """One line of JSON (escaped by the template like any other text)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


@register.filter
def definition_words(definition: Any) -> str:
    """A saved cohort's definition (the cohort analysis's parameters) in one English
    sentence; empty if it cannot be read as one."""
    inner = definition.get("definition") if isinstance(definition, Mapping) else None
    if not inner:
        return ""
    try:
        return cohorts.describe(inner)
    except (AnalysisInputError, KeyError, TypeError, ValueError, StopIteration):
        return ""


@register.filter
def direct_care_status(cohort: Any) -> str:
    """What the workspace says about re-identifying this cohort for direct care."""
    refusal = policy.cohort_refusal(cohort)
    if refusal is None:
        return "Clinicians can request re-identification"
    purpose = (cohort.project.scope or {}).get("purpose")
    if purpose not in policy.REIDENTIFIABLE_PURPOSES:
        return "Not for re-identification (research project)"
    return f"Not for re-identification: {refusal}"
