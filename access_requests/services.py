"""The access request lifecycle: drafting, submission, independent review, decision, and
the project it creates or changes.

``TRANSITIONS`` is the one definition of who moves a request between states:

    draft|returned --submit (applicant)--> submitted
    submitted --start review (IG, independent)--> in_review
    in_review --return (IG, independent, reason)--> returned
    in_review --reject (IG, independent, reason)--> rejected
    in_review --approve (IG, independent; quorum, and Caldicott sign-off where the
               basis is overriding public interest)--> approved
    draft|submitted|returned --withdraw (applicant)--> withdrawn

An approval is recorded per reviewer and round; the request is approved when
``SDE_APPROVAL_QUORUM`` independent IG officers have approved the same terms in the current
round (and the Caldicott Guardian signed off where needed). Independence is checked in
these services, so pages, API and shell alike cannot approve their own request. Every
transition and comment is an audit event; nothing from the answers goes into one.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, Final

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from access_requests import questions
from access_requests.models import AccessRequest, Attachment, Comment, Review
from sde import notifications, policy
from sde.audit.events import EventType
from sde.audit.services import get_system_user, record_event
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.governance import Transition, governed_writes
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.identity.selectors import current_roles, is_accredited, users_with_role
from sde.projects import services as projects
from sde.projects.models import Project

logger = logging.getLogger(__name__)
S = AccessRequest.Status
D = Review.Decision
APPLICANT, REVIEWER = "applicant", "IG officer (independent)"


TRANSITIONS: Final[dict[str, Transition]] = {
    "submit": Transition(
        frozenset({S.DRAFT, S.RETURNED}), S.SUBMITTED, APPLICANT, EventType.REQUEST_SUBMITTED
    ),
    "start_review": Transition(
        frozenset({S.SUBMITTED}), S.IN_REVIEW, REVIEWER, EventType.REQUEST_REVIEW_STARTED
    ),
    "return": Transition(
        frozenset({S.IN_REVIEW}), S.RETURNED, REVIEWER, EventType.REQUEST_RETURNED
    ),
    "reject": Transition(
        frozenset({S.IN_REVIEW}), S.REJECTED, REVIEWER, EventType.REQUEST_REJECTED
    ),
    "approve": Transition(
        frozenset({S.IN_REVIEW}), S.APPROVED, REVIEWER, EventType.REQUEST_APPROVED
    ),
    "withdraw": Transition(
        frozenset({S.DRAFT, S.SUBMITTED, S.RETURNED}), S.WITHDRAWN, APPLICANT,
        EventType.REQUEST_WITHDRAWN,
    ),
}  # fmt: skip
EDITABLE: Final = frozenset({S.DRAFT, S.RETURNED})
# An extension changes the end date (meta) and is declared again.
EXTENSION_SECTIONS: Final = frozenset({"meta", "declarations"})
COMMENTABLE: Final = frozenset({S.SUBMITTED, S.IN_REVIEW, S.RETURNED})


# --- Reading ----------------------------------------------------------------------------
def visible_requests(user: Any) -> Any:
    return policy.visible_access_requests(
        user, AccessRequest.objects.select_related("applicant", "organisation", "project")
    )


def get_request(user: Any, pk: int) -> AccessRequest:
    """The request, or NotFound when it does not exist or ``user`` may not see it."""
    request = visible_requests(user).filter(pk=pk).first()
    if request is None:
        raise NotFound("no such access request")
    return request


def member_users(answers: dict[str, Any]) -> list[tuple[User, dict[str, Any]]]:
    """The team's accounts with their answers (people not found are left out)."""
    members = (answers.get("people") or {}).get("members") or []
    users = {
        u.username: u for u in User.objects.filter(username__in=[m["username"] for m in members])
    }
    return [(users[m["username"]], m) for m in members if m["username"] in users]


def approved_answers(request: AccessRequest) -> dict[str, Any]:
    """The answers as approved: the end date is the one the reviewers set."""
    answers = dict(request.answers)
    if request.approved_end_date is not None:
        answers["meta"] = {**answers["meta"], "end_date": request.approved_end_date.isoformat()}
    return answers


def changes_from_approved(request: AccessRequest) -> list[tuple[str, Any, Any]]:
    """A change request's difference from the approved version (empty for a new one)."""
    if request.based_on is None:
        return []
    return questions.diff(approved_answers(request.based_on), request.answers)


def organisation_ids(answers: dict[str, Any]) -> set[int]:
    return {o["organisation_id"] for o in (answers.get("people") or {}).get("organisations") or []}


def conflict_of(user: Any, request: AccessRequest) -> str | None:
    """Why ``user`` is not independent of ``request`` (None: they are)."""
    member_ids = {u.pk for u, _ in member_users(request.answers)}
    if request.project is not None:
        member_ids |= set(
            request.project.memberships.filter(removed_at__isnull=True).values_list(
                "user_id", flat=True
            )
        )
    return policy.reviewer_conflict(
        user,
        applicant_id=request.applicant_id,
        member_ids=member_ids,
        organisation_ids=organisation_ids(request.answers) | {request.organisation_id},
        exclude_organisations=settings.SDE_REVIEW_EXCLUDES_APPLICANT_ORGANISATIONS,
    )


def approvals(request: AccessRequest) -> list[Review]:
    return list(
        request.reviews.filter(review_round=request.review_round, decision=D.APPROVE)
        .select_related("reviewer")
    )  # fmt: skip


def signed_off(request: AccessRequest) -> bool:
    return request.reviews.filter(
        review_round=request.review_round, decision=D.CALDICOTT_SIGN_OFF
    ).exists()


def missing_for_approval(request: AccessRequest) -> list[str]:
    """What the request still needs to be approved in this round (empty: nothing)."""
    missing = []
    needed = settings.SDE_APPROVAL_QUORUM - len(approvals(request))
    if needed > 0:
        missing.append(f"{needed} more independent approval{'s' if needed > 1 else ''}")
    if questions.needs_caldicott(request.answers) and not signed_off(request):
        missing.append("the Caldicott Guardian's sign-off")
    return missing


# --- Drafting ---------------------------------------------------------------------------
def create_request(*, by: User, organisation: Organisation, title: str = "") -> AccessRequest:
    """Start a new application as ``by``, for an organisation they belong to.
    Event: access.request_created."""
    policy.check_apply_for_access(by)
    if not by.memberships.filter(organisation=organisation).exists():
        raise ValidationError(
            "not your organisation", {"organisation": ["Apply for an organisation you belong to."]}
        )
    answers = questions.empty_answers()
    if title:
        answers["meta"]["title"] = title[: questions.MAX_SHORT]
    with transaction.atomic(), governed_writes(AccessRequest):
        request = AccessRequest(
            question_set_version=questions.VERSION, applicant=by, organisation=organisation,
            title=answers["meta"].get("title", ""), answers=answers,
        )  # fmt: skip
        request.save()
        record_event(
            event_type=EventType.REQUEST_CREATED, actor=by, target=request,
            data={"kind": request.kind, "question_set": questions.VERSION},
        )  # fmt: skip
    return request


def save_answers(
    *, request: AccessRequest, by: User, answers: dict[str, Any], revision: int,
    sections: Iterable[str] | None = None,
) -> tuple[AccessRequest, dict[str, dict[str, list[str]]]]:  # fmt: skip
    """Save (autosave) answers while the request is a draft or returned. ``sections``
    limits the save to those sections (a page saves one step); by default the sections
    given are saved and the others kept. ``revision`` is the one
    the page loaded: a stale save is refused (InvalidTransition), so two tabs cannot
    overwrite each other. Answers that are not part of the question set, or name a
    dataset, field or organisation not offered, refuse the whole save (ValidationError).
    Returns the request and each section's remaining errors. Event: access.draft_saved."""
    policy.check_applicant(by, request)
    with transaction.atomic(), governed_writes(AccessRequest):
        locked = AccessRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status not in EDITABLE:
            raise InvalidTransition(f"the request is {locked.get_status_display().lower()}")
        if locked.revision != revision:
            raise InvalidTransition(
                "the application was changed elsewhere since this page was loaded; reload it"
            )
        given = questions.check_shape(answers)
        # Only the sections named (or, by default, given): a save never wipes the others.
        keys = list(sections) if sections is not None else [k for k in answers if k in given]
        unknown = set(keys) - set(questions.SECTION_KEYS)
        if unknown:
            raise ValidationError("unknown section", {s: ["Not a section."] for s in unknown})
        if locked.kind == AccessRequest.Kind.EXTENSION and set(keys) - EXTENSION_SECTIONS:
            raise ValidationError(
                "an extension changes the end date only", {"sections": ["Only the end date."]}
            )
        merged = {**locked.answers, **{key: given[key] for key in keys}}
        if locked.kind == AccessRequest.Kind.EXTENSION and "meta" in keys:  # the end date only
            merged["meta"] = {**locked.answers["meta"], "end_date": given["meta"].get("end_date")}
        locked.answers = merged
        locked.title = str(merged["meta"].get("title", ""))[:200]
        locked.revision += 1
        locked.save()
        record_event(
            event_type=EventType.REQUEST_DRAFT_SAVED, actor=by, target=locked,
            data={"sections": sorted(keys), "revision": locked.revision},
        )  # fmt: skip
    return locked, questions.section_errors(locked.answers)


def submission_errors(request: AccessRequest, *, today: date) -> dict[str, list[str]]:
    """Everything that stops the request from being submitted, keyed section.question."""
    errors: dict[str, list[str]] = {}
    for section_errors in questions.section_errors(request.answers).values():
        errors.update(section_errors)
    unaccredited = [
        user.username
        for user, answer in member_users(request.answers)
        if answer.get("accesses_data", True)
        and not all(
            is_accredited(user, on=today, kind=k) for k in policy.DATA_ACCESS_ACCREDITATIONS
        )
    ]
    if unaccredited:
        errors.setdefault("people.members", []).append(
            "Each person who will access data needs current safe researcher and data "
            f"security training: not recorded for {', '.join(unaccredited)}."
        )
    overseers = [
        user.username
        for user, answer in member_users(request.answers)
        if answer.get("accesses_data", True) and Role.IG_OFFICER in current_roles(user)
    ]
    if overseers:
        errors.setdefault("people.members", []).append(
            f"IG officers never see row-level data: {', '.join(overseers)} cannot access data."
        )
    if request.based_on is not None and not changes_from_approved(request):
        errors["request"] = ["Nothing has changed from the approved application."]
    return errors


def _move(
    request: AccessRequest, action: str, *, by: User, data: dict[str, Any] | None = None,
    **fields: Any,
) -> AccessRequest:  # fmt: skip
    """The one place a request's status changes: re-read under lock, check the table, set
    status and fields, write the event."""
    step = TRANSITIONS[action]
    locked = AccessRequest.objects.select_for_update().get(pk=request.pk)
    if locked.status not in step.sources:
        raise InvalidTransition(
            f"the request is {locked.get_status_display().lower()}: "
            f"'{action.replace('_', ' ')}' is not possible"
        )
    locked.status = step.target
    for name, value in fields.items():
        setattr(locked, name, value)
    with governed_writes(AccessRequest):
        locked.save()
    record_event(
        event_type=step.event, actor=by, target=locked, project_id=locked.project_id,
        data={"round": locked.review_round, **(data or {})},
    )  # fmt: skip
    return locked


def submit(*, request: AccessRequest, by: User, today: date | None = None) -> AccessRequest:
    """Submit (or resubmit after a return): every section complete, every data user's
    training current. Starts a new review round. Event: access.submitted."""
    policy.check_applicant(by, request)
    today = today or timezone.localdate()
    with transaction.atomic():
        current = AccessRequest.objects.select_for_update().get(pk=request.pk)
        if current.status in TRANSITIONS["submit"].sources:
            errors = submission_errors(current, today=today)
            if errors:
                raise ValidationError("the application is not complete", errors)
        now = timezone.now()
        submitted = _move(
            current, "submit", by=by, review_round=current.review_round + 1, submitted_at=now,
            first_submitted_at=current.first_submitted_at or now, assignee=None,
        )  # fmt: skip
    _notify_independent(
        submitted, Role.IG_OFFICER, f"Access request {submitted.pk} submitted for review",
        f"“{submitted.title}” was submitted and waits for review.",
    )  # fmt: skip
    return submitted


def withdraw(*, request: AccessRequest, by: User) -> AccessRequest:
    """The applicant withdraws (before review starts, or while returned).
    Event: access.withdrawn."""
    policy.check_applicant(by, request)
    with transaction.atomic():
        return _move(request, "withdraw", by=by, decided_at=timezone.now())


# --- Review -----------------------------------------------------------------------------
def check_reviewer(by: User, request: AccessRequest) -> None:
    """NotFound unless ``by`` sees the request; PermissionDenied unless they are an IG
    officer independent of it (every review action checks this first)."""
    policy.check_view_access_request(by, request)  # NotFound before anything else
    policy.check_decide_access_request(by, request, conflict=conflict_of(by, request))


def start_review(*, request: AccessRequest, by: User) -> AccessRequest:
    """An independent IG officer takes the request. Event: access.review_started."""
    check_reviewer(by, request)
    with transaction.atomic():
        return _move(request, "start_review", by=by, assignee=by)


def assign(*, request: AccessRequest, assignee: User, by: User) -> AccessRequest:
    """Give a submitted or in-review request to an independent IG officer."""
    check_reviewer(by, request)
    if not policy.user_reviews_access_requests(assignee) or conflict_of(assignee, request):
        raise ValidationError(
            "not an independent reviewer", {"assignee": ["Pick an independent IG officer."]}
        )
    with transaction.atomic(), governed_writes(AccessRequest):
        locked = AccessRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status not in {S.SUBMITTED, S.IN_REVIEW}:
            raise InvalidTransition("only a request waiting for or in review is assigned")
        locked.assignee = assignee
        locked.save()
        record_event(
            event_type=EventType.REQUEST_ASSIGNED, actor=by, target=locked,
            data={"assignee_id": assignee.pk},
        )  # fmt: skip
    return locked


def _reason(reason: str) -> str:
    if not reason.strip():
        raise ValidationError("give the reason", {"reason": ["Give the reason."]})
    return reason.strip()


def _record_review(request: AccessRequest, by: User, decision: str, **fields: Any) -> Review:
    try:
        with transaction.atomic(), governed_writes(Review):
            review = Review(
                request=request, reviewer=by, review_round=request.review_round,
                decision=decision, **fields,
            )  # fmt: skip
            review.save()
    except IntegrityError as error:
        raise InvalidTransition(f"you have already recorded '{decision}' in this round") from error
    return review


def return_request(*, request: AccessRequest, by: User, reason: str) -> AccessRequest:
    """Back to the applicant for changes, with the reason they see (a public comment).
    Approvals so far lapse: the resubmission is a new round. Event: access.returned."""
    check_reviewer(by, request)
    reason = _reason(reason)
    with transaction.atomic():
        _check_state(request, "return")
        _record_review(request, by, D.RETURN, reason=reason)
        returned = _move(request, "return", by=by)
        _comment(returned, by, reason, private=False)
    notifications.notify_user(
        user=returned.applicant,
        subject=f"Access request {returned.pk} returned for changes",
        body=f"“{returned.title}” was returned for changes:\n\n{reason}",
    )
    return returned


def reject(*, request: AccessRequest, by: User, reason: str) -> AccessRequest:
    """Refuse the request, with the reason the applicant sees. Event: access.rejected."""
    check_reviewer(by, request)
    reason = _reason(reason)
    with transaction.atomic():
        _check_state(request, "reject")
        _record_review(request, by, D.REJECT, reason=reason)
        rejected = _move(
            request, "reject", by=by, decided_at=timezone.now(), decision_reason=reason
        )
    notifications.notify_user(
        user=rejected.applicant,
        subject=f"Access request {rejected.pk} was not approved",
        body=f"“{rejected.title}” was not approved:\n\n{reason}",
    )
    return rejected


def _check_state(request: AccessRequest, action: str) -> AccessRequest:
    """The request re-read under lock, or InvalidTransition when ``action`` does not apply."""
    locked = AccessRequest.objects.select_for_update().get(pk=request.pk)
    if locked.status not in TRANSITIONS[action].sources:
        raise InvalidTransition(
            f"the request is {locked.get_status_display().lower()}: "
            f"'{action.replace('_', ' ')}' is not possible"
        )
    return locked


def approve(
    *, request: AccessRequest, by: User, end_date: date, conditions: str = "",
    today: date | None = None,
) -> AccessRequest:  # fmt: skip
    """Record ``by``'s approval of these terms (end date, conditions). When the quorum of
    independent approvals of the same terms is reached in this round (and the Caldicott
    Guardian has signed off where needed) the request is approved and its project is
    created or changed, in the same transaction.
    Events: access.approval_recorded; then access.approved and the project's events."""
    check_reviewer(by, request)
    today = today or timezone.localdate()
    start = request.answers["meta"].get("start_date")
    if end_date < today or (start and end_date.isoformat() < start):
        raise ValidationError(
            "the end date is not valid",
            {"end_date": ["The end date must be today or later, and after the start date."]},
        )
    with transaction.atomic():
        locked = _check_state(request, "approve")
        earlier = approvals(locked)
        if earlier and (earlier[0].end_date, earlier[0].conditions) != (
            end_date,
            conditions.strip(),
        ):
            raise ValidationError(
                "the terms differ",
                {"end_date": [
                    f"Another reviewer approved an end date of {earlier[0].end_date:%d %B %Y} "
                    "with other conditions; approve the same terms, or return the request."
                ]},
            )  # fmt: skip
        _record_review(locked, by, D.APPROVE, end_date=end_date, conditions=conditions.strip())
        record_event(
            event_type=EventType.REQUEST_APPROVAL_RECORDED, actor=by, target=locked,
            project_id=locked.project_id,
            data={"round": locked.review_round, "approvals": len(earlier) + 1},
        )  # fmt: skip
        result = _complete_if_ready(locked, by=by)
    _notify_decision(result, by=by)
    return result


def sign_off(*, request: AccessRequest, by: User, note: str) -> AccessRequest:
    """The Caldicott Guardian's sign-off for overriding public interest (in review; the
    Guardian must be independent of the request too). Event: access.caldicott_signed_off."""
    policy.check_view_access_request(by, request)
    policy.check_sign_off_public_interest(by, request, conflict=conflict_of(by, request))
    if not questions.needs_caldicott(request.answers):
        raise InvalidTransition("this request's basis does not need a Caldicott sign-off")
    note = _reason(note)
    with transaction.atomic():
        locked = _check_state(request, "approve")
        _record_review(locked, by, D.CALDICOTT_SIGN_OFF, reason=note)
        record_event(
            event_type=EventType.REQUEST_CALDICOTT_SIGNED_OFF, actor=by, target=locked,
            data={"round": locked.review_round},
        )  # fmt: skip
        result = _complete_if_ready(locked, by=by)
    _notify_decision(result, by=by)
    return result


def _complete_if_ready(request: AccessRequest, *, by: User) -> AccessRequest:
    if missing_for_approval(request):
        return request
    terms = approvals(request)[0]
    approved = _move(
        request, "approve", by=by, decided_at=timezone.now(), approved_end_date=terms.end_date,
        conditions=terms.conditions,
        data={"approvers": [r.reviewer_id for r in approvals(request)]},
    )  # fmt: skip
    project = _apply_to_project(approved, by=get_system_user())
    if approved.project_id != project.pk:
        with governed_writes(AccessRequest):
            approved.project = project
            approved.save(update_fields=["project"])
    return approved


def _notify_decision(request: AccessRequest, *, by: User) -> None:
    if request.status == S.APPROVED:
        notifications.notify_user(
            user=request.applicant,
            subject=f"Access request {request.pk} approved",
            body=f"“{request.title}” was approved. Access runs to "
            f"{request.approved_end_date:%d %B %Y}.",
        )
        return
    missing = missing_for_approval(request)
    body = f"“{request.title}” still needs {' and '.join(missing)}."
    if questions.needs_caldicott(request.answers) and not signed_off(request):
        _notify_independent(
            request, Role.CALDICOTT_GUARDIAN, f"Access request {request.pk} needs your sign-off",
            body,
        )  # fmt: skip
    if len(approvals(request)) < settings.SDE_APPROVAL_QUORUM:
        _notify_independent(
            request, Role.IG_OFFICER, f"Access request {request.pk} needs another approval", body
        )


def _notify_independent(request: AccessRequest, role: Role, subject: str, body: str) -> None:
    """Mail the people with ``role`` who may act on the request (not those with a conflict
    nor those who already decided in this round)."""
    decided = set(
        request.reviews.filter(review_round=request.review_round).values_list(
            "reviewer_id", flat=True
        )
    )
    for user in users_with_role(role):
        if user.pk not in decided and conflict_of(user, request) is None:
            notifications.notify_user(user=user, subject=subject, body=body)


def _compliance_dates(answers: dict[str, Any]) -> dict[str, date | None]:
    legal = answers["legal"]
    dspt = [
        o["dspt_expiry"] for o in answers["people"].get("organisations", []) if o.get("dspt_expiry")
    ]
    as_date = lambda value: date.fromisoformat(value) if value else None  # noqa: E731
    return {
        "s251_expiry": as_date(legal.get("s251_expiry")),
        "rec_expiry": as_date(legal.get("rec_expiry")),
        "dspt_expiry": as_date(min(dspt)) if dspt else None,
    }


def _apply_to_project(request: AccessRequest, *, by: User) -> Project:
    """Create the project (new request) or change it (amendment, extension, renewal)."""
    answers, end_date = request.answers, request.approved_end_date
    assert end_date is not None
    members = [
        projects.MemberSpec(user, answer["role"], answer.get("accesses_data", True))
        for user, answer in member_users(answers)
    ]
    if request.kind == AccessRequest.Kind.NEW:
        return projects.create_project(
            title=request.title, lay_summary=answers["project"]["lay_summary"],
            organisation=request.organisation, scope=questions.scope_from(answers),
            start_date=date.fromisoformat(answers["meta"]["start_date"]),
            end_date=end_date, members=members, by=by,
            conditions=request.conditions, access_request_id=request.pk,
            **_compliance_dates(answers),
        )  # fmt: skip
    assert request.project is not None
    if request.kind == AccessRequest.Kind.EXTENSION:  # the end date only
        return projects.change_project(
            project=request.project, by=by, access_request_id=request.pk,
            end_date=end_date, conditions=request.conditions,
        )  # fmt: skip
    return projects.change_project(
        project=request.project, by=by, access_request_id=request.pk,
        end_date=end_date, conditions=request.conditions,
        scope=questions.scope_from(answers), members=members, title=request.title,
        lay_summary=answers["project"].get("lay_summary"), **_compliance_dates(answers),
    )  # fmt: skip


# --- Comments ---------------------------------------------------------------------------
def _comment(request: AccessRequest, by: User, body: str, *, private: bool) -> Comment:
    with governed_writes(Comment):
        comment = Comment(request=request, author=by, body=body, private=private)
        comment.save()
    record_event(
        event_type=EventType.REQUEST_COMMENT_ADDED, actor=by, target=request,
        data={"private": private, "comment_id": comment.pk},
    )  # fmt: skip
    return comment


def add_comment(*, request: AccessRequest, by: User, body: str, private: bool = False) -> Comment:
    """A public comment (applicant and reviewers see it) or a private reviewer note.
    Applicants comment publicly only; reviewers must be independent.
    Event: access.comment_added."""
    policy.check_view_access_request(by, request)
    reviewer = policy.user_reviews_access_requests(by) and conflict_of(by, request) is None
    if reviewer:
        check_reviewer(by, request)
    else:
        policy.check_applicant(by, request)
        if private:
            raise PermissionDenied("private notes are for reviewers")
    body = body.strip()
    if not body:
        raise ValidationError("write something", {"body": ["Write the comment."]})
    if len(body) > questions.MAX_TEXT:
        raise ValidationError(
            "too long", {"body": [f"Keep it under {questions.MAX_TEXT:,} characters."]}
        )
    with transaction.atomic():
        if _check_commentable(request).status not in COMMENTABLE:
            raise InvalidTransition("comments are for requests under review")
        comment = _comment(request, by, body, private=private)
    if reviewer and not private:
        notifications.notify_user(
            user=request.applicant, subject=f"A comment on access request {request.pk}",
            body=f"A reviewer commented on “{request.title}”:\n\n{body}",
        )  # fmt: skip
    return comment


def _check_commentable(request: AccessRequest) -> AccessRequest:
    return AccessRequest.objects.select_for_update().get(pk=request.pk)


def visible_comments(user: Any, request: AccessRequest) -> Any:
    """Public comments for everyone who sees the request; private notes for reviewers."""
    policy.check_view_access_request(user, request)
    comments = request.comments.select_related("author")
    if policy.user_reviews_access_requests(user) and conflict_of(user, request) is None:
        return comments
    return comments.filter(private=False)


# --- Amendments, extensions, renewals ---------------------------------------------------
def start_change(*, project: Project, kind: str, by: User) -> AccessRequest:
    """A new request for a change to a live project, pre-filled from the approved answers
    (``kind``: amendment, extension or renewal). Only a member of the project who applies
    for access starts one; its review sees only the difference. Event: access.request_created."""
    policy.check_view_project(by, project)
    policy.check_apply_for_access(by)
    if not project.memberships.filter(user=by, removed_at__isnull=True).exists():
        raise PermissionDenied("only a member of the project applies for a change")
    if kind not in {AccessRequest.Kind.AMENDMENT, AccessRequest.Kind.EXTENSION,
                    AccessRequest.Kind.RENEWAL}:  # fmt: skip
        raise ValidationError("unknown kind", {"kind": ["Not a kind of change."]})
    if project.status not in {Project.Status.ACTIVE, Project.Status.SUSPENDED}:
        raise InvalidTransition(f"the project is {project.status}")
    approved = (
        AccessRequest.objects.filter(project=project, status=S.APPROVED)
        .order_by("-decided_at", "-pk").first()
    )  # fmt: skip
    if approved is None:
        raise InvalidTransition("the project has no approved application to change")
    if AccessRequest.objects.filter(project=project, status__in=[S.DRAFT, S.SUBMITTED,
                                    S.IN_REVIEW, S.RETURNED]).exists():  # fmt: skip
        raise InvalidTransition("a change to this project is already in progress")
    answers = {**approved_answers(approved), "declarations": {}}
    with transaction.atomic(), governed_writes(AccessRequest):
        request = AccessRequest(
            kind=kind, question_set_version=questions.VERSION, applicant=by,
            organisation=approved.organisation, title=approved.title, answers=answers,
            project=project, based_on=approved,
        )  # fmt: skip
        request.save()
        record_event(
            event_type=EventType.REQUEST_CREATED, actor=by, target=request, project_id=project.pk,
            data={"kind": kind, "question_set": questions.VERSION, "based_on": approved.pk},
        )  # fmt: skip
    return request


# --- Attachments ------------------------------------------------------------------------
ATTACHMENT_TYPES: Final = {
    ".pdf": ("application/pdf", (b"%PDF-",)),
    ".png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ".jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".docx": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        (b"PK\x03\x04",),
    ),
    ".txt": ("text/plain", ()),
}


def attachment_root() -> Path:
    return Path(settings.SDE_ATTACHMENT_ROOT)


def _store(upload: UploadedFile) -> tuple[str, str, int, str]:
    """Check an upload's type (by name and content) and size, write it under the
    attachment root; (stored path, content type, size, sha256)."""
    name = Path(upload.name or "").name
    suffix = Path(name).suffix.lower()
    if suffix not in ATTACHMENT_TYPES:
        allowed = ", ".join(sorted(ATTACHMENT_TYPES))
        raise ValidationError("wrong type", {"file": [f"{name}: attach {allowed} files only."]})
    limit = settings.SDE_MAX_ATTACHMENT_BYTES
    if (upload.size or 0) > limit:
        raise ValidationError(
            "too big", {"file": [f"{name} is {upload.size:,} bytes; the limit is {limit:,}."]}
        )
    content_type, signatures = ATTACHMENT_TYPES[suffix]
    head = next(upload.chunks(), b"")[:16] if upload.size else b""
    upload.seek(0)
    if signatures and not any(head.startswith(sig) for sig in signatures):
        raise ValidationError("wrong type", {"file": [f"{name} is not really a {suffix} file."]})
    if not signatures:
        try:
            upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("wrong type", {"file": [f"{name} is not plain text."]}) from None
        upload.seek(0)
    relative = Path(secrets.token_hex(16))
    root = attachment_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    with (root / relative).open("wb") as handle:
        for chunk in upload.chunks():
            digest.update(chunk)
            handle.write(chunk)
    return str(relative), content_type, upload.size or 0, digest.hexdigest()


def add_attachment(
    *, request: AccessRequest, by: User, upload: UploadedFile, kind: str
) -> Attachment:
    """Attach a file (type and size checked; stored outside the database) while the request
    is editable. Event: access.attachment_added."""
    policy.check_applicant(by, request)
    if kind not in Attachment.Kind.values:
        raise ValidationError("unknown kind", {"kind": ["Not a kind of attachment."]})
    stored, content_type, size, sha256 = _store(upload)
    try:
        with transaction.atomic(), governed_writes(Attachment):
            if _check_commentable(request).status not in EDITABLE:
                raise InvalidTransition("attachments are added while the request is editable")
            attachment = Attachment(
                request=request, kind=kind, file_name=Path(upload.name or "file").name[:120],
                stored_path=stored, content_type=content_type, size=size, sha256=sha256,
                uploaded_by=by,
            )  # fmt: skip
            attachment.save()
            record_event(
                event_type=EventType.REQUEST_ATTACHMENT_ADDED, actor=by, target=request,
                data={"attachment_id": attachment.pk, "kind": kind, "size": size},
            )  # fmt: skip
    except BaseException:
        (attachment_root() / stored).unlink(missing_ok=True)
        raise
    return attachment


def open_attachment(*, attachment: Attachment, by: User) -> BinaryIO:
    """The file, for anyone who sees the request; refused once redacted (NotFound when
    the file is gone). Event: access.attachment_viewed."""
    policy.check_view_access_request(by, attachment.request)
    path = attachment_root() / attachment.stored_path
    if not path.is_file():
        raise NotFound("the file is not there")
    with transaction.atomic():
        record_event(
            event_type=EventType.REQUEST_ATTACHMENT_VIEWED, actor=by, target=attachment.request,
            data={"attachment_id": attachment.pk, "redacted": attachment.redacted_at is not None},
        )  # fmt: skip
    return path.open("rb")


def redact_attachment(
    *, attachment: Attachment, by: User, reason: str, replacement: UploadedFile | None = None
) -> Attachment:
    """IG redacts an attachment: the original is destroyed and, if given, a redacted copy
    takes its place; who, when and why are recorded. Event: access.attachment_redacted."""
    check_reviewer(by, attachment.request)  # an IG officer independent of the request
    reason = _reason(reason)[:300]
    stored = _store(replacement) if replacement is not None else None
    old = attachment_root() / attachment.stored_path
    try:
        return _record_redaction(attachment, by=by, reason=reason, stored=stored, old=old)
    except BaseException:
        if stored:
            (attachment_root() / stored[0]).unlink(missing_ok=True)
        raise


def _record_redaction(
    attachment: Attachment, *, by: User, reason: str, stored: tuple[str, str, int, str] | None,
    old: Path,
) -> Attachment:  # fmt: skip
    with transaction.atomic(), governed_writes(Attachment):
        locked = Attachment.objects.select_for_update().get(pk=attachment.pk)
        if stored:
            locked.stored_path, locked.content_type, locked.size, locked.sha256 = stored
        else:
            locked.stored_path, locked.size, locked.sha256 = f"{locked.stored_path}.redacted", 0, ""
        locked.redacted_by, locked.redacted_at, locked.redaction_reason = by, timezone.now(), reason
        locked.save()
        record_event(
            event_type=EventType.REQUEST_ATTACHMENT_REDACTED, actor=by, target=locked.request,
            data={"attachment_id": locked.pk, "replaced": stored is not None},
        )  # fmt: skip
        transaction.on_commit(lambda: old.unlink(missing_ok=True))
    return locked
