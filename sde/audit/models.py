"""The append-only, hash-chained audit log and its signed checkpoints."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from sde.exceptions import GovernedWriteRefused
from sde.governance import GovernedModel, GovernedQuerySet


class AppendOnlyQuerySet(GovernedQuerySet):
    """Bulk changes are refused even inside ``governed_writes``: the service may insert,
    nothing may update or delete (SQLite has no trigger to catch it)."""

    def update(self, **kwargs: Any) -> int:
        raise GovernedWriteRefused(f"{self.model.__name__} is append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise GovernedWriteRefused(f"{self.model.__name__} is append-only.")

    def bulk_update(self, objs: Any, *args: Any, **kwargs: Any) -> int:
        raise GovernedWriteRefused(f"{self.model.__name__} is append-only.")


class AppendOnlyModel(GovernedModel):
    """Insert through the service; never update or delete (also a trigger on PostgreSQL)."""

    objects: ClassVar[models.Manager[Any]] = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise GovernedWriteRefused(f"{type(self).__name__} is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise GovernedWriteRefused(f"{type(self).__name__} is append-only.")


class AuditEvent(AppendOnlyModel):
    """One event. Actor and target are ids plus a display name, not foreign keys, so the
    log never blocks deleting live data and never carries row-level data."""

    sequence = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    event_type = models.CharField(max_length=64, db_index=True)
    actor_id = models.BigIntegerField(null=True, db_index=True)
    actor_display = models.CharField(max_length=200)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    target_display = models.CharField(max_length=200, blank=True)
    project_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    data = models.JSONField(default=dict)
    entry_hash = models.CharField(max_length=64)
    chain_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.event_type}"


class AuditCheckpoint(AppendOnlyModel):
    """A signed statement of the chain at ``sequence``: publishable, verifiable offline."""

    sequence = models.BigIntegerField(unique=True)
    chain_hash = models.CharField(max_length=64)
    merkle_root = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    key_id = models.CharField(max_length=32)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"Checkpoint at #{self.sequence}"
