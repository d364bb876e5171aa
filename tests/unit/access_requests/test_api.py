"""The access request REST API: every endpoint for every role (404 for what the caller
may not see, 403 for what they see but may not do), refusals that change nothing, the
separation of duties enforced through the API, stale and tampered saves, attachments,
and the OpenAPI schema."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import get_resolver, reverse

from access_requests import selectors, services
from access_requests.models import AccessRequest, Attachment, Comment, Review
from sde.audit.events import EventType
from sde.identity import services as identity
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.projects.models import Project
from tests import scenarios
from tests.api_schema import schema_without_warnings
from tests.events import events_since, mark, types_since
from tests.unit.access_requests.builders import (
    END,
    PUBLIC_INTEREST,
    Panel,
    answers,
    drafted,
    drive_to,
    fresh,
    join,
    panel,
)

pytestmark = pytest.mark.django_db

S = AccessRequest.Status
E = EventType
JSON = "application/json"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _token_client(user: User) -> Client:
    _, key = identity.create_api_token(user=user, name="scripts", by=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _pdf(name: str = "protocol.pdf", content: bytes = PDF) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, "application/pdf")


def _errors(response: Any) -> dict[str, list[str]]:
    """Field errors, from a body the serializer refused ({field: [...]}) or a service's
    ValidationError ({"detail": ..., "errors": {field: [...]}})."""
    body = response.json()
    return body["errors"] if "errors" in body and "detail" in body else body


def _state() -> tuple[Any, ...]:
    """Everything an access request call could change."""
    return (
        sorted(
            AccessRequest.objects.values_list(
                "pk", "status", "revision", "assignee_id", "answers", "review_round"
            )
        ),
        sorted(Comment.objects.values_list("pk", "private")),
        sorted(Attachment.objects.values_list("pk", "stored_path", "redacted_at")),
        sorted(Review.objects.values_list("pk", "decision")),
        Project.objects.count(),
    )


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- a world with something behind every URL ---------------------------------------------
@dataclass
class World:
    organisation: Organisation
    applicant: User
    panel: Panel
    request: AccessRequest
    attachment: Attachment | None = None

    @property
    def ig(self) -> User:
        """The IG officer acting: independent, and not the one who started the review."""
        return self.panel.reviewers[1]

    @property
    def pk(self) -> int:
        return self.request.pk


def _world(
    organisation: Organisation,
    applicant: User,
    status: str = S.SUBMITTED,
    *,
    attachment: bool = False,
    comments: bool = False,
    **sections: dict[str, Any],
) -> World:
    reviewers = panel(2)
    filled = answers(organisation, [(applicant, "principal_investigator", True)], **sections)
    request = drafted(applicant, organisation, filled)
    added = None
    if attachment:
        added = services.add_attachment(
            request=request, by=applicant, upload=_pdf(), kind=Attachment.Kind.PROTOCOL
        )
    request = drive_to(request, status, by=reviewers)
    if comments:
        lead = reviewers.reviewers[0]
        services.add_comment(request=request, by=lead, body="Public: say more.")
        services.add_comment(request=request, by=lead, body="Private: check the CAG letter.",
                             private=True)  # fmt: skip
    return World(organisation, applicant, reviewers, fresh(request), added)


@dataclass(frozen=True)
class Endpoint:
    status: str  # the request's state in the world
    method: str
    name: str  # the URL's name
    allowed: dict[str, int]  # role -> answer; every other role gets 404
    body: Callable[[World], dict[str, Any]] | None = None
    multipart: bool = False
    world: dict[str, Any] | None = None  # extra arguments for _world

    def url(self, world: World) -> str:
        args = {"pk": world.pk, "attachment_pk": world.attachment.pk if world.attachment else 0}
        return reverse(self.name, kwargs={a: args[a] for a in _parameters(self.name)})


@functools.cache
def _parameters(name: str) -> list[str]:
    """The path parameters of the URL called ``name``."""
    return get_resolver().reverse_dict[name][0][0][1]  # type: ignore[no-any-return]


SEEN = {"applicant": 200, "ig": 200, "caldicott": 200}  # who sees a submitted request
REVIEWER_ONLY = {"applicant": 403, "ig": 200, "caldicott": 403}
APPLICANT_ONLY = {"applicant": 200, "ig": 403, "caldicott": 403}
OPI = {"legal": PUBLIC_INTEREST}
ENDPOINTS: dict[str, Endpoint] = {
    "list": Endpoint(
        S.SUBMITTED, "get", "api-access-requests",
        {"applicant": 200, "researcher": 200, "ig": 200, "caldicott": 200, "custodian": 200},
    ),
    "create": Endpoint(
        S.SUBMITTED, "post", "api-access-requests",
        # Another researcher may apply, but not for an organisation they do not belong to.
        {"applicant": 201, "researcher": 400, "ig": 403, "caldicott": 403, "custodian": 403},
        body=lambda w: {"organisation": w.organisation.pk, "title": "Another study"},
    ),
    "detail": Endpoint(S.SUBMITTED, "get", "api-access-request", SEEN),
    "save": Endpoint(
        S.RETURNED, "patch", "api-access-request", APPLICANT_ONLY,
        body=lambda w: {
            "revision": w.request.revision,
            "sections": ["project"],
            "answers": {"project": {**w.request.answers["project"], "aims": "Find them."}},
        },
    ),
    "submit": Endpoint(S.RETURNED, "post", "api-access-request-submit", APPLICANT_ONLY),
    "withdraw": Endpoint(S.SUBMITTED, "post", "api-access-request-withdraw",
                         APPLICANT_ONLY),
    "comments": Endpoint(
        S.IN_REVIEW, "get", "api-access-request-comments", SEEN, world={"comments": True}
    ),
    "comment": Endpoint(
        S.IN_REVIEW, "post", "api-access-request-comments",
        {"applicant": 201, "ig": 201, "caldicott": 403}, body=lambda w: {"body": "When?"},
    ),
    "attachments": Endpoint(
        S.SUBMITTED, "get", "api-access-request-attachments", SEEN,
        world={"attachment": True},
    ),
    "attach": Endpoint(
        S.RETURNED, "post", "api-access-request-attachments",
        {"applicant": 201, "ig": 403, "caldicott": 403},
        body=lambda w: {"kind": "dpia", "file": _pdf("dpia.pdf")}, multipart=True,
    ),
    "download": Endpoint(
        S.SUBMITTED, "get", "api-access-request-attachment", SEEN,
        world={"attachment": True},
    ),
    "redact": Endpoint(
        S.SUBMITTED, "post", "api-access-request-attachment-redact",
        REVIEWER_ONLY, body=lambda w: {"reason": "Names a patient."},
        world={"attachment": True},
    ),
    "start": Endpoint(S.SUBMITTED, "post", "api-access-request-start", REVIEWER_ONLY),
    "approve": Endpoint(
        S.IN_REVIEW, "post", "api-access-request-approve", REVIEWER_ONLY,
        body=lambda w: {"end_date": END.isoformat(), "conditions": "Annual report."},
    ),
    "return": Endpoint(
        S.IN_REVIEW, "post", "api-access-request-return", REVIEWER_ONLY,
        body=lambda w: {"reason": "Justify the dates."},
    ),
    "reject": Endpoint(
        S.IN_REVIEW, "post", "api-access-request-reject", REVIEWER_ONLY,
        body=lambda w: {"reason": "No public benefit."},
    ),
    "assign": Endpoint(
        S.SUBMITTED, "post", "api-access-request-assign", REVIEWER_ONLY,
        body=lambda w: {"assignee": w.panel.reviewers[0].pk},
    ),
    "sign-off": Endpoint(
        S.IN_REVIEW, "post", "api-access-request-sign-off",
        {"applicant": 403, "ig": 403, "caldicott": 200},
        body=lambda w: {"note": "The public interest outweighs the duty."}, world=OPI,
    ),
    "queue": Endpoint(
        S.SUBMITTED, "get", "api-access-request-review-queue",
        {"ig": 200, "caldicott": 200},
    ),
}  # fmt: skip
ROLES = ("applicant", "researcher", "ig", "caldicott", "custodian")


def _person(role: str, world: World, custodian: User) -> User:
    if role == "applicant":
        return world.applicant
    if role == "ig":
        return world.ig
    if role == "caldicott":
        return world.panel.guardian
    if role == "custodian":
        return custodian
    return scenarios.person(Role.RESEARCHER, accredited=True)


def _send(client: Client, endpoint: Endpoint, world: World | None, url: str = "") -> Any:
    """Call ``endpoint`` in ``world`` (without a world: at ``url``, with an empty body)."""
    url = url or endpoint.url(world)  # type: ignore[arg-type]
    body = endpoint.body(world) if endpoint.body and world else {}
    if endpoint.method == "get":
        return client.get(url)
    if endpoint.multipart:
        return client.post(url, body)
    return getattr(client, endpoint.method)(url, body, JSON)


def _arrange(endpoint: Endpoint, organisation: Organisation, applicant: User) -> World:
    return _world(organisation, applicant, endpoint.status, **(endpoint.world or {}))


def _expected(endpoint: Endpoint) -> dict[str, int]:
    return {role: endpoint.allowed.get(role, 404) for role in ROLES} | {"anonymous": 401}


@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_endpoint_answers_every_role_as_the_policy_says(
    client_for, client, organisation, applicant, custodian, name
):
    """One row of the table per endpoint, one column per role. The refusals come first,
    in the same world, and each must change nothing; then the roles that succeed."""
    endpoint = ENDPOINTS[name]
    expected = _expected(endpoint)
    world = _arrange(endpoint, organisation, applicant)
    answered = {}

    for role in sorted(expected, key=lambda r: expected[r] < 400):
        caller = client if role == "anonymous" else client_for(_person(role, world, custodian))
        before, at = _state(), mark()
        response = _send(caller, endpoint, world)
        answered[role] = response.status_code
        if response.status_code >= 400:
            assert (_state(), types_since(at)) == (before, []), role

    assert answered == expected


# A token reaches the same views as a session: one endpoint per method and body kind.
@pytest.mark.parametrize("name", ["detail", "save", "attach", "approve"])
def test_a_token_works_as_a_session_does(organisation, applicant, custodian, name):
    endpoint = ENDPOINTS[name]
    world = _arrange(endpoint, organisation, applicant)
    role, expected = next((r, c) for r, c in endpoint.allowed.items() if c < 300)

    response = _send(_token_client(_person(role, world, custodian)), endpoint, world)

    assert response.status_code == expected, response.content[:300]


def test_every_access_request_url_is_in_the_matrix():
    """The URL list comes from the resolver: a URL added tomorrow fails here until the
    matrix says who may call it (project-scoped ones are in test_api_projects)."""
    from tests.unit.sde.test_mfa_gate import API_URLS

    ours = {
        url.name
        for url in API_URLS
        if url.callback.__module__ == "access_requests.api" and "/projects/" not in url.path
    }

    assert ours == {endpoint.name for endpoint in ENDPOINTS.values()}


# --- drafts and visibility -------------------------------------------------------------
def test_a_draft_is_the_applicants_alone(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.DRAFT)
    ig = world.ig

    assert client_for(ig).get(reverse("api-access-request", args=[world.pk])).status_code == 404
    listed = client_for(ig).get(reverse("api-access-requests")).json()
    assert world.pk not in [r["id"] for r in listed["results"]]
    mine = client_for(applicant).get(reverse("api-access-requests")).json()
    assert [r["id"] for r in mine["results"]] == [world.pk]
    assert mine["results"][0]["status"] == "draft"


def test_the_list_filters_by_status(client_for, organisation, applicant):
    submitted = _world(organisation, applicant, S.SUBMITTED)
    _world(organisation, applicant, S.DRAFT)
    client = client_for(applicant)

    body = client.get(reverse("api-access-requests"), {"status": "submitted"}).json()

    assert [r["id"] for r in body["results"]] == [submitted.pk]
    assert client.get(reverse("api-access-requests"), {"status": "nope"}).status_code == 400


def test_create_starts_an_empty_draft_for_the_applicants_organisation(
    client_for, organisation, applicant
):
    at = mark()

    response = client_for(applicant).post(
        reverse("api-access-requests"), {"organisation": organisation.pk, "title": "Asthma"}, JSON
    )

    assert response.status_code == 201
    body = response.json()
    assert response["Location"] == reverse("api-access-request", args=[body["id"]])
    assert (body["status"], body["kind"], body["revision"]) == ("draft", "new", 1)
    assert body["answers"]["meta"] == {"title": "Asthma"}
    assert body["section_errors"]["meta"] == {
        "meta.start_date": ["Answer this question."],
        "meta.end_date": ["Answer this question."],
    }
    assert types_since(at) == [E.REQUEST_CREATED]


@pytest.mark.parametrize("organisation_id", [None, 0, 999_999, "x"])
def test_create_needs_a_listed_organisation(client_for, applicant, organisation_id):
    before = _state()

    response = client_for(applicant).post(
        reverse("api-access-requests"), {"organisation": organisation_id}, JSON
    )

    assert response.status_code == 400
    assert "organisation" in _errors(response)
    assert _state() == before


def test_the_detail_shows_answers_errors_flags_and_the_derived_treatment(
    client_for, organisation, applicant
):
    world = _world(organisation, applicant, S.SUBMITTED, legal=PUBLIC_INTEREST)

    body = client_for(applicant).get(reverse("api-access-request", args=[world.pk])).json()

    assert body["answers"] == json.loads(json.dumps(world.request.answers))
    assert body["revision"] == world.request.revision
    assert body["section_errors"] == {section: {} for section in body["answers"]}
    assert {"caldicott", "sensitive_fields"} <= {flag["code"] for flag in body["flags"]}
    treatment = selectors.opt_out_treatment(world.request)
    assert body["opt_out_treatment"] == {
        "ndop_applied": treatment.ndop_applied,
        "type1_applied": treatment.type1_applied,
        "consented_only": treatment.consented_only,
        "explanation": treatment.explanation,
        "table_version": treatment.table_version,
    }
    assert body["changes"] == []
    assert body["review"] is None  # the reviewers' block is for reviewers


def test_reviewers_see_the_approvals_so_far_and_whether_they_may_review(
    client_for, organisation, applicant
):
    world = _world(organisation, applicant, S.IN_REVIEW)
    first = world.panel.reviewers[0]
    services.approve(request=world.request, by=first, end_date=END)

    body = client_for(world.ig).get(reverse("api-access-request", args=[world.pk])).json()

    review = body["review"]
    assert [a["reviewer"]["id"] for a in review["approvals"]] == [first.pk]
    assert review["missing_for_approval"] == ["1 more independent approval"]
    assert review["conflict"] is None


# --- saving answers --------------------------------------------------------------------
def test_a_save_raises_the_revision_and_returns_what_is_still_missing(client_for, organisation,
                                                                      applicant):  # fmt: skip
    request = services.create_request(by=applicant, organisation=organisation)
    at = mark()

    response = client_for(applicant).patch(
        reverse("api-access-request", args=[request.pk]),
        {"revision": 1, "sections": ["meta"], "answers": {"meta": {"title": "Asthma",
                                                                    "start_date": "2026-01-01"}}},
        JSON,
    )  # fmt: skip

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["revision"] == 2
    assert body["title"] == "Asthma"
    assert body["section_errors"]["meta"] == {"meta.end_date": ["Answer this question."]}
    assert types_since(at) == [E.REQUEST_DRAFT_SAVED]


def test_a_stale_revision_is_a_409_and_saves_nothing(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.DRAFT)
    before, at = _state(), mark()

    response = client_for(applicant).patch(
        reverse("api-access-request", args=[world.pk]),
        {"revision": world.request.revision - 1, "answers": {"meta": {"title": "Overwrite"}}},
        JSON,
    )

    assert response.status_code == 409
    assert "changed elsewhere" in response.json()["detail"]
    assert _state() == before
    assert types_since(at) == []


def test_a_request_under_review_cannot_be_edited(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.SUBMITTED)
    before = _state()

    response = client_for(applicant).patch(
        reverse("api-access-request", args=[world.pk]),
        {"revision": world.request.revision, "answers": {"meta": {"title": "Changed"}}},
        JSON,
    )

    assert response.status_code == 409
    assert _state() == before


TAMPERED: dict[str, tuple[dict[str, Any], str]] = {
    "unknown section": ({"payment": {"iban": "GB00"}}, "payment"),
    "unknown question": ({"meta": {"title": "x", "approved": True}}, "meta.approved"),
    "dataset not offered": (
        {"data": {"datasets": {"secret-vault": {"nhs_number": "why"}}}}, "data.datasets",
    ),
    "field not offered": (
        {"data": {"datasets": {"patients": {"nhs_number": "why"}}}}, "data.datasets",
    ),
    "organisation not listed": (
        {"people": {"organisations": [{"organisation_id": 999_999, "role": "controller"}]}},
        "people.organisations",
    ),
    "wrong type": ({"project": {"commercial_involvement": "no"}},
                   "project.commercial_involvement"),
    "not a choice": ({"legal": {"article6": "z"}}, "legal.article6"),
    "answers not an object": (["meta"], "answers"),  # type: ignore[dict-item]
}  # fmt: skip


@pytest.mark.parametrize("case", TAMPERED)
def test_tampered_answers_are_a_400_and_save_nothing(client_for, organisation, applicant, case):
    world = _world(organisation, applicant, S.DRAFT)
    tampered, field = TAMPERED[case]
    before, at = _state(), mark()

    response = client_for(applicant).patch(
        reverse("api-access-request", args=[world.pk]),
        {"revision": world.request.revision, "answers": tampered},
        JSON,
    )

    assert response.status_code == 400
    assert field in _errors(response)
    assert _state() == before
    assert types_since(at) == []


def test_an_unknown_section_to_save_is_a_400(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.DRAFT)
    before = _state()

    response = client_for(applicant).patch(
        reverse("api-access-request", args=[world.pk]),
        {"revision": world.request.revision, "answers": {}, "sections": ["meta", "payment"]},
        JSON,
    )

    assert response.status_code == 400
    assert _errors(response) == {"payment": ["Not a section."]}
    assert _state() == before


def test_an_incomplete_application_cannot_be_submitted(client_for, organisation, applicant):
    request = services.create_request(by=applicant, organisation=organisation, title="Asthma")
    before = _state()

    response = client_for(applicant).post(reverse("api-access-request-submit", args=[request.pk]))

    assert response.status_code == 400
    assert "meta.start_date" in _errors(response)
    assert _state() == before


def test_withdrawing_twice_is_a_409(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.WITHDRAWN)

    response = client_for(applicant).post(reverse("api-access-request-withdraw", args=[world.pk]))

    assert response.status_code == 409


# --- separation of duties --------------------------------------------------------------
@pytest.fixture
def ig_applicant(organisation: Organisation) -> User:
    """An IG officer who is also a researcher, and applies (without using data)."""
    person = scenarios.person(Role.RESEARCHER, Role.IG_OFFICER)
    join(person, organisation)
    return person


def _own_request(organisation: Organisation, ig_applicant: User, status: str) -> World:
    filled = answers(organisation, [(ig_applicant, "principal_investigator", False)])
    reviewers = panel(2)
    request = drive_to(drafted(ig_applicant, organisation, filled), status, by=reviewers)
    return World(organisation, ig_applicant, reviewers, fresh(request))


@pytest.mark.parametrize(
    ("status", "action", "body"),
    [
        (S.SUBMITTED, "api-access-request-start", {}),
        (S.SUBMITTED, "api-access-request-assign", None),
        (S.IN_REVIEW, "api-access-request-approve", {"end_date": END.isoformat()}),
        (S.IN_REVIEW, "api-access-request-return", {"reason": "Mine."}),
        (S.IN_REVIEW, "api-access-request-reject", {"reason": "Mine."}),
    ],
)
def test_an_ig_officer_cannot_review_their_own_request_through_the_api(
    client_for, organisation, ig_applicant, status, action, body
):
    world = _own_request(organisation, ig_applicant, status)
    body = body if body is not None else {"assignee": ig_applicant.pk}
    before, at = _state(), mark()

    response = client_for(ig_applicant).post(reverse(action, args=[world.pk]), body, JSON)

    assert response.status_code == 403
    assert "you applied for it" in response.json()["detail"]
    assert _state() == before
    assert types_since(at) == []


def test_an_ig_applicant_sees_their_own_request_without_private_notes(
    client_for, organisation, ig_applicant
):
    world = _own_request(organisation, ig_applicant, S.IN_REVIEW)
    lead = world.panel.reviewers[0]
    services.add_comment(request=world.request, by=lead, body="Private.", private=True)

    body = client_for(ig_applicant).get(reverse("api-access-request-comments", args=[world.pk]))
    detail = client_for(ig_applicant).get(reverse("api-access-request", args=[world.pk])).json()

    assert body.status_code == 200
    assert body.json() == []
    assert detail["review"]["conflict"] == "you applied for it"


def test_a_second_approval_by_the_same_reviewer_is_refused(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.IN_REVIEW)
    client = client_for(world.ig)
    url = reverse("api-access-request-approve", args=[world.pk])
    terms = {"end_date": END.isoformat()}
    first = client.post(url, terms, JSON)
    before, at = _state(), mark()

    again = client.post(url, terms, JSON)

    assert first.status_code == 200
    assert first.json()["status"] == "in_review"
    assert again.status_code == 409
    assert _state() == before
    assert types_since(at) == []
    assert world.request.reviews.filter(decision="approve").count() == 1


def test_two_independent_approvals_through_the_api_create_the_project(
    client_for, organisation, applicant
):
    world = _world(organisation, applicant, S.IN_REVIEW)
    terms = {"end_date": END.isoformat(), "conditions": "Annual report."}
    url = reverse("api-access-request-approve", args=[world.pk])
    client_for(world.panel.reviewers[1]).post(url, terms, JSON)
    at = mark()

    response = client_for(world.panel.reviewers[0]).post(url, terms, JSON)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["approved_end_date"]) == ("approved", END.isoformat())
    project = Project.objects.get(access_request_id=world.pk)
    assert body["project"] == project.pk
    assert body["conditions"] == project.conditions == "Annual report."
    events = types_since(at)
    assert events[:2] == [E.REQUEST_APPROVAL_RECORDED, E.REQUEST_APPROVED]
    assert E.PROJECT_CREATED in events


def test_approving_different_terms_from_the_first_reviewer_is_a_400(
    client_for, organisation, applicant
):
    world = _world(organisation, applicant, S.IN_REVIEW)
    url = reverse("api-access-request-approve", args=[world.pk])
    client_for(world.panel.reviewers[1]).post(url, {"end_date": END.isoformat()}, JSON)
    before = _state()

    response = client_for(world.panel.reviewers[0]).post(url, {"end_date": "2027-06-30"}, JSON)

    assert response.status_code == 400
    assert "end_date" in _errors(response)
    assert _state() == before


@pytest.mark.parametrize("action", ["api-access-request-return", "api-access-request-reject"])
def test_returning_or_rejecting_needs_a_reason(client_for, organisation, applicant, action):
    world = _world(organisation, applicant, S.IN_REVIEW)
    before = _state()

    response = client_for(world.ig).post(reverse(action, args=[world.pk]), {"reason": " "}, JSON)

    assert response.status_code == 400
    assert _errors(response) == {"reason": ["Give the reason."]}
    assert _state() == before


def test_assigning_to_someone_who_is_not_an_independent_reviewer_is_a_400(
    client_for, organisation, applicant
):
    world = _world(organisation, applicant, S.SUBMITTED)
    before = _state()

    response = client_for(world.ig).post(
        reverse("api-access-request-assign", args=[world.pk]), {"assignee": applicant.pk}, JSON
    )

    assert response.status_code == 400
    assert "assignee" in _errors(response)
    assert _state() == before


def test_a_sign_off_is_refused_where_the_basis_does_not_need_one(
    client_for, organisation, applicant
):
    world = _world(organisation, applicant, S.IN_REVIEW)

    response = client_for(world.panel.guardian).post(
        reverse("api-access-request-sign-off", args=[world.pk]), {"note": "Fine."}, JSON
    )

    assert response.status_code == 409


def test_the_review_queue_says_who_may_review_each_request(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.SUBMITTED)

    body = client_for(world.ig).get(reverse("api-access-request-review-queue")).json()

    (entry,) = body
    assert entry["request"]["id"] == world.pk
    assert entry["approvals"] == 0
    assert entry["needed"] == ["2 more independent approvals"]
    assert entry["conflict"] is None
    assert entry["overdue"] is False


# --- comments --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "private_seen"), [("applicant", False), ("ig", True), ("caldicott", False)]
)
def test_private_notes_are_for_independent_reviewers_only(
    client_for, organisation, applicant, custodian, role, private_seen
):
    world = _world(organisation, applicant, S.IN_REVIEW, comments=True)

    body = (
        client_for(_person(role, world, custodian))
        .get(reverse("api-access-request-comments", args=[world.pk]))
        .json()
    )

    assert [c["body"].split(":")[0] for c in body] == (
        ["Public", "Private"] if private_seen else ["Public"]
    )


def test_an_applicant_cannot_write_a_private_note(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.IN_REVIEW)
    before = _state()

    response = client_for(applicant).post(
        reverse("api-access-request-comments", args=[world.pk]),
        {"body": "Between us.", "private": True},
        JSON,
    )

    assert response.status_code == 403
    assert _state() == before


def test_a_reviewers_private_note_is_recorded(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.IN_REVIEW)
    at = mark()

    response = client_for(world.ig).post(
        reverse("api-access-request-comments", args=[world.pk]),
        {"body": "Check the DSPT.", "private": True},
        JSON,
    )

    assert response.status_code == 201
    assert response.json()["private"] is True
    (event,) = events_since(at)
    assert (event.event_type, event.actor_id) == (E.REQUEST_COMMENT_ADDED, world.ig.pk)
    assert event.data["private"] is True


def test_an_empty_comment_is_a_400(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.IN_REVIEW)

    response = client_for(applicant).post(
        reverse("api-access-request-comments", args=[world.pk]), {"body": "  "}, JSON
    )

    assert response.status_code == 400
    assert "body" in _errors(response)


# --- attachments -----------------------------------------------------------------------
def test_an_attachment_is_listed_and_downloaded_as_uploaded_and_each_download_is_audited(
    client_for, organisation, applicant
):
    request = services.create_request(by=applicant, organisation=organisation)
    client = client_for(applicant)

    uploaded = client.post(
        reverse("api-access-request-attachments", args=[request.pk]),
        {"kind": "protocol", "file": _pdf()},
    )
    attachment = uploaded.json()
    at = mark()
    download = client.get(
        reverse("api-access-request-attachment", args=[request.pk, attachment["id"]])
    )
    listed = client.get(reverse("api-access-request-attachments", args=[request.pk])).json()

    assert uploaded.status_code == 201
    assert (attachment["kind"], attachment["file_name"]) == ("protocol", "protocol.pdf")
    assert (attachment["size"], attachment["redacted"]) == (len(PDF), False)
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    assert download["Content-Type"] == "application/pdf"
    assert 'filename="protocol.pdf"' in download["Content-Disposition"]
    assert listed == [attachment]
    (event,) = events_since(at)
    assert (event.event_type, event.actor_id) == (E.REQUEST_ATTACHMENT_VIEWED, applicant.pk)


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (SimpleUploadedFile("tool.exe", b"MZ\x90\x00", "application/octet-stream"), "attach"),
        (SimpleUploadedFile("fake.pdf", b"<html>not a pdf</html>", "application/pdf"), "really"),
        (SimpleUploadedFile("notes.txt", b"\xff\xfe\x00bad", "text/plain"), "plain text"),
        (None, "oversize"),
    ],
    ids=["exe", "disguised-pdf", "binary-txt", "oversize"],
)
def test_a_wrong_type_or_oversize_attachment_is_a_400_and_keeps_nothing(
    client_for, settings, organisation, applicant, upload, message
):
    settings.SDE_MAX_ATTACHMENT_BYTES = 64
    if upload is None:
        upload = _pdf(content=PDF + b"%" * 64)
        message = "the limit is 64"
    request = services.create_request(by=applicant, organisation=organisation)
    root = Path(django_settings.SDE_ATTACHMENT_ROOT)
    before, files, at = _state(), _files(root), mark()

    response = client_for(applicant).post(
        reverse("api-access-request-attachments", args=[request.pk]),
        {"kind": "protocol", "file": upload},
    )

    assert response.status_code == 400
    assert message in " ".join(_errors(response)["file"])
    assert _state() == before
    assert _files(root) == files
    assert types_since(at) == []


@pytest.mark.parametrize(
    "body", [{"kind": "protocol"}, {"kind": "selfie", "file": "x"}], ids=["no-file", "bad-kind"]
)
def test_an_attachment_needs_a_file_and_a_kind(client_for, organisation, applicant, body):
    request = services.create_request(by=applicant, organisation=organisation)
    if "file" in body:
        body = {**body, "file": _pdf()}

    response = client_for(applicant).post(
        reverse("api-access-request-attachments", args=[request.pk]), body
    )

    assert response.status_code == 400
    assert set(_errors(response)) == ({"file"} if "file" not in body else {"kind"})
    assert not Attachment.objects.exists()


def test_attachments_are_added_only_while_the_request_is_editable(
    client_for, organisation, applicant
):
    world = _world(organisation, applicant, S.SUBMITTED)
    before = _state()

    response = client_for(applicant).post(
        reverse("api-access-request-attachments", args=[world.pk]),
        {"kind": "dpia", "file": _pdf("dpia.pdf")},
    )

    assert response.status_code == 409
    assert _state() == before


def test_ig_redacts_an_attachment_and_the_original_is_gone(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.SUBMITTED, attachment=True)
    assert world.attachment is not None
    url = reverse("api-access-request-attachment", args=[world.pk, world.attachment.pk])

    response = client_for(world.ig).post(
        reverse("api-access-request-attachment-redact", args=[world.pk, world.attachment.pk]),
        {"reason": "Names a patient."},
        JSON,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["redacted"] is True
    assert body["redacted_by"]["id"] == world.ig.pk
    assert body["redaction_reason"] == "Names a patient."
    assert client_for(applicant).get(url).status_code == 404


def test_a_redacted_copy_can_replace_the_original(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.SUBMITTED, attachment=True)
    assert world.attachment is not None
    copy = PDF.replace(b"obj", b"xxx")

    response = client_for(world.ig).post(
        reverse("api-access-request-attachment-redact", args=[world.pk, world.attachment.pk]),
        {"reason": "Names a patient.", "replacement": _pdf("redacted.pdf", copy)},
    )
    download = client_for(applicant).get(
        reverse("api-access-request-attachment", args=[world.pk, world.attachment.pk])
    )

    assert response.status_code == 200
    assert b"".join(download.streaming_content) == copy


def test_an_attachment_of_another_request_is_a_404(client_for, organisation, applicant):
    world = _world(organisation, applicant, S.SUBMITTED, attachment=True)
    other = services.create_request(by=applicant, organisation=organisation)
    assert world.attachment is not None

    response = client_for(applicant).get(
        reverse("api-access-request-attachment", args=[other.pk, world.attachment.pk])
    )

    assert response.status_code == 404


# --- the OpenAPI schema ----------------------------------------------------------------
def test_the_schema_covers_the_access_request_api_without_warnings():
    document = schema_without_warnings()
    paths = set(document["paths"])
    assert {
        "/api/v1/access-requests",
        "/api/v1/access-requests/review-queue",
        "/api/v1/access-requests/{id}",
        "/api/v1/access-requests/{id}/attachments/{attachment_pk}",
        "/api/v1/access-requests/{id}/review/sign-off",
        "/api/v1/projects/{id}/changes",
    } <= paths
    upload = document["paths"]["/api/v1/access-requests/{id}/attachments"]["post"]
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data"]
    enums = document["components"]["schemas"]
    assert enums["AccessRequestStatusEnum"]["enum"] == list(S.values)


def test_someone_who_may_not_comment_gets_a_403_whatever_they_send(
    client_for, organisation, applicant
):
    world = _world(organisation, applicant, S.IN_REVIEW)

    response = client_for(world.panel.guardian).post(
        reverse("api-access-request-comments", args=[world.pk]), {}, JSON
    )

    assert response.status_code == 403


def test_an_ig_officer_cannot_redact_their_own_requests_attachments(
    client_for, organisation, ig_applicant
):
    request = services.create_request(by=ig_applicant, organisation=organisation)
    attachment = services.add_attachment(
        request=request, by=ig_applicant, upload=_pdf(), kind=Attachment.Kind.PROTOCOL
    )

    response = client_for(ig_applicant).post(
        reverse("api-access-request-attachment-redact", args=[request.pk, attachment.pk]),
        {"reason": "Mine."},
        JSON,
    )

    assert response.status_code == 403
