"""The world the authorisation matrix (tests/unit/test_authorisation_matrix.py) visits:
one object of every kind a URL names, each made through the real services, and the
people who ask for them.

The actors are anonymous, one person per role holding that role alone (MFA done), and
the people the design names as special to these objects: ``member`` (a data-using member
of the project, the author of its release request, the applicant of the access request
and the owner of the API token), ``outsider`` (a member of another project), ``requester``
(the clinician at the practice who asked for the re-identified list), ``first_checker``
(an output checker whose review released the request) and ``proposer`` (the IG officer who
proposed the pending opt-out change, created the projects and gave the IG sign-off).

The project is a planning project, so its cohort may be re-identified for direct care;
its release request is released (so its files can be downloaded), its direct care
request's list is ready, its access request is submitted with an attachment, and the
opt-out change is pending. Everything is built once per module (tests/shared_db.py)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from access_requests import services as applications
from access_requests.models import AccessRequest
from outputs import selectors as release_selectors
from outputs.models import ReleaseRequest
from sde.analysis import services as analysis
from sde.analysis.models import Cohort
from sde.audit.models import AuditEvent
from sde.data import optout_changes, synth
from sde.data.catalogue import register_standard_datasets
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Ingest
from sde.directcare import services as directcare
from sde.directcare.models import ReidentificationRequest
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects import services as projects
from sde.projects.models import Project
from sde.tasks import build_project_extracts_task
from tests import scenarios
from tests.unit.access_requests import builders as application_builders
from tests.unit.outputs import builders as release_builders
from tests.unit.sde.analysis.conftest import SCOPE as ANALYSIS_SCOPE
from tests.unit.sde.projects.builders import accredit, researcher

ROLE_ACTORS = tuple(role.value for role in Role)
SPECIAL_ACTORS = ("member", "outsider", "requester", "first_checker", "proposer")
ACTORS = ("anonymous", *ROLE_ACTORS, *SPECIAL_ACTORS)
PRACTICE = "Y99001"  # the requester's practice (the synthetic drop's first)
COHORT = {"index_date": "2026-01-01", "definition": {"age": {"min": 18}}, "name": "adults"}
REASON = "Invite these patients for an annual physical health check."


OBJECT_KINDS = (
    "project", "job", "output", "script", "analysis", "release", "release_file", "review",
    "cohort", "reid", "application", "attachment", "section", "person", "role",
    "organisation", "membership", "ingest", "dataset", "change", "token", "sequence",
)  # fmt: skip


@dataclass(frozen=True)
class World:
    folder: Path  # data/, keys/ and attachments/ as the build left them
    people: dict[str, int]  # actor name -> user pk (no "anonymous")
    ids: dict[str, Any]  # what fills each path parameter, by object kind
    other_project: int


def drop(folder: Path) -> Path:
    """200 synthetic people at two practices, no faults, the tables the analyses read."""
    config = synth.SynthConfig(faults=synth.FaultRates.none(), people_per_practice=100)
    tables = ("patients", "gp_events", "gp_medications", "apc_spells", "ae_attendances", "ndop")
    synth.write_drop(synth.generate(patients=200, seed=5, config=config, tables=tables), folder)
    return folder


def _project(title: str, member: User, by: User, organisation: Organisation) -> Project:
    scope = copy.deepcopy(ANALYSIS_SCOPE)
    scope["purpose"] = "planning"  # planning cohorts may be re-identified for direct care
    today = timezone.localdate()
    return projects.create_project(
        title=title, lay_summary="Finding the people who need a review.",
        organisation=organisation, scope=scope, start_date=today - timedelta(days=30),
        end_date=today + timedelta(days=180),
        members=[projects.MemberSpec(member, "principal_investigator")], by=by,
    )  # fmt: skip


def _released(project: Project, member: User, first: User, second: User) -> ReleaseRequest:
    job = release_builders.finish_job(project, member)
    names = (release_builders.PASS_TABLE, release_builders.PASS_CHART)
    request = release_builders.submitted(job, member, names=names)
    release_builders.review(request, first)
    release_builders.review(request, second)
    done = release_builders.fresh(request)
    assert done.status == ReleaseRequest.Status.RELEASED
    return done


def _access_request(member: User, organisation: Organisation) -> AccessRequest:
    answers = application_builders.answers(organisation, [(member, "principal_investigator", True)])
    draft = application_builders.drafted(member, organisation, answers)
    upload = SimpleUploadedFile("protocol.txt", b"The protocol.\n")
    applications.add_attachment(request=draft, by=member, kind="other", upload=upload)
    return applications.submit(request=draft, by=member, today=application_builders.TODAY)


def _direct_care(project: Project, member: User, requester: User, ig: User,
                 caldicott: User, practice: Organisation) -> ReidentificationRequest:  # fmt: skip
    job = analysis.submit_job(project=project, by=member, on_dummy=False, analysis="cohort",
                              parameters=dict(COHORT))  # fmt: skip
    analysis.run_job(job_id=job.pk, worker="test")
    cohort = Cohort.objects.get(job_id=job.pk)
    request = directcare.request_reidentification(cohort=cohort, practice=practice,
                                                  reason=REASON, by=requester)  # fmt: skip
    directcare.sign_off(request=request, by=ig, role="ig", outcome="approve")
    directcare.sign_off(request=request, by=caldicott, role="caldicott", outcome="approve")
    ready = directcare.perform(request=request)
    assert ready.status == ReidentificationRequest.Status.READY
    return ready


def build(folder: Path, drop_dir: Path) -> World:
    """Every object and person (see the module docstring), through the real services.
    The caller holds the settings that point the data root and keys into ``folder``, and
    stands in for the broker (the enqueue functions)."""
    admin = scenarios.administrator()
    people = {role.value: scenarios.person(role) for role in Role}
    custodian = people[Role.DATA_CUSTODIAN]
    register_standard_datasets(by=custodian)
    ingest = run_ingest(ingest=request_ingest(drop_dir=drop_dir, by=custodian, enqueue=False),
                        by=custodian)  # fmt: skip
    assert ingest.status == Ingest.Status.SUCCEEDED

    proposer = scenarios.person(Role.IG_OFFICER)
    caldicott = scenarios.person(Role.CALDICOTT_GUARDIAN)  # the other direct care sign-off
    member, outsider = researcher(), researcher()
    requester = scenarios.person(Role.CLINICIAN)
    first_checker, second_checker = (scenarios.person(Role.OUTPUT_CHECKER) for _ in range(2))
    icb = scenarios.organisation(Organisation.Kind.ICB)
    practice = scenarios.organisation(Organisation.Kind.GP_PRACTICE, PRACTICE)
    identity.add_membership(user=requester, organisation=practice, by=admin)
    membership = identity.add_membership(user=member, organisation=icb, by=admin)

    project = _project("Hypertension in North Place", member, proposer, icb)
    other = _project("Someone else's project", outsider, proposer, icb)
    assert build_project_extracts_task(project.pk) == "built"
    release = _released(project, member, first_checker, second_checker)
    job = release.files.first().job  # type: ignore[union-attr]
    script = analysis.save_script(project=project, name="tables.py", by=member,
                                  content="print('tables written')\n")  # fmt: skip
    reid = _direct_care(project, member, requester, proposer, caldicott, practice)
    application = _access_request(member, icb)
    change = optout_changes.propose_exemption(project_id=project.pk,
                                              cag_letter_disapplies_type1=True,
                                              reason="The CAG letter disapplies it.",
                                              by=proposer)  # fmt: skip
    token, _ = identity.create_api_token(user=member, name="scripts", by=member)
    chart = release_selectors.current_files(release).get(name=release_builders.PASS_CHART)
    accredit(member)  # a second set: the person page lists more than one

    ids = {
        "project": project.pk,
        "job": job.pk,
        "output": job.outputs.get(name=release_builders.PASS_TABLE).pk,
        "script": script.pk,
        "analysis": "population_profile",
        "release": release.pk,
        "release_file": chart.pk,  # a chart: the checkers' chart page shows it
        "review": release.reviews.get(reviewer=first_checker).pk,
        "cohort": reid.cohort_id,
        "reid": reid.pk,
        "application": application.pk,
        "attachment": application.attachments.get().pk,
        "section": "meta",
        "person": member.pk,
        "role": Role.RESEARCHER.value,
        "organisation": icb.pk,
        "membership": membership.pk,
        "ingest": ingest.pk,
        "dataset": "patients",
        "change": change.pk,
        "token": token.pk,
        "sequence": AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True)[0],
    }
    everyone = {
        **{name: user.pk for name, user in people.items()},
        "member": member.pk, "outsider": outsider.pk, "requester": requester.pk,
        "first_checker": first_checker.pk, "proposer": proposer.pk,
    }  # fmt: skip
    assert set(ids) == set(OBJECT_KINDS)
    return World(folder=folder, people=everyone, ids=ids, other_project=other.pk)
