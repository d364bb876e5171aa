"""The opt-out register: snapshots, imports, manual entries, and IG's overview.

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
import re
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
from sde.data.optout_changes import current_decision_table
from sde.data.optouts import (
    DecisionTable,
)
from sde.data.optouts import OptOutKind as TableKind
from sde.exceptions import SDEError, ValidationError
from sde.governance import governed_writes
from sde.identity.models import User
from sde.keys import keyring

COLUMNS: Final = ("kind", "person_id", "source")
SMALL_COUNT: Final = 10  # counts from 1 to SMALL_COUNT - 1 are shown as "fewer than 10"
_STR: Final = pd.StringDtype()
_NUMBER_LIKE: Final = re.compile(r"\d{3}[ -]?\d{3}[ -]?\d{4}")

Status = OptOutChange.Status


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
            source_label=_safe_label(label),
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
    SourceFormatError for a file that is not an NDOP list, and OptOutError for a list that
    is mostly not NHS numbers (the current list is kept: see ``check_ndop_list``).
    Event: data.optout_snapshot_imported (or data.optout_import_unchanged)."""
    _check_import(by)
    raw = validation.read_source_table(path, "ndop")
    result = validation.validate_table("ndop", raw, extract_date=timezone.localdate())
    check_ndop_list(received=result.received, valid=len(result.clean))
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


def check_ndop_list(*, received: int, valid: int) -> None:
    """Refuse a national list that would wrongly replace the current one: an import
    replaces the whole NDOP list, so a wrong file (names, another extract) would silently
    un-opt-out everyone. Fewer than half the lines valid means it is not an NDOP list."""
    if received and valid * 2 < received:
        raise OptOutError(
            f"only {valid} of {received} lines are valid NHS numbers: this does not look "
            "like a national data opt-out list, so the current list is kept"
        )


def _safe_label(label: str) -> str:
    """An import's label (often a file name) without anything shaped like an NHS number."""
    return _NUMBER_LIKE.sub("[number removed]", label)[:200]


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
