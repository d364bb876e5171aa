"""``manage.py import_ndop`` and ``manage.py build_extract``: what an operator sees, and
that bad input is refused with a clear error and changes nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sde.data import register, synth
from sde.data.files import data_root
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Extract, OptOutSnapshot

pytestmark = pytest.mark.django_db
VALID = ["9434765919", "4010232137", "9000000009"]


@pytest.fixture(autouse=True)
def _data_root(private_data_root: Path) -> Path:
    return private_data_root


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_import_ndop_makes_a_snapshot_and_reports_counts_not_numbers(tmp_path):
    path = tmp_path / "ndop.csv"
    path.write_text("\n".join([*VALID, "1234567890"]) + "\n")

    output = _run("import_ndop", str(path))

    snapshot = register.current_snapshot()
    assert snapshot is not None and snapshot.number == 1
    assert (snapshot.ndop_count, snapshot.invalid_count) == (3, 1)
    assert "snapshot 1" in output and "1 invalid lines" in output
    assert "fewer than 10 people" in output  # a small count is not printed exactly
    assert not any(number in output for number in VALID)
    assert "no change" in _run("import_ndop", str(path))
    assert OptOutSnapshot.objects.count() == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "import failed"),
        (b"\xff\xfe\x00not text\n", "import failed"),
        (b"9434765919,extra\n", "import failed"),
    ],
    ids=["empty", "not-utf8", "two-columns"],
)
def test_import_ndop_refuses_a_bad_file_and_changes_nothing(tmp_path, content, message):
    path = tmp_path / "ndop.csv"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        _run("import_ndop", str(path))
    assert not OptOutSnapshot.objects.exists()


def test_import_ndop_refuses_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="is not a file"):
        _run("import_ndop", str(tmp_path / "nope.csv"))


def _ingested(tmp_path: Path, custodian) -> None:
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    drop = synth.generate(
        patients=300, seed=2, config=config, tables=["patients", "gp_events", "ndop"]
    )
    synth.write_drop(drop, tmp_path / "drop")
    ingest = request_ingest(drop_dir=tmp_path / "drop", by=custodian, enqueue=False)
    run_ingest(ingest=ingest, by=custodian)


def test_build_extract_builds_the_scope_and_prints_files_not_removals(tmp_path, custodian):
    _ingested(tmp_path, custodian)
    scope = tmp_path / "scope.json"
    scope.write_text(
        json.dumps(
            {
                "project_id": 3,
                "datasets": {"patients": ["person_id", "sex"]},
                "purpose": "planning",
                "legal_basis": "s251_standard",
            }
        )
    )

    output = _run("build_extract", str(scope))
    dummy_output = _run("build_extract", str(scope), "--dummy")

    real, dummy = Extract.objects.get(is_dummy=False), Extract.objects.get(is_dummy=True)
    assert f"at $SDE_DATA_ROOT/{real.path}" in output and "patients.parquet" in output
    assert f"at $SDE_DATA_ROOT/{dummy.path}" in dummy_output
    assert pq.read_schema(data_root() / real.path / "patients.parquet").names == [
        "person_id",
        "sex",
    ]
    assert real.people_removed > 0 and "removed" not in output


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("not json", "cannot read the scope"),
        ('{"project_id": 1, "datasets": {"nope": ["x"]}, "purpose": "research"}', "nope"),
        ('{"project_id": 1, "datasets": {"patients": ["sex"]}, "purpose": "sales"}', "purpose"),
        ('["a list"]', "invalid scope"),
    ],
    ids=["not-json", "unknown-dataset", "unknown-purpose", "not-an-object"],
)
def test_build_extract_refuses_a_bad_scope_clearly(tmp_path, custodian, scope, message):
    path = tmp_path / "scope.json"
    path.write_text(scope)
    with pytest.raises(CommandError, match=message):
        _run("build_extract", str(path))
    assert not Extract.objects.exists()


def test_build_extract_fails_closed_without_an_opt_out_register(tmp_path, custodian):
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    synth.write_drop(synth.generate(patients=200, seed=3, config=config, tables=["patients"]),
                     tmp_path / "drop")  # fmt: skip
    run_ingest(ingest=request_ingest(drop_dir=tmp_path / "drop", by=custodian, enqueue=False),
               by=custodian)  # fmt: skip
    path = tmp_path / "scope.json"
    path.write_text('{"project_id": 1, "datasets": {"patients": ["sex"]}, "purpose": "research",'
                    ' "legal_basis": "s251_standard"}')  # fmt: skip
    with pytest.raises(CommandError, match="opt-out register is empty"):
        _run("build_extract", str(path))
    assert not Extract.objects.exists()
