"""Fixtures for the analysis tests: the project-core fixtures (a private data root, an
ingested synthetic drop, projects), a project whose extracts are built, and a helper
that runs a job the way the worker does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sde.analysis import services
from sde.analysis.models import Job
from sde.data import synth
from sde.identity.models import User
from sde.projects.models import Project
from sde.tasks import build_project_extracts_task
from tests.unit.sde.projects import conftest as project_fixtures

# The project-core fixtures, shared here.
data_root = project_fixtures.data_root
ig = project_fixtures.ig
ingested = project_fixtures.ingested
make_project = project_fixtures.make_project
member = project_fixtures.member
organisation = project_fixtures.organisation

PATIENT_FIELDS = ["person_id", "birth_month", "sex", "ethnicity", "lsoa_code", "imd_decile",
                  "practice_ods", "pcn_code", "place", "registration_start", "registration_end",
                  "date_of_death"]  # fmt: skip
SCOPE: dict[str, Any] = {
    "datasets": {
        "patients": PATIENT_FIELDS,
        "gp-events": ["person_id", "date", "snomed_code", "value"],
        "gp-medications": ["person_id", "date", "bnf_chapter", "bnf_section"],
        "apc-spells": ["person_id", "admission_date", "discharge_date", "admission_method",
                       "primary_diagnosis_icd10", "cost"],
        "ae-attendances": ["person_id", "arrival_date", "disposal", "cost"],
    },
    "purpose": "research",
    "legal_basis": "s251_standard",
}  # fmt: skip


@pytest.fixture(scope="session")
def drop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 600 synthetic people (no faults) with the tables the analyses read."""
    path = tmp_path_factory.mktemp("analysis-drop")
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=300)
    tables = ("patients", "gp_events", "gp_medications", "apc_spells", "ae_attendances", "ndop")
    synth.write_drop(synth.generate(patients=600, seed=7, config=config, tables=tables), path)
    return path


@pytest.fixture
def project(ingested: Any, make_project: Callable[..., Project]) -> Project:
    """An active project with its real and dummy extracts built."""
    built = make_project(scope=SCOPE)
    assert build_project_extracts_task(built.pk) == "built"
    return built


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Job]:
    """Submit a job and run it as the worker would (in this process), returning it."""
    monkeypatch.setattr(services, "_enqueue", lambda job_id: None)

    def submit_and_run(project: Project, by: User, **job: Any) -> Job:
        submitted = services.submit_job(project=project, by=by, **job)
        services.run_job(job_id=submitted.pk, worker="test")
        return Job.objects.get(pk=submitted.pk)

    return submit_and_run
