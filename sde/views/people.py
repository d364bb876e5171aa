"""People: accounts, roles, accreditation, suspension (Administrators and IG)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from sde import policy
from sde.exceptions import ValidationError
from sde.identity import authentication, services
from sde.identity.models import User
from sde.identity.roles import Role
from sde.identity.selectors import current_roles
from sde.views.forms import AccountForm, AccreditationForm, GrantRoleForm, ReasonForm, apply_errors


def people_list(request: HttpRequest) -> HttpResponse:
    people = policy.visible_people_for(request.user).prefetch_related("role_assignments")
    query = request.GET.get("q", "").strip()
    if query:
        people = people.filter(
            Q(username__icontains=query)
            | Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
            | Q(email__icontains=query)
        )
    if request.GET.get("accreditation") == "expiring":
        today = timezone.localdate()
        people = people.filter(
            accreditations__expires_on__gte=today,
            accreditations__expires_on__lte=today + timedelta(days=30),
        ).distinct()
    page = Paginator(people.order_by("username"), 50).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "sde/people_list.html",
        {
            "page_obj": page,
            "q": query,
            "querystring": params.urlencode(),
            "can_create": policy.user_can_manage_accounts(request.user),
            "now": timezone.now(),
        },
    )


@require_http_methods(["GET", "POST"])
def person_create(request: HttpRequest) -> HttpResponse:
    policy.check_manage_accounts(request.user)
    form = AccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            person = services.create_account(by=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"Account {person.username} created.")
            return redirect("person-detail", pk=person.pk)
    return render(request, "sde/person_create.html", {"form": form})


def _person(request: HttpRequest, pk: int) -> User:
    return get_object_or_404(policy.visible_people_for(request.user), pk=pk)


def person_detail(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    user = request.user
    held = current_roles(person)
    return render(
        request,
        "sde/person_detail.html",
        {
            "person": person,
            "roles": person.role_assignments.select_related("granted_by", "revoked_by").all(),
            "current_roles": sorted(held, key=lambda r: r.label),
            "accreditations": person.accreditations.select_related("recorded_by").all(),
            "memberships": person.memberships.select_related("organisation").all(),
            "today": timezone.localdate(),
            "locked": bool(person.locked_until and person.locked_until > timezone.now()),
            "grant_form": GrantRoleForm(initial={})
            if policy.user_can_grant_role(user, person)
            else None,
            "grantable": [r for r in Role if r not in held],
            "accreditation_form": AccreditationForm()
            if policy.user_can_record_accreditation(user, person)
            else None,
            "can_suspend": policy.user_can_suspend_person(user, person),
            "can_manage": policy.user_can_manage_accounts(user) and person.pk != user.pk,
            "suspend_form": ReasonForm(auto_id="id_suspend_%s"),  # beside the grant form's reason
        },
    )


@require_POST
def person_grant_role(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    policy.check_grant_role(request.user, person)  # before the form
    form = GrantRoleForm(request.POST)
    if form.is_valid():
        role = Role(form.cleaned_data["role"])
        services.grant_role(
            user=person,
            role=role,
            by=request.user,  # type: ignore[arg-type]
            reason=form.cleaned_data["reason"],
        )
        messages.success(request, f"{role.label} granted to {person.display_name}.")
    else:
        messages.error(request, "Choose a role to grant.")
    return redirect("person-detail", pk=pk)


@require_POST
def person_remove_role(request: HttpRequest, pk: int, role: str) -> HttpResponse:
    person = _person(request, pk)
    if role not in Role.values:
        raise Http404("no such role")
    services.remove_role(user=person, role=Role(role), by=request.user)  # type: ignore[arg-type]
    messages.success(request, f"{Role(role).label} removed from {person.display_name}.")
    return redirect("person-detail", pk=pk)


@require_POST
def person_record_accreditation(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    policy.check_record_accreditation(request.user, person)
    form = AccreditationForm(request.POST)
    if form.is_valid():
        try:
            services.record_accreditation(
                user=person,
                by=request.user,  # type: ignore[arg-type]
                **form.cleaned_data,
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, "Accreditation recorded.")
            return redirect("person-detail", pk=pk)
    return render(
        request, "sde/accreditation_form.html", {"person": person, "form": form}, status=400
    )


@require_POST
def person_suspend(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    policy.check_suspend_person(request.user, person)  # before the form
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason for suspending the account.")
        return redirect("person-detail", pk=pk)
    services.suspend_account(
        user=person,
        by=request.user,  # type: ignore[arg-type]
        reason=form.cleaned_data["reason"],
    )
    messages.success(request, f"{person.display_name}'s account is suspended.")
    return redirect("person-detail", pk=pk)


@require_POST
def person_reinstate(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    services.reinstate_account(user=person, by=request.user)  # type: ignore[arg-type]
    messages.success(request, f"{person.display_name}'s account is reinstated.")
    return redirect("person-detail", pk=pk)


@require_POST
def person_unlock(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    services.unlock_account(user=person, by=request.user)  # type: ignore[arg-type]
    messages.success(request, f"{person.display_name}'s account is unlocked.")
    return redirect("person-detail", pk=pk)


@require_POST
def person_reset_mfa(request: HttpRequest, pk: int) -> HttpResponse:
    person = _person(request, pk)
    authentication.reset_mfa(user=person, by=request.user)  # type: ignore[arg-type]
    messages.success(
        request, f"{person.display_name} will set up a new authenticator at their next sign-in."
    )
    return redirect("person-detail", pk=pk)
