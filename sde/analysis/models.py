"""Analyses run inside the environment: researchers' scripts, jobs and what they produce.

A job runs one built-in analysis or one version of a script against one extract of its
project (real or dummy) in the sandbox, and records everything needed to run it again
the same way: the code's hash, the parameters, the extract and its dataset versions,
the helper library's version and the package versions.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sde.data.models import Extract
from sde.governance import GovernedModel
from sde.identity.models import User
from sde.projects.models import Project


class Script(GovernedModel):
    """One version of a researcher's script, identified by the hash of its content."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="scripts")
    name = models.CharField(max_length=120)
    content = models.TextField()
    sha256 = models.CharField(max_length=64)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="one_script_per_content")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"


class Job(GovernedModel):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        BUILTIN = "builtin", "Built-in analysis"
        SCRIPT = "script", "Script"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="jobs")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    analysis = models.CharField(max_length=64, blank=True, help_text="The built-in analysis.")
    script = models.ForeignKey(
        Script, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    parameters = models.JSONField(default=dict)
    on_dummy = models.BooleanField(help_text="Runs on the dummy extract (synthetic data).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text="Last sent to the broker.")
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reruns"
    )
    # Running
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=200, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # What it ran on and with (reproducibility)
    extract = models.ForeignKey(
        Extract, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    dataset_versions = models.JSONField(default=dict)
    code_hash = models.CharField(max_length=64, blank=True)
    library_version = models.CharField(max_length=64, blank=True)
    package_versions = models.JSONField(default=dict)
    folder = models.CharField(max_length=300, blank=True, help_text="Under the data root.")
    # How it ended
    exit_code = models.IntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=100, blank=True)
    failure = models.CharField(max_length=300, blank=True, help_text="Safe to show.")
    limit = models.CharField(max_length=20, blank=True)
    isolated = models.BooleanField(default=False)
    cpu_seconds = models.FloatField(null=True, blank=True)
    max_rss_kb = models.BigIntegerField(null=True, blank=True)
    wall_seconds = models.FloatField(null=True, blank=True)
    output_bytes = models.BigIntegerField(null=True, blank=True)
    log_sha256 = models.CharField(max_length=64, blank=True)
    log_bytes = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="builtin") & ~Q(analysis="") & Q(script__isnull=True))
                | (Q(kind="script") & Q(analysis="") & Q(script__isnull=False)),
                name="job_runs_an_analysis_or_a_script",
            ),
            models.CheckConstraint(
                condition=Q(progress__lte=100), name="job_progress_is_a_percentage"
            ),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.status})"

    @property
    def max_rss_bytes(self) -> int | None:
        return None if self.max_rss_kb is None else self.max_rss_kb * 1024


class JobOutput(GovernedModel):
    """A file a job produced, registered only when the job succeeded; the bytes are
    fixed (hash recorded) and stay inside the environment until released."""

    class Kind(models.TextChoices):
        TABLE = "table", "Table (CSV)"
        CHART = "chart", "Chart (PNG)"
        EVIDENCE = "evidence", "Evidence (JSON)"
        TEXT = "text", "Text"
        OTHER = "other", "Other"

    job = models.ForeignKey(Job, on_delete=models.PROTECT, related_name="outputs")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    evidence = models.CharField(max_length=200, blank=True, help_text="Its evidence file.")

    class Meta:
        ordering = ["job", "name"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="one_output_per_name")]

    def __str__(self) -> str:
        return f"{self.name} of job {self.job_id}"


class Cohort(GovernedModel):
    """People (project pseudonyms) a built-in analysis found, kept inside the environment
    for the direct care workflow; never an output."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="cohorts")
    job = models.OneToOneField(Job, on_delete=models.PROTECT, related_name="cohort")
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=500)
    definition = models.JSONField(default=dict)
    size = models.PositiveIntegerField()
    extract = models.ForeignKey(Extract, on_delete=models.PROTECT, related_name="cohorts")
    path = models.CharField(max_length=300, help_text="Under the data root.")
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Cohort {self.pk}: {self.name}"
