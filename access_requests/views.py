"""Application and review pages (mounted at /applications/).

Applicants draft an application step by step (one page per section, saved to
``services.save_answers`` with the revision the page loaded, and autosaved as JSON),
attach files, answer comments, submit and withdraw. IG officers work through the review
queue and decide on the review page. Views parse input and call one service; the services
check permissions, independence and state again, whatever the page showed. A request the
viewer may not see is 404 (``services.get_request``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from access_requests import forms as f
from access_requests import questions, selectors, services
from access_requests.models import AccessRequest, Attachment
from sde import policy
from sde.data import catalogue
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.identity.models import Organisation, User
from sde.identity.roles import Role
from sde.identity.selectors import users_with_role
from sde.views.forms import apply_errors

S = AccessRequest.Status
SECTIONS = {s.key: s for s in questions.SECTIONS}
NEXT_STEPS = {
    S.DRAFT: "Complete every section, then submit it for review.",
    S.SUBMITTED: "Waiting for an IG officer to start the review.",
    S.IN_REVIEW: "Being reviewed by IG officers.",
    S.RETURNED: "Make the changes the reviewers asked for, then submit it again.",
    S.APPROVED: "Approved: work in the project.",
    S.REJECTED: "Not approved.",
    S.WITHDRAWN: "Withdrawn.",
}


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _allowed(check: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
    try:
        check(*args, **kwargs)
    except (NotFound, PermissionDenied):
        return False
    return True


def _mine(request: HttpRequest, pk: int) -> AccessRequest:
    """The request, for its applicant (404 if invisible, 403 for anyone else who sees it)."""
    found = services.get_request(_user(request), pk)
    policy.check_applicant(_user(request), found)
    return found


def _reviews(user: User) -> bool:
    return policy.user_reviews_access_requests(user) or policy.user_signs_off_public_interest(user)


def _for_review(request: HttpRequest, pk: int) -> AccessRequest:
    """The request, for IG officers and Caldicott Guardians (404 for anyone else)."""
    if not _reviews(_user(request)):
        raise NotFound("no such page")
    return services.get_request(_user(request), pk)


def _section_key(section: str) -> str:
    if section not in SECTIONS:
        raise NotFound("no such section")
    return section


def _choices(user: User) -> f.Choices:
    organisations = policy.visible_organisations_for(user).order_by("name")
    return f.Choices(
        organisations=list(organisations.values_list("pk", "name")),
        datasets=list(catalogue.catalogue_for(user)),
        places=list(
            organisations.filter(kind=Organisation.Kind.PLACE).values_list("name", flat=True)
        ),
    )


def _strip(errors: Mapping[str, list[str]], section: str) -> dict[str, list[str]]:
    """Service errors keyed ``section.question`` -> keyed by question."""
    prefix = f"{section}."
    return {k.removeprefix(prefix): list(v) for k, v in errors.items()}


def _revision(request: HttpRequest) -> int:
    # A missing or garbled revision is simply stale: the service refuses it (409).
    try:
        return int(request.POST.get("revision", ""))
    except ValueError:
        return -1


def _editable(ar: AccessRequest, section: str) -> bool:
    extension = ar.kind == AccessRequest.Kind.EXTENSION
    return ar.status in services.EDITABLE and (
        not extension or section in services.EXTENSION_SECTIONS
    )


# --- What pages show about the answers -------------------------------------------------
class Lookups:
    """Names for what answers refer to by id (organisations, catalogue fields)."""

    def __init__(self, user: User, answers: Mapping[str, Any]) -> None:
        ids = services.organisation_ids(dict(answers))
        organisations = policy.visible_organisations_for(user).filter(pk__in=ids)
        self.organisations = dict(organisations.values_list("pk", "name"))
        self.datasets = {d.slug: d for d in catalogue.catalogue_for(user)}
        self.fields = {(d.slug, x.name): x for d in self.datasets.values() for x in d.fields.all()}


def _day(value: str) -> str:
    try:
        return f"{date.fromisoformat(value):%-d %B %Y}"
    except (TypeError, ValueError):
        return str(value)


def _cohort(value: Mapping[str, Any]) -> str:
    parts = []
    low, high = value.get("age_min"), value.get("age_max")
    if low is not None and high is not None:
        parts.append(f"aged {low} to {high}")
    elif low is not None:
        parts.append(f"aged {low} and over")
    elif high is not None:
        parts.append(f"aged up to {high}")
    if value.get("places"):
        parts.append("Places: " + ", ".join(map(str, value["places"])))
    if value.get("imd_deciles"):
        parts.append("IMD deciles: " + ", ".join(map(str, value["imd_deciles"])))
    return "; ".join(parts) or "Everyone"


def plain(section: str, name: str, value: Any, look: Lookups) -> str:
    """One answer as text."""
    if value in (None, "", [], {}):
        return "—"
    kind, choices = questions.QUESTIONS.get(section, {}).get(name, (questions.TEXT, None))
    labels = choices or {}
    if kind == questions.DATE:
        return _day(value)
    if kind == questions.BOOL:
        return "Yes" if value else "No"
    if kind == questions.CHOICE:
        return str(labels.get(value, value))
    if kind == questions.CHOICES:
        return ", ".join(str(labels.get(v, v)) for v in value)
    if kind == questions.MAP:
        return "; ".join(f"{slug}: {text}" for slug, text in value.items())
    if kind == questions.ORGS:
        return "; ".join(
            f"{look.organisations.get(o.get('organisation_id'), o.get('organisation_id'))} "
            f"({questions.ORGANISATION_ROLES.get(o.get('role'), o.get('role'))})"
            for o in value
        )
    if kind == questions.MEMBERS:
        return "; ".join(
            f"{m.get('username')} ({questions.MEMBER_ROLES.get(m.get('role'), m.get('role'))}"
            f"{', accesses data' if m.get('accesses_data', True) else ''})"
            for m in value
        )
    if kind == questions.DATASETS:
        return "; ".join(f"{slug}: {', '.join(fields)}" for slug, fields in value.items())
    if kind == questions.COHORT:
        return _cohort(value)
    return str(value)


def _datasets(value: Mapping[str, Mapping[str, str]], look: Lookups) -> list[dict[str, Any]]:
    rows = []
    for slug, fields in value.items():
        dataset = look.datasets.get(slug)
        items = []
        for name, why in fields.items():
            field = look.fields.get((slug, name))
            flagged = field is not None and field.sensitivity in questions.FLAGGED_SENSITIVITIES
            items.append(
                {
                    "name": name,
                    "type": field.data_type if field else "",
                    "description": field.description if field else "",
                    "sensitivity": field.get_sensitivity_display() if field else "Unknown",
                    "flagged": flagged,
                    "why": why,
                }
            )
        rows.append({"slug": slug, "name": dataset.name if dataset else slug, "fields": items})
    return rows


def answer_sections(ar: AccessRequest, look: Lookups) -> list[dict[str, Any]]:
    """Every section's answers for a read-only page: (label, text) rows, with the
    organisations, people and datasets as structured rows."""
    result = []
    for section in questions.SECTIONS:
        answers = ar.answers.get(section.key) or {}
        rows = []
        for name, (kind, _) in questions.QUESTIONS[section.key].items():
            value = answers.get(name)
            row: dict[str, Any] = {"name": name, "label": f.label(section.key, name)}
            if kind == questions.DATASETS and value:
                row["datasets"] = _datasets(value, look)
            elif kind == questions.ORGS and value:
                row["entries"] = [plain(section.key, name, [o], look) for o in value]
            elif kind == questions.MEMBERS and value:
                row["entries"] = [plain(section.key, name, [m], look) for m in value]
            else:
                row["text"] = plain(section.key, name, value, look)
            rows.append(row)
        result.append({"section": section, "rows": rows})
    return result


def delta(ar: AccessRequest, look: Lookups) -> list[dict[str, str]]:
    """A change request's difference from the approved version, one row per answer (and
    per dataset field, so a reviewer sees exactly which fields are added or dropped)."""
    rows = []
    for where, before, after in selectors.changes(ar):
        section, _, name = where.partition(".")
        heading = f"{SECTIONS[section].letter}. {f.label(section, name)}"
        if name == "datasets":
            before, after = before or {}, after or {}
            pairs = {(s, x) for d in (before, after) for s, fields in d.items() for x in fields}
            for slug, field in sorted(pairs):
                old = (before.get(slug) or {}).get(field)
                new = (after.get(slug) or {}).get(field)
                if old != new:
                    rows.append(
                        {
                            "question": f"{heading}: {slug}.{field}",
                            "before": "Not requested" if old is None else f"Requested: {old}",
                            "after": "Not requested" if new is None else f"Requested: {new}",
                        }
                    )
            continue
        rows.append(
            {
                "question": heading,
                "before": plain(section, name, before, look),
                "after": plain(section, name, after, look),
            }
        )
    return rows


def task_list(ar: AccessRequest) -> list[dict[str, Any]]:
    errors = questions.section_errors(ar.answers)
    tasks = []
    for section in questions.SECTIONS:
        problems = sum(len(v) for v in errors[section.key].values())
        if not ar.answers.get(section.key):
            status = "not_started"
        else:
            status = "problems" if problems else "complete"
        tasks.append({"section": section, "status": status, "problems": problems})
    return tasks


def next_step(ar: AccessRequest) -> str:
    if ar.based_on_id and ar.status == S.DRAFT:
        return "Change what needs to change, accept the declarations again, then submit it."
    if ar.status == S.IN_REVIEW:
        missing = services.missing_for_approval(ar)
        if missing:
            return f"Being reviewed. Still needed: {' and '.join(missing)}."
    return NEXT_STEPS[S(ar.status)]


# --- Applicant pages -------------------------------------------------------------------
def application_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    mine = services.visible_requests(user).filter(applicant=user).order_by("-updated_at")
    can_apply = _allowed(policy.check_apply_for_access, user)
    if not can_apply and not mine.exists():
        if _reviews(user):
            return redirect("review-queue")
        raise NotFound("no such page")
    rows = [{"request": r, "next_step": next_step(r)} for r in mine]
    return render(
        request,
        "access_requests/list.html",
        {"rows": rows, "can_apply": can_apply, "reviews": _reviews(user)},
    )


@require_http_methods(["GET", "POST"])
def application_new(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not _allowed(policy.check_apply_for_access, user):
        raise NotFound("no such page")
    organisations = policy.visible_organisations_for(user).filter(memberships__user=user)
    form = f.StartForm(request.POST or None, organisations=organisations.order_by("name"))
    if request.method == "POST" and form.is_valid():
        try:
            created = services.create_request(
                by=user,
                organisation=form.cleaned_data["organisation"],
                title=form.cleaned_data["title"],
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, "Application started. Answer the sections in any order.")
            return redirect("application-section", pk=created.pk, section="meta")
    return render(
        request,
        "access_requests/new.html",
        {"form": form, "has_organisations": organisations.exists()},
    )


def _overview(request: HttpRequest, ar: AccessRequest, **bound: Any) -> HttpResponse:
    user = _user(request)
    look = Lookups(user, ar.answers)
    tasks = task_list(ar)
    commentable = ar.status in services.COMMENTABLE
    return render(
        request,
        "access_requests/overview.html",
        {
            "ar": ar,
            "tasks": tasks,
            "complete": sum(t["status"] == "complete" for t in tasks),
            "editable": ar.status in services.EDITABLE,
            "extension": ar.kind == AccessRequest.Kind.EXTENSION,
            "can_withdraw": ar.status in services.TRANSITIONS["withdraw"].sources,
            "next_step": next_step(ar),
            "treatment": selectors.opt_out_treatment(ar),
            "flags": selectors.review_flags(ar),
            "delta": delta(ar, look),
            "attachments": ar.attachments.all(),
            "comments": services.visible_comments(user, ar),
            "comment_form": bound.get("comment") or (f.CommentForm() if commentable else None),
        },
    )


def application_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    ar = services.get_request(user, pk)
    if ar.applicant_id != user.pk:
        return redirect("application-review", pk=ar.pk)
    return _overview(request, ar)


def _section_page(
    request: HttpRequest, ar: AccessRequest, key: str, editor: f.SectionEditor, *, refused: bool
) -> HttpResponse:
    position = questions.SECTION_KEYS.index(key)
    keys = questions.SECTION_KEYS
    editable = _editable(ar, key)
    if not editable:
        template = "access_requests/section_read.html"
    elif key in ("people", "project", "data") and ar.kind != AccessRequest.Kind.EXTENSION:
        template = f"access_requests/section_{key}.html"
    else:
        template = "access_requests/section.html"
    look = Lookups(_user(request), ar.answers)
    return render(
        request,
        template,
        {
            "ar": ar,
            "section": SECTIONS[key],
            "editor": editor,
            "form": editor.form,
            "summary": editor.summary(),
            "refused": refused,
            "previous": SECTIONS[keys[position - 1]] if position else None,
            "next": SECTIONS[keys[position + 1]] if position + 1 < len(keys) else None,
            "choices": editor.choices,
            "answers": None if editable else answer_sections(ar, look)[position],
            # A page sent back with errors keeps the revision it was loaded with.
            "revision": request.POST.get("revision", ar.revision) if refused else ar.revision,
            "extension": ar.kind == AccessRequest.Kind.EXTENSION,
        },
    )


def _stale(request: HttpRequest, ar: AccessRequest, key: str, error: Exception) -> HttpResponse:
    return render(
        request,
        "access_requests/stale.html",
        {"ar": ar, "section": SECTIONS[key], "message": str(error)},
        status=409,
    )


def _save(request: HttpRequest, ar: AccessRequest, key: str, editor: f.SectionEditor) -> Any:
    """Save one step: (request, remaining problems of the step), or None when the input
    was refused (the editor then shows why). InvalidTransition (stale, not editable)
    passes up to the caller."""
    if not editor.is_valid():
        return None
    try:
        saved, errors = services.save_answers(
            request=ar, by=_user(request), answers={key: editor.answers()},
            revision=_revision(request), sections=[key],
        )  # fmt: skip
    except ValidationError as error:
        editor.show_problems(_strip(error.errors, key) or {"__all__": [str(error)]})
        return None
    return saved, _strip(errors[key], key)


@require_http_methods(["GET", "POST"])
def application_section(request: HttpRequest, pk: int, section: str) -> HttpResponse:
    ar, key = _mine(request, pk), _section_key(section)
    choices = _choices(_user(request))
    if request.method == "GET":
        editor = f.SectionEditor(key, ar, choices)
        if ar.answers.get(key):
            editor.show_problems(_strip(questions.section_errors(ar.answers)[key], key))
        return _section_page(request, ar, key, editor, refused=False)
    editor = f.SectionEditor(key, ar, choices, request.POST)
    try:
        outcome = _save(request, ar, key, editor)
    except InvalidTransition as error:
        return _stale(request, ar, key, error)
    if outcome is None:
        return _section_page(request, ar, key, editor, refused=True)
    saved, problems = outcome
    letter = SECTIONS[key].letter
    then = request.POST.get("then", "next")
    if problems:
        messages.warning(
            request, f"Section {letter} is saved. It is not complete yet: see what is still needed."
        )
    else:
        messages.success(request, f"Section {letter} is saved and complete.")
    later = questions.SECTION_KEYS[questions.SECTION_KEYS.index(key) + 1 :]
    following = next((k for k in later if _editable(saved, k)), None)
    if then == "overview" or (then == "next" and not problems and following is None):
        return redirect("application", pk=saved.pk)
    if then == "next" and not problems:
        return redirect("application-section", pk=saved.pk, section=following)
    return redirect("application-section", pk=saved.pk, section=key)


@require_POST
def application_autosave(request: HttpRequest, pk: int, section: str) -> JsonResponse:
    """The section form, saved as it is typed (application.js): JSON in and out, the same
    service and the same revision rule as the page."""
    ar, key = _mine(request, pk), _section_key(section)
    editor = f.SectionEditor(key, ar, _choices(_user(request)), request.POST)
    try:
        outcome = _save(request, ar, key, editor)
    except InvalidTransition as error:
        return JsonResponse(
            {"saved": False, "stale": True, "message": f"Not saved: {error}."}, status=409
        )
    if outcome is None:
        problems = editor.summary()
        first = problems[0][1] if problems else "check your answers"
        return JsonResponse(
            {"saved": False, "message": f"Not saved: {first}", "errors": problems}, status=400
        )
    saved, problems = outcome
    now = f.SectionEditor(key, saved, editor.choices)
    now.show_problems(problems)
    return JsonResponse(
        {
            "saved": True,
            "revision": saved.revision,
            "saved_at": f"{timezone.localtime(saved.updated_at):%H:%M}",
            "problems": sum(len(v) for v in problems.values()),
            "todo": now.summary(),
        }
    )


@require_http_methods(["GET", "POST"])
def application_attachments(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    ar = _mine(request, pk)
    form = f.AttachmentForm(
        request.POST or None, request.FILES or None, max_bytes=settings.SDE_MAX_ATTACHMENT_BYTES
    )
    if request.method == "POST" and form.is_valid():
        try:
            attachment = services.add_attachment(
                request=ar, by=user, upload=form.cleaned_data["file"],
                kind=form.cleaned_data["kind"],
            )  # fmt: skip
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"{attachment.file_name} is attached.")
            return redirect("application-attachments", pk=ar.pk)
    return render(
        request,
        "access_requests/attachments.html",
        {
            "ar": ar,
            "form": form if ar.status in services.EDITABLE else None,
            "attachments": ar.attachments.select_related("redacted_by"),
        },
    )


def _attachment(request: HttpRequest, pk: int, attachment_pk: int) -> Attachment:
    ar = services.get_request(_user(request), pk)
    attachment = ar.attachments.filter(pk=attachment_pk).first()
    if attachment is None:
        raise NotFound("no such attachment")
    return attachment


def attachment_download(request: HttpRequest, pk: int, attachment_pk: int) -> FileResponse:
    attachment = _attachment(request, pk, attachment_pk)
    handle = services.open_attachment(attachment=attachment, by=_user(request))
    return FileResponse(
        handle, as_attachment=True, filename=attachment.file_name,
        content_type=attachment.content_type,
    )  # fmt: skip


@require_POST
def attachment_redact(request: HttpRequest, pk: int, attachment_pk: int) -> HttpResponse:
    attachment = _attachment(request, pk, attachment_pk)
    form = f.RedactForm(request.POST, request.FILES, prefix=f"redact-{attachment.pk}")
    if form.is_valid():
        try:
            services.redact_attachment(
                attachment=attachment, by=_user(request), reason=form.cleaned_data["reason"],
                replacement=form.cleaned_data["replacement"],
            )  # fmt: skip
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"{attachment.file_name} is redacted.")
            return redirect("application-review", pk=pk)
    if not policy.user_reviews_access_requests(_user(request)):
        raise PermissionDenied("only IG officers redact attachments")
    return _review_page(request, attachment.request, redact=(attachment.pk, form))


@require_POST
def application_comment(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    ar = services.get_request(user, pk)
    applicant = ar.applicant_id == user.pk
    form = f.CommentForm(request.POST) if applicant else f.NoteForm(request.POST)
    if form.is_valid():
        try:
            comment = services.add_comment(
                request=ar, by=user, body=form.cleaned_data["body"],
                private=bool(form.cleaned_data.get("private")),
            )  # fmt: skip
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(
                request, "Private note added." if comment.private else "Comment added."
            )
            return redirect("application" if applicant else "application-review", pk=ar.pk)
    return _overview(request, ar, comment=form) if applicant else _review_page(
        request, ar, comment=form
    )  # fmt: skip


@require_http_methods(["GET", "POST"])
def application_submit(request: HttpRequest, pk: int) -> HttpResponse:
    ar = _mine(request, pk)
    if request.method == "POST":
        try:
            submitted = services.submit(request=ar, by=_user(request))
        except ValidationError:
            pass  # the page below lists what is missing
        else:
            messages.success(
                request,
                "Your application is submitted. IG officers review it; you will hear by email.",
            )
            return redirect("application", pk=submitted.pk)
    errors = services.submission_errors(ar, today=timezone.localdate())
    groups: dict[str, list[dict[str, str]]] = {}
    for where, problems in errors.items():
        section, _, name = where.partition(".")
        for problem in problems:
            groups.setdefault(section, []).append(
                {"anchor": f.anchor(section, name), "message": f.named(section, name, problem)}
            )
    grouped = [
        {"section": SECTIONS[key], "problems": groups[key]} for key in SECTIONS if key in groups
    ]
    return render(
        request,
        "access_requests/submit.html",
        {
            "ar": ar,
            "grouped": grouped,
            "general": groups.get("request", []),
            "can_submit": ar.status in services.TRANSITIONS["submit"].sources,
            "tried": request.method == "POST",
        },
        status=400 if request.method == "POST" else 200,
    )


@require_http_methods(["GET", "POST"])
def application_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    ar = _mine(request, pk)
    if request.method == "POST":
        withdrawn = services.withdraw(request=ar, by=_user(request))
        messages.success(request, "Your application is withdrawn.")
        return redirect("application", pk=withdrawn.pk)
    return render(
        request,
        "access_requests/withdraw.html",
        {"ar": ar, "can_withdraw": ar.status in services.TRANSITIONS["withdraw"].sources},
    )


@require_POST
def application_change(request: HttpRequest, project_id: int) -> HttpResponse:
    """Start an amendment, extension or renewal of a project (the project page's buttons)."""
    user = _user(request)
    project = policy.visible_projects_for(user).filter(pk=project_id).first()
    if project is None:
        raise NotFound("no such project")
    try:
        created = services.start_change(project=project, kind=request.POST.get("kind", ""), by=user)
    except ValidationError as error:
        messages.error(request, f"Not started: {error}.")
        return redirect(f"/projects/{project.pk}/")
    messages.success(request, f"{created.get_kind_display()} started. Change what needs to change.")
    return redirect("application", pk=created.pk)


# --- IG review -------------------------------------------------------------------------
def review_queue(request: HttpRequest) -> HttpResponse:
    entries = selectors.review_queue(_user(request))
    return render(
        request,
        "access_requests/queue.html",
        {
            "entries": entries,
            "quorum": settings.SDE_APPROVAL_QUORUM,
            "sla": settings.SDE_REVIEW_SLA_DAYS,
            "excludes_organisations": settings.SDE_REVIEW_EXCLUDES_APPLICANT_ORGANISATIONS,
        },
    )


def _independent_reviewers(ar: AccessRequest) -> list[tuple[int, str]]:
    officers = users_with_role(Role.IG_OFFICER).order_by("last_name", "first_name")
    return [(u.pk, u.display_name) for u in officers if services.conflict_of(u, ar) is None]


def _review_forms(user: User, ar: AccessRequest, conflict: str | None, **bound: Any) -> Any:
    reviewer = policy.user_reviews_access_requests(user) and conflict is None
    guardian = policy.user_signs_off_public_interest(user) and conflict is None
    approvals = services.approvals(ar)
    in_review = ar.status == S.IN_REVIEW
    forms: dict[str, Any] = {}
    if reviewer and ar.status == S.SUBMITTED:
        forms["start_review"] = True
    if reviewer and ar.status in (S.SUBMITTED, S.IN_REVIEW):
        forms["assign"] = bound.get("assign") or f.AssignForm(
            reviewers=_independent_reviewers(ar), prefix="assign"
        )
    if reviewer and in_review and not any(r.reviewer_id == user.pk for r in approvals):
        first = approvals[0] if approvals else None
        requested = ar.answers["meta"].get("end_date")
        forms["approve"] = bound.get("approve") or f.ApproveForm(
            prefix="approve",
            initial={
                "end_date": first.end_date if first else requested,
                "conditions": first.conditions if first else "",
            },
        )
    if reviewer and in_review:
        forms["return"] = bound.get("return") or f.ReasonForm(prefix="return")
        forms["reject"] = bound.get("reject") or f.ReasonForm(prefix="reject")
    needs = questions.needs_caldicott(ar.answers) and not services.signed_off(ar)
    if guardian and in_review and needs:
        forms["sign_off"] = bound.get("sign_off") or f.SignOffForm(prefix="sign_off")
    if reviewer and ar.status in services.COMMENTABLE:
        forms["comment"] = bound.get("comment") or f.NoteForm()
    return forms


def _review_page(request: HttpRequest, ar: AccessRequest, **bound: Any) -> HttpResponse:
    user = _user(request)
    conflict = services.conflict_of(user, ar)
    look = Lookups(user, ar.answers)
    redact_pk, redact_bound = bound.pop("redact", (None, None))
    can_redact = policy.user_reviews_access_requests(user) and conflict is None
    attachments = [
        {
            "attachment": a,
            "form": (redact_bound if a.pk == redact_pk else f.RedactForm(prefix=f"redact-{a.pk}"))
            if can_redact and a.redacted_at is None
            else None,
        }
        for a in ar.attachments.select_related("uploaded_by", "redacted_by")
    ]
    forms = _review_forms(user, ar, conflict, **bound)
    return render(
        request,
        "access_requests/review.html",
        {
            "ar": ar,
            "conflict": conflict,
            "flags": selectors.review_flags(ar),
            "treatment": selectors.opt_out_treatment(ar),
            "delta": delta(ar, look),
            "sections": answer_sections(ar, look),
            "attachments": attachments,
            "comments": services.visible_comments(user, ar),
            "reviews": ar.reviews.filter(review_round=ar.review_round).select_related("reviewer"),
            "approvals": services.approvals(ar),
            "missing": services.missing_for_approval(ar) if ar.status == S.IN_REVIEW else [],
            "needs_caldicott": questions.needs_caldicott(ar.answers),
            "forms": forms,
            "can_decide": any(name != "comment" for name in forms),
            "redactable": can_redact,
            "quorum": settings.SDE_APPROVAL_QUORUM,
        },
        status=400 if bound or redact_bound else 200,
    )


def application_review(request: HttpRequest, pk: int) -> HttpResponse:
    return _review_page(request, _for_review(request, pk))


def _decided(result: AccessRequest, action: str) -> str:
    if action == "approve":
        if result.status == S.APPROVED:
            return f"Approved. Project {result.project_id} is set up and access runs to " \
                   f"{result.approved_end_date:%-d %B %Y}."  # fmt: skip
        return "Your approval is recorded. Still needed: " + " and ".join(
            services.missing_for_approval(result)
        ) + "."  # fmt: skip
    return {
        "start-review": "Review started; it is assigned to you.",
        "assign": f"Assigned to {result.assignee.display_name if result.assignee else '—'}.",
        "return": "Returned to the applicant for changes.",
        "reject": "Rejected. The applicant is told why.",
        "sign-off": "Your sign-off is recorded.",
    }[action]


ACTIONS = ("start-review", "assign", "approve", "return", "reject", "sign-off")


@require_POST
def application_decide(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """One review action (the page shows only the ones the viewer may take; the services
    refuse the rest: 403 for a reviewer who is not independent, 409 out of turn)."""
    ar, user = _for_review(request, pk), _user(request)
    # The permission before the form, so that a refusal never depends on what was sent.
    if action == "sign-off":
        policy.check_sign_off_public_interest(user, ar, conflict=services.conflict_of(user, ar))
    elif action in ACTIONS:
        services.check_reviewer(user, ar)
    if action == "start-review":
        result = services.start_review(request=ar, by=user)
        messages.success(request, _decided(result, action))
        return redirect("application-review", pk=ar.pk)
    key = action.replace("-", "_")
    form: Any
    if action == "assign":
        form = f.AssignForm(request.POST, reviewers=_independent_reviewers(ar), prefix="assign")
    else:
        kinds = {"approve": f.ApproveForm, "return": f.ReasonForm, "reject": f.ReasonForm,
                 "sign-off": f.SignOffForm}  # fmt: skip
        if action not in kinds:
            raise NotFound("no such action")
        form = kinds[action](request.POST, prefix=key)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if action == "assign":
                assignee = User.objects.get(pk=data["assignee"])
                result = services.assign(request=ar, assignee=assignee, by=user)
            elif action == "approve":
                result = services.approve(
                    request=ar, by=user, end_date=data["end_date"], conditions=data["conditions"]
                )
            elif action == "return":
                result = services.return_request(request=ar, by=user, reason=data["reason"])
            elif action == "reject":
                result = services.reject(request=ar, by=user, reason=data["reason"])
            else:
                result = services.sign_off(request=ar, by=user, note=data["note"])
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, _decided(result, action))
            return redirect("application-review", pk=ar.pk)
    return _review_page(request, ar, **{key: form})
