"""Every built-in analysis runs in the sandbox against a project's extract and writes
its tables with their evidence (sde/analysis/analyses.py, sde/analysis/sdelib)."""

from __future__ import annotations

import pandas as pd
import pytest

from sde.analysis import analyses, services
from sde.analysis.models import Job
from sde.data.files import data_root
from sde.exceptions import ValidationError

pytestmark = pytest.mark.django_db
S = Job.Status


@pytest.mark.parametrize("name", sorted(analyses.BUILTINS))
def test_every_builtin_analysis_runs_in_the_sandbox_on_the_dummy_extract(
    project, member, run, name
):
    """Each writes at least one table with its evidence (and a chart per chart spec)."""
    parameters: dict[str, object] = {"index_date": "2026-01-01"}
    if name == "cohort":
        parameters |= {"definition": {"age": {"min": 18}}, "name": "adults"}
    if name == "difference_in_differences":
        found = run(project, member, on_dummy=True, analysis="cohort",
                    parameters={**parameters, "definition": {"has": "hypertension"},
                                "name": "treated"})  # fmt: skip
        parameters = {"cohort": found.cohort.pk, "start": "2024-06-01", "window_days": 180}

    job = run(project, member, on_dummy=True, analysis=name, parameters=parameters)

    log = (data_root() / job.folder / "log.txt").read_text()
    assert job.status == S.SUCCEEDED, (job.failure, log[-2000:])
    tables = {o.name for o in job.outputs.filter(kind="table")}
    assert tables and all(job.outputs.filter(name=t, evidence__gt="").exists() for t in tables)
    assert job.extract.is_dummy


def test_a_saved_cohort_is_the_project_pseudonyms_of_its_people_on_that_extract(
    project, member, run
):
    job = run(project, member, on_dummy=False, analysis="cohort",
              parameters={"index_date": "2026-01-01", "definition": {"sex": ["F"]},
                          "name": "women"})  # fmt: skip

    cohort = job.cohort
    people = pd.read_parquet(data_root() / cohort.path)["person_id"]
    patients = pd.read_parquet(data_root() / job.extract.path / "patients.parquet")
    assert (cohort.name, cohort.size, cohort.extract_id) == ("women", len(people), job.extract_id)
    assert set(people) <= set(patients.loc[patients["sex"] == "F", "person_id"])
    assert not job.outputs.filter(name__contains="cohort.parquet").exists()


@pytest.mark.parametrize(
    ("found_on_dummy", "run_on_dummy", "field_error"),
    [(True, False, "dummy extract"), (False, True, "real extract")],
)
def test_an_evaluation_uses_a_cohort_found_on_the_same_extract(
    project, member, run, found_on_dummy, run_on_dummy, field_error
):
    found = run(project, member, on_dummy=found_on_dummy, analysis="cohort",
                parameters={"index_date": "2026-01-01", "definition": {"sex": ["F"]},
                            "name": "women"})  # fmt: skip
    wanted = {"cohort": found.cohort.pk, "start": "2025-06-01"}

    with pytest.raises(ValidationError) as refused:
        services.submit_job(project=project, by=member, on_dummy=run_on_dummy,
                            analysis="difference_in_differences", parameters=wanted)  # fmt: skip

    assert field_error in refused.value.errors["cohort"][0]


def test_another_projects_cohort_cannot_be_named(project, member, run, make_project):
    other = make_project()
    with pytest.raises(ValidationError):
        services.submit_job(project=other, by=member, on_dummy=True,
                            analysis="difference_in_differences",
                            parameters={"cohort": 999_999, "start": "2025-06-01"})  # fmt: skip
