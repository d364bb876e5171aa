"""The direct care pages (/direct-care/): a clinician asks for the members of a planning or
direct care project's cohort registered at their own practice, the IG officer and the
Caldicott Guardian sign off, and the clinician opens the list while it lasts.

Only clinicians and the two kinds of signer have these pages; everyone else gets 404 on
each of them, as on any URL naming a cohort or a request they may not see (the request
is looked up before the method is checked). Each POST calls one service, which checks
who may act (403) and in which state (a message and the page as it now is). The list
itself is shown only on its own page and in its CSV, to the requesting clinician, and
never leaves those two responses: no message, log line or other page carries an NHS
number.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Final

import pandas as pd
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse

from sde import policy
from sde.analysis.models import Cohort
from sde.data.register import suppressed
from sde.directcare import selectors, services
from sde.directcare.models import ReidentificationDecision, ReidentificationRequest
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.identity.models import User
from sde.projects.selectors import legal_basis_text, purpose_text
from sde.views.directcare_forms import RequestForm, SignOffForm
from sde.views.forms import apply_errors

S = ReidentificationRequest.Status
R = ReidentificationDecision.Role
STATUS_TAGS: Final = {
    S.SUBMITTED: "blue", S.PARTIALLY_APPROVED: "blue", S.APPROVED: "blue", S.READY: "green",
    S.REFUSED: "red", S.WITHDRAWN: "grey", S.FAILED: "red", S.EXPIRED: "grey",
}  # fmt: skip
LIST_HEADERS: Final = {
    # The headers the pages add (robots are also told off in the page's <meta>).
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow, noarchive",
    "Referrer-Policy": "no-referrer",
}
PageView = Callable[..., HttpResponseBase]


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _sentence(error: Exception) -> str:
    text = str(error)
    return f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}"


def _detail_url(reid: ReidentificationRequest) -> str:
    return reverse("direct-care-request", args=[reid.pk])


def _allowed(check: Callable[..., None], *args: Any) -> bool:
    try:
        check(*args)
    except (NotFound, PermissionDenied):
        return False
    return True


def request_page(*methods: str) -> Callable[[PageView], PageView]:
    """Look the request up for this person first (404 if they may not see it), then allow
    only ``methods``; the view gets the request instead of its number."""

    def decorate(view: PageView) -> PageView:
        @wraps(view)
        def wrapper(request: HttpRequest, pk: int) -> HttpResponseBase:
            reid = selectors.request_for(_user(request), pk)
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            return view(request, reid)

        return wrapper

    return decorate


def _size(count: int) -> str:
    return "fewer than 10" if count < 10 else f"{count:,}"


def _row(reid: ReidentificationRequest, user: User) -> dict[str, Any]:
    """A request as the tables list it. The requester sees the exact count (the list
    shows it anyway); signers see small counts suppressed, as on IG's other pages."""
    mine = reid.requested_by_id == user.pk
    return {
        "reid": reid,
        "tag": STATUS_TAGS[S(reid.status)],
        "people": (f"{reid.people:,}" if reid.people is not None else "—")
        if mine
        else suppressed(reid.people),
    }


# --- The start page ---------------------------------------------------------------------
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    clinician = policy.user_requests_reidentification(user)
    roles = policy.reidentification_sign_off_roles(user)
    if not clinician and not roles:
        raise NotFound("no direct care pages for this person")
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    context: dict[str, Any] = {
        "clinician": clinician,
        "signer": bool(roles),
        "role_names": [R(role).label for role in roles],
        "list_days": settings.SDE_REID_LIST_DAYS,
    }
    if clinician:
        context["cohorts"] = [
            {"cohort": c, "size": _size(c.size)} for c in selectors.cohorts_for(user)
        ]
        mine = selectors.requests_for(user).filter(requested_by=user)
        context["mine"] = [_row(r, user) for r in mine]
        context["practices"] = list(policy.practices_for(user))
    if roles:
        context["awaiting"] = [_row(r, user) for r in selectors.awaiting_sign_off(user)]
        page = Paginator(selectors.requests_for(user), 50).get_page(request.GET.get("page"))
        context["page_obj"] = page
        context["everything"] = [_row(r, user) for r in page]
    return render(request, "directcare/home.html", context)


# --- A new request ----------------------------------------------------------------------
def _render_new(
    request: HttpRequest, cohort: Cohort, form: RequestForm, status: int = 200
) -> HttpResponse:
    scope = cohort.project.scope or {}
    context = {
        "cohort": cohort,
        "project": cohort.project,
        "size": _size(cohort.size),
        "purpose": purpose_text(str(scope.get("purpose") or "")),
        "legal_basis": legal_basis_text(str(scope.get("legal_basis") or "")),
        "columns": [
            services.LIST_COLUMNS[name] for name in ("nhs_number", *services.list_fields(cohort))
        ],
        "list_days": settings.SDE_REID_LIST_DAYS,
        "form": form,
        "has_practice": bool(form.fields["practice"].queryset),  # type: ignore[attr-defined]
    }
    return render(request, "directcare/request_new.html", context, status=status)


def request_create(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    cohort = selectors.cohort_for(user, pk)  # 404 before the method check
    practices = policy.practices_for(user).order_by("name")
    if request.method in ("GET", "HEAD"):
        return _render_new(request, cohort, RequestForm(practices=practices))
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
    form = RequestForm(request.POST, practices=practices)
    if not form.is_valid():
        return _render_new(request, cohort, form, status=400)
    try:
        reid = services.request_reidentification(
            cohort=cohort, practice=form.cleaned_data["practice"],
            reason=form.cleaned_data["reason"], by=user,
        )  # fmt: skip
    except ValidationError as error:
        apply_errors(form, error)
        return _render_new(request, cohort, form, status=400)
    messages.success(request, f"Re-identification request {reid.pk} sent. An IG officer and the "
                     "Caldicott Guardian each decide on it.")  # fmt: skip
    return redirect(_detail_url(reid))


# --- One request ------------------------------------------------------------------------
def _sign_offs(
    user: User, reid: ReidentificationRequest, bound: dict[str, SignOffForm]
) -> list[dict[str, Any]]:
    """The sign-offs this person's roles allow, for an open request: a form for each one
    not yet given, or why they may not give it."""
    if reid.status not in services.OPEN:
        return []
    given = {d.role for d in reid.decisions.all()}
    conflict = policy.reidentification_conflict(user, reid)
    return [
        {
            "role": role,
            "label": R(role).label,
            "conflict": conflict,
            "form": None if conflict else bound.get(role) or SignOffForm(prefix=role),
        }
        for role in policy.reidentification_sign_off_roles(user)
        if role not in given
    ]


def _render_detail(
    request: HttpRequest, reid: ReidentificationRequest, *, status: int = 200,
    bound: dict[str, SignOffForm] | None = None,
) -> HttpResponse:  # fmt: skip
    user = _user(request)
    mine = reid.requested_by_id == user.pk
    scope = reid.project.scope or {}
    open_list = selectors.list_is_open(reid)
    context = {
        **_row(reid, user),
        "project": reid.project,
        "cohort": reid.cohort,
        "purpose": purpose_text(str(scope.get("purpose") or "")),
        "legal_basis": legal_basis_text(str(scope.get("legal_basis") or "")),
        "decisions": list(reid.decisions.all()),
        "missing_sign_offs": [
            label for role, label in R.choices if role not in {d.role for d in reid.decisions.all()}
        ],
        "mine": mine,
        "can_withdraw": mine and reid.status in services.OPEN,
        "sign_offs": _sign_offs(user, reid, bound or {}),
        "open_list": open_list,
        "may_open": selectors.may_open_list(user, reid),
        "field_names": [services.LIST_COLUMNS.get(f, f) for f in reid.fields],
    }
    return render(request, "directcare/request.html", context, status=status)


@request_page("GET", "HEAD")
def request_detail(request: HttpRequest, reid: ReidentificationRequest) -> HttpResponse:
    return _render_detail(request, reid)


@request_page("POST")
def sign_off(request: HttpRequest, reid: ReidentificationRequest) -> HttpResponse:
    user = _user(request)
    role = request.POST.get("role", "")
    if role not in R.values:
        raise NotFound("no such sign-off")
    policy.check_sign_off_reidentification(user, reid, role)  # 403 before a form error
    form = SignOffForm(request.POST, prefix=role)
    if form.is_valid():
        try:
            signed = services.sign_off(
                request=reid, by=user, role=role, outcome=form.cleaned_data["outcome"],
                comment=form.cleaned_data["comment"],
            )  # fmt: skip
        except ValidationError as error:
            apply_errors(form, error)
        except InvalidTransition as error:  # the state changed: the page shows the new one
            messages.error(request, _sentence(error))
            return redirect(_detail_url(reid))
        else:
            messages.success(request, _signed_text(signed, role))
            return redirect(_detail_url(reid))
    return _render_detail(request, reid, status=400, bound={role: form})


def _signed_text(reid: ReidentificationRequest, role: str) -> str:
    label = R(role).label
    if reid.status == S.REFUSED:
        return f"You refused request {reid.pk} as {label}. The clinician sees your comment."
    if reid.status == S.APPROVED:
        return (f"You approved request {reid.pk} as {label}. Both sign-offs are in: the list "
                "is being made.")  # fmt: skip
    other = R.CALDICOTT.label if role == R.IG else R.IG.label
    return f"You approved request {reid.pk} as {label}. It now needs the {other}'s sign-off."


@request_page("POST")
def withdraw(request: HttpRequest, reid: ReidentificationRequest) -> HttpResponse:
    try:
        services.withdraw(request=reid, by=_user(request))
    except InvalidTransition as error:
        messages.error(request, _sentence(error))
    else:
        messages.success(request, f"Request {reid.pk} is withdrawn.")
    return redirect(_detail_url(reid))


# --- The list ---------------------------------------------------------------------------
def _nhs_number(numbers: pd.Series) -> pd.Series:
    """ "9434765919" as "943 476 5919" (the NHS's own grouping)."""
    text = numbers.astype("string").str.replace(" ", "", regex=False)
    return text.str[:3] + " " + text.str[3:6] + " " + text.str[6:]


@request_page("GET")
def list_page(request: HttpRequest, reid: ReidentificationRequest) -> HttpResponse:
    listing = services.view_list(request=reid, by=_user(request))  # audited; re-reads the request
    shown = listing.astype("string").fillna("")
    shown["nhs_number"] = _nhs_number(listing["nhs_number"]).fillna("")
    context = {
        "reid": reid,
        "headers": [services.LIST_COLUMNS.get(c, c) for c in shown.columns],
        "rows": shown.to_numpy().tolist(),
        "count": len(listing),
    }
    response = render(request, "directcare/list.html", context)
    for name, value in LIST_HEADERS.items():
        response[name] = value
    return response


@request_page("GET")
def list_csv(request: HttpRequest, reid: ReidentificationRequest) -> HttpResponse:
    content = services.download_list(request=reid, by=_user(request))  # audited
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="direct-care-list-{reid.pk}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    for name, value in LIST_HEADERS.items():
        response[name] = value
    return response
