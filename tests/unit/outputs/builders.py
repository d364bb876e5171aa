"""Builders for the release workflow tests: a job finished through the real job services
with chosen output files (the sandbox stood in for), the people of every role around a
project, and release requests driven into every state through the real services.

No builder writes a governed row itself: every request, file, review and decision is
made by ``outputs.services``, so a state here is one a real user could reach."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pytest

from outputs import selectors, services
from outputs.models import (
    ExceptionRequest,
    FileDecision,
    ReleasedFile,
    ReleaseFile,
    ReleaseRequest,
    Review,
)
from sde.analysis import sandbox
from sde.analysis import services as jobs
from sde.analysis.models import Job, JobOutput
from sde.audit.services import get_system_user
from sde.data.files import data_root
from sde.data.models import Extract
from sde.identity.models import User
from sde.identity.roles import Role
from sde.phm.evidence import count_table
from sde.projects.models import Project
from sde.projects.services import MemberSpec, add_member
from tests import scenarios
from tests.events import mark
from tests.unit.sde.projects.builders import accredit, researcher

S = ReleaseRequest.Status
D = FileDecision.Decision

# The files the stand-in job writes, and what the automated checks make of them.
PASS_TABLE: Final = "people_by_sex.csv"  # every cell >= 10 people: pass
FAIL_TABLE: Final = "small_groups.csv"  # a cell of 3 people: T1 fails (outcome review)
PASS_CHART: Final = "people_by_sex_chart.png"  # drawn from PASS_TABLE: pass
FAIL_CHART: Final = "small_groups_chart.png"  # drawn from FAIL_TABLE: C1 fails (outcome fail)
TEXT: Final = "notes.txt"  # free text, no evidence: review
EVIDENCE: Final = "people_by_sex.evidence.json"
INDEX_DATE: Final = "2026-01-01"


# --- Files -------------------------------------------------------------------------------
def _people(groups: Mapping[str, int]) -> pd.DataFrame:
    sexes = [sex for sex, n in groups.items() for _ in range(n)]
    return pd.DataFrame({"person_id": [f"p{i}" for i in range(len(sexes))], "sex": sexes})


def table_files(name: str, groups: Mapping[str, int]) -> dict[str, bytes]:
    """A count table of people by sex and its evidence sidecar, as sdelib writes them."""
    table = count_table(_people(groups), name=name, title=f"{name} by sex", by=["sex"])
    sidecar = table.sidecar(job_id=0, extract_id=0)
    return {
        f"{name}.csv": table.frame.to_csv(index=False).encode(),
        f"{name}.evidence.json": json.dumps(sidecar, indent=1).encode(),
    }


def png() -> bytes:
    """A valid one-pixel PNG (a chart's bytes; the checks read its ``.chart.json``)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))  # fmt: skip


def chart_files(name: str, table: str) -> dict[str, bytes]:
    described = {"chart": name, "table": table, "kind": "bar", "x": "sex", "y": "people",
                 "title": name}  # fmt: skip
    return {f"{name}.png": png(), f"{name}.chart.json": json.dumps(described).encode()}


def standard_files() -> dict[str, bytes]:
    """A passing and a failing count table with their evidence, a chart of each, and a
    text file."""
    return {
        **table_files("people_by_sex", {"F": 25, "M": 35}),
        **table_files("small_groups", {"F": 30, "M": 3}),
        **chart_files("people_by_sex_chart", "people_by_sex"),
        **chart_files("small_groups_chart", "small_groups"),
        TEXT: b"Counts by sex at the index date.\n",
    }


# --- Jobs --------------------------------------------------------------------------------
def finish_job(
    project: Project,
    by: User,
    files: Mapping[str, bytes] | None = None,
    *,
    on_dummy: bool = True,
    log: bytes = b"population profile: done\n",
    extract: Extract | None = None,
) -> Job:
    """A built-in analysis submitted and run to success by the real job services, with
    the sandbox stood in for by writing ``files`` (default: ``standard_files()``) and the
    log. The sandbox itself is tested in tests/unit/sde/analysis. ``extract``: run on
    this one (a project whose own extracts are not built)."""
    chosen = standard_files() if files is None else dict(files)

    def finished_in_sandbox(attempt: Any) -> sandbox.SandboxResult:
        output = attempt.folder / "output"
        output.mkdir(parents=True)
        for name, data in chosen.items():
            (output / name).write_bytes(data)
        (attempt.folder / "log.txt").write_bytes(log)
        return sandbox.SandboxResult(outcome="exited", exit_code=0, isolated=True)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "_enqueue", lambda job_id: None)
        patch.setattr(jobs, "_run_in_sandbox", finished_in_sandbox)
        # Real data runs only where the sandbox isolates; the stand-in needs none.
        patch.setattr(sandbox, "isolation_refusal", lambda: None)
        if extract is not None:
            patch.setattr(jobs, "_extract_for", lambda job, system: extract)
        job = jobs.submit_job(project=project, by=by, on_dummy=on_dummy,
                              analysis="population_profile",
                              parameters={"index_date": INDEX_DATE})  # fmt: skip
        outcome = jobs.run_job(job_id=job.pk, worker="test")
    finished = Job.objects.get(pk=job.pk)
    assert outcome == Job.Status.SUCCEEDED, finished.failure
    return finished


def output_of(job: Job, name: str) -> JobOutput:
    return job.outputs.get(name=name)


def output_path(job: Job, name: str) -> Path:
    return data_root() / job.folder / "output" / name


def tamper(path: Path, data: bytes = b"changed on disk\n") -> None:
    """Overwrite a file the environment made read-only, as an attacker with the disk would."""
    path.chmod(0o644)
    path.write_bytes(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- People ------------------------------------------------------------------------------
ACTORS: Final = ("author", "other_member", "outsider", "checker", "member_checker", "ig",
                 "system")  # fmt: skip


@dataclass(frozen=True)
class Cast:
    """Everyone around one project. ``checker`` is the independent output checker whose
    turn it is; ``first`` and ``second`` are two more, who hold the earlier reviews."""

    author: User
    other_member: User
    outsider: User
    checker: User
    member_checker: User
    ig: User
    system: User
    first: User
    second: User

    def actor(self, name: str) -> User:
        user: User = getattr(self, name)
        return user


def checker() -> User:
    return scenarios.person(Role.OUTPUT_CHECKER)


def cast(project: Project, *, author: User, ig: User) -> Cast:
    """``author`` (a data-using member) and ``ig`` (who manages the project) given; the
    others made: another data-using member, a researcher outside the project, three
    independent output checkers and an output checker who is a member of the project."""
    other = researcher()
    add_member(project=project, member=MemberSpec(other, "analyst"), by=ig)
    member_checker = accredit(scenarios.person(Role.OUTPUT_CHECKER, Role.RESEARCHER))
    add_member(project=project, member=MemberSpec(member_checker, "analyst"), by=ig)
    return Cast(author=author, other_member=other, outsider=researcher(), checker=checker(),
                member_checker=member_checker, ig=ig, system=get_system_user(),
                first=checker(), second=checker())  # fmt: skip


# --- Requests ----------------------------------------------------------------------------
def file_named(request: ReleaseRequest, name: str) -> ReleaseFile:
    return selectors.current_files(request).get(name=name)


def fresh(request: ReleaseRequest) -> ReleaseRequest:
    return ReleaseRequest.objects.get(pk=request.pk)


def draft(job: Job, by: User, names: tuple[str, ...] = (PASS_TABLE, FAIL_TABLE)) -> ReleaseRequest:
    """A draft with ``names`` from ``job`` and an exception request for every rule a
    file did not pass: ready to submit."""
    return scenarios.release_draft(job, by, [output_of(job, n) for n in names])


def submitted(job: Job, by: User, **kwargs: Any) -> ReleaseRequest:
    return services.submit(request=draft(job, by, **kwargs), by=by)


def review(
    request: ReleaseRequest,
    reviewer: User,
    decision: str | Mapping[str, str] = D.APPROVE,
    *,
    submit: bool = True,
) -> Review:
    """``reviewer`` starts a review, decides every current file (``decision`` for all, or
    by file name) with a comment, and submits it unless ``submit`` is False."""
    started = services.start_review(request=request, by=reviewer)
    for file in selectors.current_files(fresh(request)):
        chosen = decision if isinstance(decision, str) else decision[file.name]
        granted = {e.rule: chosen == D.APPROVE for e in file.exceptions.all()}
        services.decide_file(review=started, file=file, decision=chosen, comment="Checked.",
                             exceptions=granted, by=reviewer)  # fmt: skip
    if submit:
        services.submit_review(review=started, by=reviewer)
    return Review.objects.get(pk=started.pk)


def released(job: Job, people: Cast) -> ReleaseRequest:
    request = submitted(job, people.author)
    review(request, people.first)
    review(request, people.second)
    done = fresh(request)
    assert done.status == S.RELEASED
    return done


def disputed(job: Job, people: Cast) -> ReleaseRequest:
    """Both reviews in, one approving FAIL_TABLE and one rejecting it: waiting for a
    third checker."""
    request = submitted(job, people.author)
    review(request, people.first)
    review(request, people.second, {PASS_TABLE: D.APPROVE, FAIL_TABLE: D.REJECT})
    done = fresh(request)
    assert done.status == S.REVIEWED and selectors.disputed(done), selectors.settled(done)
    return done


def returned(job: Job, people: Cast) -> ReleaseRequest:
    request = submitted(job, people.author)
    review(request, people.first, {PASS_TABLE: D.APPROVE, FAIL_TABLE: D.CHANGES})
    review(request, people.second, {PASS_TABLE: D.APPROVE, FAIL_TABLE: D.CHANGES})
    return fresh(request)


# Every state a request rests in, by the route that reaches it. "approved" never rests:
# the release follows in the same transaction. The "_open" states hold an open review
# of ``checker`` with every file decided, so reviewing actions can be tried in them.
def _draft(job: Job, people: Cast) -> ReleaseRequest:
    return draft(job, people.author)


def _submitted(job: Job, people: Cast) -> ReleaseRequest:
    return submitted(job, people.author)


def _submitted_open(job: Job, people: Cast) -> ReleaseRequest:
    return _open(submitted(job, people.author), people.checker)


def _reviewed_once(job: Job, people: Cast) -> ReleaseRequest:
    request = submitted(job, people.author)
    review(request, people.first)
    return fresh(request)


def _reviewed_once_open(job: Job, people: Cast) -> ReleaseRequest:
    return _open(_reviewed_once(job, people), people.checker)


def _disputed_open(job: Job, people: Cast) -> ReleaseRequest:
    return _open(disputed(job, people), people.checker)


def _rejected(job: Job, people: Cast) -> ReleaseRequest:
    request = submitted(job, people.author)
    review(request, people.first, D.REJECT)
    review(request, people.second, D.REJECT)
    return fresh(request)


def _withdrawn(job: Job, people: Cast) -> ReleaseRequest:
    """Withdrawn while ``checker``'s review was open: that review must stay shut."""
    return services.withdraw(request=_submitted_open(job, people), by=people.author)


def _revoked(job: Job, people: Cast) -> ReleaseRequest:
    return services.revoke(request=released(job, people), by=people.ig,
                           reason="Published in error.")  # fmt: skip


STATES: Final[dict[str, Callable[[Job, Cast], ReleaseRequest]]] = {
    "draft": _draft,
    "submitted": _submitted,
    "submitted_open": _submitted_open,
    "partially_reviewed": _reviewed_once,
    "partially_reviewed_open": _reviewed_once_open,
    "reviewed": disputed,
    "reviewed_open": _disputed_open,
    "returned": returned,
    "rejected": _rejected,
    "withdrawn": _withdrawn,
    "released": released,
    "revoked": _revoked,
}


def _every_outcome(job: Job, people: Cast) -> ReleaseRequest:
    """A file of every outcome (pass, review, fail) under review by ``checker``, undecided."""
    names = (PASS_TABLE, FAIL_TABLE, FAIL_CHART, TEXT)
    return _started(submitted(job, people.author, names=names), people.checker)


def _one_file(job: Job, people: Cast) -> ReleaseRequest:
    """One passing file, submitted: for the arithmetic of reviews."""
    return submitted(job, people.author, names=(PASS_TABLE,))


# Further requests the tests start from (not states of the matrix).
MORE: Final[dict[str, Callable[[Job, Cast], ReleaseRequest]]] = {
    "every_outcome": _every_outcome,
    "one_file": _one_file,
}


def _started(request: ReleaseRequest, reviewer: User) -> ReleaseRequest:
    services.start_review(request=request, by=reviewer)
    return fresh(request)


def _open(request: ReleaseRequest, reviewer: User) -> ReleaseRequest:
    review(request, reviewer, submit=False)
    return fresh(request)


def status_of(state: str) -> str:
    return state.removesuffix("_open")


# --- What "nothing changed" means ----------------------------------------------------------
def snapshot(request: ReleaseRequest) -> dict[str, Any]:
    """Everything an action on ``request`` could change: its row, its files, exceptions,
    reviews, decisions and released copies, the project's count of released files, the
    audit log's length, and the bytes in the release store and the differencing ledger
    (the only files the release services write)."""
    files = ReleaseFile.objects.filter(request=request)
    root = data_root()
    on_disk = {
        str(path.relative_to(root)): sha256(path.read_bytes())
        for folder in ("releases", "ledger")
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }
    return {
        "request": ReleaseRequest.objects.filter(pk=request.pk).values().get(),
        "files": list(files.values()),
        "exceptions": list(ExceptionRequest.objects.filter(file__in=files).values()),
        "reviews": list(Review.objects.filter(request=request).values()),
        "decisions": list(FileDecision.objects.filter(review__request=request).values()),
        "released": list(ReleasedFile.objects.filter(file__in=files).values()),
        "released_outputs": Project.objects.get(pk=request.project_id).released_outputs,
        "events": mark(),
        "disk": on_disk,
    }
