"""Changes to the opt-out rules: decision table versions and project exemptions, each
proposed by one IG officer and decided by another.

The decision table (``sde.data.optouts``) is data: version 1 is the built-in
``DEFAULT_DECISION_TABLE``; each later version is an approved ``OptOutChange`` holding the
whole table. A project exemption records the evidence the table's "unless" and "case by
case" cells read (a CAG letter, a legal instrument, a Caldicott decision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from django.db import transaction
from django.utils import timezone

from sde import policy
from sde.audit.events import EventType
from sde.audit.services import record_event
from sde.data.models import OptOutChange
from sde.data.optouts import (
    DEFAULT_DECISION_TABLE,
    Application,
    DecisionTable,
    decision_table_from_json,
)
from sde.exceptions import InvalidTransition, ValidationError
from sde.governance import governed_writes
from sde.identity.models import User

Status = OptOutChange.Status
# The two-person change workflow: status -> statuses it may move to, and who moves it.
CHANGE_TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    Status.PROPOSED: frozenset({Status.APPROVED, Status.REJECTED, Status.WITHDRAWN}),
    Status.APPROVED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}
CHANGE_OWNERS: Final[Mapping[str, str]] = {
    Status.PROPOSED: "IG officer (proposer)",
    Status.APPROVED: "a second IG officer",
    Status.REJECTED: "a second IG officer",
    Status.WITHDRAWN: "IG officer (proposer)",
}
EXEMPTION_FLAGS: Final = ("cag_letter_disapplies_type1", "instrument_overrides_type1")
MAX_PROJECT_NUMBER: Final = 999_999_999  # see propose_exemption


def current_decision_table() -> DecisionTable:
    change = (
        OptOutChange.objects.filter(kind=OptOutChange.Kind.DECISION_TABLE, status=Status.APPROVED)
        .order_by("-table_version")
        .first()
    )
    return DEFAULT_DECISION_TABLE if change is None else decision_table_from_json(change.payload)


def _require_reason(reason: str, field: str = "reason") -> str:
    if not reason.strip():
        raise ValidationError("a reason is required", {field: ["Give the reason."]})
    return reason.strip()


def propose_table_change(*, table: Mapping[str, Any], reason: str, by: User) -> OptOutChange:
    """Propose a new decision table (JSON as ``DecisionTable.to_json`` gives; its version
    is set on approval). Raises NotFound unless ``by`` is IG; DecisionTableError for an
    invalid table; ValidationError for no reason or no change.
    Event: governance.optout_change_proposed."""
    policy.check_manage_optouts(by)
    reason = _require_reason(reason)
    current = current_decision_table()
    candidate = decision_table_from_json({**table, "version": current.version + 1})
    if {**candidate.to_json(), "version": 0} == {**current.to_json(), "version": 0}:
        raise ValidationError(
            "the proposal is the current table", {"table": ["Change at least one cell."]}
        )
    return _propose(
        kind=OptOutChange.Kind.DECISION_TABLE,
        payload=candidate.to_json(),
        reason=reason,
        by=by,
        based_on_version=current.version,
    )


def propose_platform_policy(
    *, cells: Mapping[tuple[str, str], str], reason: str, by: User
) -> OptOutChange:
    """Propose new values for the "applied (platform policy)" cells of the current table:
    ``{(basis, kind): "applied" | "not_applied"}``."""
    current = current_decision_table().to_json()
    policy_cells = {basis: dict(kinds) for basis, kinds in current["platform_policy"].items()}
    for (basis, kind), value in cells.items():
        policy_cells.setdefault(basis, {})[kind] = value
    return propose_table_change(
        table={**current, "platform_policy": policy_cells}, reason=reason, by=by
    )


def propose_exemption(
    *,
    project_id: int,
    cag_letter_disapplies_type1: bool = False,
    instrument_overrides_type1: bool = False,
    caldicott_type1_decision: str | None = None,
    reason: str,
    by: User,
) -> OptOutChange:
    """Propose a project's opt-out exemption: the evidence the decision table's "unless"
    and "case by case" cells read (a CAG letter, a legal instrument, a Caldicott decision).
    Raises NotFound unless ``by`` is IG; ValidationError for bad values or no reason.
    Event: governance.optout_change_proposed."""
    policy.check_manage_optouts(by)
    errors: dict[str, list[str]] = {}
    # Up to nine digits: the column holds no more (PostgreSQL refused larger numbers with a
    # 500), and ten digits look like an NHS number, which the audit event refuses to carry.
    if (
        isinstance(project_id, bool)
        or not isinstance(project_id, int)
        or not 1 <= project_id <= MAX_PROJECT_NUMBER
    ):
        errors["project_id"] = ["Give the project's number."]
    allowed = (None, Application.APPLIED.value, Application.NOT_APPLIED.value)
    if caldicott_type1_decision not in allowed:
        errors["caldicott_type1_decision"] = ["Either applied, not applied, or none recorded."]
    if errors:
        raise ValidationError("the exemption is not valid", errors)
    payload = {
        "cag_letter_disapplies_type1": bool(cag_letter_disapplies_type1),
        "instrument_overrides_type1": bool(instrument_overrides_type1),
        "caldicott_type1_decision": caldicott_type1_decision,
    }
    return _propose(
        kind=OptOutChange.Kind.EXEMPTION,
        payload=payload,
        reason=_require_reason(reason),
        by=by,
        project_id=project_id,
    )


def _propose(*, kind: str, payload: dict[str, Any], reason: str, by: User, **fields: Any) -> Any:
    with transaction.atomic(durable=True), governed_writes(OptOutChange):
        change = OptOutChange(kind=kind, payload=payload, reason=reason, proposed_by=by, **fields)
        change.save()
        record_event(
            event_type=EventType.OPT_OUT_CHANGE_PROPOSED,
            actor=by,
            target=change,
            data={"kind": kind, "project_id": change.project_id},
        )
    return change


def _transition(change: OptOutChange, to: str) -> None:
    if to not in CHANGE_TRANSITIONS[change.status]:
        raise InvalidTransition(f"this change is {change.get_status_display().lower()}")


def decide_change(*, change: OptOutChange, approve: bool, reason: str, by: User) -> OptOutChange:
    """Approve or reject a proposed change. Only an IG officer who did not propose it may
    decide (NotFound for non-IG, PermissionDenied for the proposer); a rejection needs a
    reason; a table change made against an older table than the current one is refused
    (InvalidTransition: propose it again). Events: governance.optout_policy_changed,
    governance.optout_exemption_approved, or governance.optout_change_rejected."""
    policy.check_manage_optouts(by)
    to = Status.APPROVED if approve else Status.REJECTED
    with transaction.atomic(durable=True), governed_writes(OptOutChange):
        locked = OptOutChange.objects.select_for_update().get(pk=change.pk)
        policy.check_decide_optout_change(by, locked)
        _transition(locked, to)
        if not approve:
            reason = _require_reason(reason, "decision_reason")
        event, data = EventType.OPT_OUT_CHANGE_REJECTED, {"kind": locked.kind}
        if approve and locked.kind == OptOutChange.Kind.DECISION_TABLE:
            current = current_decision_table()
            if current.version != locked.based_on_version:
                raise InvalidTransition(
                    f"the decision table is now version {current.version}; this change was "
                    f"made against version {locked.based_on_version}: propose it again"
                )
            locked.table_version = current.version + 1
            locked.payload = {**locked.payload, "version": locked.table_version}
            event, data = EventType.OPT_OUT_POLICY_CHANGED, {"version": locked.table_version}
        elif approve:
            event = EventType.OPT_OUT_EXEMPTION_APPROVED
            data = {"project_id": locked.project_id, **locked.payload}
        locked.status, locked.decided_by, locked.decided_at = to, by, timezone.now()
        locked.decision_reason = reason.strip()
        locked.save()
        record_event(event_type=event, actor=by, target=locked, data=data)
    return locked


def withdraw_change(*, change: OptOutChange, by: User) -> OptOutChange:
    """The proposer withdraws a change nobody has decided. Event:
    governance.optout_change_withdrawn."""
    policy.check_manage_optouts(by)
    with transaction.atomic(durable=True), governed_writes(OptOutChange):
        locked = OptOutChange.objects.select_for_update().get(pk=change.pk)
        policy.check_withdraw_optout_change(by, locked)
        _transition(locked, Status.WITHDRAWN)
        locked.status, locked.decided_at = Status.WITHDRAWN, timezone.now()
        locked.save()
        record_event(
            event_type=EventType.OPT_OUT_CHANGE_WITHDRAWN,
            actor=by,
            target=locked,
            data={"kind": locked.kind},
        )
    return locked


def exemption_for(project_id: int) -> OptOutChange | None:
    """The project's latest approved exemption (None: no exemption, everything applies)."""
    return (
        OptOutChange.objects.filter(
            kind=OptOutChange.Kind.EXEMPTION, status=Status.APPROVED, project_id=project_id
        )
        .order_by("-decided_at", "-pk")
        .first()
    )


def exemption_flags(exemption: OptOutChange | None) -> dict[str, Any]:
    """The keyword arguments ``optouts.treatment_for`` takes from an exemption."""
    payload = exemption.payload if exemption is not None else {}
    return {
        "cag_letter_disapplies_type1": bool(payload.get("cag_letter_disapplies_type1")),
        "instrument_overrides_type1": bool(payload.get("instrument_overrides_type1")),
        "caldicott_type1_decision": payload.get("caldicott_type1_decision"),
    }


def visible_changes_for(user: User) -> Any:
    policy.check_manage_optouts(user)
    return OptOutChange.objects.select_related("proposed_by", "decided_by")
