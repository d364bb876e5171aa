"""The direct care pages (/direct-care/): who gets which answer on every URL, the journey a
clinician, an IG officer and the Caldicott Guardian take through them, and that the list's
NHS numbers appear on the list page and in its CSV only."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

import pandas as pd
import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format

from sde.data.files import data_root
from sde.directcare import services
from sde.directcare.models import ReidentificationRequest
from sde.governance import governed_writes
from sde.identity.models import User
from tests.conftest import verified_client
from tests.unit.sde.directcare.conftest import PEOPLE, url_patterns

pytestmark = pytest.mark.django_db
S = ReidentificationRequest.Status
REASON = "Invite these patients for an annual physical health check."

# The matrix's columns are conftest.PEOPLE: "colleague" is a clinician at the requester's
# practice who did not ask; "ig2" an IG officer who has not signed it off.
SEES_REQUEST = (302, 405, 404, 404, 405, 405, 405, 404, 404, 404)  # a method the URL lacks
ONLY_REQUESTER = (302, 200, 404, 404, 404, 404, 404, 404, 404, 404)
# Every direct care URL and method, on a request whose list is ready (the requester's, at
# practice Y99001, signed off by ig and caldicott) and the planning project's cohort.
MATRIX: dict[tuple[str, str], tuple[int, ...]] = {
    ("direct-care", "get"): (302, 200, 200, 200, 200, 200, 200, 404, 404, 404),
    ("direct-care", "post"): (302, 405, 405, 405, 405, 405, 405, 404, 404, 404),
    ("direct-care-request-new", "get"): (302, 200, 200, 200, 404, 404, 404, 404, 404, 404),
    # An empty form: clinicians get it back with its errors, nobody else sees the cohort.
    ("direct-care-request-new", "post"): (302, 400, 400, 400, 404, 404, 404, 404, 404, 404),
    ("direct-care-request", "get"): (302, 200, 404, 404, 200, 200, 200, 404, 404, 404),
    ("direct-care-request", "post"): SEES_REQUEST,
    # The IG sign-off: ig gave it already and the others lack the role (403); ig2 may give
    # it, but the request is past sign-off (302 back to the request with a message).
    ("direct-care-sign-off", "post"): (302, 403, 404, 404, 403, 302, 403, 404, 404, 404),
    ("direct-care-sign-off", "get"): SEES_REQUEST,
    # The requester may withdraw, but not a ready request (302 back with a message).
    ("direct-care-withdraw", "post"): (302, 302, 404, 404, 403, 403, 403, 404, 404, 404),
    ("direct-care-withdraw", "get"): SEES_REQUEST,
    ("direct-care-list", "get"): ONLY_REQUESTER,
    ("direct-care-list", "post"): SEES_REQUEST,
    ("direct-care-list-csv", "get"): ONLY_REQUESTER,
    ("direct-care-list-csv", "post"): SEES_REQUEST,
}
POST_BODY = {"direct-care-sign-off": {"role": "ig", "ig-outcome": "approve"}}


def _direct_care_urls() -> dict[str, URLPattern]:
    """Every page URL named direct-care*: a new one fails the matrix until it has rows."""
    return {p.name: p for p in url_patterns()
            if p.name and p.name.startswith("direct-care")}  # fmt: skip


def _client(user: User | None) -> Client:
    return Client() if user is None else verified_client(user)


def _ready(cohort, practice, clinician, ig, caldicott) -> ReidentificationRequest:
    """A request signed off by both and its list made, as the worker makes it."""
    request = services.request_reidentification(cohort=cohort, practice=practice, reason=REASON,
                                                by=clinician)  # fmt: skip
    services.sign_off(request=request, by=ig, role="ig", outcome="approve")
    services.sign_off(request=request, by=caldicott, role="caldicott", outcome="approve")
    ready = services.perform(request=request)
    assert ready.status == S.READY
    return ready


def _numbers(listing: pd.DataFrame) -> list[str]:
    """The list's NHS numbers in both forms a page could show them."""
    plain = [str(n) for n in listing["nhs_number"]]
    return plain + [f"{n[:3]} {n[3:6]} {n[6:]}" for n in plain]


def _leaks(text: str, numbers: list[str]) -> list[str]:
    return [n for n in numbers if n in text]


def _messages(response: Any) -> str:
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


# --- The matrix ---------------------------------------------------------------------------
def test_the_matrix_has_rows_for_every_direct_care_url_and_no_others():
    assert {name for name, _ in MATRIX} == set(_direct_care_urls())
    assert all(len(row) == len(PEOPLE) for row in MATRIX.values())


@pytest.mark.parametrize("who", PEOPLE)
def test_each_person_gets_the_answer_the_matrix_gives_on_every_url(
    who, people, cohort, practice, clinician, ig, caldicott
):
    ready = _ready(cohort, practice, clinician, ig, caldicott)
    client = _client(people[who])
    column = PEOPLE.index(who)
    expected, got, locations = {}, {}, set()

    for name, pattern in _direct_care_urls().items():
        args = [] if "pk" not in pattern.pattern.converters else [
            cohort.pk if name == "direct-care-request-new" else ready.pk
        ]  # fmt: skip
        url = reverse(name, args=args)
        for method in ("get", "post"):
            expected[name, method] = MATRIX[name, method][column]
            data = POST_BODY.get(name, {}) if method == "post" else {}
            response = getattr(client, method)(url, data)
            got[name, method] = response.status_code
            if response.status_code == 302:
                locations.add(response["Location"].split("?")[0])

    assert got == expected
    if who == "anonymous":
        assert locations == {reverse("login")}
    elif locations:  # the refused withdrawal and sign-off come back to the request
        assert locations == {reverse("direct-care-request", args=[ready.pk])}
    fresh = ReidentificationRequest.objects.get(pk=ready.pk)
    assert (fresh.status, fresh.decisions.count()) == (S.READY, 2)
    assert ReidentificationRequest.objects.count() == 1  # the empty forms made nothing


def test_a_research_projects_cohort_has_no_request_page_even_for_a_clinician(
    world, clinician, research_cohort
):
    client = verified_client(clinician)
    url = reverse("direct-care-request-new", args=[research_cohort.pk])

    got = (client.get(url).status_code, client.post(url, {"reason": REASON}).status_code)

    assert got == (404, 404)
    assert not ReidentificationRequest.objects.exists()


# --- The journey --------------------------------------------------------------------------
def test_the_journey_through_the_pages_from_request_to_list(
    cohort, practice, clinician, ig, caldicott
):
    asking = verified_client(clinician)
    new = reverse("direct-care-request-new", args=[cohort.pk])

    form = asking.get(new)
    assert form.status_code == 200
    assert html.escape(json.dumps(cohort.definition["definition"])[1:-1]) in form.content.decode()

    short = asking.post(new, {"practice": practice.pk, "reason": "A review."})
    assert short.status_code == 400
    assert "at least 20 characters" in short.content.decode()
    assert not ReidentificationRequest.objects.exists()

    sent = asking.post(new, {"practice": practice.pk, "reason": REASON})
    reid = ReidentificationRequest.objects.get()
    detail = reverse("direct-care-request", args=[reid.pk])
    assert (sent.status_code, sent["Location"]) == (302, detail)
    assert (reid.status, reid.requested_by, reid.practice, reid.cohort, reid.reason) == (
        S.SUBMITTED, clinician, practice, cohort, REASON
    )  # fmt: skip

    sign_off = reverse("direct-care-sign-off", args=[reid.pk])
    by_ig = verified_client(ig).post(sign_off, {"role": "ig", "ig-outcome": "approve"})
    assert (by_ig.status_code, by_ig["Location"]) == (302, detail)
    reid.refresh_from_db()
    assert reid.status == S.PARTIALLY_APPROVED

    guardian = verified_client(caldicott)
    bare = guardian.post(sign_off, {"role": "caldicott", "caldicott-outcome": "refuse"})
    assert bare.status_code == 400
    assert "Say why (the clinician sees it)." in bare.content.decode()
    reid.refresh_from_db()
    assert (reid.status, reid.decisions.count()) == (S.PARTIALLY_APPROVED, 1)

    approved = guardian.post(sign_off, {"role": "caldicott", "caldicott-outcome": "approve"})
    assert approved.status_code == 302
    reid.refresh_from_db()
    assert reid.status == S.APPROVED

    ready = services.perform(request=reid)
    listing = services.view_list(request=ready, by=clinician)
    page = asking.get(reverse("direct-care-list", args=[ready.pk]))

    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    text = page.content.decode()
    for number in listing["nhs_number"]:
        assert f">{number[:3]} {number[3:6]} {number[6:]}<" in text
        assert number not in text  # only ever grouped on the page
    assert f"<strong>{len(listing)}</strong> patients." in text
    expires = timezone.localtime(ready.expires_at)
    assert date_format(expires, "j F Y H:i") in text

    download = asking.get(reverse("direct-care-list-csv", args=[ready.pk]))

    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    assert download["Content-Disposition"] == (
        f'attachment; filename="direct-care-list-{ready.pk}.csv"'
    )
    assert download["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert rows[0] == ["NHS number", "Month of birth", "Sex"]
    assert rows[1:] == listing.astype("string").fillna("").to_numpy().tolist()
    assert len(rows) - 1 == ready.people > 10


def test_the_workspace_says_which_cohorts_clinicians_may_ask_about(
    world, member, cohort, research_cohort
):
    client = verified_client(member)

    planning = client.get(reverse("project-workspace", args=[cohort.project_id]))
    research = client.get(reverse("project-workspace", args=[research_cohort.project_id]))

    assert (planning.status_code, research.status_code) == (200, 200)
    shown = planning.content.decode()
    assert html.escape(json.dumps(cohort.definition, separators=(", ", ": "))) in shown
    assert '<th scope="col">Direct care</th>' in shown
    assert "Clinicians can request re-identification" in shown
    assert "Not for re-identification" not in shown
    assert "Not for re-identification (research project)" in research.content.decode()
    assert "Clinicians can request re-identification" not in research.content.decode()


# --- The list stays in its two responses --------------------------------------------------
def test_no_nhs_number_of_the_list_appears_in_any_other_response_or_message(
    people, cohort, practice, clinician, ig, caldicott
):
    ready = _ready(cohort, practice, clinician, ig, caldicott)
    numbers = _numbers(services.view_list(request=ready, by=clinician))
    detail = reverse("direct-care-request", args=[ready.pk])
    seen: dict[str, list[str]] = {}

    for who, user in people.items():
        if user is None:
            continue
        client = verified_client(user)
        responses = [
            client.get(reverse("dashboard")),
            client.get(reverse("direct-care")),
            client.get(detail),
            client.get(reverse("api-direct-care-request", args=[ready.pk])),
            client.get(reverse("api-direct-care-requests")),
            # Refused in this state: each leaves a message, shown on the request page.
            client.post(reverse("direct-care-withdraw", args=[ready.pk]), follow=True),
            client.post(
                reverse("direct-care-sign-off", args=[ready.pk]),
                {"role": "ig", "ig-outcome": "approve"},
                follow=True,
            ),
        ]
        text = " ".join(r.content.decode() + _messages(r) for r in responses)
        seen[who] = _leaks(text, numbers)

    assert seen == {who: [] for who, user in people.items() if user is not None}


def test_the_refused_steps_say_why_in_a_message_on_the_request_page(
    people, cohort, practice, clinician, ig, caldicott
):
    ready = _ready(cohort, practice, clinician, ig, caldicott)

    withdrawn = verified_client(clinician).post(
        reverse("direct-care-withdraw", args=[ready.pk]), follow=True
    )
    signed = verified_client(people["ig2"]).post(
        reverse("direct-care-sign-off", args=[ready.pk]),
        {"role": "ig", "ig-outcome": "approve"}, follow=True,
    )  # fmt: skip

    assert '"List ready"' in _messages(withdrawn) and "not possible" in _messages(withdrawn)
    assert '"List ready"' in _messages(signed)
    assert withdrawn.status_code == signed.status_code == 200
    assert ReidentificationRequest.objects.get(pk=ready.pk).status == S.READY


# --- Expiry -------------------------------------------------------------------------------
def test_an_expired_list_is_gone_from_its_page_and_its_file_deleted(
    cohort, practice, clinician, ig, caldicott
):
    ready = _ready(cohort, practice, clinician, ig, caldicott)
    path = data_root() / ready.path
    assert path.is_file()
    with governed_writes(ReidentificationRequest):  # time passes
        ReidentificationRequest.objects.filter(pk=ready.pk).update(expires_at=timezone.now())
    client = verified_client(clinician)

    page = client.get(reverse("direct-care-list", args=[ready.pk]))
    download = client.get(reverse("direct-care-list-csv", args=[ready.pk]))
    detail = client.get(reverse("direct-care-request", args=[ready.pk]))

    assert (page.status_code, download.status_code, detail.status_code) == (404, 404, 200)
    assert not path.exists()
    assert ReidentificationRequest.objects.get(pk=ready.pk).status == S.EXPIRED
    assert "The list expired and was deleted." in detail.content.decode()
    assert 'id="open-list"' not in detail.content.decode()


def test_the_dashboard_points_clinicians_and_signers_to_direct_care(
    cohort, practice, clinician, ig, caldicott, member
):
    def card(user: User) -> str:
        page = html.unescape(verified_client(user).get(reverse("dashboard")).content.decode())
        return page[page.find("Direct care") :] if "Direct care" in page else ""

    assert "cohorts you can ask about" in card(clinician)
    assert "waiting for your sign-off" in card(ig) and "waiting for your sign-off" in card(
        caldicott
    )
    assert card(member) == ""  # no nav link and no card for anyone else
    request = services.request_reidentification(cohort=cohort, practice=practice, reason=REASON,
                                                by=clinician)  # fmt: skip
    services.sign_off(request=request, by=ig, role="ig", outcome="approve")

    page = html.unescape(verified_client(clinician).get(
        reverse("direct-care-request", args=[request.pk])).content.decode())  # fmt: skip

    assert "The Caldicott Guardian's sign-off is still needed" in page
    services.perform(request=services.sign_off(request=request, by=caldicott, role="caldicott",
                                               outcome="approve"))  # fmt: skip
    assert "1 list ready to open." in card(clinician)
