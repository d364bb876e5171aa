"""Every model is classified on purpose, and governed models refuse direct writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.test import override_settings
from django.utils import timezone

from access_requests import services as access
from access_requests.models import AccessRequest
from outputs import selectors as release_selectors
from outputs import services as releases
from sde.analysis import sandbox
from sde.analysis import services as jobs
from sde.analysis.models import Job
from sde.audit.services import get_system_user, sign_checkpoint
from sde.data import optout_changes, register, synth
from sde.data.catalogue import register_standard_datasets
from sde.data.extracts import ExtractScope, build_extract
from sde.data.ingestion import request_ingest, run_ingest
from sde.directcare import services as directcare
from sde.exceptions import GovernedWriteRefused
from sde.governance import GovernedModel, governed_writes
from sde.identity import services
from sde.identity.models import Organisation, RoleAssignment
from sde.identity.roles import Role
from sde.projects.services import MemberSpec, create_project
from tests import scenarios
from tests.shared_db import shared_rows
from tests.unit.sde.projects.builders import accredit

pytestmark = pytest.mark.django_db

# Written only by their services (and the service's audit event).
GOVERNED = {
    "sde.AuditEvent",
    "sde.AuditCheckpoint",
    "sde.Organisation",
    "sde.OrganisationMembership",
    "sde.RoleAssignment",
    "sde.Accreditation",
    "sde.ApiToken",
    "sde.Dataset",
    "sde.DatasetField",
    "sde.DatasetVersion",
    "sde.Ingest",
    "sde.IdentityVaultRecord",
    "sde.OptOutSnapshot",
    "sde.ManualOptOut",
    "sde.OptOutChange",
    "sde.Extract",
    "sde.Script",
    "sde.Job",
    "sde.JobOutput",
    "sde.Cohort",
    "sde.ReidentificationRequest",
    "sde.ReidentificationDecision",
    "sde.Project",
    "sde.ProjectMembership",
    "sde.ProjectField",
    "access_requests.AccessRequest",
    "access_requests.Review",
    "access_requests.Comment",
    "access_requests.Attachment",
    "outputs.ReleaseRequest",
    "outputs.ReleaseFile",
    "outputs.ExceptionRequest",
    "outputs.Review",
    "outputs.FileDecision",
    "outputs.ReleasedFile",
}
# Deliberately mutable, and why.
MUTABLE = {
    "sde.User": "login bookkeeping (failed count, lock, last login) changes on every sign-in",
    "auth.Permission": "Django's permission catalogue, written by migrations",
    "auth.Group": "unused; Django's own table",
    "contenttypes.ContentType": "Django's model catalogue, written by migrations",
    "sessions.Session": "sessions are written on every request",
    "otp_totp.TOTPDevice": "django-otp writes drift, last code and throttling on every use",
    "otp_static.StaticDevice": "django-otp writes throttling on every use",
    "otp_static.StaticToken": "a recovery code is deleted when it is used",
    "guardian.UserObjectPermission": "written only via sde.policy by audited services",
    "guardian.GroupObjectPermission": "unused; guardian's own table",
}


def _label(model: type[models.Model]) -> str:
    return model._meta.label


GOVERNED_MODELS = sorted((m for m in apps.get_models() if issubclass(m, GovernedModel)), key=_label)


def test_every_model_is_classified_as_governed_or_deliberately_mutable():
    labels = {_label(model) for model in apps.get_models()}

    unclassified = labels - GOVERNED - set(MUTABLE)
    stale = (GOVERNED | set(MUTABLE)) - labels

    assert not unclassified, f"classify these models in test_governance: {unclassified}"
    assert not stale, f"these classified models no longer exist: {stale}"
    assert not GOVERNED & set(MUTABLE)


def test_the_governed_models_are_exactly_the_governed_model_subclasses():
    assert {_label(model) for model in GOVERNED_MODELS} == GOVERNED


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Nobody here signs in with a password; argon2 would only slow the matrix down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="module")
def tiny_drop(tmp_path_factory) -> Path:
    """A source drop of a few people's patients table (one dataset version when ingested)."""
    folder = tmp_path_factory.mktemp("drop")
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    synth.write_drop(
        synth.generate(patients=20, seed=1, config=config, tables=["patients"]), folder
    )
    return folder


def _finished_in_sandbox(attempt: Any) -> sandbox.SandboxResult:
    """What a cohort job leaves (a table and the cohort), without starting a sandbox for
    each of this file's tests; the sandbox itself is tested in tests/unit/sde/analysis."""
    output = attempt.folder / "output"
    (output / ".sde").mkdir(parents=True)
    (output / "cohort_size.csv").write_text("cohort,people\nF,12\n")
    pd.DataFrame({"person_id": ["a", "b"]}).to_parquet(output / ".sde" / "cohort.parquet")
    return sandbox.SandboxResult(outcome="exited", exit_code=0)


@pytest.fixture(scope="module")
def one_of_each(django_db_setup, django_db_blocker, tmp_path_factory, tiny_drop) -> Iterator[None]:
    """At least one row of every governed model, made by the real services.

    Built once for the module: the tests here only try writes, and whatever a test writes
    is rolled back to these rows before the next test (see tests/shared_db.py)."""
    folder = tmp_path_factory.mktemp("governed")
    with (
        override_settings(
            SDE_DATA_ROOT=folder / "data",
            SDE_KEY_DIR=folder / "keys",
            SDE_ATTACHMENT_ROOT=folder / "attachments",
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        ),
        pytest.MonkeyPatch.context() as monkeypatch,
        shared_rows(django_db_blocker, lambda: _make_one_of_each(tiny_drop, monkeypatch)),
    ):
        yield


def _make_one_of_each(tiny_drop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_run_in_sandbox", _finished_in_sandbox)
    admin = scenarios.administrator()
    person = scenarios.person(Role.RESEARCHER, accredited=True)
    organisation = scenarios.organisation()
    services.add_membership(user=person, organisation=organisation, by=admin)
    services.create_api_token(user=person, name="scripts", by=person)
    custodian = scenarios.person(Role.DATA_CUSTODIAN)
    register_standard_datasets(by=custodian)
    ingest = request_ingest(drop_dir=tiny_drop, by=custodian, enqueue=False)
    run_ingest(ingest=ingest, by=custodian)
    ig = scenarios.person(Role.IG_OFFICER)
    register.add_manual_optout(nhs_number="9434765919", kind="ndop", reason="letter", by=ig)
    optout_changes.propose_exemption(
        project_id=1, cag_letter_disapplies_type1=True, reason="CAG", by=ig
    )
    scope = {"project_id": 1, "datasets": {"patients": ["person_id", "birth_month", "sex"]},
             "purpose": "direct_care", "legal_basis": ""}  # fmt: skip
    extract = build_extract(scope=ExtractScope.from_json(scope), by=custodian)
    monkeypatch.setattr(jobs, "_extract_for", lambda job, system: extract)
    today = timezone.localdate()
    project = create_project(
        title="T", lay_summary="L", organisation=scenarios.organisation(), scope=scope,
        start_date=today, end_date=today + timedelta(days=30),
        members=[MemberSpec(person, "analyst")], by=ig,
    )  # fmt: skip
    accredit(person, issued_on=today - timedelta(days=1), expires_on=today + timedelta(days=60))
    script = jobs.save_script(project=project, name="s.py", content="print(1)", by=person)
    jobs.submit_job(project=project, by=person, on_dummy=True, script=script)
    cohort = jobs.submit_job(
        project=project, by=person, on_dummy=False, analysis="cohort",
        parameters={"index_date": today.isoformat(), "definition": {"sex": ["F"]}, "name": "F"},
    )  # fmt: skip
    outcome = jobs.run_job(job_id=cohort.pk)  # the sandbox is stood in for: see below
    assert outcome == "succeeded", Job.objects.get(pk=cohort.pk).failure
    _release_one(project, Job.objects.get(pk=cohort.pk), person)
    _request_reidentification(Job.objects.get(pk=cohort.pk).cohort, admin, ig)
    request = access.create_request(by=person, organisation=organisation, title="T")
    access.add_attachment(
        request=request, by=person, kind="protocol",
        upload=SimpleUploadedFile("protocol.txt", b"The protocol."),
    )  # fmt: skip
    with governed_writes(AccessRequest):  # a submitted request, without filling the form
        AccessRequest.objects.filter(pk=request.pk).update(
            status="in_review", review_round=1, first_submitted_at=timezone.now()
        )
    access.return_request(request=request, by=ig, reason="Tell us more.")
    sign_checkpoint(by=get_system_user())
    for model in GOVERNED_MODELS:
        assert model.objects.exists(), _label(model)


def _request_reidentification(cohort: Any, admin: Any, ig: Any) -> None:
    """A direct care request with one sign-off."""
    practice = scenarios.organisation(Organisation.Kind.GP_PRACTICE)
    clinician = scenarios.person(Role.CLINICIAN)
    services.add_membership(user=clinician, organisation=practice, by=admin)
    request = directcare.request_reidentification(
        cohort=cohort, practice=practice, by=clinician,
        reason="A structured review of these patients' medicines.",
    )  # fmt: skip
    directcare.sign_off(request=request, by=ig, role="ig", outcome="approve")


def _release_one(project: Any, job: Job, author: Any) -> None:
    """A release request through every workflow row: a file, its exception, two reviews
    with their decisions, and the released copy."""
    release = releases.create_request(project=project, by=author, title="R")
    output = job.outputs.get(name="cohort_size.csv")
    file = releases.add_file(request=release, job=job, output=output, context="Size", by=author)
    for rule in release_selectors.non_pass_rules(file):
        releases.request_exception(file=file, rule=rule, reason="other", justification="J",
                                   by=author)  # fmt: skip
    releases.submit(request=release, by=author)
    for checker in (scenarios.person(Role.OUTPUT_CHECKER) for _ in range(2)):
        review = releases.start_review(request=release, by=checker)
        releases.decide_file(review=review, file=file, decision="approve", comment="Fine.",
                             by=checker)  # fmt: skip
        releases.submit_review(review=review, by=checker)


def _save_new(model: type[models.Model]) -> Any:
    return model().save()


def _save_existing(model: type[models.Model]) -> Any:
    return model.objects.first().save()


def _delete_existing(model: type[models.Model]) -> Any:
    return model.objects.first().delete()


def _update(model: type[models.Model]) -> Any:
    return model.objects.update()


def _filtered_update(model: type[models.Model]) -> Any:
    row = model.objects.first()
    return model.objects.filter(pk=row.pk).update(pk=row.pk)


def _delete_all(model: type[models.Model]) -> Any:
    return model.objects.all().delete()


def _bulk_create(model: type[models.Model]) -> Any:
    return model.objects.bulk_create([model()])


def _bulk_update(model: type[models.Model]) -> Any:
    row = model.objects.first()
    return model.objects.bulk_update([row], fields=[row._meta.pk.name])


def _get_or_create(model: type[models.Model]) -> Any:
    return model.objects.get_or_create(pk=-1)


def _update_or_create(model: type[models.Model]) -> Any:
    return model.objects.update_or_create(pk=-1)


WRITES: dict[str, Callable[[type[models.Model]], Any]] = {
    "save-new": _save_new,
    "save-existing": _save_existing,
    "delete-existing": _delete_existing,
    "objects.update": _update,
    "filter.update": _filtered_update,
    "objects.all.delete": _delete_all,
    "bulk_create": _bulk_create,
    "bulk_update": _bulk_update,
    "get_or_create": _get_or_create,
    "update_or_create": _update_or_create,
}


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("model", GOVERNED_MODELS, ids=_label)
def test_a_governed_model_refuses_a_write_outside_its_service(one_of_each, model, write):
    before = model.objects.count()

    with pytest.raises(GovernedWriteRefused):
        WRITES[write](model)

    assert model.objects.count() == before


def test_opening_writes_for_one_model_does_not_open_another(one_of_each):
    with governed_writes(Organisation), pytest.raises(GovernedWriteRefused):
        RoleAssignment.objects.all().delete()

    assert RoleAssignment.objects.exists()


def test_writes_are_closed_again_after_the_service_block():
    with governed_writes(Organisation):
        pass

    with pytest.raises(GovernedWriteRefused):
        Organisation(name="After", kind=Organisation.Kind.COMPANY).save()

    assert not Organisation.objects.filter(name="After").exists()
