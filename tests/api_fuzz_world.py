"""The API fuzz test's world (tests/unit/test_api_fuzz.py): two projects, everything that
hangs off them made through the real services, one API token per caller, and a canary
string in every text field of the "secret" project.

The callers are each role of ``sde.identity.roles`` held alone, the member of the secret
project, a member of the other ("open") project, and anonymous. The secret project has a
job, a script, a cohort, output files, a submitted release request, and its access request
(submitted, with a comment and an attachment); the open project is a direct care project
with a cohort and a clinician's re-identification request, so the direct care endpoints
have rows to find. Each canary says which callers may see it (``CANARIES``); the test
asserts that no response to anyone else contains it.

The sandbox is stood in for (the job writes chosen files, as tests/unit/outputs/builders
does): the sandbox is tested in tests/unit/sde/analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from access_requests import services as access
from outputs import services as releases
from sde.analysis import sandbox
from sde.analysis import services as jobs
from sde.analysis.models import Cohort, Job
from sde.audit.models import AuditEvent
from sde.data import synth
from sde.data.catalogue import register_standard_datasets
from sde.data.extracts import ExtractScope, build_extract
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Dataset, Extract
from sde.directcare import services as directcare
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects.services import MemberSpec, create_project
from tests import scenarios
from tests.unit.access_requests.builders import answers
from tests.unit.outputs.builders import table_files
from tests.unit.sde.projects.builders import accredit

# One canary per kind of text; each may be seen only by the callers named for it.
SECRET_MEMBER: Final = "secret_member"
OTHER_MEMBER: Final = "other_member"
ANONYMOUS: Final = "anonymous"
IG, CHECKER = Role.IG_OFFICER.value, Role.OUTPUT_CHECKER.value
GUARDIAN = Role.CALDICOTT_GUARDIAN.value
CALLERS: Final = (*[role.value for role in Role], SECRET_MEMBER, OTHER_MEMBER, ANONYMOUS)
# The project's members and IG (who oversee every project) see the project and its work;
# output checkers independent of it see its submitted release requests (with the project's
# title and purpose, which they weigh the outputs against, and the files' names); IG and
# Caldicott Guardians see every submitted access request.
_PROJECT = frozenset({SECRET_MEMBER, IG})
_RELEASE = _PROJECT | {CHECKER}
_APPLICATION = frozenset({SECRET_MEMBER, IG, GUARDIAN})
CANARIES: Final[dict[str, frozenset[str]]] = {
    "zqcanary-project-title": _RELEASE,
    "zqcanary-lay-summary": _PROJECT,
    "zqcanary-script-name": _PROJECT,
    "zqcanary-job-log": _PROJECT,
    "zqcanary-cohort-name": _PROJECT,
    "zqcanary-output-file": _RELEASE,
    "zqcanary-release-title": _RELEASE,
    "zqcanary-file-context": _RELEASE,
    "zqcanary-application-title": _APPLICATION,
    "zqcanary-application-summary": _APPLICATION,
    "zqcanary-comment": _APPLICATION,
    "zqcanary-attachment-name": _APPLICATION,
}
PATIENT_FIELDS = ["person_id", "birth_month", "sex", "practice_ods"]


@dataclass(frozen=True)
class World:
    """What the test needs of the world: each caller's token key (None: anonymous) and the
    ids of the rows, by kind, for the fuzzer to aim at."""

    keys: dict[str, str | None]
    secret: dict[str, int]  # the secret project's rows, by the path segment naming them
    people: dict[str, int]  # each caller's user id (anonymous aside)
    ids: dict[str, list[int]] = field(default_factory=dict)
    slugs: list[str] = field(default_factory=list)


def _stand_in(files: dict[str, bytes], *, cohort: bool = False) -> Any:
    def finished_in_sandbox(attempt: Any) -> sandbox.SandboxResult:
        output = attempt.folder / "output"
        (output / ".sde").mkdir(parents=True)
        for name, data in files.items():
            (output / name).write_bytes(data)
        if cohort:
            frame = pd.DataFrame({"person_id": ["a", "b", "c"]})
            frame.to_parquet(output / ".sde" / "cohort.parquet")
        (attempt.folder / "log.txt").write_bytes(b"zqcanary-job-log: done\n")
        return sandbox.SandboxResult(outcome="exited", exit_code=0, isolated=True)

    return finished_in_sandbox


def _run(patch: pytest.MonkeyPatch, job: Job, files: dict[str, bytes], **kw: Any) -> Job:
    patch.setattr(jobs, "_run_in_sandbox", _stand_in(files, **kw))
    outcome = jobs.run_job(job_id=job.pk, worker="fuzz")
    finished = Job.objects.get(pk=job.pk)
    assert outcome == Job.Status.SUCCEEDED, finished.failure
    return finished


def _extract(project_id: int, purpose: str, custodian: User) -> Extract:
    scope = {"project_id": project_id, "datasets": {"patients": PATIENT_FIELDS},
             "purpose": purpose, "legal_basis": ""}  # fmt: skip
    return build_extract(scope=ExtractScope.from_json(scope), by=custodian)


def build(drop: Path, patch: pytest.MonkeyPatch) -> World:
    """The world (see the module docstring), every row through its service."""
    patch.setattr(jobs, "_enqueue", lambda job_id: None)
    patch.setattr(sandbox, "isolation_refusal", lambda: None)
    admin = scenarios.administrator()
    today = timezone.localdate()
    university = scenarios.organisation()
    practice = scenarios.organisation(Organisation.Kind.GP_PRACTICE)
    people = {role.value: scenarios.person(role) for role in Role}
    custodian = people[Role.DATA_CUSTODIAN.value]
    register_standard_datasets(by=custodian)
    run_ingest(ingest=request_ingest(drop_dir=drop, by=custodian, enqueue=False), by=custodian)
    identity.add_membership(user=people[Role.CLINICIAN.value], organisation=practice, by=admin)
    identity.add_membership(user=people[Role.RESEARCHER.value], organisation=university, by=admin)
    for name in (SECRET_MEMBER, OTHER_MEMBER):
        people[name] = accredit(scenarios.person(Role.RESEARCHER))
        identity.add_membership(user=people[name], organisation=university, by=admin)
    ig, member = people[IG], people[SECRET_MEMBER]

    def project(title: str, summary: str, purpose: str, who: User) -> Any:
        return create_project(
            title=title, lay_summary=summary, organisation=university,
            scope={"datasets": {"patients": PATIENT_FIELDS}, "purpose": purpose,
                   "legal_basis": "s251_standard" if purpose == "research" else ""},
            start_date=today - timedelta(days=30), end_date=today + timedelta(days=300),
            members=[MemberSpec(who, "principal_investigator")], by=ig,
        )  # fmt: skip

    # The open project: direct care, a cohort and a clinician's request for a list.
    open_project = project("Open project", "Frailty in the open.", "direct_care",
                           people[OTHER_MEMBER])  # fmt: skip
    extract = _extract(open_project.pk, "direct_care", custodian)
    patch.setattr(jobs, "_extract_for", lambda job, system: extract)
    open_cohort_job = jobs.submit_job(
        project=open_project, by=people[OTHER_MEMBER], on_dummy=False, analysis="cohort",
        parameters={"index_date": today.isoformat(), "definition": {"sex": ["F"]},
                    "name": "Open cohort"},
    )  # fmt: skip
    _run(patch, open_cohort_job, {"cohort_size.csv": b"cohort,people\nF,12\n"}, cohort=True)
    request = directcare.request_reidentification(
        cohort=Cohort.objects.get(job=open_cohort_job), practice=practice,
        by=people[Role.CLINICIAN.value], reason="A structured review of medicines.",
    )  # fmt: skip
    directcare.sign_off(request=request, by=ig, role="ig", outcome="approve")

    # The secret project: a canary in every text field.
    secret = project("zqcanary-project-title", "zqcanary-lay-summary", "research", member)
    extract = _extract(secret.pk, "research", custodian)
    patch.setattr(jobs, "_extract_for", lambda job, system: extract)
    script = jobs.save_script(project=secret, name="zqcanary-script-name.py",
                              content="print('zqcanary-script-name')", by=member)  # fmt: skip
    _run(patch, jobs.submit_job(project=secret, by=member, on_dummy=True, script=script),
         table_files("zqcanary-output-file", {"F": 25, "M": 35}))  # fmt: skip
    cohort_job = jobs.submit_job(
        project=secret, by=member, on_dummy=False, analysis="cohort",
        parameters={"index_date": today.isoformat(), "definition": {"sex": ["F"]},
                    "name": "zqcanary-cohort-name"},
    )  # fmt: skip
    job = _run(patch, cohort_job, table_files("zqcanary-output-file-2", {"F": 25, "M": 35}),
               cohort=True)  # fmt: skip
    release = scenarios.release_draft(job, member, job.outputs.filter(name__endswith=".csv"),
                                      title="zqcanary-release-title",
                                      context=lambda _: "zqcanary-file-context",
                                      justification="zqcanary-file-context")  # fmt: skip
    release = releases.submit(request=release, by=member)
    review = releases.start_review(request=release, by=people[CHECKER])

    # The secret project's application: submitted, with a comment and an attachment.
    application = access.create_request(by=member, organisation=university)
    filled = answers(university, [(member, "principal_investigator", True)],
                     meta={"title": "zqcanary-application-title"},
                     project={"lay_summary": "zqcanary-application-summary"})  # fmt: skip
    application, _ = access.save_answers(request=application, by=member, answers=filled,
                                         revision=application.revision)  # fmt: skip
    attachment = access.add_attachment(
        request=application, by=member, kind="protocol",
        upload=SimpleUploadedFile("zqcanary-attachment-name.txt", b"The protocol."),
    )  # fmt: skip
    application = access.submit(request=application, by=member)
    access.add_comment(request=application, by=member, body="zqcanary-comment")

    keys: dict[str, str | None] = {ANONYMOUS: None}
    for name, person in people.items():
        keys[name] = identity.create_api_token(user=person, name="fuzz", by=person)[1]
    first_file, output = release.files.first(), job.outputs.first()
    assert first_file is not None and output is not None
    rows = {"projects": secret.pk, "jobs": job.pk, "outputs": output.pk,
            "releases": release.pk, "files": first_file.pk, "reviews": review.pk,
            "access-requests": application.pk, "attachments": attachment.pk,
            "people": member.pk, "members": member.pk, "requests": request.pk}  # fmt: skip
    people_ids = {name: person.pk for name, person in people.items()}
    return World(keys=keys, secret=rows, people=people_ids, ids=_ids(), slugs=_slugs())


def _ids() -> dict[str, list[int]]:
    """Every row's id by kind, for the path parameters the fuzzer sends."""
    found: dict[str, list[int]] = {}
    for model in apps.get_models():
        if model._meta.app_label in {"sde", "access_requests", "outputs"}:
            rows = model._default_manager.values_list("pk", flat=True)[:50]
            found[model._meta.label] = list(rows)
    found["sequence"] = list(AuditEvent.objects.values_list("sequence", flat=True)[:50])
    return found


def _slugs() -> list[str]:
    return list(Dataset.objects.values_list("slug", flat=True))


def drop(folder: Path) -> Path:
    """A source drop of a few people (patients, GP events and the NDOP opt-outs, which a
    research extract needs)."""
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    tables = ["patients", "gp_events", "ndop"]
    synth.write_drop(synth.generate(patients=40, seed=1, config=config, tables=tables), folder)
    return folder
