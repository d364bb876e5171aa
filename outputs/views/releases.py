"""The researcher's release pages, under a project (/projects/<pk>/releases/): the list and
a new request, one request with its files, their checks and exception requests, submit
and withdraw, the decisions once a round is over, and IG's revocation (the downloads once
released are in ``downloads``).

``project_page`` finds the project for the person first (404 if they may not see it);
a request of another project, or one they may not see, is 404 too. Each POST calls one
service, which checks who may act (403) and in which state (re-rendered with its words,
400). The contents of files are never shown here before release: only the checks'
findings, in the checker's words.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from outputs import selectors, services
from outputs.forms import AddFileForm, CreateRequestForm, ExceptionForm, Grouped, RevokeForm
from outputs.models import FileDecision, ReleaseFile, ReleaseRequest
from outputs.views.common import (
    OUTCOME_TAGS,
    OUTCOME_TEXT,
    STATUS_TAGS,
    findings_of,
    rules_of,
    sentence,
    user_of,
)
from sde import policy
from sde.analysis import selectors as analysis
from sde.analysis.models import Job
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.identity.models import User
from sde.projects.models import Project
from sde.views.forms import apply_errors
from sde.views.projects import project_page

S = ReleaseRequest.Status
DECISION_TEXT = dict(FileDecision.Decision.choices)
JOBS_OFFERED = 100


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def release_of(request: HttpRequest, project: Project, release_id: int) -> ReleaseRequest:
    """The project's request, if this person may see it (404 otherwise)."""
    release = selectors.get_request(user_of(request), release_id)
    if release.project_id != project.pk:
        raise NotFound("no such release request")
    return release


def _allowed(check: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
    try:
        check(*args, **kwargs)
    except (NotFound, PermissionDenied):
        return False
    return True


def _detail(project: Project, release: ReleaseRequest, anchor: str = "") -> str:
    url = reverse("release-detail", args=[project.pk, release.pk])
    return f"{url}#{anchor}" if anchor else url


# --- The list and a new request ---------------------------------------------------------
def _render_list(
    request: HttpRequest, project: Project, form: CreateRequestForm | None = None, status: int = 200
) -> HttpResponse:
    user = user_of(request)
    releases = (
        selectors.visible_requests(user)
        .filter(project=project)
        .annotate(file_count=Count("files", filter=Q(files__removed_round__isnull=True)))
    )
    context = {
        "project": project,
        "rows": [{"release": r, "tag": STATUS_TAGS[S(r.status)]} for r in releases],
        "refusal": policy.project_data_refusal(user, project, today=timezone.localdate()),
        "form": form or CreateRequestForm(initial={"job": _int(request.GET.get("job"))}),
    }
    return render(request, "outputs/list.html", context, status=status)


@project_page("GET", "HEAD")
def release_list(request: HttpRequest, project: Project) -> HttpResponse:
    return _render_list(request, project)


@project_page("POST")
def release_create(request: HttpRequest, project: Project) -> HttpResponse:
    # The permission before the form, so that a refusal never depends on what was sent.
    policy.check_request_release(user_of(request), project, today=timezone.localdate())
    form = CreateRequestForm(request.POST)
    if not form.is_valid():
        return _render_list(request, project, form, status=400)
    try:
        release = services.create_request(
            project=project, by=user_of(request), title=form.cleaned_data["title"]
        )
    except ValidationError as error:
        apply_errors(form, error)
        return _render_list(request, project, form, status=400)
    messages.success(request, f"Release request {release.pk} created. Add the files to release.")
    job = form.cleaned_data.get("job")
    url = reverse("release-detail", args=[project.pk, release.pk])
    return redirect(f"{url}?job={job}#add-file" if job else f"{url}#add-file")


# --- One request ------------------------------------------------------------------------
def file_choices(project: Project) -> Grouped:
    """What can be added: the outputs of the project's jobs that succeeded (never their
    evidence), and the logs of runs on real data, grouped by job, newest first."""
    groups = []
    jobs = analysis.jobs_of(project).prefetch_related("outputs")[:JOBS_OFFERED]
    for job in jobs:
        options = []
        if job.status == Job.Status.SUCCEEDED:
            options += [(f"{job.pk}:{o.pk}", o.name) for o in job.outputs.all()
                        if not o.name.endswith(services.NOT_RELEASABLE)]  # fmt: skip
        if not job.on_dummy and job.log_sha256:
            options.append((f"{job.pk}:log", f"The job's log (job-{job.pk}-log.txt)"))
        if options:
            data = "dummy data" if job.on_dummy else "real data"
            groups.append((f"Job {job.pk}: {analysis.job_title(job)} ({data})", options))
    return groups


def _preselected(choices: Grouped, job: int | None) -> str:
    prefix = f"{job}:"
    return next((v for _, options in choices for v, _ in options if v.startswith(prefix)), "")


def _checker_labels(decisions: list[FileDecision]) -> dict[int, str]:
    """Researchers see which round and which of its checkers, not who (blind to them)."""
    by_round: dict[int, list[int]] = defaultdict(list)
    for d in sorted(decisions, key=lambda d: d.review_id):
        if d.review_id not in by_round[d.review.round]:
            by_round[d.review.round].append(d.review_id)
    return {review: f"Round {r}, output checker {n}" for r, reviews in by_round.items()
            for n, review in enumerate(reviews, start=1)}  # fmt: skip


def _changes(release: ReleaseRequest) -> dict[str, Any] | None:
    """The files added and removed for this round (or, once returned, for the next)."""
    shown = release.round + 1 if release.status == S.RETURNED else release.round
    if shown <= 1:
        return None
    files = list(release.files.all())
    return {
        "round": shown,
        "pending": release.status == S.RETURNED,
        "added": [f for f in files if f.added_round == shown],
        "removed": [f for f in files if f.removed_round == shown],
    }


def _file_row(
    file: ReleaseFile, *, editable: bool, bound: dict[str, forms.Form],
    decisions: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    filed = {e.rule: e for e in file.exceptions.all()}
    exceptions = []
    for rule in selectors.non_pass_rules(file):
        key = f"exception-{file.pk}-{rule}"
        form = None
        if editable:
            current = filed.get(rule)
            initial = (
                {"reason": current.reason, "justification": current.justification}
                if current else {}
            )  # fmt: skip
            form = bound.get(key) or ExceptionForm(prefix=key, initial=initial)
        exceptions.append({"rule": rule, "status": file.verdict["rules"][rule],
                           "filed": filed.get(rule), "form": form, "key": key})  # fmt: skip
    released = getattr(file, "released", None)
    return {
        "file": file,
        "outcome": file.outcome,
        "outcome_text": OUTCOME_TEXT.get(file.outcome, file.outcome),
        "outcome_tag": OUTCOME_TAGS.get(file.outcome, "grey"),
        "rules": rules_of(file),
        "findings": findings_of(file, values=file.job.on_dummy),
        "exceptions": exceptions,
        "decisions": decisions,
        "settled": DECISION_TEXT.get(file.decision, ""),
        "released": released,
    }


def _submit_errors(files: list[ReleaseFile], errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    """A refused submission's errors by file name, each linking to its file."""
    anchors = {f.name: f"file-{f.pk}" for f in files}
    return [{"name": name, "messages": texts, "anchor": anchors.get(name, "files")}
            for name, texts in errors.items()]  # fmt: skip


def _render_detail(
    request: HttpRequest, project: Project, release: ReleaseRequest, *, status: int = 200,
    bound: dict[str, forms.Form] | None = None, submit_errors: dict[str, list[str]] | None = None,
) -> HttpResponse:  # fmt: skip
    user = user_of(request)
    bound = bound or {}
    author = release.created_by_id == user.pk
    editable = author and release.status in services.EDITABLE
    decisions = selectors.visible_decisions(user, release)
    labels = _checker_labels(decisions)
    by_file: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for d in decisions:
        by_file[d.file_id].append({"decision": d, "who": labels[d.review_id],
                                   "text": DECISION_TEXT[d.decision]})  # fmt: skip
    files = list(
        selectors.current_files(release).select_related("released").prefetch_related("exceptions")
    )
    rows = [_file_row(f, editable=editable, bound=bound, decisions=by_file[f.pk]) for f in files]
    context: dict[str, Any] = {
        "project": project,
        "release": release,
        "tag": STATUS_TAGS[S(release.status)],
        "author": author,
        "editable": editable,
        "rows": rows,
        "earlier": [
            {"file": f, "decisions": by_file[f.pk]}
            for f in release.files.filter(removed_round__isnull=False)
            if by_file[f.pk]
        ],
        "changes": _changes(release),
        "can_withdraw": author and release.status in services.TRANSITIONS["withdraw"].sources,
        # Downloads are offered to those who may download (current members): IG officers
        # and checkers see the request, not the files.
        "released": release.status == S.RELEASED
        and any(r["released"] for r in rows)
        and _allowed(policy.check_download_release, user, release),
        "submit_errors": _submit_errors(files, submit_errors or {}),
    }
    if editable:
        choices = file_choices(project)
        context["add_form"] = bound.get("add") or AddFileForm(
            prefix="add", choices=choices,
            initial={"source": _preselected(choices, _int(request.GET.get("job")))},
        )  # fmt: skip
    if release.status == S.RELEASED and _allowed(policy.check_revoke_release, user, release):
        context["revoke_form"] = bound.get("revoke") or RevokeForm(prefix="revoke")
    return render(request, "outputs/request.html", context, status=status)


def _refused(
    request: HttpRequest, project: Project, release: ReleaseRequest, error: Exception,
    **bound: forms.Form,
) -> HttpResponse:  # fmt: skip
    """A service's refusal (invalid input or state), shown on the page in its words."""
    messages.error(request, sentence(error))
    return _render_detail(request, project, _fresh(user_of(request), release), status=400,
                          bound=bound)  # fmt: skip


def _fresh(user: User, release: ReleaseRequest) -> ReleaseRequest:
    return selectors.get_request(user, release.pk)


@project_page("GET", "HEAD")
def release_detail(request: HttpRequest, project: Project, release_id: int) -> HttpResponse:
    return _render_detail(request, project, release_of(request, project, release_id))


@project_page("POST")
def add_file(request: HttpRequest, project: Project, release_id: int) -> HttpResponse:
    release = release_of(request, project, release_id)
    user = user_of(request)
    policy.check_release_author(user, release, today=timezone.localdate())  # before the form
    form = AddFileForm(request.POST, prefix="add", choices=file_choices(project))
    if not form.is_valid():
        return _render_detail(request, project, release, status=400, bound={"add": form})
    job_id, output_id = form.chosen()
    job = analysis.job_for(user, project, job_id)
    output = job.outputs.filter(pk=output_id).first() if output_id is not None else None
    if output_id is not None and output is None:
        raise NotFound("no such output")
    try:
        file = services.add_file(request=release, job=job, output=output, by=user,
                                 context=form.cleaned_data["context"],
                                 controls=form.cleaned_data["controls"])  # fmt: skip
    except ValidationError as error:
        apply_errors(form, error)
        return _render_detail(request, project, release, status=400, bound={"add": form})
    except InvalidTransition as error:
        return _refused(request, project, release, error)
    outcome = OUTCOME_TEXT.get(file.outcome, file.outcome).lower()
    messages.success(request, f"{file.name} added; the automated checks say: {outcome}.")
    return redirect(_detail(project, release, f"file-{file.pk}"))


@project_page("POST")
def remove_file(
    request: HttpRequest, project: Project, release_id: int, file_id: int
) -> HttpResponse:
    release = release_of(request, project, release_id)
    file = selectors.get_file(user_of(request), release, file_id)
    try:
        services.remove_file(file=file, by=user_of(request))
    except (ValidationError, InvalidTransition) as error:
        return _refused(request, project, release, error)
    messages.success(request, f"{file.name} removed from the request.")
    return redirect(_detail(project, release, "files"))


@project_page("POST")
def request_exception(
    request: HttpRequest, project: Project, release_id: int, file_id: int
) -> HttpResponse:
    release = release_of(request, project, release_id)
    file = selectors.get_file(user_of(request), release, file_id)
    rule = request.POST.get("rule", "")
    if rule not in selectors.non_pass_rules(file):
        raise NotFound("no such rule for this file")
    key = f"exception-{file.pk}-{rule}"
    form = ExceptionForm(request.POST, prefix=key)
    if form.is_valid():
        try:
            services.request_exception(
                file=file, rule=rule, reason=form.cleaned_data["reason"],
                justification=form.cleaned_data["justification"], by=user_of(request),
            )  # fmt: skip
        except ValidationError as error:
            apply_errors(form, error)
        except InvalidTransition as error:
            return _refused(request, project, release, error)
        else:
            messages.success(request, f"Exception request for {rule} on {file.name} saved.")
            return redirect(_detail(project, release, f"file-{file.pk}"))
    return _render_detail(request, project, release, status=400, bound={key: form})


@project_page("POST")
def submit(request: HttpRequest, project: Project, release_id: int) -> HttpResponse:
    release = release_of(request, project, release_id)
    try:
        release = services.submit(request=release, by=user_of(request))
    except ValidationError as error:
        messages.error(request, sentence(error))
        return _render_detail(request, project, release, status=400, submit_errors=error.errors)
    except InvalidTransition as error:
        return _refused(request, project, release, error)
    messages.success(request, f"Submitted for output checking (round {release.round}). Two "
                     "independent output checkers review it.")  # fmt: skip
    return redirect(_detail(project, release))


@project_page("POST")
def withdraw(request: HttpRequest, project: Project, release_id: int) -> HttpResponse:
    release = release_of(request, project, release_id)
    try:
        services.withdraw(request=release, by=user_of(request))
    except InvalidTransition as error:
        return _refused(request, project, release, error)
    messages.success(request, "The request is withdrawn.")
    return redirect(_detail(project, release))


@project_page("POST")
def revoke(request: HttpRequest, project: Project, release_id: int) -> HttpResponse:
    release = release_of(request, project, release_id)
    form = RevokeForm(request.POST, prefix="revoke")
    if form.is_valid():
        try:
            services.revoke(request=release, by=user_of(request),
                            reason=form.cleaned_data["reason"])  # fmt: skip
        except ValidationError as error:
            apply_errors(form, error)
        except InvalidTransition as error:
            return _refused(request, project, release, error)
        else:
            messages.success(request, "The release is revoked: its files can no longer be "
                             "downloaded.")  # fmt: skip
            return redirect(_detail(project, release))
    else:
        policy.check_revoke_release(user_of(request), release)  # 403 before a form error
    return _render_detail(request, project, release, status=400, bound={"revoke": form})
