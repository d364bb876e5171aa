"""The direct care world, built once per module and shared (tests/shared_db.py): an
ingested synthetic drop of two practices (Y99001, Y99002), a planning project and a
research project each with a cohort found on its real extract by the cohort analysis, a
clinician at each practice, two IG officers and a Caldicott Guardian. Each test gets the
world's rows (rolled back after it) and a copy of its files and keys."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from sde.analysis import services as analysis
from sde.analysis.models import Cohort
from sde.data import synth
from sde.data.catalogue import register_standard_datasets
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.directcare import services as directcare
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects import services as projects
from sde.projects.models import Project
from sde.tasks import build_project_extracts_task
from tests import scenarios
from tests.conftest import private_settings
from tests.shared_db import shared_rows
from tests.unit.sde.analysis.conftest import SCOPE as ANALYSIS_SCOPE
from tests.unit.sde.projects import builders

PRACTICES = ("Y99001", "Y99002")
COHORT = {"index_date": "2026-01-01", "definition": {"age": {"min": 18}}, "name": "adults"}


@dataclass(frozen=True)
class World:
    folder: Path
    planning: int
    research: int
    planning_cohort: int
    research_cohort: int
    practice: int
    other_practice: int
    clinician: int
    other_clinician: int
    ig: int
    ig2: int
    caldicott: int
    member: int


def _scope(purpose: str) -> dict[str, Any]:
    scope = copy.deepcopy(ANALYSIS_SCOPE)
    scope["purpose"] = purpose
    return scope


def _project(purpose: str, ig: User, member: User, organisation: Organisation) -> Project:
    project = projects.create_project(
        title=f"A {purpose} project", lay_summary="Finding people who need a review.",
        organisation=organisation, scope=_scope(purpose), start_date=builders.START,
        end_date=builders.END, members=[projects.MemberSpec(member, "principal_investigator")],
        by=ig,
    )  # fmt: skip
    assert build_project_extracts_task(project.pk) == "built"
    return project


def _cohort(project: Project, member: User) -> Cohort:
    job = analysis.submit_job(project=project, by=member, on_dummy=False, analysis="cohort",
                              parameters=dict(COHORT))  # fmt: skip
    analysis.run_job(job_id=job.pk, worker="test")
    return Cohort.objects.get(job_id=job.pk)


def _clinician(practice: Organisation) -> User:
    clinician = scenarios.person(Role.CLINICIAN)
    identity.add_membership(user=clinician, organisation=practice, by=scenarios.administrator())
    return clinician


def _build(folder: Path, drop: Path) -> World:
    custodian = scenarios.person(Role.DATA_CUSTODIAN)
    register_standard_datasets(by=custodian)
    ingest = run_ingest(ingest=request_ingest(drop_dir=drop, by=custodian, enqueue=False),
                        by=custodian)  # fmt: skip
    assert ingest.status == Ingest.Status.SUCCEEDED
    ig, ig2 = scenarios.person(Role.IG_OFFICER), scenarios.person(Role.IG_OFFICER)
    caldicott = scenarios.person(Role.CALDICOTT_GUARDIAN)
    member = builders.researcher()
    icb = scenarios.organisation(Organisation.Kind.ICB)
    planning, research = (_project(p, ig, member, icb) for p in ("planning", "research"))
    gp = [scenarios.organisation(Organisation.Kind.GP_PRACTICE, ods) for ods in PRACTICES]
    return World(
        folder, planning.pk, research.pk, _cohort(planning, member).pk,
        _cohort(research, member).pk, gp[0].pk, gp[1].pk, _clinician(gp[0]).pk,
        _clinician(gp[1]).pk, ig.pk, ig2.pk, caldicott.pk, member.pk,
    )  # fmt: skip


@pytest.fixture(scope="session")
def direct_care_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 synthetic people, 300 per practice, no faults."""
    path = tmp_path_factory.mktemp("direct-care-drop")
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=300)
    tables = ("patients", "gp_events", "gp_medications", "apc_spells", "ae_attendances", "ndop")
    synth.write_drop(synth.generate(patients=600, seed=11, config=config, tables=tables), path)
    return path


@pytest.fixture(scope="module")
def _world(
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
    direct_care_drop: Path,
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("direct-care-world")
    private = private_settings(folder)

    def build() -> World:
        with private:
            return _build(folder, direct_care_drop)

    with shared_rows(django_db_blocker, build) as world:
        yield world


@pytest.fixture
def world(_world: World, private_data_root: Path, db: None) -> World:
    """The world's rows, and a private copy of its data root and keys."""
    shutil.copytree(_world.folder / "data", private_data_root, dirs_exist_ok=True)
    shutil.copytree(_world.folder / "keys", settings.SDE_KEY_DIR, dirs_exist_ok=True)
    return _world


def _user(pk: int) -> User:
    return User.objects.get(pk=pk)


@pytest.fixture
def clinician(world: World) -> User:
    return _user(world.clinician)


@pytest.fixture
def other_clinician(world: World) -> User:
    return _user(world.other_clinician)


@pytest.fixture
def ig(world: World) -> User:
    return _user(world.ig)


@pytest.fixture
def ig2(world: World) -> User:
    return _user(world.ig2)


@pytest.fixture
def caldicott(world: World) -> User:
    return _user(world.caldicott)


@pytest.fixture
def member(world: World) -> User:
    return _user(world.member)


@pytest.fixture
def practice(world: World) -> Organisation:
    return Organisation.objects.get(pk=world.practice)


@pytest.fixture
def other_practice(world: World) -> Organisation:
    return Organisation.objects.get(pk=world.other_practice)


@pytest.fixture
def cohort(world: World) -> Cohort:
    """The planning project's cohort (adults)."""
    return Cohort.objects.get(pk=world.planning_cohort)


@pytest.fixture
def research_cohort(world: World) -> Cohort:
    return Cohort.objects.get(pk=world.research_cohort)


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """No broker here: the ids of the requests the services would send to the worker."""
    ids: list[int] = []
    monkeypatch.setattr(directcare, "_enqueue", ids.append)
    return ids


# The people of the permission matrices (``people``), in their columns' order.
PEOPLE = (
    "anonymous", "clinician", "other_clinician", "colleague", "ig", "ig2", "caldicott",
    "member", "checker", "admin",
)  # fmt: skip


@pytest.fixture
def people(world, clinician, other_clinician, ig, ig2, caldicott, member, practice) -> dict:
    """Everyone the permission matrices ask: a clinician at the requester's practice who
    did not ask ("colleague"), people without any direct care role, and anonymous."""
    colleague = scenarios.person(Role.CLINICIAN)
    identity.add_membership(user=colleague, organisation=practice, by=scenarios.administrator())
    return {
        "anonymous": None, "clinician": clinician, "other_clinician": other_clinician,
        "colleague": colleague, "ig": ig, "ig2": ig2, "caldicott": caldicott, "member": member,
        "checker": scenarios.person(Role.OUTPUT_CHECKER),
        "admin": scenarios.person(Role.ADMINISTRATOR),
    }  # fmt: skip


def url_patterns(patterns: list[Any] | None = None) -> Iterator[URLPattern]:
    """Every URL pattern of the project, through the includes."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from url_patterns(entry.url_patterns)
        else:
            yield entry
