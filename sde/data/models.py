"""The dataset catalogue, ingestion runs, dataset versions and the identity vault.

Rows of data never live here: the linked, pseudonymised tables are Parquet files under
``SDE_DATA_ROOT``; these models hold metadata about them. The identity vault holds only
AES-256-GCM ciphertexts of NHS numbers (the key is outside the database).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sde.governance import GovernedModel
from sde.identity.models import Organisation, User


class Sensitivity(models.TextChoices):
    IDENTIFIER = "identifier", "Identifier"
    QUASI_IDENTIFIER = "quasi_identifier", "Quasi-identifier"
    SENSITIVE = "sensitive", "Sensitive"
    STANDARD = "standard", "Standard"


class Dataset(GovernedModel):
    """A table the environment holds, e.g. "GP events", with its governance facts."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField()
    source_table = models.CharField(
        max_length=64, unique=True, help_text="The table's name in a source drop."
    )
    controller = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="datasets"
    )
    controller_name = models.CharField(max_length=200)
    gp_sourced = models.BooleanField(help_text="GP data: Type 1 opt-outs apply to it.")
    dpia_reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetField(GovernedModel):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="fields")
    name = models.CharField(max_length=64)
    data_type = models.CharField(max_length=20)
    description = models.CharField(max_length=300)
    sensitivity = models.CharField(max_length=20, choices=Sensitivity.choices)
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["dataset", "position"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="one_field_name_per_dataset")
        ]

    def __str__(self) -> str:
        return f"{self.dataset.slug}.{self.name}"


class Ingest(GovernedModel):
    """One run of ingesting a source drop; on success it publishes dataset versions."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    fingerprint = models.CharField(
        max_length=64, db_index=True, help_text="SHA-256 over the drop's file names and hashes."
    )
    source_label = models.CharField(max_length=200)
    drop_path = models.CharField(max_length=500, help_text="Where the drop was read from.")
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    stage = models.CharField(max_length=100, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    received_rows = models.BigIntegerField(default=0)
    ingested_rows = models.BigIntegerField(default=0)
    quarantined_rows = models.BigIntegerField(default=0)
    key_version = models.PositiveIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=100, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    quarantine_path = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Idempotency: one successful ingest per drop.
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(status="succeeded"),
                name="one_successful_ingest_per_drop",
            ),
        ]

    def __str__(self) -> str:
        return f"Ingest {self.pk} ({self.source_label})"


class DatasetVersion(GovernedModel):
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    ingest = models.ForeignKey(Ingest, on_delete=models.PROTECT, related_name="versions")
    created_at = models.DateTimeField(auto_now_add=True)
    path = models.CharField(max_length=500, help_text="Parquet file, relative to the data root.")
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the Parquet file.")
    row_count = models.BigIntegerField()
    person_count = models.BigIntegerField()
    quarantined_count = models.BigIntegerField()
    key_version = models.PositiveIntegerField(help_text="System key version of the pseudonyms.")
    quality = models.JSONField(default=dict)

    class Meta:
        ordering = ["dataset", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="one_number_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.version}"


class IdentityVaultRecord(GovernedModel):
    """System pseudonym -> encrypted NHS number, for governed re-identification only."""

    system_pseudonym = models.CharField(max_length=64, unique=True)
    ciphertext = models.BinaryField()
    key_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
