"""Ingesting a source drop: validate, quarantine, pseudonymise, vault, publish.

An ingest is atomic: every table is validated and written to a private staging folder
first; only when all of them are ready is the folder moved into place and the dataset
versions, vault records and audit events committed in one transaction. A failure or a
killed worker leaves no version (at most an unreferenced staging folder, swept on the
next run). An ingest is idempotent: a drop whose fingerprint already succeeded makes no
second version.

An ingest also updates the opt-out register in the same transaction: the Type 1 dissent
codes in its GP events replace the previous drop's, and an ``ndop.csv`` in the drop
replaces the national list (one new ``OptOutSnapshot``, if anything changed).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import secrets
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from sde import policy
from sde.audit.events import EventType
from sde.audit.services import record_event
from sde.data import catalogue, pseudonymisation, register, source_format, validation, vault
from sde.data.files import data_root, file_sha256
from sde.data.models import (
    Dataset,
    DatasetVersion,
    IdentityVaultRecord,
    Ingest,
    OptOutSource,
)
from sde.exceptions import InvalidTransition, NotFound, SDEError
from sde.governance import governed_writes
from sde.identity.models import User
from sde.keys import keyring

logger = logging.getLogger(__name__)
S = Ingest.Status
# The ingest state machine: status -> statuses it may move to. A RUNNING ingest may be
# restarted (a redelivered task after its worker died); finished ones never change.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.RUNNING, S.FAILED}),
    S.RUNNING: frozenset({S.RUNNING, S.SUCCEEDED, S.FAILED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
}
TRANSITION_EVENTS: dict[str, EventType] = {
    S.RUNNING: EventType.INGEST_STARTED,
    S.FAILED: EventType.INGEST_FAILED,
}
# Who moves an ingest into each status: the custodian requests, the worker does the rest.
STATUS_OWNERS: dict[str, str] = {
    S.QUEUED: "data custodian",
    S.RUNNING: "system (worker)",
    S.SUCCEEDED: "system (worker)",
    S.FAILED: "system (worker)",
}


NDOP_TABLE = "ndop"
TYPE1_SOURCE_TABLE = "gp_events"  # Type 1 dissent is coded in the GP record


class IngestError(SDEError):
    """The drop cannot be ingested (the message is safe to show: no row contents)."""


def drop_fingerprint(drop_dir: Path) -> str:
    """SHA-256 over the sorted (file name, file SHA-256) of the drop's CSV files."""
    files = sorted(drop_dir.glob("*.csv"))
    if not files:
        raise IngestError(f"no CSV files found in {drop_dir.name}")
    outer = hashlib.sha256()
    for path in files:
        outer.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return outer.hexdigest()


def request_ingest(*, drop_dir: Path, by: User, label: str = "", enqueue: bool = True) -> Ingest:
    """Queue an ingest of ``drop_dir``; with ``enqueue`` the worker runs it after commit
    (the ``ingest`` command runs it in-process instead).

    Idempotent: a drop that was already ingested successfully returns that ingest and
    records ``data.ingest_reused``. Raises PermissionDenied (not a custodian) and
    IngestError (not a readable drop). Event: data.ingest_requested.
    """
    policy.check_manage_datasets(by)
    drop_dir = drop_dir.resolve()
    if not drop_dir.is_dir():
        raise IngestError(f"{drop_dir} is not a folder")
    fingerprint = drop_fingerprint(drop_dir)
    with transaction.atomic(durable=True), governed_writes(Ingest):
        done = Ingest.objects.filter(fingerprint=fingerprint, status=S.SUCCEEDED).first()
        if done is not None:
            record_event(event_type=EventType.INGEST_REUSED, actor=by, target=done)
            return done
        ingest = Ingest(
            fingerprint=fingerprint,
            source_label=(label or drop_dir.name)[:200],
            drop_path=str(drop_dir),
            requested_by=by,
        )
        ingest.save()
        record_event(
            event_type=EventType.INGEST_REQUESTED,
            actor=by,
            target=ingest,
            data={"fingerprint": fingerprint},
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue(ingest.pk), robust=True)
    return ingest


def open_quarantine_report(*, ingest: Ingest, by: User, via: str = "page") -> BinaryIO:
    """The quarantine report of ``ingest`` (row numbers and reasons, no row contents),
    opened for reading. Raises PermissionDenied unless ``by`` manages datasets, NotFound
    when the ingest quarantined nothing or the report is gone.
    Event: data.quarantine_report_downloaded."""
    policy.check_manage_datasets(by)
    path = data_root() / ingest.quarantine_path if ingest.quarantine_path else None
    if path is None or not path.is_file():
        raise NotFound("no quarantine report")
    with transaction.atomic(durable=True):
        record_event(
            event_type=EventType.QUARANTINE_REPORT_DOWNLOADED,
            actor=by,
            target=ingest,
            data={"rows": ingest.quarantined_rows, **({"via": via} if via != "page" else {})},
        )
    return path.open("rb")


def _enqueue(ingest_id: int) -> None:
    from sde.tasks import ingest_drop_task  # tasks import services

    ingest_drop_task.delay(ingest_id)


def _transition(ingest: Ingest, to: str, *, by: User, **fields: Any) -> Ingest:
    """The one place an ingest's status changes: re-read under lock, check the table,
    set status and fields, write the event."""
    with transaction.atomic(), governed_writes(Ingest):
        locked = Ingest.objects.select_for_update().get(pk=ingest.pk)
        if to not in TRANSITIONS[locked.status]:
            raise InvalidTransition(f"ingest {locked.pk} is {locked.status}; cannot become {to}")
        locked.status = to
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save()
        event = TRANSITION_EVENTS.get(to)
        if event is not None:
            data = {"stage": locked.stage} if to == S.FAILED else {}
            if to == S.FAILED:
                data["error_class"] = locked.error_class
            record_event(event_type=event, actor=by, target=locked, data=data)
    return locked


def _report_progress(ingest: Ingest, stage: str, progress: int) -> None:
    """Progress for the custodian's page (not audited: it is not a state change)."""
    with transaction.atomic(), governed_writes(Ingest):
        Ingest.objects.filter(pk=ingest.pk).update(stage=stage[:100], progress=progress)


def mark_ingest_failed(*, ingest: Ingest, error: BaseException, by: User) -> Ingest:
    """Record a terminal failure (class and a safe message). Raises PermissionDenied unless
    ``by`` manages datasets. Event: data.ingest_failed."""
    policy.check_manage_datasets(by)
    message = str(error) if isinstance(error, SDEError) else "internal error (see worker log)"
    return _transition(
        ingest,
        S.FAILED,
        by=by,
        finished_at=timezone.now(),
        error_class=type(error).__name__[:100],
        error_message=message[:500],
    )


def run_ingest(
    *, ingest: Ingest, by: User, on_progress: Callable[[str, int], None] | None = None
) -> Ingest:
    """Validate, pseudonymise and publish the drop. Idempotent for a finished ingest.

    Raises PermissionDenied unless ``by`` manages datasets (the worker runs as the system
    user); on any later error the ingest is marked failed (audited), nothing is published,
    and the error is re-raised.
    Events: data.ingest_started, then per dataset data.version_ingested and
    data.key_version_used; or data.ingest_failed.
    """
    policy.check_manage_datasets(by)
    ingest = Ingest.objects.get(pk=ingest.pk)
    if ingest.status in (S.SUCCEEDED, S.FAILED):
        return ingest
    ingest = _transition(
        ingest, S.RUNNING, by=by, started_at=timezone.now(), progress=0, stage="starting"
    )
    _sweep_staging(restarting=ingest.pk)
    staging = data_root() / "staging" / f"ingest-{ingest.pk}-{secrets.token_hex(4)}"
    try:
        staging.mkdir(parents=True)

        def progress(stage: str, percent: int) -> None:
            _report_progress(ingest, stage, percent)
            if on_progress is not None:
                on_progress(stage, percent)

        prepared = _prepare(ingest, Path(ingest.drop_path), staging, progress)
        progress("publishing", 95)
        return _publish(ingest, staging, prepared, by=by)
    except Exception as error:
        shutil.rmtree(staging, ignore_errors=True)
        logger.warning("ingest %s failed: %s", ingest.pk, type(error).__name__)
        mark_ingest_failed(ingest=ingest, error=error, by=by)
        raise


def _sweep_staging(*, restarting: int) -> None:
    """Remove staging folders of ingests that are no longer running (killed workers), and
    those of ``restarting``'s earlier attempts: it is starting again because that worker
    died."""
    root = data_root() / "staging"
    if not root.exists():
        return
    running = set(Ingest.objects.filter(status=S.RUNNING).values_list("pk", flat=True))
    for folder in root.iterdir():
        try:
            ingest_id = int(folder.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if ingest_id not in running or ingest_id == restarting:
            shutil.rmtree(folder, ignore_errors=True)


def _read_manifest(drop_dir: Path) -> dict[str, Any]:
    path = drop_dir / "manifest.json"
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IngestError("manifest.json is not valid JSON") from None
    return manifest if isinstance(manifest, dict) else {}


def _extract_date(manifest: dict[str, Any]) -> date:
    value = manifest.get("extract_date") or (manifest.get("date_range") or {}).get("end")
    try:
        return date.fromisoformat(value) if value else timezone.localdate()
    except (TypeError, ValueError):
        raise IngestError("manifest.json has an invalid extract date") from None


class _Prepared:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}
        self.vault_records: pd.DataFrame | None = None
        self.key_version = 0
        self.received = 0
        self.quarantined = 0
        self.quarantine_rows: list[pd.DataFrame] = []
        # Opt-out register sources this drop replaces (source -> entries).
        self.optouts: dict[str, pd.DataFrame] = {}
        self.ndop_hash = ""
        self.ndop_invalid = 0


def _prepare(
    ingest: Ingest, drop_dir: Path, staging: Path, progress: Callable[[str, int], None]
) -> _Prepared:
    manifest = _read_manifest(drop_dir)
    extract_date = _extract_date(manifest)
    datasets = {d.source_table: d for d in Dataset.objects.all()}
    present = [t for t in source_format.TABLES if (drop_dir / f"{t}.csv").exists()]
    if "patients" not in present:
        raise IngestError("the drop has no patients.csv")
    unregistered = [t for t in present if t not in datasets and t != NDOP_TABLE]
    if unregistered:
        raise IngestError(
            "no catalogue dataset for "
            + ", ".join(unregistered)
            + " (a custodian registers datasets first)"
        )
    key_version, system_key = keyring("system").current()
    prepared = _Prepared()
    prepared.key_version = key_version
    results: dict[str, validation.TableResult] = {}
    people: pd.DataFrame | None = None
    for index, table in enumerate(present):
        progress(f"validating {table}", 5 + int(70 * index / len(present)))
        raw = validation.read_source_table(drop_dir / f"{table}.csv", table)
        result = validation.validate_table(table, raw, extract_date=extract_date, people=people)
        results[table] = result
        if table == "patients":
            people = result.clean
        prepared.received += result.received
        prepared.quarantined += len(result.quarantine)
        if len(result.quarantine):
            prepared.quarantine_rows.append(result.quarantine.assign(table=table))
        if table == NDOP_TABLE:
            # The national opt-out list is not a dataset: it becomes the register's NDOP rows.
            try:
                register.check_ndop_list(received=result.received, valid=len(result.clean))
            except register.OptOutError as error:
                raise IngestError(f"ndop.csv: {error}") from None
            ids = pseudonymisation.system_pseudonyms(result.clean["nhs_number"], system_key)
            prepared.optouts[OptOutSource.NDOP_FILE] = register.ndop_component(ids)
            prepared.ndop_hash = file_sha256(drop_dir / f"{table}.csv")
            prepared.ndop_invalid = len(result.quarantine)
            continue
        frame = pseudonymisation.pseudonymise_frame(result.clean, system_key)
        if table == TYPE1_SOURCE_TABLE:
            prepared.optouts[OptOutSource.GP_EVENTS] = register.type1_component(
                frame, source_format.TYPE1_DISSENT
            )
        path = staging / f"{table}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, compression="zstd")
        prepared.tables[table] = {
            "dataset": datasets[table],
            "file": path.name,
            "checksum": file_sha256(path),
            "rows": len(frame),
            "people": int(frame["person_id"].nunique()),
            "quarantined": len(result.quarantine),
            "quality": _published_quality(validation.quality_report(result, raw)),
        }
    discrepancies = validation.reconcile(manifest, results) if manifest else []
    if discrepancies:
        raise IngestError("the drop does not match its manifest: " + "; ".join(discrepancies))
    progress("encrypting identities", 80)
    assert people is not None
    prepared.vault_records = _new_vault_records(people, system_key)
    if prepared.quarantine_rows:
        report = pd.concat(prepared.quarantine_rows, ignore_index=True)
        report[["table", "row", "reason", "column"]].to_csv(staging / "quarantine.csv", index=False)
    return prepared


def _new_vault_records(people: pd.DataFrame, system_key: bytes) -> pd.DataFrame:
    """Encrypted NHS numbers for people the vault does not hold yet (keyed by SP)."""
    vault_version, vault_key = keyring("vault").current()
    unique = people["nhs_number"].drop_duplicates().reset_index(drop=True)
    sps = pseudonymisation.system_pseudonyms(unique, system_key)
    known = set(IdentityVaultRecord.objects.values_list("system_pseudonym", flat=True))
    new = (~sps.isin(known)).to_numpy()
    return vault.encrypt_identities(
        sps[new].reset_index(drop=True),
        unique[new].reset_index(drop=True),
        key=vault_key,
        key_version=vault_version,
    )


def _published_quality(quality: dict[str, Any]) -> dict[str, Any]:
    """The quality report under the published column names the catalogue shows."""
    renamed = dict(quality)
    for key in ("completeness", "source_completeness", "quarantined_by_column"):
        if isinstance(quality.get(key), dict):
            renamed[key] = {catalogue.published_name(k): v for k, v in quality[key].items()}
    return renamed


VAULT_COLUMNS = ("system_pseudonym", "ciphertext", "key_version", "created_at")


def _insert_vault_records(records: pd.DataFrame) -> None:
    """Insert new vault rows in the publishing transaction (its ``governed_writes``).

    A million ORM objects took half of a national-scale ingest, so the rows go straight to
    the driver: COPY on PostgreSQL, one prepared ``executemany`` on SQLite.
    """
    now = timezone.now()
    rows = zip(
        records["system_pseudonym"].tolist(),
        records["ciphertext"].tolist(),
        records["key_version"].astype(int).tolist(),
        itertools.repeat(now),
        strict=False,
    )
    quote = connection.ops.quote_name  # constant names, quoted: nothing here is input
    table = quote(IdentityVaultRecord._meta.db_table)
    columns = ", ".join(quote(c) for c in VAULT_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            values = ", ".join(["%s"] * len(VAULT_COLUMNS))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({values})", list(rows))  # noqa: S608


def _publish(ingest: Ingest, staging: Path, prepared: _Prepared, *, by: User) -> Ingest:
    published = data_root() / "versions" / f"ingest-{ingest.pk}"
    published.parent.mkdir(parents=True, exist_ok=True)
    if published.exists():  # a previous attempt died between rename and commit
        shutil.rmtree(published)
    staging.rename(published)
    try:
        with transaction.atomic(durable=True), governed_writes(DatasetVersion, IdentityVaultRecord):
            for info in prepared.tables.values():
                dataset: Dataset = info["dataset"]
                latest = dataset.versions.aggregate(last=Max("version"))["last"] or 0
                version = DatasetVersion(
                    dataset=dataset,
                    version=latest + 1,
                    ingest=ingest,
                    path=str((published / info["file"]).relative_to(data_root())),
                    checksum=info["checksum"],
                    row_count=info["rows"],
                    person_count=info["people"],
                    quarantined_count=info["quarantined"],
                    key_version=prepared.key_version,
                    quality=info["quality"],
                )
                version.save()
                record_event(
                    event_type=EventType.DATASET_VERSION_INGESTED,
                    actor=by,
                    target=version,
                    data={
                        "dataset": dataset.slug,
                        "version": version.version,
                        "rows": info["rows"],
                        "quarantined": info["quarantined"],
                    },
                )
            records = prepared.vault_records
            if records is not None and len(records):
                _insert_vault_records(records)
            if prepared.optouts:
                register.record_ingest_optouts(
                    ingest=ingest,
                    components=prepared.optouts,
                    key_version=prepared.key_version,
                    by=by,
                    ndop_hash=prepared.ndop_hash,
                    ndop_invalid=prepared.ndop_invalid,
                )
            record_event(
                event_type=EventType.KEY_VERSION_USED,
                actor=by,
                target=ingest,
                data={"keyring": "system", "version": prepared.key_version},
            )
            quarantine = published / "quarantine.csv"
            return _transition(
                ingest,
                S.SUCCEEDED,
                by=by,
                finished_at=timezone.now(),
                progress=100,
                stage="done",
                received_rows=prepared.received,
                ingested_rows=prepared.received - prepared.quarantined,
                quarantined_rows=prepared.quarantined,
                key_version=prepared.key_version,
                quarantine_path=str(quarantine.relative_to(data_root()))
                if quarantine.exists()
                else "",
            )
    except Exception:
        shutil.rmtree(published, ignore_errors=True)
        raise
