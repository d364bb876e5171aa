"""Fixtures shared by the project-core tests (the builders are in ``builders``)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sde.data import synth
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects import services
from sde.projects.models import Project
from tests import scenarios
from tests.shared_db import module_custodian
from tests.unit.sde.projects.builders import DROP_TABLES, END, SCOPE, START, researcher


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path, custodian: User) -> Path:
    """Every test: a private data root, fast password hashing and the catalogue (the
    project scope is checked against it)."""
    return private_data_root


# Every test here has the catalogue (``data_root``): made once for the module.
custodian = module_custodian


@pytest.fixture
def ig(db: None) -> User:
    return scenarios.person(Role.IG_OFFICER)


@pytest.fixture
def member(db: None) -> User:
    return researcher()


@pytest.fixture
def organisation(db: None) -> Organisation:
    return scenarios.organisation()


@pytest.fixture
def make_project(ig: User, member: User, organisation: Organisation) -> Callable[..., Project]:
    def make(**changes: Any) -> Project:
        fields: dict[str, Any] = {
            "title": "Hypertension in North Place",
            "lay_summary": "Who is treated for high blood pressure, and who is missed.",
            "organisation": organisation,
            "scope": copy.deepcopy(SCOPE),
            "start_date": START,
            "end_date": END,
            "members": [services.MemberSpec(member, "principal_investigator")],
            "by": ig,
        }
        fields.update(changes)
        return services.create_project(**fields)

    return make


@pytest.fixture(scope="session")
def drop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 300 synthetic people (no faults): patients, GP events and the NDOP list."""
    path = tmp_path_factory.mktemp("project-drop")
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=150)
    synth.write_drop(synth.generate(patients=300, seed=5, config=config, tables=DROP_TABLES), path)
    return path


@pytest.fixture
def ingested(drop_dir: Path, custodian: User) -> Ingest:
    done = run_ingest(
        ingest=request_ingest(drop_dir=drop_dir, by=custodian, enqueue=False), by=custodian
    )
    assert done.status == Ingest.Status.SUCCEEDED
    return done
