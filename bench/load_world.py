"""The load benchmark's world (bench/load.py), every row made through its service: a
synthetic drop ingested, projects with extracts, a real job and a submitted release
request per project, a cohort for the direct care page, access requests in review, older
audit events, and the simulated people with their accounts and TOTP devices."""

from __future__ import annotations

import argparse
import itertools
import secrets
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

# Ten people in every ten: researchers, checkers, IG officers, a clinician, the public.
MIX = ("researcher", "checker", "ig", "researcher", "anonymous", "clinician", "researcher",
       "checker", "anonymous", "ig")  # fmt: skip
SCRIPT = """import sdelib
patients = sdelib.read("patients")
sdelib.table(patients, by=["sex"], name="people_by_sex", title="People by sex")
"""
PATIENT_FIELDS = ["person_id", "birth_month", "sex", "ethnicity", "lsoa_code", "imd_decile",
                  "practice_ods", "pcn_code", "place", "registration_start", "registration_end",
                  "date_of_death"]  # fmt: skip
SCOPE = {
    "datasets": {"patients": PATIENT_FIELDS, "gp-events": ["person_id", "date", "snomed_code"]},
    "legal_basis": "s251_standard",
}


@dataclass
class World:
    password: str
    people: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    project_of: dict[int, int] = field(default_factory=dict)  # researcher -> project
    size: dict[str, int] = field(default_factory=dict)


def seed(args: argparse.Namespace, var_dir: Path) -> World:
    """The world (see the module docstring), every row through its service. The access
    requests' answers are the access-request tests' complete application
    (tests/unit/access_requests/builders.py), so the two cannot drift apart."""
    from django.db import transaction
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from access_requests import services as applications
    from outputs import services as releases
    from sde.analysis import services as analyses
    from sde.analysis.models import Job
    from sde.audit.events import EventType
    from sde.audit.services import get_system_user, record_event
    from sde.data.catalogue import register_standard_datasets
    from sde.data.ingestion import request_ingest, run_ingest
    from sde.data.models import Ingest
    from sde.data.synth import FaultRates, SynthConfig, generate, write_drop
    from sde.identity import services as identity
    from sde.identity.models import Accreditation, Organisation, User
    from sde.identity.roles import Role
    from sde.projects.services import MemberSpec, create_project
    from sde.tasks import build_project_extracts_task
    from tests.scenarios import release_draft  # the release tests' own sequence

    world = World(password=secrets.token_urlsafe(16))
    today = date.today()
    admin = identity.bootstrap_administrator(
        username="load-admin", email="admin@load.invalid", first_name="Load",
        last_name="Admin", password=world.password, by=get_system_user(),
    )  # fmt: skip
    K = Accreditation.Kind

    def organisation(name: str, kind: Any, ods: str | None = None) -> Organisation:
        return identity.create_organisation(name=name, kind=kind, ods_code=ods, by=admin)

    icb = organisation("Load ICB", Organisation.Kind.ICB, "QZZ")
    university = organisation("University of Load", Organisation.Kind.UNIVERSITY)
    practice = organisation("Load Practice 1", Organisation.Kind.GP_PRACTICE, "Y99001")
    organisation("Load Practice 2", Organisation.Kind.GP_PRACTICE, "Y99002")
    counter = itertools.count(1)

    def person(role: Any, home: Organisation, *kinds: Any) -> User:
        n = next(counter)
        user = identity.create_account(
            username=f"{role.value.replace('_', '-')}-{n}", email=f"p{n}@load.invalid",
            first_name="Load", last_name=f"Person {n}", password=world.password, by=admin,
        )  # fmt: skip
        identity.grant_role(user=user, role=role, by=admin)
        identity.add_membership(user=user, organisation=home, by=admin)
        for kind in kinds:
            identity.record_accreditation(user=user, kind=kind, by=admin,
                                          issued_on=today - timedelta(days=100),
                                          expires_on=today + timedelta(days=600))  # fmt: skip
        TOTPDevice.objects.create(user=user, name="load", confirmed=True)
        return user

    custodian = person(Role.DATA_CUSTODIAN, icb, K.DATA_SECURITY)
    register_standard_datasets(by=custodian)
    drop = var_dir / "drop"
    config = SynthConfig(faults=FaultRates.none(), people_per_practice=(args.patients + 1) // 2)
    write_drop(generate(patients=args.patients, seed=2026, config=config), drop)
    ingest = run_ingest(ingest=request_ingest(drop_dir=drop, by=custodian, enqueue=False),
                        by=custodian)  # fmt: skip
    assert ingest.status == Ingest.Status.SUCCEEDED, ingest.status
    shutil.rmtree(drop)
    print(f"  ... ingested {args.patients:,} people", file=sys.stderr, flush=True)

    ig = person(Role.IG_OFFICER, icb, K.DATA_SECURITY)
    roles = {"researcher": (Role.RESEARCHER, university, K.SAFE_RESEARCHER, K.DATA_SECURITY),
             "checker": (Role.OUTPUT_CHECKER, icb, K.OUTPUT_CHECKER, K.DATA_SECURITY),
             "ig": (Role.IG_OFFICER, icb, K.DATA_SECURITY),
             "clinician": (Role.CLINICIAN, practice, K.DATA_SECURITY)}  # fmt: skip
    for n in range(args.users):
        kind = MIX[n % len(MIX)]
        world.people[kind].append(0 if kind == "anonymous" else person(*roles[kind]).pk)
    researchers = [User.objects.get(pk=pk) for pk in world.people["researcher"]]
    pis = [person(*roles["researcher"]) for _ in range(args.projects)]
    jobs = 0
    for p, pi in enumerate(pis):
        team = [MemberSpec(pi, "principal_investigator")] + [
            MemberSpec(r, "analyst") for r in researchers[p :: args.projects]
        ]
        purpose = "planning" if p == 0 else "research"
        project = create_project(
            title=f"Load {purpose} project {p + 1}", lay_summary="Who is registered, by sex.",
            organisation=icb if p == 0 else university, scope={**SCOPE, "purpose": purpose},
            start_date=today - timedelta(days=30), end_date=today + timedelta(days=300),
            members=team, by=ig,
        )  # fmt: skip
        assert build_project_extracts_task(project.pk) == "built"
        for member in team[1:]:
            world.project_of[member.user.pk] = project.pk
        script = analyses.save_script(project=project, name="counts.py", content=SCRIPT, by=pi)
        job = analyses.submit_job(project=project, by=pi, on_dummy=False, script=script)
        assert analyses.run_job(job_id=job.pk, worker="load") == Job.Status.SUCCEEDED
        job, jobs = Job.objects.get(pk=job.pk), jobs + 1
        if p == 0:  # the clinicians' cohort
            cohort = analyses.submit_job(
                project=project, by=pi, on_dummy=False, analysis="cohort",
                parameters={"index_date": str(today), "definition": {"age": {"min": 18}},
                            "name": "adults"},
            )  # fmt: skip
            assert analyses.run_job(job_id=cohort.pk, worker="load") == Job.Status.SUCCEEDED
            jobs += 1
        request = release_draft(job, pi, job.outputs.filter(name__endswith=".csv"),
                                title="People by sex", context=lambda _: "People by sex.",
                                controls="None needed.",
                                justification="Counts of whole groups.")  # fmt: skip
        releases.submit(request=request, by=pi)
        print(f"  ... project {p + 1} of {args.projects} ready", file=sys.stderr, flush=True)

    from tests.unit.access_requests.builders import answers  # a complete application

    for _ in range(args.access_requests):
        applicant = person(*roles["researcher"])
        draft = applications.create_request(by=applicant, organisation=university)
        filled = answers(university, [(applicant, "principal_investigator", True)])
        draft, _ = applications.save_answers(request=draft, by=applicant, answers=filled,
                                             revision=draft.revision)  # fmt: skip
        applications.submit(request=draft, by=applicant)

    actors = list(User.objects.filter(is_system=False))
    kinds = [EventType.LOGIN_SUCCEEDED, EventType.PROJECT_WORKSPACE_VIEWED,
             EventType.AUDIT_LOG_VIEWED]  # fmt: skip
    for start in range(0, args.audit_events, 1000):
        with transaction.atomic():
            for n in range(start, min(start + 1000, args.audit_events)):
                record_event(event_type=kinds[n % 3], actor=actors[n % len(actors)],
                             project_id=1 + n % args.projects, data={"n": n})  # fmt: skip
    world.size = {"patients": args.patients, "projects": args.projects, "jobs": jobs,
                  "people": User.objects.filter(is_system=False).count()}  # fmt: skip
    return world


def counts() -> dict[str, int]:
    from access_requests.models import AccessRequest
    from outputs.models import ReleaseRequest
    from sde.analysis.models import Job
    from sde.audit.models import AuditEvent

    return {
        "jobs": Job.objects.count(),
        "release requests": ReleaseRequest.objects.count(),
        "access requests": AccessRequest.objects.count(),
        "audit events": AuditEvent.objects.count(),
    }
