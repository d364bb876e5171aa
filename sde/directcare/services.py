"""The direct care workflow: request, two sign-offs, the decryption, the list and its
expiry (reference/pseudonymisation.md, "Identity vault and re-identification").

``TRANSITIONS`` is the one definition of who moves a request between states:

    (new) --request (clinician at the practice)--> submitted
    submitted --approve (IG officer or Caldicott Guardian)--> partially_approved
    partially_approved --approve (the other of the two, another person)--> approved
    submitted|partially_approved --refuse (either)--> refused
    submitted|partially_approved --withdraw (the clinician)--> withdrawn
    approved --perform (system: PP -> SP -> NHS number for the practice's members)--> ready
    approved --fail (system: a key, the cohort or the data does not hold)--> failed
    ready --expire (system, after valid_days; the list file is deleted)--> expired

Separation of duties is checked here (``sde.policy``), so pages, API and shell alike need
two different people, neither the requester, and give the list to the requester only.
The list is decrypted from the vault once, when it is made, and kept sealed (AES-256-GCM
under the vault key) until it expires; no NHS number is ever logged, audited or sent to
a worker in a message.
"""

from __future__ import annotations

import io
import logging
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from sde import policy
from sde.analysis.models import Cohort
from sde.audit.events import EventType
from sde.audit.services import get_system_user, record_event
from sde.csv_safety import safe_cell
from sde.data import vault
from sde.data.files import data_root, intact
from sde.data.models import Dataset, DatasetVersion, IdentityVaultRecord
from sde.data.pseudonymisation import project_key
from sde.data.source_format import PEOPLE_TABLE
from sde.directcare import reidentify
from sde.directcare.models import ReidentificationDecision, ReidentificationRequest
from sde.exceptions import InvalidTransition, NotFound, SDEError, ValidationError
from sde.governance import Transition, governed_writes
from sde.identity.models import Organisation, User
from sde.keys import keyring

Request = ReidentificationRequest
S = ReidentificationRequest.Status
R = ReidentificationDecision.Role
CLINICIAN, SIGNER, SYSTEM = "clinician (own practice)", "IG officer or Caldicott Guardian", "system"
GOVERNED: Final = (ReidentificationRequest, ReidentificationDecision)
OPEN: Final = frozenset({S.SUBMITTED, S.PARTIALLY_APPROVED})
TRANSITIONS: Final[dict[str, Transition]] = {
    "approve": Transition(frozenset({S.SUBMITTED}), S.PARTIALLY_APPROVED, SIGNER,
                          EventType.REID_APPROVED),
    "second_approval": Transition(frozenset({S.PARTIALLY_APPROVED}), S.APPROVED, SIGNER,
                                  EventType.REID_APPROVED),
    "refuse": Transition(OPEN, S.REFUSED, SIGNER, EventType.REID_REJECTED),
    "withdraw": Transition(OPEN, S.WITHDRAWN, CLINICIAN, EventType.REID_WITHDRAWN),
    "perform": Transition(frozenset({S.APPROVED}), S.READY, SYSTEM, EventType.REID_PERFORMED),
    "fail": Transition(frozenset({S.APPROVED}), S.FAILED, SYSTEM, EventType.REID_FAILED),
    "expire": Transition(frozenset({S.READY}), S.EXPIRED, SYSTEM, EventType.REID_LIST_EXPIRED),
}  # fmt: skip
MIN_REASON = 20
VAULT_CHUNK = 2000  # system pseudonyms per vault query (SQLite's variable limit)
logger = logging.getLogger(__name__)
LIST_COLUMNS: Final = {"nhs_number": "NHS number", "birth_month": "Month of birth", "sex": "Sex"}


class ListUnavailable(InvalidTransition):
    """A made list does not open (missing file or key, or a changed file): nothing is
    shown, and the pages and API say so (409)."""


class ReidentificationError(SDEError):
    """The list cannot be made safely; the request fails closed with this reason."""


def _audit(request: ReidentificationRequest, event: EventType, by: User, **data: Any) -> None:
    """Counts, ids and the practice's code only: never an NHS number or a pseudonym."""
    record_event(event_type=event, actor=by, target=request, project_id=request.project_id,
                 data={"request_id": request.pk, "cohort_id": request.cohort_id,
                       "practice": request.practice_ods, **data})  # fmt: skip


def _move(request: Request, action: str, *, by: User, data: dict[str, Any] | None = None,
          **fields: Any) -> Request:  # fmt: skip
    """The one place a request's status changes: re-read under lock, check the table, set
    status and fields, write the event. Call inside a transaction."""
    step = TRANSITIONS[action]
    locked = ReidentificationRequest.objects.select_for_update().get(pk=request.pk)
    if locked.status not in step.sources:
        raise InvalidTransition(
            f'the request\'s status is now "{locked.get_status_display()}": '
            f"'{action.replace('_', ' ')}' is not possible"
        )
    locked.status, locked.status_changed_at = step.target, timezone.now()
    for name, value in fields.items():
        setattr(locked, name, value)
    with governed_writes(ReidentificationRequest):
        locked.save()
    _audit(locked, step.event, by, status=step.target, **(data or {}))
    return locked


def list_fields(cohort: Cohort) -> list[str]:
    """The demographic columns a list from this cohort carries besides the NHS number:
    those of the people table the project's approved scope includes."""
    people = Dataset.objects.filter(source_table=PEOPLE_TABLE).first()
    datasets = (cohort.project.scope or {}).get("datasets", {})
    approved = datasets.get(people.slug, []) if people else []
    return [name for name in reidentify.DEMOGRAPHICS if name in approved]


# --- The clinician's side -----------------------------------------------------------------
def request_reidentification(*, cohort: Cohort, practice: Organisation | None, reason: str,
                             by: User) -> ReidentificationRequest:  # fmt: skip
    """A clinician asks for the cohort's members registered at their own practice.
    NotFound for a cohort they may not see (a research project's is never shown to them);
    PermissionDenied for another practice; ValidationError for a reason too short to
    judge."""
    policy.check_request_reidentification(by, cohort, practice)
    assert practice is not None  # checked by the policy
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise ValidationError(
            "say what direct care the list is for",
            {"reason": [f"Say what direct care the list is for (at least {MIN_REASON} "
                        "characters): the IG officer and the Caldicott Guardian decide on it."]},
        )  # fmt: skip
    with transaction.atomic(), governed_writes(ReidentificationRequest):
        request = ReidentificationRequest.objects.create(
            cohort=cohort, project=cohort.project, practice=practice,
            practice_ods=practice.ods_code or "", requested_by=by, reason=reason,
            status_changed_at=timezone.now(), valid_days=settings.SDE_REID_LIST_DAYS,
            fields=list_fields(cohort),
        )  # fmt: skip
        _audit(request, EventType.REID_REQUESTED, by, status=S.SUBMITTED)
    return request


def withdraw(*, request: ReidentificationRequest, by: User) -> ReidentificationRequest:
    policy.check_withdraw_reidentification(by, request)
    with transaction.atomic():
        return _move(request, "withdraw", by=by)


# --- The sign-offs -------------------------------------------------------------------------
def sign_off(*, request: ReidentificationRequest, by: User, role: str, outcome: str,
             comment: str = "") -> ReidentificationRequest:  # fmt: skip
    """One of the two sign-offs (``role`` "ig" or "caldicott"). A refusal needs a comment
    and ends the request; the second approval queues the decryption after commit."""
    policy.check_sign_off_reidentification(by, request, role)
    if outcome not in ReidentificationDecision.Outcome.values:
        raise ValidationError("no such outcome", {"outcome": ["Approve or refuse."]})
    comment = (comment or "").strip()
    if outcome == ReidentificationDecision.Outcome.REFUSE and not comment:
        raise ValidationError("say why", {"comment": ["Say why (the clinician sees it)."]})
    with transaction.atomic():
        locked = ReidentificationRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status not in OPEN:
            raise InvalidTransition(
                f'the request\'s status is now "{locked.get_status_display()}": it takes no '
                "more sign-offs"
            )
        # Re-checked under the lock: two sign-offs racing cannot both be one person's.
        policy.check_sign_off_reidentification(by, locked, role)
        if locked.decisions.filter(role=role).exists():
            raise InvalidTransition(f"the {R(role).label}'s sign-off is in already")
        with governed_writes(ReidentificationDecision):
            ReidentificationDecision.objects.create(
                request=locked, role=role, outcome=outcome, comment=comment, decided_by=by,
                decided_at=timezone.now(),
            )  # fmt: skip
        if outcome == ReidentificationDecision.Outcome.REFUSE:
            return _move(locked, "refuse", by=by, data={"role": role})
        action = "second_approval" if locked.status == S.PARTIALLY_APPROVED else "approve"
        moved = _move(locked, action, by=by, data={"role": role})
        if moved.status == S.APPROVED:
            transaction.on_commit(lambda: _enqueue(moved.pk), robust=True)
        return moved


def _enqueue(request_id: int) -> None:
    from sde.tasks import perform_reidentification_task  # tasks import services

    perform_reidentification_task.delay(request_id)


# --- The decryption (the worker) -----------------------------------------------------------
def _label(request_id: int) -> str:
    return f"sde.reidentified-list|request-{request_id}"


def _list_path(request_id: int) -> Path:
    return data_root() / "direct-care" / f"request-{request_id}.sealed"


def _system_key_version(cohort: Cohort) -> int:
    ids = [entry["id"] for entry in (cohort.extract.dataset_versions or {}).values()]
    versions = set(DatasetVersion.objects.filter(pk__in=ids).values_list("key_version", flat=True))
    if len(versions) != 1:
        raise ReidentificationError("the cohort's extract does not record one system key version")
    return versions.pop()


def _people_now(system_version: int, fields: list[str]) -> pd.DataFrame:
    """The latest people table, which says who is registered where today."""
    latest = (
        DatasetVersion.objects.filter(dataset__source_table=PEOPLE_TABLE)
        .order_by("-version")
        .first()
    )
    if latest is None:
        raise ReidentificationError("no registration data has been ingested")
    if latest.key_version != system_version:
        raise ReidentificationError(
            f"the cohort was found under system key version {system_version} and the data "
            f"now uses version {latest.key_version}: run the analysis again to find it afresh"
        )
    path = data_root() / latest.path
    if not intact(path, latest.checksum):
        raise ReidentificationError(
            "the registration data is missing or changed since it was ingested"
        )
    columns = list(reidentify.REGISTRATION_COLUMNS) + fields
    return pq.read_table(path, columns=columns).to_pandas()


def _cohort_pseudonyms(cohort: Cohort) -> pd.Series:
    path = data_root() / cohort.path
    if not intact(path, cohort.sha256):
        raise ReidentificationError("the cohort's file is missing or changed since it was saved")
    table = pq.read_table(path)
    column = "person_id" if "person_id" in table.column_names else table.column_names[0]
    return table[column].to_pandas().astype("string")


def _vault_records(pseudonyms: list[str]) -> pd.DataFrame:
    rows: list[tuple[str, bytes, int]] = []
    for start in range(0, len(pseudonyms), VAULT_CHUNK):
        rows += IdentityVaultRecord.objects.filter(
            system_pseudonym__in=pseudonyms[start : start + VAULT_CHUNK]
        ).values_list("system_pseudonym", "ciphertext", "key_version")
    if len(rows) != len(pseudonyms):
        raise ReidentificationError(
            f"{len(pseudonyms) - len(rows)} of the people have no identity vault record"
        )
    return pd.DataFrame(rows, columns=list(vault.COLUMNS))


def _make_list(request: Request, today: date) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The list (NHS number and the request's fields, in NHS number order) and what the
    audit event says about how it was made. ReidentificationError, VaultDecryptionError
    or ImproperlyConfigured (a key missing) when it cannot be made."""
    cohort = request.cohort
    refusal = policy.cohort_refusal(cohort)
    if refusal:
        raise ReidentificationError(f"the cohort can no longer be re-identified: {refusal}")
    if not policy.practices_for(request.requested_by).filter(pk=request.practice_id).exists():
        raise ReidentificationError("the clinician no longer works at the practice as a clinician")
    system_version = _system_key_version(cohort)
    master_version = cohort.extract.master_key_version
    master = keyring("master").keys.get(master_version) if master_version else None
    if master is None or master_version is None:
        raise ReidentificationError(f"no master key version {master_version} to map the cohort")
    members = reidentify.cohort_members(
        _people_now(system_version, list(request.fields)), _cohort_pseudonyms(cohort),
        project_key=project_key(master, cohort.project_id, master_version),
        practice_ods=request.practice_ods, today=today, fields=list(request.fields),
    )  # fmt: skip
    records = _vault_records(members["system_pseudonym"].tolist())
    by_pseudonym = vault.decrypt_identities(records, keys=keyring("vault").keys)
    numbers = pd.Series(by_pseudonym.to_numpy(), index=records["system_pseudonym"].to_numpy())
    out = pd.DataFrame({"nhs_number": numbers.reindex(members["system_pseudonym"]).to_numpy()})
    for name in request.fields:
        values = members[name]
        out[name] = (
            (pd.to_datetime(values).dt.strftime("%Y-%m") if name == "birth_month" else values)
            .astype("string")
            .to_numpy()
        )
    facts = {
        "people": len(out),
        "vault_key_versions": sorted({int(v) for v in records["key_version"].unique()}),
        "system_key_version": system_version,
        "project_key_version": master_version,
    }
    return out.sort_values("nhs_number", kind="stable").reset_index(drop=True), facts


def perform(*, request: Request, today: date | None = None) -> Request:
    """Make the approved request's list (the worker; idempotent: anything but an approved
    request is left as it is). Fails closed: any doubt ends in ``failed`` with a reason
    and no list."""
    system = get_system_user()
    request = ReidentificationRequest.objects.select_related(
        "cohort__project", "cohort__extract", "requested_by"
    ).get(pk=request.pk)
    if request.status != S.APPROVED:
        return request
    path = _list_path(request.pk)
    partial = path.with_name(f"{path.name}.{secrets.token_hex(4)}.partial")
    try:
        listing, facts = _make_list(request, today or timezone.localdate())
        key_version, key = keyring("vault").current()
        buffer = io.BytesIO()
        listing.to_parquet(buffer, index=False)
        sealed = vault.seal(buffer.getvalue(), key=key, key_version=key_version,
                            label=_label(request.pk))  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(sealed)
    except Exception as error:  # whatever it is: no list, and a clear end
        partial.unlink(missing_ok=True)
        known = (ReidentificationError, vault.VaultDecryptionError, ImproperlyConfigured)
        if isinstance(error, known):
            failure = str(error)
        else:  # an unexpected error's text could carry data: its class only, and a log line
            logger.exception("re-identification request %s failed", request.pk)
            failure = f"the list could not be made ({type(error).__name__}); see the logs"
        with transaction.atomic():
            return _move(request, "fail", by=system, failure=failure[:500],
                         data={"reason": type(error).__name__})  # fmt: skip
    now = timezone.now()
    try:
        with transaction.atomic():
            # Under the row's lock: a second worker given the same request waits here,
            # then finds it ready and leaves the first one's list alone.
            locked = ReidentificationRequest.objects.select_for_update().get(pk=request.pk)
            if locked.status != S.APPROVED:
                return locked
            partial.replace(path)
            return _move(
                locked, "perform", by=system, data={**facts, "list_key_version": key_version},
                people=facts["people"], key_version=key_version,
                path=str(path.relative_to(data_root())), performed_at=now,
                expires_at=now + timedelta(days=request.valid_days),
            )  # fmt: skip
    except BaseException:
        if not partial.exists():  # moved into place, and the transaction did not commit
            path.unlink(missing_ok=True)
        raise
    finally:
        partial.unlink(missing_ok=True)


# --- The list -----------------------------------------------------------------------------
def _expire(request: ReidentificationRequest, by: User) -> ReidentificationRequest:
    with transaction.atomic():
        expired = _move(request, "expire", by=by, path="")
    _list_path(request.pk).unlink(missing_ok=True)
    return expired


def _open_list(request: ReidentificationRequest, by: User, event: EventType) -> pd.DataFrame:
    policy.check_obtain_reidentified_list(by, request)
    request.refresh_from_db()
    if request.status == S.READY and request.expires_at and request.expires_at <= timezone.now():
        _expire(request, get_system_user())
        raise NotFound("the list has expired and been deleted")
    if request.status != S.READY:
        raise NotFound("no such list")
    try:
        blob = (data_root() / request.path).read_bytes()
        key = keyring("vault").keys.get(request.key_version or 0)
        if key is None:
            raise vault.VaultDecryptionError(f"no vault key version {request.key_version}")
        plain = vault.unseal(blob, key=key, key_version=int(request.key_version or 0),
                             label=_label(request.pk))  # fmt: skip
    except (OSError, vault.VaultDecryptionError) as error:  # fail closed, and say so
        logger.error("re-identified list %s cannot be opened: %s", request.pk, error)
        raise ListUnavailable(
            "the list cannot be opened: its file is missing or changed, or its key is not "
            "available. Nothing was shown; the data custodian has been told in the logs"
        ) from None
    listing = pd.read_parquet(io.BytesIO(plain))
    with transaction.atomic():  # audited before anything is shown
        _audit(request, event, by, people=len(listing))
    return listing


def view_list(*, request: ReidentificationRequest, by: User) -> pd.DataFrame:
    """The list, for the requesting clinician only (NotFound for anyone else, and once it
    has expired). Event: directcare.list_viewed."""
    return _open_list(request, by, EventType.REID_LIST_VIEWED)


def download_list(*, request: ReidentificationRequest, by: User) -> bytes:
    """The list as CSV (cells a spreadsheet would run are quoted). Event:
    directcare.list_downloaded."""
    listing = _open_list(request, by, EventType.REID_LIST_DOWNLOADED)
    listing = listing.rename(columns=LIST_COLUMNS).map(safe_cell)
    return listing.to_csv(index=False).encode("utf-8")


# --- The sweep ----------------------------------------------------------------------------
def sweep(*, now: Any = None) -> dict[str, Any]:
    """Delete lists past their time; send approved requests again when they have waited
    a while (the first send may have been lost to a broker outage); delete files a killed
    worker left behind (a half-written list, or one whose request never became ready)."""
    now = now or timezone.now()
    system = get_system_user()
    expired = []
    for request in ReidentificationRequest.objects.filter(status=S.READY, expires_at__lte=now):
        expired.append(_expire(request, system).pk)
    stale = now - timedelta(seconds=settings.SDE_JOB_RESEND_SECONDS)
    resent = list(
        ReidentificationRequest.objects.filter(
            status=S.APPROVED, status_changed_at__lte=stale
        ).values_list("pk", flat=True)
    )
    for pk in resent:
        _enqueue(pk)
    return {"expired": expired, "resent": resent, "removed": _remove_leftovers(stale)}


def _remove_leftovers(before: Any) -> int:
    """Files in the lists' folder older than ``before`` that no ready request names."""
    folder = _list_path(0).parent
    if not folder.is_dir():
        return 0
    ready = {str(data_root() / p) for p in Request.objects.filter(status=S.READY).values_list(
        "path", flat=True)}  # fmt: skip
    removed = 0
    for path in folder.iterdir():
        if str(path) not in ready and path.stat().st_mtime < before.timestamp():
            path.unlink(missing_ok=True)
            removed += 1
    return removed
