"""Project pages: the list and one project's page for its members and IG, and IG's
actions on it (suspend, resume, revoke, close, add and remove members, renewed dates).

A project a person may not see answers 404 on every URL and method (``project_page``
looks it up before Django's method check), exactly as if it did not exist. Each action
is a POST that calls one service; a member who posts one gets 403 from the policy and
nothing changes. A service's refusal (a lapsed date, an IG officer as a data user) is
shown on the page in the service's words.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils import timezone

from sde import policy
from sde.data.extracts import removal_summary
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.identity.models import User
from sde.projects import selectors, services
from sde.projects.models import Project
from sde.views.forms import apply_errors
from sde.views.project_forms import (
    AddMemberForm,
    CloseForm,
    ComplianceDatesForm,
    RevokeForm,
    SuspendForm,
)

S = Project.Status
LIVE = (S.ACTIVE, S.SUSPENDED)
ProjectView = Callable[..., HttpResponseBase]
# The IG forms on the page, by name (the name is also the form's prefix).
FORMS: dict[str, Callable[..., forms.Form]] = {
    "suspend": SuspendForm,
    "revoke": RevokeForm,
    "close": CloseForm,
    "member": AddMemberForm,
}
# The kinds of change a member can apply for, as the application pages take them.
CHANGE_KINDS = (
    ("amendment", "Request an amendment", "Change the datasets, fields, cohort, team or purpose."),
    ("extension", "Request an extension", "A later end date, nothing else."),
    ("renewal", "Request a renewal", "Continue the project after review of the whole application."),
)  # fmt: skip


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def project_page(*methods: str) -> Callable[[ProjectView], ProjectView]:
    """Look the project up for this person first (404 if they may not see it), then
    allow only ``methods``; the view gets the project instead of its number."""

    def decorate(view: ProjectView) -> ProjectView:
        @wraps(view)
        def wrapper(request: HttpRequest, pk: int, **kwargs: Any) -> HttpResponseBase:
            project = selectors.project_for(request.user, pk)
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            return view(request, project, **kwargs)

        return wrapper

    return decorate


def _sentence(error: Exception) -> str:
    text = str(error)
    return f"{text[:1].upper()}{text[1:]}."


def _manages(user: User, project: Project) -> bool:
    try:
        policy.check_manage_project(user, project)
    except (NotFound, PermissionDenied):
        return False
    return True


# --- The list ---------------------------------------------------------------------------
def project_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    oversees = policy.user_oversees_projects(user)
    status = request.GET.get("status", "")
    if not oversees or status not in S.values:
        status = ""
    page = Paginator(selectors.projects_for(user, status=status), 50).get_page(
        request.GET.get("page")
    )
    today = timezone.localdate()

    def refusal(project: Project) -> str | None:  # IG officers never use data: not asked
        return None if oversees else policy.project_data_refusal(user, project, today=today)

    rows = [
        {
            "project": project,
            "status_text": selectors.STATUS_TEXT[S(project.status)],
            "refusal": refusal(project),
        }
        for project in page
    ]
    counts: dict[str, int] = {}
    if oversees:
        counts = dict(
            selectors.projects_for(user).order_by().values_list("status").annotate(n=Count("pk"))
        )
    return render(
        request,
        "projects/list.html",
        {
            "rows": rows,
            "page_obj": page,
            "querystring": f"status={status}" if status else "",
            "oversees": oversees,
            "status": status,
            "filters": [
                {
                    "value": value,
                    "label": selectors.STATUS_TEXT[S(value)],
                    "count": counts.get(value, 0),
                }
                for value in S.values
            ],
            "total": sum(counts.values()),
        },
    )


# --- One project ------------------------------------------------------------------------
def _member_rows(project: Project, user: User, manages: bool) -> list[dict[str, Any]]:
    return [
        {
            "membership": m,
            # A colleague's pause is shown, its reason (their training) only to them and IG.
            "pause_reason": m.suspension_reason if manages or m.user_id == user.pk else "",
        }
        for m in selectors.current_members(project)
    ]


def _applications(project: Project, user: User) -> dict[str, Any]:
    """The project's application and change requests that ``user`` may open."""
    # The reverse relation from access_requests: the core imports no workflow app.
    requests: QuerySet[Any] = project.access_requests.all()  # type: ignore[attr-defined]
    visible = list(policy.visible_access_requests(user, requests.order_by("-created_at", "-pk")))
    return {
        "approved_id": project.access_request_id,
        "approved_visible": any(r.pk == project.access_request_id for r in visible),
        "changes": [r for r in visible if r.kind != "new"],
    }


def _context(
    request: HttpRequest, project: Project, bound: dict[str, forms.Form] | None = None
) -> dict[str, Any]:
    user = _user(request)
    today = timezone.localdate()
    manages = _manages(user, project)
    member = selectors.current_members(project).filter(user=user).first()
    real = selectors.extract_status(project, dummy=False)
    context: dict[str, Any] = {
        "project": project,
        "status_text": selectors.STATUS_TEXT[S(project.status)],
        "status_meaning": selectors.STATUS_MEANING[S(project.status)],
        "dates": selectors.project_dates(project, today=today),
        "soon_days": selectors.SOON_DAYS,
        "scope": selectors.approved_scope(project),
        "members": _member_rows(project, user, manages),
        "membership": member,
        "refusal": policy.project_data_refusal(user, project, today=today),
        "extracts": [real, selectors.extract_status(project, dummy=True)],
        "applications": _applications(project, user),
        # Changes start from the approved application (the application pages check the rest).
        "can_request_change": member is not None
        and project.status in LIVE
        and project.access_request_id is not None,
        "change_kinds": CHANGE_KINDS,
        "manages": manages,
    }
    if manages:
        bound = bound or {}
        allowed = services.TRANSITIONS[S(project.status)]
        context |= {
            "forms": {name: bound.get(name) or form(prefix=name) for name, form in FORMS.items()}
            | {"dates": bound.get("dates") or ComplianceDatesForm(project=project, prefix="dates")},
            "can": {
                "suspend": S.SUSPENDED in allowed,
                "resume": S.ACTIVE in allowed,
                "revoke": S.REVOKED in allowed,
                "close": S.CLOSED in allowed,
                "add_member": project.status not in services.ENDED,
                "remove_member": project.status != S.CLOSED,
                "record_dates": project.status in LIVE,
            },
            "open_form": next(iter(bound), ""),
        }
        if real.extract is not None and policy.user_can_manage_optouts(user):
            context["removal"] = removal_summary(real.extract, by=user)
    return context


def _render(
    request: HttpRequest, project: Project, *, status: int = 200, **bound: forms.Form
) -> HttpResponse:
    return render(request, "projects/detail.html", _context(request, project, bound), status=status)


@project_page("GET", "HEAD")
def project_detail(request: HttpRequest, project: Project) -> HttpResponse:
    return _render(request, project)


# --- IG actions -------------------------------------------------------------------------
def _manager(request: HttpRequest, project: Project) -> User:
    """The IG officer acting; anyone else who may see the project gets 403 here."""
    user = _user(request)
    policy.check_manage_project(user, project)
    return user


def _submit(
    request: HttpRequest,
    project: Project,
    name: str,
    form: forms.Form,
    act: Callable[[dict[str, Any]], str],
) -> HttpResponse:
    """Validate ``form``, call the service through ``act`` (which returns the success
    message) and go back to the project. Bad input or a refusal: the page again with the
    form's errors in the service's words; a state that no longer allows the action: back
    to the project (which shows its state) with the service's message."""
    status = 400
    if form.is_valid():
        try:
            done = act(form.cleaned_data)
        except ValidationError as error:
            apply_errors(form, error)
        except PermissionDenied as error:  # e.g. an IG officer as a data-using member
            form.add_error(None, _sentence(error))
            status = 403
        except InvalidTransition as error:  # the state changed: the page shows the new one
            messages.error(request, _sentence(error))
            return redirect("project-detail", pk=project.pk)
        else:
            messages.success(request, done)
            return redirect("project-detail", pk=project.pk)
    return _render(request, project, status=status, **{name: form})


@project_page("POST")
def project_suspend(request: HttpRequest, project: Project) -> HttpResponse:
    by = _manager(request, project)

    def act(data: dict[str, Any]) -> str:
        services.suspend_project(project=project, reason=data["reason"], by=by)
        return "The project is suspended: nobody can use its data until it is resumed."

    return _submit(request, project, "suspend", SuspendForm(request.POST, prefix="suspend"), act)


@project_page("POST")
def project_resume(request: HttpRequest, project: Project) -> HttpResponse:
    by = _manager(request, project)
    try:
        services.resume_project(project=project, by=by)
    except InvalidTransition as error:
        messages.error(request, f"The project was not resumed: {error}.")
    else:
        messages.success(request, "The project is active again: members can use its data.")
    return redirect("project-detail", pk=project.pk)


@project_page("POST")
def project_revoke(request: HttpRequest, project: Project) -> HttpResponse:
    by = _manager(request, project)

    def act(data: dict[str, Any]) -> str:
        services.revoke_project(project=project, reason=data["reason"], by=by)
        return (
            "Access to the project's data is revoked for good. Close the project once the data "
            "is destroyed."
        )

    return _submit(request, project, "revoke", RevokeForm(request.POST, prefix="revoke"), act)


@project_page("POST")
def project_close(request: HttpRequest, project: Project) -> HttpResponse:
    by = _manager(request, project)

    def act(data: dict[str, Any]) -> str:
        services.close_project(project=project, attestation=data["attestation"], by=by)
        return "The project is closed: its extracts are deleted and members no longer see it."

    return _submit(request, project, "close", CloseForm(request.POST, prefix="close"), act)


@project_page("POST")
def member_add(request: HttpRequest, project: Project) -> HttpResponse:
    by = _manager(request, project)
    form = AddMemberForm(request.POST, prefix="member")

    def act(data: dict[str, Any]) -> str:
        person = policy.visible_people_for(by).filter(username=data["username"].strip()).first()
        if person is None:
            raise ValidationError("no such person", {"username": ["No account has this username."]})
        member = services.MemberSpec(person, data["role"], data["accesses_data"])
        services.add_member(project=project, member=member, by=by)
        return f"{person.display_name} is now a member of the project."

    return _submit(request, project, "member", form, act)


@project_page("POST")
def member_remove(request: HttpRequest, project: Project, user_id: int) -> HttpResponse:
    by = _manager(request, project)
    membership = selectors.current_members(project).filter(user_id=user_id).first()
    if membership is None:
        messages.error(request, "That person is not a current member of the project.")
        return redirect("project-detail", pk=project.pk)
    try:
        services.remove_member(project=project, user=membership.user, by=by)
    except (InvalidTransition, ValidationError) as error:
        messages.error(request, f"{membership.user.display_name} was not removed: {error}.")
    else:
        messages.success(
            request, f"{membership.user.display_name} is no longer a member: their access ended."
        )
    return redirect("project-detail", pk=project.pk)


@project_page("POST")
def compliance_dates(request: HttpRequest, project: Project) -> HttpResponse:
    by = _manager(request, project)
    form = ComplianceDatesForm(request.POST, project=project, prefix="dates")

    def act(data: dict[str, Any]) -> str:
        changed = form.changed_dates()
        updated = services.update_compliance_dates(project=project, by=by, **changed)
        recorded = "; ".join(
            f"{selectors.DATE_LABELS[name]} {value.day} {value:%B %Y}" if value
            else f"{selectors.DATE_LABELS[name]}: no date"
            for name, value in changed.items()
        )  # fmt: skip
        done = f"Dates recorded. {recorded}."
        if updated.status == S.SUSPENDED:
            done += " If the project was suspended because a date lapsed, resume it now."
        return done

    return _submit(request, project, "dates", form, act)
