"""IG review through the pages: the queue, the review page (read-only answers, flags,
treatment, forms only for those who may use them) and every decision through POST,
including the refusals the services enforce whatever the page showed."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from access_requests import services
from access_requests.models import AccessRequest, Review
from sde.identity import services as identity
from sde.identity.roles import Role
from sde.projects.models import Project
from tests import scenarios
from tests.events import mark, types_since
from tests.unit.access_requests.builders import (
    END,
    PUBLIC_INTEREST,
    answers,
    caldicott_guardian,
    drafted,
    drive_to,
    fresh,
    ig_officer,
    panel,
)

pytestmark = pytest.mark.django_db
S = AccessRequest.Status
FORMS = {
    "start": 'action="{}start-review/"',
    "approve": 'action="{}approve/"',
    "return": 'action="{}return/"',
    "reject": 'action="{}reject/"',
    "assign": 'action="{}assign/"',
    "sign-off": 'action="{}sign-off/"',
}


def html(response: Any) -> str:
    return response.content.decode()


def complete(organisation: Any, applicant: Any, **sections: Any) -> dict[str, Any]:
    return answers(organisation, [(applicant, "principal_investigator", True)], **sections)


def at(organisation: Any, applicant: Any, status: str, **sections: Any) -> AccessRequest:
    request = drafted(applicant, organisation, complete(organisation, applicant, **sections))
    return drive_to(request, status, by=panel())


def shown_forms(page: str, request: AccessRequest) -> set[str]:
    base = reverse("application-review", args=[request.pk])
    return {name for name, action in FORMS.items() if action.format(base) in page}


def decide(client: Any, request: AccessRequest, action: str, **fields: str) -> Any:
    prefix = action.replace("-", "_")
    data = {f"{prefix}-{k}": v for k, v in fields.items()}
    return client.post(reverse(f"application-{action}", args=[request.pk]), data)


# --- The queue ---------------------------------------------------------------------------
def test_the_queue_lists_waiting_requests_oldest_first_with_their_state(
    client_for, organisation, applicant
):
    older = at(organisation, applicant, S.SUBMITTED)
    newer = at(organisation, applicant, S.IN_REVIEW)
    at(organisation, applicant, S.DRAFT)
    with_conflict = scenarios.person(Role.IG_OFFICER)
    identity.add_membership(user=with_conflict, organisation=organisation,
                            by=scenarios.administrator())  # fmt: skip

    page = html(client_for(with_conflict).get(reverse("review-queue")))

    assert page.index(f'id="queue-{older.pk}"') < page.index(f'id="queue-{newer.pk}"')
    assert page.count('id="queue-') == 2  # the draft is not there
    row = page.split(f'id="queue-{older.pk}"')[1].split("</tr>")[0]
    assert '<td class="numeric">0</td>' in row and "Overdue" not in row
    assert "You cannot review it: you belong to one of its organisations." in row
    assert "0 of 2" in row and "Nobody yet" in row
    newer_row = page.split(f'id="queue-{newer.pk}"')[1].split("</tr>")[0]
    assert "2 more independent approvals" in newer_row


def test_the_queue_marks_requests_past_the_sla(client_for, organisation, applicant, settings):
    settings.SDE_REVIEW_SLA_DAYS = -1  # no clock to move: every request is past it
    request = at(organisation, applicant, S.SUBMITTED)

    page = html(client_for(ig_officer()).get(reverse("review-queue")))

    row = page.split(f'id="queue-{request.pk}"')[1].split("</tr>")[0]
    assert '0 <strong class="tag tag--red">Overdue</strong>' in row
    assert "Conflict" not in row


# --- The review page ---------------------------------------------------------------------
def test_the_review_page_shows_the_application_flags_and_treatment(
    client_for, organisation, applicant
):
    request = at(organisation, applicant, S.SUBMITTED)

    page = html(client_for(ig_officer()).get(reverse("application-review", args=[request.pk])))

    assert "A. About the request" in page and "I. Declarations" in page
    assert "Hypertension in North Place" in page
    assert "Sensitive fields requested" in page
    assert "answers__field--sensitive" in page  # sensitive fields highlighted
    assert "Research under" in page  # the derived treatment, explained
    assert 'name="title"' not in page  # read-only
    assert "'label'" not in page  # rows render as text, not as dicts


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (S.SUBMITTED, {"start", "assign"}),
        (S.IN_REVIEW, {"approve", "return", "reject", "assign"}),
        (S.RETURNED, set()),
        (S.APPROVED, set()),
    ],
)
def test_an_independent_reviewer_sees_the_forms_for_the_state(
    client_for, organisation, applicant, status, expected
):
    request = at(organisation, applicant, status)

    page = html(client_for(ig_officer()).get(reverse("application-review", args=[request.pk])))

    assert shown_forms(page, request) == expected
    base = reverse("application-review", args=[request.pk])
    assert all(page.count(FORMS[name].format(base)) == 1 for name in expected)
    title = page.split("<title>")[1].split("</title>")[0]
    assert "<" not in title and request.title in title


def test_a_reviewer_with_a_conflict_sees_no_forms_and_no_private_notes(
    client_for, organisation, applicant
):
    identity.grant_role(user=applicant, role=Role.IG_OFFICER, by=scenarios.administrator())
    not_using_data = answers(organisation, [(applicant, "principal_investigator", False)])
    request = drafted(applicant, organisation, not_using_data)
    request = drive_to(request, S.IN_REVIEW, by=panel())
    services.add_comment(request=request, by=ig_officer(), body="PRIVATE-NOTE", private=True)

    page = html(client_for(applicant).get(reverse("application-review", args=[request.pk])))

    assert "You cannot review this application: you applied for it." in page
    assert shown_forms(page, request) == set()
    assert "PRIVATE-NOTE" not in page


def test_the_sign_off_form_is_only_for_the_guardian_when_the_basis_needs_it(
    client_for, organisation, applicant
):
    needs = at(organisation, applicant, S.IN_REVIEW, legal=PUBLIC_INTEREST)
    plain = at(organisation, applicant, S.IN_REVIEW)
    guardian, ig = caldicott_guardian(), ig_officer()

    def forms(client: Any, request: AccessRequest) -> set[str]:
        return shown_forms(html(client.get(reverse("application-review", args=[request.pk]))),
                           request)  # fmt: skip

    assert forms(client_for(guardian), needs) == {"sign-off"}
    assert forms(client_for(guardian), plain) == set()
    assert "sign-off" not in forms(client_for(ig), needs)


def test_a_change_request_shows_only_the_delta_to_reviewers(client_for, organisation, applicant):
    approved = at(organisation, applicant, S.APPROVED)
    change = services.start_change(project=approved.project, kind="amendment", by=applicant)
    change, _ = services.save_answers(
        request=change, by=applicant, revision=change.revision, sections=["meta", "declarations"],
        answers={"meta": {**change.answers["meta"], "end_date": "2028-06-30"},
                 "declarations": approved.answers["declarations"]},
    )  # fmt: skip
    change = services.submit(request=change, by=applicant)

    page = html(client_for(ig_officer()).get(reverse("application-review", args=[change.pk])))

    delta = page.split('id="delta"')[1].split("</table>")[0]
    assert "A. Requested end date" in delta
    assert "31 December 2027" in delta and "30 June 2028" in delta
    assert delta.count("<tr>") == 2  # the header and the one change
    assert '<details class="whole-application">' in page


# --- Decisions through POST ----------------------------------------------------------------
def test_start_review_then_two_approvals_create_the_project(client_for, organisation, applicant):
    request = at(organisation, applicant, S.SUBMITTED)
    first, second = ig_officer(), ig_officer()

    started = client_for(first).post(reverse("application-start-review", args=[request.pk]))
    assert started.url == reverse("application-review", args=[request.pk])
    assert (fresh(request).status, fresh(request).assignee) == (S.IN_REVIEW, first)

    page = html(client_for(first).get(reverse("application-review", args=[request.pk])))
    assert 'value="2027-12-31"' in page  # the end date defaults to the one requested
    one = decide(client_for(first), request, "approve", end_date="2027-12-31", conditions="")
    assert fresh(request).status == S.IN_REVIEW
    after_one = html(client_for(second).get(one.url))
    assert "Another reviewer approved these terms" in after_one
    before = mark()
    two = decide(client_for(second), request, "approve", end_date="2027-12-31", conditions="")

    done = fresh(request)
    assert two.url == reverse("application-review", args=[request.pk])
    assert done.status == S.APPROVED and done.approved_end_date == END
    assert Project.objects.filter(pk=done.project_id).exists()
    assert types_since(before)[:2] == ["access.approval_recorded", "access.approved"]


def test_a_second_approval_by_the_same_reviewer_is_refused(client_for, organisation, applicant):
    request = at(organisation, applicant, S.IN_REVIEW)
    reviewer = ig_officer()
    decide(client_for(reviewer), request, "approve", end_date="2027-12-31", conditions="")

    again = decide(client_for(reviewer), request, "approve", end_date="2027-12-31", conditions="")

    assert again.status_code == 409
    assert "already recorded" in html(again)
    assert Review.objects.filter(request=request, decision="approve").count() == 1
    assert fresh(request).status == S.IN_REVIEW


def test_an_approval_of_other_terms_is_refused_on_the_form(client_for, organisation, applicant):
    request = at(organisation, applicant, S.IN_REVIEW)
    decide(client_for(ig_officer()), request, "approve", end_date="2027-12-31", conditions="")

    response = decide(client_for(ig_officer()), request, "approve", end_date="2027-06-30",
                      conditions="Annual report.")  # fmt: skip

    assert response.status_code == 400
    assert "Another reviewer approved an end date of 31 December 2027" in html(response)
    assert Review.objects.filter(request=request, decision="approve").count() == 1


def test_an_ig_officer_cannot_approve_their_own_application_by_posting(
    client_for, organisation, applicant
):
    identity.grant_role(user=applicant, role=Role.IG_OFFICER, by=scenarios.administrator())
    not_using_data = answers(organisation, [(applicant, "principal_investigator", False)])
    request = drafted(applicant, organisation, not_using_data)
    request = drive_to(request, S.IN_REVIEW, by=panel())
    client = client_for(applicant)
    before = mark()

    approve = decide(client, request, "approve", end_date="2027-12-31", conditions="")
    start = client.post(reverse("application-start-review", args=[request.pk]))
    assign = decide(client, request, "assign", assignee=str(applicant.pk))

    assert approve.status_code == 403
    assert "you applied for it" in html(approve)
    assert start.status_code == 409 or start.status_code == 403
    assert assign.status_code in (400, 403)
    assert not Review.objects.filter(request=request, reviewer=applicant).exists()
    assert fresh(request).status == S.IN_REVIEW
    assert types_since(before) == []


@pytest.mark.parametrize("action", ["approve", "return", "reject", "start-review", "sign-off"])
def test_people_who_do_not_review_cannot_decide_by_posting(
    client_for, organisation, applicant, action
):
    request = at(organisation, applicant, S.IN_REVIEW)
    checker = scenarios.person(Role.OUTPUT_CHECKER)

    for person in (applicant, checker):
        response = decide(client_for(person), request, action, end_date="2027-12-31",
                          reason="x", note="x")  # fmt: skip
        assert response.status_code == 404
    assert fresh(request).status == S.IN_REVIEW


def test_return_needs_a_reason_and_the_applicant_sees_it(client_for, organisation, applicant):
    request = at(organisation, applicant, S.IN_REVIEW)
    client = client_for(ig_officer())

    empty = decide(client, request, "return", reason="")
    returned = decide(client, request, "return", reason="Say why you need exact dates.")

    assert empty.status_code == 400 and "This field is required." in html(empty)
    assert returned.status_code == 302
    assert fresh(request).status == S.RETURNED
    page = html(client_for(applicant).get(reverse("application", args=[request.pk])))
    assert "Say why you need exact dates." in page
    assert "Make the changes the reviewers asked for" in page


def test_reject_records_the_reason(client_for, organisation, applicant):
    request = at(organisation, applicant, S.IN_REVIEW)

    decide(client_for(ig_officer()), request, "reject", reason="No public benefit shown.")

    assert (fresh(request).status, fresh(request).decision_reason) == (
        S.REJECTED, "No public benefit shown."
    )  # fmt: skip


def test_assign_offers_only_independent_officers(client_for, organisation, applicant):
    request = at(organisation, applicant, S.SUBMITTED)
    me, colleague = ig_officer(), ig_officer()
    conflicted = ig_officer()
    identity.add_membership(user=conflicted, organisation=organisation,
                            by=scenarios.administrator())  # fmt: skip
    client = client_for(me)

    page = html(client.get(reverse("application-review", args=[request.pk])))
    refused = decide(client, request, "assign", assignee=str(conflicted.pk))
    done = decide(client, request, "assign", assignee=str(colleague.pk))

    assign_form = page.split('id="assign"')[1].split("</form>")[0]
    assert f'value="{colleague.pk}"' in assign_form
    assert f'value="{conflicted.pk}"' not in assign_form
    assert refused.status_code == 400 and "Pick an independent IG officer." in html(refused)
    assert done.status_code == 302
    assert fresh(request).assignee == colleague


def test_the_guardian_signs_off_and_ig_cannot(client_for, organisation, applicant):
    request = at(organisation, applicant, S.IN_REVIEW, legal=PUBLIC_INTEREST)

    by_ig = decide(client_for(ig_officer()), request, "sign-off", note="Fine.")
    empty = decide(client_for(caldicott_guardian()), request, "sign-off", note="")
    signed = decide(client_for(caldicott_guardian()), request, "sign-off", note="Justified.")

    assert by_ig.status_code == 403
    assert empty.status_code == 400
    assert signed.status_code == 302
    assert services.signed_off(fresh(request))


def test_an_unknown_review_action_is_404(client_for, organisation, applicant):
    request = at(organisation, applicant, S.IN_REVIEW)

    response = client_for(ig_officer()).post(f"/applications/{request.pk}/review/promote/")

    assert response.status_code == 404


def test_a_decision_out_of_turn_is_409(client_for, organisation, applicant):
    request = at(organisation, applicant, S.SUBMITTED)

    response = decide(client_for(ig_officer()), request, "reject", reason="Too early.")

    assert response.status_code == 409
    assert fresh(request).status == S.SUBMITTED
