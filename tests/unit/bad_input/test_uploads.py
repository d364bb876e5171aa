"""Uploads: malformed, disguised, oversized and hostile files, and hostile file names, at
every upload (the NDOP opt-out list, a source drop, a script, an attachment). Each gets a
clear error and leaves nothing behind: no snapshot, ingest version or script, and no file
outside the var dir's upload folder, which is empty again afterwards."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Final

import pandas as pd
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sde.analysis.models import Script
from sde.celery import app as celery_app
from sde.data import synth
from sde.data.models import DatasetVersion, Ingest, OptOutSnapshot
from sde.identity.roles import Role
from tests import scenarios
from tests.unit.sde.projects.builders import researcher

pytestmark = pytest.mark.django_db


def _zip_bomb() -> bytes:
    """A small zip that inflates to 100 MB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("patients.csv", b"\0" * 100_000_000)
    return buffer.getvalue()


def _parquet() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"nhs_number": ["9434765919"]}).to_parquet(buffer)
    return buffer.getvalue()


BAD_CSV: Final = {
    "empty": b"",
    "binary junk": bytes(range(256)) * 4,
    "ragged rows": b"nhs_number\n9434765919,1,2\n9434765919\n",
    "a Parquet file named .csv": _parquet(),
    "a truncated Parquet file": _parquet()[:40],
    "a zip bomb named .csv": _zip_bomb(),
    "latin-1": "nhs_number\n9434765919 caf\xe9\n".encode("latin-1"),
    "UTF-16": "nhs_number\n9434765919\n".encode("utf-16"),
    "invalid UTF-8": b"nhs_number\n94347\xc3\x28\n",
}
HOSTILE_NAMES: Final = [
    "../../etc/passwd", "/etc/passwd", "..\\..\\boot.ini", "a\x00b.csv", "x" * 300 + ".csv",
    "r\u00e9sum\u00e9 \U0001f600.csv", "\u202egnp.csv",
]  # fmt: skip


def _uploads_left() -> list[Path]:
    return sorted((Path(settings.VAR_DIR) / "uploads").rglob("*"))


def _ig_client(client_for):
    return client_for(scenarios.person(Role.IG_OFFICER))


@pytest.mark.parametrize("content", BAD_CSV.values(), ids=BAD_CSV)
def test_a_bad_ndop_file_is_a_form_error_and_leaves_nothing(client_for, content):
    snapshots = OptOutSnapshot.objects.count()
    response = _ig_client(client_for).post(
        reverse("optout-ndop-import"), {"ndop_file": SimpleUploadedFile("ndop.csv", content)}
    )

    assert response.status_code in (200, 400)  # the page again, with the form's error
    assert response.context["form"].errors["ndop_file"]
    assert OptOutSnapshot.objects.count() == snapshots
    assert _uploads_left() == []


@hypothesis_settings(max_examples=10, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(junk=st.binary(max_size=2000) | st.text(max_size=300).map(str.encode))
def test_generated_junk_as_an_ndop_file_never_breaks_the_page(client_for, junk):
    response = _ig_client(client_for).post(
        reverse("optout-ndop-import"), {"ndop_file": SimpleUploadedFile("ndop.csv", junk)}
    )

    assert response.status_code in (200, 302, 400)
    assert _uploads_left() == []


def _multipart(field: str, filename: str, content: bytes, **extra: str) -> tuple[bytes, str]:
    """A body written by hand: the test client would clean the file name itself."""
    boundary = "----sde-bad-input"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in extra.items()]  # fmt: skip
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode("utf-8", "surrogatepass")
        + content + b"\r\n"
    )  # fmt: skip
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_ndop_file_name_writes_nothing_outside_the_uploads(client_for, name, tmp_path):
    body, boundary = _multipart("ndop_file", name, b"9434765919\n")
    before = {p for p in Path(settings.VAR_DIR).parent.rglob("*") if p.is_file()}

    response = _ig_client(client_for).generic(
        "POST", reverse("optout-ndop-import"), body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )  # fmt: skip

    assert response.status_code in (302, 400)
    after = {p for p in Path(settings.VAR_DIR).parent.rglob("*") if p.is_file()}
    assert not {p for p in after - before if "uploads" in p.parts}
    for snapshot in OptOutSnapshot.objects.filter(trigger="ndop_import"):
        assert "/" not in snapshot.source_label and "\x00" not in snapshot.source_label


def _drop(tmp_path: Path) -> Path:
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    folder = tmp_path / "drop"
    synth.write_drop(synth.generate(patients=50, seed=5, config=config, tables=("patients",)),
                     folder)  # fmt: skip
    (folder / "manifest.json").unlink()
    return folder


DROP_CASES: Final = ("ragged rows", "a Parquet file named .csv", "a zip bomb named .csv", "UTF-16")


@pytest.mark.parametrize("content", [BAD_CSV[c] for c in DROP_CASES], ids=DROP_CASES)
def test_a_malformed_drop_fails_its_ingest_clearly_and_publishes_nothing(
    tmp_path, data_root, client_for, custodian, content, monkeypatch,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    upload = [SimpleUploadedFile("patients.csv", content, "text/csv")]
    versions, ingests = DatasetVersion.objects.count(), set(Ingest.objects.values_list("pk"))
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(custodian).post(reverse("ingest-list"), {"drop_files": upload})

    assert response.status_code in (302, 400)
    assert DatasetVersion.objects.count() == versions
    for ingest in Ingest.objects.exclude(pk__in=[pk for (pk,) in ingests]):
        assert ingest.status == Ingest.Status.FAILED
        assert ingest.error_message and "Traceback" not in ingest.error_message
    assert not (data_root / "datasets").exists() or not any(
        (data_root / "datasets").rglob("*.parquet")
    )


@pytest.fixture
def project_of_author(custodian):
    from sde.projects.services import MemberSpec, create_project
    from tests.unit.sde.projects import builders

    author, ig = researcher(), scenarios.person(Role.IG_OFFICER)
    project = create_project(
        title="Scripts", lay_summary="Scripts.", organisation=scenarios.organisation(),
        scope=dict(builders.SCOPE), start_date=builders.START, end_date=builders.END,
        members=[MemberSpec(author, "principal_investigator")], by=ig,
    )  # fmt: skip
    return project, author


SCRIPTS: Final = {
    "NUL bytes": ("analysis.py", b"print(1)\x00\n", "NUL"),
    "not UTF-8": ("analysis.py", b"print('caf\xe9')\n", "not UTF-8"),
    "over the limit": ("analysis.py", b"#" * (256 * 1024 + 1), "256 KB"),
}


@pytest.mark.parametrize(("name", "content", "message"), SCRIPTS.values(), ids=SCRIPTS)
def test_a_bad_script_upload_is_a_form_error(client_for, project_of_author, name, content, message):
    project, author = project_of_author
    scripts = Script.objects.count()
    response = client_for(author).post(
        reverse("save-script", args=[project.pk]),
        {"script-name": name, "script-upload": SimpleUploadedFile(name, content)},
    )

    assert response.status_code == 400
    assert message in str(response.context["script_form"].errors)
    assert Script.objects.count() == scripts
