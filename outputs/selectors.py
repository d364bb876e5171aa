"""Reading release requests: what each person may see, the checkers' queue, which rules
a file must answer for, and how the reviews settle each file (blind until both are in)."""

from __future__ import annotations

import json
from typing import Any, Final

from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from outputs.models import FileDecision, ReleaseFile, ReleaseRequest, Review
from sde import policy
from sde.exceptions import NotFound

S = ReleaseRequest.Status
D = FileDecision.Decision
QUEUE: tuple[str, ...] = (S.SUBMITTED, S.PARTIALLY_REVIEWED, S.REVIEWED)


def visible_requests(user: Any) -> QuerySet[ReleaseRequest]:
    return policy.visible_release_requests(
        user, ReleaseRequest.objects.select_related("project", "created_by")
    )


def get_request(user: Any, pk: int) -> ReleaseRequest:
    request = visible_requests(user).filter(pk=pk).first()
    if request is None:
        raise NotFound("no such release request")
    return request


def get_file(user: Any, request: ReleaseRequest, pk: int) -> ReleaseFile:
    """A file of a request the user can see; 404 for a forged or another request's id."""
    file = request.files.select_related("job", "output").filter(pk=pk).first()
    if file is None:
        raise NotFound("no such file")
    return file


def current_files(request: ReleaseRequest) -> QuerySet[ReleaseFile]:
    return request.files.filter(removed_round__isnull=True).select_related("job", "output")


def non_pass_rules(file: ReleaseFile) -> list[str]:
    """The rules the automated check did not pass for this file: each needs an exception
    request before the request is submitted."""
    return sorted(rule for rule, status in file.verdict.get("rules", {}).items()
                  if status != "pass")  # fmt: skip


# What each rule asks, in words that carry no value from the data: a researcher has not
# seen a real run's outputs, so their page names the rule and the cell, never the count.
RULE_TEXT: Final = {
    "T1": "fewer people than the threshold", "T2": "a zero, shown or implied",
    "T3": "everyone in a group falls in one category",
    "D1": "dominated by its largest contributors", "D2": "the p% rule: the largest "
    "contributor could be estimated", "D3": "negative or missing contributions",
    "M1": "too few residual degrees of freedom", "M2": "too many parameters for the people",
    "M3": "a small category of a binary variable", "M4": "per-person values in the output",
    "S1": "a spread from too few people", "E1": "a minimum or maximum (one person's value)",
    "P1": "too few people either side of a percentile", "O1": "a mode everyone shares",
    "H1": "a small, empty or outer histogram bin, or edges at the data's extremes",
    "K1": "a survival step with too few events or people at risk",
    "C1": "a chart whose data is unsafe or missing", "X1": "a suppressed cell the totals "
    "give back", "X2": "a small group derivable from earlier releases",
    "R1": "rounding that does not hold", "F1": "a file type or shape that cannot be released",
    "evidence": "the evidence does not describe the file",
}  # fmt: skip


def findings_shown(file: ReleaseFile, *, values: bool) -> list[dict[str, Any]]:
    """A file's findings that did not pass. ``values`` False (a researcher looking at a
    real run's file): each rule's description instead of its message, and no evidence,
    since the researcher has not seen the real output and a count must not reach them
    before the checkers have."""
    shown = []
    for finding in file.verdict.get("findings", []):
        if finding.get("status") == "pass":
            continue
        if not values:
            text = RULE_TEXT.get(str(finding.get("rule")), "see the rule")
            finding = {**finding, "message": text[0].upper() + text[1:], "evidence": {}}
        shown.append(finding)
    return shown


def checker_queue(user: Any) -> QuerySet[ReleaseRequest]:
    """Requests waiting for review that ``user`` may review (never their own project's),
    oldest first, with how many reviews are in."""
    if not policy.user_checks_outputs(user):
        return ReleaseRequest.objects.none()
    return (
        visible_requests(user)
        .filter(status__in=QUEUE)
        .exclude(created_by=user)
        .exclude(project__memberships__user=user)
        .annotate(
            reviews_in=Count(
                "reviews", filter=Q(reviews__submitted_at__isnull=False, reviews__round=F("round"))
            )
        )
        .order_by("submitted_at", "pk")
    )


def age_days(request: ReleaseRequest) -> int:
    start = request.submitted_at or request.created_at
    return (timezone.now() - start).days


def reviews_of_round(request: ReleaseRequest) -> list[Review]:
    return list(request.reviews.filter(round=request.round).select_related("reviewer"))


def settled(request: ReleaseRequest) -> dict[int, str | None]:
    """Per current file, once two reviews are in: changes if either reviewer asked for
    them (the researcher is asked, not a third checker); otherwise what both agree on, or,
    when one approves and the other rejects, what a third checker decided; None while
    undecided or so disputed."""
    reviews = [r for r in reviews_of_round(request) if r.submitted_at is not None]
    decisions: dict[int, list[str]] = {}
    made_in_order = FileDecision.objects.filter(review__in=reviews).order_by(
        "review__submitted_at", "review__pk"
    )
    for made in made_in_order:
        decisions.setdefault(made.file_id, []).append(made.decision)
    out: dict[int, str | None] = {}
    for file in current_files(request):
        votes = decisions.get(file.pk, [])
        if len(votes) >= 2 and D.CHANGES in votes[:2]:
            out[file.pk] = D.CHANGES
        elif len(votes) >= 2 and votes[0] == votes[1]:
            out[file.pk] = votes[0]
        elif len(votes) >= 3:
            out[file.pk] = votes[2]  # the third checker breaks the tie
        else:
            out[file.pk] = None
    return out


def disputed(request: ReleaseRequest) -> list[int]:
    """Files one review approves and the other rejects, waiting for a third checker."""
    reviews = [r for r in reviews_of_round(request) if r.submitted_at is not None]
    if len(reviews) != 2:
        return []
    return [pk for pk, result in settled(request).items() if result is None]


def visible_decisions(user: Any, request: ReleaseRequest) -> list[FileDecision]:
    """Decisions ``user`` may read: everyone who sees the request reads those of finished
    rounds; a checker also reads their own, and the others' of this round only once two
    reviews are submitted (blind review)."""
    finished = Q(review__round__lt=request.round)
    if request.status not in QUEUE:
        finished |= Q(review__round=request.round)
    visible = finished & Q(review__submitted_at__isnull=False)
    if policy.user_checks_outputs(user):
        visible |= Q(review__reviewer=user)
        in_round = request.reviews.filter(round=request.round, submitted_at__isnull=False)
        if in_round.count() >= 2:
            visible |= Q(review__round=request.round, review__submitted_at__isnull=False)
    decisions = FileDecision.objects.filter(review__request=request).filter(visible)
    return list(decisions.select_related("review__reviewer", "file").order_by("file", "pk"))


def release_path(file: ReleaseFile) -> str:
    """Where a released file lies in the zip download and beside ``results.json``:
    ``job-<job id>/<name>`` (two jobs may make files of the same name)."""
    return f"job-{file.job_id}/{file.name}"


def chart_table(chart_json: bytes | None) -> str | None:
    """The data table a chart's ``.chart.json`` names."""
    if chart_json is None:
        return None
    try:
        table = json.loads(chart_json).get("table")
    except (ValueError, AttributeError):
        return None
    return table if isinstance(table, str) else None
