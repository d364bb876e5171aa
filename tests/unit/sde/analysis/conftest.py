"""Fixtures for the analysis tests: the project-core fixtures (a private data root, an
ingested synthetic drop, projects), a project whose extracts are built, and a helper
that runs a job the way the worker does.

Ingesting the drop and building a project's extracts take about a second, and most tests
here want exactly that project. So a test that asks for ``project`` gets one built once
per module and worker (the "world", below) instead of its own: its rows are shared
through a transaction each test's own is nested in (tests/shared_db.py), and its files
(the data root's extracts, the key folder) are copied into the test's private folders.
Each test therefore starts from the same rows and files as if it had built them itself,
and nothing it changes is seen by the next. The tests of a module that do not ask for
``project`` run before the world is built (collection order, below), so they see the
database they always saw."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from sde.analysis import services
from sde.analysis.models import Job
from sde.data import synth
from sde.data.catalogue import register_standard_datasets
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects import services as projects
from sde.projects.models import Project
from sde.tasks import build_project_extracts_task
from tests import scenarios
from tests.conftest import private_settings
from tests.shared_db import shared_rows
from tests.unit.sde.projects import builders
from tests.unit.sde.projects import conftest as project_fixtures

# The project-core fixtures, shared here.
data_root = project_fixtures.data_root
make_project = project_fixtures.make_project

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
WORLD = "project"  # the fixture whose tests share the world


@pytest.fixture(scope="session")
def drop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 600 synthetic people (no faults) with the tables the analyses read."""
    path = tmp_path_factory.mktemp("analysis-drop")
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=300)
    tables = ("patients", "gp_events", "gp_medications", "apc_spells", "ae_attendances", "ndop")
    synth.write_drop(synth.generate(patients=600, seed=7, config=config, tables=tables), path)
    return path


# --- The world: what a test asking for ``project`` starts from ---------------------------
@dataclass(frozen=True)
class World:
    folder: Path  # data/ and keys/ as the build left them
    custodian: int
    ingest: int
    ig: int
    member: int
    organisation: int
    project: int


_open_worlds: list[World] = []


def _build_world(folder: Path, drop_dir: Path) -> World:
    """What the per-test fixtures make, in the order they make it: the data custodian and
    the catalogue (``data_root``), the ingest (``ingested``), the IG officer, the member and
    the organisation (``make_project``), and the project with its extracts built."""
    custodian = scenarios.person(Role.DATA_CUSTODIAN)
    register_standard_datasets(by=custodian)
    ingest = run_ingest(
        ingest=request_ingest(drop_dir=drop_dir, by=custodian, enqueue=False), by=custodian
    )
    assert ingest.status == Ingest.Status.SUCCEEDED
    ig = scenarios.person(Role.IG_OFFICER)
    member = builders.researcher()
    organisation = scenarios.organisation()
    built = _make(ig, member, organisation, scope=SCOPE)
    assert build_project_extracts_task(built.pk) == "built"
    return World(folder, custodian.pk, ingest.pk, ig.pk, member.pk, organisation.pk, built.pk)


def _make(ig: User, member: User, organisation: Organisation, **changes: Any) -> Project:
    """``make_project`` (tests/unit/sde/projects/conftest.py) without the fixtures."""
    fields: dict[str, Any] = {
        "title": "Hypertension in North Place",
        "lay_summary": "Who is treated for high blood pressure, and who is missed.",
        "organisation": organisation,
        "scope": copy.deepcopy(builders.SCOPE),
        "start_date": builders.START,
        "end_date": builders.END,
        "members": [projects.MemberSpec(member, "principal_investigator")],
        "by": ig,
    }
    fields.update(changes)
    return projects.create_project(**fields)


@pytest.fixture(scope="module")
def _world(
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
    drop_dir: Path,
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("analysis-world")
    private = private_settings(folder)

    def build() -> World:
        with private:
            return _build_world(folder, drop_dir)

    with shared_rows(django_db_blocker, build) as world:
        _open_worlds.append(world)
        try:
            yield world
        finally:
            _open_worlds.remove(world)


def _in_world(request: pytest.FixtureRequest) -> World | None:
    if WORLD not in request.fixturenames:
        return None
    world: World = request.getfixturevalue("_world")
    return world


@pytest.fixture(autouse=True)
def _no_world_outside_its_tests(request: pytest.FixtureRequest) -> None:
    """A test that does not share the world must never run while one is open (it would
    see the world's rows): collection order puts such tests first in each module, and this
    says so loudly should anything run them out of that order."""
    if WORLD not in request.fixturenames and _open_worlds:
        pytest.fail(
            f"{request.node.nodeid} ran while a shared project (tests/unit/sde/analysis/"
            "conftest.py) was open; run the tests of a module in collection order"
        )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In each module here, the tests that do not ask for ``project`` first (in their
    order), then those that do (in theirs), so the world is built after the others ran."""
    here = Path(__file__).parent
    start = 0
    while start < len(items):
        path = items[start].path
        end = start
        while end < len(items) and items[end].path == path:
            end += 1
        if path.is_relative_to(here):
            run = items[start:end]
            shares = [WORLD in getattr(item, "fixturenames", ()) for item in run]
            items[start:end] = [i for i, s in zip(run, shares, strict=True) if not s] + [
                i for i, s in zip(run, shares, strict=True) if s
            ]
        start = end


# --- The per-test fixtures, from the world when the test shares it ------------------------
@pytest.fixture
def custodian(request: pytest.FixtureRequest, db: None) -> User:
    """A data custodian, with the standard datasets registered."""
    world = _in_world(request)
    if world is not None:
        return User.objects.get(pk=world.custodian)
    person = scenarios.person(Role.DATA_CUSTODIAN)
    register_standard_datasets(by=person)
    return person


@pytest.fixture
def ig(request: pytest.FixtureRequest, db: None) -> User:
    world = _in_world(request)
    if world is not None:
        return User.objects.get(pk=world.ig)
    return scenarios.person(Role.IG_OFFICER)


@pytest.fixture
def member(request: pytest.FixtureRequest, db: None) -> User:
    world = _in_world(request)
    if world is not None:
        return User.objects.get(pk=world.member)
    return builders.researcher()


@pytest.fixture
def organisation(request: pytest.FixtureRequest, db: None) -> Organisation:
    world = _in_world(request)
    if world is not None:
        return Organisation.objects.get(pk=world.organisation)
    return scenarios.organisation()


@pytest.fixture
def ingested(request: pytest.FixtureRequest, drop_dir: Path, custodian: User) -> Ingest:
    world = _in_world(request)
    if world is not None:
        return Ingest.objects.get(pk=world.ingest)
    done = run_ingest(
        ingest=request_ingest(drop_dir=drop_dir, by=custodian, enqueue=False), by=custodian
    )
    assert done.status == Ingest.Status.SUCCEEDED
    return done


@pytest.fixture
def project(_world: World, data_root: Path, ingested: Ingest, custodian: User) -> Project:
    """An active project with its real and dummy extracts built (the world's: its files
    are copied into this test's data root and key folder)."""
    shutil.copytree(_world.folder / "data", data_root, dirs_exist_ok=True)
    shutil.copytree(_world.folder / "keys", settings.SDE_KEY_DIR, dirs_exist_ok=True)
    return Project.objects.get(pk=_world.project)


@pytest.fixture
def built_project(ingested: Any, make_project: Callable[..., Project]) -> Project:
    """An active project with its real and dummy extracts built, by this test (for tests
    that commit, which cannot share the world: tests/integration/test_jobs_worker.py)."""
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
