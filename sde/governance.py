"""Governed models refuse direct writes.

A governed model can be inserted, updated or deleted only inside ``governed_writes(...)``
naming that model, which only services open. ``save()``, ``delete()`` and the bulk
queryset methods all check, so a view, a signal or a shell session that writes one
directly fails loudly instead of bypassing the service (and its audit event).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import models

from sde.audit.events import EventType
from sde.exceptions import GovernedWriteRefused

_allowed: ContextVar[frozenset[type[models.Model]]] = ContextVar(
    "sde_governed_writes", default=frozenset()
)


@contextmanager
def governed_writes(*model_classes: type[models.Model]) -> Iterator[None]:
    """Allow writes to the given governed models for the duration of the block."""
    token = _allowed.set(_allowed.get() | frozenset(model_classes))
    try:
        yield
    finally:
        _allowed.reset(token)


def _check(model: type[models.Model], operation: str) -> None:
    if model not in _allowed.get():
        raise GovernedWriteRefused(
            f"{model.__name__} is governed: {operation} it through its service."
        )


class GovernedQuerySet(models.QuerySet):  # type: ignore[type-arg]
    def update(self, **kwargs: Any) -> int:
        _check(self.model, "update")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        _check(self.model, "delete")
        return super().delete()

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        _check(self.model, "create")
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs: Any, *args: Any, **kwargs: Any) -> int:
        _check(self.model, "update")
        return super().bulk_update(objs, *args, **kwargs)

    def get_or_create(self, *args: Any, **kwargs: Any) -> Any:
        _check(self.model, "create")
        return super().get_or_create(*args, **kwargs)

    def update_or_create(self, *args: Any, **kwargs: Any) -> Any:
        _check(self.model, "update")
        return super().update_or_create(*args, **kwargs)


class GovernedModel(models.Model):
    """Abstract base for models written only by their services."""

    objects = GovernedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        _check(type(self), "save")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        _check(type(self), "delete")
        return super().delete(*args, **kwargs)


@dataclass(frozen=True)
class Transition:
    """One row of a workflow's transition table: from which statuses an action moves a
    governed object, to which, who owns the action, and the audit event it writes."""

    sources: frozenset[str]
    target: str
    owner: str
    event: EventType
