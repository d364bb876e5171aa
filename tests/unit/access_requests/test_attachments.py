"""Attachments (access_requests/services.py): allowed by extension and by content, within
the size limit, stored outside the database with their hash, only by the applicant while
the request is editable; opening one is audited; an independent IG officer redacts one
(the original is destroyed once the redaction commits) with the reason recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from access_requests import services
from access_requests.models import AccessRequest, Attachment
from sde.audit.events import EventType as E
from sde.exceptions import (
    AuditError,
    GovernedWriteRefused,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from sde.identity.models import Organisation, User
from tests.events import events_since, mark, types_since
from tests.unit.access_requests.builders import (
    TODAY,
    answers,
    caldicott_guardian,
    drafted,
    drive_to,
    fresh,
    ig_officer,
    join,
    panel,
)
from tests.unit.sde.projects.builders import researcher

pytestmark = pytest.mark.django_db

S = AccessRequest.Status
PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
DOCX = b"PK\x03\x04\x14\x00\x06\x00word/document.xml"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00"


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content)


def _request(organisation: Organisation, applicant: User) -> AccessRequest:
    filled = answers(organisation, [(applicant, "principal_investigator", True)])
    return drafted(applicant, organisation, filled)


def _on_disk() -> dict[str, bytes]:
    root = services.attachment_root()
    return {p.name: p.read_bytes() for p in root.iterdir()} if root.exists() else {}


def _read(handle: Any) -> bytes:
    with handle:
        return handle.read()


def _nothing_changed(request: AccessRequest, at: int, files: dict[str, bytes]) -> bool:
    return (
        types_since(at) == []
        and _on_disk() == files
        and list(fresh(request).attachments.values_list("pk", "stored_path", "sha256"))
        == list(request.attachments.values_list("pk", "stored_path", "sha256"))
    )


# =========================================================================================
# Adding
# =========================================================================================
ALLOWED = {
    "dpia.pdf": (PDF, "application/pdf"),
    "data-flow.png": (PNG, "image/png"),
    "rec-letter.jpg": (JPEG, "image/jpeg"),
    "CAG-LETTER.JPEG": (JPEG, "image/jpeg"),
    "protocol.docx": (
        DOCX, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    ),
    "notes.txt": ("Plain text, with a £ sign.".encode(), "text/plain"),
    "Protocol v2.PDF": (PDF, "application/pdf"),
}  # fmt: skip


def test_allowed_types_are_stored_outside_the_database_with_their_hash(
    organisation, applicant, data_root
):
    request = _request(organisation, applicant)
    root = services.attachment_root()
    at = mark()

    for name, (content, _) in ALLOWED.items():
        services.add_attachment(
            request=request, by=applicant, upload=upload(name, content), kind="other"
        )

    stored = list(fresh(request).attachments.all())
    assert [(a.file_name, a.content_type, a.size) for a in stored] == [
        (name, content_type, len(content)) for name, (content, content_type) in ALLOWED.items()
    ]
    for attachment, (content, _) in zip(stored, ALLOWED.values(), strict=True):
        path = root / attachment.stored_path
        assert path.read_bytes() == content
        assert attachment.sha256 == hashlib.sha256(content).hexdigest()
        assert not Path(attachment.stored_path).is_absolute()
        assert attachment.file_name not in attachment.stored_path
        assert attachment.uploaded_by == applicant
    assert root.resolve() != Path(data_root).resolve()
    assert len(_on_disk()) == len(ALLOWED)
    events = events_since(at)
    assert [e.event_type for e in events] == [E.REQUEST_ATTACHMENT_ADDED] * len(ALLOWED)
    assert [e.data for e in events] == [
        {"attachment_id": a.pk, "kind": "other", "size": a.size} for a in stored
    ]


REFUSED = {
    "a-pdf-that-is-not-a-pdf": ("dpia.pdf", EXE),
    "a-png-that-is-a-pdf": ("flow.png", PDF),
    "a-jpeg-that-is-a-png": ("letter.jpg", PNG),
    "a-docx-that-is-not-a-zip": ("protocol.docx", PDF),
    "a-program": ("setup.exe", EXE),
    "a-program-named-twice": ("dpia.pdf.exe", PDF),
    "a-web-page": ("page.html", b"<html><script>alert(1)</script></html>"),
    "a-zip-archive": ("bundle.zip", DOCX),
    "no-extension": ("README", b"Plain text."),
    "text-that-is-not-text": ("notes.txt", b"\xff\xfe\x00\x00\x9c"),
    "an-empty-pdf": ("empty.pdf", b""),
}


def test_a_file_of_the_wrong_type_or_content_is_refused_and_nothing_is_kept(
    organisation, applicant
):
    request = _request(organisation, applicant)
    at, files = mark(), _on_disk()
    refused = {}

    for case, (name, content) in REFUSED.items():
        try:
            services.add_attachment(
                request=request, by=applicant, upload=upload(name, content), kind="protocol"
            )
        except ValidationError as error:
            refused[case] = set(error.errors)
        else:
            refused[case] = None

    assert refused == {case: {"file"} for case in REFUSED}
    assert _nothing_changed(request, at, files)
    assert not Attachment.objects.exists()


def test_the_size_limit_comes_from_the_settings(organisation, applicant, settings):
    settings.SDE_MAX_ATTACHMENT_BYTES = 100
    request = _request(organisation, applicant)
    at_limit = PDF + b"x" * (100 - len(PDF))

    services.add_attachment(
        request=request, by=applicant, upload=upload("a.pdf", at_limit), kind="dpia"
    )
    at, files = mark(), _on_disk()
    with pytest.raises(ValidationError) as raised:
        services.add_attachment(
            request=request, by=applicant, upload=upload("b.pdf", at_limit + b"x"), kind="dpia"
        )

    assert set(raised.value.errors) == {"file"}
    assert "101 bytes; the limit is 100" in raised.value.errors["file"][0]
    assert _nothing_changed(request, at, files)
    assert fresh(request).attachments.count() == 1


def test_an_attachment_needs_a_known_kind(organisation, applicant):
    request = _request(organisation, applicant)
    at, files = mark(), _on_disk()

    with pytest.raises(ValidationError) as raised:
        services.add_attachment(
            request=request, by=applicant, upload=upload("a.pdf", PDF), kind="invoice"
        )

    assert set(raised.value.errors) == {"kind"}
    assert _nothing_changed(request, at, files)


def test_attachments_are_added_only_while_the_request_is_editable(organisation, applicant):
    reviewers = panel()
    request = _request(organisation, applicant)
    services.add_attachment(
        request=request, by=applicant, upload=upload("1.pdf", PDF), kind="protocol"
    )
    request = services.submit(request=request, by=applicant, today=TODAY)
    refused = {}

    for status in (S.SUBMITTED, S.IN_REVIEW):
        if status == S.IN_REVIEW:
            request = services.start_review(request=request, by=reviewers.reviewers[0])
        at, files = mark(), _on_disk()
        with pytest.raises(InvalidTransition):
            services.add_attachment(
                request=request, by=applicant, upload=upload("2.pdf", PDF), kind="protocol"
            )
        refused[status] = _nothing_changed(request, at, files)  # the file written is removed
    request = services.return_request(
        request=request, by=reviewers.reviewers[0], reason="Attach the REC letter."
    )
    services.add_attachment(
        request=request, by=applicant, upload=upload("rec.pdf", PDF), kind="rec_letter"
    )

    assert refused == {S.SUBMITTED: True, S.IN_REVIEW: True}
    assert list(fresh(request).attachments.values_list("file_name", flat=True)) == [
        "1.pdf",
        "rec.pdf",
    ]
    assert len(_on_disk()) == 2


def test_only_the_applicant_attaches(organisation, applicant):
    reviewers = panel()
    colleague = researcher()
    filled = answers(
        organisation, [(applicant, "principal_investigator", True), (colleague, "analyst", True)]
    )
    request = drive_to(drafted(applicant, organisation, filled), S.RETURNED, by=reviewers)
    others = {
        "ig-officer": (reviewers.reviewers[1], PermissionDenied),
        "caldicott-guardian": (reviewers.guardian, PermissionDenied),
        "colleague-on-the-team": (colleague, NotFound),  # a request is its applicant's
        "another-researcher": (researcher(), NotFound),
    }
    at, files = mark(), _on_disk()
    observed = {}

    for who, (user, _) in others.items():
        try:
            services.add_attachment(
                request=request, by=user, upload=upload("x.pdf", PDF), kind="other"
            )
        except (PermissionDenied, NotFound) as error:
            observed[who] = type(error)

    assert observed == {who: error for who, (_, error) in others.items()}
    assert _nothing_changed(request, at, files)


def test_a_failed_audit_write_leaves_no_row_and_no_file(organisation, applicant, monkeypatch):
    request = _request(organisation, applicant)
    at, files = mark(), _on_disk()

    def audit_down(**kwargs: Any) -> None:
        raise AuditError("the audit log cannot be written")

    monkeypatch.setattr(services, "record_event", audit_down)
    with pytest.raises(AuditError):
        services.add_attachment(
            request=request, by=applicant, upload=upload("a.pdf", PDF), kind="dpia"
        )

    assert _nothing_changed(request, at, files)
    assert not Attachment.objects.exists()


def test_attachments_refuse_direct_writes(organisation, applicant):
    request = _request(organisation, applicant)
    attachment = services.add_attachment(
        request=request, by=applicant, upload=upload("a.pdf", PDF), kind="dpia"
    )

    with pytest.raises(GovernedWriteRefused):
        attachment.delete()
    attachment.sha256 = "0" * 64
    with pytest.raises(GovernedWriteRefused):
        attachment.save()


# =========================================================================================
# Opening
# =========================================================================================
def test_opening_an_attachment_is_audited_and_only_for_those_who_see_the_request(
    organisation, applicant, custodian
):
    reviewers = panel()
    request = _request(organisation, applicant)
    attachment = services.add_attachment(
        request=request, by=applicant, upload=upload("dpia.pdf", PDF), kind="dpia"
    )
    ig = reviewers.reviewers[1]
    at = mark()

    assert _read(services.open_attachment(attachment=attachment, by=applicant)) == PDF
    with pytest.raises(NotFound):  # a draft is the applicant's alone
        services.open_attachment(attachment=attachment, by=ig)
    services.submit(request=request, by=applicant, today=TODAY)
    assert _read(services.open_attachment(attachment=attachment, by=ig)) == PDF
    assert _read(services.open_attachment(attachment=attachment, by=reviewers.guardian)) == PDF
    for outsider in (researcher(), custodian):
        with pytest.raises(NotFound):
            services.open_attachment(attachment=attachment, by=outsider)

    viewed = [e for e in events_since(at) if e.event_type == E.REQUEST_ATTACHMENT_VIEWED]
    assert [(e.actor_id, e.data) for e in viewed] == [
        (who.pk, {"attachment_id": attachment.pk, "redacted": False})
        for who in (applicant, ig, reviewers.guardian)
    ]
    assert {e.target_id for e in viewed} == {str(request.pk)}


# =========================================================================================
# Redaction
# =========================================================================================
REASON = "Contains a patient's name on page 3."


def _attached(organisation: Organisation, applicant: User) -> tuple[AccessRequest, Attachment]:
    request = _request(organisation, applicant)
    attachment = services.add_attachment(
        request=request, by=applicant, upload=upload("protocol.pdf", PDF), kind="protocol"
    )
    return services.submit(request=request, by=applicant, today=TODAY), attachment


def test_ig_redacts_with_a_replacement_and_the_original_is_destroyed_after_commit(
    organisation, applicant, django_capture_on_commit_callbacks
):
    _, attachment = _attached(organisation, applicant)
    ig = ig_officer()
    original = services.attachment_root() / attachment.stored_path
    redacted_pdf = PDF + b"% redacted\n"
    at = mark()

    with django_capture_on_commit_callbacks(execute=True):
        redacted = services.redact_attachment(
            attachment=attachment,
            by=ig,
            reason=f"  {REASON} ",
            replacement=upload("protocol-redacted.pdf", redacted_pdf),
        )
        assert original.exists()  # destroyed only once the redaction commits

    assert not original.exists()
    stored = Attachment.objects.get(pk=attachment.pk)
    assert (stored.redacted_by, stored.redaction_reason) == (ig, REASON)
    assert stored.redacted_at is not None
    assert stored.stored_path != attachment.stored_path == str(original.name)
    assert (stored.size, stored.sha256) == (
        len(redacted_pdf),
        hashlib.sha256(redacted_pdf).hexdigest(),
    )
    assert stored.file_name == "protocol.pdf" and redacted == stored
    assert _on_disk() == {stored.stored_path: redacted_pdf}
    (event,) = events_since(at)
    assert (event.event_type, event.actor_id, event.data) == (
        E.REQUEST_ATTACHMENT_REDACTED,
        ig.pk,
        {"attachment_id": attachment.pk, "replaced": True},
    )
    assert _read(services.open_attachment(attachment=stored, by=applicant)) == redacted_pdf
    assert events_since(at)[-1].data == {"attachment_id": attachment.pk, "redacted": True}


def test_ig_redacts_without_a_replacement_and_nothing_can_be_opened(
    organisation, applicant, django_capture_on_commit_callbacks
):
    _, attachment = _attached(organisation, applicant)
    ig = ig_officer()
    at = mark()

    with django_capture_on_commit_callbacks(execute=True):
        services.redact_attachment(attachment=attachment, by=ig, reason=REASON)

    stored = Attachment.objects.get(pk=attachment.pk)
    assert (stored.size, stored.sha256, stored.redaction_reason) == (0, "", REASON)
    assert _on_disk() == {}
    assert [(e.event_type, e.data) for e in events_since(at)] == [
        (E.REQUEST_ATTACHMENT_REDACTED, {"attachment_id": attachment.pk, "replaced": False})
    ]
    for who in (applicant, ig):
        with pytest.raises(NotFound):
            services.open_attachment(attachment=stored, by=who)


def test_only_an_independent_ig_officer_redacts(organisation, applicant, custodian):
    request, attachment = _attached(organisation, applicant)
    ig_of_the_organisation = ig_officer()
    join(ig_of_the_organisation, organisation)
    others = {
        "applicant": (applicant, PermissionDenied),
        "ig-officer-of-the-organisation": (ig_of_the_organisation, PermissionDenied),
        "caldicott-guardian": (caldicott_guardian(), PermissionDenied),
        "researcher": (researcher(), NotFound),
        "data-custodian": (custodian, NotFound),
    }
    at, files = mark(), _on_disk()
    observed = {}

    for who, (user, _) in others.items():
        try:
            services.redact_attachment(attachment=attachment, by=user, reason=REASON)
        except (PermissionDenied, NotFound) as error:
            observed[who] = type(error)

    assert observed == {who: error for who, (_, error) in others.items()}
    assert _nothing_changed(request, at, files)
    assert Attachment.objects.get(pk=attachment.pk).redacted_at is None


def test_a_redaction_needs_a_reason_and_a_replacement_of_an_allowed_type(organisation, applicant):
    request, attachment = _attached(organisation, applicant)
    ig = ig_officer()
    at, files = mark(), _on_disk()
    attempts = {
        "no-reason": {"reason": "  "},
        "replacement-not-a-pdf": {"reason": REASON, "replacement": upload("r.pdf", EXE)},
        "replacement-a-program": {"reason": REASON, "replacement": upload("r.exe", EXE)},
    }
    refused = {}

    for case, given in attempts.items():
        with pytest.raises(ValidationError) as raised:
            services.redact_attachment(attachment=attachment, by=ig, **given)
        refused[case] = set(raised.value.errors)

    assert refused == {
        "no-reason": {"reason"},
        "replacement-not-a-pdf": {"file"},
        "replacement-a-program": {"file"},
    }
    assert _nothing_changed(request, at, files)
    assert Attachment.objects.get(pk=attachment.pk).redacted_at is None


def test_a_failed_redaction_leaves_no_replacement_file_behind(organisation, applicant, monkeypatch):
    _, attachment = _attached(organisation, applicant)
    ig = ig_officer()
    files = _on_disk()

    def audit_down(**kwargs: Any) -> None:
        raise AuditError("the audit log cannot be written")

    monkeypatch.setattr(services, "record_event", audit_down)
    with pytest.raises(AuditError):
        services.redact_attachment(
            attachment=attachment, by=ig, reason=REASON, replacement=upload("r.pdf", PDF + b"%")
        )

    assert Attachment.objects.get(pk=attachment.pk).redacted_at is None
    assert _on_disk() == files
