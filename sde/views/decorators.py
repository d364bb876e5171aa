"""Marks for the access gate. Every view is closed unless marked otherwise."""

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


def public(view: F) -> F:
    """Reachable without signing in (sign-in page, health check, transparency register)."""
    view.sde_public = True  # type: ignore[attr-defined]
    return view


def mfa_stage(view: F) -> F:
    """Reachable after the password but before the second factor (enrol, verify, sign out)."""
    view.sde_mfa_stage = True  # type: ignore[attr-defined]
    return view
