"""Fixtures for the release workflow tests.

The analysis tests' project (active, its real and dummy extracts built) is shared here,
and so is what these tests start from: the people around the project, a finished dummy
job with the standard files, a finished real-data job, a job of another project, and a
release request resting in every state of the workflow (tests/unit/outputs/builders.py).
Making those through the real services takes a few seconds, and the transition matrix
alone has hundreds of cases, so they are made once per module and worker, the way
tests/unit/sde/analysis/conftest.py makes its project: the rows inside a transaction
each test's own is nested in (tests/shared_db.py), the files (jobs and release store)
copied into each test's own data root. Each test starts from the same rows and bytes,
and nothing it changes is seen by the next.

Every test here that touches the database asks for ``project`` (directly or through
``releases``): the tests of a module that do not run first, before the shared rows are
built."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from outputs.models import ReleaseRequest
from sde.analysis.models import Job
from sde.data.extracts import current_extract
from sde.identity.models import User
from sde.projects.models import Project
from sde.projects.services import MemberSpec, create_project
from tests import scenarios
from tests.conftest import private_settings
from tests.shared_db import shared_rows
from tests.unit.outputs import builders
from tests.unit.sde.analysis import conftest as analysis_fixtures
from tests.unit.sde.projects import builders as project_builders

# The analysis fixtures, shared here.
drop_dir = analysis_fixtures.drop_dir
data_root = analysis_fixtures.data_root
_world = analysis_fixtures._world
_no_world_outside_its_tests = analysis_fixtures._no_world_outside_its_tests
custodian = analysis_fixtures.custodian
ig = analysis_fixtures.ig
member = analysis_fixtures.member
organisation = analysis_fixtures.organisation
ingested = analysis_fixtures.ingested
project = analysis_fixtures.project
run = analysis_fixtures.run

SHARED_FOLDERS = ("jobs", "releases", "ledger")  # what the release world adds to the data root


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In each module here, the tests that do not ask for ``project`` first (as the
    analysis conftest orders its own folder's)."""
    here = Path(__file__).parent
    start = 0
    while start < len(items):
        path, end = items[start].path, start
        while end < len(items) and items[end].path == path:
            end += 1
        if path.is_relative_to(here):
            run = items[start:end]
            shares = [analysis_fixtures.WORLD in getattr(i, "fixturenames", ()) for i in run]
            items[start:end] = [i for i, s in zip(run, shares, strict=True) if not s] + [
                i for i, s in zip(run, shares, strict=True) if s
            ]
        start = end


@dataclass(frozen=True)
class _Built:
    folder: Path  # the data root the rows' files were written under
    people: dict[str, int]
    job: int
    real_job: int
    other_job: int
    requests: dict[str, int]


def _build(world: analysis_fixtures.World, folder: Path) -> _Built:
    project = Project.objects.get(pk=world.project)
    author, ig = User.objects.get(pk=world.member), User.objects.get(pk=world.ig)
    people = builders.cast(project, author=author, ig=ig)
    job = builders.finish_job(project, author)
    real_job = builders.finish_job(project, author, on_dummy=False)
    other = create_project(
        title="Another project", lay_summary="Someone else's outputs.",
        organisation=scenarios.organisation(), scope=dict(project_builders.SCOPE),
        start_date=project_builders.START, end_date=project_builders.END,
        members=[MemberSpec(author, "principal_investigator")], by=ig,
    )  # fmt: skip
    other_job = builders.finish_job(
        other, author, extract=current_extract(project.pk, dummy=True)
    )  # its own extracts are not built; the job's files are what matter
    made = {**builders.STATES, **builders.MORE}
    requests = {state: make(job, people).pk for state, make in made.items()}
    for state, pk in requests.items():
        status = ReleaseRequest.objects.get(pk=pk).status
        assert state in builders.MORE or status == builders.status_of(state), (state, status)
    return _Built(
        folder=folder,
        people={name: getattr(people, name).pk for name in builders.Cast.__dataclass_fields__},
        job=job.pk, real_job=real_job.pk, other_job=other_job.pk, requests=requests,
    )  # fmt: skip


@pytest.fixture(scope="module")
def _release_world(
    _world: analysis_fixtures.World,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[_Built]:
    folder = tmp_path_factory.mktemp("release-world")
    shutil.copytree(_world.folder / "data", folder / "data")
    private = private_settings(folder, key_dir=_world.folder / "keys")

    def build() -> _Built:
        with private:
            return _build(_world, folder / "data")

    with shared_rows(django_db_blocker, build) as built:
        yield built


@dataclass(frozen=True)
class Releases:
    """What a test starts from (see the module docstring)."""

    project: Project
    people: builders.Cast
    job: Job  # a dummy run with the standard files
    real_job: Job  # a run on the real extract with the standard files
    other_job: Job  # a dummy run of another project (its author is a member of both)
    requests: dict[str, int]

    def request(self, state: str) -> ReleaseRequest:
        """The request resting in ``state`` (a key of builders.STATES or builders.MORE)."""
        return ReleaseRequest.objects.get(pk=self.requests[state])


@pytest.fixture
def releases(project: Project, _release_world: _Built, data_root: Path) -> Releases:
    for name in SHARED_FOLDERS:
        if (_release_world.folder / name).is_dir():
            shutil.copytree(_release_world.folder / name, data_root / name, dirs_exist_ok=True)
    users = {u.pk: u for u in User.objects.filter(pk__in=_release_world.people.values())}
    people = builders.Cast(**{name: users[pk] for name, pk in _release_world.people.items()})
    return Releases(
        project=project, people=people, job=Job.objects.get(pk=_release_world.job),
        real_job=Job.objects.get(pk=_release_world.real_job),
        other_job=Job.objects.get(pk=_release_world.other_job),
        requests=_release_world.requests,
    )  # fmt: skip


@pytest.fixture
def people(releases: Releases) -> builders.Cast:
    return releases.people


@pytest.fixture
def job(releases: Releases) -> Job:
    return releases.job
