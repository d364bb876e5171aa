"""The analysis workspace API's bodies: the built-in analyses and their parameters, jobs
(what a researcher sees of a run: status, progress, exit code, error class, what it ran
with, the resources it used, and its outputs' names, sizes and hashes), script versions
and cohorts.

What is shown of a run follows ``selectors.shows_content``: an output's ``content_url``
and the job's ``log_url`` are given for dummy runs only; a real run's contents leave
only through output checking. A cohort is its name, size and provenance, never the
people in it, and a size below 10 is not shown exactly (as on the page).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sde import policy
from sde.analysis import analyses, selectors
from sde.analysis.models import Cohort, Job, JobOutput, Script
from sde.api.serializers import PersonRefSerializer
from sde.data.register import SMALL_COUNT

PARAMETER_KINDS = sorted(
    {p.kind for b in analyses.BUILTINS.values() for p in b.parameters.values()}
)


# --- Choice sets, each one named component (``kind`` and ``status`` mean other things
# elsewhere in the API) --------------------------------------------------------------------
@extend_schema_field(
    {"type": "string", "enum": list(Job.Status.values)}, component_name="JobStatusEnum"
)
class JobStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Job.Status.choices, **kwargs)


@extend_schema_field(
    {"type": "string", "enum": list(Job.Kind.values)}, component_name="JobKindEnum"
)
class JobKindField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Job.Kind.choices, **kwargs)


@extend_schema_field(
    {"type": "string", "enum": list(JobOutput.Kind.values)}, component_name="JobOutputKindEnum"
)
class OutputKindField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=JobOutput.Kind.choices, **kwargs)


@extend_schema_field(
    {"type": "string", "enum": PARAMETER_KINDS}, component_name="AnalysisParameterKindEnum"
)
class ParameterKindField(serializers.CharField):
    pass


@extend_schema_field(
    {
        "type": "string",
        "description": f'The number of people, or "fewer than {SMALL_COUNT}" below '
        f"{SMALL_COUNT} (small counts are never shown exactly).",
    }
)
class CohortSizeField(serializers.ReadOnlyField):
    def to_representation(self, value: int) -> str:
        return f"fewer than {SMALL_COUNT}" if value < SMALL_COUNT else f"{value:,}"


# --- The built-in analyses ----------------------------------------------------------------
class AnalysisParameterSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    kind = ParameterKindField()
    choices = serializers.ListField(child=serializers.CharField())
    required = serializers.BooleanField()
    default = serializers.JSONField(allow_null=True, help_text="Used when the value is missing.")
    help = serializers.CharField()


class AnalysisSerializer(serializers.Serializer):
    """A built-in analysis and the parameters a job of it takes."""

    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    saves_cohort = serializers.BooleanField()
    parameters = serializers.SerializerMethodField()

    @extend_schema_field(AnalysisParameterSerializer(many=True))
    def get_parameters(self, builtin: analyses.Builtin) -> Any:
        rows = [
            {"name": name, **dataclasses.asdict(parameter)}
            for name, parameter in builtin.parameters.items()
        ]
        return AnalysisParameterSerializer(rows, many=True).data


# --- Jobs -----------------------------------------------------------------------------------
class ScriptRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Script
        fields = ["id", "name", "sha256"]
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    """A job as the list shows it."""

    title = serializers.SerializerMethodField()
    kind = JobKindField(read_only=True)
    script = ScriptRefSerializer(read_only=True, allow_null=True)
    status = JobStatusField(read_only=True)
    message = serializers.CharField(source="progress_message", read_only=True)
    finished = serializers.SerializerMethodField()
    requested_by = PersonRefSerializer(read_only=True)

    class Meta:
        model = Job
        fields = ["id", "title", "kind", "analysis", "script", "on_dummy", "status", "progress",
                  "message", "finished", "requested_by", "requested_at", "finished_at"]  # fmt: skip
        read_only_fields = fields

    def get_title(self, job: Job) -> str:
        return selectors.job_title(job)

    def get_finished(self, job: Job) -> bool:
        return job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)


class JobReproducibilitySerializer(serializers.Serializer):
    """Everything needed to run the job again the same way."""

    code_hash = serializers.CharField(help_text="The script version's or the library's hash.")
    library_version = serializers.CharField()
    extract_id = serializers.IntegerField(allow_null=True)
    dataset_versions = serializers.DictField()
    package_versions = serializers.DictField(child=serializers.CharField())
    parameters = serializers.DictField()
    rerun_of = serializers.IntegerField(source="rerun_of_id", allow_null=True)


class JobResourcesSerializer(serializers.Serializer):
    attempts = serializers.IntegerField()
    wall_seconds = serializers.FloatField(allow_null=True)
    cpu_seconds = serializers.FloatField(allow_null=True)
    max_rss_kb = serializers.IntegerField(allow_null=True)
    output_bytes = serializers.IntegerField(allow_null=True)
    limit = serializers.CharField(help_text="The limit that stopped it (empty: none).")
    isolated = serializers.BooleanField(help_text="Ran in the isolated sandbox.")


class JobOutputSerializer(serializers.ModelSerializer):
    kind = OutputKindField(read_only=True)
    content_url = serializers.SerializerMethodField()

    class Meta:
        model = JobOutput
        fields = ["id", "name", "kind", "size", "sha256", "evidence", "content_url"]
        read_only_fields = fields

    def get_content_url(self, output: JobOutput) -> str | None:
        """Dummy runs only: a real run's outputs leave through output checking."""
        if not selectors.shows_content(output.job):
            return None
        return reverse("api-project-job-output",
                       args=[output.job.project_id, output.job_id, output.pk])  # fmt: skip


class JobDetailSerializer(JobSerializer):
    """One job: how it ended, what it ran with, what it used and what it produced."""

    reproducibility = JobReproducibilitySerializer(source="*", read_only=True)
    resources = JobResourcesSerializer(source="*", read_only=True)
    outputs = serializers.SerializerMethodField()
    log_url = serializers.SerializerMethodField()
    cohort = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "started_at", "cancel_requested_at", "exit_code",
                  "error_class", "failure", "reproducibility", "resources", "outputs", "log_url",
                  "cohort"]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(JobOutputSerializer(many=True))
    def get_outputs(self, job: Job) -> Any:
        """Registered only when the job succeeded, so none for any other end."""
        outputs = job.outputs.all() if job.status == Job.Status.SUCCEEDED else []
        return JobOutputSerializer(outputs, many=True).data

    def get_log_url(self, job: Job) -> str | None:
        """Dummy runs once the log is kept; a real run's log is for the output checkers."""
        if not selectors.shows_content(job) or job.log_bytes is None:
            return None
        return reverse("api-project-job-log", args=[job.project_id, job.pk])

    def get_cohort(self, job: Job) -> int | None:
        """The cohort the job saved, if any (see the cohort list)."""
        kept = Cohort.objects.filter(job=job, deleted_at__isnull=True)
        return kept.values_list("pk", flat=True).first()


class JobSubmitSerializer(serializers.Serializer):
    """A built-in analysis with its parameters, or a saved script version: one of them."""

    analysis = serializers.CharField(required=False, help_text="A built-in analysis's name.")
    parameters = serializers.DictField(
        required=False, help_text="The analysis's parameters by name (see GET /api/v1/analyses)."
    )
    script_id = serializers.IntegerField(required=False, min_value=1)
    on_dummy = serializers.BooleanField(
        help_text="Run on the dummy extract (synthetic people: full log and outputs shown)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "script_id" in attrs and "parameters" in attrs:
            raise serializers.ValidationError({"parameters": ["A script takes no parameters."]})
        return attrs


# --- Scripts and cohorts --------------------------------------------------------------------
class ScriptSerializer(serializers.ModelSerializer):
    """One version of a script (the same content is the same version)."""

    created_by = PersonRefSerializer(read_only=True)

    class Meta:
        model = Script
        fields = ["id", "name", "sha256", "created_by", "created_at"]
        read_only_fields = fields


class ScriptSaveSerializer(serializers.Serializer):
    name = serializers.CharField(allow_blank=True, help_text="At most 120 characters.")
    # Whitespace is part of a Python program (and of its hash): never trimmed.
    content = serializers.CharField(
        allow_blank=True, trim_whitespace=False, help_text="Python source, at most 256 KB."
    )


class CohortSerializer(serializers.ModelSerializer):
    """A saved cohort: what it is and where it came from, never who is in it."""

    size = CohortSizeField()
    extract_id = serializers.IntegerField(read_only=True)
    job_id = serializers.IntegerField(read_only=True)
    on_dummy = serializers.BooleanField(source="job.on_dummy", read_only=True)
    reidentification_refused = serializers.SerializerMethodField(
        help_text="Why clinicians cannot ask to re-identify it (null: they can, for direct care)."
    )

    class Meta:
        model = Cohort
        fields = ["id", "name", "description", "definition", "size", "extract_id", "on_dummy",
                  "job_id", "created_at", "reidentification_refused"]  # fmt: skip
        read_only_fields = fields

    def get_reidentification_refused(self, cohort: Cohort) -> str | None:
        return policy.cohort_refusal(cohort)
