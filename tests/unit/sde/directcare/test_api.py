"""Direct care through the REST API (/api/v1/direct-care/): who gets which answer on every
endpoint, a request from creation to its list, the list's rows for the requester alone,
and the OpenAPI schema."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
import yaml
from django.test import Client
from django.urls import URLPattern, reverse
from drf_spectacular.validation import validate_schema

from sde.directcare import services
from sde.directcare.models import ReidentificationRequest
from sde.identity.models import User
from tests.conftest import verified_client
from tests.unit.sde.directcare.conftest import PEOPLE, url_patterns

pytestmark = pytest.mark.django_db
S = ReidentificationRequest.Status
JSON = "application/json"
REASON = "Invite these patients for an annual physical health check."

# The matrix's columns are conftest.PEOPLE: "colleague" is a clinician at the requester's
# practice who did not ask; "ig2" an IG officer who has not signed it off.
SEES_REQUEST = (401, 405, 404, 404, 405, 405, 405, 404, 404, 404)  # a method it lacks
ONLY_REQUESTER = (401, 200, 404, 404, 404, 404, 404, 404, 404, 404)
# Every direct care endpoint and method, on a request whose list is ready (the
# requester's, at practice Y99001, signed off by ig and caldicott). Anyone neither a
# clinician nor a signer gets 404 everywhere.
MATRIX: dict[tuple[str, str], tuple[int, ...]] = {
    # Signers may call it, and get no cohorts (the list is a clinician's).
    ("api-direct-care-cohorts", "get"): (401, 200, 200, 200, 200, 200, 200, 404, 404, 404),
    ("api-direct-care-cohorts", "post"): (401, 405, 405, 405, 405, 405, 405, 404, 404, 404),
    ("api-direct-care-requests", "get"): (401, 200, 200, 200, 200, 200, 200, 404, 404, 404),
    # A valid body: each clinician asks about their own practice; signers see no cohort.
    ("api-direct-care-requests", "post"): (401, 201, 201, 201, 404, 404, 404, 404, 404, 404),
    ("api-direct-care-request", "get"): (401, 200, 404, 404, 200, 200, 200, 404, 404, 404),
    ("api-direct-care-request", "post"): SEES_REQUEST,
    # The IG sign-off: ig gave it already and the others lack the role (403); ig2 may
    # give it, but the request is past sign-off (409).
    ("api-direct-care-sign-off", "post"): (401, 403, 404, 404, 403, 409, 403, 404, 404, 404),
    ("api-direct-care-sign-off", "get"): SEES_REQUEST,
    ("api-direct-care-withdraw", "post"): (401, 409, 404, 404, 403, 403, 403, 404, 404, 404),
    ("api-direct-care-withdraw", "get"): SEES_REQUEST,
    ("api-direct-care-list", "get"): ONLY_REQUESTER,
    ("api-direct-care-list", "post"): SEES_REQUEST,
    ("api-direct-care-list-csv", "get"): ONLY_REQUESTER,
    ("api-direct-care-list-csv", "post"): SEES_REQUEST,
}
SCHEMA_PATHS = {
    "/api/v1/direct-care/cohorts": {"get"},
    "/api/v1/direct-care/requests": {"get", "post"},
    "/api/v1/direct-care/requests/{id}": {"get"},
    "/api/v1/direct-care/requests/{id}/sign-off": {"post"},
    "/api/v1/direct-care/requests/{id}/withdraw": {"post"},
    "/api/v1/direct-care/requests/{id}/list": {"get"},
    "/api/v1/direct-care/requests/{id}/list.csv": {"get"},
}


def _endpoints() -> dict[str, URLPattern]:
    """Every API URL named api-direct-care*: a new one fails the matrix until it has rows."""
    return {p.name: p for p in url_patterns()
            if p.name and p.name.startswith("api-direct-care")}  # fmt: skip


def _client(user: User | None) -> Client:
    return Client() if user is None else verified_client(user)


def _post(client: Client, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, json.dumps(body or {}), content_type=JSON)


def _errors(response: Any) -> dict[str, list[str]]:
    """Field errors from a 400, whether a serializer's or a service's."""
    body = response.json()
    return body["errors"] if "errors" in body and "detail" in body else body


def _ready(cohort, practice, clinician, ig, caldicott) -> ReidentificationRequest:
    """A request signed off by both and its list made, as the worker makes it."""
    request = services.request_reidentification(cohort=cohort, practice=practice, reason=REASON,
                                                by=clinician)  # fmt: skip
    services.sign_off(request=request, by=ig, role="ig", outcome="approve")
    services.sign_off(request=request, by=caldicott, role="caldicott", outcome="approve")
    ready = services.perform(request=request)
    assert ready.status == S.READY
    return ready


def _numbers(listing: Any) -> list[str]:
    plain = [str(n) for n in listing["nhs_number"]]
    return plain + [f"{n[:3]} {n[3:6]} {n[6:]}" for n in plain]


# --- The matrix ---------------------------------------------------------------------------
def test_the_matrix_has_rows_for_every_direct_care_endpoint_and_no_others():
    assert {name for name, _ in MATRIX} == set(_endpoints())
    assert all(len(row) == len(PEOPLE) for row in MATRIX.values())


@pytest.mark.parametrize("who", PEOPLE)
def test_each_person_gets_the_answer_the_matrix_gives_on_every_endpoint(
    who, people, cohort, practice, clinician, ig, caldicott
):
    ready = _ready(cohort, practice, clinician, ig, caldicott)
    client = _client(people[who])
    column = PEOPLE.index(who)
    bodies = {
        "api-direct-care-requests": {"cohort_id": cohort.pk, "reason": REASON},
        "api-direct-care-sign-off": {"role": "ig", "outcome": "approve"},
    }
    expected, got = {}, {}

    for name, pattern in _endpoints().items():
        url = reverse(name, args=[ready.pk] if "pk" in pattern.pattern.converters else [])
        expected[name, "get"] = MATRIX[name, "get"][column]
        got[name, "get"] = client.get(url).status_code
        expected[name, "post"] = MATRIX[name, "post"][column]
        got[name, "post"] = _post(client, url, bodies.get(name)).status_code

    assert got == expected
    fresh = ReidentificationRequest.objects.get(pk=ready.pk)
    assert (fresh.status, fresh.decisions.count()) == (S.READY, 2)
    made = ReidentificationRequest.objects.exclude(pk=ready.pk)
    assert made.count() == (1 if MATRIX["api-direct-care-requests", "post"][column] == 201 else 0)
    assert all(r.requested_by == people[who] for r in made)


def test_only_clinicians_get_cohorts_and_never_a_research_projects(people, cohort, research_cohort):
    got = {
        who: [c["id"] for c in _client(people[who]).get(
            reverse("api-direct-care-cohorts")).json()["results"]]
        for who in ("clinician", "other_clinician", "ig", "caldicott")
    }  # fmt: skip

    assert got == {"clinician": [cohort.pk], "other_clinician": [cohort.pk], "ig": [],
                   "caldicott": []}  # fmt: skip


# --- Asking -------------------------------------------------------------------------------
def test_a_clinician_asks_through_the_api(cohort, practice, clinician):
    client = verified_client(clinician)

    response = _post(client, reverse("api-direct-care-requests"),
                     {"cohort_id": cohort.pk, "reason": REASON})  # fmt: skip

    reid = ReidentificationRequest.objects.get()
    assert response.status_code == 201
    assert response["Location"] == reverse("api-direct-care-request", args=[reid.pk])
    body = response.json()
    assert (body["id"], body["status"], body["reason"]) == (reid.pk, "submitted", REASON)
    assert (body["practice"]["id"], body["practice_ods"], body["cohort"]["id"]) == (
        practice.pk, "Y99001", cohort.pk
    )  # fmt: skip
    assert body["list_fields"] == ["birth_month", "sex"]
    assert body["you"] == {"can_withdraw": True, "sign_offs": [], "list_url": None,
                           "csv_url": None}  # fmt: skip
    assert (reid.requested_by, reid.practice, reid.status) == (clinician, practice, S.SUBMITTED)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"reason": REASON}, 400, "cohort_id"),
        ("cohort", 400, "reason"),  # the reason left out
        ("cohort+short", 400, "reason"),  # too short for the signers to judge
        ({"cohort_id": 999_999, "reason": REASON}, 404, None),
        ("research", 404, None),  # research cohorts are never offered
        ("other_practice", 403, None),  # a practice the clinician does not work at
        ("bad_practice", 400, "practice_id"),  # not a number
    ],
    ids=[
        "no-cohort",
        "no-reason",
        "short-reason",
        "unknown-cohort",
        "research-cohort",
        "another-practice",
        "bad-practice",
    ],
)
def test_a_bad_request_body_makes_nothing(
    body, status, field, cohort, research_cohort, other_practice, clinician
):
    bodies = {
        "cohort": {"cohort_id": cohort.pk},
        "cohort+short": {"cohort_id": cohort.pk, "reason": "A review."},
        "research": {"cohort_id": research_cohort.pk, "reason": REASON},
        "other_practice": {"cohort_id": cohort.pk, "practice_id": other_practice.pk,
                           "reason": REASON},
        "bad_practice": {"cohort_id": cohort.pk, "practice_id": "Y99002", "reason": REASON},
    }  # fmt: skip

    response = _post(verified_client(clinician), reverse("api-direct-care-requests"),
                     bodies[body] if isinstance(body, str) else body)  # fmt: skip

    assert response.status_code == status
    if field:
        assert list(_errors(response)) == [field]
    assert not ReidentificationRequest.objects.exists()


@pytest.mark.parametrize(("wanted", "status", "found"),
                         [("", 200, ["submitted"]), ("submitted", 200, ["submitted"]),
                          ("ready", 200, []), ("nonsense", 400, None)])  # fmt: skip
def test_requests_are_filtered_by_status(wanted, status, found, cohort, practice, clinician):
    services.request_reidentification(cohort=cohort, practice=practice, reason=REASON,
                                      by=clinician)  # fmt: skip

    response = verified_client(clinician).get(reverse("api-direct-care-requests"),
                                              {"status": wanted} if wanted else {})  # fmt: skip

    assert response.status_code == status
    if found is None:
        assert _errors(response) == {"status": ["Not a status."]}
    else:
        assert [r["status"] for r in response.json()["results"]] == found


# --- Signing off --------------------------------------------------------------------------
def test_both_sign_offs_through_the_api_approve_and_the_list_is_the_requesters_alone(
    people, cohort, practice, clinician, ig, caldicott
):
    reid = services.request_reidentification(cohort=cohort, practice=practice, reason=REASON,
                                              by=clinician)  # fmt: skip
    sign_off = reverse("api-direct-care-sign-off", args=[reid.pk])

    first = _post(verified_client(ig), sign_off, {"role": "ig", "outcome": "approve"})
    assert first.status_code == 200
    assert first.json()["status"] == "partially_approved"
    assert first.json()["decisions"][0]["role"] == "ig"
    second = _post(verified_client(caldicott), sign_off,
                   {"role": "caldicott", "outcome": "approve"})  # fmt: skip
    assert (second.status_code, second.json()["status"]) == (200, "approved")

    ready = services.perform(request=reid)
    listing = services.view_list(request=ready, by=clinician)
    rows = {}
    for who, user in people.items():
        response = _client(user).get(reverse("api-direct-care-list", args=[ready.pk]))
        rows[who] = response.status_code
        if who == "clinician":
            body, headers = response.json(), response

    assert rows == dict(zip(PEOPLE, MATRIX["api-direct-care-list", "get"], strict=True))
    assert headers["Cache-Control"] == "no-store"
    assert body["rows"] == listing.astype(object).where(listing.notna(), None).to_dict("records")
    assert (body["id"], body["people"], body["list_fields"]) == (
        ready.pk, len(listing), ["birth_month", "sex"]
    )  # fmt: skip
    assert body["people"] == ready.people > 10


def test_the_csv_through_the_api_holds_the_same_rows(cohort, practice, clinician, ig, caldicott):
    ready = _ready(cohort, practice, clinician, ig, caldicott)
    listing = services.view_list(request=ready, by=clinician)

    response = verified_client(clinician).get(reverse("api-direct-care-list-csv", args=[ready.pk]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="direct-care-list-{ready.pk}.csv"'
    )
    assert response["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["NHS number", "Month of birth", "Sex"]
    assert rows[1:] == listing.astype("string").fillna("").to_numpy().tolist()


def test_a_refusal_needs_a_comment_and_then_the_request_cannot_be_withdrawn(
    cohort, practice, clinician, ig
):
    reid = services.request_reidentification(cohort=cohort, practice=practice, reason=REASON,
                                              by=clinician)  # fmt: skip
    signer = verified_client(ig)
    sign_off = reverse("api-direct-care-sign-off", args=[reid.pk])

    bare = _post(signer, sign_off, {"role": "ig", "outcome": "refuse"})
    assert bare.status_code == 400
    assert _errors(bare) == {"comment": ["Say why (the clinician sees it)."]}
    assert ReidentificationRequest.objects.get(pk=reid.pk).status == S.SUBMITTED

    refused = _post(signer, sign_off, {"role": "ig", "outcome": "refuse",
                                       "comment": "Not direct care."})  # fmt: skip
    assert (refused.status_code, refused.json()["status"]) == (200, "refused")
    assert refused.json()["decisions"][0]["comment"] == "Not direct care."

    withdrawn = _post(verified_client(clinician),
                      reverse("api-direct-care-withdraw", args=[reid.pk]))  # fmt: skip
    assert withdrawn.status_code == 409
    assert withdrawn.json() == {
        "detail": "the request's status is now \"Refused\": 'withdraw' is not possible"
    }
    assert ReidentificationRequest.objects.get(pk=reid.pk).status == S.REFUSED


def test_a_clinician_withdraws_an_open_request(cohort, practice, clinician):
    reid = services.request_reidentification(cohort=cohort, practice=practice, reason=REASON,
                                              by=clinician)  # fmt: skip

    response = _post(verified_client(clinician),
                     reverse("api-direct-care-withdraw", args=[reid.pk]))  # fmt: skip

    assert (response.status_code, response.json()["status"]) == (200, "withdrawn")
    assert response.json()["you"]["can_withdraw"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [({"role": "dpo", "outcome": "approve"}, "role"),
     ({"role": "ig", "outcome": "maybe"}, "outcome"),
     ({"role": "ig"}, "outcome")],
    ids=["unknown-role", "unknown-outcome", "no-outcome"],
)  # fmt: skip
def test_a_bad_sign_off_body_is_400_and_decides_nothing(
    body, field, cohort, practice, clinician, ig
):
    reid = services.request_reidentification(cohort=cohort, practice=practice, reason=REASON,
                                              by=clinician)  # fmt: skip

    response = _post(verified_client(ig), reverse("api-direct-care-sign-off", args=[reid.pk]),
                     body)  # fmt: skip

    assert response.status_code == 400
    assert field in _errors(response)
    assert not reid.decisions.exists()


# --- The list stays in its own responses --------------------------------------------------
def test_no_other_api_response_carries_an_nhs_number_of_the_list(
    people, cohort, practice, clinician, ig, caldicott
):
    ready = _ready(cohort, practice, clinician, ig, caldicott)
    numbers = _numbers(services.view_list(request=ready, by=clinician))
    seen = {}

    for who, user in people.items():
        client = _client(user)
        text = " ".join(
            client.get(reverse(name, args=args)).content.decode()
            for name, args in (("api-direct-care-cohorts", []), ("api-direct-care-requests", []),
                               ("api-direct-care-request", [ready.pk]))
        )  # fmt: skip
        seen[who] = [n for n in numbers if n in text]

    assert seen == {who: [] for who in PEOPLE}


def test_the_detail_offers_the_list_to_the_requester_only(
    people, cohort, practice, clinician, ig, caldicott
):
    ready = _ready(cohort, practice, clinician, ig, caldicott)
    url = reverse("api-direct-care-request", args=[ready.pk])

    offered = {who: verified_client(people[who]).get(url).json()["you"]["list_url"]
               for who in ("clinician", "ig", "ig2", "caldicott")}  # fmt: skip

    assert offered == {"clinician": reverse("api-direct-care-list", args=[ready.pk]),
                       "ig": None, "ig2": None, "caldicott": None}  # fmt: skip


# --- The schema ---------------------------------------------------------------------------
def test_the_schema_is_valid_and_describes_every_direct_care_endpoint(world, clinician):
    response = verified_client(clinician).get(reverse("api-schema"))

    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    validate_schema(document)
    paths = {path: {m for m in ops if m in ("get", "post", "put", "patch", "delete")}
             for path, ops in document["paths"].items() if "/direct-care/" in path}  # fmt: skip
    assert paths == SCHEMA_PATHS
    assert len(SCHEMA_PATHS) == len(_endpoints())
