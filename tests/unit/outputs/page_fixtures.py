"""Fixtures for the release pages' tests (imported by test_pages.py; the service tests
keep their own conftest.py).

A project with a real extract of a few synthetic people, and jobs that succeed at once:
the sandbox is stood in for by writing chosen files into the job's output folder (the
sandbox itself is tested in tests/unit/sde/analysis), so the release workflow runs on
real jobs, real outputs and real hashes through the real services."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from outputs import services as releases
from outputs.models import ReleaseFile, ReleaseRequest, Review
from sde.analysis import sandbox
from sde.analysis import services as jobs
from sde.analysis.models import Job
from sde.audit.services import get_system_user
from sde.data import register, synth
from sde.data.extracts import ExtractScope, build_extract
from sde.data.ingestion import request_ingest, run_ingest
from sde.identity.models import User
from sde.identity.roles import Role
from sde.projects.models import Project
from sde.projects.services import MemberSpec, add_member, create_project
from tests import scenarios
from tests.unit.sde.projects.builders import accredit

SCOPE: dict[str, Any] = {"datasets": {"patients": ["person_id", "birth_month", "sex"]},
                         "purpose": "direct_care", "legal_basis": ""}  # fmt: skip


def evidence(rows: list[tuple[str, int]]) -> bytes:
    return json.dumps({
        "kind": "table", "dimensions": ["sex"], "statistics": {"people": "count"},
        "cells": [{"dimensions": {"sex": sex}, "persons": {"people": n}} for sex, n in rows],
    }).encode()  # fmt: skip


def _png() -> bytes:
    """A valid PNG of one pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))  # fmt: skip


# A table failing T1 in its second row (4 people), and one that passes, with a chart
# drawn from it.
SMALL = b"sex,people\nF,12\nM,4\n"
SAFE = b"sex,people\nF,12\nM,15\n"
PNG = _png()
FILES: dict[str, bytes] = {
    "small.csv": SMALL,
    "small.evidence.json": evidence([("F", 12), ("M", 4)]),
    "safe.csv": SAFE,
    "safe.evidence.json": evidence([("F", 12), ("M", 15)]),
    "safe_chart.png": PNG,
    "safe_chart.chart.json": json.dumps(
        {"chart": "safe_chart", "table": "safe", "kind": "bar", "x": "sex", "y": "people"}
    ).encode(),
}
SCRIPT = "import sdelib\nprint('tables written')\n"


@dataclass
class World:
    project: Project
    author: User
    ig: User
    custodian: User
    checkers: list[User]  # three output checkers independent of the project
    finish: Callable[..., Job]  # finish(files=..., script=...) -> a succeeded real job

    def checker_member(self) -> User:
        """An output checker who is also a member of the project."""
        person = scenarios.person(Role.OUTPUT_CHECKER, Role.RESEARCHER)
        _trained(person)
        add_member(project=self.project, member=MemberSpec(person, "analyst"), by=self.ig)
        return person


def _trained(user: User) -> User:
    today = timezone.localdate()
    return accredit(
        user, issued_on=today - timedelta(days=30), expires_on=today + timedelta(days=300)
    )


@pytest.fixture(scope="session")
def release_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("release-drop")
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    synth.write_drop(synth.generate(patients=20, seed=3, config=config, tables=["patients"]),
                     folder)  # fmt: skip
    return folder


@pytest.fixture
def world(
    private_data_root: Path, custodian: User, release_drop: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """The project, its author, IG, three independent output checkers, and ``finish``.
    ``custodian`` (tests/conftest.py) has registered the standard datasets."""
    run_ingest(ingest=request_ingest(drop_dir=release_drop, by=custodian, enqueue=False),
               by=custodian)  # fmt: skip
    ig = scenarios.person(Role.IG_OFFICER)
    register.add_manual_optout(nhs_number="9434765919", kind="ndop", reason="letter", by=ig)
    author = _trained(scenarios.person(Role.RESEARCHER))
    today = timezone.localdate()
    project = create_project(
        title="Hypertension in North Place", lay_summary="Who is treated, and who is missed.",
        organisation=scenarios.organisation(), scope=SCOPE, start_date=today - timedelta(days=30),
        end_date=today + timedelta(days=180),
        members=[MemberSpec(author, "principal_investigator")], by=ig,
    )  # fmt: skip
    extract = build_extract(scope=ExtractScope.from_json({**SCOPE, "project_id": project.pk}),
                            by=custodian)  # fmt: skip
    pending: dict[str, bytes] = {}

    def sandboxed(attempt: Any) -> sandbox.SandboxResult:
        output = attempt.folder / "output"
        output.mkdir(parents=True, exist_ok=True)
        for name, data in pending.items():
            (output / name).write_bytes(data)
        (attempt.folder / "log.txt").write_text("Reading the extract\nWrote the tables\n")
        return sandbox.SandboxResult(outcome="exited", exit_code=0)

    monkeypatch.setattr(jobs, "_run_in_sandbox", sandboxed)
    monkeypatch.setattr(jobs, "_extract_for", lambda job, system: extract)
    monkeypatch.setattr(jobs, "_enqueue", lambda job_id: None)
    monkeypatch.setattr(sandbox, "isolation_refusal", lambda: None)

    def finish(files: dict[str, bytes] | None = None, script: str = SCRIPT,
               by: User | None = None) -> Job:  # fmt: skip
        pending.clear()
        pending.update(FILES if files is None else files)
        saved = jobs.save_script(project=project, name="tables.py", content=script,
                                 by=by or author)  # fmt: skip
        job = jobs.submit_job(project=project, by=by or author, on_dummy=False, script=saved)
        assert jobs.run_job(job_id=job.pk) == "succeeded", Job.objects.get(pk=job.pk).failure
        return Job.objects.get(pk=job.pk)

    checkers = [scenarios.person(Role.OUTPUT_CHECKER) for _ in range(3)]
    yield World(project, author, ig, custodian, checkers, finish)


# --- Driving a request through the services -----------------------------------------------
def output(job: Job, name: str) -> Any:
    return job.outputs.get(name=name)


def draft(world: World, job: Job, *names: str) -> ReleaseRequest:
    """A draft request with ``names`` of ``job`` (context and controls given)."""
    request = releases.create_request(project=world.project, by=world.author, title="Tables")
    for name in names:
        releases.add_file(request=request, job=job, output=output(job, name), by=world.author,
                          context=f"{name}: people by sex", controls="None")  # fmt: skip
    return request


def answer_every_rule(world: World, request: ReleaseRequest) -> None:
    for file in ReleaseFile.objects.filter(request=request, removed_round__isnull=True):
        for rule in file.verdict["rules"]:
            if file.verdict["rules"][rule] != "pass":
                releases.request_exception(file=file, rule=rule, reason="other", by=world.author,
                                           justification="Published nationally.")  # fmt: skip


def submitted(world: World, job: Job, *names: str) -> ReleaseRequest:
    request = draft(world, job, *names)
    answer_every_rule(world, request)
    return releases.submit(request=request, by=world.author)


def review(world: World, request: ReleaseRequest, checker: User, decision: str = "approve",
           comment: str = "Safe.") -> ReleaseRequest:  # fmt: skip
    """``checker`` reviews every current file with ``decision`` and submits."""
    started: Review = releases.start_review(request=request, by=checker)
    for file in ReleaseFile.objects.filter(request=request, removed_round__isnull=True):
        asked = {e.rule: True for e in file.exceptions.all()}
        releases.decide_file(review=started, file=file, decision=decision, comment=comment,
                             exceptions=asked, by=checker)  # fmt: skip
    return releases.submit_review(review=started, by=checker)


def released(world: World, job: Job, *names: str) -> ReleaseRequest:
    request = submitted(world, job, *names)
    review(world, request, world.checkers[0])
    done = review(world, request, world.checkers[1])
    assert done.status == ReleaseRequest.Status.RELEASED
    return done


def system() -> User:
    return get_system_user()
