from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sde.data import synth
from sde.data.extracts import ExtractScope, build_dummy_extract, build_extract, extract_for_use
from sde.data.files import data_root
from sde.data.ingestion import request_ingest, run_ingest

pytestmark = pytest.mark.django_db


def test_smoke(private_data_root: Path, custodian, tmp_path):
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    drop = synth.generate(patients=800, seed=4, config=config)
    synth.write_drop(drop, tmp_path / "drop")
    run_ingest(ingest=request_ingest(drop_dir=tmp_path / "drop", by=custodian, enqueue=False), by=custodian)
    scope = ExtractScope.from_json({
        "project_id": 7,
        "datasets": {"patients": ["person_id", "birth_month", "sex"], "gp-events": ["person_id", "date", "snomed_code"]},
        "purpose": "research", "legal_basis": "s251_standard",
        "date_from": "2020-01-01", "cohort": {"age_min": 18},
    })
    extract = build_extract(scope=scope, by=custodian)
    print(extract.tables, extract.people_removed, extract.rows_removed, extract.person_count)
    dummy = build_dummy_extract(scope=scope, by=custodian)
    for name in extract.tables:
        real = pq.read_schema(data_root() / extract.path / name)
        fake = pq.read_schema(data_root() / dummy.path / name)
        assert real.equals(fake, check_metadata=False), (real, fake)
    assert extract_for_use(project_id=7, by=custodian).pk == extract.pk
    assert extract.people_removed > 0
