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
from datetime import date
from typing import Any, Final

from django.db.models import QuerySet

from sde.data.models import Dataset
from sde.data.optouts import BASIS_LABELS, ConfidentialityBasis, Purpose
from sde.exceptions import NotFound
from sde.projects.models import Project

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
    """One project as the public sees it. Released output counts are not here: outputs
    and their release come later, and the register shows no column it cannot fill."""

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
        }


REGISTER_KEYS: Final = (
    "number", "title", "lay_summary", "organisation", "purpose", "legal_basis", "datasets",
    "start_date", "end_date", "status", "status_text",
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
    "status", "created_at",
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
            )
        )
    return entries


def transparency_register() -> list[RegisterEntry]:
    """Every project that is or was approved to use data, newest approval first. Public:
    no permission check, and nothing in an entry is restricted. Released output counts
    are not included yet (there are no outputs to count until release checking exists)."""
    return _entries(_register_projects())


def transparency_register_entry(number: int) -> RegisterEntry:
    """One project's register entry. Raises NotFound for a number not on the register."""
    project = _register_projects().filter(pk=number).first()
    if project is None:
        raise NotFound("no such project on the register")
    return _entries([project])[0]
