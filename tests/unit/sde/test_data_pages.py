"""The data pages: the catalogue (metadata for everyone, never rows), and ingestion for
data custodians (upload, progress, the quarantine report)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from sde.audit.events import EventType
from sde.celery import app as celery_app
from sde.data import synth
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Dataset, Ingest
from sde.identity.models import User
from sde.identity.roles import Role
from tests import scenarios
from tests.events import events_since as _events_since
from tests.events import mark as _mark
from tests.shared_db import module_custodian

pytestmark = pytest.mark.django_db

S = Ingest.Status
TABLES = ("patients", "gp_events")  # a tiny linked drop: fast to ingest
NOT_CUSTODIANS = [r for r in Role if r != Role.DATA_CUSTODIAN]


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path, custodian: User) -> Path:
    """Every test: a private data root, and the catalogue, made once for the module."""
    return private_data_root


custodian = module_custodian


def _drop(tmp_path: Path, *, faults: synth.FaultRates | None = None, name: str = "drop") -> Path:
    config = synth.SynthConfig(faults=faults or synth.FaultRates.none())
    folder = tmp_path / name
    synth.write_drop(synth.generate(patients=300, seed=5, config=config, tables=TABLES), folder)
    return folder


def _ingest(drop: Path, by: User) -> Ingest:
    return run_ingest(ingest=request_ingest(drop_dir=drop, by=by, enqueue=False), by=by)


def _uploads(drop: Path, names: list[str] | None = None) -> list[SimpleUploadedFile]:
    names = names or [p.name for p in sorted(drop.iterdir())]
    return [SimpleUploadedFile(n, (drop / n).read_bytes(), "text/csv") for n in names]


# --- the catalogue --------------------------------------------------------------------------
@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_the_catalogue_shows_metadata_but_never_data_to_every_role(
    tmp_path, data_root, client_for, custodian, role
):
    drop = _drop(tmp_path)
    ingest = _ingest(drop, custodian)
    person = scenarios.person(role, accredited=True)
    client = client_for(person)
    row_values = set()
    for table in TABLES:
        row_values |= set(pd.read_csv(drop / f"{table}.csv", dtype=str)["nhs_number"])
    for version in ingest.versions.all():
        row_values |= set(pq.read_table(data_root / version.path)["person_id"].to_pylist())

    pages = [reverse("catalogue")] + [
        reverse("dataset-detail", args=[d.slug]) for d in Dataset.objects.all()
    ]
    responses = {url: client.get(url) for url in pages}

    for url, response in responses.items():
        html = response.content.decode()
        assert response.status_code == 200, url
        assert html.count("<h1") == 1, url
        assert not any(value in html for value in row_values), url
    catalogue = responses[reverse("catalogue")].content.decode()
    assert "GP events" in catalogue and "Registered patients" in catalogue
    patients = responses[reverse("dataset-detail", args=["patients"])].content.decode()
    assert "person_id" in patients and "birth_month" in patients
    assert "date_of_birth" not in patients
    assert ingest.versions.get(dataset__slug="patients").checksum[:17] in patients


def test_only_a_custodian_sees_the_link_to_ingestion(client_for, custodian):
    researcher = scenarios.person(Role.RESEARCHER, accredited=True)

    mine = client_for(custodian).get(reverse("catalogue")).content.decode()
    theirs = client_for(researcher).get(reverse("catalogue")).content.decode()

    assert reverse("ingest-list") in mine
    assert reverse("ingest-list") not in theirs


def test_an_unknown_dataset_is_a_404(client_for, custodian):
    response = client_for(custodian).get(reverse("dataset-detail", args=["no-such-data"]))

    assert response.status_code == 404


def test_the_catalogue_needs_a_signed_in_person(client, custodian):
    response = client.get(reverse("catalogue"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


# --- the ingestion pages: custodians only ------------------------------------------------------
INGEST_PAGES: dict[str, Callable[[Ingest], str]] = {
    "list": lambda i: reverse("ingest-list"),
    "detail": lambda i: reverse("ingest-detail", args=[i.pk]),
    "status": lambda i: reverse("ingest-status", args=[i.pk]),
    "quarantine": lambda i: reverse("ingest-quarantine", args=[i.pk]),
}
DENIED = [(role, page) for role in NOT_CUSTODIANS for page in INGEST_PAGES]


@pytest.mark.parametrize(
    ("role", "page"), DENIED, ids=[f"{role.value}-{page}" for role, page in DENIED]
)
def test_the_ingestion_pages_are_forbidden_to_everyone_but_custodians(
    tmp_path, client_for, custodian, role, page
):
    ingest = request_ingest(drop_dir=_drop(tmp_path), by=custodian, enqueue=False)
    person = scenarios.person(role, accredited=True)

    get = client_for(person).get(INGEST_PAGES[page](ingest))
    files = _uploads(Path(ingest.drop_path))
    post = client_for(person).post(reverse("ingest-list"), {"drop_files": files})

    assert get.status_code == 403
    assert post.status_code == 403
    assert Ingest.objects.count() == 1


@pytest.mark.parametrize("page", ["list", "detail", "status"])
def test_the_ingestion_pages_open_for_a_custodian(tmp_path, client_for, custodian, page):
    ingest = request_ingest(drop_dir=_drop(tmp_path), by=custodian, enqueue=False)

    response = client_for(custodian).get(INGEST_PAGES[page](ingest))

    assert response.status_code == 200


def test_a_queued_ingest_shows_its_progress_and_a_finished_one_its_versions(
    tmp_path, client_for, custodian
):
    ingest = request_ingest(drop_dir=_drop(tmp_path), by=custodian, enqueue=False)
    client = client_for(custodian)
    url = reverse("ingest-detail", args=[ingest.pk])

    queued = client.get(url).content.decode()
    run_ingest(ingest=ingest, by=custodian)
    done = client.get(url).content.decode()

    assert "<progress" in queued and reverse("ingest-status", args=[ingest.pk]) in queued
    assert "<progress" not in done
    assert "Dataset versions published" in done
    assert reverse("dataset-detail", args=["gp-events"]) in done


def test_the_status_endpoint_reports_database_state(tmp_path, client_for, custodian):
    ingest = request_ingest(drop_dir=_drop(tmp_path), by=custodian, enqueue=False)
    client = client_for(custodian)
    url = reverse("ingest-status", args=[ingest.pk])

    queued = client.get(url)
    run_ingest(ingest=ingest, by=custodian)
    done = client.get(url)

    assert queued["Content-Type"] == "application/json"
    assert queued.json() == {"status": "queued", "stage": "", "progress": 0}
    assert done.json() == {"status": "succeeded", "stage": "done", "progress": 100}


def test_the_status_of_a_missing_ingest_is_a_404(client_for, custodian):
    response = client_for(custodian).get(reverse("ingest-status", args=[424242]))

    assert response.status_code == 404


# --- uploading a drop ---------------------------------------------------------------------------
def test_uploading_a_drop_queues_an_ingest_that_runs_after_commit(
    tmp_path, data_root, client_for, custodian, django_capture_on_commit_callbacks, monkeypatch
):
    drop = _drop(tmp_path)
    client = client_for(custodian)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("ingest-list"), {"label": "GP, November", "drop_files": _uploads(drop)}
        )

    ingest = Ingest.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("ingest-detail", args=[ingest.pk])
    assert ingest.status == S.QUEUED
    assert ingest.source_label == "GP, November"
    folder = Path(ingest.drop_path)
    assert folder.parent == (data_root / "uploads").resolve()
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in drop.iterdir())
    assert all((folder / p.name).read_bytes() == p.read_bytes() for p in drop.iterdir())
    assert len(callbacks) == 1  # the task is enqueued only once the request has committed
    # Run what was enqueued, in this process: Celery's eager mode needs no broker.
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    callbacks[0]()
    ingest.refresh_from_db()
    assert ingest.status == S.SUCCEEDED
    assert ingest.versions.count() == len(TABLES)


def test_uploading_a_drop_again_reuses_its_ingest_and_keeps_no_copy(
    tmp_path, data_root, client_for, custodian
):
    drop = _drop(tmp_path)
    done = _ingest(drop, custodian)
    client = client_for(custodian)

    response = client.post(reverse("ingest-list"), {"drop_files": _uploads(drop)}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("ingest-detail", args=[done.pk])
    assert "already ingested" in response.content.decode()
    assert Ingest.objects.count() == 1
    # The second copy of the drop (NHS numbers and all) is not left lying about.
    assert not (data_root / "uploads").exists() or not any((data_root / "uploads").iterdir())


def _traversal_body(drop: Path) -> tuple[bytes, str]:
    """A multipart body whose patients.csv part is named ../patients.csv (the test client
    would strip the folder part itself, so this is written by hand)."""
    boundary = "----sde-test-boundary"
    parts = []
    for name, filename in [("drop_files", "../patients.csv"), ("drop_files", "gp_events.csv")]:
        content = (drop / Path(filename).name).read_bytes()
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def test_a_path_in_an_uploaded_file_name_never_leaves_the_upload_folder(
    tmp_path, data_root, client_for, custodian, django_capture_on_commit_callbacks
):
    drop = _drop(tmp_path)
    (drop / "manifest.json").unlink()
    body, boundary = _traversal_body(drop)

    with django_capture_on_commit_callbacks():
        response = client_for(custodian).generic(
            "POST",
            reverse("ingest-list"),
            body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )

    # Django keeps only the last part of a file name, so nothing is written outside.
    assert response.status_code == 302
    folder = Path(Ingest.objects.get().drop_path)
    assert sorted(p.name for p in folder.iterdir()) == ["gp_events.csv", "patients.csv"]
    assert not (data_root / "patients.csv").exists()
    assert sorted(p.name for p in data_root.iterdir()) == ["uploads"]


BAD_UPLOADS: dict[str, tuple[Callable[[Path], list[SimpleUploadedFile]], str]] = {
    "not a CSV file": (
        lambda d: [*_uploads(d, ["patients.csv"]), SimpleUploadedFile("notes.txt", b"hello")],
        "notes.txt: only .csv files and manifest.json can be part of a drop.",
    ),
    "a program behind a path": (
        lambda d: [*_uploads(d, ["patients.csv"]), SimpleUploadedFile("../../run.py", b"1")],
        "run.py: only .csv files and manifest.json can be part of a drop.",
    ),
    "no patients.csv": (
        lambda d: _uploads(d, ["gp_events.csv", "manifest.json"]),
        "A drop needs patients.csv.",
    ),
    "a file over the limit": (
        lambda d: _uploads(d, ["patients.csv"]),
        "patients.csv is {size:,} bytes; the limit is 1,000 per file.",
    ),
    "no files at all": (lambda d: [], "This field is required."),
}


@pytest.mark.parametrize(("files", "message"), BAD_UPLOADS.values(), ids=BAD_UPLOADS)
def test_a_bad_upload_is_a_form_error_and_queues_nothing(
    tmp_path, data_root, settings, client_for, custodian, files, message
):
    drop = _drop(tmp_path)
    settings.SDE_MAX_UPLOAD_BYTES = 1000
    if "limit" not in message:
        settings.SDE_MAX_UPLOAD_BYTES = 10**9
    message = message.format(size=(drop / "patients.csv").stat().st_size)

    form = {"label": "", "drop_files": files(drop)}  # as a browser sends the form
    response = client_for(custodian).post(reverse("ingest-list"), form)

    assert response.status_code == 400
    assert response.context["form"].errors["drop_files"] == [message]
    assert 'class="error-summary"' in response.content.decode()
    assert not Ingest.objects.exists()
    assert not (data_root / "uploads").exists()


# --- the quarantine report ------------------------------------------------------------------------
def test_downloading_the_quarantine_report_is_recorded(tmp_path, data_root, client_for, custodian):
    faults = synth.FaultRates(0.02, 0.02, 0.02, 0.02)
    ingest = _ingest(_drop(tmp_path, faults=faults), custodian)
    mark = _mark()

    response = client_for(custodian).get(reverse("ingest-quarantine", args=[ingest.pk]))

    body = b"".join(response.streaming_content)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert f'filename="quarantine-ingest-{ingest.pk}.csv"' in response["Content-Disposition"]
    assert body == (data_root / ingest.quarantine_path).read_bytes()
    assert body.decode().splitlines()[0] == "table,row,reason,column"
    events = _events_since(mark)
    assert [e.event_type for e in events] == [EventType.QUARANTINE_REPORT_DOWNLOADED]
    assert events[0].actor_id == custodian.pk
    assert events[0].target_id == str(ingest.pk)
    assert events[0].data == {"rows": ingest.quarantined_rows}


def test_an_ingest_without_quarantined_rows_has_no_report(tmp_path, client_for, custodian):
    ingest = _ingest(_drop(tmp_path), custodian)
    mark = _mark()

    response = client_for(custodian).get(reverse("ingest-quarantine", args=[ingest.pk]))

    assert response.status_code == 404
    assert _events_since(mark) == []


def test_the_ingest_page_links_to_the_quarantine_report(tmp_path, client_for, custodian):
    faults = synth.FaultRates(0.02, 0.02, 0.02, 0.02)
    ingest = _ingest(_drop(tmp_path, faults=faults), custodian)

    html = client_for(custodian).get(reverse("ingest-detail", args=[ingest.pk])).content.decode()

    assert reverse("ingest-quarantine", args=[ingest.pk]) in html
    assert json.dumps(ingest.quarantined_rows) in html


def test_the_custodian_dashboard_shows_the_latest_ingest(tmp_path, client_for, custodian):
    ingest = _ingest(_drop(tmp_path), custodian)

    html = client_for(custodian).get(reverse("dashboard")).content.decode()

    assert "Ingestion" in html
    assert f"Latest: #{ingest.pk} succeeded" in html
    assert reverse("ingest-list") in html
