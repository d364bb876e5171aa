"""The output checkers' pages (/outputs/): the queue, and the review of one request with
each file's table (failing cells marked), rule, evidence, exception request, chart beside
its data and a warning when the bytes changed since they were checked; per-file decisions
and the submission of the review.

The pages exist only for output checkers (404 for everyone else); a request the checker
may not see is 404, and one they may see but not review (a project they belong to, or
made) is 403, from the policy. Reading a file goes through ``services.open_for_review``,
which audits every view. Reviews stay blind: only ``selectors.visible_decisions``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import wraps
from pathlib import PurePosixPath
from typing import Any, Final

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from outputs import selectors, services
from outputs.forms import DecisionForm
from outputs.models import FileDecision, ReleaseFile, ReleaseRequest, Review
from outputs.views import tables
from outputs.views.common import (
    OUTCOME_TAGS,
    OUTCOME_TEXT,
    SLA_WORKING_DAYS,
    STATUS_TAGS,
    findings_of,
    rules_of,
    sentence,
    user_of,
    working_days_since,
)
from sde import policy
from sde.exceptions import InvalidTransition, NotFound, ValidationError
from sde.identity.models import User
from sde.projects.selectors import approved_scope
from sde.views.forms import apply_errors

S = ReleaseRequest.Status
DECISION_TEXT = dict(FileDecision.Decision.choices)
TEXT_SHOWN: Final = 200_000  # characters of a log or text file shown on the page
CheckerView = Callable[..., HttpResponseBase]


def checker_page(*methods: str) -> Callable[[CheckerView], CheckerView]:
    """404 for anyone who is not an output checker and for a request the checker may not
    see (the view gets the request instead of its number); then allow only ``methods``."""

    def decorate(view: CheckerView) -> CheckerView:
        @wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            user = user_of(request)
            if not policy.user_checks_outputs(user):
                raise NotFound("no such page")
            if "release_id" in kwargs:
                kwargs["release"] = selectors.get_request(user, kwargs.pop("release_id"))
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            return view(request, **kwargs)

        return wrapper

    return decorate


def _review_url(release: ReleaseRequest, anchor: str = "") -> str:
    url = reverse("output-review", args=[release.pk])
    return f"{url}#{anchor}" if anchor else url


def _mine(user: User, release: ReleaseRequest) -> Review | None:
    """This checker's review of the request's current round."""
    return next((r for r in selectors.reviews_of_round(release) if r.reviewer_id == user.pk), None)


def _can_start(release: ReleaseRequest, reviews: list[Review], mine: Review | None) -> bool:
    if mine is not None or release.status not in services.UNDER_REVIEW:
        return False
    return len(reviews) < 2 or (release.status == S.REVIEWED and bool(selectors.disputed(release)))


# --- The queue ----------------------------------------------------------------------------
def _render_queue(request: HttpRequest, status: int = 200) -> HttpResponse:
    user = user_of(request)
    today = timezone.localdate()
    queue = selectors.checker_queue(user).select_related("project", "assignee")
    page = Paginator(queue, 50).get_page(request.GET.get("page"))
    entries = []
    for release in page:
        reviews = selectors.reviews_of_round(release)
        mine = next((r for r in reviews if r.reviewer_id == user.pk), None)
        submitted = release.submitted_at or release.created_at
        working = working_days_since(timezone.localdate(submitted), today)
        entries.append({
            "release": release,
            "tag": STATUS_TAGS[S(release.status)],
            "age": selectors.age_days(release),
            "working_days": working,
            "overdue": working > SLA_WORKING_DAYS,
            "reviews_in": getattr(release, "reviews_in", 0),
            "disputed": len(selectors.disputed(release)) if release.status == S.REVIEWED else 0,
            "mine": mine,
            "reviewers": [r.reviewer.display_name for r in reviews],
            "can_start": _can_start(release, reviews, mine),
        })  # fmt: skip
    context = {"entries": entries, "page_obj": page, "sla": SLA_WORKING_DAYS}
    return render(request, "outputs/queue.html", context, status=status)


@checker_page("GET", "HEAD")
def queue(request: HttpRequest) -> HttpResponse:
    return _render_queue(request)


@checker_page("POST")
def start_review(request: HttpRequest, release: ReleaseRequest) -> HttpResponse:
    try:
        services.start_review(request=release, by=user_of(request))
    except InvalidTransition as error:
        messages.error(request, sentence(error))
        return _render_queue(request, status=400)
    messages.success(request, f"You are reviewing release request {release.pk}.")
    return redirect(_review_url(release))


# --- The review page ----------------------------------------------------------------------
def _chart_table(file: ReleaseFile, csvs: dict[tuple[int, str], dict[str, Any]]) -> str:
    """The name of the table a chart was drawn from: the one its C1 findings name, else
    the CSV of the same job named like the chart (``x.png`` or ``x_chart.png``: x.csv)."""
    for finding in file.verdict.get("findings", []):
        table = (finding.get("evidence") or {}).get("table")
        if isinstance(table, str) and table:
            return table
    stem = PurePosixPath(file.name).with_suffix("").as_posix()
    for candidate in (f"{stem}.csv", f"{stem.removesuffix('_chart')}.csv"):
        if (file.job_id, candidate) in csvs:
            return candidate
    return ""


def _contents(file: ReleaseFile, user: User) -> dict[str, Any]:
    """What the checker sees of the file's current bytes (each read audited)."""
    data, unchanged = services.open_for_review(file=file, by=user)
    suffix = PurePosixPath(file.name).suffix.lower()
    shown: dict[str, Any] = {"unchanged": unchanged}
    if suffix == ".csv":
        shown["table"] = tables.render(data, file.verdict.get("findings", []))
    elif suffix == ".png":
        shown["chart"] = reverse("output-chart", args=[file.request_id, file.pk])
    else:
        text = data.decode("utf-8", errors="replace")
        shown["text"], shown["text_cut"] = text[:TEXT_SHOWN], len(text) > TEXT_SHOWN
    return shown


def _decision_form(
    file: ReleaseFile, own: FileDecision | None, bound: dict[str, forms.Form]
) -> forms.Form:
    key = f"file-{file.pk}"
    if key in bound:
        return bound[key]
    initial: dict[str, Any] = {}
    if own is not None:
        initial = {"decision": own.decision, "comment": own.comment}
        initial |= {f"exception_{rule}": "grant" if granted else "refuse"
                    for rule, granted in own.exceptions.items()}  # fmt: skip
    rules = [e.rule for e in file.exceptions.all()]
    return DecisionForm(prefix=key, rules=rules, initial=initial)


def _render_review(
    request: HttpRequest, release: ReleaseRequest, *, status: int = 200,
    bound: dict[str, forms.Form] | None = None,
) -> HttpResponse:  # fmt: skip
    user = user_of(request)
    policy.check_review_release(user, release)  # 403: their own project's, or their own
    bound = bound or {}
    reviews = selectors.reviews_of_round(release)
    mine = next((r for r in reviews if r.reviewer_id == user.pk), None)
    deciding = mine is not None and mine.submitted_at is None
    decisions = selectors.visible_decisions(user, release)
    own = {d.file_id: d for d in decisions if mine is not None and d.review_id == mine.pk}
    others: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for d in decisions:
        if mine is None or d.review_id != mine.pk:
            others[d.file_id].append({"decision": d, "text": DECISION_TEXT[d.decision]})
    files = list(selectors.current_files(release).select_related("job__script")
                 .prefetch_related("exceptions"))  # fmt: skip
    showing = release.status in services.UNDER_REVIEW
    disputed = set(selectors.disputed(release)) if release.status == S.REVIEWED else set()
    rows: list[dict[str, Any]] = []
    for file in files:
        rows.append({
            "file": file,
            "outcome_text": OUTCOME_TEXT.get(file.outcome, file.outcome),
            "outcome_tag": OUTCOME_TAGS.get(file.outcome, "grey"),
            "rules": rules_of(file),
            "findings": findings_of(file),
            "mitigation": file.verdict.get("mitigation"),
            "notes": file.verdict.get("notes", []),
            "exceptions": list(file.exceptions.all()),
            "contents": _contents(file, user) if showing else None,
            "script": file.job.script if file.job.script_id else None,
            "own": own.get(file.pk),
            "others": others[file.pk],
            "disputed": file.pk in disputed,
            "form": _decision_form(file, own.get(file.pk), bound) if deciding else None,
        })  # fmt: skip
    csvs = {(r["file"].job_id, r["file"].name): r for r in rows if r["file"].name.endswith(".csv")}
    for row in rows:
        if row["contents"] and "chart" in row["contents"]:
            name = _chart_table(row["file"], csvs)
            row["chart_table_name"] = name
            row["chart_table"] = csvs.get((row["file"].job_id, name))
    context = {
        "release": release,
        "project": release.project,
        "scope": approved_scope(release.project),
        "tag": STATUS_TAGS[S(release.status)],
        "rows": rows,
        "mine": mine,
        "deciding": deciding,
        "reviews_in": sum(r.submitted_at is not None for r in reviews),
        "can_start": _can_start(release, reviews, mine),
        "undecided": [f.name for f in files if f.pk not in own] if deciding else [],
        "showing": showing,
    }
    return render(request, "outputs/review.html", context, status=status)


@checker_page("GET", "HEAD")
def review(request: HttpRequest, release: ReleaseRequest) -> HttpResponse:
    return _render_review(request, release)


def _review_of(user: User, release: ReleaseRequest) -> Review:
    mine = _mine(user, release)
    if mine is None:
        raise InvalidTransition("start the review first")
    return mine


@checker_page("POST")
def decide(request: HttpRequest, release: ReleaseRequest, file_id: int) -> HttpResponse:
    user = user_of(request)
    policy.check_review_release(user, release)
    file = selectors.get_file(user, release, file_id)
    key = f"file-{file.pk}"
    form = DecisionForm(request.POST, prefix=key, rules=[e.rule for e in file.exceptions.all()])
    try:
        if form.is_valid():
            services.decide_file(
                review=_review_of(user, release), file=file, by=user,
                decision=form.cleaned_data["decision"], comment=form.cleaned_data["comment"],
                exceptions=form.exceptions(),
            )  # fmt: skip
            messages.success(request, f"Your decision on {file.name} is recorded.")
            return redirect(_review_url(release, key))
    except ValidationError as error:
        apply_errors(form, error)
    except InvalidTransition as error:
        messages.error(request, sentence(error))
    return _render_review(request, release, status=400, bound={key: form})


OUTCOMES: Final = {
    S.PARTIALLY_REVIEWED: "Your review is in; the request waits for a second checker.",
    S.REVIEWED: "Both reviews are in; the checkers disagree on a file, so a third checker "
    "settles it.",
    S.RETURNED: "Both reviews are in: the request is returned to the researcher for changes.",
    S.REJECTED: "Both reviews are in: the request is rejected.",
    S.RELEASED: "Both reviews are in: the approved files are released.",
}


@checker_page("POST")
def submit_review(request: HttpRequest, release: ReleaseRequest) -> HttpResponse:
    user = user_of(request)
    try:
        settled = services.submit_review(review=_review_of(user, release), by=user)
    except (ValidationError, InvalidTransition) as error:
        messages.error(request, sentence(error))
        return _render_review(request, release, status=400)
    messages.success(request, OUTCOMES.get(S(settled.status), "Your review is submitted."))
    return redirect(_review_url(release))


@checker_page("GET")  # every read is an audited view
def chart(request: HttpRequest, release: ReleaseRequest, file_id: int) -> HttpResponse:
    """A chart's current bytes for the review page (audited), shown inline, never cached."""
    file = selectors.get_file(user_of(request), release, file_id)
    if PurePosixPath(file.name).suffix.lower() != ".png":
        raise NotFound("no such chart")
    data, _ = services.open_for_review(file=file, by=user_of(request))
    response = HttpResponse(data, content_type="image/png")
    response["Content-Disposition"] = "inline"
    response["Cache-Control"] = "no-store, private"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response
