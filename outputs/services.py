"""The release workflow: requests, automated checks, two blind independent reviews, the
release of exact bytes, downloads and revocation (reference/disclosure-control.md).

``TRANSITIONS`` is the one definition of who moves a request between states:

    draft|returned --submit (author; every non-pass rule has an exception)--> submitted
    submitted --first review submitted (checker)--> partially_reviewed
    partially_reviewed --second review submitted (another checker)--> reviewed
    reviewed --every file settled, none needs changes, some approved--> approved
    reviewed --some file needs changes--> returned
    reviewed --every file rejected--> rejected
    approved --release (system: the reviewed bytes copied and verified)--> released
    draft|submitted|returned --withdraw (author)--> withdrawn
    released --revoke (IG)--> revoked

A file is settled when its two reviewers agree, or when a third checker decides a file
they disagree on. Only settled-approved files are released; rejected files of an
approved request stay inside. Separation of duties is checked here, so pages, API and
shell alike cannot review their own project's outputs or release with one approval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Final

from django.db import transaction
from django.utils import timezone

from outputs import selectors
from outputs.models import (
    ExceptionRequest,
    FileDecision,
    ReleasedFile,
    ReleaseFile,
    ReleaseRequest,
    Review,
)
from outputs.sdc import Status, policy_from_json
from outputs.sdc.check import check_output
from outputs.sdc.ledger import Ledger
from outputs.sdc.policy import Policy
from sde import policy
from sde.analysis.models import Job, JobOutput
from sde.analysis.services import CONTROL
from sde.audit.events import EventType
from sde.audit.services import get_system_user, record_event
from sde.data.files import data_root, file_sha256
from sde.exceptions import InvalidTransition, NotFound, PermissionDenied, ValidationError
from sde.governance import Transition, governed_writes
from sde.identity.models import User
from sde.phm.ledger import LedgerTable
from sde.projects import services as projects
from sde.projects.models import Project

S = ReleaseRequest.Status
D = FileDecision.Decision
AUTHOR, CHECKER, SYSTEM, IG = "author", "output checker (independent)", "system", "IG officer"
GOVERNED: Final = (ReleaseRequest, ReleaseFile, ExceptionRequest, Review, FileDecision,
                   ReleasedFile)  # fmt: skip


TRANSITIONS: Final[dict[str, Transition]] = {
    "submit": Transition(frozenset({S.DRAFT, S.RETURNED}), S.SUBMITTED, AUTHOR,
                         EventType.RELEASE_REQUEST_SUBMITTED),
    "first_review": Transition(frozenset({S.SUBMITTED}), S.PARTIALLY_REVIEWED, CHECKER,
                               EventType.REVIEW_SUBMITTED),
    "second_review": Transition(frozenset({S.PARTIALLY_REVIEWED}), S.REVIEWED, CHECKER,
                                EventType.REVIEW_SUBMITTED),
    "approve": Transition(frozenset({S.REVIEWED}), S.APPROVED, CHECKER,
                          EventType.RELEASE_APPROVED),
    "return": Transition(frozenset({S.REVIEWED}), S.RETURNED, CHECKER,
                         EventType.RELEASE_REQUEST_RETURNED),
    "reject": Transition(frozenset({S.REVIEWED}), S.REJECTED, CHECKER,
                         EventType.RELEASE_REJECTED),
    "release": Transition(frozenset({S.APPROVED}), S.RELEASED, SYSTEM, EventType.RELEASED),
    "withdraw": Transition(frozenset({S.DRAFT, S.SUBMITTED, S.RETURNED}), S.WITHDRAWN, AUTHOR,
                           EventType.RELEASE_REQUEST_WITHDRAWN),
    "revoke": Transition(frozenset({S.RELEASED}), S.REVOKED, IG, EventType.RELEASE_REVOKED),
}  # fmt: skip
EDITABLE: Final = frozenset({S.DRAFT, S.RETURNED})
UNDER_REVIEW: Final = frozenset({S.SUBMITTED, S.PARTIALLY_REVIEWED, S.REVIEWED})
# Files a job writes for the environment, never for release.
NOT_RELEASABLE: Final = (".evidence.json", ".chart.json")  # read by the checks


def _today() -> Any:
    return timezone.localdate()


def _move(request: ReleaseRequest, action: str, *, by: User, data: dict[str, Any] | None = None,
          **fields: Any) -> ReleaseRequest:  # fmt: skip
    """The one place a request's status changes: re-read under lock, check the table, set
    status and fields, write the event."""
    step = TRANSITIONS[action]
    locked = ReleaseRequest.objects.select_for_update().get(pk=request.pk)
    if locked.status not in step.sources:
        raise InvalidTransition(
            f"the request is {locked.get_status_display().lower()}: "
            f"'{action.replace('_', ' ')}' is not possible"
        )
    locked.status, locked.status_changed_at = step.target, timezone.now()
    for name, value in fields.items():
        setattr(locked, name, value)
    with governed_writes(ReleaseRequest):
        locked.save()
    record_event(event_type=step.event, actor=by, target=locked, project_id=locked.project_id,
                 data={"request_id": locked.pk, "round": locked.round, "status": step.target,
                       **(data or {})})  # fmt: skip
    return locked


def _round_of_changes(request: ReleaseRequest) -> int:
    """The round a file added or removed now belongs to: while a request is returned, the
    resubmission's (so the next round's checkers see what changed since they reviewed)."""
    return request.round + 1 if request.status == S.RETURNED else request.round


def _editable(request: ReleaseRequest, by: User) -> ReleaseRequest:
    policy.check_release_author(by, request, today=_today())
    locked = ReleaseRequest.objects.select_for_update().get(pk=request.pk)
    if locked.status not in EDITABLE:
        raise InvalidTransition(f"the request is {locked.get_status_display().lower()}")
    return locked


# --- The researcher's side --------------------------------------------------------------
def project_policy(project: Project) -> Policy:
    """The project's disclosure policy: recorded at approval (scope "disclosure_policy"),
    else acro-default."""
    return policy_from_json((project.scope or {}).get("disclosure_policy") or {})


def create_request(*, project: Project, by: User, title: str) -> ReleaseRequest:
    """A draft request. Event: outputs.request_created."""
    policy.check_request_release(by, project, today=_today())
    if not title.strip():
        raise ValidationError("give the request a title", {"title": ["This field is required."]})
    chosen = project_policy(project)
    with transaction.atomic(durable=True), governed_writes(ReleaseRequest):
        request = ReleaseRequest.objects.create(
            project=project, title=title.strip()[:200], created_by=by,
            status_changed_at=timezone.now(), policy=chosen.as_json(),
        )  # fmt: skip
        record_event(event_type=EventType.RELEASE_REQUEST_CREATED, actor=by, target=request,
                     project_id=project.pk, data={"request_id": request.pk,
                                                  "policy": chosen.name})  # fmt: skip
    return request


def add_file(*, request: ReleaseRequest, job: Job, output: JobOutput | None, context: str,
             controls: str = "", by: User) -> ReleaseFile:  # fmt: skip
    """Add a job's output (or, with ``output`` None, a real job's log) with the
    researcher's context and controls, and run the automated checks on its bytes.
    Raises NotFound for a job or output of another project, ValidationError for a file
    that cannot be released. Events: outputs.file_added, outputs.checks_run."""
    if job.project_id != request.project_id or (output is not None and output.job_id != job.pk):
        raise NotFound("no such output")
    if job.status != Job.Status.SUCCEEDED and output is not None:
        raise ValidationError("only outputs of jobs that succeeded can be released")
    if output is None and (job.on_dummy or not job.log_sha256):
        raise ValidationError("only the log of a finished run on real data is kept for release")
    if output is not None and output.name.endswith(NOT_RELEASABLE):
        raise ValidationError("evidence files stay inside the environment; they are read "
                              "by the checks, not released")  # fmt: skip
    if not context.strip():
        raise ValidationError("say what the file shows", {"context": ["This field is required."]})
    with transaction.atomic(durable=True):
        locked = _editable(request, by)
        name = output.name if output is not None else f"job-{job.pk}-log.txt"
        if locked.files.filter(job=job, name=name, removed_round__isnull=True).exists():
            raise ValidationError(f"{name} of job {job.pk} is already in the request")
        data, sha = _read_verified(job, output)
        verdict = _check(job, output, name, data, Policy(**locked.policy))
        with governed_writes(ReleaseFile):
            file = ReleaseFile.objects.create(
                request=locked, job=job, output=output, name=name, size=len(data), sha256=sha,
                context=context.strip(), controls=controls.strip(), verdict=verdict,
                outcome=verdict["outcome"], added_round=_round_of_changes(locked),
            )  # fmt: skip
        event = {"request_id": locked.pk, "file_id": file.pk, "job_id": job.pk, "name": name,
                 "sha256": sha}  # fmt: skip
        record_event(event_type=EventType.RELEASE_FILE_ADDED, actor=by, target=file,
                     project_id=locked.project_id, data=event)  # fmt: skip
        record_event(event_type=EventType.AUTOMATED_CHECKS_RUN, actor=get_system_user(),
                     target=file, project_id=locked.project_id,
                     data={**event, "outcome": verdict["outcome"], "rules": verdict["rules"],
                           "policy": verdict["policy"],
                           "checker_version": verdict["checker_version"]})  # fmt: skip
    return file


def _source(job: Job, output: JobOutput | None) -> tuple[Path, str]:
    """Where a job's file lies, and the hash recorded when the job registered it."""
    folder = data_root() / job.folder
    if output is None:
        return folder / "log.txt", job.log_sha256
    return folder / "output" / output.name, output.sha256


def _read_verified(job: Job, output: JobOutput | None) -> tuple[bytes, str]:
    """The file's bytes, refused if they are not what the job registered (changed on disk
    since: never checked, reviewed or released)."""
    path, registered = _source(job, output)
    try:
        data = path.read_bytes()
    except OSError:
        raise ValidationError("the file is no longer inside the environment") from None
    sha = hashlib.sha256(data).hexdigest()
    if sha != registered:
        raise ValidationError("the file has changed since the job produced it; it cannot be "
                              "released")  # fmt: skip
    return data, sha


def _check(job: Job, output: JobOutput | None, name: str, data: bytes,
           chosen: Policy) -> dict[str, Any]:  # fmt: skip
    """The automated check of one file with the evidence its job wrote beside it."""
    folder = data_root() / job.folder / "output"
    evidence = None
    related = {}
    if output is not None and name.endswith(".csv"):
        sidecar = folder / (name[: -len(".csv")] + ".evidence.json")
        evidence = sidecar.read_bytes() if sidecar.is_file() else None
    if output is not None and name.endswith(".png"):
        chart = folder / (name[: -len(".png")] + ".chart.json")
        evidence = chart.read_bytes() if chart.is_file() else None
        table = selectors.chart_table(evidence)
        if table is not None and (folder / f"{table}.csv").is_file():
            related[f"{table}.csv"] = _verdict_of(folder, f"{table}.csv", chosen)
    ledger = _ledger(job, name) if output is not None else None
    return check_output(name, data, policy=chosen, evidence=evidence, related=related,
                        ledger=ledger).as_json()  # fmt: skip


def _candidate_ledger(job: Job, name: str) -> Path | None:
    """The person sets the helper library recorded for a table, if any (never through a
    link: the job's folders are the researcher's code's to write)."""
    if not name.endswith(".csv"):
        return None
    output = data_root() / job.folder / "output"
    path = output / CONTROL / "ledger" / (name[: -len(".csv")] + ".parquet")
    parts = (output / CONTROL, output / CONTROL / "ledger", path)
    if any(p.is_symlink() for p in parts) or not path.is_file():
        return None
    return path


def _ledger(job: Job, name: str) -> Ledger | None:
    """The table's person sets and those of the project's released tables, for X2;
    None (the verdict notes differencing was not checked) without the table's own."""
    path = _candidate_ledger(job, name)
    if path is None:
        return None
    try:
        candidate = LedgerTable.read_parquet(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    store = data_root() / "ledger" / str(job.project_id)
    released = [LedgerTable.read_parquet(p) for p in sorted(store.glob("*.parquet"))]
    return Ledger(candidate=candidate, released=released)


def _verdict_of(folder: Path, name: str, chosen: Policy) -> Any:
    sidecar = folder / (name[: -len(".csv")] + ".evidence.json")
    evidence = sidecar.read_bytes() if sidecar.is_file() else None
    return check_output(name, (folder / name).read_bytes(), policy=chosen, evidence=evidence)


def remove_file(*, file: ReleaseFile, by: User) -> None:
    """Take a file out of a draft or returned request (kept, marked with the round, so a
    resubmission shows what changed). Event: outputs.file_removed."""
    with transaction.atomic(durable=True):
        locked = _editable(file.request, by)
        current = locked.files.filter(pk=file.pk, removed_round__isnull=True).first()
        if current is None:
            raise NotFound("no such file in the request")
        with governed_writes(ReleaseFile):
            current.removed_round = _round_of_changes(locked)
            current.save(update_fields=["removed_round"])
        record_event(event_type=EventType.RELEASE_FILE_REMOVED, actor=by, target=current,
                     project_id=locked.project_id,
                     data={"request_id": locked.pk, "file_id": current.pk})  # fmt: skip


def request_exception(*, file: ReleaseFile, rule: str, reason: str, justification: str,
                      by: User) -> ExceptionRequest:  # fmt: skip
    """The researcher's case for a rule the file did not pass (one per rule; filing again
    replaces it). Event: outputs.exception_requested."""
    if reason not in ExceptionRequest.Reason.values:
        raise ValidationError("choose a reason", {"reason": ["Choose a reason."]})
    if not justification.strip():
        raise ValidationError("explain why", {"justification": ["This field is required."]})
    with transaction.atomic(durable=True):
        locked = _editable(file.request, by)
        current = locked.files.filter(pk=file.pk, removed_round__isnull=True).first()
        if current is None:
            raise NotFound("no such file in the request")
        failing = selectors.non_pass_rules(current)
        if rule not in failing:
            raise ValidationError(f"{rule} is not a rule this file failed")
        cells = [f.get("cell") for f in current.verdict["findings"] if f["rule"] == rule]
        with governed_writes(ExceptionRequest):
            exception, _ = ExceptionRequest.objects.update_or_create(
                file=current, rule=rule,
                defaults={"reason": reason, "justification": justification.strip(),
                          "cells": cells, "created_by": by},
            )  # fmt: skip
        record_event(event_type=EventType.EXCEPTION_REQUESTED, actor=by, target=current,
                     project_id=locked.project_id,
                     data={"request_id": locked.pk, "file_id": current.pk, "rule": rule,
                           "reason": reason})  # fmt: skip
    return exception


def submit(*, request: ReleaseRequest, by: User) -> ReleaseRequest:
    """Submit (or resubmit after a return): at least one file, each still the bytes
    checked, and an exception filed for every rule a file did not pass. A resubmission
    starts a new review round. Event: outputs.request_submitted."""
    with transaction.atomic(durable=True):
        locked = _editable(request, by)
        files = list(selectors.current_files(locked))
        if not files:
            raise ValidationError("add at least one file")
        missing = {f.name: sorted(set(selectors.non_pass_rules(f)) - set(
            f.exceptions.values_list("rule", flat=True))) for f in files}  # fmt: skip
        missing = {name: rules for name, rules in missing.items() if rules}
        if missing:
            raise ValidationError(
                "file an exception request for every rule a file did not pass",
                {name: [f"No exception request for {', '.join(rules)}."]
                 for name, rules in missing.items()},
            )  # fmt: skip
        for file in files:
            _read_verified(file.job, file.output)
        resubmit = locked.status == S.RETURNED
        return _move(locked, "submit", by=by, submitted_at=timezone.now(), assignee=None,
                     round=locked.round + 1 if resubmit else locked.round,
                     data={"files": len(files), "resubmission": resubmit})  # fmt: skip


def withdraw(*, request: ReleaseRequest, by: User) -> ReleaseRequest:
    """The author withdraws a request not yet decided. Event: outputs.request_withdrawn."""
    policy.check_release_author(by, request, today=_today())
    with transaction.atomic(durable=True):
        return _move(request, "withdraw", by=by)


# --- The checkers' side -----------------------------------------------------------------
def start_review(*, request: ReleaseRequest, by: User) -> Review:
    """An independent checker takes the request for this round: two reviews per round,
    and a third only to settle files the two disagree on. The round's first checker is
    its assignee (a resubmission clears it). Event: outputs.review_started."""
    policy.check_review_release(by, request)
    with transaction.atomic(durable=True):
        locked = ReleaseRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status not in UNDER_REVIEW:
            raise InvalidTransition(f"the request is {locked.get_status_display().lower()}")
        existing = locked.reviews.filter(round=locked.round, reviewer=by).first()
        if existing is not None:
            return existing
        reviews = locked.reviews.filter(round=locked.round).count()
        if reviews >= 3:  # one third checker settles a dispute; a fourth would be a vote
            raise InvalidTransition("a third checker is already settling this round")
        if reviews == 2 and not (locked.status == S.REVIEWED and selectors.disputed(locked)):
            raise InvalidTransition("two checkers are already reviewing this round")
        with governed_writes(Review):
            review = Review.objects.create(request=locked, round=locked.round, reviewer=by)
        if locked.assignee_id is None:  # the round's first checker leads it (the queue says)
            locked.assignee = by
            with governed_writes(ReleaseRequest):
                locked.save(update_fields=["assignee"])
        record_event(event_type=EventType.REVIEW_STARTED, actor=by, target=locked,
                     project_id=locked.project_id,
                     data={"request_id": locked.pk, "round": locked.round,
                           "review": reviews + 1})  # fmt: skip
    return review


def comment_needed(file: ReleaseFile, decision: str) -> str | None:
    """The comment rules: approving a failing file, rejecting a passing one, and every
    decision on a file for review need a reason."""
    if decision == D.APPROVE and file.outcome == str(Status.FAIL):
        return "say why a file that failed the checks can be approved"
    if decision == D.REJECT and file.outcome == str(Status.PASS):
        return "say why a file that passed the checks is rejected"
    if file.outcome == str(Status.REVIEW):
        return "the checks left this file for review: record your reasoning"
    if decision == D.CHANGES:
        return "say what needs to change"
    return None


def decide_file(*, review: Review, file: ReleaseFile, decision: str, comment: str = "",
                exceptions: dict[str, bool] | None = None, by: User) -> FileDecision:  # fmt: skip
    """Record (or change, until the review is submitted) a checker's decision on a file.
    Event: outputs.file_decided."""
    if review.reviewer_id != by.pk:
        raise NotFound("no such review")
    policy.check_review_release(by, review.request)
    if decision not in D.values:
        raise ValidationError("choose approve, request changes or reject")
    if file.request_id != review.request_id or file.removed_round is not None:
        raise NotFound("no such file in the request")
    needed = comment_needed(file, decision)
    if needed and not comment.strip():
        raise ValidationError(needed, {"comment": [needed[0].upper() + needed[1:] + "."]})
    asked = set(file.exceptions.values_list("rule", flat=True))
    unknown = set(exceptions or {}) - asked
    if unknown:
        raise ValidationError(f"no exception was requested for {', '.join(sorted(unknown))}")
    with transaction.atomic(durable=True):
        locked = Review.objects.select_for_update().get(pk=review.pk)
        if locked.submitted_at is not None:
            raise InvalidTransition("this review has been submitted")
        if locked.round != locked.request.round:
            raise InvalidTransition("this review belongs to an earlier round")
        if locked.request.status not in UNDER_REVIEW:  # withdrawn, or settled without it
            raise InvalidTransition(f"the request is {locked.request.get_status_display().lower()}")
        with governed_writes(FileDecision):
            made, _ = FileDecision.objects.update_or_create(
                review=locked, file=file,
                defaults={"decision": decision, "comment": comment.strip(),
                          "exceptions": dict(exceptions or {})},
            )  # fmt: skip
        record_event(event_type=EventType.FILE_DECIDED, actor=by, target=file,
                     project_id=file.request.project_id,
                     data={"request_id": file.request_id, "file_id": file.pk,
                           "decision": decision})  # fmt: skip
    return made


def submit_review(*, review: Review, by: User) -> ReleaseRequest:
    """Submit a review: a decision on every file. The first moves the request to
    partially reviewed; the second to reviewed, and the request is then settled (approved
    and released, returned or rejected) unless the two disagree on a file, when a third
    checker's review settles it. Events: outputs.review_submitted, then the outcome's."""
    if review.reviewer_id != by.pk:
        raise NotFound("no such review")
    policy.check_review_release(by, review.request)
    with transaction.atomic(durable=True):
        request = ReleaseRequest.objects.select_for_update().get(pk=review.request_id)
        locked = Review.objects.select_for_update().get(pk=review.pk)
        if locked.submitted_at is not None:
            raise InvalidTransition("this review has already been submitted")
        if locked.round != request.round or request.status not in UNDER_REVIEW:
            raise InvalidTransition(f"the request is {request.get_status_display().lower()}")
        files = list(selectors.current_files(request))
        decided = set(locked.decisions.values_list("file_id", flat=True))
        undecided = [f.name for f in files if f.pk not in decided]
        if undecided:
            raise ValidationError(f"decide every file first: {', '.join(undecided)}")
        with governed_writes(Review):
            locked.submitted_at = timezone.now()
            locked.save(update_fields=["submitted_at"])
        earlier = request.reviews.filter(round=request.round, submitted_at__isnull=False)
        submitted = earlier.count()
        if submitted == 1:
            return _move(request, "first_review", by=by, data={"review": 1})
        if submitted == 2:
            request = _move(request, "second_review", by=by, data={"review": 2})
        else:
            record_event(event_type=EventType.REVIEW_SUBMITTED, actor=by, target=request,
                         project_id=request.project_id,
                         data={"request_id": request.pk, "round": request.round,
                               "review": submitted, "status": request.status})  # fmt: skip
        return _settle(request, by)


def _settle(request: ReleaseRequest, by: User) -> ReleaseRequest:
    """Once every file is settled: approve (and release), return or reject."""
    results = selectors.settled(request)
    if any(result is None for result in results.values()):
        return request  # a disagreement waits for a third checker
    counts = Counter(results.values())
    with governed_writes(ReleaseFile):
        for file in selectors.current_files(request):
            file.decision = str(results[file.pk])
            file.save(update_fields=["decision"])
    summary = {"approved": counts[D.APPROVE], "changes": counts[D.CHANGES],
               "rejected": counts[D.REJECT]}  # fmt: skip
    if counts[D.CHANGES]:
        return _move(request, "return", by=by, data=summary)
    if not counts[D.APPROVE]:
        return _move(request, "reject", by=by, data=summary)
    approved = _move(request, "approve", by=by, data=summary)
    return _release(approved)


def _release(request: ReleaseRequest) -> ReleaseRequest:
    """Copy each approved file's reviewed bytes into the release store, verifying them
    against the hash the checkers saw; a file changed since is never released (the whole
    release stops). Event: outputs.released."""
    system = get_system_user()
    verified = []  # every file is verified before any is copied: all or nothing
    for file in selectors.current_files(request).filter(decision=D.APPROVE):
        data, sha = _read_verified(file.job, file.output)
        if sha != file.sha256:
            raise ValidationError(f"{file.name} changed after it was reviewed; nothing released")
        verified.append((file, data, sha))
    store = data_root() / "releases" / str(request.project_id) / str(request.pk)
    store.mkdir(parents=True, exist_ok=True)
    released = []
    try:
        for file, data, sha in verified:
            target = store / f"{file.pk}-{file.name}"
            temporary = target.with_suffix(target.suffix + ".partial")
            temporary.write_bytes(data)
            temporary.chmod(0o440)
            temporary.replace(target)
            if file_sha256(target) != sha:
                raise ValidationError(f"{file.name} could not be stored intact; nothing released")
            with governed_writes(ReleasedFile):
                ReleasedFile.objects.create(file=file, path=str(target.relative_to(data_root())),
                                            sha256=sha, size=len(data))  # fmt: skip
            released.append({"file_id": file.pk, "name": file.name, "sha256": sha})
            _keep_ledger(request, file)
        projects.count_released_outputs(project=request.project, change=len(released))
        return _move(request, "release", by=system, released_at=timezone.now(),
                     data={"files": released})  # fmt: skip
    except BaseException:
        # The transaction this runs in rolls back (a file not stored intact, the database
        # gone mid-way): nothing is released, so no copy or ledger entry may stay behind.
        _discard_copies(request)
        raise


def _discard_copies(request: ReleaseRequest) -> None:
    shutil.rmtree(data_root() / "releases" / str(request.project_id) / str(request.pk),
                  ignore_errors=True)  # fmt: skip
    for entry in (data_root() / "ledger" / str(request.project_id)).glob(f"{request.pk}-*.parquet"):
        entry.unlink(missing_ok=True)


def _keep_ledger(request: ReleaseRequest, file: ReleaseFile) -> None:
    """A released table's person sets join the project's ledger, which later requests'
    tables are differenced against (inside the environment; never released)."""
    path = _candidate_ledger(file.job, file.name)
    if path is None:
        return
    table = LedgerTable.read_parquet(path)
    store = data_root() / "ledger" / str(request.project_id)
    store.mkdir(parents=True, exist_ok=True)
    dataclasses.replace(table, release=str(request.pk)).to_parquet(
        store / f"{request.pk}-{file.pk}.parquet"
    )


def revoke(*, request: ReleaseRequest, by: User, reason: str) -> ReleaseRequest:
    """IG revokes a release: its files can no longer be downloaded (copies already taken
    are a matter for the data sharing agreement). Event: outputs.release_revoked."""
    policy.check_revoke_release(by, request)
    if not reason.strip():
        raise ValidationError("give a reason", {"reason": ["This field is required."]})
    with transaction.atomic(durable=True):
        released = ReleasedFile.objects.filter(file__request=request).count()
        projects.count_released_outputs(project=request.project, change=-released)
        return _move(
            request,
            "revoke",
            by=by,
            revoked_at=timezone.now(),
            revoked_reason=reason.strip()[:500],
            data={"reason": reason.strip()[:500]},
        )


# --- Reading files ----------------------------------------------------------------------
def open_for_review(*, file: ReleaseFile, by: User) -> tuple[bytes, bool]:
    """A file's current bytes for a checker of its request, and whether they still are
    the bytes checked (False: changed since; the page warns). Event: outputs.file_viewed."""
    policy.check_review_release(by, file.request)
    path, _ = _source(file.job, file.output)
    try:
        data = path.read_bytes()
    except OSError:
        raise NotFound("the file is no longer inside the environment") from None
    unchanged = hashlib.sha256(data).hexdigest() == file.sha256
    with transaction.atomic(durable=True):
        record_event(event_type=EventType.OUTPUT_FILE_VIEWED, actor=by, target=file,
                     project_id=file.request.project_id,
                     data={"request_id": file.request_id, "file_id": file.pk,
                           "unchanged": unchanged})  # fmt: skip
    return data, unchanged


def _released_bytes(file: ReleaseFile, request: ReleaseRequest) -> tuple[bytes, str]:
    """A released file's stored copy, verified against the reviewed hash (a mismatch is
    refused, never served)."""
    released = ReleasedFile.objects.filter(file=file).first()
    if request.status != S.RELEASED or released is None or file.request_id != request.pk:
        raise NotFound("no such released file")
    try:
        data = (data_root() / released.path).read_bytes()
    except OSError:
        raise NotFound("the released file is no longer in the release store") from None
    if hashlib.sha256(data).hexdigest() != released.sha256 or released.sha256 != file.sha256:
        raise PermissionDenied("the stored file does not match what was reviewed, so it "
                               "is withheld")  # fmt: skip
    return data, released.sha256


def _record_downloads(request: ReleaseRequest, by: User, files: list[tuple[ReleaseFile, str]]
                      ) -> None:  # fmt: skip
    with transaction.atomic(durable=True):
        for file, sha in files:
            record_event(event_type=EventType.RELEASED_FILE_DOWNLOADED, actor=by, target=file,
                         project_id=request.project_id,
                         data={"request_id": request.pk, "file_id": file.pk,
                               "sha256": sha})  # fmt: skip


def _current(request_id: int) -> ReleaseRequest:
    """The request as it is now, not as the caller loaded it (a revocation since counts)."""
    return ReleaseRequest.objects.select_related("project").get(pk=request_id)


def open_released(*, file: ReleaseFile, by: User) -> bytes:
    """A released file's bytes for a member of its project, verified against the reviewed
    hash. Event: outputs.file_downloaded."""
    request = _current(file.request_id)
    policy.check_download_release(by, request)
    data, sha = _released_bytes(file, request)
    _record_downloads(request, by, [(file, sha)])
    return data


def released_archive(*, request: ReleaseRequest, by: User) -> bytes:
    """Every released file of a request in one zip (``job-<job id>/<name>``, with
    ``manifest.json`` and ``SHA256SUMS``). Every file is verified before any is recorded
    as downloaded, so a refused archive audits nothing. Event: outputs.file_downloaded
    per file."""
    request = _current(request.pk)
    policy.check_download_release(by, request)
    files = [f for f in selectors.current_files(request) if f.decision == D.APPROVE]
    if request.status != S.RELEASED or not files:
        raise NotFound("nothing of this request is released")
    contents = [(file, *_released_bytes(file, request)) for file in files]
    buffer = io.BytesIO()
    entries, sums = [], []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file, data, sha in contents:
            path = selectors.release_path(file)
            archive.writestr(path, data)
            entries.append({"path": path, "name": file.name, "file_id": file.pk,
                            "job_id": file.job_id, "size": len(data), "sha256": sha})  # fmt: skip
            sums.append(f"{sha}  {path}\n")
        manifest = {
            "release_request": request.pk, "title": request.title,
            "project": request.project_id, "round": request.round,
            "policy": request.policy.get("name", ""),
            "released_at": request.released_at.isoformat() if request.released_at else None,
            "files": entries,
        }  # fmt: skip
        archive.writestr("manifest.json", json.dumps(manifest, indent=1) + "\n")
        archive.writestr("SHA256SUMS", "".join(sums))
    _record_downloads(request, by, [(file, sha) for file, _, sha in contents])
    return buffer.getvalue()
