"""The workspace pages (sde/views/analyses.py): who sees them, running an analysis and a
script from the page, the job page with its live status, and what is shown of real and
dummy runs. The worker is stood in for by running the job in this process."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from sde.analysis import services
from sde.analysis.models import Job
from sde.audit.events import EventType as E
from sde.audit.services import get_system_user
from sde.identity.roles import Role
from sde.projects.services import MemberSpec, add_member
from tests import scenarios
from tests.events import mark, types_since
from tests.unit.sde.analysis.conftest import SCOPE
from tests.unit.sde.projects.builders import researcher

pytestmark = pytest.mark.django_db
PROFILE = {"population_profile-index_date": "2026-01-01"}


@pytest.fixture
def queued(monkeypatch):
    """Jobs submitted from pages are kept here instead of going to a broker."""
    ids: list[int] = []
    monkeypatch.setattr(services, "_enqueue", ids.append)
    return ids


def _url(name, project, *args):
    return reverse(name, args=[project.pk, *args])


@pytest.mark.parametrize("who", ["non_member", "output_checker", "custodian"])
def test_a_person_who_may_not_see_the_project_gets_404_on_every_workspace_url(
    project, member, client_for, run, who
):
    job = run(project, member, on_dummy=True, analysis="population_profile",
              parameters={"index_date": "2026-01-01"})  # fmt: skip
    people = {"non_member": researcher,
              "output_checker": lambda: scenarios.person(Role.OUTPUT_CHECKER),
              "custodian": lambda: scenarios.person(Role.DATA_CUSTODIAN)}  # fmt: skip
    client = client_for(people[who]())
    output = job.outputs.first()
    urls = [
        ("get", _url("project-workspace", project)),
        ("post", _url("run-analysis", project, "population_profile")),
        ("post", _url("save-script", project)),
        ("get", _url("job-detail", project, job.pk)),
        ("get", _url("job-status", project, job.pk)),
        ("post", _url("job-cancel", project, job.pk)),
        ("post", _url("job-rerun", project, job.pk)),
        ("get", _url("job-log", project, job.pk)),
        ("get", _url("job-output", project, job.pk, output.pk)),
    ]
    for method, url in urls:
        assert getattr(client, method)(url).status_code == 404, url


def test_an_ig_officer_oversees_the_workspace_but_never_runs_anything(project, ig, client_for):
    client = client_for(ig)

    assert client.get(_url("project-workspace", project)).status_code == 200
    response = client.post(_url("run-analysis", project, "population_profile"),
                           {**PROFILE, "population_profile-run_on": "dummy"})  # fmt: skip
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_a_member_runs_a_builtin_analysis_from_the_page(
    project, member, client_for, queued, django_capture_on_commit_callbacks
):
    client = client_for(member)
    page = client.get(_url("project-workspace", project))
    assert page.status_code == 200
    assert b"Population profile" in page.content
    at = mark()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url("run-analysis", project, "population_profile"),
                               {**PROFILE, "population_profile-run_on": "real"})  # fmt: skip

    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == _url(
        "job-detail", project, job.pk
    )
    assert (job.analysis, job.on_dummy, job.parameters) == (
        "population_profile", False, {"index_date": "2026-01-01"})  # fmt: skip
    assert queued == [job.pk] and types_since(at) == [E.JOB_SUBMITTED]
    status = client.get(_url("job-status", project, job.pk)).json()
    assert (status["status"], status["finished"]) == ("queued", False)


def test_bad_parameters_are_a_form_error_and_queue_nothing(project, member, client_for, queued):
    response = client_for(member).post(
        _url("run-analysis", project, "population_profile"),
        {"population_profile-index_date": "not a date", "population_profile-run_on": "real"},
    )

    assert response.status_code == 400
    assert b"Enter a valid date" in response.content
    assert not Job.objects.exists() and queued == []


def test_a_member_who_may_not_use_the_data_sees_the_page_but_cannot_run(
    project, client_for, queued
):
    reader = researcher()
    add_member(project=project, member=MemberSpec(reader, "supervisor", False),
               by=get_system_user())  # fmt: skip
    client = client_for(reader)
    assert client.get(_url("project-workspace", project)).status_code == 200

    response = client.post(_url("run-analysis", project, "population_profile"),
                           {**PROFILE, "population_profile-run_on": "dummy"})  # fmt: skip

    assert response.status_code == 403
    assert not Job.objects.exists()


def test_a_dummy_run_shows_its_log_and_outputs(project, member, client_for, run):
    job = run(project, member, on_dummy=True, analysis="population_profile",
              parameters={"index_date": "2026-01-01"})  # fmt: skip
    client = client_for(member)
    page = client.get(_url("job-detail", project, job.pk))
    table = job.outputs.get(name="people_by_age_band_and_sex.csv")
    at = mark()

    assert page.status_code == 200 and b"Open the full log" in page.content
    shown = client.get(_url("job-output", project, job.pk, table.pk))
    assert shown.status_code == 200
    assert b"".join(shown.streaming_content).startswith(b"age_band,sex,people")
    assert client.get(_url("job-log", project, job.pk)).status_code == 200
    assert types_since(at) == [E.JOB_OUTPUT_VIEWED, E.JOB_LOG_VIEWED]


def test_a_real_run_lists_its_outputs_but_never_shows_their_contents_or_its_log(
    project, member, client_for, run
):
    job = run(project, member, on_dummy=False, analysis="population_profile",
              parameters={"index_date": "2026-01-01"})  # fmt: skip
    client = client_for(member)
    page = client.get(_url("job-detail", project, job.pk))
    table = job.outputs.get(name="people_by_age_band_and_sex.csv")

    assert page.status_code == 200
    assert table.name.encode() in page.content
    assert b"request their release through output checking" in page.content
    assert client.get(_url("job-output", project, job.pk, table.pk)).status_code == 404
    assert client.get(_url("job-log", project, job.pk)).status_code == 404


def test_a_script_is_saved_and_run_on_dummy_data_from_the_page(project, member, client_for, queued):
    client = client_for(member)
    script = "import sdelib\nrows = sdelib.read('patients')\nprint(len(rows))\n"

    saved = client.post(_url("save-script", project),
                        {"script-name": "count.py", "script-content": script})  # fmt: skip
    assert saved.status_code == 302
    version = project.scripts.get()
    response = client.post(_url("run-script", project, version.pk), {"run-run_on": "dummy"})

    job = Job.objects.get()
    assert response.status_code == 302 and (job.script, job.on_dummy) == (version, True)
    assert services.run_job(job_id=job.pk) == "succeeded"
    page = client.get(_url("job-detail", project, job.pk))
    assert b"Succeeded" in page.content


def test_a_script_with_a_syntax_error_is_refused_with_its_line(project, member, client_for):
    response = client_for(member).post(
        _url("save-script", project), {"script-name": "bad.py", "script-content": "x = (\n"}
    )

    assert response.status_code == 400
    assert b"Line 1" in response.content or b"Line 2" in response.content
    assert not project.scripts.exists()


def test_only_the_requester_cancels(project, member, client_for, queued):
    job = services.submit_job(project=project, by=member, on_dummy=True,
                              analysis="population_profile",
                              parameters={"index_date": "2026-01-01"})  # fmt: skip
    other = researcher()
    add_member(project=project, member=MemberSpec(other, "analyst"), by=get_system_user())

    assert client_for(other).post(_url("job-cancel", project, job.pk)).status_code == 403
    assert client_for(member).post(_url("job-cancel", project, job.pk)).status_code == 302
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED


@pytest.mark.parametrize(
    ("date_to", "expected"),
    [("2025-03-31", "2025-03-31"), ("2999-01-01", None), (None, None)],
    ids=["data-ends-before-today", "data-ends-after-today", "no-end"],
)
def test_the_index_date_is_prefilled_in_iso_format_with_the_last_day_of_data(
    make_project, member, client_for, date_to, expected
):
    scope = {**SCOPE, "date_to": date_to} if date_to else SCOPE
    project = make_project(scope=scope)
    page = client_for(member).get(_url("project-workspace", project))

    day = expected or timezone.localdate().isoformat()
    assert f'name="population_profile-index_date" value="{day}"'.encode() in page.content


def test_a_saved_script_opens_in_the_editor_to_change(project, member, client_for):
    client = client_for(member)
    script = "import sdelib\nprint(sdelib.tables())\n"
    client.post(_url("save-script", project), {"script-name": "t.py", "script-content": script})
    version = project.scripts.get()

    page = client.get(_url("project-workspace", project) + f"?edit={version.pk}")

    assert b'<details class="details" id="new-script" open>' in page.content
    assert b"print(sdelib.tables())" in page.content and b'value="t.py"' in page.content


@pytest.mark.parametrize("edit", ["999999", "abc", ""])
def test_editing_a_script_that_is_not_the_projects_opens_an_empty_editor(
    project, member, client_for, edit
):
    page = client_for(member).get(_url("project-workspace", project) + f"?edit={edit}")

    assert page.status_code == 200
    assert b'<details class="details" id="new-script">' in page.content
