"""Project extracts: the only data a project's analyses ever read.

``build_extract`` turns a data scope (datasets and fields, a date range, cohort filters,
purpose, legal basis, project) into one Parquet file per dataset under
``<data root>/extracts/project-<id>/``:

1. the latest version of each dataset in scope (all under one system key version);
2. rows outside the date range (each table's main date) or the cohort dropped;
3. opt-outs applied as the current decision table says for the purpose, basis and the
   project's approved exemption, from the current register snapshot;
4. only the fields in scope kept, with ``person_id`` replaced by the project pseudonym
   (``HMAC(HKDF(K_master, project:<id>:v<n>), SP)``).

The ``Extract`` row records the dataset versions, the opt-out snapshot, the decision table
version, the treatment and the number of people removed (IG sees it; researchers never
do). ``extract_for_use`` rebuilds an extract before use when anything it was built from
has a newer version. ``build_dummy_extract`` makes an extract of the identical schema from
the synthetic generator, through the same validation, pseudonymisation and scoping.

Filtering and projection run in Arrow, one dataset at a time; HMAC runs once per person.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.db import transaction
from django.utils import timezone

from sde import policy
from sde.audit.events import EventType
from sde.audit.services import record_event
from sde.data import (
    optout_changes,
    optouts,
    pseudonymisation,
    register,
    source_format,
    synth,
    validation,
)
from sde.data.files import data_root, file_sha256, intact
from sde.data.models import Dataset, DatasetVersion, Extract, OptOutSnapshot, OptOutSource
from sde.exceptions import NotFound, SDEError, ValidationError
from sde.governance import governed_writes
from sde.identity.models import User
from sde.keys import keyring

logger = logging.getLogger(__name__)
PEOPLE: Final = source_format.PEOPLE_TABLE
DUMMY_PATIENTS: Final = 2_000
# GP record codes that say someone objected: removed from every extract.
OPT_OUT_CODED_TABLE: Final = "gp_events"
OPT_OUT_CODES: Final = frozenset({source_format.TYPE1_DISSENT})


class ExtractError(SDEError):
    """The extract cannot be built as asked (the message is safe to show)."""


@dataclass(frozen=True)
class CohortFilters:
    """Who is in the extract, from the patients table (and GP events for codes). Empty
    means no restriction. Ages are whole years at the scope's end date (or today)."""

    age_min: int | None = None
    age_max: int | None = None
    sexes: tuple[str, ...] = ()
    practices: tuple[str, ...] = ()
    places: tuple[str, ...] = ()
    imd_deciles: tuple[int, ...] = ()
    snomed_codes: tuple[str, ...] = ()  # people with any of these in GP events (in range)
    registered_only: bool = False  # people currently registered (no registration end)

    def is_empty(self) -> bool:
        return self == CohortFilters()


@dataclass(frozen=True)
class ExtractScope:
    project_id: int
    datasets: Mapping[str, tuple[str, ...]]  # dataset slug -> published field names
    purpose: str
    legal_basis: str
    date_from: date | None = None
    date_to: date | None = None
    cohort: CohortFilters = field(default_factory=CohortFilters)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["datasets"] = {slug: list(fields) for slug, fields in self.datasets.items()}
        for key in ("date_from", "date_to"):
            data[key] = data[key].isoformat() if data[key] else None
        data["cohort"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in data["cohort"].items()
        }
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExtractScope:
        """Read a scope, reporting every problem at once (ValidationError)."""
        errors: dict[str, list[str]] = {}
        try:
            cohort_data = dict(data.get("cohort") or {})
            unknown = set(cohort_data) - set(CohortFilters.__dataclass_fields__)
            if unknown:
                errors["cohort"] = [f"unknown filter {name!r}" for name in sorted(unknown)]
            cohort = CohortFilters(
                **{  # type: ignore[arg-type]
                    k: tuple(v) if isinstance(v, list) else v
                    for k, v in cohort_data.items()
                    if k not in unknown
                }
            )
            dates = {}
            for key in ("date_from", "date_to"):
                value = data.get(key)
                try:
                    dates[key] = date.fromisoformat(value) if value else None
                except (TypeError, ValueError):
                    errors[key] = ["Give a date as YYYY-MM-DD."]
                    dates[key] = None
            datasets = data.get("datasets") or {}
            if not isinstance(datasets, Mapping):
                errors["datasets"] = ["Map each dataset to its fields."]
                datasets = {}
            scope = cls(
                project_id=data.get("project_id"),  # type: ignore[arg-type]
                datasets={str(s): tuple(f) for s, f in datasets.items()},
                purpose=str(data.get("purpose") or ""),
                legal_basis=str(data.get("legal_basis") or ""),
                cohort=cohort,
                **dates,
            )
        except (TypeError, AttributeError):
            raise ValidationError(
                "the data scope is not valid", {"scope": ["Not a data scope."], **errors}
            ) from None
        if errors:
            raise ValidationError("the data scope is not valid", errors)
        return scope


def validate_scope(scope: ExtractScope) -> dict[str, Dataset]:
    """Check the scope against the catalogue; return its datasets by slug. Raises
    ValidationError listing every problem (unknown dataset or field, bad dates or ages)."""
    errors: dict[str, list[str]] = {}
    if isinstance(scope.project_id, bool) or not isinstance(scope.project_id, int):
        errors["project_id"] = ["Give the project's number."]
    elif scope.project_id < 1:
        errors["project_id"] = ["Give the project's number."]
    if scope.purpose not in [p.value for p in optouts.Purpose]:
        errors["purpose"] = [f"Choose one of {', '.join([p.value for p in optouts.Purpose])}."]
    if not scope.datasets:
        errors["datasets"] = ["Choose at least one dataset."]
    datasets = {d.slug: d for d in Dataset.objects.filter(slug__in=list(scope.datasets))}
    for slug, fields in scope.datasets.items():
        dataset = datasets.get(slug)
        if dataset is None:
            errors.setdefault("datasets", []).append(f"No dataset {slug!r} in the catalogue.")
            continue
        known = set(dataset.fields.values_list("name", flat=True))
        if not fields:
            errors.setdefault("datasets", []).append(f"Choose at least one field of {slug}.")
        if unknown := [f for f in fields if f not in known]:
            errors.setdefault("datasets", []).append(
                f"{slug} has no field {', '.join(repr(f) for f in unknown)}."
            )
        if len(set(fields)) != len(fields):
            errors.setdefault("datasets", []).append(f"A field of {slug} is chosen twice.")
    if scope.date_from and scope.date_to and scope.date_from > scope.date_to:
        errors["date_to"] = ["The end date is before the start date."]
    c = scope.cohort
    ages = [a for a in (c.age_min, c.age_max) if a is not None]
    if any(isinstance(a, bool) or not isinstance(a, int) or not 0 <= a <= 130 for a in ages):
        errors["cohort"] = ["Ages are whole years from 0 to 130."]
    elif c.age_min is not None and c.age_max is not None and c.age_min > c.age_max:
        errors["cohort"] = ["The minimum age is above the maximum."]
    if OPT_OUT_CODES & set(c.snomed_codes):
        errors.setdefault("cohort", []).append("Opt-out codes cannot select a cohort.")
    if any(isinstance(d, bool) or d not in range(1, 11) for d in c.imd_deciles):
        errors.setdefault("cohort", []).append("IMD deciles run from 1 to 10.")
    if errors:
        raise ValidationError("the data scope is not valid", errors)
    return datasets


# --- Building ---------------------------------------------------------------------------
Loader = Callable[[str, list[str]], pa.Table]  # (source table, columns) -> table


def _date_range(table: pa.Table, source_table: str, scope: ExtractScope) -> pa.Table:
    column = source_format.MAIN_DATE.get(source_table)
    if source_table == PEOPLE or column is None:
        return table
    keep = pa.scalar(True)
    dates = table[column]
    if scope.date_from:
        keep = pc.and_(keep, pc.greater_equal(dates, pa.scalar(_ts(scope.date_from), dates.type)))
    if scope.date_to:
        keep = pc.and_(keep, pc.less_equal(dates, pa.scalar(_ts(scope.date_to), dates.type)))
    if scope.date_from or scope.date_to:
        return table.filter(pc.fill_null(keep, False))
    return table


def _ts(day: date) -> pd.Timestamp:
    return pd.Timestamp(day)


def _cohort(load: Loader, scope: ExtractScope) -> pa.Array | None:
    """System pseudonyms of the cohort (None: everyone)."""
    c = scope.cohort
    if c.is_empty():
        return None
    people = load(PEOPLE, ["person_id", "birth_month", "sex", "practice_ods", "place",
                           "imd_decile", "registration_end"])  # fmt: skip
    keep = np.ones(people.num_rows, dtype=bool)
    for column, values in (("sex", c.sexes), ("practice_ods", c.practices),
                           ("place", c.places), ("imd_decile", c.imd_deciles)):  # fmt: skip
        if values:
            value_set = pa.array(list(values), type=people[column].type)
            keep &= _np(pc.is_in(people[column], value_set=value_set))
    if c.age_min is not None or c.age_max is not None:
        ref = scope.date_to or timezone.localdate()
        born = pd.DatetimeIndex(people["birth_month"].to_pandas())
        age = ref.year - born.year - (ref.month < born.month)
        age = np.asarray(age.fillna(-1) if hasattr(age, "fillna") else age, dtype=float)
        if c.age_min is not None:
            keep &= age >= c.age_min
        if c.age_max is not None:
            keep &= (age <= c.age_max) & (age >= 0)
    if c.registered_only:
        keep &= _np(pc.is_null(people["registration_end"]))
    ids = people["person_id"].filter(pa.array(keep))
    if c.snomed_codes:
        events = _date_range(load("gp_events", ["person_id", "date", "snomed_code"]),
                             "gp_events", scope)  # fmt: skip
        coded = pc.is_in(events["snomed_code"], value_set=pa.array(list(c.snomed_codes)))
        with_code = pc.unique(events["person_id"].filter(pc.fill_null(coded, False)))
        ids = ids.filter(pc.is_in(ids, value_set=with_code))
    return pc.unique(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)


def _np(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


@dataclass
class _Built:
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    removals: list[tuple[pd.Series, pd.Series]] = field(default_factory=list)
    rows_removed: int = 0
    person_count: int = 0


def _write_tables(
    *,
    load: Loader,
    scope: ExtractScope,
    datasets: Mapping[str, Dataset],
    ids: Mapping[optouts.OptOutKind, pd.Series],
    treatment: optouts.Treatment,
    project_key: bytes,
    out: Path,
) -> _Built:
    """Scope, filter, project and pseudonymise each dataset into ``out``."""
    built = _Built()
    pseudonyms = _ProjectPseudonyms(project_key)
    cohort = _cohort(load, scope)
    kept_people: list[pa.Array] = []
    for slug, fields in scope.datasets.items():
        dataset = datasets[slug]
        source_table = dataset.source_table
        date_column = source_format.MAIN_DATE.get(source_table)
        extra = [date_column] if date_column else []
        if source_table == OPT_OUT_CODED_TABLE:
            extra.append("snomed_code")
        needed = list(dict.fromkeys(["person_id", *fields, *extra]))
        table = _date_range(load(source_table, needed), source_table, scope)
        if source_table == OPT_OUT_CODED_TABLE:
            # Opt-out codes are never provisioned, whatever the treatment: a researcher
            # must not learn who objected (optouts.md rule 4).
            coded = pc.is_in(table["snomed_code"], value_set=pa.array(sorted(OPT_OUT_CODES)))
            table = table.filter(pc.invert(pc.fill_null(coded, False)))
        if cohort is not None:
            table = table.filter(pc.is_in(table["person_id"], value_set=cohort))
        person_ids = table["person_id"].to_pandas(types_mapper=pd.ArrowDtype)
        remove = optouts.people_to_remove(
            person_ids=person_ids,
            ndop=ids[optouts.OptOutKind.NDOP],
            type1=ids[optouts.OptOutKind.TYPE1],
            treatment=treatment,
            # A cohort is chosen from GP data, so with one every dataset is GP-derived: a
            # Type 1 objector's GP data must not choose them for hospital data either.
            gp_sourced=dataset.gp_sourced or cohort is not None,
        )
        built.removals.append((person_ids, remove))
        built.rows_removed += int(remove.sum())
        table = table.filter(pa.array(~remove.to_numpy(dtype=bool)))
        kept_people.append(pc.unique(table["person_id"]))
        table = table.select(list(fields))
        if "person_id" in fields:
            table = pseudonyms.replace(table)
        path = out / f"{slug}.parquet"
        pq.write_table(table, path, compression="zstd")
        built.tables[path.name] = {
            "dataset": slug,
            "rows": table.num_rows,
            "sha256": file_sha256(path),
            "fields": list(fields),
        }
    if kept_people:
        built.person_count = len(pc.unique(pa.chunked_array(kept_people).combine_chunks()))
    return built


class _ProjectPseudonyms:
    """SP -> PP for one build: each person is hashed once, however many datasets they are
    in (HMAC is most of a build's time)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.known = pa.array([], type=pa.string())
        self.pseudonyms = pa.array([], type=pa.string())

    def replace(self, table: pa.Table) -> pa.Table:
        """``table`` with ``person_id`` replaced by the project pseudonym."""
        column = table["person_id"].cast(pa.string())
        unique = pc.unique(column)
        if isinstance(unique, pa.ChunkedArray):
            unique = unique.combine_chunks()
        new = unique.filter(pc.invert(pc.is_in(unique, value_set=self.known)))
        if len(new):
            mapped = pseudonymisation.project_pseudonyms(
                pd.Series(new.to_pylist(), dtype="string"), self.key
            )
            self.known = pa.concat_arrays([self.known, new])
            self.pseudonyms = pa.concat_arrays(
                [self.pseudonyms, pa.array(mapped.to_numpy(dtype=object), type=pa.string())]
            )
        index = pc.index_in(column, value_set=self.known)
        position = table.schema.get_field_index("person_id")
        return table.set_column(position, "person_id", pc.take(self.pseudonyms, index))


def _version_loader(versions: Mapping[str, DatasetVersion]) -> Loader:
    """Reads each dataset version's file, once it is shown to be the file ingestion wrote
    (its SHA-256): a data layer file changed on disk never reaches an extract."""
    verified: set[str] = set()

    def load(source_table: str, columns: list[str]) -> pa.Table:
        version = versions.get(source_table)
        if version is None:
            raise ExtractError(f"no ingested version of {source_table} (needed for the cohort)")
        path = data_root() / version.path
        if version.path not in verified:
            if not intact(path, version.checksum):
                raise ExtractError(
                    f"{version} is missing or changed since it was ingested: the extract is "
                    "not built (the data custodian restores or re-ingests it)"
                )
            verified.add(version.path)
        return pq.read_table(path, columns=columns)

    return load


def _latest_versions(tables: set[str]) -> dict[str, DatasetVersion]:
    versions: dict[str, DatasetVersion] = {}
    for table in sorted(tables):
        version = (
            DatasetVersion.objects.filter(dataset__source_table=table)
            .select_related("dataset")
            .order_by("-version")
            .first()
        )
        if version is None:
            raise ExtractError(f"{table} has no ingested version yet")
        versions[table] = version
    return versions


def _needs_register(treatment: optouts.Treatment, datasets: Mapping[str, Dataset]) -> set[str]:
    """The register sources the treatment needs imported under the current key."""
    needed: set[str] = set()
    if treatment.ndop_applied:
        needed.add(OptOutSource.NDOP_FILE)
    if treatment.type1_applied and any(d.gp_sourced for d in datasets.values()):
        needed.add(OptOutSource.GP_EVENTS)
    return needed


def _check_register(snapshot: OptOutSnapshot | None, needed: set[str], key_version: int) -> None:
    """Fail closed: an opt-out that applies must come from a current register."""
    if not needed:
        return
    if snapshot is None:
        raise ExtractError("opt-outs apply, but the opt-out register is empty: import it first")
    if snapshot.key_version != key_version:
        raise ExtractError(
            f"the opt-out register uses system key version {snapshot.key_version} and the "
            f"data version {key_version}: re-import the register under the current key"
        )
    missing = sorted(needed - set(snapshot.imported_sources))
    if missing:
        labels = ", ".join(OptOutSource(m).label for m in missing)
        raise ExtractError(f"opt-outs apply, but nothing is imported yet from: {labels}")
    if snapshot.stale_manual_count:
        raise ExtractError("manual opt-outs from before a key rotation must be entered again")


def build_extract(*, scope: ExtractScope, by: User, reason: str = "") -> Extract:
    """Build the project's extract (see the module docstring). Raises PermissionDenied
    unless ``by`` provisions data (custodian or system), ValidationError for a bad scope,
    ExtractError when it cannot be built safely (no data, register not imported, mixed
    key versions). Event: data.extract_built."""
    policy.check_build_extract(by)
    datasets = validate_scope(scope)
    tables = {d.source_table for d in datasets.values()}
    if not scope.cohort.is_empty():
        tables.add(PEOPLE)
        if scope.cohort.snomed_codes:
            tables.add("gp_events")
    versions = _latest_versions(tables)
    key_versions = {v.key_version for v in versions.values()}
    if len(key_versions) != 1:
        raise ExtractError("the datasets in scope were ingested under different system keys")
    (system_version,) = key_versions
    table = optout_changes.current_decision_table()
    exemption = optout_changes.exemption_for(scope.project_id)
    treatment = optouts.treatment_for(
        table,
        purpose=scope.purpose,
        basis=scope.legal_basis,
        **optout_changes.exemption_flags(exemption),
    )
    snapshot = register.current_snapshot()
    _check_register(snapshot, _needs_register(treatment, datasets), system_version)
    master_version, master = keyring("master").current()
    project_key = pseudonymisation.project_key(master, scope.project_id, master_version)
    staging = data_root() / "staging" / f"extract-{scope.project_id}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    try:
        built = _write_tables(
            load=_version_loader(versions),
            scope=scope,
            datasets=datasets,
            ids=register.optout_ids(snapshot),
            treatment=treatment,
            project_key=project_key,
            out=staging,
        )
        return _publish(
            staging,
            built,
            by=by,
            scope=scope,
            is_dummy=False,
            reason=reason,
            # Every version read, including those only used to choose the cohort.
            dataset_versions={
                v.dataset.slug: {"id": v.pk, "version": v.version} for v in versions.values()
            },
            optout_snapshot=snapshot,
            decision_table_version=table.version,
            exemption=exemption,
            treatment=treatment,
            master_key_version=master_version,
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish(
    staging: Path,
    built: _Built,
    *,
    by: User,
    scope: ExtractScope,
    is_dummy: bool,
    reason: str,
    treatment: optouts.Treatment | None,
    **fields: Any,
) -> Extract:
    kind = "dummy" if is_dummy else "extract"
    folder = (
        data_root() / "extracts" / f"project-{scope.project_id}" / f"{kind}-{secrets.token_hex(6)}"
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(folder)
    people_removed = optouts.removed_people_count(built.removals) if built.removals else 0
    try:
        with transaction.atomic(durable=True), governed_writes(Extract):
            extract = Extract(
                project_id=scope.project_id,
                is_dummy=is_dummy,
                scope=scope.to_json(),
                path=str(folder.relative_to(data_root())),
                built_by=by,
                rebuild_reason=reason[:300],
                treatment=asdict(treatment) if treatment else {},
                people_removed=0 if is_dummy else people_removed,
                rows_removed=0 if is_dummy else built.rows_removed,
                person_count=built.person_count,
                tables=built.tables,
                **fields,
            )
            extract.save()
            snapshot = fields.get("optout_snapshot")
            record_event(
                event_type=EventType.EXTRACT_BUILT,
                actor=by,
                target=extract,
                project_id=scope.project_id,  # so the audit log's project search finds it
                data={
                    "project_id": scope.project_id,
                    "dummy": is_dummy,
                    "dataset_versions": {
                        slug: v["version"] for slug, v in fields.get("dataset_versions", {}).items()
                    },
                    "optout_snapshot": snapshot.number if snapshot else None,
                    "decision_table_version": fields.get("decision_table_version"),
                    "ndop_applied": bool(treatment and treatment.ndop_applied),
                    "type1_applied": bool(treatment and treatment.type1_applied),
                    "people_removed": extract.people_removed,
                    "rows": {t["dataset"]: t["rows"] for t in built.tables.values()},
                    "reason": reason[:300],
                },
            )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the project's first extract: leave no empty folder
        raise
    return extract


# --- Using extracts ---------------------------------------------------------------------
def current_extract(project_id: int, *, dummy: bool = False) -> Extract | None:
    return (
        Extract.objects.filter(project_id=project_id, is_dummy=dummy, deleted_at__isnull=True)
        .order_by("-built_at", "-pk")
        .first()
    )


def staleness(extract: Extract) -> list[str]:
    """Why the extract no longer reflects the environment (empty: it is current): a newer
    dataset version, opt-out snapshot, decision table or project exemption. A dummy
    extract is synthetic and never stale: its schema comes from the scope."""
    if extract.is_dummy:
        return []
    reasons = []
    for slug, recorded in extract.dataset_versions.items():
        latest = DatasetVersion.objects.filter(dataset__slug=slug).order_by("-version").first()
        if latest is not None and latest.pk != recorded["id"]:
            reasons.append(f"{slug} has a newer version (v{latest.version})")
    treatment = extract.treatment
    if treatment.get("ndop_applied") or treatment.get("type1_applied"):
        snapshot = register.current_snapshot()
        if snapshot is not None and snapshot.pk != extract.optout_snapshot_id:
            reasons.append(f"the opt-out register has a newer snapshot ({snapshot.number})")
    table = optout_changes.current_decision_table()
    if table.version != extract.decision_table_version:
        reasons.append(f"the opt-out decision table is now version {table.version}")
    exemption = optout_changes.exemption_for(extract.project_id)
    if (exemption.pk if exemption else None) != extract.exemption_id:
        reasons.append("the project's opt-out exemption changed")
    return reasons


def extract_for_use(*, project_id: int, by: User) -> Extract:
    """The project's current real extract, rebuilt first if it is stale, so that an
    opt-out registered since it was built takes effect before the next real-data use.
    The superseded extract is deleted. Raises NotFound if the project has no extract.
    Events: data.extract_built and data.extract_deleted when it is rebuilt."""
    policy.check_build_extract(by)
    extract = current_extract(project_id)
    if extract is None:
        raise NotFound("the project has no extract")
    reasons = staleness(extract)
    if not reasons:
        return extract
    scope = ExtractScope.from_json(extract.scope)
    rebuilt = build_extract(scope=scope, by=by, reason="rebuilt: " + "; ".join(reasons))
    delete_extract(extract=extract, by=by, reason="superseded by a rebuild")
    return rebuilt


def delete_extract(*, extract: Extract, by: User, reason: str) -> Extract:
    """Delete an extract's files; the row stays as the record of what it was.
    Event: data.extract_deleted."""
    policy.check_build_extract(by)
    with transaction.atomic(durable=True), governed_writes(Extract):
        locked = Extract.objects.select_for_update().get(pk=extract.pk)
        if locked.deleted_at is not None:
            return locked
        locked.deleted_at = timezone.now()
        locked.save()
        record_event(
            event_type=EventType.EXTRACT_DELETED,
            actor=by,
            target=locked,
            project_id=locked.project_id,
            data={
                "project_id": locked.project_id,
                "dummy": locked.is_dummy,
                "reason": reason[:200],
            },
        )
        folder = data_root() / locked.path
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
    return locked


def removal_summary(extract: Extract, *, by: User) -> dict[str, Any]:
    """What opt-outs did to an extract, for IG only (NotFound for anyone else): counts,
    with small counts suppressed, and the treatment's explanation."""
    policy.check_manage_optouts(by)
    return {
        "people_removed": register.suppressed(extract.people_removed),
        "rows_removed": register.suppressed(extract.rows_removed),
        "snapshot": extract.optout_snapshot.number if extract.optout_snapshot else None,
        "decision_table_version": extract.decision_table_version,
        "explanation": extract.treatment.get("explanation", ""),
    }


# --- Dummy extracts ---------------------------------------------------------------------
def build_dummy_extract(
    *, scope: ExtractScope, by: User, patients: int = DUMMY_PATIENTS, seed: int | None = None
) -> Extract:
    """An extract with the identical schema (files, columns, types) built from synthetic
    people: generated as a source drop, validated and pseudonymised as an ingest would
    (with throwaway keys), then scoped like the real extract. No opt-outs: nobody in it
    is real. Event: data.extract_built (dummy)."""
    policy.check_build_extract(by)
    datasets = validate_scope(scope)
    wanted = {PEOPLE, *(d.source_table for d in datasets.values())}
    if scope.cohort.snomed_codes:
        wanted.add("gp_events")
    tables = [t for t in source_format.TABLES if t in wanted]
    staging = data_root() / "staging" / f"dummy-{scope.project_id}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    try:
        frames = _dummy_frames(
            tables, patients=patients, seed=scope.project_id if seed is None else seed, scope=scope
        )

        def load(source_table: str, columns: list[str]) -> pa.Table:
            return frames[source_table].select(columns)

        empty = pd.Series(dtype="string")
        built = _write_tables(
            load=load,
            scope=scope,
            datasets=datasets,
            ids={kind: empty for kind in optouts.OptOutKind},
            treatment=optouts.Treatment(False, False, False, "Dummy data: nobody is real.", 0),
            project_key=secrets.token_bytes(32),
            out=staging,
        )
        return _publish(
            staging, built, by=by, scope=scope, is_dummy=True, reason="", treatment=None
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _dummy_frames(
    tables: list[str], *, patients: int, seed: int, scope: ExtractScope
) -> dict[str, pa.Table]:
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    drop = synth.generate(patients=patients, seed=seed, config=config, tables=tables)
    key = secrets.token_bytes(32)
    frames: dict[str, pa.Table] = {}
    with tempfile.TemporaryDirectory(dir=data_root() / "staging") as tmp:
        synth.write_drop(drop, Path(tmp))
        people = None
        for table in tables:
            raw = validation.read_source_table(Path(tmp) / f"{table}.csv", table)
            result = validation.validate_table(table, raw, extract_date=drop.end, people=people)
            if table == PEOPLE:
                people = result.clean
            frame = pseudonymisation.pseudonymise_frame(result.clean, key)
            frames[table] = pa.Table.from_pandas(frame, preserve_index=False)
    return frames
