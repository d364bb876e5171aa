"""The applicant's actions through the pages: attachments (type, size, download,
redaction), comments, submit, withdraw, and starting a change to a project."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from access_requests import services
from access_requests.models import AccessRequest, Attachment, Comment
from sde.identity.roles import Role
from tests import scenarios
from tests.events import mark, types_since
from tests.unit.access_requests.builders import (
    answers,
    drafted,
    drive_to,
    fresh,
    ig_officer,
    panel,
)
from tests.unit.access_requests.builders import applicant as make_applicant

pytestmark = pytest.mark.django_db
S = AccessRequest.Status
PDF = b"%PDF-1.4\n% a protocol\n"


def html(response: Any) -> str:
    return response.content.decode()


def complete(organisation: Any, applicant: Any, **sections: Any) -> dict[str, Any]:
    return answers(organisation, [(applicant, "principal_investigator", True)], **sections)


@pytest.fixture
def draft(organisation, applicant) -> AccessRequest:
    return drafted(applicant, organisation, complete(organisation, applicant))


def upload(client: Any, request: AccessRequest, name: str, content: bytes, kind: str = "protocol"):
    return client.post(
        reverse("application-attachments", args=[request.pk]),
        {"kind": kind, "file": SimpleUploadedFile(name, content)},
    )


# --- Attachments ---------------------------------------------------------------------------
def test_an_attachment_is_added_listed_and_downloaded(client_for, draft, applicant):
    client = client_for(applicant)
    before = mark()

    response = upload(client, draft, "protocol.pdf", PDF)

    attachment = Attachment.objects.get(request=draft)
    assert response.url == reverse("application-attachments", args=[draft.pk])
    assert "protocol.pdf" in html(client.get(response.url))
    download = client.get(reverse("application-attachment", args=[draft.pk, attachment.pk]))
    assert b"".join(download.streaming_content) == PDF
    assert download["Content-Disposition"].startswith("attachment;")
    assert types_since(before) == ["access.attachment_added", "access.attachment_viewed"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("protocol.exe", b"MZ...", "attach .docx, .jpeg, .jpg, .pdf, .png, .txt files only"),
        ("protocol.pdf", b"not really a pdf", "protocol.pdf is not really a .pdf file"),
        ("notes.txt", b"\xff\xfe\x00bad", "notes.txt is not plain text"),
        ("big.txt", b"x" * 2048, "big.txt is 2,048 bytes; the limit is 1,024"),
    ],
    ids=["wrong-suffix", "wrong-content", "not-text", "too-big"],
)
def test_a_wrong_or_oversized_attachment_is_refused_clearly(
    client_for, draft, applicant, settings, name, content, message
):
    settings.SDE_MAX_ATTACHMENT_BYTES = 1024

    response = upload(client_for(applicant), draft, name, content)

    assert response.status_code == 200
    assert message in html(response)
    assert not Attachment.objects.filter(request=draft).exists()


def test_a_tampered_attachment_kind_is_refused(client_for, draft, applicant):
    response = upload(client_for(applicant), draft, "p.pdf", PDF, kind="passport")

    assert "Select a valid choice." in html(response)
    assert not Attachment.objects.filter(request=draft).exists()


def test_attachments_are_added_only_while_editable(client_for, organisation, applicant):
    request = drive_to(drafted(applicant, organisation, complete(organisation, applicant)),
                       S.SUBMITTED, by=panel())  # fmt: skip
    client = client_for(applicant)

    page = html(client.get(reverse("application-attachments", args=[request.pk])))
    response = upload(client, request, "late.pdf", PDF)

    assert 'enctype="multipart/form-data"' not in page
    assert response.status_code == 409
    assert not Attachment.objects.filter(request=request).exists()


def test_another_applicant_cannot_download_an_attachment(
    client_for, organisation, draft, applicant
):
    upload(client_for(applicant), draft, "protocol.pdf", PDF)
    attachment = Attachment.objects.get(request=draft)
    url = reverse("application-attachment", args=[draft.pk, attachment.pk])

    assert client_for(make_applicant(organisation)).get(url).status_code == 404
    assert client_for(ig_officer()).get(url).status_code == 404  # a draft is the applicant's


def test_ig_redacts_an_attachment_through_the_review_page(client_for, organisation, applicant):
    request = drafted(applicant, organisation, complete(organisation, applicant))
    upload(client_for(applicant), request, "dpia.pdf", PDF)
    request = drive_to(fresh(request), S.SUBMITTED, by=panel())
    attachment = Attachment.objects.get(request=request)
    ig = ig_officer()
    url = reverse("application-attachment-redact", args=[request.pk, attachment.pk])
    prefix = f"redact-{attachment.pk}"

    refused = client_for(applicant).post(url, {f"{prefix}-reason": "Mine."})
    missing = client_for(ig).post(url, {f"{prefix}-reason": ""})
    done = client_for(ig).post(url, {f"{prefix}-reason": "Names a patient."})

    assert refused.status_code == 403
    assert missing.status_code == 400 and "This field is required." in html(missing)
    assert done.url == reverse("application-review", args=[request.pk])
    redacted = Attachment.objects.get(pk=attachment.pk)
    assert redacted.redaction_reason == "Names a patient." and redacted.redacted_by == ig
    page = html(client_for(applicant).get(reverse("application-attachments", args=[request.pk])))
    assert "Redacted" in page and "(file removed)" in page


# --- Comments ----------------------------------------------------------------------------
def test_applicant_and_reviewer_comment_and_private_notes_stay_private(
    client_for, organisation, applicant
):
    request = drive_to(drafted(applicant, organisation, complete(organisation, applicant)),
                       S.IN_REVIEW, by=panel())  # fmt: skip
    reviewer = ig_officer()
    url = reverse("application-comment", args=[request.pk])

    client_for(reviewer).post(url, {"body": "PRIVATE-NOTE-TEXT", "private": "on"})
    client_for(reviewer).post(url, {"body": "Please say why you need dates."})
    reply = client_for(applicant).post(url, {"body": "To time the diagnoses.", "private": "on"})

    assert reply.url == reverse("application", args=[request.pk])
    comments = list(Comment.objects.filter(request=request).values_list("body", "private"))
    assert comments == [
        ("PRIVATE-NOTE-TEXT", True),
        ("Please say why you need dates.", False),
        ("To time the diagnoses.", False),  # an applicant's comment is always public
    ]
    applicant_client = client_for(applicant)
    pages = [
        ("application", [request.pk]),
        ("application-section", [request.pk, "meta"]),
        ("application-attachments", [request.pk]),
        ("applications", []),
    ]
    for name, args in pages:
        page = html(applicant_client.get(reverse(name, args=args)))
        assert "PRIVATE-NOTE-TEXT" not in page, name
    overview = html(applicant_client.get(reverse("application", args=[request.pk])))
    assert "Please say why you need dates." in overview
    review = html(client_for(ig_officer()).get(reverse("application-review", args=[request.pk])))
    assert "PRIVATE-NOTE-TEXT" in review and "Private note" in review


def test_an_empty_comment_is_refused_on_the_page(client_for, organisation, applicant):
    request = drive_to(drafted(applicant, organisation, complete(organisation, applicant)),
                       S.SUBMITTED, by=panel())  # fmt: skip

    response = client_for(applicant).post(
        reverse("application-comment", args=[request.pk]), {"body": "  "}
    )

    assert "This field is required." in html(response)
    assert not Comment.objects.filter(request=request).exists()


def test_a_guardian_cannot_leave_a_private_note(client_for, organisation, applicant):
    request = drive_to(drafted(applicant, organisation, complete(organisation, applicant)),
                       S.IN_REVIEW, by=panel())  # fmt: skip
    guardian = scenarios.person(Role.CALDICOTT_GUARDIAN)

    response = client_for(guardian).post(
        reverse("application-comment", args=[request.pk]), {"body": "Note", "private": "on"}
    )

    assert response.status_code == 403
    assert not Comment.objects.filter(request=request).exists()


# --- Submit and withdraw -------------------------------------------------------------------
def test_the_submit_page_lists_every_problem_by_section_with_links(
    client_for, organisation, applicant
):
    request = drafted(
        applicant, organisation,
        complete(organisation, applicant, settings={"processing_location": "outside_uk"},
                 declarations={"accepted": False}),
    )  # fmt: skip
    client = client_for(applicant)

    page = html(client.get(reverse("application-submit", args=[request.pk])))
    response = client.post(reverse("application-submit", args=[request.pk]))

    assert "F. Safe settings" in page and "I. Declarations" in page
    assert "Processing outside the UK is refused" in page
    settings_page = reverse("application-section", args=[request.pk, "settings"])
    assert f'href="{settings_page}#id_processing_location_0"' in page
    assert "Where the data is processed: Processing outside the UK is refused" in page
    assert response.status_code == 400
    assert "the application was not submitted" in html(response)
    assert fresh(request).status == S.DRAFT


def test_a_complete_application_is_submitted(client_for, draft, applicant):
    response = client_for(applicant).post(reverse("application-submit", args=[draft.pk]))

    assert response.url == reverse("application", args=[draft.pk])
    assert fresh(draft).status == S.SUBMITTED


def test_unaccredited_team_members_stop_the_submission(client_for, organisation, applicant):
    untrained = scenarios.person(Role.RESEARCHER, username="untrained")
    request = drafted(
        applicant, organisation,
        answers(organisation, [(applicant, "principal_investigator", True),
                               (untrained, "analyst", True)]),
    )  # fmt: skip

    page = html(client_for(applicant).post(reverse("application-submit", args=[request.pk])))

    assert "not recorded for untrained" in page
    assert fresh(request).status == S.DRAFT


def test_withdrawing_asks_first_then_withdraws(client_for, draft, applicant):
    client = client_for(applicant)
    url = reverse("application-withdraw", args=[draft.pk])

    page = html(client.get(url))
    assert fresh(draft).status == S.DRAFT
    response = client.post(url)

    assert "Withdraw the application" in page
    assert response.url == reverse("application", args=[draft.pk])
    assert fresh(draft).status == S.WITHDRAWN
    assert client.post(url).status_code == 409


def test_only_the_applicant_withdraws(client_for, organisation, applicant):
    request = drive_to(drafted(applicant, organisation, complete(organisation, applicant)),
                       S.SUBMITTED, by=panel())  # fmt: skip

    response = client_for(ig_officer()).post(reverse("application-withdraw", args=[request.pk]))

    assert response.status_code == 403
    assert fresh(request).status == S.SUBMITTED


# --- Changes to a project ------------------------------------------------------------------
@pytest.fixture
def approved(organisation, applicant) -> AccessRequest:
    return drive_to(
        drafted(applicant, organisation, complete(organisation, applicant)), S.APPROVED,
        by=panel(),
    )  # fmt: skip


def test_a_member_starts_an_amendment_from_the_project(client_for, approved, applicant):
    response = client_for(applicant).post(
        reverse("application-change", args=[approved.project_id]), {"kind": "amendment"}
    )

    change = AccessRequest.objects.get(based_on=approved)
    assert response.url == reverse("application", args=[change.pk])
    assert (change.kind, change.status, change.project_id) == (
        "amendment", S.DRAFT, approved.project_id
    )  # fmt: skip


def test_an_amendment_shows_only_what_changed(client_for, approved, applicant):
    change = services.start_change(project=approved.project, kind="amendment", by=applicant)
    data = {**change.answers["data"]}
    data["datasets"] = {
        **data["datasets"],
        "patients": {
            **data["datasets"]["patients"],
            "birth_month": "Age at diagnosis needs the month.",
        },
    }
    services.save_answers(request=change, by=applicant, answers={"data": data},
                          revision=change.revision, sections=["data"])  # fmt: skip

    page = html(client_for(applicant).get(reverse("application", args=[change.pk])))

    assert "What this amendment changes" in page
    assert "E. Datasets and fields: patients.birth_month" in page
    assert "Requested: Age at diagnosis needs the month." in page
    assert "patients.sex" not in page.split('id="delta"')[1].split("</table>")[0]


@pytest.mark.parametrize(
    ("who", "project", "kind", "status"),
    [
        ("stranger", "theirs", "amendment", 404),
        ("member", "unknown", "amendment", 404),
        ("member", "theirs", "takeover", 302),
    ],
    ids=["another-project", "no-such-project", "unknown-kind"],
)
def test_a_change_nobody_may_start_changes_nothing(
    client_for, organisation, approved, applicant, who, project, kind, status
):
    person = applicant if who == "member" else make_applicant(organisation)
    project_id = approved.project_id if project == "theirs" else 999999

    response = client_for(person).post(
        reverse("application-change", args=[project_id]), {"kind": kind}
    )

    assert response.status_code == status
    assert not AccessRequest.objects.filter(based_on=approved).exists()


def test_starting_a_change_answers_only_post(client_for, approved, applicant):
    response = client_for(applicant).get(reverse("application-change", args=[approved.project_id]))

    assert response.status_code == 405
