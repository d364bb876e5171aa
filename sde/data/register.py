"""The opt-out register: snapshots, imports, manual entries, and two-person changes.

The register holds opt-outs by **system pseudonym**, never by NHS number. Every import
(an NDOP file, the Type 1 dissent codes in an ingest's GP events) and every manual entry
or withdrawal makes a new ``OptOutSnapshot``: the whole register as a Parquet file of
(kind, person_id, source) rows, with a content hash and the date. An import replaces the
rows of its own source only: a new NDOP file replaces the last file's list (the national
service sends the whole list each time), a new GP extract replaces the Type 1 list derived
from the last one, and manual entries are always the ones IG has not withdrawn.

The decision table (``sde.data.optouts``) is data here: version 1 is the built-in
``DEFAULT_DECISION_TABLE``; each later version is an approved ``OptOutChange``. Table
changes and project exemptions are proposed by one IG officer and decided by another.

IG sees counts only, with small counts suppressed; nothing here is reachable by anyone
else (``policy.check_manage_optouts`` answers 404).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sde import policy
from sde.audit.events import EventType
from sde.audit.services import record_event
from sde.data import pseudonymisation, validation
from sde.data.files import data_root, file_sha256
from sde.data.models import (
    Extract,
    Ingest,
    ManualOptOut,
    OptOutChange,
    OptOutKind,
    OptOutSnapshot,
    OptOutSource,
)
from sde.data.optouts import (
    DEFAULT_DECISION_TABLE,
    Application,
    DecisionTable,
    decision_table_from_json,
)
from sde.data.optouts import OptOutKind as TableKind
from sde.exceptions import InvalidTransition, SDEError, ValidationError
from sde.governance import governed_writes
from sde.identity.models import User
from sde.keys import keyring

COLUMNS: Final = ("kind", "person_id", "source")
SMALL_COUNT: Final = 10  # counts from 1 to SMALL_COUNT - 1 are shown as "fewer than 10"
_STR: Final = pd.StringDtype()

Status = OptOutChange.Status
# The two-person change workflow: status -> statuses it may move to, and who moves it.
CHANGE_TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    Status.PROPOSED: frozenset({Status.APPROVED, Status.REJECTED, Status.WITHDRAWN}),
    Status.APPROVED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}
CHANGE_OWNERS: Final[Mapping[str, str]] = {
    Status.PROPOSED: "IG officer (proposer)",
    Status.APPROVED: "a second IG officer",
    Status.REJECTED: "a second IG officer",
    Status.WITHDRAWN: "IG officer (proposer)",
}
EXEMPTION_FLAGS: Final = ("cag_letter_disapplies_type1", "instrument_overrides_type1")


class OptOutError(SDEError):
    """The register cannot be updated as asked (the message is safe to show)."""


def suppressed(count: int | None) -> str:
    """A count for IG's pages: small counts (1 to 9) are not shown exactly."""
    if count is None:
        return "—"
    if 0 < count < SMALL_COUNT:
        return f"fewer than {SMALL_COUNT}"
    return f"{count:,}"


# --- Snapshots --------------------------------------------------------------------------
def _root() -> Path:
    return data_root() / "optouts"


def current_snapshot() -> OptOutSnapshot | None:
    return OptOutSnapshot.objects.order_by("-number").first()


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_STR) for c in COLUMNS})


def snapshot_entries(snapshot: OptOutSnapshot | None) -> pd.DataFrame:
    """The snapshot's rows (kind, person_id, source). Internal to provisioning: never
    shown to anyone."""
    if snapshot is None:
        return _empty()
    path = data_root() / snapshot.path
    frame = pq.read_table(path).to_pandas(types_mapper={pa.string(): _STR}.get)
    return frame.loc[:, list(COLUMNS)].astype(_STR)


def optout_ids(snapshot: OptOutSnapshot | None) -> dict[TableKind, pd.Series]:
    """System pseudonyms with each kind of opt-out in ``snapshot`` (for ``people_to_remove``)."""
    frame = snapshot_entries(snapshot)
    return {
        kind: frame.loc[frame["kind"] == kind.value, "person_id"].drop_duplicates()
        for kind in TableKind
    }


def _component(person_ids: pd.Series, kind: str, source: str) -> pd.DataFrame:
    unique = person_ids.dropna().drop_duplicates().astype(_STR).reset_index(drop=True)
    return pd.DataFrame(
        {
            "kind": pd.Series(kind, index=unique.index, dtype=_STR),
            "person_id": unique,
            "source": pd.Series(source, index=unique.index, dtype=_STR),
        }
    )


def content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 over the rows as ``kind,person_id,source`` lines in sorted order."""
    lines = (frame["kind"] + "," + frame["person_id"] + "," + frame["source"]).sort_values()
    return hashlib.sha256("\n".join(lines.tolist()).encode()).hexdigest()


def _manual_component(key_version: int) -> tuple[pd.DataFrame, int]:
    """Active manual entries under ``key_version``, and how many are under another one."""
    active = ManualOptOut.objects.filter(withdrawn_at__isnull=True)
    stale = active.exclude(key_version=key_version).count()
    rows = list(active.filter(key_version=key_version).values_list("kind", "system_pseudonym"))
    frame = pd.DataFrame(rows, columns=["kind", "person_id"], dtype=_STR)
    manual = frame.assign(
        source=pd.Series(OptOutSource.MANUAL.value, index=frame.index, dtype=_STR)
    )
    return manual, stale


def _write_snapshot(
    *,
    by: User,
    trigger: str,
    components: Mapping[str, pd.DataFrame],
    key_version: int,
    label: str = "",
    source_hash: str = "",
    ingest: Ingest | None = None,
    invalid: int = 0,
) -> OptOutSnapshot:
    """Make the next snapshot, inside the caller's transaction: the previous snapshot's
    rows with ``components``' sources replaced and the manual rows refreshed. An import
    that changes nothing returns the previous snapshot (and says so in the audit log)."""
    with governed_writes(OptOutSnapshot):
        previous = OptOutSnapshot.objects.select_for_update().order_by("-number").first()
        # Pseudonyms under another system key version cannot be carried over: after a key
        # rotation the register starts again from what is imported under the new key.
        same_key = previous is not None and previous.key_version == key_version
        kept = snapshot_entries(previous if same_key else None)
        kept = kept[~kept["source"].isin({*components, OptOutSource.MANUAL.value})]
        imported = set(previous.imported_sources if previous and same_key else ()) | {*components}
        manual, stale_manual = _manual_component(key_version)
        frame = pd.concat([kept, *components.values(), manual], ignore_index=True).astype(_STR)
        frame = frame.drop_duplicates().sort_values(list(COLUMNS), ignore_index=True)
        digest = content_hash(frame)
        unchanged = same_key and previous is not None and digest == previous.content_hash
        if unchanged and previous is not None and imported == set(previous.imported_sources):
            record_event(
                event_type=EventType.OPT_OUT_SNAPSHOT_UNCHANGED,
                actor=by,
                target=previous,
                data={"trigger": trigger, "invalid": invalid},
            )
            return previous
        number = previous.number + 1 if previous else 1
        _root().mkdir(parents=True, exist_ok=True)
        path = _root() / f"snapshot-{number}-{secrets.token_hex(4)}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        counts = {
            kind: int(frame.loc[frame["kind"] == kind, "person_id"].nunique())
            for kind in OptOutKind.values
        }
        snapshot = OptOutSnapshot(
            number=number,
            trigger=trigger,
            source_label=label[:200],
            source_hash=source_hash,
            ingest=ingest,
            created_by=by,
            path=str(path.relative_to(data_root())),
            content_hash=digest,
            key_version=key_version,
            ndop_count=counts[OptOutKind.NDOP],
            type1_count=counts[OptOutKind.TYPE1],
            manual_count=int((frame["source"] == OptOutSource.MANUAL).sum()),
            invalid_count=invalid,
            imported_sources=sorted(imported),
            stale_manual_count=stale_manual,
        )
        snapshot.save()
        record_event(
            event_type=EventType.OPT_OUT_SNAPSHOT_IMPORTED,
            actor=by,
            target=snapshot,
            data={
                "number": number,
                "trigger": trigger,
                "content_hash": digest,
                "ndop": snapshot.ndop_count,
                "type1": snapshot.type1_count,
                "manual": snapshot.manual_count,
                "invalid": invalid,
                "key_version": key_version,
                "imported_sources": sorted(imported),
                "stale_manual": stale_manual,
            },
        )
        return snapshot


def _check_import(by: User) -> None:
    """IG officers import NDOP files; the system actor does for ``manage.py import_ndop``."""
    if not getattr(by, "is_system", False):
        policy.check_manage_optouts(by)


def import_ndop_file(*, path: Path, by: User, label: str = "") -> OptOutSnapshot:
    """Import a national data opt-out file (one NHS number per line, no header). Invalid
    lines are counted, never hashed. Raises NotFound unless ``by`` is IG (or the system),
    and SourceFormatError for a file that is not an NDOP list.
    Event: data.optout_snapshot_imported (or data.optout_import_unchanged)."""
    _check_import(by)
    raw = validation.read_source_table(path, "ndop")
    result = validation.validate_table("ndop", raw, extract_date=timezone.localdate())
    key_version, key = keyring("system").current()
    ids = pseudonymisation.system_pseudonyms(result.clean["nhs_number"], key)
    with transaction.atomic(durable=True):
        return _write_snapshot(
            by=by,
            trigger=OptOutSnapshot.Trigger.NDOP_IMPORT,
            components={OptOutSource.NDOP_FILE: ndop_component(ids)},
            key_version=key_version,
            label=label or path.name,
            source_hash=file_sha256(path),
            invalid=len(result.quarantine),
        )


def ndop_component(system_pseudonyms: pd.Series) -> pd.DataFrame:
    return _component(system_pseudonyms, OptOutKind.NDOP, OptOutSource.NDOP_FILE)


def type1_component(gp_events: pd.DataFrame, dissent_code: str) -> pd.DataFrame:
    """Type 1 opt-outs in a pseudonymised GP events frame: everyone with the dissent code."""
    coded = gp_events["snomed_code"] == dissent_code
    ids = gp_events.loc[coded.fillna(False).to_numpy(dtype=bool), "person_id"]
    return _component(ids, OptOutKind.TYPE1, OptOutSource.GP_EVENTS)


def record_ingest_optouts(
    *,
    ingest: Ingest,
    components: Mapping[str, pd.DataFrame],
    key_version: int,
    by: User,
    ndop_hash: str = "",
    ndop_invalid: int = 0,
) -> OptOutSnapshot:
    """The register update an ingest makes, inside the ingest's publishing transaction
    (``ndop_hash``/``ndop_invalid``: the drop's ``ndop.csv``, when it has one)."""
    return _write_snapshot(
        by=by,
        trigger=OptOutSnapshot.Trigger.INGEST,
        components=components,
        key_version=key_version,
        label=ingest.source_label,
        source_hash=ndop_hash,
        ingest=ingest,
        invalid=ndop_invalid,
    )


# --- Manual entries ---------------------------------------------------------------------
def _manual_target(nhs_number: str, kind: str, reason: str) -> tuple[dict[int, str], int, str]:
    """(the person's system pseudonym under every key version, the current version, the
    reason); raises ValidationError (never echoing the number)."""
    errors: dict[str, list[str]] = {}
    normalised = "".join(ch for ch in str(nhs_number) if ch not in " -")
    if not pseudonymisation.is_valid_nhs_number(normalised):
        errors["nhs_number"] = ["Not a valid NHS number (10 digits with a Modulus 11 check)."]
    if kind not in OptOutKind.values:
        errors["kind"] = ["Choose the national data opt-out or a GP Type 1 opt-out."]
    if not reason.strip():
        errors["reason"] = ["Give the reason (e.g. how the objection was received)."]
    if errors:
        raise ValidationError("the opt-out entry is not valid", errors)
    ring = keyring("system")
    number = pd.Series([normalised])
    pseudonyms = {
        version: str(pseudonymisation.system_pseudonyms(number, key).iloc[0])
        for version, key in ring.keys.items()
    }
    return pseudonyms, ring.current_version, reason.strip()


def _active_entries(pseudonyms: Mapping[int, str], kind: str) -> Any:
    """The person's active manual entries of ``kind``, under any key version."""
    match = Q()
    for version, pseudonym in pseudonyms.items():
        match |= Q(key_version=version, system_pseudonym=pseudonym)
    return ManualOptOut.objects.filter(match, kind=kind, withdrawn_at__isnull=True)


def add_manual_optout(*, nhs_number: str, kind: str, reason: str, by: User) -> OptOutSnapshot:
    """Record an opt-out IG received directly. Raises NotFound unless ``by`` is IG,
    ValidationError for an invalid NHS number, kind or empty reason, or if the person
    already has an active manual opt-out of that kind.
    Events: data.optout_manual_added, data.optout_snapshot_imported."""
    policy.check_manage_optouts(by)
    pseudonyms, key_version, reason = _manual_target(nhs_number, kind, reason)
    with transaction.atomic(durable=True), governed_writes(ManualOptOut):
        active = _active_entries(pseudonyms, kind).select_for_update()
        if active.filter(key_version=key_version).exists():
            raise ValidationError(
                "this person already has an active manual opt-out of that kind",
                {"nhs_number": ["Already recorded (and not withdrawn)."]},
            )
        for old in active:  # entered before a key rotation: this entry replaces it
            old.withdrawn_by, old.withdrawn_at = by, timezone.now()
            old.withdrawal_reason = f"entered again under system key version {key_version}"
            old.save()
        entry = ManualOptOut(
            system_pseudonym=pseudonyms[key_version], key_version=key_version, kind=kind,
            reason=reason, added_by=by,
        )  # fmt: skip
        entry.save()
        record_event(
            event_type=EventType.OPT_OUT_MANUAL_ADDED, actor=by, target=entry, data={"kind": kind}
        )
        return _write_snapshot(
            by=by, trigger=OptOutSnapshot.Trigger.MANUAL_ADDED, components={},
            key_version=key_version,
        )  # fmt: skip


def withdraw_manual_optout(*, nhs_number: str, kind: str, reason: str, by: User) -> OptOutSnapshot:
    """Withdraw a manual opt-out (e.g. the person changed their mind). Raises NotFound
    unless ``by`` is IG, ValidationError if there is no active manual entry to withdraw.
    Events: data.optout_manual_withdrawn, data.optout_snapshot_imported."""
    policy.check_manage_optouts(by)
    pseudonyms, key_version, reason = _manual_target(nhs_number, kind, reason)
    with transaction.atomic(durable=True), governed_writes(ManualOptOut):
        entries = list(_active_entries(pseudonyms, kind).select_for_update())
        if not entries:
            raise ValidationError(
                "there is no active manual opt-out of that kind for this NHS number",
                {"nhs_number": ["No active manual entry of that kind."]},
            )
        for entry in entries:  # one, or one per key version if it predates a rotation
            entry.withdrawn_by, entry.withdrawn_at = by, timezone.now()
            entry.withdrawal_reason = reason
            entry.save()
        record_event(
            event_type=EventType.OPT_OUT_MANUAL_WITHDRAWN,
            actor=by,
            target=entry,
            data={"kind": kind},
        )
        return _write_snapshot(
            by=by, trigger=OptOutSnapshot.Trigger.MANUAL_WITHDRAWN, components={},
            key_version=key_version,
        )  # fmt: skip


# --- The decision table and exemptions: two IG officers -------------------------------
def current_decision_table() -> DecisionTable:
    change = (
        OptOutChange.objects.filter(kind=OptOutChange.Kind.DECISION_TABLE, status=Status.APPROVED)
        .order_by("-table_version")
        .first()
    )
    return DEFAULT_DECISION_TABLE if change is None else decision_table_from_json(change.payload)


def _require_reason(reason: str, field: str = "reason") -> str:
    if not reason.strip():
        raise ValidationError("a reason is required", {field: ["Give the reason."]})
    return reason.strip()


def propose_table_change(*, table: Mapping[str, Any], reason: str, by: User) -> OptOutChange:
    """Propose a new decision table (JSON as ``DecisionTable.to_json`` gives; its version
    is set on approval). Raises NotFound unless ``by`` is IG; DecisionTableError for an
    invalid table; ValidationError for no reason or no change.
    Event: governance.optout_change_proposed."""
    policy.check_manage_optouts(by)
    reason = _require_reason(reason)
    current = current_decision_table()
    candidate = decision_table_from_json({**table, "version": current.version + 1})
    if {**candidate.to_json(), "version": 0} == {**current.to_json(), "version": 0}:
        raise ValidationError(
            "the proposal is the current table", {"table": ["Change at least one cell."]}
        )
    return _propose(
        kind=OptOutChange.Kind.DECISION_TABLE,
        payload=candidate.to_json(),
        reason=reason,
        by=by,
        based_on_version=current.version,
    )


def propose_platform_policy(
    *, cells: Mapping[tuple[str, str], str], reason: str, by: User
) -> OptOutChange:
    """Propose new values for the "applied (platform policy)" cells of the current table:
    ``{(basis, kind): "applied" | "not_applied"}``."""
    current = current_decision_table().to_json()
    policy_cells = {basis: dict(kinds) for basis, kinds in current["platform_policy"].items()}
    for (basis, kind), value in cells.items():
        policy_cells.setdefault(basis, {})[kind] = value
    return propose_table_change(
        table={**current, "platform_policy": policy_cells}, reason=reason, by=by
    )


def propose_exemption(
    *,
    project_id: int,
    cag_letter_disapplies_type1: bool = False,
    instrument_overrides_type1: bool = False,
    caldicott_type1_decision: str | None = None,
    reason: str,
    by: User,
) -> OptOutChange:
    """Propose a project's opt-out exemption: the evidence the decision table's "unless"
    and "case by case" cells read (a CAG letter, a legal instrument, a Caldicott decision).
    Raises NotFound unless ``by`` is IG; ValidationError for bad values or no reason.
    Event: governance.optout_change_proposed."""
    policy.check_manage_optouts(by)
    errors: dict[str, list[str]] = {}
    if isinstance(project_id, bool) or not isinstance(project_id, int) or project_id < 1:
        errors["project_id"] = ["Give the project's number."]
    allowed = (None, Application.APPLIED.value, Application.NOT_APPLIED.value)
    if caldicott_type1_decision not in allowed:
        errors["caldicott_type1_decision"] = ["Either applied, not applied, or none recorded."]
    if errors:
        raise ValidationError("the exemption is not valid", errors)
    payload = {
        "cag_letter_disapplies_type1": bool(cag_letter_disapplies_type1),
        "instrument_overrides_type1": bool(instrument_overrides_type1),
        "caldicott_type1_decision": caldicott_type1_decision,
    }
    return _propose(
        kind=OptOutChange.Kind.EXEMPTION,
        payload=payload,
        reason=_require_reason(reason),
        by=by,
        project_id=project_id,
    )


def _propose(*, kind: str, payload: dict[str, Any], reason: str, by: User, **fields: Any) -> Any:
    with transaction.atomic(durable=True), governed_writes(OptOutChange):
        change = OptOutChange(kind=kind, payload=payload, reason=reason, proposed_by=by, **fields)
        change.save()
        record_event(
            event_type=EventType.OPT_OUT_CHANGE_PROPOSED,
            actor=by,
            target=change,
            data={"kind": kind, "project_id": change.project_id},
        )
    return change


def _transition(change: OptOutChange, to: str) -> None:
    if to not in CHANGE_TRANSITIONS[change.status]:
        raise InvalidTransition(f"this change is {change.get_status_display().lower()}")


def decide_change(*, change: OptOutChange, approve: bool, reason: str, by: User) -> OptOutChange:
    """Approve or reject a proposed change. Only an IG officer who did not propose it may
    decide (NotFound for non-IG, PermissionDenied for the proposer); a rejection needs a
    reason; a table change made against an older table than the current one is refused
    (InvalidTransition: propose it again). Events: governance.optout_policy_changed,
    governance.optout_exemption_approved, or governance.optout_change_rejected."""
    policy.check_manage_optouts(by)
    to = Status.APPROVED if approve else Status.REJECTED
    with transaction.atomic(durable=True), governed_writes(OptOutChange):
        locked = OptOutChange.objects.select_for_update().get(pk=change.pk)
        policy.check_decide_optout_change(by, locked)
        _transition(locked, to)
        if not approve:
            reason = _require_reason(reason, "decision_reason")
        event, data = EventType.OPT_OUT_CHANGE_REJECTED, {"kind": locked.kind}
        if approve and locked.kind == OptOutChange.Kind.DECISION_TABLE:
            current = current_decision_table()
            if current.version != locked.based_on_version:
                raise InvalidTransition(
                    f"the decision table is now version {current.version}; this change was "
                    f"made against version {locked.based_on_version}: propose it again"
                )
            locked.table_version = current.version + 1
            locked.payload = {**locked.payload, "version": locked.table_version}
            event, data = EventType.OPT_OUT_POLICY_CHANGED, {"version": locked.table_version}
        elif approve:
            event = EventType.OPT_OUT_EXEMPTION_APPROVED
            data = {"project_id": locked.project_id, **locked.payload}
        locked.status, locked.decided_by, locked.decided_at = to, by, timezone.now()
        locked.decision_reason = reason.strip()
        locked.save()
        record_event(event_type=event, actor=by, target=locked, data=data)
    return locked


def withdraw_change(*, change: OptOutChange, by: User) -> OptOutChange:
    """The proposer withdraws a change nobody has decided. Event:
    governance.optout_change_withdrawn."""
    policy.check_manage_optouts(by)
    with transaction.atomic(durable=True), governed_writes(OptOutChange):
        locked = OptOutChange.objects.select_for_update().get(pk=change.pk)
        policy.check_withdraw_optout_change(by, locked)
        _transition(locked, Status.WITHDRAWN)
        locked.status, locked.decided_at = Status.WITHDRAWN, timezone.now()
        locked.save()
        record_event(
            event_type=EventType.OPT_OUT_CHANGE_WITHDRAWN,
            actor=by,
            target=locked,
            data={"kind": locked.kind},
        )
    return locked


def exemption_for(project_id: int) -> OptOutChange | None:
    """The project's latest approved exemption (None: no exemption, everything applies)."""
    return (
        OptOutChange.objects.filter(
            kind=OptOutChange.Kind.EXEMPTION, status=Status.APPROVED, project_id=project_id
        )
        .order_by("-decided_at", "-pk")
        .first()
    )


def exemption_flags(exemption: OptOutChange | None) -> dict[str, Any]:
    """The keyword arguments ``optouts.treatment_for`` takes from an exemption."""
    payload = exemption.payload if exemption is not None else {}
    return {
        "cag_letter_disapplies_type1": bool(payload.get("cag_letter_disapplies_type1")),
        "instrument_overrides_type1": bool(payload.get("instrument_overrides_type1")),
        "caldicott_type1_decision": payload.get("caldicott_type1_decision"),
    }


def visible_changes_for(user: User) -> Any:
    policy.check_manage_optouts(user)
    return OptOutChange.objects.select_related("proposed_by", "decided_by")


# --- IG's view of the register ----------------------------------------------------------
@dataclass(frozen=True)
class RegisterOverview:
    """What IG's register page shows: snapshots (newest first), the decision table,
    changes awaiting a decision (oldest first), decided changes and real extracts (newest
    first). Counts only; no pseudonym or NHS number is reachable from here."""

    snapshot: OptOutSnapshot | None
    snapshots: list[OptOutSnapshot]
    table: DecisionTable
    pending: list[OptOutChange]
    decided: list[OptOutChange]
    extracts: list[Extract]


def register_overview(*, by: User, recent: int = 20) -> RegisterOverview:
    """The register as IG sees it, ``recent`` rows of each history. Raises NotFound
    unless ``by`` is IG. Event: data.optout_register_viewed (a sensitive page)."""
    policy.check_manage_optouts(by)
    with transaction.atomic(durable=True):
        snapshots = list(
            OptOutSnapshot.objects.select_related("created_by").order_by("-number")[:recent]
        )
        changes = OptOutChange.objects.select_related("proposed_by", "decided_by")
        pending = list(changes.filter(status=Status.PROPOSED).order_by("proposed_at", "pk"))
        decided = changes.exclude(status=Status.PROPOSED).order_by("-decided_at", "-pk")
        extracts = Extract.objects.filter(is_dummy=False).select_related("optout_snapshot")
        overview = RegisterOverview(
            snapshot=snapshots[0] if snapshots else None,
            snapshots=snapshots,
            table=current_decision_table(),
            pending=pending,
            decided=list(decided[:recent]),
            extracts=list(extracts.order_by("-built_at", "-pk")[:recent]),
        )
        record_event(
            event_type=EventType.OPT_OUT_REGISTER_VIEWED,
            actor=by,
            target=overview.snapshot,
            data={
                "snapshot": overview.snapshot.number if overview.snapshot else None,
                "decision_table_version": overview.table.version,
                "pending_changes": len(pending),
            },
        )
    return overview
