"""The opt-out register: NDOP imports, Type 1 codes from ingests, manual entries, the
two-IG-officer change workflow, decision table versions, exemptions, key rotation, who
may do any of it, and small-count suppression.

The decision table's own logic is tested in test_optouts.py; here it is only the data the
register stores, versions and hands to ``treatment_for``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from sde.audit.events import EventType
from sde.audit.models import AuditEvent
from sde.audit.services import get_system_user
from sde.data import optout_changes, register, synth
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest, ManualOptOut, OptOutChange, OptOutSnapshot
from sde.data.optout_changes import CHANGE_OWNERS, CHANGE_TRANSITIONS
from sde.data.optouts import (
    DEFAULT_DECISION_TABLE,
    Application,
    ConfidentialityBasis,
    DecisionTableError,
    OptOutKind,
    treatment_for,
)
from sde.data.pseudonymisation import system_pseudonyms
from sde.data.source_files import SourceFormatError
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.governance import governed_writes
from sde.identity import services
from sde.identity.models import User
from sde.identity.roles import Role
from sde.keys import keyring, rotate_development_key
from tests import scenarios
from tests.events import events_since, mark, types_since

pytestmark = pytest.mark.django_db

Status = OptOutChange.Status
Trigger = OptOutSnapshot.Trigger
B = ConfidentialityBasis
PEOPLE = 800
DROP_TABLES = ("patients", "gp_events", "ndop")
NUMBER = "9434765919"  # optouts.md's example of a valid synthetic NHS number
SPELLINGS = ("943 476 5919", "943-476-5919", " 9434765919 ")  # the same person
# One of each kind of bad line: wrong check digit, nine digits, a letter, text, blank.
INVALID_LINES = ("9434765918", "943476591", "94347659I9", "NOT-A-NUMBER", "")
PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
COPI_TYPE1 = ("copi_reg3", "type1")
NOT_CONFIDENTIAL_TYPE1 = ("not_confidential", "type1")


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path) -> Path:
    return private_data_root


@pytest.fixture
def second_ig(db: None) -> User:
    return scenarios.person(Role.IG_OFFICER)


# --- helpers -----------------------------------------------------------------------------
@cache
def _generated(seed: int) -> synth.SyntheticDrop:
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    return synth.generate(patients=PEOPLE, seed=seed, config=config, tables=DROP_TABLES)


def _drop(tmp_path: Path, *, seed: int, ndop: bool = True) -> Path:
    """A drop of patients, GP events and (with ``ndop``) the national opt-out list."""
    folder = tmp_path / f"drop-{seed}-{'ndop' if ndop else 'no-ndop'}"
    synth.write_drop(_generated(seed), folder)
    if not ndop:  # without its list (and the manifest that counts it)
        (folder / "ndop.csv").unlink()
        (folder / "manifest.json").unlink()
    return folder


def _ingest(drop: Path, by: User) -> Ingest:
    ingest = run_ingest(ingest=request_ingest(drop_dir=drop, by=by, enqueue=False), by=by)
    assert ingest.status == Ingest.Status.SUCCEEDED
    return ingest


def _dissenters(drop: Path) -> set[str]:
    """NHS numbers of everyone with the Type 1 dissent code in the drop's GP events."""
    events = pd.read_csv(drop / "gp_events.csv", dtype=str, keep_default_na=False)
    return set(events.loc[events["snomed_code"] == "827241000000103", "nhs_number"])


def _ndop_list(drop: Path) -> set[str]:
    return set((drop / "ndop.csv").read_text().split())


def _numbers(count: int, seed: int) -> list[str]:
    """``count`` distinct valid synthetic NHS numbers (Modulus 11, 9xx range)."""
    drawn = synth.generate_nhs_numbers(np.random.default_rng(seed), count)
    return [f"{number:010d}" for number in drawn.tolist()]


def _pseudonyms(numbers: Iterable[str], version: int | None = None) -> set[str]:
    """System pseudonyms computed here, independently of the register."""
    ring = keyring("system")
    key = ring.current()[1] if version is None else ring.get(version)
    return set(system_pseudonyms(pd.Series(sorted(numbers), dtype="string"), key))


def _pseudonym(number: str, version: int | None = None) -> str:
    (only,) = _pseudonyms([number], version)
    return only


def _rows(kind: str, source: str, ids: Iterable[str]) -> set[tuple[str, str, str]]:
    return {(kind, person, source) for person in ids}


def _write(tmp_path: Path, lines: Iterable[str], name: str = "ndop.txt") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _entries(snapshot: OptOutSnapshot | None) -> set[tuple[str, str, str]]:
    frame = register.snapshot_entries(snapshot)
    return set(frame.itertuples(index=False, name=None))


def _expected_hash(rows: Iterable[tuple[str, str, str]]) -> str:
    lines = sorted(",".join(row) for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _counts(snapshot: OptOutSnapshot) -> tuple[int, int, int, int]:
    return (
        snapshot.ndop_count,
        snapshot.type1_count,
        snapshot.manual_count,
        snapshot.invalid_count,
    )


def _event_text(events: Iterable[AuditEvent]) -> str:
    """Everything an event shows about its action (data, target, actor)."""
    return json.dumps(
        [[e.data, e.target_type, e.target_id, e.target_display, e.actor_display] for e in events]
    )


def _nothing_written(since: int) -> None:
    assert events_since(since) == []
    assert not OptOutSnapshot.objects.exists()
    assert not ManualOptOut.objects.exists()


def _exemption(ig: User, project_id: int = 3, **flags: Any) -> OptOutChange:
    flags = flags or {"cag_letter_disapplies_type1": True}
    return optout_changes.propose_exemption(
        project_id=project_id, reason="CAG letter 24/CAG/0001 on file", by=ig, **flags
    )


def _approve(change: OptOutChange, by: User) -> OptOutChange:
    return optout_changes.decide_change(change=change, approve=True, reason="", by=by)


# --- NDOP file imports -------------------------------------------------------------------
def test_an_ndop_import_makes_snapshot_one_of_the_distinct_valid_people(
    tmp_path, data_root, ig_officer
):
    others = _numbers(20, seed=11)
    path = _write(tmp_path, [NUMBER, *others, *SPELLINGS, *INVALID_LINES])

    snapshot = register.import_ndop_file(path=path, by=ig_officer)

    expected = _rows("ndop", "ndop_file", _pseudonyms([NUMBER, *others]))
    assert snapshot.number == 1
    assert snapshot.trigger == Trigger.NDOP_IMPORT
    assert _counts(snapshot) == (21, 0, 0, len(INVALID_LINES))
    assert snapshot.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert snapshot.source_label == "ndop.txt"
    assert snapshot.created_by == ig_officer
    assert snapshot.ingest is None
    assert snapshot.key_version == keyring("system").current_version == 1
    assert snapshot.imported_sources == ["ndop_file"]
    assert snapshot.stale_manual_count == 0
    assert _entries(snapshot) == expected
    assert snapshot.content_hash == _expected_hash(expected)
    assert register.current_snapshot() == snapshot
    assert {k: set(v) for k, v in register.optout_ids(snapshot).items()} == {
        OptOutKind.NDOP: _pseudonyms([NUMBER, *others]),
        OptOutKind.TYPE1: set(),
    }


def test_the_snapshot_file_holds_system_pseudonyms_and_never_an_nhs_number(
    tmp_path, data_root, ig_officer
):
    numbers = [NUMBER, *_numbers(30, seed=12)]
    path = _write(tmp_path, numbers)

    snapshot = register.import_ndop_file(path=path, by=ig_officer)

    file = data_root / snapshot.path
    assert file.parent == data_root / "optouts"
    table = pq.read_table(file)
    assert table.column_names == ["kind", "person_id", "source"]
    frame = table.to_pandas()
    assert frame["person_id"].map(lambda value: bool(PSEUDONYM.match(value))).all()
    assert set(frame["kind"]) == {"ndop"} and set(frame["source"]) == {"ndop_file"}
    text = frame.to_csv(index=False)
    assert not any(number in text for number in numbers)
    raw = file.read_bytes()
    assert not any(number.encode() in raw for number in numbers)


def test_an_ndop_import_writes_one_event_with_counts_and_no_nhs_number(tmp_path, ig_officer):
    numbers = [NUMBER, *_numbers(5, seed=13)]
    path = _write(tmp_path, [*numbers, "9434765918"])
    since = mark()

    snapshot = register.import_ndop_file(path=path, by=ig_officer, label="NDOP March")

    (event,) = events_since(since)
    assert event.event_type == EventType.OPT_OUT_SNAPSHOT_IMPORTED
    assert event.actor_id == ig_officer.pk
    assert event.target_id == str(snapshot.pk)
    assert event.data == {
        "number": 1,
        "trigger": "ndop_import",
        "content_hash": snapshot.content_hash,
        "ndop": 6,
        "type1": 0,
        "manual": 0,
        "invalid": 1,
        "key_version": 1,
        "imported_sources": ["ndop_file"],
        "stale_manual": 0,
    }
    assert snapshot.source_label == "NDOP March"
    assert not any(n in _event_text([event]) for n in [*numbers, "9434765918"])


def test_importing_the_same_list_again_makes_no_new_snapshot(tmp_path, ig_officer, second_ig):
    numbers = [NUMBER, *_numbers(10, seed=14)]
    first = register.import_ndop_file(path=_write(tmp_path, numbers), by=ig_officer)
    since = mark()

    again = register.import_ndop_file(path=_write(tmp_path, numbers, "again.txt"), by=second_ig)

    assert again == first
    assert OptOutSnapshot.objects.count() == 1
    (event,) = events_since(since)
    assert event.event_type == EventType.OPT_OUT_SNAPSHOT_UNCHANGED
    assert event.actor_id == second_ig.pk
    assert event.target_id == str(first.pk)
    assert event.data == {"trigger": "ndop_import", "invalid": 0}


def test_the_content_hash_ignores_line_order_spelling_and_bad_lines(tmp_path, ig_officer):
    numbers = [NUMBER, *_numbers(10, seed=15)]
    first = register.import_ndop_file(path=_write(tmp_path, numbers), by=ig_officer)
    respelt = [SPELLINGS[0], *reversed(numbers[1:]), *INVALID_LINES[:2]]
    since = mark()

    again = register.import_ndop_file(path=_write(tmp_path, respelt, "b.txt"), by=ig_officer)

    assert again == first
    assert types_since(since) == [EventType.OPT_OUT_SNAPSHOT_UNCHANGED]
    assert events_since(since)[0].data["invalid"] == 2
    frame = register.snapshot_entries(first)
    shuffled = frame.sample(frac=1, random_state=0).reset_index(drop=True)
    assert register.content_hash(shuffled) == register.content_hash(frame) == first.content_hash


def test_a_new_ndop_list_replaces_the_last_one(tmp_path, ig_officer):
    old = _numbers(10, seed=16)
    new = [*old[:4], *_numbers(6, seed=17)]
    first = register.import_ndop_file(path=_write(tmp_path, old, "old.txt"), by=ig_officer)

    second = register.import_ndop_file(path=_write(tmp_path, new, "new.txt"), by=ig_officer)

    assert second.number == 2
    assert _entries(second) == _rows("ndop", "ndop_file", _pseudonyms(new))
    assert not _entries(second) & _rows("ndop", "ndop_file", _pseudonyms(old[4:]))
    assert second.ndop_count == 10
    assert second.source_label == "new.txt"
    # The earlier snapshot is kept as it was (extracts record which one they applied).
    assert _entries(first) == _rows("ndop", "ndop_file", _pseudonyms(old))


def test_a_repeated_line_is_quarantined_as_a_duplicate_and_counted_as_invalid(tmp_path, ig_officer):
    path = _write(tmp_path, [NUMBER, NUMBER, SPELLINGS[0]])

    snapshot = register.import_ndop_file(path=path, by=ig_officer)

    # The exact repeat is quarantined (duplicate_row); another spelling is the same person.
    assert (snapshot.ndop_count, snapshot.invalid_count) == (1, 1)


@pytest.mark.parametrize(
    "content",
    ["", "\n\n", "9434765919,extra\n"],
    ids=["empty", "blank-lines", "two-fields"],
)
def test_a_file_that_is_not_an_ndop_list_is_refused(tmp_path, ig_officer, content):
    path = tmp_path / "ndop.txt"
    path.write_text(content)
    since = mark()

    with pytest.raises(SourceFormatError) as raised:
        register.import_ndop_file(path=path, by=ig_officer)

    assert NUMBER not in str(raised.value)
    _nothing_written(since)


@pytest.mark.parametrize(
    ("valid", "invalid", "refused"),
    [(0, 5, True), (2, 3, True), (3, 3, False), (5, 0, False)],
    ids=["none-valid", "minority-valid", "half-valid", "all-valid"],
)
def test_a_list_mostly_not_nhs_numbers_is_refused_and_the_current_list_kept(
    tmp_path, ig_officer, valid, invalid, refused
):
    current = register.import_ndop_file(
        path=_write(tmp_path, _numbers(4, seed=30), "a"), by=ig_officer
    )
    lines = [*_numbers(valid, seed=31), *[f"not a number {i}" for i in range(invalid)]]
    since = mark()

    if refused:
        with pytest.raises(register.OptOutError, match="current list is kept"):
            register.import_ndop_file(path=_write(tmp_path, lines, "b"), by=ig_officer)
        assert events_since(since) == []
        assert list(OptOutSnapshot.objects.all()) == [current]
    else:
        snapshot = register.import_ndop_file(path=_write(tmp_path, lines, "b"), by=ig_officer)
        assert (snapshot.number, snapshot.ndop_count, snapshot.invalid_count) == (2, valid, invalid)


def test_a_label_shaped_like_an_nhs_number_is_not_stored(tmp_path, ig_officer):
    path = _write(tmp_path, _numbers(3, seed=32))

    snapshot = register.import_ndop_file(path=path, by=ig_officer, label="from 943 476 5919.txt")

    assert snapshot.source_label == "from [number removed].txt"


def test_counts_are_of_people_not_rows(tmp_path, ig_officer):
    others = _numbers(2, seed=18)
    register.add_manual_optout(nhs_number=NUMBER, kind="ndop", reason="letter", by=ig_officer)

    snapshot = register.import_ndop_file(path=_write(tmp_path, [NUMBER, *others]), by=ig_officer)

    assert _entries(snapshot) == _rows("ndop", "ndop_file", _pseudonyms([NUMBER, *others])) | _rows(
        "ndop", "manual", [_pseudonym(NUMBER)]
    )
    assert (snapshot.ndop_count, snapshot.manual_count) == (3, 1)


# --- Type 1 codes (and the NDOP list) from an ingest --------------------------------------
def test_an_ingest_records_type1_dissent_and_the_drops_ndop_list(tmp_path, custodian):
    drop = _drop(tmp_path, seed=1)
    type1, ndop = _pseudonyms(_dissenters(drop)), _pseudonyms(_ndop_list(drop))
    assert 0 < len(type1) < PEOPLE and 0 < len(ndop) < PEOPLE  # the drop carries both

    ingest = _ingest(drop, custodian)

    snapshot = register.current_snapshot()
    assert snapshot is not None
    assert snapshot.number == 1
    assert snapshot.trigger == Trigger.INGEST
    assert snapshot.ingest == ingest
    assert snapshot.created_by == custodian
    assert snapshot.source_label == ingest.source_label
    assert snapshot.source_hash == hashlib.sha256((drop / "ndop.csv").read_bytes()).hexdigest()
    assert snapshot.invalid_count == 0  # a fault-free drop
    assert snapshot.imported_sources == ["gp_events", "ndop_file"]
    assert snapshot.key_version == ingest.key_version == 1
    expected = _rows("type1", "gp_events", type1) | _rows("ndop", "ndop_file", ndop)
    assert _entries(snapshot) == expected
    assert _counts(snapshot) == (len(ndop), len(type1), 0, 0)
    assert snapshot.content_hash == _expected_hash(expected)


def test_a_later_drop_replaces_the_type1_and_ndop_rows_of_the_earlier_one(tmp_path, custodian):
    one, two = _drop(tmp_path, seed=1), _drop(tmp_path, seed=2)
    _ingest(one, custodian)

    _ingest(two, custodian)

    snapshot = register.current_snapshot()
    assert snapshot is not None and snapshot.number == 2
    type1, ndop = _pseudonyms(_dissenters(two)), _pseudonyms(_ndop_list(two))
    assert _entries(snapshot) == _rows("type1", "gp_events", type1) | _rows(
        "ndop", "ndop_file", ndop
    )
    earlier = _pseudonyms(_dissenters(one) | _ndop_list(one))
    assert earlier and not earlier & {person for _, person, _ in _entries(snapshot)}


def test_a_drop_without_an_ndop_list_keeps_the_imported_list(tmp_path, custodian, ig_officer):
    numbers = _numbers(12, seed=19)
    register.import_ndop_file(path=_write(tmp_path, numbers), by=ig_officer)
    drop = _drop(tmp_path, seed=2, ndop=False)

    _ingest(drop, custodian)

    snapshot = register.current_snapshot()
    assert snapshot is not None and snapshot.number == 2
    assert snapshot.imported_sources == ["gp_events", "ndop_file"]
    assert _entries(snapshot) == _rows("ndop", "ndop_file", _pseudonyms(numbers)) | _rows(
        "type1", "gp_events", _pseudonyms(_dissenters(drop))
    )


def test_manual_entries_survive_every_kind_of_import(tmp_path, custodian, ig_officer):
    other = _numbers(1, seed=20)[0]
    register.add_manual_optout(nhs_number=NUMBER, kind="type1", reason="letter", by=ig_officer)
    register.add_manual_optout(nhs_number=other, kind="ndop", reason="phone", by=ig_officer)
    manual = _rows("type1", "manual", [_pseudonym(NUMBER)]) | _rows(
        "ndop", "manual", [_pseudonym(other)]
    )
    imports: list[Callable[[], Any]] = [
        lambda: _ingest(_drop(tmp_path, seed=1), custodian),
        lambda: register.import_ndop_file(
            path=_write(tmp_path, _numbers(5, seed=21)), by=ig_officer
        ),
        lambda: _ingest(_drop(tmp_path, seed=2, ndop=False), custodian),
    ]

    for run in imports:
        run()
        snapshot = register.current_snapshot()
        assert snapshot is not None
        assert manual <= _entries(snapshot)
        assert snapshot.manual_count == 2

    assert OptOutSnapshot.objects.count() == 2 + len(imports)


def test_an_ingest_with_no_type1_codes_still_counts_as_a_gp_events_import(
    tmp_path, custodian, ig_officer
):
    register.add_manual_optout(nhs_number=NUMBER, kind="ndop", reason="letter", by=ig_officer)
    drop = _drop(tmp_path, seed=1, ndop=False)
    events = pd.read_csv(drop / "gp_events.csv", dtype=str, keep_default_na=False)
    events[events["snomed_code"] != "827241000000103"].to_csv(drop / "gp_events.csv", index=False)

    _ingest(drop, custodian)

    snapshot = register.current_snapshot()
    assert snapshot is not None
    assert snapshot.imported_sources == ["gp_events"]


# --- manual entries ----------------------------------------------------------------------
def test_a_manual_opt_out_is_held_by_pseudonym_with_its_reason(ig_officer):
    since = mark()

    snapshot = register.add_manual_optout(
        nhs_number=SPELLINGS[0], kind="type1", reason="  Letter received 3 March  ", by=ig_officer
    )

    entry = ManualOptOut.objects.get()
    assert entry.system_pseudonym == _pseudonym(NUMBER)
    assert (entry.kind, entry.key_version, entry.added_by) == ("type1", 1, ig_officer)
    assert entry.reason == "Letter received 3 March"
    assert entry.withdrawn_at is None
    assert snapshot.number == 1
    assert snapshot.trigger == Trigger.MANUAL_ADDED
    assert _counts(snapshot) == (0, 1, 1, 0)
    assert snapshot.imported_sources == []
    assert _entries(snapshot) == _rows("type1", "manual", [_pseudonym(NUMBER)])
    added, imported = events_since(since)
    assert (added.event_type, imported.event_type) == (
        EventType.OPT_OUT_MANUAL_ADDED,
        EventType.OPT_OUT_SNAPSHOT_IMPORTED,
    )
    assert added.data == {"kind": "type1"}
    assert added.target_id == str(entry.pk)
    assert imported.data["trigger"] == "manual_added"


def test_withdrawing_a_manual_opt_out_removes_it_from_the_next_snapshot(ig_officer, second_ig):
    register.add_manual_optout(nhs_number=NUMBER, kind="ndop", reason="letter", by=ig_officer)
    since = mark()

    snapshot = register.withdraw_manual_optout(
        nhs_number=NUMBER, kind="ndop", reason="changed their mind", by=second_ig
    )

    entry = ManualOptOut.objects.get()
    assert entry.withdrawn_by == second_ig
    assert entry.withdrawn_at is not None
    assert entry.withdrawal_reason == "changed their mind"
    assert snapshot.number == 2
    assert snapshot.trigger == Trigger.MANUAL_WITHDRAWN
    assert _counts(snapshot) == (0, 0, 0, 0)
    assert _entries(snapshot) == set()
    assert types_since(since) == [
        EventType.OPT_OUT_MANUAL_WITHDRAWN,
        EventType.OPT_OUT_SNAPSHOT_IMPORTED,
    ]
    assert events_since(since)[0].data == {"kind": "ndop"}


def test_a_withdrawn_opt_out_may_be_recorded_again(ig_officer):
    register.add_manual_optout(nhs_number=NUMBER, kind="ndop", reason="letter", by=ig_officer)
    register.withdraw_manual_optout(nhs_number=NUMBER, kind="ndop", reason="error", by=ig_officer)

    snapshot = register.add_manual_optout(
        nhs_number=NUMBER, kind="ndop", reason="second letter", by=ig_officer
    )

    assert ManualOptOut.objects.count() == 2
    assert ManualOptOut.objects.filter(withdrawn_at__isnull=True).count() == 1
    assert (snapshot.number, snapshot.manual_count) == (3, 1)


def test_manual_entries_and_their_events_hold_no_nhs_number_and_no_reason(ig_officer):
    reasons = ("Objection letter from Mrs Example", "Phoned to cancel, ref 77")
    since = mark()

    register.add_manual_optout(nhs_number=NUMBER, kind="type1", reason=reasons[0], by=ig_officer)
    register.withdraw_manual_optout(
        nhs_number=SPELLINGS[1], kind="type1", reason=reasons[1], by=ig_officer
    )

    events = events_since(since)
    assert len(events) == 4
    text = _event_text(events)
    assert NUMBER not in text and not any(s in text for s in SPELLINGS)
    assert not any(reason in text for reason in reasons)
    row = json.dumps(ManualOptOut.objects.values().get(), default=str)
    assert NUMBER not in row and not any(s in row for s in SPELLINGS)


INVALID_ENTRIES = [
    pytest.param("9434765918", "ndop", "letter", {"nhs_number"}, id="check-digit"),
    pytest.param("943476591", "ndop", "letter", {"nhs_number"}, id="nine-digits"),
    pytest.param("94347659I9", "type1", "letter", {"nhs_number"}, id="letter"),
    pytest.param(NUMBER, "type2", "letter", {"kind"}, id="unknown-kind"),
    pytest.param(NUMBER, "NDOP", "letter", {"kind"}, id="kind-case"),
    pytest.param(NUMBER, "ndop", "", {"reason"}, id="no-reason"),
    pytest.param(NUMBER, "type1", "   ", {"reason"}, id="blank-reason"),
    pytest.param("9434765918", "x", " ", {"nhs_number", "kind", "reason"}, id="all-three"),
]
MANUAL_SERVICES = {
    "add": register.add_manual_optout,
    "withdraw": register.withdraw_manual_optout,
}


@pytest.mark.parametrize("service", MANUAL_SERVICES)
@pytest.mark.parametrize(("nhs_number", "kind", "reason", "fields"), INVALID_ENTRIES)
def test_an_invalid_manual_entry_is_refused_with_field_errors(
    ig_officer, service, nhs_number, kind, reason, fields
):
    since = mark()

    with pytest.raises(ValidationError) as raised:
        MANUAL_SERVICES[service](nhs_number=nhs_number, kind=kind, reason=reason, by=ig_officer)

    assert set(raised.value.errors) == fields
    shown = str(raised.value) + json.dumps(raised.value.errors)
    assert nhs_number.strip() not in shown
    _nothing_written(since)


def test_a_second_active_entry_of_the_same_kind_is_refused(ig_officer):
    first = register.add_manual_optout(
        nhs_number=NUMBER, kind="ndop", reason="letter", by=ig_officer
    )
    since = mark()

    with pytest.raises(ValidationError) as raised:
        register.add_manual_optout(
            nhs_number=SPELLINGS[0], kind="ndop", reason="another letter", by=ig_officer
        )

    assert set(raised.value.errors) == {"nhs_number"}
    assert NUMBER not in str(raised.value) + json.dumps(raised.value.errors)
    assert events_since(since) == []
    assert ManualOptOut.objects.count() == 1
    assert register.current_snapshot() == first
    # The other kind is a different opt-out.
    other = register.add_manual_optout(
        nhs_number=NUMBER, kind="type1", reason="letter", by=ig_officer
    )
    assert (other.manual_count, other.ndop_count, other.type1_count) == (2, 1, 1)


@pytest.mark.parametrize("recorded", ["nothing", "other-kind", "already-withdrawn"])
def test_withdrawing_an_entry_that_is_not_active_is_refused(ig_officer, recorded):
    if recorded == "other-kind":
        register.add_manual_optout(nhs_number=NUMBER, kind="type1", reason="x", by=ig_officer)
    if recorded == "already-withdrawn":
        register.add_manual_optout(nhs_number=NUMBER, kind="ndop", reason="x", by=ig_officer)
        register.withdraw_manual_optout(nhs_number=NUMBER, kind="ndop", reason="y", by=ig_officer)
    snapshots = OptOutSnapshot.objects.count()
    since = mark()

    with pytest.raises(ValidationError) as raised:
        register.withdraw_manual_optout(
            nhs_number=NUMBER, kind="ndop", reason="changed mind", by=ig_officer
        )

    assert set(raised.value.errors) == {"nhs_number"}
    assert NUMBER not in str(raised.value)
    assert events_since(since) == []
    assert OptOutSnapshot.objects.count() == snapshots


# --- the two-person change workflow ------------------------------------------------------
ACTIONS = {"approve": Status.APPROVED, "reject": Status.REJECTED, "withdraw": Status.WITHDRAWN}
ACTION_EVENTS = {
    "approve": EventType.OPT_OUT_EXEMPTION_APPROVED,
    "reject": EventType.OPT_OUT_CHANGE_REJECTED,
    "withdraw": EventType.OPT_OUT_CHANGE_WITHDRAWN,
}
OTHER_ROLES = {
    "researcher": Role.RESEARCHER,
    "custodian": Role.DATA_CUSTODIAN,
    "caldicott_guardian": Role.CALDICOTT_GUARDIAN,
    "administrator": Role.ADMINISTRATOR,
    "output_checker": Role.OUTPUT_CHECKER,
}
CHANGE_ACTORS = ["proposer", "second_ig", *OTHER_ROLES]


def _expected_outcome(status: str, action: str, actor: str) -> type[Exception] | None:
    """Who may act comes first (404 for non-IG, 403 for the wrong IG officer), then the
    state machine (409 for a change that is no longer proposed)."""
    if actor in OTHER_ROLES:
        return NotFound
    if (action == "withdraw") != (actor == "proposer"):
        return PermissionDenied
    return None if ACTIONS[action] in CHANGE_TRANSITIONS[status] else InvalidTransition


def _change_in(status: str, proposer: User, second: User) -> OptOutChange:
    """A proposed exemption, moved to ``status`` by the real services. The returned object
    is as it was proposed: services must re-read the row, not trust the caller's copy."""
    change = _exemption(proposer)
    if status == Status.APPROVED:
        _approve(change, second)
    elif status == Status.REJECTED:
        optout_changes.decide_change(change=change, approve=False, reason="no letter", by=second)
    elif status == Status.WITHDRAWN:
        optout_changes.withdraw_change(change=change, by=proposer)
    return change


@pytest.mark.parametrize("actor", CHANGE_ACTORS)
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("status", Status.values)
def test_change_workflow_matrix(ig_officer, second_ig, status, action, actor):
    change = _change_in(status, ig_officer, second_ig)
    people = {"proposer": ig_officer, "second_ig": second_ig}
    by = people.get(actor) or scenarios.person(OTHER_ROLES[actor])
    expected = _expected_outcome(status, action, actor)
    since = mark()

    def act() -> OptOutChange:
        if action == "withdraw":
            return optout_changes.withdraw_change(change=change, by=by)
        return optout_changes.decide_change(
            change=change, approve=action == "approve", reason="letter checked", by=by
        )

    if expected is not None:
        with pytest.raises(expected):
            act()
        assert events_since(since) == []
        assert OptOutChange.objects.get(pk=change.pk).status == status
        return
    result = act()
    stored = OptOutChange.objects.get(pk=change.pk)
    assert result.status == stored.status == ACTIONS[action]
    assert stored.decided_at is not None
    assert stored.decided_by == (None if action == "withdraw" else by)
    assert types_since(since) == [ACTION_EVENTS[action]]
    assert events_since(since)[0].actor_id == by.pk


def test_the_change_state_machine_covers_every_status():
    assert set(CHANGE_TRANSITIONS) == set(CHANGE_OWNERS) == set(Status.values)
    assert {s for s, targets in CHANGE_TRANSITIONS.items() if targets} == {Status.PROPOSED}


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_rejection_needs_a_reason(ig_officer, second_ig, reason):
    change = _exemption(ig_officer)
    since = mark()

    with pytest.raises(ValidationError) as raised:
        optout_changes.decide_change(change=change, approve=False, reason=reason, by=second_ig)

    assert set(raised.value.errors) == {"decision_reason"}
    assert OptOutChange.objects.get(pk=change.pk).status == Status.PROPOSED
    assert events_since(since) == []


def test_a_decision_records_who_when_and_why(ig_officer, second_ig):
    change = _exemption(ig_officer)

    rejected = optout_changes.decide_change(
        change=change, approve=False, reason="  letter has expired  ", by=second_ig
    )

    stored = OptOutChange.objects.get(pk=change.pk)
    assert stored == rejected
    assert (stored.status, stored.decided_by) == (Status.REJECTED, second_ig)
    assert stored.decision_reason == "letter has expired"
    assert stored.decided_at is not None and stored.decided_at <= timezone.now()
    assert optout_changes.exemption_for(3) is None


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda change: {"decided_by": change.proposed_by}, id="decided-by-proposer"),
        pytest.param(lambda change: {"project_id": None}, id="exemption-without-project"),
    ],
)
def test_the_database_refuses_a_change_that_breaks_its_rules(ig_officer, write):
    change = _exemption(ig_officer)

    with (
        pytest.raises(IntegrityError),
        transaction.atomic(),
        governed_writes(OptOutChange),
    ):
        OptOutChange.objects.filter(pk=change.pk).update(
            status=Status.APPROVED, decided_at=timezone.now(), **write(change)
        )

    stored = OptOutChange.objects.get(pk=change.pk)
    assert (stored.status, stored.decided_by, stored.project_id) == (Status.PROPOSED, None, 3)


# --- the decision table, versioned -------------------------------------------------------
def test_the_decision_table_is_the_built_in_one_until_a_change_is_approved(ig_officer):
    assert optout_changes.current_decision_table() == DEFAULT_DECISION_TABLE
    assert optout_changes.current_decision_table().version == 1

    optout_changes.propose_platform_policy(
        cells={COPI_TYPE1: "not_applied"}, reason="IG board minute 12", by=ig_officer
    )

    assert optout_changes.current_decision_table() == DEFAULT_DECISION_TABLE


def test_an_approved_platform_policy_change_becomes_version_two(ig_officer, second_ig):
    before = treatment_for(
        optout_changes.current_decision_table(), purpose="research", basis="copi_reg3"
    )
    since = mark()

    change = optout_changes.propose_platform_policy(
        cells={COPI_TYPE1: "not_applied"}, reason="IG board minute 12", by=ig_officer
    )
    approved = _approve(change, second_ig)

    table = optout_changes.current_decision_table()
    assert (change.kind, change.based_on_version, change.table_version) == (
        OptOutChange.Kind.DECISION_TABLE,
        1,
        None,
    )
    assert change.project_id is None
    assert approved.table_version == table.version == 2
    assert approved.payload == table.to_json()
    assert table.rows == DEFAULT_DECISION_TABLE.rows
    assert table.platform_policy == {
        (B.COPI_REG3, OptOutKind.TYPE1): Application.NOT_APPLIED,
        (B.NOT_CONFIDENTIAL, OptOutKind.TYPE1): Application.APPLIED,
    }
    after = treatment_for(table, purpose="research", basis="copi_reg3")
    assert (before.type1_applied, after.type1_applied) == (True, False)
    assert (before.table_version, after.table_version) == (1, 2)
    proposed, changed = events_since(since)
    assert proposed.event_type == EventType.OPT_OUT_CHANGE_PROPOSED
    assert proposed.data == {"kind": "decision_table", "project_id": None}
    assert proposed.actor_id == ig_officer.pk
    assert changed.event_type == EventType.OPT_OUT_POLICY_CHANGED
    assert changed.data == {"version": 2}
    assert changed.actor_id == second_ig.pk


def test_a_change_made_against_an_older_table_is_refused(ig_officer, second_ig):
    first = optout_changes.propose_platform_policy(
        cells={COPI_TYPE1: "not_applied"}, reason="minute 12", by=ig_officer
    )
    stale = optout_changes.propose_platform_policy(
        cells={NOT_CONFIDENTIAL_TYPE1: "not_applied"}, reason="minute 13", by=ig_officer
    )
    _approve(first, second_ig)
    since = mark()

    with pytest.raises(InvalidTransition, match="propose it again"):
        _approve(stale, second_ig)

    stored = OptOutChange.objects.get(pk=stale.pk)
    assert (stored.status, stored.table_version) == (Status.PROPOSED, None)
    assert events_since(since) == []
    table = optout_changes.current_decision_table()
    assert table.version == 2
    assert table.platform_policy[(B.NOT_CONFIDENTIAL, OptOutKind.TYPE1)] is Application.APPLIED
    # A stale proposal can still be rejected, and proposed again against version 2.
    optout_changes.decide_change(change=stale, approve=False, reason="superseded", by=second_ig)
    again = optout_changes.propose_platform_policy(
        cells={NOT_CONFIDENTIAL_TYPE1: "not_applied"}, reason="minute 13", by=ig_officer
    )
    assert again.based_on_version == 2
    assert _approve(again, second_ig).table_version == 3
    latest = optout_changes.current_decision_table()
    assert latest.version == 3
    assert set(latest.platform_policy.values()) == {Application.NOT_APPLIED}


@pytest.mark.parametrize("end", ["rejected", "withdrawn"])
def test_a_rejected_or_withdrawn_table_change_changes_nothing(ig_officer, second_ig, end):
    change = optout_changes.propose_platform_policy(
        cells={COPI_TYPE1: "not_applied"}, reason="minute 12", by=ig_officer
    )

    if end == "rejected":
        optout_changes.decide_change(change=change, approve=False, reason="no", by=second_ig)
    else:
        optout_changes.withdraw_change(change=change, by=ig_officer)

    assert optout_changes.current_decision_table() == DEFAULT_DECISION_TABLE
    assert OptOutChange.objects.get(pk=change.pk).table_version is None


def _table_with(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    table = DEFAULT_DECISION_TABLE.to_json()
    edit(table)
    return table


INVALID_TABLES = [
    pytest.param(lambda: {}, id="empty"),
    pytest.param(
        lambda: _table_with(lambda t: t["rows"][0].update(ndop="applied")),
        id="direct-care-applies-ndop",
    ),
    pytest.param(lambda: _table_with(lambda t: t.update(extra=1)), id="unknown-key"),
    pytest.param(lambda: _table_with(lambda t: t["rows"].pop()), id="missing-basis"),
    pytest.param(
        lambda: _table_with(lambda t: t["rows"][1].update(type1="sometimes")),
        id="unknown-cell",
    ),
    pytest.param(
        lambda: _table_with(
            lambda t: t["platform_policy"].update(s251_standard={"type1": "not_applied"})
        ),
        id="policy-on-a-fixed-cell",
    ),
    pytest.param(
        lambda: _table_with(
            lambda t: t["platform_policy"]["copi_reg3"].update(type1="case_by_case")
        ),
        id="policy-value-not-applied-or-not",
    ),
]


@pytest.mark.parametrize("table", INVALID_TABLES)
def test_an_invalid_table_is_refused(ig_officer, table):
    since = mark()

    with pytest.raises(DecisionTableError) as raised:
        optout_changes.propose_table_change(table=table(), reason="tidy up", by=ig_officer)

    assert raised.value.problems
    assert not OptOutChange.objects.exists()
    assert events_since(since) == []


@pytest.mark.parametrize(
    "cells",
    [{("s251_standard", "type1"): "not_applied"}, {COPI_TYPE1: "maybe"}],
    ids=["not-a-policy-cell", "not-a-policy-value"],
)
def test_an_invalid_platform_policy_is_refused(ig_officer, cells):
    with pytest.raises(DecisionTableError):
        optout_changes.propose_platform_policy(cells=cells, reason="tidy up", by=ig_officer)

    assert not OptOutChange.objects.exists()


NO_OPS = [
    pytest.param(lambda: ("table", DEFAULT_DECISION_TABLE.to_json()), id="same-table"),
    pytest.param(
        lambda: ("table", {**DEFAULT_DECISION_TABLE.to_json(), "version": 99}),
        id="same-table-other-version",
    ),
    pytest.param(lambda: ("cells", {COPI_TYPE1: "applied"}), id="same-policy"),
]


@pytest.mark.parametrize("proposal", NO_OPS)
def test_a_proposal_that_changes_nothing_is_refused(ig_officer, proposal):
    how, value = proposal()
    since = mark()

    with pytest.raises(ValidationError) as raised:
        if how == "table":
            optout_changes.propose_table_change(table=value, reason="no change", by=ig_officer)
        else:
            optout_changes.propose_platform_policy(cells=value, reason="no change", by=ig_officer)

    assert set(raised.value.errors) == {"table"}
    assert not OptOutChange.objects.exists()
    assert events_since(since) == []


@pytest.mark.parametrize("reason", ["", "  \n"])
def test_a_proposal_needs_a_reason(ig_officer, reason):
    with pytest.raises(ValidationError) as raised:
        optout_changes.propose_platform_policy(
            cells={COPI_TYPE1: "not_applied"}, reason=reason, by=ig_officer
        )

    assert set(raised.value.errors) == {"reason"}
    assert not OptOutChange.objects.exists()


# --- exemptions --------------------------------------------------------------------------
def test_an_approved_exemption_is_the_projects_alone(ig_officer, second_ig):
    since = mark()
    change = _exemption(ig_officer, project_id=7, cag_letter_disapplies_type1=True)
    assert optout_changes.exemption_for(7) is None  # proposed is not approved

    _approve(change, second_ig)

    exemption = optout_changes.exemption_for(7)
    assert exemption is not None and exemption.pk == change.pk
    flags = optout_changes.exemption_flags(exemption)
    assert flags == {
        "cag_letter_disapplies_type1": True,
        "instrument_overrides_type1": False,
        "caldicott_type1_decision": None,
    }
    assert optout_changes.exemption_for(8) is None
    assert optout_changes.exemption_flags(None) == {
        "cag_letter_disapplies_type1": False,
        "instrument_overrides_type1": False,
        "caldicott_type1_decision": None,
    }
    proposed, approved = events_since(since)
    assert proposed.event_type == EventType.OPT_OUT_CHANGE_PROPOSED
    assert proposed.data == {"kind": "exemption", "project_id": 7}
    assert approved.event_type == EventType.OPT_OUT_EXEMPTION_APPROVED
    assert approved.data == {"project_id": 7, **flags}
    assert optout_changes.current_decision_table() == DEFAULT_DECISION_TABLE


@pytest.mark.parametrize(
    ("flags", "basis"),
    [
        ({"cag_letter_disapplies_type1": True}, B.S251_CAG_NDOP_EXEMPTION),
        ({"instrument_overrides_type1": True}, B.LEGAL_REQUIREMENT),
        ({"caldicott_type1_decision": "not_applied"}, B.OVERRIDING_PUBLIC_INTEREST),
    ],
    ids=["cag-letter", "legal-instrument", "caldicott"],
)
def test_an_exemption_disapplies_type1_for_its_project_only(ig_officer, second_ig, flags, basis):
    _approve(_exemption(ig_officer, project_id=7, **flags), second_ig)
    table = optout_changes.current_decision_table()

    exempt, other = (
        treatment_for(
            table,
            purpose="research",
            basis=basis,
            **optout_changes.exemption_flags(optout_changes.exemption_for(project)),
        )
        for project in (7, 8)
    )

    assert (exempt.type1_applied, other.type1_applied) == (False, True)


def test_the_latest_approved_exemption_is_the_one_that_counts(ig_officer, second_ig):
    _approve(_exemption(ig_officer, project_id=7, cag_letter_disapplies_type1=True), second_ig)
    latest = _approve(
        _exemption(ig_officer, project_id=7, caldicott_type1_decision="applied"), second_ig
    )
    rejected = _exemption(ig_officer, project_id=7, instrument_overrides_type1=True)
    optout_changes.decide_change(
        change=rejected, approve=False, reason="no instrument", by=second_ig
    )
    _exemption(ig_officer, project_id=7, instrument_overrides_type1=True)  # still proposed

    exemption = optout_changes.exemption_for(7)

    assert exemption is not None and exemption.pk == latest.pk
    assert optout_changes.exemption_flags(exemption) == {
        "cag_letter_disapplies_type1": False,
        "instrument_overrides_type1": False,
        "caldicott_type1_decision": "applied",
    }


INVALID_EXEMPTIONS = [
    pytest.param({"project_id": 0}, {"project_id"}, id="project-zero"),
    pytest.param({"project_id": -1}, {"project_id"}, id="project-negative"),
    pytest.param({"project_id": True}, {"project_id"}, id="project-bool"),
    pytest.param({"project_id": "7"}, {"project_id"}, id="project-text"),
    pytest.param({"project_id": None}, {"project_id"}, id="project-none"),
    pytest.param(
        {"caldicott_type1_decision": "maybe"}, {"caldicott_type1_decision"}, id="caldicott-text"
    ),
    pytest.param(
        {"caldicott_type1_decision": "case_by_case"},
        {"caldicott_type1_decision"},
        id="caldicott-cell-value",
    ),
    pytest.param({"reason": "  "}, {"reason"}, id="no-reason"),
    pytest.param(
        {"project_id": 0, "caldicott_type1_decision": "x"},
        {"project_id", "caldicott_type1_decision"},
        id="two-fields",
    ),
]


@pytest.mark.parametrize(("override", "fields"), INVALID_EXEMPTIONS)
def test_an_invalid_exemption_is_refused(ig_officer, override, fields):
    arguments = {"project_id": 7, "reason": "CAG letter", "by": ig_officer, **override}
    since = mark()

    with pytest.raises(ValidationError) as raised:
        optout_changes.propose_exemption(**arguments)

    assert set(raised.value.errors) == fields
    assert not OptOutChange.objects.exists()
    assert events_since(since) == []


# --- key rotation ------------------------------------------------------------------------
def test_after_a_key_rotation_the_register_starts_again_from_new_imports(
    tmp_path, custodian, ig_officer
):
    _ingest(_drop(tmp_path, seed=1), custodian)
    register.add_manual_optout(nhs_number=NUMBER, kind="type1", reason="letter", by=ig_officer)
    old = register.current_snapshot()
    assert old is not None and old.imported_sources == ["gp_events", "ndop_file"]
    old_ids = {person for _, person, _ in _entries(old)}
    numbers = _numbers(8, seed=22)

    assert rotate_development_key("system") == 2
    snapshot = register.import_ndop_file(path=_write(tmp_path, numbers), by=ig_officer)

    assert snapshot.number == old.number + 1
    assert snapshot.key_version == 2
    assert snapshot.imported_sources == ["ndop_file"]
    assert _entries(snapshot) == _rows("ndop", "ndop_file", _pseudonyms(numbers, version=2))
    assert not old_ids & {person for _, person, _ in _entries(snapshot)}
    assert (snapshot.type1_count, snapshot.manual_count) == (0, 0)
    assert snapshot.stale_manual_count == 1
    # A manual entry made now is under the new key; the old one stays stale.
    newer = register.add_manual_optout(
        nhs_number=numbers[0], kind="type1", reason="letter", by=ig_officer
    )
    assert (newer.manual_count, newer.stale_manual_count, newer.key_version) == (1, 1, 2)
    assert ManualOptOut.objects.get(kind="type1", key_version=2).system_pseudonym == (
        _pseudonym(numbers[0], version=2)
    )


def test_the_same_list_after_a_key_rotation_is_a_new_snapshot(tmp_path, ig_officer):
    numbers = _numbers(8, seed=23)
    first = register.import_ndop_file(path=_write(tmp_path, numbers), by=ig_officer)
    rotate_development_key("system")

    second = register.import_ndop_file(path=_write(tmp_path, numbers), by=ig_officer)

    assert second.number == 2 and second.key_version == 2
    assert second.content_hash != first.content_hash
    assert _entries(second) == _rows("ndop", "ndop_file", _pseudonyms(numbers, version=2))


def test_entering_a_manual_opt_out_again_after_a_key_rotation_clears_the_stale_count(
    ig_officer,
):
    register.add_manual_optout(nhs_number=NUMBER, kind="ndop", reason="letter", by=ig_officer)
    rotate_development_key("system")

    snapshot = register.add_manual_optout(
        nhs_number=NUMBER, kind="ndop", reason="letter, entered again", by=ig_officer
    )

    assert snapshot.manual_count == 1
    assert snapshot.stale_manual_count == 0


# --- who may use the register ------------------------------------------------------------
def _outsider(kind: str) -> Any:
    if kind == "anonymous":
        return AnonymousUser()
    if kind in ("suspended_ig_officer", "former_ig_officer"):
        person = scenarios.person(Role.IG_OFFICER)
        if kind == "suspended_ig_officer":
            services.suspend_account(user=person, by=scenarios.administrator(), reason="left")
        else:
            services.remove_role(user=person, role=Role.IG_OFFICER, by=scenarios.administrator())
        return User.objects.get(pk=person.pk)
    return scenarios.person(Role(kind), accredited=kind == Role.RESEARCHER)


NOT_IG = [role.value for role in Role if role != Role.IG_OFFICER]
OUTSIDERS = [*NOT_IG, "suspended_ig_officer", "former_ig_officer", "anonymous"]
OPERATIONS = [
    "import_ndop_file",
    "add_manual_optout",
    "withdraw_manual_optout",
    "propose_table_change",
    "propose_platform_policy",
    "propose_exemption",
    "approve_change",
    "reject_change",
    "withdraw_change",
    "visible_changes_for",
]


def _operation(name: str, ig: User, tmp_path: Path) -> Callable[[Any], Any]:
    """The operation, set up so that an IG officer doing it would succeed."""
    change = _exemption(ig)
    if name == "withdraw_manual_optout":
        register.add_manual_optout(nhs_number=NUMBER, kind="ndop", reason="letter", by=ig)
    path = _write(tmp_path, [NUMBER])
    table = {
        **DEFAULT_DECISION_TABLE.to_json(),
        "platform_policy": {"copi_reg3": {"type1": "not_applied"}},
    }
    return {
        "import_ndop_file": lambda by: register.import_ndop_file(path=path, by=by),
        "add_manual_optout": lambda by: register.add_manual_optout(
            nhs_number=NUMBER, kind="type1", reason="letter", by=by
        ),
        "withdraw_manual_optout": lambda by: register.withdraw_manual_optout(
            nhs_number=NUMBER, kind="ndop", reason="changed mind", by=by
        ),
        "propose_table_change": lambda by: optout_changes.propose_table_change(
            table=table, reason="minute 12", by=by
        ),
        "propose_platform_policy": lambda by: optout_changes.propose_platform_policy(
            cells={COPI_TYPE1: "not_applied"}, reason="minute 12", by=by
        ),
        "propose_exemption": lambda by: optout_changes.propose_exemption(
            project_id=9, cag_letter_disapplies_type1=True, reason="CAG letter", by=by
        ),
        "approve_change": lambda by: optout_changes.decide_change(
            change=change, approve=True, reason="", by=by
        ),
        "reject_change": lambda by: optout_changes.decide_change(
            change=change, approve=False, reason="no", by=by
        ),
        "withdraw_change": lambda by: optout_changes.withdraw_change(change=change, by=by),
        "visible_changes_for": lambda by: list(optout_changes.visible_changes_for(by)),
    }[name]


def _register_state() -> tuple[Any, ...]:
    return (
        list(OptOutSnapshot.objects.values_list("pk", flat=True)),
        list(ManualOptOut.objects.values_list("pk", "withdrawn_at")),
        list(OptOutChange.objects.values_list("pk", "status")),
    )


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("outsider", OUTSIDERS)
def test_nobody_but_an_ig_officer_may_see_the_register(tmp_path, operation, outsider):
    ig = scenarios.person(Role.IG_OFFICER)
    act = _operation(operation, ig, tmp_path)
    by = _outsider(outsider)
    state = _register_state()
    since = mark()

    with pytest.raises(NotFound):
        act(by)

    assert events_since(since) == []
    assert _register_state() == state


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_ig_officer_may_do_what_outsiders_may_not(tmp_path, second_ig, operation):
    ig = scenarios.person(Role.IG_OFFICER)
    act = _operation(operation, ig, tmp_path)
    # The proposer withdraws; a second IG officer decides; anyone IG does the rest.
    by = ig if operation == "withdraw_change" else second_ig

    assert act(by)


@pytest.mark.parametrize("operation", [o for o in OPERATIONS if o != "import_ndop_file"])
def test_the_system_user_may_only_import(tmp_path, operation):
    act = _operation(operation, scenarios.person(Role.IG_OFFICER), tmp_path)
    state = _register_state()

    with pytest.raises(NotFound):
        act(get_system_user())

    assert _register_state() == state


def test_the_system_user_may_import_an_ndop_file(tmp_path):
    system = get_system_user()
    since = mark()

    snapshot = register.import_ndop_file(path=_write(tmp_path, [NUMBER]), by=system)

    assert snapshot.created_by == system
    assert snapshot.ndop_count == 1
    (event,) = events_since(since)
    assert (event.event_type, event.actor_id) == (EventType.OPT_OUT_SNAPSHOT_IMPORTED, system.pk)


# --- small counts ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (None, "—"),
        (0, "0"),
        (1, "fewer than 10"),
        (9, "fewer than 10"),
        (10, "10"),
        (12345, "12,345"),
    ],
)
def test_small_counts_are_suppressed(count, shown):
    assert register.suppressed(count) == shown
