"""How IG's register page words things: decision-table cells in plain English, a change's
payload as a summary, snapshots and extracts as rows of suppressed counts.

Presentation only: everything here reads what ``register.register_overview`` and
``extracts.removal_summary`` return. No system pseudonym or NHS number is ever read.
"""

from __future__ import annotations

from typing import Any, Final

from sde.data import register
from sde.data.extracts import removal_summary
from sde.data.models import Extract, OptOutChange, OptOutKind, OptOutSnapshot, OptOutSource
from sde.data.optouts import (
    BASIS_LABELS,
    Application,
    ConfidentialityBasis,
    DecisionRow,
    DecisionTable,
    PurposeGroup,
)
from sde.data.optouts import OptOutKind as TableKind
from sde.identity.models import User

CELL_TEXT: Final = {
    Application.APPLIED: "Applied",
    Application.NOT_APPLIED: "Not applied",
    Application.CONSENTED_ONLY: "Not applied for people who consented; applied for everyone else",
    Application.CASE_BY_CASE: "Case by case: the recorded Caldicott Guardian decision "
    "(applied when none is recorded)",
    Application.APPLIED_UNLESS_CAG_LETTER: "Applied, unless the project's CAG letter disapplies it",
    Application.APPLIED_UNLESS_INSTRUMENT: "Applied, unless the project's legal instrument "
    "overrides it",
}
PURPOSE_TEXT: Final = {
    PurposeGroup.DIRECT_CARE: "Direct care",
    PurposeGroup.RESEARCH_OR_PLANNING: "Research or planning",
}
CALDICOTT_TEXT: Final = {
    None: "none recorded",
    Application.APPLIED.value: "applied",
    Application.NOT_APPLIED.value: "not applied",
}


def basis_phrase(basis: ConfidentialityBasis | str) -> str:
    """The basis as it reads mid-sentence ("s251 support ...", "COPI Regulation 3")."""
    try:
        return BASIS_LABELS[ConfidentialityBasis(basis)]
    except (KeyError, ValueError):
        return str(basis)


def basis_text(basis: ConfidentialityBasis | str | None) -> str:
    """The basis as a table cell: capitalised, except a leading "s251"."""
    if basis is None:
        return "Any (opt-outs never apply to direct care)"
    phrase = basis_phrase(basis)
    return phrase if phrase.startswith("s251") else phrase[:1].upper() + phrase[1:]


def kind_text(kind: TableKind | str) -> str:
    return str(OptOutKind(str(kind)).label)


def policy_text(value: Application | str) -> str:
    return "Not applied" if value == Application.NOT_APPLIED else "Applied"


def cell_text(table: DecisionTable, row: DecisionRow, kind: TableKind) -> str:
    cell = row.cell(kind)
    if cell is Application.PLATFORM_POLICY and row.basis is not None:
        value = table.platform_policy.get((row.basis, kind), Application.APPLIED)
        return f"{policy_text(value)} (platform policy)"
    return CELL_TEXT.get(cell, "Applied")


def table_rows(table: DecisionTable) -> list[dict[str, str]]:
    return [
        {
            "purpose": PURPOSE_TEXT[row.purpose],
            "basis": basis_text(row.basis),
            "ndop": cell_text(table, row, TableKind.NDOP),
            "type1": cell_text(table, row, TableKind.TYPE1),
            "note": row.note,
        }
        for row in table.rows
    ]


def policy_cells(table: DecisionTable) -> list[dict[str, str]]:
    return [
        {
            "label": f"{kind_text(kind)} under {basis_phrase(basis)}",
            "value": policy_text(table.platform_policy[(basis, kind)]),
        }
        for basis, kind in table.policy_cells()
    ]


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def change_summary(change: OptOutChange, current: DecisionTable) -> list[str]:
    """What a change would do, one line per fact; for a table change still awaiting a
    decision, each platform-policy cell says whether it differs from the current table."""
    payload = change.payload if isinstance(change.payload, dict) else {}
    if change.kind == OptOutChange.Kind.EXEMPTION:
        decision = payload.get("caldicott_type1_decision")
        return [
            f"CAG letter disapplies Type 1: {_yes(payload.get('cag_letter_disapplies_type1'))}",
            f"Legal instrument overrides Type 1: {_yes(payload.get('instrument_overrides_type1'))}",
            f"Caldicott decision on Type 1: {CALDICOTT_TEXT.get(decision, str(decision))}",
        ]
    now = current.to_json()
    pending = change.status == OptOutChange.Status.PROPOSED
    lines = []
    for basis, kinds in sorted((payload.get("platform_policy") or {}).items()):
        for kind, value in sorted(kinds.items()):
            line = f"{kind_text(kind)} under {basis_phrase(basis)}: {policy_text(value)}"
            was = now["platform_policy"].get(basis, {}).get(kind, Application.APPLIED.value)
            if pending and was != value:
                line += f" (now {policy_text(was).lower()})"
            lines.append(line)
    if pending and payload.get("rows") != now["rows"]:
        lines.append("Rows of the table change too")
    based_on = f"Made against decision table version {change.based_on_version}"
    if change.table_version:
        based_on += f"; became version {change.table_version}"
    return [*lines, based_on]


def snapshot_summary(snapshot: OptOutSnapshot) -> dict[str, Any]:
    labels = dict(OptOutSource.choices)
    return {
        "snapshot": snapshot,
        "ndop": register.suppressed(snapshot.ndop_count),
        "type1": register.suppressed(snapshot.type1_count),
        "manual": register.suppressed(snapshot.manual_count),
        "stale_manual": register.suppressed(snapshot.stale_manual_count)
        if snapshot.stale_manual_count
        else "",
        "sources": [labels.get(source, source) for source in snapshot.imported_sources],
        "source_hash": snapshot.source_hash[:12],
    }


def extract_row(extract: Extract, *, by: User) -> dict[str, Any]:
    summary = removal_summary(extract, by=by)
    versions = sorted(extract.dataset_versions.items())
    return {
        "extract": extract,
        "datasets": ", ".join(f"{slug} v{v.get('version')}" for slug, v in versions),
        **summary,
    }
