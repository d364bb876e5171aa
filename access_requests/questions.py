"""The application's question set (``reference/application-form.md``), versioned.

Answers are JSON, one object per section. Two levels of checking:

- ``check_shape`` runs on every save, drafts included: only known sections and
  questions, values of the right type and size, datasets, fields and organisations that
  the catalogue and the register actually offer. A save that fails it is refused whole
  (a tampered post changes nothing).
- ``section_errors`` says what is still missing or not acceptable in each section; a
  draft may have any, a submission none. Prohibited purposes (marketing, insurance,
  processing outside the UK) are errors here, so they can never be submitted.

The opt-out treatment is derived from the legal basis answers (``scope_from``), never
asked for. Pure apart from the catalogue and organisation lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sde.data.models import Dataset, DatasetField, Sensitivity
from sde.data.optouts import ConfidentialityBasis, Purpose
from sde.exceptions import ValidationError
from sde.identity.models import Organisation, User

VERSION: Final = "2026.1"
MAX_TEXT: Final = 5000
MAX_SHORT: Final = 200
MAX_ITEMS: Final = 50


@dataclass(frozen=True)
class Section:
    key: str
    letter: str
    title: str


SECTIONS: Final = (
    Section("meta", "A", "About the request"),
    Section("people", "B", "Safe people"),
    Section("project", "C", "Safe project"),
    Section("legal", "D", "Legal basis"),
    Section("data", "E", "Safe data"),
    Section("settings", "F", "Safe settings"),
    Section("outputs", "G", "Safe outputs"),
    Section("retention", "H", "Retention and closure"),
    Section("declarations", "I", "Declarations"),
)
SECTION_KEYS: Final = tuple(s.key for s in SECTIONS)

ORGANISATION_ROLES: Final = {
    "controller": "Data controller",
    "joint_controller": "Joint controller",
    "processor": "Processor",
}
MEMBER_ROLES: Final = {
    "principal_investigator": "Principal investigator",
    "analyst": "Analyst",
    "clinical_lead": "Clinical lead",
    "student": "Student",
    "supervisor": "Supervisor",
}
PURPOSES: Final = {
    Purpose.RESEARCH.value: "Research",
    Purpose.PLANNING.value: "Planning (service planning, commissioning, evaluation, PHM)",
    Purpose.DIRECT_CARE.value: "Direct care (case finding for clinicians)",
}
COMMERCIAL_PURPOSES: Final = {
    "product_development": "Developing a product or service",
    "evaluation_for_nhs": "Evaluating a product for the NHS",
    "marketing": "Marketing",
    "insurance": "Insurance",
    "other": "Other",
}
PROHIBITED_COMMERCIAL: Final = frozenset({"marketing", "insurance"})
ARTICLE6: Final = {c: f"Article 6(1)({c})" for c in "abcdef"}
ARTICLE9: Final = {c: f"Article 9(2)({c})" for c in "abcdefghij"}
NEEDS_SCHEDULE1: Final = frozenset("ghij")
# The basis for setting aside the common law duty of confidentiality, as asked.
CONFIDENTIALITY: Final = {
    "explicit_consent": "Explicit consent",
    "s251": "Section 251 support (CAG)",
    "copi_reg3": "COPI Regulation 3",
    "legal_requirement": "Legal requirement",
    "overriding_public_interest": "Overriding public interest (Caldicott Guardian sign-off)",
    "not_confidential": "Not confidential patient information (anonymised or aggregate)",
}
ETHICS: Final = {
    "not_required": "Not required",
    "favourable": "Favourable REC opinion",
    "pending": "Pending",
}
LEVELS: Final = {
    "aggregate": "Aggregate only",
    "record_level": "Record-level, pseudonymised",
}
PROCESSING: Final = {
    "uk": "Only inside this environment, in the UK",
    "outside_uk": "Outside the UK",
}
OUTPUT_TYPES: Final = {"tables": "Tables", "figures": "Figures", "models": "Models"}
DISCLOSURE_RULES: Final = {
    "default": "The environment's default rules",
    "stricter": "Stricter rules (described below)",
}
AGREEMENT_VERSION: Final = "2026.1"
FLAGGED_SENSITIVITIES: Final = frozenset(
    {Sensitivity.IDENTIFIER, Sensitivity.QUASI_IDENTIFIER, Sensitivity.SENSITIVE}
)

# --- Shape: (type, choices or None) per question ---------------------------------------
TEXT, SHORT, DATE, BOOL, INT, CHOICE, CHOICES, ORGS, MEMBERS, DATASETS, COHORT, MAP = (
    "text", "short", "date", "bool", "int", "choice", "choices", "orgs", "members",
    "datasets", "cohort", "map",
)  # fmt: skip
QUESTIONS: Final[dict[str, dict[str, tuple[str, Mapping[str, str] | None]]]] = {
    "meta": {
        "title": (SHORT, None),
        "dsa_reference": (SHORT, None),
        "cag_reference": (SHORT, None),
        "rec_reference": (SHORT, None),
        "iras_id": (SHORT, None),
        "start_date": (DATE, None),
        "end_date": (DATE, None),
    },
    "people": {"organisations": (ORGS, None), "members": (MEMBERS, None)},
    "project": {
        "lay_summary": (TEXT, None),
        "purpose": (CHOICE, PURPOSES),
        "aims": (TEXT, None),
        "dataset_objectives": (MAP, None),
        "public_benefit": (TEXT, None),
        "commercial_involvement": (BOOL, None),
        "commercial_details": (TEXT, None),
        "commercial_purposes": (CHOICES, COMMERCIAL_PURPOSES),
        "funder": (SHORT, None),
        "sponsor": (SHORT, None),
        "inequality_impact": (TEXT, None),
        "public_involvement": (TEXT, None),
        "dpia_reference": (SHORT, None),
    },
    "legal": {
        "article6": (CHOICE, ARTICLE6),
        "article9": (CHOICE, ARTICLE9),
        "schedule1_condition": (SHORT, None),
        "confidentiality_basis": (CHOICE, CONFIDENTIALITY),
        "s251_regulation": (CHOICE, {"5": "Regulation 5", "2": "Regulation 2"}),
        "s251_expiry": (DATE, None),
        "cag_ndop_exemption": (BOOL, None),
        "ethics": (CHOICE, ETHICS),
        "ethics_reason": (TEXT, None),
        "rec_opinion_date": (DATE, None),
        "rec_expiry": (DATE, None),
    },
    "data": {
        "datasets": (DATASETS, None),
        "date_from": (DATE, None),
        "date_to": (DATE, None),
        "cohort": (COHORT, None),
        "level": (CHOICE, LEVELS),
    },
    "settings": {"processing_location": (CHOICE, PROCESSING), "tools": (TEXT, None)},
    "outputs": {
        "output_types": (CHOICES, OUTPUT_TYPES),
        "publication_plan": (TEXT, None),
        "disclosure_rules": (CHOICE, DISCLOSURE_RULES),
        "stricter_rules": (TEXT, None),
    },
    "retention": {"retain_until": (DATE, None)},
    "declarations": {"agreement_version": (SHORT, None), "accepted": (BOOL, None)},
}
COHORT_FILTERS: Final = ("age_min", "age_max", "places", "imd_deciles")
Errors = dict[str, list[str]]


def empty_answers() -> dict[str, dict[str, Any]]:
    return {key: {} for key in SECTION_KEYS}


# --- Shape ------------------------------------------------------------------------------
def check_shape(answers: Any) -> dict[str, dict[str, Any]]:
    """The answers, normalised (missing sections empty), or ValidationError naming every
    question that is not part of this question set or not of its type. Errors are keyed
    ``section.question``."""
    errors: Errors = {}
    if not isinstance(answers, Mapping):
        raise ValidationError("the answers are not valid", {"answers": ["Not an application."]})
    for key in answers:
        if key not in QUESTIONS:
            errors[str(key)[:50]] = ["Not a section of this application."]
    normalised = empty_answers()
    for section, questions in QUESTIONS.items():
        given = answers.get(section) or {}
        if not isinstance(given, Mapping):
            errors[section] = ["Not a section's answers."]
            continue
        for name, value in given.items():
            where = f"{section}.{str(name)[:50]}"
            if name not in questions:
                errors[where] = ["Not a question of this application."]
                continue
            if value in (None, "", [], {}):
                continue
            kind, choices = questions[name]
            problem = NUL_PROBLEM if _holds_nul(value) else _CHECKS[kind](value, choices)
            if problem:
                errors[where] = [problem]
            else:
                normalised[section][name] = value
    if errors:
        raise ValidationError("the answers are not valid", errors)
    return normalised


NUL_PROBLEM: Final = "Remove the NUL characters: text cannot hold them."


def _holds_nul(value: Any) -> bool:
    """A NUL anywhere in an answer (keys too): a form field refuses one, but JSON can carry
    it, and PostgreSQL can store it in neither text nor jsonb."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _text(limit: int) -> Callable[[Any, Any], str | None]:
    def check(value: Any, _: Any) -> str | None:
        if not isinstance(value, str):
            return "Give text."
        return f"Keep it under {limit:,} characters." if len(value) > limit else None

    return check


def _date(value: Any, _: Any) -> str | None:
    """Only YYYY-MM-DD (dates are compared as text, and fromisoformat takes other forms)."""
    try:
        valid = date.fromisoformat(value).isoformat() == value
    except (TypeError, ValueError):
        valid = False
    return None if valid else "Give a date as YYYY-MM-DD."


def _bool(value: Any, _: Any) -> str | None:
    return None if isinstance(value, bool) else "Answer yes or no."


def _int(value: Any, _: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 130
    return None if ok else "Give a whole number from 0 to 130."


def _choice(value: Any, choices: Mapping[str, str]) -> str | None:
    return None if isinstance(value, str) and value in choices else "Not one of the choices."


def _choices(value: Any, choices: Mapping[str, str]) -> str | None:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        return "Give a list of choices."
    ok = all(isinstance(v, str) and v in choices for v in value)
    return None if ok else "Not one of the choices."


def _map(value: Any, _: Any) -> str | None:
    if not isinstance(value, Mapping) or len(value) > MAX_ITEMS:
        return "Give one answer per dataset."
    if any(not isinstance(v, str) or len(v) > MAX_TEXT for v in value.values()):
        return "Give text."
    return None if set(value) <= offered_datasets() else "A dataset that is not offered."


def _organisations(value: Any, _: Any) -> str | None:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_ITEMS:
        return "Give a list of organisations."
    known = {"organisation_id", "role", "ico_number", "dspt_status", "dspt_expiry", "country"}
    ids = []
    for item in value:
        if not isinstance(item, Mapping) or not set(item) <= known:
            return "Each organisation needs only the questions asked."
        if not isinstance(item.get("organisation_id"), int):
            return "Pick an organisation from the list."
        ids.append(item["organisation_id"])
        if not isinstance(item.get("role"), str) or item["role"] not in ORGANISATION_ROLES:
            return "Give each organisation's role."
        if item.get("dspt_expiry") and _date(item["dspt_expiry"], None):
            return "Give the DSPT date as YYYY-MM-DD."
        for text in ("ico_number", "dspt_status", "country"):
            if not isinstance(item.get(text, ""), str) or len(item.get(text, "")) > MAX_SHORT:
                return "Give text."
    if len(set(ids)) != len(ids):
        return "An organisation is listed twice."
    if Organisation.objects.filter(pk__in=ids).count() != len(ids):
        return "An organisation that is not offered."
    return None


def _members(value: Any, _: Any) -> str | None:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_ITEMS:
        return "Give a list of people."
    names = []
    for item in value:
        if not isinstance(item, Mapping) or not set(item) <= {"username", "role", "accesses_data"}:
            return "Each person needs only the questions asked."
        if not isinstance(item.get("username"), str) or not 0 < len(item["username"]) <= 150:
            return "Give each person's username."
        names.append(item["username"])
        if not isinstance(item.get("role"), str) or item["role"] not in MEMBER_ROLES:
            return "Give each person's role."
        if not isinstance(item.get("accesses_data", True), bool):
            return "Say whether each person will access data."
    if len(set(names)) != len(names):
        return "A person is listed twice."
    return None


def _datasets(value: Any, _: Any) -> str | None:
    if not isinstance(value, Mapping) or len(value) > MAX_ITEMS:
        return "Pick datasets and fields."
    offered = offered_fields()
    for slug, fields in value.items():
        if slug not in offered:
            return f"{str(slug)[:50]} is not a dataset offered."
        if not isinstance(fields, Mapping) or not fields:
            return "Pick at least one field of each dataset, each with a justification."
        for name, justification in fields.items():
            if name not in offered[slug]:
                return f"{str(name)[:50]} is not a field of {slug}."
            if not isinstance(justification, str) or len(justification) > MAX_TEXT:
                return "Give a justification as text."
    return None


def _cohort(value: Any, _: Any) -> str | None:
    if not isinstance(value, Mapping) or not set(value) <= set(COHORT_FILTERS):
        return "Only the cohort filters offered."
    for name in ("age_min", "age_max"):
        if value.get(name) is not None and _int(value[name], None):
            return _int(value[name], None)
    places = value.get("places") or []
    if (
        not isinstance(places, list)
        or len(places) > MAX_ITEMS
        or not all(isinstance(p, str) and 0 < len(p) <= MAX_SHORT for p in places)
    ):
        return "Give the places as a list of names."
    deciles = value.get("imd_deciles") or []
    if not isinstance(deciles, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 10 for d in deciles
    ):
        return "Give IMD deciles as whole numbers from 1 to 10."
    return None


_CHECKS: Final[dict[str, Callable[[Any, Any], str | None]]] = {
    TEXT: _text(MAX_TEXT),
    SHORT: _text(MAX_SHORT),
    DATE: _date,
    BOOL: _bool,
    INT: _int,
    CHOICE: _choice,
    CHOICES: _choices,
    MAP: _map,
    ORGS: _organisations,
    MEMBERS: _members,
    DATASETS: _datasets,
    COHORT: _cohort,
}


def offered_fields() -> dict[str, set[str]]:
    """What the catalogue offers: dataset slug -> field names."""
    offered: dict[str, set[str]] = {slug: set() for slug in offered_datasets()}
    for slug, name in DatasetField.objects.values_list("dataset__slug", "name"):
        offered[slug].add(name)
    return offered


def offered_datasets() -> set[str]:
    return set(Dataset.objects.values_list("slug", flat=True))


# --- Completeness and acceptability, per section ----------------------------------------
def _require(answers: Mapping[str, Any], errors: Errors, section: str, *names: str) -> None:
    for name in names:
        if answers.get(name) in (None, "", [], {}):
            errors.setdefault(f"{section}.{name}", []).append("Answer this question.")


def section_errors(answers: Mapping[str, Mapping[str, Any]]) -> dict[str, Errors]:
    """Per section, what stops the application from being submitted (empty: complete)."""
    result: dict[str, Errors] = {}
    for section in SECTION_KEYS:
        errors: Errors = {}
        _SECTION_RULES[section](answers.get(section) or {}, errors, answers)
        result[section] = errors
    return result


def _meta(a: Mapping[str, Any], errors: Errors, _: Any) -> None:
    _require(a, errors, "meta", "title", "start_date", "end_date")
    if a.get("start_date") and a.get("end_date") and a["end_date"] < a["start_date"]:
        errors["meta.end_date"] = ["The end date is before the start date."]


def _people(a: Mapping[str, Any], errors: Errors, _: Any) -> None:
    _require(a, errors, "people", "organisations", "members")
    members = a.get("members") or []
    if members:
        known = set(
            User.objects.filter(username__in=[m["username"] for m in members], is_active=True)
            .values_list("username", flat=True)
        )  # fmt: skip
        unknown = [m["username"] for m in members if m["username"] not in known]
        if unknown:
            errors["people.members"] = [f"No account for {', '.join(unknown[:5])}."]
        if not any(m["role"] == "principal_investigator" for m in members):
            errors.setdefault("people.members", []).append("Name a principal investigator.")
    for org in a.get("organisations") or []:
        if not org.get("dspt_status") or not org.get("dspt_expiry"):
            errors["people.organisations"] = [
                "Give each organisation's DSPT status and the date it runs to."
            ]
            break


def _project(a: Mapping[str, Any], errors: Errors, answers: Mapping[str, Any]) -> None:
    _require(a, errors, "project", "lay_summary", "purpose", "aims", "public_benefit")
    if "commercial_involvement" not in a:
        errors["project.commercial_involvement"] = ["Say whether there is commercial involvement."]
    if a.get("commercial_involvement"):
        _require(a, errors, "project", "commercial_details", "commercial_purposes")
    prohibited = PROHIBITED_COMMERCIAL & set(a.get("commercial_purposes") or [])
    if prohibited:
        errors["project.commercial_purposes"] = [
            f"Data cannot be used for {' or '.join(sorted(prohibited))}: "
            "these purposes are refused outright."
        ]
    requested = set((answers.get("data") or {}).get("datasets") or {})
    objectives = a.get("dataset_objectives") or {}
    missing = sorted(s for s in requested if not str(objectives.get(s, "")).strip())
    if missing:
        errors["project.dataset_objectives"] = [
            f"Say which objective each dataset serves: {', '.join(missing)}."
        ]


def _legal(a: Mapping[str, Any], errors: Errors, answers: Mapping[str, Any]) -> None:
    _require(a, errors, "legal", "article6", "article9", "confidentiality_basis", "ethics")
    if a.get("article9") in NEEDS_SCHEDULE1:
        _require(a, errors, "legal", "schedule1_condition")
    if a.get("confidentiality_basis") == "s251":
        _require(a, errors, "legal", "s251_regulation", "s251_expiry")
        if not (answers.get("meta") or {}).get("cag_reference"):
            errors["meta.cag_reference"] = ["Give the CAG reference of the s251 support."]
    if a.get("ethics") == "not_required":
        _require(a, errors, "legal", "ethics_reason")
    if a.get("ethics") == "favourable":
        _require(a, errors, "legal", "rec_opinion_date")


def _data(a: Mapping[str, Any], errors: Errors, _: Any) -> None:
    _require(a, errors, "data", "datasets", "level")
    sensitive = sensitive_fields(a.get("datasets") or {})
    for slug, fields in (a.get("datasets") or {}).items():
        blank = sorted(f for f, why in fields.items() if not why.strip())
        if blank:
            errors.setdefault("data.datasets", []).append(
                f"Justify each field of {slug}: {', '.join(blank)}."
            )
    unjustified = [f"{s}.{f}" for s, f in sensitive
                   if len(a["datasets"][s][f].strip()) < 20]  # fmt: skip
    if unjustified:
        errors.setdefault("data.datasets", []).append(
            "Sensitive fields need an explicit justification (at least a sentence): "
            + ", ".join(unjustified)
            + "."
        )
    if a.get("date_from") and a.get("date_to") and a["date_to"] < a["date_from"]:
        errors["data.date_to"] = ["The end of the date range is before its start."]
    cohort = a.get("cohort") or {}
    low, high = cohort.get("age_min"), cohort.get("age_max")
    if low is not None and high is not None and high < low:
        errors["data.cohort"] = ["The oldest age is below the youngest."]


def _settings(a: Mapping[str, Any], errors: Errors, _: Any) -> None:
    _require(a, errors, "settings", "processing_location")
    if a.get("processing_location") == "outside_uk":
        errors["settings.processing_location"] = [
            "Processing outside the UK is refused: data is only used inside this environment."
        ]


def _outputs(a: Mapping[str, Any], errors: Errors, _: Any) -> None:
    _require(a, errors, "outputs", "output_types", "publication_plan", "disclosure_rules")
    if a.get("disclosure_rules") == "stricter":
        _require(a, errors, "outputs", "stricter_rules")


def _retention(a: Mapping[str, Any], errors: Errors, answers: Mapping[str, Any]) -> None:
    _require(a, errors, "retention", "retain_until")
    end = (answers.get("meta") or {}).get("end_date")
    if a.get("retain_until") and end and a["retain_until"] < end:
        errors["retention.retain_until"] = ["Data cannot be kept for less time than it is used."]


def _declarations(a: Mapping[str, Any], errors: Errors, _: Any) -> None:
    if a.get("accepted") is not True or a.get("agreement_version") != AGREEMENT_VERSION:
        errors["declarations.accepted"] = [
            f"Accept the user agreement and code of conduct (version {AGREEMENT_VERSION})."
        ]


_SECTION_RULES: Final = {
    "meta": _meta,
    "people": _people,
    "project": _project,
    "legal": _legal,
    "data": _data,
    "settings": _settings,
    "outputs": _outputs,
    "retention": _retention,
    "declarations": _declarations,
}


# --- What reviewers and the project need ------------------------------------------------
def sensitive_fields(datasets: Mapping[str, Mapping[str, str]]) -> list[tuple[str, str]]:
    """(dataset, field) pairs requested whose catalogue sensitivity is not standard."""
    wanted = {(s, f) for s, fields in datasets.items() for f in fields}
    flagged = DatasetField.objects.filter(
        dataset__slug__in=list(datasets), sensitivity__in=list(FLAGGED_SENSITIVITIES)
    ).values_list("dataset__slug", "name")
    return sorted(pair for pair in flagged if pair in wanted)


def extract_basis(legal: Mapping[str, Any]) -> str:
    """The basis the opt-out decision table reads, derived from the legal answers (an
    unanswered or unrecognised basis fails closed in the table)."""
    basis = legal.get("confidentiality_basis")
    if basis == "s251":
        return (
            ConfidentialityBasis.S251_CAG_NDOP_EXEMPTION
            if legal.get("cag_ndop_exemption")
            else ConfidentialityBasis.S251_STANDARD
        ).value
    known = {b.value for b in ConfidentialityBasis}
    return basis if basis in known else ConfidentialityBasis.UNKNOWN.value


def needs_caldicott(answers: Mapping[str, Mapping[str, Any]]) -> bool:
    return (answers.get("legal") or {}).get("confidentiality_basis") == "overriding_public_interest"


def scope_from(answers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The extract scope (without project id) the answers ask for."""
    data, project, legal = answers["data"], answers["project"], answers["legal"]
    cohort = {k: v for k, v in (data.get("cohort") or {}).items() if v not in (None, [])}
    return {
        "datasets": {slug: sorted(fields) for slug, fields in (data.get("datasets") or {}).items()},
        "purpose": project.get("purpose", ""),
        "legal_basis": extract_basis(legal),
        "date_from": data.get("date_from"),
        "date_to": data.get("date_to"),
        "cohort": cohort,
    }


@dataclass(frozen=True)
class Flag:
    code: str
    text: str


def review_flags(answers: Mapping[str, Mapping[str, Any]], *, today: date) -> list[Flag]:
    """What reviewers must look at: sensitive fields, children, commercial involvement,
    an s251 date that is near or past, overriding public interest."""
    flags = []
    sensitive = sensitive_fields((answers.get("data") or {}).get("datasets") or {})
    if sensitive:
        names = ", ".join(f"{s}.{f}" for s, f in sensitive)
        flags.append(Flag("sensitive_fields", f"Sensitive fields requested: {names}."))
    cohort = (answers.get("data") or {}).get("cohort") or {}
    if cohort.get("age_min") is None or cohort["age_min"] < 16:
        flags.append(Flag("under_16s", "The cohort can include children under 16."))
    if (answers.get("project") or {}).get("commercial_involvement"):
        flags.append(Flag("commercial", "There is commercial involvement."))
    expiry = (answers.get("legal") or {}).get("s251_expiry")
    if expiry:
        end = (answers.get("meta") or {}).get("end_date")
        if expiry < today.isoformat():
            flags.append(Flag("s251_expiry", f"The s251 support expired on {expiry}."))
        elif end and expiry < end:
            flags.append(
                Flag("s251_expiry", f"The s251 support ends ({expiry}) before the project.")
            )
    if needs_caldicott(answers):
        flags.append(
            Flag("caldicott", "Overriding public interest: the Caldicott Guardian must sign off.")
        )
    return flags


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(section.question, before, after) for every answer that changed: what an
    amendment's reviewers review."""
    changes = []
    for section in SECTION_KEYS:
        old, new = before.get(section) or {}, after.get(section) or {}
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                changes.append((f"{section}.{name}", old.get(name), new.get(name)))
    return changes
