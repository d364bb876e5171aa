"""Organisations and memberships."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from sde import policy
from sde.exceptions import ValidationError
from sde.identity import services
from sde.identity.models import OrganisationMembership
from sde.views.forms import MembershipForm, OrganisationForm, apply_errors


@require_http_methods(["GET", "POST"])
def organisation_list(request: HttpRequest) -> HttpResponse:
    can_manage = policy.user_can_manage_organisations(request.user)
    form = OrganisationForm(request.POST or None) if can_manage else None
    if request.method == "POST":
        policy.check_manage_organisations(request.user)
        assert form is not None
        if form.is_valid():
            try:
                organisation = services.create_organisation(by=request.user, **form.cleaned_data)  # type: ignore[arg-type]
            except ValidationError as error:
                apply_errors(form, error)
            else:
                messages.success(request, f"{organisation.name} added.")
                return redirect("organisation-detail", pk=organisation.pk)
    organisations = policy.visible_organisations_for(request.user).select_related("parent")
    return render(
        request,
        "sde/organisation_list.html",
        {"organisations": organisations, "form": form},
        status=400 if form and form.errors else 200,
    )


def organisation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    organisation = get_object_or_404(policy.visible_organisations_for(request.user), pk=pk)
    can_manage = policy.user_can_manage_organisations(request.user)
    return render(
        request,
        "sde/organisation_detail.html",
        {
            "organisation": organisation,
            "memberships": organisation.memberships.select_related("user").order_by(
                "user__username"
            ),
            "children": organisation.children.all(),
            "form": MembershipForm() if can_manage else None,
            "can_manage": can_manage,
        },
    )


@require_POST
def organisation_add_member(request: HttpRequest, pk: int) -> HttpResponse:
    organisation = get_object_or_404(policy.visible_organisations_for(request.user), pk=pk)
    policy.check_manage_organisations(request.user)
    form = MembershipForm(request.POST)
    if form.is_valid():
        person = (
            policy.visible_people_for(request.user)
            .filter(username__iexact=form.cleaned_data["username"])
            .first()
        )
        if person is None:
            messages.error(request, "No one has that username.")
        else:
            services.add_membership(
                user=person,
                organisation=organisation,
                by=request.user,  # type: ignore[arg-type]
                job_title=form.cleaned_data["job_title"],
            )
            messages.success(request, f"{person.display_name} added to {organisation.name}.")
    return redirect("organisation-detail", pk=pk)


@require_POST
def organisation_remove_member(request: HttpRequest, pk: int, membership_pk: int) -> HttpResponse:
    organisation = get_object_or_404(policy.visible_organisations_for(request.user), pk=pk)
    membership = get_object_or_404(
        OrganisationMembership, pk=membership_pk, organisation=organisation
    )
    services.remove_membership(membership=membership, by=request.user)  # type: ignore[arg-type]
    messages.success(request, "Membership removed.")
    return redirect("organisation-detail", pk=pk)
