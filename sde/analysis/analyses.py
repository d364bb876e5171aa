"""The built-in analyses a project can run (reference/phm-analytics.md): what each is
called, the function that computes it inside the sandbox, and its parameters, checked
here before a job is queued so that a bad parameter is a form error, not a failed job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from sde.exceptions import ValidationError


@dataclass(frozen=True)
class Parameter:
    label: str
    kind: str  # "date", "choice", "int", "bool", "outcome", "text", "cohort" (a cohort
    # definition), "saved_cohort" (the number of one of the project's saved cohorts)
    choices: tuple[str, ...] = ()
    required: bool = True
    help: str = ""
    default: Any = None  # used when the value is missing


@dataclass(frozen=True)
class Builtin:
    name: str
    title: str
    description: str
    entry: str  # "sde.phm.<module>:<function>", run inside the sandbox
    parameters: Mapping[str, Parameter] = field(default_factory=dict)
    saves_cohort: bool = False
    cohort_name: str = ""  # the saved cohort's name, unless a "name" parameter gives one


INDEX_DATE: Final = Parameter(
    "Index date", "date", help="The day the population is taken on (registered and alive)."
)
# Outcomes of the inequality analyses: hospital activity in the year before the index
# date, or the recorded prevalence of a condition ("prevalence:<codelist id>").
ACTIVITY_OUTCOMES: Final = ("emergency_admissions", "ae_attendances", "elective_admissions",
                            "outpatient_appointments")  # fmt: skip
CONDITIONS: Final = (
    "hypertension", "diabetes", "asthma", "copd", "chd", "stroke", "heart_failure",
    "atrial_fibrillation", "ckd", "cancer", "depression", "anxiety", "smi", "dementia",
    "learning_disability", "osteoarthritis", "obesity", "prediabetes",
)  # fmt: skip
OUTCOME: Final = Parameter(
    "Outcome", "outcome",
    choices=ACTIVITY_OUTCOMES + tuple(f"prevalence:{c}" for c in CONDITIONS),
    default="emergency_admissions",
    help="Hospital activity in the 12 months before the index date, or a condition's "
    "recorded prevalence.",
)  # fmt: skip
BREAKDOWN: Final = Parameter(
    "Break down by", "choice",
    choices=("imd_decile", "imd_quintile", "core20", "ethnic_group", "sex", "age_band", "place",
             "pcn_code"),
    default="imd_decile",
)  # fmt: skip
STANDARDISE: Final = Parameter(
    "Age-standardise (European Standard Population 2013)", "bool", required=False
)
BUILTINS: Final[Mapping[str, Builtin]] = {
    b.name: b
    for b in (
        Builtin(
            "population_profile",
            "Population profile",
            "Registered people by age band and sex, deprivation quintile and ethnic group.",
            "sde.phm.profile:population_profile",
            {"index_date": INDEX_DATE},
        ),
        Builtin(
            "rates_by",
            "Rates by group",
            "Crude and directly age-standardised rates (or prevalence) with 95% confidence "
            "intervals, by deprivation, ethnicity, sex, age, Place or PCN.",
            "sde.phm.inequalities:rates_by",
            {"index_date": INDEX_DATE, "outcome": OUTCOME, "by": BREAKDOWN,
             "standardise": STANDARDISE},
        ),
        Builtin(
            "inequality_gradient",
            "Inequality gradient by deprivation",
            "Rates by IMD decile with the slope and relative indices of inequality (SII, "
            "RII) and Core20 against the rest.",
            "sde.phm.inequalities:inequality_gradient",
            {"index_date": INDEX_DATE, "outcome": OUTCOME},
        ),
        Builtin(
            "core20plus5",
            "Core20PLUS5",
            "Prevalence, recorded care and gaps in the five clinical areas (and diabetes) "
            "for Core20, an ethnic minority PLUS group and the rest.",
            "sde.phm.core20plus5:core20plus5",
            {"index_date": INDEX_DATE},
        ),
        Builtin(
            "segmentation",
            "Population segmentation (Bridges to Health, costed)",
            "Everyone in exactly one segment of the Bridges to Health hierarchy, with "
            "shares and hospital cost per segment, by Place, PCN, deprivation, ethnicity "
            "and age band.",
            "sde.phm.segmentation:segmentation_analysis",
            {"index_date": INDEX_DATE},
        ),
        Builtin(
            "risk_stratification",
            "Risk stratification (emergency admission)",
            "A logistic model of emergency admission in the next 12 months fitted inside "
            "the environment: coefficients, discrimination (AUC), calibration by decile, "
            "and tier sizes and characteristics. Never individual scores: the very high tier "
            "is saved as a cohort inside the environment.",
            "sde.phm.risk:risk_stratification",
            {"index_date": INDEX_DATE,
             "design": Parameter("Design", "choice", choices=("year_before", "prospective"),
                                 default="year_before",
                                 help="Prospective: outcome in the 12 months after the index "
                                 "date. Year before: outcome in the 12 months before it.")},
            saves_cohort=True,
            cohort_name="Very high risk tier",
        ),
        Builtin(
            "frailty",
            "Electronic frailty index",
            "eFI categories (fit, mild, moderate, severe) of people aged 65 and over by age "
            "band, sex and deprivation.",
            "sde.phm.frailty:frailty_analysis",
            {"index_date": INDEX_DATE},
        ),
        Builtin(
            "difference_in_differences",
            "Evaluation: difference-in-differences",
            "The change in an outcome for a saved cohort that received an intervention from "
            "a date, against a comparison group matched on age, sex, deprivation and "
            "number of conditions, with a 95% confidence interval.",
            "sde.phm.evaluation:difference_in_differences",
            {"cohort": Parameter("Intervention cohort", "saved_cohort",
                                 help="A cohort saved by a case-finding analysis on the same "
                                 "extract (real or dummy)."),
             "start": Parameter("Intervention start", "date"),
             "outcome": Parameter("Outcome", "choice",
                                  choices=("emergency_admissions", "ae_attendances", "bmi"),
                                  default="emergency_admissions"),
             "window_days": Parameter("Days before and after", "int", default=365)},
        ),
        Builtin(
            "cohort",
            "Case finding: a cohort",
            "People matching a cohort definition (conditions, measurements, activity, "
            "demographics, geography), counted by age band, sex and deprivation. The cohort "
            "is saved inside the environment for direct care; only the counts are outputs.",
            "sde.phm.cohorts:cohort_analysis",
            {"index_date": INDEX_DATE, "definition": Parameter("Cohort definition", "cohort"),
             "name": Parameter("Name of the cohort", "text")},
            saves_cohort=True,
        ),
    )
}  # fmt: skip


def get(name: str) -> Builtin:
    try:
        return BUILTINS[name]
    except KeyError:
        raise ValidationError("unknown analysis", {"analysis": ["Choose an analysis."]}) from None


def check_parameters(builtin: Builtin, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as the analysis takes them (JSON-safe), or ValidationError naming
    every bad or unknown one."""
    errors: dict[str, list[str]] = {}
    for name in set(raw) - set(builtin.parameters):
        errors[name] = ["This analysis has no such parameter."]
    checked: dict[str, Any] = {}
    for name, parameter in builtin.parameters.items():
        value = raw.get(name)
        if value in (None, "") and parameter.default is not None:
            value = parameter.default
        if value in (None, ""):
            if parameter.required:
                errors[name] = [f"Give the {parameter.label.lower()}."]
            continue
        try:
            checked[name] = _convert(parameter, value)
        except (TypeError, ValueError) as error:
            errors[name] = [str(error)]
    if errors:
        raise ValidationError("the parameters are not valid", errors)
    return checked


def _convert(parameter: Parameter, value: Any) -> Any:
    if parameter.kind == "date":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError("Give a date as YYYY-MM-DD.") from None
    if parameter.kind in ("int", "saved_cohort"):
        if isinstance(value, bool) or not str(value).lstrip("-").isdigit():
            raise ValueError("Give a whole number." if parameter.kind == "int" else
                             "Choose one of the project's cohorts.")  # fmt: skip
        return int(value)
    if parameter.kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "on", "1", "yes"):
            return True
        if str(value).lower() in ("false", "off", "0", "no"):
            return False
        raise ValueError("Give yes or no.")
    if parameter.kind == "outcome":
        if value not in parameter.choices:
            raise ValueError("Choose an outcome from the list.")
        kind, _, codelist = str(value).partition(":")
        return {"prevalence": codelist} if kind == "prevalence" else value
    if parameter.kind == "text":
        text = str(value).strip()
        if not text or len(text) > 120:
            raise ValueError("Give a name of at most 120 characters.")
        return text
    if parameter.kind == "cohort":
        from sde.phm import cohorts

        problems = cohorts.validate(value)
        if problems:
            raise ValueError(" ".join(problems[:10]))
        return value
    if parameter.kind == "choice":
        if value not in parameter.choices:
            raise ValueError(f"Choose one of: {', '.join(parameter.choices)}.")
        return value
    raise TypeError(f"unknown parameter kind {parameter.kind}")
