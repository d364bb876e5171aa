"""Reading projects. The public transparency register lives here: what the public may know
about every project that was approved to use data.

The register says what was approved, not who works on it nor how it is governed day to
day: the number, title, lay summary, lead organisation, purpose, legal basis, datasets
(names and how many fields of each), the access period and the status. It never uses
members, reviewer notes, conditions, status reasons, opt-out counts or the scope's cohort
filters, so none of them can reach a public page by accident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from django.db.models import QuerySet

from sde import policy
from sde.data import extracts
from sde.data.models import Dataset, Extract
from sde.data.optouts import BASIS_LABELS, ConfidentialityBasis, Purpose
from sde.exceptions import NotFound
from sde.projects.models import Project, ProjectMembership

S = Project.Status
# Every project on the register was approved; a new status is published only on purpose.
REGISTER_STATUSES: Final = (S.ACTIVE, S.SUSPENDED, S.EXPIRED, S.REVOKED, S.CLOSED)
STATUS_TEXT: Final = {
    S.ACTIVE: "Active",
    S.SUSPENDED: "Suspended",
    S.EXPIRED: "Ended",
    S.REVOKED: "Access revoked",
    S.CLOSED: "Closed",
}
STATUS_MEANING: Final = {
    S.ACTIVE: "Approved and using data now.",
    S.SUSPENDED: "Approved, but access to the data is paused.",
    S.EXPIRED: "Access ended on the approved end date.",
    S.REVOKED: "Access was withdrawn before the end date.",
    S.CLOSED: "Finished, and the project's copy of the data has been destroyed.",
}
PURPOSE_TEXT: Final = {
    Purpose.RESEARCH: "Research",
    Purpose.PLANNING: "Planning and improving health and care services",
    Purpose.DIRECT_CARE: "Direct care of individual patients",
}
NOT_RECORDED: Final = "Not recorded"


@dataclass(frozen=True)
class RegisterDataset:
    name: str
    field_count: int


@dataclass(frozen=True)
class RegisterEntry:
    """One project as the public sees it, with how many files output checking has
    released from it (revoked releases not counted)."""

    number: int
    title: str
    lay_summary: str
    organisation: str
    purpose: str
    legal_basis: str
    datasets: tuple[RegisterDataset, ...]
    start_date: date
    end_date: date
    status: str
    status_text: str
    released_outputs: int

    @property
    def status_meaning(self) -> str:
        return STATUS_MEANING[S(self.status)]

    def as_json(self) -> dict[str, Any]:
        """The published keys (``REGISTER_KEYS``), dates as ISO strings."""
        return {
            "number": self.number,
            "title": self.title,
            "lay_summary": self.lay_summary,
            "organisation": self.organisation,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "datasets": [{"name": d.name, "field_count": d.field_count} for d in self.datasets],
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "status": self.status,
            "status_text": self.status_text,
            "released_outputs": self.released_outputs,
        }


REGISTER_KEYS: Final = (
    "number", "title", "lay_summary", "organisation", "purpose", "legal_basis", "datasets",
    "start_date", "end_date", "status", "status_text", "released_outputs",
)  # fmt: skip


def purpose_text(purpose: str) -> str:
    try:
        return PURPOSE_TEXT[Purpose(purpose)]
    except ValueError:
        return NOT_RECORDED


def legal_basis_text(basis: str) -> str:
    """The basis as a sentence starts ("COPI Regulation 3", "s251 support ...")."""
    try:
        phrase = BASIS_LABELS[ConfidentialityBasis(basis)]
    except (KeyError, ValueError):
        return NOT_RECORDED  # "unknown" or missing: say so rather than print a code
    return phrase if phrase.startswith("s251") else phrase[:1].upper() + phrase[1:]


# Only these columns are read; of the scope, only purpose, basis and datasets are used.
_REGISTER_COLUMNS: Final = (
    "pk", "title", "lay_summary", "organisation__name", "scope", "start_date", "end_date",
    "status", "created_at", "released_outputs",
)  # fmt: skip


def _register_projects() -> QuerySet[Project]:
    return (
        Project.objects.filter(status__in=REGISTER_STATUSES)
        .select_related("organisation")
        .only(*_REGISTER_COLUMNS)
        .order_by("-created_at", "-pk")
    )


def _entries(projects: Iterable[Project]) -> list[RegisterEntry]:
    projects = list(projects)
    slugs = {str(slug) for p in projects for slug in (p.scope.get("datasets") or {})}
    names = dict(Dataset.objects.filter(slug__in=slugs).values_list("slug", "name"))
    entries = []
    for project in projects:
        scope = project.scope
        datasets = sorted(
            (
                RegisterDataset(name=names.get(str(slug), str(slug)), field_count=len(fields))
                for slug, fields in (scope.get("datasets") or {}).items()
            ),
            key=lambda d: d.name,
        )
        entries.append(
            RegisterEntry(
                number=project.pk,
                title=project.title,
                lay_summary=project.lay_summary,
                organisation=project.organisation.name,
                purpose=purpose_text(str(scope.get("purpose") or "")),
                legal_basis=legal_basis_text(str(scope.get("legal_basis") or "")),
                datasets=tuple(datasets),
                start_date=project.start_date,
                end_date=project.end_date,
                status=project.status,
                status_text=STATUS_TEXT[S(project.status)],
                released_outputs=project.released_outputs,
            )
        )
    return entries


def transparency_register() -> list[RegisterEntry]:
    """Every project that is or was approved to use data, newest approval first. Public:
    no permission check, and nothing in an entry is restricted."""
    return _entries(_register_projects())


def transparency_register_entry(number: int) -> RegisterEntry:
    """One project's register entry. Raises NotFound for a number not on the register."""
    project = _register_projects().filter(pk=number).first()
    if project is None:
        raise NotFound("no such project on the register")
    return _entries([project])[0]


# --- The project pages (members and IG) -------------------------------------------------
# What a signed-in person sees of a project they may see. The register functions above
# use none of this; nothing below is public.
# A date within this many days is marked "ends in N days" (the furthest reminder).
SOON_DAYS: Final = 30
DATE_LABELS: Final = {
    "s251_expiry": "s251 support ends",
    "rec_expiry": "Ethics (REC) approval ends",
    "dspt_expiry": "DSPT status ends",
}


def project_for(user: Any, pk: int) -> Project:
    """The project, or NotFound when it does not exist or ``user`` may not see it."""
    project = policy.visible_projects_for(user).select_related("organisation").filter(pk=pk).first()
    if project is None:
        raise NotFound("no such project")
    return project


def projects_for(user: Any, *, status: str = "") -> QuerySet[Project]:
    """The projects ``user`` may see (members: their own; IG: all), newest first,
    optionally of one status."""
    projects = policy.visible_projects_for(user).select_related("organisation")
    if status:
        projects = projects.filter(status=status)
    return projects.order_by("-created_at", "-pk")


@dataclass(frozen=True)
class ProjectDate:
    name: str  # the Project field
    label: str
    value: date | None
    days_left: int | None  # None when there is no date

    @property
    def lapsed(self) -> bool:
        return self.days_left is not None and self.days_left < 0

    @property
    def soon(self) -> bool:
        return self.days_left is not None and 0 <= self.days_left <= SOON_DAYS


def project_dates(project: Project, *, today: date) -> list[ProjectDate]:
    """The end of access and each s251, REC and DSPT date, with days left (negative once
    lapsed): access stops when any of them passes."""
    names = ("end_date", *policy.PROJECT_COMPLIANCE_DATES)
    labels = {"end_date": "Access ends", **DATE_LABELS}
    return [
        ProjectDate(name, labels[name], value, (value - today).days if value else None)
        for name in names
        for value in [getattr(project, name)]
    ]


@dataclass(frozen=True)
class ScopeDataset:
    slug: str
    name: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class ApprovedScope:
    purpose: str
    legal_basis: str
    datasets: tuple[ScopeDataset, ...]
    date_from: date | None
    date_to: date | None
    cohort: tuple[str, ...]  # one sentence per filter; empty: everyone


def _cohort_lines(cohort: dict[str, Any]) -> tuple[str, ...]:
    lines = []
    age_min, age_max = cohort.get("age_min"), cohort.get("age_max")
    if age_min is not None and age_max is not None:
        lines.append(f"Aged {age_min} to {age_max}")
    elif age_min is not None:
        lines.append(f"Aged {age_min} or over")
    elif age_max is not None:
        lines.append(f"Aged {age_max} or under")
    for key, label in (
        ("sexes", "Sex"), ("practices", "GP practices"), ("places", "Places"),
        ("imd_deciles", "IMD deciles"), ("snomed_codes", "With any of these SNOMED codes"),
    ):  # fmt: skip
        if cohort.get(key):
            lines.append(f"{label}: {', '.join(str(v) for v in cohort[key])}")
    if cohort.get("registered_only"):
        lines.append("Currently registered with a GP practice")
    return tuple(lines)


def approved_scope(project: Project) -> ApprovedScope:
    """The project's approved scope in words: datasets (by name) with their fields, the
    date range and the cohort filters."""
    scope = project.scope
    chosen = scope.get("datasets") or {}
    names = dict(Dataset.objects.filter(slug__in=list(chosen)).values_list("slug", "name"))
    as_date = lambda value: date.fromisoformat(value) if value else None  # noqa: E731
    datasets = [ScopeDataset(slug, names.get(slug, slug), tuple(f)) for slug, f in chosen.items()]
    return ApprovedScope(
        purpose=purpose_text(str(scope.get("purpose") or "")),
        legal_basis=legal_basis_text(str(scope.get("legal_basis") or "")),
        datasets=tuple(sorted(datasets, key=lambda d: d.name)),
        date_from=as_date(scope.get("date_from")),
        date_to=as_date(scope.get("date_to")),
        cohort=_cohort_lines(scope.get("cohort") or {}),
    )


def current_members(project: Project) -> QuerySet[ProjectMembership]:
    return (
        project.memberships.filter(removed_at__isnull=True)
        .select_related("user")
        .order_by("added_at", "pk")
    )


# --- Extract status ---------------------------------------------------------------------
class ExtractState:
    BUILDING = "building"  # an active project without one yet: the worker builds it
    WAITING = "waiting"  # a suspended project without one: built once it is resumed
    READY = "ready"
    STALE = "stale"  # rebuilt before its next use
    DELETED = "deleted"  # the project was closed
    NONE = "none"  # access ended before one was built


@dataclass(frozen=True)
class ExtractTable:
    dataset: str
    rows: int


@dataclass(frozen=True)
class ExtractStatus:
    """What a member may know about one of a project's extracts: never the opt-out
    counts (``extracts.removal_summary`` is IG's)."""

    dummy: bool
    state: str
    extract: Extract | None
    tables: tuple[ExtractTable, ...] = ()
    reasons: tuple[str, ...] = ()  # why it is out of date
    deleted_at: datetime | None = None


def extract_status(project: Project, *, dummy: bool) -> ExtractStatus:
    """The state of the project's real (or dummy) extract. A dummy extract is synthetic
    and never goes stale; only the real one is rebuilt when its sources change."""
    current = extracts.current_extract(project.pk, dummy=dummy)
    if current is None:
        if project.status == S.CLOSED:
            last = (
                Extract.objects.filter(project_id=project.pk, is_dummy=dummy)
                .order_by("-deleted_at", "-pk")
                .first()
            )
            if last is None:  # closed before one was built
                return ExtractStatus(dummy, ExtractState.NONE, None)
            return ExtractStatus(dummy, ExtractState.DELETED, None, deleted_at=last.deleted_at)
        waiting = {S.ACTIVE: ExtractState.BUILDING, S.SUSPENDED: ExtractState.WAITING}
        return ExtractStatus(dummy, waiting.get(S(project.status), ExtractState.NONE), None)
    names = dict(Dataset.objects.values_list("slug", "name"))
    tables = tuple(
        sorted(
            (ExtractTable(names.get(t["dataset"], t["dataset"]), int(t["rows"]))
             for t in current.tables.values()),
            key=lambda t: t.dataset,
        )
    )  # fmt: skip
    reasons = () if dummy else tuple(extracts.staleness(current))
    state = ExtractState.STALE if reasons else ExtractState.READY
    return ExtractStatus(dummy, state, current, tables, reasons)
