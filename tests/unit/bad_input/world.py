"""A small world with a row of every kind a page renders, made through the real services,
and then hostile text put into every free-text field of every model.

``FREE_TEXT`` is built from the models: every CharField, TextField and EmailField of the
project's apps is either overwritten with a script-injection payload or named in
``NOT_FREE_TEXT`` with the reason it is not text a person types (a code, a hash, a path,
a choice). A new text field fails ``test_every_text_field_is_classified`` until it is put
on one side or the other, so the sweep covers it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.urls import reverse

from access_requests import questions
from access_requests import services as applications
from access_requests.models import AccessRequest
from outputs import services as releases
from outputs.models import FileDecision
from sde.analysis import services as analyses
from sde.analysis.models import Cohort
from sde.audit.models import AuditEvent
from sde.data import optout_changes, register, synth
from sde.data.catalogue import register_standard_datasets
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.directcare import services as directcare
from sde.governance import governed_writes
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects import services as projects
from sde.projects.models import Project
from sde.tasks import build_project_extracts_task
from tests import scenarios
from tests.unit.access_requests import builders as application_builders
from tests.unit.outputs import builders as release_builders
from tests.unit.sde.analysis.conftest import SCOPE
from tests.unit.sde.projects import builders as project_builders

APPS: Final = ("sde", "access_requests", "outputs")
DATASETS: Final = ("patients", "gp-events")  # what the drop holds (fast to ingest)
# What a browser would run if it were not escaped (the raw payload minus its label).
RAW_MARKERS: Final = ("<script>alert(", "<img src=x onerror")


def payload(label: str) -> str:
    """Script injection, labelled with where it was put (so a leak names its field)."""
    return f'<script>alert("{label}")</script>"\'><img src=x onerror=alert(1)>'


# model label -> field -> why it is not free text a person enters.
NOT_FREE_TEXT: Final[dict[str, dict[str, str]]] = {
    "sde.User": {"password": "a hash", "username": "an identifier (validated characters)",
                 "email": "an address (validated)"},
    "sde.Organisation": {"ods_code": "an ODS code (validated)"},
    "sde.ApiToken": {"prefix": "generated", "key_hash": "a hash"},
    "sde.Dataset": {"slug": "in URLs", "source_table": "a table of the source format"},
    "sde.DatasetField": {"name": "a column of the data", "data_type": "a type"},
    "sde.Ingest": {"fingerprint": "a hash", "drop_path": "a path", "stage": "set by code",
                   "error_class": "a class name", "quarantine_path": "a path"},
    "sde.DatasetVersion": {"path": "a path", "checksum": "a hash"},
    "sde.IdentityVaultRecord": {"system_pseudonym": "a pseudonym"},
    "sde.OptOutSnapshot": {"source_hash": "a hash", "path": "a path", "content_hash": "a hash"},
    "sde.ManualOptOut": {"system_pseudonym": "a pseudonym"},
    "sde.Extract": {"path": "a path", "rebuild_reason": "set by code"},
    "sde.Script": {"sha256": "a hash"},
    "sde.Job": {"analysis": "a built-in's name", "worker": "a host name",
                "code_hash": "a hash", "library_version": "a version", "folder": "a path",
                "error_class": "a class name", "limit": "a limit's name",
                "log_sha256": "a hash"},
    "sde.JobOutput": {"name": "a file name in the job's folder", "sha256": "a hash",
                      "evidence": "a file name"},
    "sde.Cohort": {"path": "a path", "sha256": "a hash"},
    "sde.AuditEvent": {"*": "append-only: the events carry what the services were given"},
    "sde.AuditCheckpoint": {"*": "hashes and signatures"},
    "sde.ReidentificationRequest": {"practice_ods": "an ODS code", "path": "a path"},
    "access_requests.AccessRequest": {"question_set_version": "a version"},
    "access_requests.Attachment": {"stored_path": "a path", "content_type": "a MIME type",
                                   "sha256": "a hash"},
    "outputs.ReleaseFile": {"name": "a job output's file name", "sha256": "a hash",
                            "outcome": "a verdict", "decision": "a decision"},
    "outputs.ExceptionRequest": {"rule": "a rule's code"},
    "outputs.ReleasedFile": {"path": "a path", "sha256": "a hash"},
}  # fmt: skip
TEXT_FIELDS: Final = (models.CharField, models.TextField)


def text_fields() -> list[tuple[type[models.Model], models.Field[Any, Any]]]:
    """Every text field of the project's models that holds no choices."""
    return [
        (model, field)
        for model in apps.get_models()
        if model._meta.app_label in APPS
        for field in model._meta.concrete_fields
        if isinstance(field, TEXT_FIELDS) and not field.choices
    ]


def free_text_fields() -> list[tuple[type[models.Model], models.Field[Any, Any]]]:
    result = []
    for model, field in text_fields():
        skip = NOT_FREE_TEXT.get(model._meta.label, {})
        if field.name not in skip and "*" not in skip:
            result.append((model, field))
    return result


def inject_everywhere() -> dict[str, int]:
    """Overwrite every free-text field of every row with its payload; rows per field."""
    written: dict[str, int] = {}
    for model, field in free_text_fields():
        label = f"{model.__name__}.{field.name}"
        text = payload(label)
        assert field.max_length is None or len(text) + 8 <= field.max_length, label
        manager = model._base_manager
        with governed_writes(model):
            if field.unique:
                for pk in manager.values_list("pk", flat=True):
                    manager.filter(pk=pk).update(**{field.name: f"{text} {pk}"})
            else:
                manager.update(**{field.name: text})
        written[label] = manager.count()
    return written


def _hostile_answers(answers: dict[str, Any]) -> dict[str, Any]:
    """The complete application with every free-text answer (short and long text, the
    per-dataset objectives, field justifications and organisation details) hostile."""
    hostile = copy.deepcopy(answers)
    for section, asked in questions.QUESTIONS.items():
        for key, (kind, _) in asked.items():
            label = f"answers.{section}.{key}"
            if kind in (questions.TEXT, questions.SHORT):
                hostile[section][key] = payload(label)
            elif kind == questions.MAP and isinstance(hostile[section].get(key), dict):
                hostile[section][key] = {k: payload(label) for k in hostile[section][key]}
    for fields in hostile["data"]["datasets"].values():
        for name in fields:
            fields[name] = payload("answers.data.datasets")
    for organisation in hostile["people"]["organisations"]:
        for key in ("ico_number", "dspt_status", "country"):
            organisation[key] = payload(f"answers.people.{key}")[:200]
    return hostile


@dataclass(frozen=True)
class World:
    people: dict[str, User]
    project: Project
    access_request: AccessRequest
    written: dict[str, int]
    pages: list[str]  # deep pages a crawl starts from too


def build(folder: Path) -> World:
    """The world (see the module docstring); ``folder`` holds the synthetic drop."""
    drop = folder / "drop"
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=100)
    synth.write_drop(
        synth.generate(
            patients=200, seed=3, config=config, tables=("patients", "gp_events", "ndop")
        ),
        drop,
    )
    admin = scenarios.administrator()
    custodian = scenarios.person(Role.DATA_CUSTODIAN)
    register_standard_datasets(by=custodian)
    ingest = run_ingest(ingest=request_ingest(drop_dir=drop, by=custodian, enqueue=False),
                        by=custodian)  # fmt: skip
    assert ingest.status == Ingest.Status.SUCCEEDED
    ig, ig2 = scenarios.person(Role.IG_OFFICER), scenarios.person(Role.IG_OFFICER)
    caldicott = scenarios.person(Role.CALDICOTT_GUARDIAN)
    author = project_builders.researcher()
    university = scenarios.organisation(name=payload("organisation"))
    identity.add_membership(user=author, organisation=university, by=admin)
    icb = scenarios.organisation(Organisation.Kind.ICB)
    practice = scenarios.organisation(Organisation.Kind.GP_PRACTICE, "Y99001")
    clinician = scenarios.person(Role.CLINICIAN)
    identity.add_membership(user=clinician, organisation=practice, by=admin)
    scope = {**copy.deepcopy(SCOPE), "purpose": "planning"}
    scope["datasets"] = {k: v for k, v in scope["datasets"].items() if k in DATASETS}
    project = projects.create_project(
        title=payload("project"), lay_summary=payload("lay summary"), organisation=icb,
        scope=scope, start_date=date.today() - timedelta(days=10),
        end_date=date.today() + timedelta(days=300),
        members=[projects.MemberSpec(author, "principal_investigator")], by=ig,
    )  # fmt: skip
    assert build_project_extracts_task(project.pk) == "built"
    identity.create_api_token(user=author, name="laptop", by=author)
    analyses.save_script(project=project, name="counts.py", content="print(1)\n", by=author)

    people = release_builders.cast(project, author=author, ig=ig)
    job = release_builders.finish_job(project, author)
    request = release_builders.submitted(job, author)
    release_builders.review(request, people.first, FileDecision.Decision.APPROVE)
    draft = releases.create_request(project=project, by=author, title="draft")
    del draft

    cohort_job = analyses.submit_job(
        project=project, by=author, on_dummy=False, analysis="cohort",
        parameters={"index_date": "2026-01-01", "definition": {"age": {"min": 18}},
                    "name": "adults"},
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(analyses, "_enqueue", lambda job_id: None)
        analyses.run_job(job_id=cohort_job.pk, worker="test")
    cohort = Cohort.objects.get(job_id=cohort_job.pk)
    reid = directcare.request_reidentification(
        cohort=cohort, practice=practice, reason="Invite the adults for a blood pressure check.",
        by=clinician,
    )  # fmt: skip
    directcare.sign_off(request=reid, by=ig2, role="ig", outcome="refuse", comment="No.")

    applicant = application_builders.applicant(university)
    filled = application_builders.answers(university, [(applicant, "principal_investigator", True)])
    access_request = application_builders.drafted(applicant, university, filled)
    applications.add_attachment(
        request=access_request, by=applicant, kind="other",
        upload=SimpleUploadedFile("notes.txt", b"Notes.\n", "text/plain"),
    )  # fmt: skip
    access_request = applications.submit(
        request=access_request, by=applicant, today=application_builders.TODAY
    )
    applications.add_comment(request=access_request, by=applicant, body="A comment.")
    access_request = applications.start_review(request=access_request, by=ig)
    access_request = applications.return_request(request=access_request, by=ig, reason="More.")

    nhs_number = pd.read_csv(drop / "patients.csv", dtype=str)["nhs_number"].iloc[0]
    register.add_manual_optout(nhs_number=nhs_number, kind="type1", reason="Asked.", by=ig)
    optout_changes.propose_exemption(project_id=project.pk, reason="CAG letter.", by=ig)
    written = inject_everywhere()
    with governed_writes(AccessRequest):  # after submission, which checks the answers
        AccessRequest.objects.filter(pk=access_request.pk).update(answers=_hostile_answers(filled))
    everyone = {
        "admin": admin, "custodian": custodian, "ig": ig, "ig2": ig2, "caldicott": caldicott,
        "author": author, "applicant": applicant, "clinician": clinician,
        "checker": people.checker, "first": people.first, "outsider": people.outsider,
    }  # fmt: skip
    assert AuditEvent.objects.exists()
    pages = [reverse("direct-care-request", args=[reid.pk])]
    return World(everyone, project, access_request, written, pages)
