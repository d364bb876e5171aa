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


class OptOutKind(models.TextChoices):
    NDOP = "ndop", "National data opt-out"
    TYPE1 = "type1", "GP Type 1 opt-out"


class OptOutSource(models.TextChoices):
    NDOP_FILE = "ndop_file", "National data opt-out file"
    GP_EVENTS = "gp_events", "Type 1 codes in GP events"
    MANUAL = "manual", "Manual entries by IG"


class OptOutSnapshot(GovernedModel):
    """One version of the whole opt-out register, made by each import (an NDOP file, the
    Type 1 codes of an ingest's GP events) and each manual entry or withdrawal.

    The entries (kind, system pseudonym, source) are a Parquet file under the data root;
    ``content_hash`` is SHA-256 over them in canonical order. Counts are of people.
    """

    class Trigger(models.TextChoices):
        NDOP_IMPORT = "ndop_import", "National data opt-out file imported"
        INGEST = "ingest", "Ingest (Type 1 codes and any NDOP file in the drop)"
        MANUAL_ADDED = "manual_added", "Manual entry added"
        MANUAL_WITHDRAWN = "manual_withdrawn", "Manual entry withdrawn"

    number = models.PositiveIntegerField(unique=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    source_label = models.CharField(max_length=200, blank=True)
    source_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the imported file, when there is one."
    )
    ingest = models.ForeignKey(
        Ingest, null=True, blank=True, on_delete=models.PROTECT, related_name="optout_snapshots"
    )
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    path = models.CharField(max_length=500, help_text="Parquet file, relative to the data root.")
    content_hash = models.CharField(max_length=64)
    key_version = models.PositiveIntegerField(help_text="System key version of the pseudonyms.")
    ndop_count = models.BigIntegerField()
    type1_count = models.BigIntegerField()
    manual_count = models.BigIntegerField()
    invalid_count = models.BigIntegerField(
        default=0, help_text="Lines of an imported file that were not valid NHS numbers."
    )
    imported_sources = models.JSONField(
        default=list,
        help_text="Sources imported under this key version (after a key rotation, the others "
        "must be imported again before an extract that needs them can be built).",
    )
    stale_manual_count = models.BigIntegerField(
        default=0, help_text="Manual entries made under an earlier key version (not included)."
    )

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"Opt-out snapshot {self.number}"


class ManualOptOut(GovernedModel):
    """An opt-out IG recorded by hand (e.g. a Type 1 objection received by letter), with
    the reason. Held by system pseudonym: the NHS number is not stored."""

    system_pseudonym = models.CharField(max_length=64)
    key_version = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=OptOutKind.choices)
    reason = models.TextField()
    added_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)
    withdrawn_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawal_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-added_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["system_pseudonym", "kind"],
                condition=Q(withdrawn_at__isnull=True),
                name="one_active_manual_optout_per_person_and_kind",
            )
        ]


class OptOutChange(GovernedModel):
    """A change to the opt-out decision table, or an opt-out exemption for a project,
    proposed by one IG officer and approved (or rejected) by another."""

    class Kind(models.TextChoices):
        DECISION_TABLE = "decision_table", "Decision table change"
        EXEMPTION = "exemption", "Project exemption"

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Awaiting a second IG officer"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PROPOSED)
    project_id = models.PositiveIntegerField(null=True, blank=True)
    payload = models.JSONField()
    based_on_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The decision table version the change was made against."
    )
    table_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version an approved table change became."
    )
    reason = models.TextField()
    proposed_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-proposed_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("proposed_by")),
                name="optout_change_second_person",
            ),
            models.CheckConstraint(
                condition=Q(kind="decision_table", project_id__isnull=True)
                | Q(kind="exemption", project_id__isnull=False),
                name="optout_change_project_iff_exemption",
            ),
            models.UniqueConstraint(
                fields=["table_version"],
                condition=Q(table_version__isnull=False),
                name="one_change_per_table_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk}"


class Extract(GovernedModel):
    """A project's extract: the scoped, opt-out-filtered, project-pseudonymised Parquet
    files one project's analyses read, with everything needed to say what it holds."""

    project_id = models.PositiveIntegerField(db_index=True)
    is_dummy = models.BooleanField(default=False)
    scope = models.JSONField()
    path = models.CharField(max_length=500, help_text="Folder, relative to the data root.")
    built_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    built_at = models.DateTimeField(auto_now_add=True)
    rebuild_reason = models.CharField(max_length=300, blank=True)
    dataset_versions = models.JSONField(
        default=dict,
        help_text="Dataset slug -> the DatasetVersion id and number it was built from.",
    )
    optout_snapshot = models.ForeignKey(
        OptOutSnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="extracts"
    )
    decision_table_version = models.PositiveIntegerField(null=True, blank=True)
    exemption = models.ForeignKey(
        OptOutChange, null=True, blank=True, on_delete=models.PROTECT, related_name="extracts"
    )
    treatment = models.JSONField(default=dict)
    people_removed = models.BigIntegerField(default=0)
    rows_removed = models.BigIntegerField(default=0)
    person_count = models.BigIntegerField(default=0)
    tables = models.JSONField(default=dict, help_text="Per file: dataset, rows, SHA-256.")
    master_key_version = models.PositiveIntegerField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-built_at", "-pk"]

    def __str__(self) -> str:
        kind = "dummy extract" if self.is_dummy else "extract"
        return f"Project {self.project_id} {kind} {self.pk}"
