"""Ingesting a source drop: reconciliation, quarantine, pseudonyms, the identity vault,
idempotency, atomicity, the state machine, the audit trail and who may do it."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.utils import timezone

from sde.audit.events import EventType
from sde.audit.services import get_system_user
from sde.data import ingestion, synth
from sde.data import source_format as sf
from sde.data.catalogue import published_fields, register_standard_datasets
from sde.data.ingestion import IngestError, request_ingest, run_ingest
from sde.data.models import DatasetVersion, IdentityVaultRecord, Ingest, OptOutSnapshot
from sde.data.pseudonymisation import is_valid_nhs_number, system_pseudonyms, valid_nhs_numbers
from sde.data.vault import VaultDecryptionError, decrypt_identities
from sde.exceptions import AuditError, InvalidTransition, PermissionDenied
from sde.identity.models import User
from sde.identity.roles import Role
from sde.keys import keyring, rotate_development_key
from sde.tasks import ingest_drop_task
from tests import scenarios
from tests.events import events_since as _events_since
from tests.events import mark as _mark
from tests.shared_db import module_custodian

pytestmark = pytest.mark.django_db

S = Ingest.Status
PEOPLE = 1500
# Every table of a 1,500-person drop gets at least one fault of each kind at these rates.
FAULTY = synth.FaultRates(0.02, 0.02, 0.02, 0.02)
DATASET_TABLES = [t for t in sf.TABLES if t != "ndop"]
PATIENTS_ONLY = ("patients",)
LINKED = ("patients", "gp_events")
# The reason each injected fault must be quarantined with (impossible dates by kind).
DATE_REASONS = {
    "before_birth": "before_birth",
    "after_death": "after_death",
    "future": "future_date",
    "end_before_start": "end_before_start",
}


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path, custodian: User) -> Path:
    """Every test: a private data root, and the catalogue, made once for the module."""
    return private_data_root


custodian = module_custodian


@cache
def _generated(
    seed: int, faults: synth.FaultRates, tables: tuple[str, ...] | None
) -> synth.SyntheticDrop:
    config = synth.SynthConfig(faults=faults)
    return synth.generate(patients=PEOPLE, seed=seed, config=config, tables=tables)


def _drop(
    tmp_path: Path,
    *,
    seed: int = 1,
    faults: synth.FaultRates | None = None,
    name: str = "drop",
    tables: tuple[str, ...] | None = None,
) -> Path:
    """A drop of every table, or of ``tables`` only (fewer tables ingest faster)."""
    folder = tmp_path / name
    synth.write_drop(_generated(seed, faults or synth.FaultRates.none(), tables), folder)
    return folder


def _ingest(drop: Path, by: User) -> Ingest:
    return run_ingest(ingest=request_ingest(drop_dir=drop, by=by, enqueue=False), by=by)


def _read_csv(drop: Path, table: str) -> pd.DataFrame:
    """A source file as text, exactly as written (empty stays empty)."""
    return pd.read_csv(drop / f"{table}.csv", dtype=str, keep_default_na=False)


def _rewrite(drop: Path, table: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Edit one source file and keep manifest.json's row count in step with it."""
    frame = edit(_read_csv(drop, table))
    frame.to_csv(drop / f"{table}.csv", index=False)
    manifest = json.loads((drop / "manifest.json").read_text())
    manifest["files"][f"{table}.csv"]["rows"] = len(frame)
    (drop / "manifest.json").write_text(json.dumps(manifest))


def _manifest_rows(drop: Path) -> dict[str, int]:
    files = json.loads((drop / "manifest.json").read_text())["files"]
    return {name.removesuffix(".csv"): entry["rows"] for name, entry in files.items()}


def _versions(ingest: Ingest) -> dict[str, DatasetVersion]:
    return {v.dataset.source_table: v for v in ingest.versions.select_related("dataset")}


def _parquet(root: Path, version: DatasetVersion) -> pd.DataFrame:
    return pq.read_table(root / version.path).to_pandas()


def _report(root: Path, ingest: Ingest) -> pd.DataFrame:
    return pd.read_csv(root / ingest.quarantine_path, dtype=str, keep_default_na=False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _vault_records() -> pd.DataFrame:
    rows = IdentityVaultRecord.objects.values("system_pseudonym", "ciphertext", "key_version")
    return pd.DataFrame(list(rows), columns=["system_pseudonym", "ciphertext", "key_version"])


def _clean_patient_numbers(drop: Path, root: Path, ingest: Ingest) -> set[str]:
    """The patients' NHS numbers minus the rows the ingest quarantined."""
    patients = _read_csv(drop, "patients")
    quarantined: set[int] = set()
    if ingest.quarantine_path:
        report = _report(root, ingest)
        quarantined = {int(r) for r in report.loc[report["table"] == "patients", "row"]}
    keep = [row not in quarantined for row in range(1, len(patients) + 1)]
    return set(patients.loc[keep, "nhs_number"])


def _tables_in(drop: Path) -> list[str]:
    return [t for t in DATASET_TABLES if (drop / f"{t}.csv").exists()]


def _all_nhs_numbers(drop: Path) -> set[str]:
    """Every NHS number in the drop, valid or not."""
    numbers: set[str] = set()
    for table in _tables_in(drop):
        numbers |= set(_read_csv(drop, table)["nhs_number"])
    if (drop / "ndop.csv").exists():
        numbers |= set((drop / "ndop.csv").read_text().split())
    return numbers - {""}


# --- reconciliation ----------------------------------------------------------------------
def test_a_clean_drop_is_ingested_whole_as_one_version_per_dataset(tmp_path, data_root, custodian):
    drop = _drop(tmp_path)
    expected = _manifest_rows(drop)

    ingest = _ingest(drop, custodian)

    versions = _versions(ingest)
    assert ingest.status == S.SUCCEEDED
    assert ingest.quarantined_rows == 0
    assert ingest.quarantine_path == ""
    assert sorted(versions) == sorted(DATASET_TABLES)
    for table, version in versions.items():
        assert version.version == 1
        assert version.quarantined_count == 0
        assert version.row_count == expected[table] == version.quality["received"]
    assert ingest.received_rows == sum(expected.values())
    # The opt-out list is ingested (for the opt-out register) but is not a dataset.
    assert ingest.ingested_rows == sum(v.row_count for v in versions.values()) + expected["ndop"]
    assert DatasetVersion.objects.count() == len(DATASET_TABLES)


def test_every_injected_fault_is_quarantined_with_its_reason(tmp_path, custodian):
    generated = _generated(3, FAULTY, None)
    drop = _drop(tmp_path, seed=3, faults=FAULTY)

    ingest = _ingest(drop, custodian)

    assert ingest.status == S.SUCCEEDED
    for table, version in _versions(ingest).items():
        injected = generated.faults[table]
        counts = version.quality["counts_by_reason"]
        date_reason = DATE_REASONS[synth.DATE_FAULTS[table][0]]
        kinds = [
            k for k in synth.FAULT_KINDS if k != "unknown_code" or table in synth.UNKNOWN_CODES
        ]
        assert all(injected[k] for k in kinds), f"{table}: the drop should carry every fault kind"
        assert counts.get("invalid_nhs_number") == injected["invalid_nhs_number"], table
        assert counts.get("unknown_code", 0) == injected["unknown_code"], table
        # A copy of a clean row is always caught; a natural duplicate would only add to it.
        assert counts.get("duplicate_row", 0) >= injected["duplicate_row"], table
        # After-death faults fall only on people whose patients row is clean (linkable).
        assert counts.get(date_reason) == injected["impossible_date"], table
        # Nothing else: the only other reason is the knock-on of a quarantined person.
        expected_reasons = {"invalid_nhs_number", "unknown_code", "duplicate_row", date_reason}
        assert set(counts) <= expected_reasons | {"unknown_person"}, table


def test_every_row_is_either_ingested_or_quarantined(tmp_path, custodian):
    drop = _drop(tmp_path, seed=3, faults=FAULTY)
    received = _manifest_rows(drop)

    ingest = _ingest(drop, custodian)

    versions = _versions(ingest)
    for table, version in versions.items():
        assert version.row_count + version.quarantined_count == received[table], table
        assert version.quality["received"] == received[table]
        assert version.quality["ingested"] == version.row_count
    assert ingest.received_rows == sum(received.values())
    assert ingest.quarantined_rows == sum(v.quarantined_count for v in versions.values())
    assert ingest.ingested_rows == ingest.received_rows - ingest.quarantined_rows
    assert ingest.ingested_rows == sum(v.row_count for v in versions.values()) + received["ndop"]


# --- the quarantine report ---------------------------------------------------------------
def _date(value: str) -> date:
    return date.fromisoformat(value)


class _Source:
    """One source file's lines (as text), for checking what the report says about them."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.lines = frame.to_dict("records")
        self.repeated_line = frame.duplicated(keep="first").to_numpy()
        self.repeated_person = frame["nhs_number"].duplicated(keep="first").to_numpy()


def _is_really(
    reason: str, table: str, source: _Source, row: int, column: str, context: dict[str, Any]
) -> bool:
    """Whether source line ``row`` of ``table`` really has the fault the report names."""
    line = source.lines[row - 1]
    deaths: dict[str, str] = context["deaths"]  # clean people only
    if reason == "invalid_nhs_number":
        return not is_valid_nhs_number(line[column])
    if reason == "unknown_code":
        return line[column] not in sf.CODED_COLUMNS[table][column]
    if reason == "future_date":
        return _date(line[column]) > context["extract_date"]
    rules = [
        e for e, later, why in sf.DATE_ORDER.get(table, ()) if (later, why) == (column, reason)
    ]
    if rules:  # one date before another on the same row
        return _date(line[column]) < _date(line[rules[0]])
    if reason == "duplicate_row" and column == "nhs_number":
        return bool(source.repeated_person[row - 1])
    if reason == "duplicate_row":
        return bool(source.repeated_line[row - 1])
    if reason == "unknown_person":
        return line["nhs_number"] not in deaths
    if reason == "after_death":
        death = deaths[line["nhs_number"]]
        return bool(death) and _date(line[column]) > _date(death) + timedelta(days=1)
    raise AssertionError(f"no check for the reason {reason}")


def test_the_quarantine_report_lists_exactly_the_quarantined_rows(tmp_path, data_root, custodian):
    drop = _drop(tmp_path, seed=3, faults=FAULTY)

    ingest = _ingest(drop, custodian)

    report = _report(data_root, ingest)
    versions = _versions(ingest)
    assert list(report.columns) == ["table", "row", "reason", "column"]
    assert len(report) == ingest.quarantined_rows
    assert not report.duplicated(["table", "row"]).any()
    by_reason = Counter(zip(report["table"], report["reason"], strict=True))
    for table, version in versions.items():
        for reason, count in version.quality["counts_by_reason"].items():
            assert by_reason.pop((table, reason)) == count, (table, reason)
    assert not by_reason, f"reported but not counted: {by_reason}"
    # Each reported row really has its fault, in the column named.
    clean = _clean_patient_numbers(drop, data_root, ingest)
    patients = _read_csv(drop, "patients")
    deaths = dict(zip(patients["nhs_number"], patients["date_of_death"], strict=True))
    extract_date = _date(json.loads((drop / "manifest.json").read_text())["date_range"]["end"])
    context = {"deaths": {n: deaths[n] for n in clean}, "extract_date": extract_date}
    frames = {table: _read_csv(drop, table) for table in versions}
    sources = {table: _Source(frame) for table, frame in frames.items()}
    for table, row, reason, column in report.itertuples(index=False):
        really = _is_really(reason, table, sources[table], int(row), column, context)
        assert really, (table, row, reason, column)
    # ... and no row with an invalid NHS number or an unknown code escaped it.
    reported = set(zip(report["table"], report["row"].astype(int), strict=True))
    for table, frame in frames.items():
        invalid = ~valid_nhs_numbers(frame["nhs_number"]).to_numpy()
        for row in invalid.nonzero()[0] + 1:
            assert (table, int(row)) in reported
        for column, codes in sf.CODED_COLUMNS.get(table, {}).items():
            for row in (~frame[column].isin(codes)).to_numpy().nonzero()[0] + 1:
                assert (table, int(row)) in reported


def test_the_quarantine_report_holds_no_nhs_numbers(tmp_path, data_root, custodian):
    drop = _drop(tmp_path, seed=3, faults=FAULTY)

    ingest = _ingest(drop, custodian)

    text = (data_root / ingest.quarantine_path).read_text()
    assert ingest.quarantine_path.startswith(f"versions/ingest-{ingest.pk}/")
    assert not any(number in text for number in _all_nhs_numbers(drop))


def _appended(base: Callable[[dict[str, str]], dict[str, str]]) -> Callable[..., pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        line = base(frame.iloc[0].to_dict())
        return pd.concat([frame, pd.DataFrame([line])], ignore_index=True)

    return edit


STRANGER = "9434765919"  # valid, and not anyone in a synthetic drop
BAD_ROWS = {
    "invalid NHS number": (
        "gp_events",
        lambda r: {
            **r,
            "nhs_number": r["nhs_number"][:9] + str((int(r["nhs_number"][9]) + 1) % 10),
        },
        "invalid_nhs_number",
        "nhs_number",
    ),
    "NHS number of nine digits": (
        "apc_spells",
        lambda r: {**r, "nhs_number": r["nhs_number"][:9]},
        "invalid_nhs_number",
        "nhs_number",
    ),
    "impossible date": (
        "gp_events",
        lambda r: {**r, "date": "2024-02-30"},
        "impossible_date",
        "date",
    ),
    "unparseable date": (
        "op_appointments",
        lambda r: {**r, "date": "31/01/2024"},
        "unparseable_date",
        "date",
    ),
    "unknown code": (
        "gp_medications",
        lambda r: {**r, "bnf_section": "9999"},
        "unknown_code",
        "bnf_section",
    ),
    "unknown sex": ("patients", lambda r: {**r, "sex": "X"}, "unknown_code", "sex"),
    "duplicate row": ("apc_spells", lambda r: dict(r), "duplicate_row", ""),
    "second row for a person": (
        "patients",
        lambda r: {**r, "place": "Elsewhere"},
        "duplicate_row",
        "nhs_number",
    ),
    "missing value": (
        "op_appointments",
        lambda r: {**r, "specialty": ""},
        "missing_value",
        "specialty",
    ),
    "future date": (
        "ae_attendances",
        lambda r: {**r, "arrival_date": "2030-01-01"},
        "future_date",
        "arrival_date",
    ),
    "unknown person": (
        "gp_events",
        lambda r: {**r, "nhs_number": STRANGER},
        "unknown_person",
        "nhs_number",
    ),
}


@pytest.mark.parametrize(("table", "make", "reason", "column"), BAD_ROWS.values(), ids=BAD_ROWS)
def test_a_hand_edited_bad_row_is_quarantined_with_its_reason(
    tmp_path, data_root, custodian, table, make, reason, column
):
    drop = _drop(tmp_path, tables=("patients", table))
    received = _manifest_rows(drop)[table]
    assert STRANGER not in set(_read_csv(drop, "patients")["nhs_number"])
    _rewrite(drop, table, _appended(make))

    ingest = _ingest(drop, custodian)

    version = _versions(ingest)[table]
    assert ingest.status == S.SUCCEEDED
    assert ingest.quarantined_rows == 1
    assert version.quarantined_count == 1
    assert version.row_count == received
    report = _report(data_root, ingest)
    assert report.to_dict("records") == [
        {"table": table, "row": str(received + 1), "reason": reason, "column": column}
    ]


def test_a_drop_whose_ndop_list_is_mostly_not_nhs_numbers_fails_and_publishes_nothing(
    tmp_path, data_root, custodian
):
    drop = _drop(tmp_path, tables=(*LINKED, "ndop"))
    (drop / "manifest.json").unlink()  # the list below is not the one the manifest counts
    (drop / "ndop.csv").write_text("".join(f"patient {i}\n" for i in range(50)))
    ingest = request_ingest(drop_dir=drop, by=custodian, enqueue=False)

    with pytest.raises(IngestError, match=r"ndop\.csv: only 0 of 50 lines are valid"):
        run_ingest(ingest=ingest, by=custodian)

    assert not DatasetVersion.objects.exists()
    assert not OptOutSnapshot.objects.exists()


def test_a_drop_that_disagrees_with_its_manifest_fails_and_publishes_nothing(
    tmp_path, data_root, custodian
):
    drop = _drop(tmp_path, tables=LINKED)
    with (drop / "gp_events.csv").open("a") as handle:  # one row more than the manifest says
        handle.write(_read_csv(drop, "gp_events").iloc[0].str.cat(sep=",") + "\n")
    ingest = request_ingest(drop_dir=drop, by=custodian, enqueue=False)

    with pytest.raises(IngestError, match=r"gp_events\.csv: the manifest says"):
        run_ingest(ingest=ingest, by=custodian)

    ingest.refresh_from_db()
    assert ingest.status == S.FAILED
    assert ingest.error_class == "IngestError"
    assert "the manifest says" in ingest.error_message
    assert not DatasetVersion.objects.exists()


def test_a_drop_without_a_manifest_is_ingested_without_reconciliation(tmp_path, custodian):
    drop = _drop(tmp_path, tables=PATIENTS_ONLY)
    (drop / "manifest.json").unlink()

    ingest = _ingest(drop, custodian)

    assert ingest.status == S.SUCCEEDED


# --- what is published -------------------------------------------------------------------
def test_the_parquet_files_hold_pseudonyms_and_never_nhs_numbers(tmp_path, data_root, custodian):
    drop = _drop(tmp_path)

    ingest = _ingest(drop, custodian)

    numbers = _all_nhs_numbers(drop)
    for table, version in _versions(ingest).items():
        path = data_root / version.path
        frame = _parquet(data_root, version)
        assert path.parent == data_root / "versions" / f"ingest-{ingest.pk}"
        assert list(frame.columns) == [f.name for f in published_fields(table)]
        assert "person_id" in frame.columns
        assert "nhs_number" not in frame.columns
        assert "date_of_birth" not in frame.columns
        assert frame["person_id"].str.fullmatch(r"[0-9a-f]{64}").all()
        assert version.row_count == len(frame)
        assert version.person_count == frame["person_id"].nunique()
        assert version.checksum == _sha256(path)
        for column in frame.columns:
            if frame[column].dtype.kind not in "biufcmM":
                assert not set(frame[column].dropna()) & numbers, column


def test_the_date_of_birth_is_published_as_the_first_of_its_month(tmp_path, data_root, custodian):
    drop = _drop(tmp_path, tables=PATIENTS_ONLY)

    ingest = _ingest(drop, custodian)

    patients = _parquet(data_root, _versions(ingest)["patients"])
    source = pd.to_datetime(_read_csv(drop, "patients")["date_of_birth"])
    assert (patients["birth_month"].dt.day == 1).all()
    assert (patients["birth_month"].dt.month == source.dt.month).all()
    assert (patients["birth_month"].dt.year == source.dt.year).all()


def test_a_person_has_the_same_pseudonym_in_every_table(tmp_path, data_root, custodian):
    drop = _drop(tmp_path)

    ingest = _ingest(drop, custodian)

    _, key = keyring("system").current()
    for table, version in _versions(ingest).items():
        expected = system_pseudonyms(_read_csv(drop, table)["nhs_number"], key)
        assert _parquet(data_root, version)["person_id"].tolist() == expected.tolist(), table
    # Spelled out for one person: their patients row and their GP events share one id.
    events = _read_csv(drop, "gp_events")
    someone = events["nhs_number"].iloc[0]
    patients = _read_csv(drop, "patients")
    versions = _versions(ingest)
    their_events = _parquet(data_root, versions["gp_events"])["person_id"][
        (events["nhs_number"] == someone).to_numpy()
    ]
    their_row = _parquet(data_root, versions["patients"])["person_id"][
        (patients["nhs_number"] == someone).to_numpy()
    ]
    assert set(their_events) == set(their_row)
    assert len(set(their_row)) == 1


def _share_people(first: Path, second: Path, count: int) -> list[str]:
    """Give the first ``count`` people of ``second`` the NHS numbers of the first
    ``count`` people of ``first``, in every table; return those numbers."""
    theirs = _read_csv(first, "patients")["nhs_number"].iloc[:count].tolist()
    ours = _read_csv(second, "patients")["nhs_number"].iloc[:count].tolist()
    mapping = dict(zip(ours, theirs, strict=True))
    for table in _tables_in(second):
        _rewrite(second, table, lambda f: f.assign(nhs_number=f["nhs_number"].replace(mapping)))
    return theirs


def _pseudonyms_of(drop: Path, root: Path, ingest: Ingest) -> dict[str, str]:
    patients = _read_csv(drop, "patients")["nhs_number"]
    ids = _parquet(root, _versions(ingest)["patients"])["person_id"]
    return dict(zip(patients, ids, strict=True))


def test_a_person_keeps_their_pseudonym_in_a_later_drop(tmp_path, data_root, custodian):
    first, second = (
        _drop(tmp_path, seed=1, name="a", tables=LINKED),
        _drop(tmp_path, seed=2, name="b", tables=LINKED),
    )
    shared = _share_people(first, second, 50)

    one, two = _ingest(first, custodian), _ingest(second, custodian)

    before, after = _pseudonyms_of(first, data_root, one), _pseudonyms_of(second, data_root, two)
    assert [after[n] for n in shared] == [before[n] for n in shared]
    assert len(set(before.values()) & set(after.values())) == 50
    assert {v.version for v in two.versions.all()} == {2}
    # Their events in the later drop link to them as well.
    later_events = set(_parquet(data_root, _versions(two)["gp_events"])["person_id"])
    assert later_events <= set(after.values())
    assert later_events & {before[n] for n in shared}


def test_a_rotated_system_key_gives_everyone_a_new_pseudonym(tmp_path, data_root, custodian):
    first, second = (
        _drop(tmp_path, seed=1, name="a", tables=LINKED),
        _drop(tmp_path, seed=2, name="b", tables=LINKED),
    )
    shared = _share_people(first, second, 50)
    one = _ingest(first, custodian)

    assert rotate_development_key("system") == 2
    two = _ingest(second, custodian)

    before, after = _pseudonyms_of(first, data_root, one), _pseudonyms_of(second, data_root, two)
    assert not set(before.values()) & set(after.values())
    assert all(after[n] != before[n] for n in shared)
    expected = system_pseudonyms(pd.Series(shared), keyring("system").get(2))
    assert [after[n] for n in shared] == expected.tolist()
    assert (one.key_version, two.key_version) == (1, 2)
    assert {v.key_version for v in two.versions.all()} == {2}


# --- the identity vault ------------------------------------------------------------------
def test_every_clean_patient_has_one_vault_record_that_decrypts_to_them(
    tmp_path, data_root, custodian
):
    drop = _drop(tmp_path, seed=3, faults=FAULTY, tables=PATIENTS_ONLY)

    ingest = _ingest(drop, custodian)

    records = _vault_records()
    clean = _clean_patient_numbers(drop, data_root, ingest)
    published = _parquet(data_root, _versions(ingest)["patients"])["person_id"]
    assert len(records) == len(clean) == len(published)
    assert set(records["system_pseudonym"]) == set(published)
    assert (records["key_version"] == keyring("vault").current_version).all()
    numbers = decrypt_identities(records, keys=keyring("vault").keys)
    assert set(numbers) == clean
    # A record decrypts to the person its pseudonym names.
    _, key = keyring("system").current()
    expected = system_pseudonyms(pd.Series(numbers.to_numpy()), key)
    assert records["system_pseudonym"].tolist() == expected.tolist()
    assert not any(
        n.encode() in bytes(ct) for n, ct in zip(numbers, records["ciphertext"], strict=True)
    )


def test_the_vault_does_not_decrypt_with_another_key(tmp_path, custodian):
    _ingest(_drop(tmp_path, tables=PATIENTS_ONLY), custodian)

    with pytest.raises(VaultDecryptionError):
        decrypt_identities(_vault_records(), keys={1: bytes(range(32))})


def test_a_second_drop_adds_only_new_people_to_the_vault(tmp_path, data_root, custodian):
    first, second = (
        _drop(tmp_path, seed=1, name="a", tables=PATIENTS_ONLY),
        _drop(tmp_path, seed=2, name="b", tables=PATIENTS_ONLY),
    )
    _share_people(first, second, 50)
    _ingest(first, custodian)
    before = IdentityVaultRecord.objects.count()

    _ingest(second, custodian)

    assert IdentityVaultRecord.objects.count() == before + PEOPLE - 50
    numbers = decrypt_identities(_vault_records(), keys=keyring("vault").keys)
    assert numbers.is_unique
    assert set(numbers) == set(_read_csv(first, "patients")["nhs_number"]) | set(
        _read_csv(second, "patients")["nhs_number"]
    )


# --- idempotency -------------------------------------------------------------------------
def test_requesting_an_ingested_drop_again_reuses_the_ingest(tmp_path, custodian):
    drop = _drop(tmp_path, tables=PATIENTS_ONLY)
    done = _ingest(drop, custodian)
    mark = _mark()

    again = request_ingest(drop_dir=drop, by=custodian, enqueue=False)

    assert again.pk == done.pk
    assert again.status == S.SUCCEEDED
    assert Ingest.objects.count() == 1
    assert DatasetVersion.objects.count() == 1
    events = _events_since(mark)
    assert [e.event_type for e in events] == [EventType.INGEST_REUSED]
    assert events[0].target_id == str(done.pk)


def test_running_a_finished_ingest_again_changes_nothing(tmp_path, custodian):
    done = _ingest(_drop(tmp_path, tables=PATIENTS_ONLY), custodian)
    mark = _mark()

    again = run_ingest(ingest=done, by=custodian)

    assert again.status == S.SUCCEEDED
    assert DatasetVersion.objects.count() == 1
    assert _events_since(mark) == []


def test_the_ingest_command_ingests_once_and_then_says_already_ingested(tmp_path):
    register_standard_datasets(by=scenarios.person(Role.DATA_CUSTODIAN))
    drop = _drop(tmp_path, tables=PATIENTS_ONLY)
    first, second = io.StringIO(), io.StringIO()

    call_command("ingest", str(drop), "--label", "November", stdout=first, stderr=io.StringIO())
    call_command("ingest", str(drop), stdout=second, stderr=io.StringIO())

    ingest = Ingest.objects.get()
    assert f"ingest {ingest.pk} succeeded" in first.getvalue()
    assert ingest.source_label == "November"
    assert ingest.requested_by == get_system_user()
    assert "already ingested" in second.getvalue()
    assert DatasetVersion.objects.count() == 1


# --- atomicity ---------------------------------------------------------------------------
def _fail_validating_one_table(monkeypatch: pytest.MonkeyPatch) -> type[Exception]:
    original = ingestion.validation.validate_table

    def validate(table: str, *args: Any, **kwargs: Any) -> Any:
        if table == "op_appointments":
            raise MemoryError("out of memory")
        return original(table, *args, **kwargs)

    monkeypatch.setattr(ingestion.validation, "validate_table", validate)
    return MemoryError


def _fail_encrypting(monkeypatch: pytest.MonkeyPatch) -> type[Exception]:
    def encrypt(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("vault key unavailable")

    monkeypatch.setattr(ingestion.vault, "encrypt_identities", encrypt)
    return ValueError


def _fail_saving_the_third_version(monkeypatch: pytest.MonkeyPatch) -> type[Exception]:
    original = DatasetVersion.save
    saved: list[int] = []

    def save(self: DatasetVersion, *args: Any, **kwargs: Any) -> None:
        saved.append(1)
        if len(saved) == 3:
            raise OSError("database went away")
        original(self, *args, **kwargs)

    monkeypatch.setattr(DatasetVersion, "save", save)
    return OSError


def _fail_the_last_audit_write(monkeypatch: pytest.MonkeyPatch) -> type[Exception]:
    original = ingestion.record_event

    def record(*, event_type: EventType, **kwargs: Any) -> Any:
        if event_type == EventType.KEY_VERSION_USED:
            raise AuditError("audit log unavailable")
        return original(event_type=event_type, **kwargs)

    monkeypatch.setattr(ingestion, "record_event", record)
    return AuditError


FAILURES = {
    "validating a table": _fail_validating_one_table,
    "encrypting identities": _fail_encrypting,
    "saving a dataset version": _fail_saving_the_third_version,
    "writing the last audit event": _fail_the_last_audit_write,
}


@pytest.mark.parametrize("fail", FAILURES.values(), ids=FAILURES)
def test_a_failure_at_any_stage_publishes_nothing(
    tmp_path, data_root, custodian, monkeypatch, fail
):
    drop = _drop(tmp_path, seed=3, faults=FAULTY)
    error = fail(monkeypatch)
    ingest = request_ingest(drop_dir=drop, by=custodian, enqueue=False)
    mark = _mark()

    with pytest.raises(error):
        run_ingest(ingest=ingest, by=custodian)

    ingest.refresh_from_db()
    assert ingest.status == S.FAILED
    assert ingest.error_class == error.__name__
    assert ingest.finished_at is not None
    assert not DatasetVersion.objects.exists()
    assert not IdentityVaultRecord.objects.exists()
    assert not (data_root / "versions" / f"ingest-{ingest.pk}").exists()
    assert not any((data_root / "staging").iterdir())
    events = _events_since(mark)
    assert [e.event_type for e in events] == [EventType.INGEST_STARTED, EventType.INGEST_FAILED]
    assert events[1].data == {"stage": ingest.stage, "error_class": error.__name__}


def test_an_internal_error_is_not_shown_to_the_custodian(tmp_path, custodian, monkeypatch):
    _fail_encrypting(monkeypatch)
    ingest = request_ingest(
        drop_dir=_drop(tmp_path, tables=PATIENTS_ONLY), by=custodian, enqueue=False
    )

    with pytest.raises(ValueError, match="vault key unavailable"):
        run_ingest(ingest=ingest, by=custodian)

    ingest.refresh_from_db()
    assert ingest.error_message == "internal error (see worker log)"


def test_a_failed_drop_can_be_requested_again_and_succeed(tmp_path, custodian, monkeypatch):
    drop = _drop(tmp_path, tables=PATIENTS_ONLY)
    _fail_encrypting(monkeypatch)
    failed = request_ingest(drop_dir=drop, by=custodian, enqueue=False)
    with pytest.raises(ValueError):
        run_ingest(ingest=failed, by=custodian)
    monkeypatch.undo()

    retried = _ingest(drop, custodian)

    assert retried.pk != failed.pk
    assert retried.status == S.SUCCEEDED
    assert {v.version for v in retried.versions.all()} == {1}


def test_a_redelivered_ingest_succeeds_and_sweeps_its_dead_workers_leftovers(
    tmp_path, data_root, custodian
):
    drop = _drop(tmp_path, tables=PATIENTS_ONLY)
    ingest = request_ingest(drop_dir=drop, by=custodian, enqueue=False)
    # A worker started it, wrote into staging and was killed before it published.
    system = get_system_user()
    ingest = ingestion._transition(ingest, S.RUNNING, by=system, started_at=timezone.now())
    dead = data_root / "staging" / f"ingest-{ingest.pk}-0badc0de"
    dead.mkdir(parents=True)
    (dead / "patients.parquet").write_bytes(b"half written")

    outcome = ingest_drop_task(ingest.pk)

    ingest.refresh_from_db()
    assert outcome == "succeeded"
    assert ingest.status == S.SUCCEEDED
    assert not dead.exists()
    assert list((data_root / "staging").iterdir()) == []
    for version in ingest.versions.all():
        assert version.checksum == _sha256(data_root / version.path)


def test_a_worker_that_died_after_moving_the_files_leaves_nothing_behind(
    tmp_path, data_root, custodian
):
    drop = _drop(tmp_path, tables=PATIENTS_ONLY)
    ingest = request_ingest(drop_dir=drop, by=custodian, enqueue=False)
    ingest = ingestion._transition(ingest, S.RUNNING, by=get_system_user())
    stale = data_root / "versions" / f"ingest-{ingest.pk}"
    stale.mkdir(parents=True)
    (stale / "stale.parquet").write_bytes(b"from the dead worker")

    run_ingest(ingest=ingest, by=custodian)

    assert not (stale / "stale.parquet").exists()
    assert [p.name for p in stale.iterdir()] == ["patients.parquet"]


def test_sweeping_keeps_the_staging_folder_of_another_running_ingest(
    tmp_path, data_root, custodian
):
    other = request_ingest(
        drop_dir=_drop(tmp_path, seed=2, name="b", tables=PATIENTS_ONLY),
        by=custodian,
        enqueue=False,
    )
    other = ingestion._transition(other, S.RUNNING, by=get_system_user())
    live = data_root / "staging" / f"ingest-{other.pk}-1234abcd"
    live.mkdir(parents=True)
    orphan = data_root / "staging" / "ingest-999999-1234abcd"
    orphan.mkdir()

    _ingest(_drop(tmp_path, tables=PATIENTS_ONLY), custodian)

    assert live.exists()
    assert not orphan.exists()


# --- the state machine -------------------------------------------------------------------
ALLOWED = {
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.FAILED),
    (S.RUNNING, S.RUNNING),  # a redelivered task restarts a killed worker's ingest
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
}
EVENT_OF = {S.RUNNING: EventType.INGEST_STARTED, S.FAILED: EventType.INGEST_FAILED}
PATHS = {S.QUEUED: [], S.RUNNING: [S.RUNNING], S.SUCCEEDED: [S.RUNNING, S.SUCCEEDED]}
PATHS[S.FAILED] = [S.FAILED]
PAIRS = [(a, b) for a in S for b in S]


def _ingest_in(status: str, tmp_path: Path, by: User) -> Ingest:
    folder = tmp_path / "tiny"
    folder.mkdir(exist_ok=True)
    (folder / "patients.csv").write_text(",".join(sf.COLUMNS["patients"]) + "\n")
    ingest = request_ingest(drop_dir=folder, by=by, enqueue=False)
    for step in PATHS[status]:
        ingest = ingestion._transition(ingest, step, by=get_system_user())
    return ingest


@pytest.mark.parametrize(("start", "end"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_the_ingest_transition_table(tmp_path, custodian, start, end):
    ingest = _ingest_in(start, tmp_path, custodian)
    mark = _mark()

    if (start, end) in ALLOWED:
        moved = ingestion._transition(ingest, end, by=get_system_user())
        assert moved.status == end
        assert [e.event_type for e in _events_since(mark)] == (
            [EVENT_OF[end]] if end in EVENT_OF else []
        )
    else:
        with pytest.raises(InvalidTransition):
            ingestion._transition(ingest, end, by=get_system_user())
        assert _events_since(mark) == []

    ingest.refresh_from_db()
    assert ingest.status == (end if (start, end) in ALLOWED else start)


def test_the_transition_table_matches_the_documented_state_machine():
    table = {(a, b) for a, targets in ingestion.TRANSITIONS.items() for b in targets}

    assert table == ALLOWED
    assert set(ingestion.STATUS_OWNERS) == set(S)
    assert dict(ingestion.TRANSITION_EVENTS) == EVENT_OF


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED])
def test_the_task_leaves_a_finished_ingest_alone(tmp_path, custodian, status):
    ingest = _ingest_in(status, tmp_path, custodian)
    mark = _mark()

    outcome = ingest_drop_task(ingest.pk)

    after = Ingest.objects.get(pk=ingest.pk)
    assert outcome == status
    assert (after.status, after.stage, after.finished_at) == (
        ingest.status,
        ingest.stage,
        ingest.finished_at,
    )
    assert _events_since(mark) == []
    assert not DatasetVersion.objects.exists()


def test_the_task_ignores_an_ingest_that_does_not_exist():
    assert ingest_drop_task(987654) == "missing"


def test_the_task_records_a_drop_it_cannot_ingest_as_failed(tmp_path, custodian):
    folder = tmp_path / "no-patients"
    _drop(tmp_path, name="full", tables=LINKED)
    folder.mkdir()
    (folder / "gp_events.csv").write_bytes((tmp_path / "full" / "gp_events.csv").read_bytes())
    ingest = request_ingest(drop_dir=folder, by=custodian, enqueue=False)

    outcome = ingest_drop_task(ingest.pk)

    ingest.refresh_from_db()
    assert outcome == "failed"
    assert ingest.status == S.FAILED
    assert ingest.error_class == "IngestError"
    assert ingest.error_message == "the drop has no patients.csv"


# --- the audit trail ---------------------------------------------------------------------
def test_a_successful_ingest_writes_exactly_these_events(tmp_path, custodian):
    drop = _drop(tmp_path, seed=3, faults=FAULTY)
    mark = _mark()

    ingest = request_ingest(drop_dir=drop, by=custodian, enqueue=False)
    ingest_drop_task(ingest.pk)

    events = _events_since(mark)
    system = get_system_user()
    slugs = [t.replace("_", "-") for t in DATASET_TABLES]
    assert [e.event_type for e in events] == [
        EventType.INGEST_REQUESTED,
        EventType.INGEST_STARTED,
        *[EventType.DATASET_VERSION_INGESTED] * len(DATASET_TABLES),
        EventType.OPT_OUT_SNAPSHOT_IMPORTED,
        EventType.KEY_VERSION_USED,
    ]
    assert [e.actor_id for e in events] == [custodian.pk] + [system.pk] * (len(events) - 1)
    requested, started, *versions, snapshot, key = events
    assert snapshot.data["trigger"] == "ingest"
    assert snapshot.data["imported_sources"] == ["gp_events", "ndop_file"]
    assert snapshot.data["ndop"] > 0 and snapshot.data["type1"] > 0
    assert set(requested.data) == {"fingerprint"}
    assert started.data == {}
    assert [e.data["dataset"] for e in versions] == slugs
    assert all(set(e.data) == {"dataset", "version", "rows", "quarantined"} for e in versions)
    assert all(
        isinstance(e.data[k], int) for e in versions for k in ("version", "rows", "quarantined")
    )
    assert key.data == {"keyring": "system", "version": 1}
    assert {e.target_id for e in (requested, started, key)} == {str(ingest.pk)}
    text = json.dumps([e.data for e in events])
    assert not any(number in text for number in _all_nhs_numbers(drop))


# --- permissions -------------------------------------------------------------------------
NOT_CUSTODIANS = [r for r in Role if r != Role.DATA_CUSTODIAN]


@pytest.mark.parametrize("role", NOT_CUSTODIANS, ids=[r.value for r in NOT_CUSTODIANS])
def test_only_a_custodian_may_request_an_ingest(tmp_path, custodian, role):
    drop = _drop(tmp_path, tables=PATIENTS_ONLY)
    person = scenarios.person(role, accredited=role == Role.RESEARCHER)

    with pytest.raises(PermissionDenied):
        request_ingest(drop_dir=drop, by=person, enqueue=False)

    assert not Ingest.objects.exists()


@pytest.mark.parametrize("role", NOT_CUSTODIANS, ids=[r.value for r in NOT_CUSTODIANS])
def test_only_a_custodian_may_run_an_ingest(tmp_path, custodian, role):
    ingest = request_ingest(
        drop_dir=_drop(tmp_path, tables=PATIENTS_ONLY), by=custodian, enqueue=False
    )
    person = scenarios.person(role)

    with pytest.raises(PermissionDenied):
        run_ingest(ingest=ingest, by=person)

    ingest.refresh_from_db()
    assert ingest.status == S.QUEUED


@pytest.mark.parametrize("who", ["custodian", "system"])
def test_a_custodian_or_the_system_may_ingest(tmp_path, custodian, who):
    by = custodian if who == "custodian" else get_system_user()

    ingest = _ingest(_drop(tmp_path, tables=PATIENTS_ONLY), by)

    assert ingest.status == S.SUCCEEDED
    assert ingest.requested_by == by
