"""The data catalogue, ingestion, the opt-out register and extracts."""

from __future__ import annotations

from typing import Any

from sde.exceptions import NotFound, PermissionDenied
from sde.identity.roles import Capability
from sde.policy.base import _active, _require, has_capability


# --- Data catalogue and ingestion -------------------------------------------------------
def user_can_manage_datasets(user: Any) -> bool:
    return has_capability(user, Capability.MANAGE_DATASETS)


def check_manage_datasets(user: Any) -> None:
    """Data custodians; and the system actor, for operators running ``manage.py ingest``
    on the server (shell access to the platform is custodian-level trust)."""
    if getattr(user, "is_system", False):
        return
    _require(user, Capability.MANAGE_DATASETS)


def user_can_read_catalogue(user: Any) -> bool:
    # Metadata only, never rows: every signed-in person may read the catalogue.
    return _active(user)


# --- Opt-out register and extracts ------------------------------------------------------
def user_can_manage_optouts(user: Any) -> bool:
    return has_capability(user, Capability.MANAGE_OPT_OUTS)


def check_manage_optouts(user: Any) -> None:
    """IG officers only. Anyone else gets 404: researchers never learn opt-out data."""
    if not user_can_manage_optouts(user):
        raise NotFound("no such page")


def user_can_decide_optout_change(user: Any, change: Any) -> bool:
    return user_can_manage_optouts(user) and change.proposed_by_id != user.pk


def check_decide_optout_change(user: Any, change: Any) -> None:
    """A second IG officer: never the one who proposed the change."""
    check_manage_optouts(user)
    if change.proposed_by_id == user.pk:
        raise PermissionDenied("a second IG officer must decide a change you proposed")


def check_withdraw_optout_change(user: Any, change: Any) -> None:
    check_manage_optouts(user)
    if change.proposed_by_id != user.pk:
        raise PermissionDenied("only the IG officer who proposed a change can withdraw it")


def check_build_extract(user: Any) -> None:
    """Extracts are provisioned by data custodians, or by the system for an approved
    project; a researcher never builds (or chooses the scope of) their own extract."""
    check_manage_datasets(user)
