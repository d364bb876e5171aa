"""Complete applications and the people around them, for the access request tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings

from access_requests import questions, services
from access_requests.models import AccessRequest
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from tests import scenarios
from tests.unit.sde.projects.builders import accredit

START, END = date(2026, 1, 1), date(2027, 12, 31)
TODAY = date(2026, 6, 15)
WHY = "Needed to link each person's records across the tables for the analysis."


def applicant(organisation: Organisation, *roles: Role) -> User:
    """An accredited researcher who belongs to ``organisation``."""
    person = accredit(scenarios.person(Role.RESEARCHER, *roles))
    join(person, organisation)
    return person


def join(person: User, organisation: Organisation) -> None:
    identity.add_membership(user=person, organisation=organisation, by=scenarios.administrator())


def answers(
    organisation: Organisation, members: list[tuple[User, str, bool]], **sections: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """A complete application (every section valid), changed by ``sections``."""
    complete: dict[str, dict[str, Any]] = {
        "meta": {
            "title": "Hypertension in North Place",
            "cag_reference": "24/CAG/0001",
            "start_date": START.isoformat(),
            "end_date": END.isoformat(),
        },
        "people": {
            "organisations": [
                {
                    "organisation_id": organisation.pk,
                    "role": "controller",
                    "ico_number": "ZA123456",
                    "dspt_status": "Standards met",
                    "dspt_expiry": "2027-06-30",
                    "country": "England",
                }
            ],
            "members": [
                {"username": user.username, "role": role, "accesses_data": uses}
                for user, role, uses in members
            ],
        },
        "project": {
            "lay_summary": "Who is treated for high blood pressure, and who is missed.",
            "purpose": "research",
            "aims": "Find the people with untreated hypertension.",
            "dataset_objectives": {"patients": "The population.", "gp-events": "Diagnoses."},
            "public_benefit": "Fewer strokes in North Place within five years.",
            "commercial_involvement": False,
        },
        "legal": {
            "article6": "e",
            "article9": "j",
            "schedule1_condition": "Paragraph 4: research",
            "confidentiality_basis": "s251",
            "s251_regulation": "5",
            "s251_expiry": "2027-12-31",
            "ethics": "favourable",
            "rec_opinion_date": "2025-11-01",
        },
        "data": {
            "datasets": {
                "patients": {"person_id": WHY, "sex": "Rates differ by sex."},
                "gp-events": {"person_id": WHY, "date": WHY},
            },
            "level": "record_level",
            "cohort": {"age_min": 18},
        },
        "settings": {"processing_location": "uk"},
        "outputs": {
            "output_types": ["tables"],
            "publication_plan": "A paper and a report to the ICB.",
            "disclosure_rules": "default",
        },
        "retention": {"retain_until": "2028-12-31"},
        "declarations": {"agreement_version": questions.AGREEMENT_VERSION, "accepted": True},
    }
    for key, changes in sections.items():
        complete[key] = {**complete[key], **copy.deepcopy(changes)}
    return complete


def drafted(by: User, organisation: Organisation, filled: dict[str, Any]) -> AccessRequest:
    request = services.create_request(by=by, organisation=organisation)
    saved, _ = services.save_answers(
        request=request, by=by, answers=filled, revision=request.revision
    )
    return saved


def ig_officer() -> User:
    return scenarios.person(Role.IG_OFFICER)


def caldicott_guardian() -> User:
    return scenarios.person(Role.CALDICOTT_GUARDIAN)


# The basis that needs the Caldicott Guardian's sign-off (the s251 answers left out: a
# None answer is an unanswered question, so ``check_shape`` drops it).
PUBLIC_INTEREST: dict[str, Any] = {
    "confidentiality_basis": "overriding_public_interest",
    "s251_regulation": None,
    "s251_expiry": None,
}


@dataclass(frozen=True)
class Panel:
    """Independent reviewers (IG officers with no organisation) and a Caldicott Guardian,
    who drive requests through review in the tests' arrange steps."""

    reviewers: tuple[User, ...]
    guardian: User


def panel(size: int = 3) -> Panel:
    return Panel(tuple(ig_officer() for _ in range(size)), caldicott_guardian())


def fresh(request: AccessRequest) -> AccessRequest:
    return AccessRequest.objects.get(pk=request.pk)


def approve_by(request: AccessRequest, *reviewers: User, end: date = END) -> AccessRequest:
    for reviewer in reviewers:
        request = services.approve(request=request, by=reviewer, end_date=end, today=TODAY)
    return request


def drive_to(request: AccessRequest, status: str, *, by: Panel) -> AccessRequest:
    """``request`` (a complete draft) moved into ``status`` by the services that own each
    step: the applicant submits or withdraws, the panel reviews and decides."""
    S = AccessRequest.Status
    first = by.reviewers[0]
    if status == S.DRAFT:
        return request
    request = services.submit(request=request, by=request.applicant, today=TODAY)
    if status == S.SUBMITTED:
        return request
    if status == S.WITHDRAWN:  # withdrawn after submission, as reviewers see it
        return services.withdraw(request=request, by=request.applicant)
    request = services.start_review(request=request, by=first)
    if status == S.IN_REVIEW:
        return request
    if status == S.RETURNED:
        return services.return_request(request=request, by=first, reason="Say more.")
    if status == S.REJECTED:
        return services.reject(request=request, by=first, reason="Not in the public interest.")
    if status == S.APPROVED:
        if questions.needs_caldicott(request.answers):
            request = services.sign_off(request=request, by=by.guardian, note="Justified.")
        request = approve_by(request, *by.reviewers[: settings.SDE_APPROVAL_QUORUM])
        assert request.status == S.APPROVED, services.missing_for_approval(request)
        return request
    raise AssertionError(f"no route to {status}")
