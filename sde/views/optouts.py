"""IG's opt-out register: the overview, manual entries, NDOP imports, and two-person
changes to the platform policy and project exemptions.

Every URL here answers 404 to anyone but an IG officer, whatever the method, so nobody
else learns which of them exist or what they accept (``ig_only`` asks the policy before
Django's 405). The services in ``sde.data.register`` check again and do the writing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render

from sde import policy, uploads
from sde.data import optout_changes, register
from sde.data.models import OptOutChange, OptOutKind, OptOutSnapshot
from sde.data.source_files import SourceFormatError
from sde.exceptions import NotFound, PermissionDenied, ValidationError
from sde.identity.models import User
from sde.views import optout_display as display
from sde.views.forms import apply_errors
from sde.views.optout_forms import (
    DecisionForm,
    ExemptionForm,
    ManualOptOutForm,
    NdopUploadForm,
    PlatformPolicyForm,
)

View = Callable[..., HttpResponse]
REGISTER = "optout-register"


def ig_only(*methods: str) -> Callable[[View], View]:
    """Ask the policy first (404 for anyone but IG), then allow only ``methods``."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            policy.check_manage_optouts(request.user)
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _allowed(check: Callable[[Any, Any], None], user: User, change: OptOutChange) -> bool:
    """Whether the policy's ``check`` lets ``user`` act on ``change`` (for buttons)."""
    try:
        check(user, change)
    except (NotFound, PermissionDenied):
        return False
    return True


def _prefix(change: OptOutChange) -> str:
    return f"change-{change.pk}"


def _pending_row(change: OptOutChange, user: User, table: Any) -> dict[str, Any]:
    return {
        "change": change,
        "summary": display.change_summary(change, table),
        "can_decide": policy.user_can_decide_optout_change(user, change),
        "can_withdraw": _allowed(policy.check_withdraw_optout_change, user, change),
        "form": DecisionForm(prefix=_prefix(change)),
    }


# --- The overview ----------------------------------------------------------------------
@ig_only("GET")
def register_page(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    overview = register.register_overview(by=user)
    table = overview.table
    return render(
        request,
        "data/optouts.html",
        {
            "current": display.snapshot_summary(overview.snapshot) if overview.snapshot else None,
            "snapshots": [display.snapshot_summary(s) for s in overview.snapshots],
            "table": table,
            "table_rows": display.table_rows(table),
            "policy_cells": display.policy_cells(table),
            "pending": [_pending_row(c, user, table) for c in overview.pending],
            "decided": [
                {"change": c, "summary": display.change_summary(c, table)} for c in overview.decided
            ],
            "extracts": [display.extract_row(e, by=user) for e in overview.extracts],
        },
    )


# --- Manual entries --------------------------------------------------------------------
def _manual(request: HttpRequest, *, withdraw: bool) -> HttpResponse:
    form = ManualOptOutForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        service = register.withdraw_manual_optout if withdraw else register.add_manual_optout
        try:
            snapshot = service(by=_user(request), **form.cleaned_data)
        except ValidationError as error:
            apply_errors(form, error)
        else:
            kind = OptOutKind(form.cleaned_data["kind"]).label
            done = "withdrawn" if withdraw else "recorded"
            messages.success(
                request,
                f"Manual entry ({kind}) {done}. The register is now snapshot {snapshot.number}.",
            )
            return redirect(REGISTER)
    return render(request, "data/optout_manual.html", {"form": form, "withdraw": withdraw})


@ig_only("GET", "POST")
def manual_add(request: HttpRequest) -> HttpResponse:
    return _manual(request, withdraw=False)


@ig_only("GET", "POST")
def manual_withdraw(request: HttpRequest) -> HttpResponse:
    return _manual(request, withdraw=True)


# --- NDOP file -------------------------------------------------------------------------
def _still(snapshot: OptOutSnapshot) -> str:
    return f"the register is still snapshot {snapshot.number}"


def _imported(snapshot: OptOutSnapshot) -> str:
    message = (
        f"National data opt-out file imported: the register is now snapshot {snapshot.number}."
    )
    if snapshot.invalid_count:
        message += f" {snapshot.invalid_count:,} lines were not valid NHS numbers (skipped)."
    return message


@ig_only("GET", "POST")
def ndop_import(request: HttpRequest) -> HttpResponse:
    form = NdopUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["ndop_file"]
        before = register.current_snapshot()
        try:
            snapshot = uploads.import_ndop_upload(
                upload, label=form.cleaned_data["label"], by=_user(request)
            )
        except SourceFormatError as error:
            form.add_error(
                "ndop_file", f"This is not a national data opt-out file: {error.message}."
            )
        except register.OptOutError as error:
            message = str(error)
            form.add_error("ndop_file", f"{message[:1].upper()}{message[1:]}.")
        except ValidationError as error:
            apply_errors(form, error)
        else:
            if before is not None and snapshot.pk == before.pk:
                messages.info(request, f"The file changes nothing: {_still(snapshot)}.")
            else:
                messages.success(request, _imported(snapshot))
            return redirect(REGISTER)
    return render(request, "data/optout_ndop.html", {"form": form})


# --- Proposals -------------------------------------------------------------------------
@ig_only("GET", "POST")
def policy_propose(request: HttpRequest) -> HttpResponse:
    table = optout_changes.current_decision_table()
    form = PlatformPolicyForm(request.POST or None, table=table)
    if request.method == "POST" and form.is_valid():
        try:
            optout_changes.propose_platform_policy(
                cells=form.proposed_cells(), reason=form.cleaned_data["reason"], by=_user(request)
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(
                request, "Platform policy change proposed. A second IG officer must approve it."
            )
            return redirect(REGISTER)
    return render(request, "data/optout_policy.html", {"form": form, "table": table})


@ig_only("GET", "POST")
def exemption_propose(request: HttpRequest) -> HttpResponse:
    form = ExemptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            change = optout_changes.propose_exemption(by=_user(request), **form.exemption())
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(
                request,
                f"Exemption for project {change.project_id} proposed. A second IG officer "
                "must approve it.",
            )
            return redirect(REGISTER)
    return render(request, "data/optout_exemption.html", {"form": form})


# --- Deciding and withdrawing ------------------------------------------------------------
def _change(request: HttpRequest, pk: int) -> OptOutChange:
    return get_object_or_404(optout_changes.visible_changes_for(_user(request)), pk=pk)


def _change_page(request: HttpRequest, change: OptOutChange, form: DecisionForm) -> HttpResponse:
    user = _user(request)
    table = optout_changes.current_decision_table()
    return render(
        request,
        "data/optout_change.html",
        {
            **_pending_row(change, user, table),
            "form": form,
            "pending": change.status == OptOutChange.Status.PROPOSED,
        },
    )


@ig_only("GET")
def change_detail(request: HttpRequest, pk: int) -> HttpResponse:
    change = _change(request, pk)
    return _change_page(request, change, DecisionForm(prefix=_prefix(change)))


def _what(change: OptOutChange) -> str:
    if change.kind == OptOutChange.Kind.EXEMPTION:
        return f"The exemption for project {change.project_id}"
    return "The platform policy change"


@ig_only("POST")
def change_decide(request: HttpRequest, pk: int) -> HttpResponse:
    change = _change(request, pk)
    policy.check_decide_optout_change(_user(request), change)  # before the form
    form = DecisionForm(request.POST, prefix=_prefix(change))
    decision = request.POST.get("decision")
    if form.is_valid() and decision not in ("approve", "reject"):
        form.add_error(None, "Choose Approve or Reject.")
    elif form.is_valid():
        try:
            decided = optout_changes.decide_change(
                change=change,
                approve=decision == "approve",
                reason=form.cleaned_data["decision_reason"],
                by=_user(request),
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            outcome = "approved" if decided.status == OptOutChange.Status.APPROVED else "rejected"
            version = (
                f": the decision table is now version {decided.table_version}"
                if decided.table_version
                else ""
            )
            messages.success(request, f"{_what(decided)} is {outcome}{version}.")
            return redirect(REGISTER)
    return _change_page(request, change, form)


@ig_only("POST")
def change_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    change = optout_changes.withdraw_change(change=_change(request, pk), by=_user(request))
    messages.success(request, f"{_what(change)} is withdrawn.")
    return redirect(REGISTER)
