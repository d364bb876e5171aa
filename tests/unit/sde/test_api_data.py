"""The data layer's REST API: the catalogue (metadata for everyone signed in), ingestion
(data custodians) and IG's opt-out register (404 for everyone else). Every endpoint for
every role, by session and by token; each happy path's state and audit events; refused
bodies changing nothing; and no NHS number or pseudonym in any response."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from sde.audit.events import EventType
from sde.celery import app as celery_app
from sde.data import optout_changes, register, synth
from sde.data.extracts import ExtractScope, build_extract
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import Dataset, Ingest, ManualOptOut, OptOutChange, OptOutSnapshot
from sde.identity import services
from sde.identity.models import User
from sde.identity.roles import Role
from tests import scenarios
from tests.api_schema import schema_without_warnings
from tests.events import events_since, mark, types_since
from tests.shared_db import module_custodian

pytestmark = pytest.mark.django_db

E = EventType
R = Role
S = Ingest.Status
Status = OptOutChange.Status
JSON = "application/json"
TABLES = ("patients", "gp_events")  # a tiny linked drop: fast to ingest
FAULTS = synth.FaultRates(0.02, 0.02, 0.02, 0.02)


def nhs_number(base: int) -> str:
    """A valid (Modulus 11) NHS number from nine digits, skipping bases with no check digit."""
    while True:
        digits = f"{base:09d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(digits))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10:
            return digits + str(check)
        base += 1


VALID = "9434765919"
NUMBERS = [nhs_number(943476500 + 7 * i) for i in range(15)]


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path, custodian: User) -> Path:
    """Every test: a private data root, and the catalogue, made once for the module."""
    return private_data_root


custodian = module_custodian


@pytest.fixture(autouse=True)
def var_dir(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    return tmp_path / "var"


def _token_client(user: User) -> Client:
    _, key = services.create_api_token(user=user, name="scripts", by=user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _errors(response: Any) -> dict[str, list[str]]:
    """Field errors, from a body the serializer refused ({field: [...]}) or a service's
    ValidationError ({"detail": ..., "errors": {field: [...]}})."""
    body = response.json()
    return body["errors"] if "errors" in body and "detail" in body else body


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


def _ndop(content: bytes, name: str = "ndop.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, "text/csv")


def _lines(numbers: list[str]) -> bytes:
    return ("\n".join(numbers) + "\n").encode()


def _uploads_left(folder: Path) -> list[Path]:
    uploads = folder / "uploads"
    return sorted(uploads.rglob("*")) if uploads.exists() else []


def _state() -> tuple[Any, ...]:
    return (
        Ingest.objects.count(),
        OptOutSnapshot.objects.count(),
        ManualOptOut.objects.filter(withdrawn_at__isnull=True).count(),
        sorted(OptOutChange.objects.values_list("pk", "status")),
    )


# --- a world with something behind every URL ---------------------------------------------
@dataclass
class World:
    custodian: User
    drop: Path | None = None
    ingest: Ingest | None = None
    me: User | None = None  # the IG officer acting
    other: User | None = None  # a second IG officer
    mine: OptOutChange | None = None  # proposed by me
    theirs: OptOutChange | None = None  # proposed by the other officer


def _register_world(custodian: User) -> World:
    me, other = scenarios.person(R.IG_OFFICER), scenarios.person(R.IG_OFFICER)
    register.add_manual_optout(nhs_number=NUMBERS[0], kind="type1", reason="letter", by=other)
    mine = optout_changes.propose_exemption(
        project_id=4, cag_letter_disapplies_type1=True, reason="CAG letter 21/CAG/0001", by=me
    )
    theirs = optout_changes.propose_exemption(
        project_id=5, instrument_overrides_type1=True, reason="Instrument SI 2020/1", by=other
    )
    return World(custodian, me=me, other=other, mine=mine, theirs=theirs)


def _ingest_world(tmp_path: Path, custodian: User) -> World:
    drop = _drop(tmp_path, faults=FAULTS)
    return World(custodian, drop=drop, ingest=_ingest(drop, custodian))


@dataclass(frozen=True)
class Endpoint:
    family: str  # catalogue (everyone), ingest (custodians), optout (IG)
    method: str
    url: Callable[[World], str]
    body: Callable[[World], dict[str, Any]] | None = None
    multipart: bool = False
    ok: int = 200


POLICY_CELLS = [
    {"basis": "copi_reg3", "kind": "type1", "value": "not_applied"},
    {"basis": "not_confidential", "kind": "type1", "value": "applied"},
]
ENDPOINTS: dict[str, Endpoint] = {
    "datasets": Endpoint("catalogue", "get", lambda w: reverse("api-datasets")),
    "dataset": Endpoint("catalogue", "get", lambda w: reverse("api-dataset", args=["patients"])),
    "ingests": Endpoint("ingest", "get", lambda w: reverse("api-ingests")),
    "ingest-upload": Endpoint(
        "ingest",
        "post",
        lambda w: reverse("api-ingests"),
        lambda w: {"drop_files": _uploads(w.drop)},
        multipart=True,
        ok=200,  # the world's drop was ingested already: its ingest comes back
    ),
    "ingest": Endpoint("ingest", "get", lambda w: reverse("api-ingest", args=[w.ingest.pk])),
    "quarantine": Endpoint(
        "ingest", "get", lambda w: reverse("api-ingest-quarantine", args=[w.ingest.pk])
    ),
    "optouts": Endpoint("optout", "get", lambda w: reverse("api-optouts")),
    "manual-add": Endpoint(
        "optout",
        "post",
        lambda w: reverse("api-optout-manual"),
        lambda w: {"nhs_number": VALID, "kind": "ndop", "reason": "email from the patient"},
        ok=201,
    ),
    "manual-withdraw": Endpoint(
        "optout",
        "post",
        lambda w: reverse("api-optout-manual-withdraw"),
        lambda w: {"nhs_number": NUMBERS[0], "kind": "type1", "reason": "changed their mind"},
    ),
    "ndop": Endpoint(
        "optout",
        "post",
        lambda w: reverse("api-optout-ndop"),
        lambda w: {"ndop_file": _ndop(_lines(NUMBERS[:3]))},
        multipart=True,
        ok=201,
    ),
    "policy": Endpoint(
        "optout",
        "post",
        lambda w: reverse("api-optout-policy"),
        lambda w: {"cells": POLICY_CELLS, "reason": "COPI: direct public health need"},
        ok=201,
    ),
    "exemption": Endpoint(
        "optout",
        "post",
        lambda w: reverse("api-optout-exemption"),
        lambda w: {"project_id": 9, "reason": "CAG"},
        ok=201,
    ),
    "change": Endpoint("optout", "get", lambda w: reverse("api-optout-change", args=[w.theirs.pk])),
    "approve": Endpoint(
        "optout",
        "post",
        lambda w: reverse("api-optout-change-approve", args=[w.theirs.pk]),
        lambda w: {},
    ),
    "reject": Endpoint(
        "optout",
        "post",
        lambda w: reverse("api-optout-change-reject", args=[w.theirs.pk]),
        lambda w: {"decision_reason": "no instrument seen"},
    ),
    "withdraw": Endpoint(
        "optout",
        "post",
        lambda w: reverse("api-optout-change-withdraw", args=[w.mine.pk]),
        lambda w: {},
    ),
}
ALLOWED = {"catalogue": None, "ingest": R.DATA_CUSTODIAN, "optout": R.IG_OFFICER}
DENIED = {"ingest": 403, "optout": 404}  # custodians' pages are no secret; the register is


def _world(family: str, tmp_path: Path, custodian: User) -> World:
    if family == "ingest":
        return _ingest_world(tmp_path, custodian)
    if family == "optout":
        return _register_world(custodian)
    return World(custodian)


def _send(client: Client, endpoint: Endpoint, world: World, **extra: Any) -> Any:
    url = endpoint.url(world)
    if endpoint.method == "get":
        return client.get(url, **extra)
    body = endpoint.body(world) if endpoint.body else {}
    if endpoint.multipart:
        return client.post(url, body, **extra)
    return client.post(url, body, JSON, **extra)


def _expected(endpoint: Endpoint, role: Role | None) -> int:
    needed = ALLOWED[endpoint.family]
    if needed is None or role == needed:
        return endpoint.ok
    return DENIED[endpoint.family]


# Every role, and a person with no role; each by a verified session and by a token.
CALLERS = [(role, way) for role in [*Role, None] for way in ("session", "token")]
MATRIX = [(name, role, way) for name in ENDPOINTS for role, way in CALLERS]


@pytest.mark.parametrize(
    ("name", "role", "way"),
    MATRIX,
    ids=[f"{n}-{r.value if r else 'no-role'}-{w}" for n, r, w in MATRIX],
)
def test_every_endpoint_answers_every_role_as_the_policy_says(
    tmp_path, client_for, custodian, name, role, way
):
    endpoint = ENDPOINTS[name]
    world = _world(endpoint.family, tmp_path, custodian)
    if role == R.IG_OFFICER and endpoint.family == "optout":
        person = world.me
    else:
        person = scenarios.person(role) if role else scenarios.person()
    client = client_for(person) if way == "session" else _token_client(person)
    before, at = _state(), mark()

    response = _send(client, endpoint, world)

    expected = _expected(endpoint, role)
    assert response.status_code == expected, response.content[:300]
    if expected >= 400:
        assert _state() == before
        assert types_since(at) == []


@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_endpoint_answers_401_to_an_anonymous_caller(tmp_path, client, custodian, name):
    endpoint = ENDPOINTS[name]
    world = _world(endpoint.family, tmp_path, custodian)
    before, at = _state(), mark()

    response = _send(client, endpoint, world)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert _state() == before
    assert types_since(at) == []


@pytest.mark.parametrize("name", [n for n, e in ENDPOINTS.items() if e.family == "optout"])
def test_a_person_holding_every_other_role_gets_404_from_the_register(
    tmp_path, client_for, custodian, name
):
    endpoint = ENDPOINTS[name]
    world = _register_world(custodian)
    person = scenarios.person(*[r for r in Role if r != R.IG_OFFICER])
    before = _state()

    response = _send(client_for(person), endpoint, world)

    assert response.status_code == 404
    assert _state() == before


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_the_register_answers_404_to_any_method_from_anyone_but_ig(client_for, method):
    researcher = scenarios.person(R.RESEARCHER)
    client = client_for(researcher)

    response = getattr(client, method)(reverse("api-optout-manual"))

    assert response.status_code == 404


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_ig_gets_405_for_the_wrong_method(client_for, method):
    ig = scenarios.person(R.IG_OFFICER)

    response = getattr(client_for(ig), method)(reverse("api-optout-manual"))

    assert response.status_code == 405


# --- the catalogue -----------------------------------------------------------------------
def test_the_catalogue_lists_every_dataset_with_its_latest_version(tmp_path, client_for, custodian):
    ingest = _ingest(_drop(tmp_path), custodian)
    researcher = scenarios.person(R.RESEARCHER)

    body = _token_client(researcher).get(reverse("api-datasets")).json()

    assert body["count"] == Dataset.objects.count() == 9
    by_slug = {d["slug"]: d for d in body["results"]}
    patients = by_slug["patients"]
    version = ingest.versions.get(dataset__slug="patients")
    assert patients["name"] == "Registered patients"
    assert patients["gp_sourced"] is True
    assert patients["latest_version"]["version"] == 1
    assert patients["latest_version"]["checksum"] == version.checksum
    assert patients["latest_version"]["row_count"] == version.row_count
    assert by_slug["social-care"]["latest_version"] is None
    assert "fields" not in patients


def test_a_dataset_has_its_published_fields_and_versions(tmp_path, client_for, custodian):
    drop = _drop(tmp_path)
    first = _ingest(drop, custodian)
    second = _ingest(_drop(tmp_path, faults=FAULTS, name="again"), custodian)
    clinician = scenarios.person(R.CLINICIAN)

    response = client_for(clinician).get(reverse("api-dataset", args=["patients"]))

    assert response.status_code == 200
    body = response.json()
    names = [f["name"] for f in body["fields"]]
    assert names[0] == "person_id" and "birth_month" in names
    assert not {"nhs_number", "date_of_birth"} & set(names)
    person_id = body["fields"][0]
    assert person_id == {
        "name": "person_id",
        "data_type": "pseudonym",
        "description": person_id["description"],
        "sensitivity": "identifier",
        "position": 0,
    }
    assert [v["version"] for v in body["versions"]] == [2, 1]  # newest first
    newest = body["versions"][0]
    version = second.versions.get(dataset__slug="patients")
    assert newest["checksum"] == version.checksum
    assert newest["key_version"] == version.key_version
    assert newest["quarantined_count"] == version.quarantined_count > 0
    assert newest["quality"] == json.loads(json.dumps(version.quality))
    assert body["latest_version"] == newest
    assert first.versions.get(dataset__slug="patients").checksum == body["versions"][1]["checksum"]


def test_an_unknown_dataset_is_a_404(client_for, custodian):
    response = client_for(custodian).get(reverse("api-dataset", args=["no-such-data"]))

    assert response.status_code == 404


def test_the_catalogue_never_holds_a_row_value(tmp_path, data_root, client_for, custodian):
    drop = _drop(tmp_path)
    ingest = _ingest(drop, custodian)
    values = set()
    for table in TABLES:
        values |= set(pd.read_csv(drop / f"{table}.csv", dtype=str)["nhs_number"].dropna())
    for version in ingest.versions.all():
        values |= set(pq.read_table(data_root / version.path)["person_id"].to_pylist())
    client = client_for(scenarios.person(R.RESEARCHER))

    pages = [reverse("api-datasets")] + [
        reverse("api-dataset", args=[slug])
        for slug in Dataset.objects.values_list("slug", flat=True)
    ]
    bodies = [client.get(url).content.decode() for url in pages]

    assert len(values) > 300
    assert not [v for body in bodies for v in values if v in body]


# --- ingestion ---------------------------------------------------------------------------
def test_an_ingest_reports_its_database_state(tmp_path, client_for, custodian):
    ingest = request_ingest(drop_dir=_drop(tmp_path), by=custodian, enqueue=False)
    client = client_for(custodian)
    url = reverse("api-ingest", args=[ingest.pk])

    queued = client.get(url).json()
    run_ingest(ingest=ingest, by=custodian)
    done = client.get(url).json()

    assert (queued["status"], queued["stage"], queued["progress"]) == ("queued", "", 0)
    assert queued["versions"] == [] and queued["has_quarantine_report"] is False
    assert queued["requested_by"] == {
        "id": custodian.pk,
        "username": custodian.username,
        "name": custodian.display_name,
    }
    assert (done["status"], done["stage"], done["progress"]) == ("succeeded", "done", 100)
    assert done["received_rows"] == done["ingested_rows"] > 0
    assert sorted(v["dataset"] for v in done["versions"]) == ["gp-events", "patients"]
    assert "drop_path" not in done


def test_a_failed_ingest_reports_the_error(tmp_path, client_for, custodian):
    drop = _drop(tmp_path)
    (drop / "manifest.json").write_text("{not json")
    ingest = request_ingest(drop_dir=drop, by=custodian, enqueue=False)
    with pytest.raises(Exception, match=r"manifest\.json"):
        run_ingest(ingest=ingest, by=custodian)

    body = client_for(custodian).get(reverse("api-ingest", args=[ingest.pk])).json()

    assert body["status"] == "failed"
    assert body["error_class"] == "IngestError"
    assert body["error_message"] == "manifest.json is not valid JSON"


def test_the_ingest_list_is_newest_first(tmp_path, client_for, custodian):
    older = _ingest(_drop(tmp_path), custodian)
    newer = request_ingest(drop_dir=_drop(tmp_path, faults=FAULTS, name="b"), by=custodian,
                           enqueue=False)  # fmt: skip

    body = _token_client(custodian).get(reverse("api-ingests")).json()

    assert body["count"] == 2
    assert [i["id"] for i in body["results"]] == [newer.pk, older.pk]


def test_a_missing_ingest_is_a_404(client_for, custodian):
    assert client_for(custodian).get(reverse("api-ingest", args=[424242])).status_code == 404


def test_uploading_a_drop_queues_an_ingest_that_runs_after_commit(
    tmp_path, data_root, client_for, custodian, django_capture_on_commit_callbacks, monkeypatch
):
    drop = _drop(tmp_path)
    at = mark()

    with django_capture_on_commit_callbacks() as callbacks:
        response = _token_client(custodian).post(
            reverse("api-ingests"), {"label": "GP, November", "drop_files": _uploads(drop)}
        )

    ingest = Ingest.objects.get()
    assert response.status_code == 201
    assert response["Location"] == reverse("api-ingest", args=[ingest.pk])
    assert response.json()["id"] == ingest.pk
    assert response.json()["status"] == "queued"
    assert ingest.source_label == "GP, November"
    folder = Path(ingest.drop_path)
    assert folder.parent == (data_root / "uploads").resolve()
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in drop.iterdir())
    assert all((folder / p.name).read_bytes() == p.read_bytes() for p in drop.iterdir())
    assert [(e.event_type, e.actor_id) for e in events_since(at)][-1] == (
        E.INGEST_REQUESTED, custodian.pk
    )  # fmt: skip
    assert len(callbacks) == 1  # the task is enqueued only once the request has committed
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    callbacks[0]()
    ingest.refresh_from_db()
    assert ingest.status == S.SUCCEEDED


def test_uploading_a_drop_again_returns_its_ingest_and_keeps_no_copy(
    tmp_path, data_root, client_for, custodian
):
    drop = _drop(tmp_path)
    done = _ingest(drop, custodian)
    at = mark()

    response = client_for(custodian).post(reverse("api-ingests"), {"drop_files": _uploads(drop)})

    assert response.status_code == 200
    assert response.json()["id"] == done.pk
    assert Ingest.objects.count() == 1
    assert types_since(at) == [E.INGEST_REUSED]
    assert _uploads_left(data_root) == []


BAD_UPLOADS: dict[str, tuple[Callable[[Path], list[SimpleUploadedFile]], str]] = {
    "not a CSV file": (
        lambda d: [*_uploads(d, ["patients.csv"]), SimpleUploadedFile("notes.txt", b"hello")],
        "notes.txt: only .csv files and manifest.json can be part of a drop.",
    ),
    "no patients.csv": (
        lambda d: _uploads(d, ["gp_events.csv", "manifest.json"]),
        "A drop needs patients.csv.",
    ),
    "a file over the limit": (
        lambda d: _uploads(d, ["patients.csv"]),
        "patients.csv is {size:,} bytes; the limit is 1,000 per file.",
    ),
    "an empty file": (
        lambda d: [*_uploads(d, ["patients.csv"]), SimpleUploadedFile("gp_events.csv", b"")],
        "The submitted file is empty.",
    ),
    "no files at all": (lambda d: [], "This field is required."),
}


@pytest.mark.parametrize(("files", "message"), BAD_UPLOADS.values(), ids=BAD_UPLOADS)
def test_a_bad_upload_is_a_400_naming_the_problem_and_queues_nothing(
    tmp_path, data_root, settings, client_for, custodian, files, message
):
    drop = _drop(tmp_path)
    settings.SDE_MAX_UPLOAD_BYTES = 1000 if "limit" in message else 10**9
    message = message.format(size=(drop / "patients.csv").stat().st_size)
    at = mark()

    response = client_for(custodian).post(
        reverse("api-ingests"), {"label": "", "drop_files": files(drop)}
    )

    assert response.status_code == 400
    errors = _errors(response)["drop_files"]  # per file: {index: [message]}
    messages = errors if isinstance(errors, list) else [m for ms in errors.values() for m in ms]
    assert message in messages
    assert not Ingest.objects.exists()
    assert _uploads_left(data_root) == []
    assert types_since(at) == []


def test_an_upload_must_be_multipart(client_for, custodian):
    response = client_for(custodian).post(reverse("api-ingests"), {"drop_files": []}, JSON)

    assert response.status_code == 415
    assert not Ingest.objects.exists()


def test_an_upload_folder_is_removed_when_the_ingest_cannot_be_requested(
    tmp_path, data_root, client_for, custodian, monkeypatch
):
    from sde.data import ingestion

    def refuse(**kwargs: Any) -> Ingest:
        raise ingestion.IngestError("the drop cannot be read")

    monkeypatch.setattr(ingestion, "request_ingest", refuse)

    response = client_for(custodian).post(
        reverse("api-ingests"), {"drop_files": _uploads(_drop(tmp_path))}
    )

    assert response.status_code == 400
    assert response.json()["detail"] == "the drop cannot be read"
    assert _uploads_left(data_root) == []


@pytest.mark.parametrize("accept", [None, "text/csv"])
def test_downloading_the_quarantine_report_is_recorded(
    tmp_path, data_root, client_for, custodian, accept
):
    ingest = _ingest(_drop(tmp_path, faults=FAULTS), custodian)
    extra = {"HTTP_ACCEPT": accept} if accept else {}
    client = _token_client(custodian)
    at = mark()

    response = client.get(reverse("api-ingest-quarantine", args=[ingest.pk]), **extra)

    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert response["Content-Type"] == "text/csv"
    assert f'filename="quarantine-ingest-{ingest.pk}.csv"' in response["Content-Disposition"]
    assert body == (data_root / ingest.quarantine_path).read_bytes()
    (event,) = events_since(at)
    assert (event.event_type, event.actor_id, event.target_id) == (
        E.QUARANTINE_REPORT_DOWNLOADED, custodian.pk, str(ingest.pk)
    )  # fmt: skip
    assert event.data == {"rows": ingest.quarantined_rows, "via": "api"}


def test_an_ingest_without_quarantined_rows_has_no_report(tmp_path, client_for, custodian):
    ingest = _ingest(_drop(tmp_path), custodian)
    at = mark()

    response = client_for(custodian).get(
        reverse("api-ingest-quarantine", args=[ingest.pk]), HTTP_ACCEPT="text/csv"
    )

    assert response.status_code == 404
    assert types_since(at) == []


# --- the opt-out register: the overview --------------------------------------------------
def test_the_register_overview_is_the_pages_content_and_is_recorded(
    tmp_path, client_for, custodian
):
    world = _register_world(custodian)
    at = mark()

    response = _token_client(world.me).get(reverse("api-optouts"))

    assert response.status_code == 200
    body = response.json()
    (event,) = [e for e in events_since(at) if e.event_type == E.OPT_OUT_REGISTER_VIEWED]
    assert event.actor_id == world.me.pk
    assert event.data == {"snapshot": 1, "decision_table_version": 1, "pending_changes": 2}
    current = body["snapshot"]
    assert current["number"] == 1
    few = "fewer than 10"
    assert (current["ndop"], current["type1"], current["manual"]) == ("0", few, few)
    assert current["trigger"] == "manual_added"
    assert current["content_hash"] == register.current_snapshot().content_hash
    assert [s["number"] for s in body["snapshots"]] == [1]
    table = body["decision_table"]
    assert table["version"] == 1
    assert {"purpose": "direct_care", "basis": None, "ndop": "not_applied",
            "type1": "not_applied"}.items() <= table["rows"][0].items()  # fmt: skip
    assert table["platform_policy"] == [
        {"basis": "copi_reg3", "kind": "type1", "value": "applied"},
        {"basis": "not_confidential", "kind": "type1", "value": "applied"},
    ]
    pending = {c["id"]: c for c in body["pending"]}
    mine, theirs = pending[world.mine.pk], pending[world.theirs.pk]
    assert (mine["can_decide"], mine["can_withdraw"]) == (False, True)
    assert (theirs["can_decide"], theirs["can_withdraw"]) == (True, False)
    assert theirs["payload"]["instrument_overrides_type1"] is True
    assert theirs["reason"] == "Instrument SI 2020/1"
    assert body["decided"] == [] and body["extracts"] == []


def test_an_empty_register_has_no_snapshot(client_for):
    body = client_for(scenarios.person(R.IG_OFFICER)).get(reverse("api-optouts")).json()

    assert body["snapshot"] is None
    assert body["snapshots"] == [] and body["pending"] == []


# --- manual entries ----------------------------------------------------------------------
def test_adding_and_withdrawing_a_manual_opt_out(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    client = client_for(ig)
    at = mark()

    added = client.post(
        reverse("api-optout-manual"),
        {"nhs_number": "943 476 5919", "kind": "ndop", "reason": "email"},
        JSON,
    )
    middle = mark()
    withdrawn = client.post(
        reverse("api-optout-manual-withdraw"),
        {"nhs_number": VALID, "kind": "ndop", "reason": "changed their mind"},
        JSON,
    )

    assert added.status_code == 201
    assert added.json()["number"] == 1 and added.json()["ndop"] == "fewer than 10"
    assert types_since(at)[:2] == [E.OPT_OUT_MANUAL_ADDED, E.OPT_OUT_SNAPSHOT_IMPORTED]
    assert withdrawn.status_code == 200
    assert withdrawn.json()["number"] == 2 and withdrawn.json()["ndop"] == "0"
    assert types_since(middle) == [E.OPT_OUT_MANUAL_WITHDRAWN, E.OPT_OUT_SNAPSHOT_IMPORTED]
    assert not ManualOptOut.objects.filter(withdrawn_at__isnull=True).exists()
    assert VALID not in added.content.decode() + withdrawn.content.decode()


BAD_MANUAL = {
    "invalid number": (
        "manual",
        {"nhs_number": "9434765918", "kind": "ndop", "reason": "x"},
        "nhs_number",
    ),
    "letters": (
        "manual",
        {"nhs_number": "ABCDEFGHIJ", "kind": "ndop", "reason": "x"},
        "nhs_number",
    ),
    "too long": ("manual", {"nhs_number": "9" * 21, "kind": "ndop", "reason": "x"}, "nhs_number"),
    "no number": ("manual", {"kind": "ndop", "reason": "x"}, "nhs_number"),
    "bad kind": ("manual", {"nhs_number": VALID, "kind": VALID, "reason": "x"}, "kind"),
    "blank reason": ("manual", {"nhs_number": VALID, "kind": "ndop", "reason": "  "}, "reason"),
    "already recorded": (
        "manual",
        {"nhs_number": NUMBERS[0], "kind": "type1", "reason": "again"},
        "nhs_number",
    ),
    "nothing to withdraw": (
        "manual-withdraw",
        {"nhs_number": VALID, "kind": "ndop", "reason": "x"},
        "nhs_number",
    ),
}


@pytest.mark.parametrize(("url", "data", "field_name"), BAD_MANUAL.values(), ids=BAD_MANUAL)
def test_a_bad_manual_entry_is_a_400_that_never_echoes_the_number(
    client_for, custodian, url, data, field_name
):
    world = _register_world(custodian)
    before, at = _state(), mark()

    response = client_for(world.me).post(reverse(f"api-optout-{url}"), data, JSON)

    assert response.status_code == 400
    assert _errors(response)[field_name]
    text = response.content.decode()
    assert not [v for v in data.values() if v.strip().isdigit() and v.strip() in text]
    assert _state() == before
    assert types_since(at) == []


def test_an_html_client_gets_json_without_the_number(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    number = "9434765918"  # not valid

    response = client_for(ig).post(
        reverse("api-optout-manual"),
        {"nhs_number": number, "kind": "ndop", "reason": "x"},
        HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8",
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert number not in response.content.decode()


# --- NDOP files --------------------------------------------------------------------------
def test_importing_an_ndop_file_makes_a_snapshot_and_deletes_the_upload(client_for, var_dir):
    ig = scenarios.person(R.IG_OFFICER)
    client = _token_client(ig)
    at = mark()

    response = client.post(
        reverse("api-optout-ndop"),
        {"label": "NDOP, May", "ndop_file": _ndop(_lines([*NUMBERS[:12], "1234567890"]))},
    )
    again_at = mark()
    again = client.post(
        reverse("api-optout-ndop"),
        {"ndop_file": _ndop(_lines([*NUMBERS[:12], "1234567890"]))},
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["number"], body["ndop"], body["invalid_count"]) == (1, "12", 1)
    assert body["source_label"] == "NDOP, May" and len(body["source_hash"]) == 64
    assert body["imported_sources"] == ["ndop_file"]
    assert types_since(at)[0] == E.OPT_OUT_SNAPSHOT_IMPORTED
    assert again.status_code == 200 and again.json()["number"] == 1
    assert types_since(again_at) == [E.OPT_OUT_SNAPSHOT_UNCHANGED]
    assert OptOutSnapshot.objects.count() == 1
    assert _uploads_left(var_dir) == []
    text = response.content.decode() + again.content.decode()
    assert not [n for n in [*NUMBERS, "1234567890"] if n in text]


BAD_FILES = {
    "over the limit": (_lines(NUMBERS[:3]), "ndop.csv is 33 bytes; the limit is 20."),
    "not UTF-8": (b"\xff\xfe\x00not text\n", "the file is not UTF-8 text"),
    "two columns": (b"9434765919,extra\n", "malformed CSV: data line 1 has 2 fields, expected 1"),
    "empty": (b"", "The submitted file is empty."),
    "blank": (b"\n\n", "the file is empty"),
    "mostly not numbers": (
        _lines([NUMBERS[0], "1234567890", "1234567891", "3234567890"]),
        "Only 1 of 4 lines are valid NHS numbers",
    ),
}


@pytest.mark.parametrize(("content", "message"), BAD_FILES.values(), ids=BAD_FILES)
def test_a_bad_ndop_file_is_a_clear_400_and_changes_nothing(
    client_for, settings, var_dir, content, message
):
    settings.SDE_MAX_UPLOAD_BYTES = 20 if "limit" in message else 10**6
    ig = scenarios.person(R.IG_OFFICER)
    at = mark()

    response = client_for(ig).post(reverse("api-optout-ndop"), {"ndop_file": _ndop(content)})

    assert response.status_code == 400
    (error,) = _errors(response)["ndop_file"]
    assert message in error
    assert NUMBERS[0] not in response.content.decode()
    assert not OptOutSnapshot.objects.exists()
    assert types_since(at) == []
    assert _uploads_left(var_dir) == []


def test_no_ndop_file_at_all_is_a_400(client_for):
    response = client_for(scenarios.person(R.IG_OFFICER)).post(
        reverse("api-optout-ndop"), {"label": "x"}
    )

    assert response.status_code == 400
    assert _errors(response)["ndop_file"] == ["No file was submitted."]


def test_the_ndop_upload_is_deleted_even_when_the_import_fails_unexpectedly(
    client_for, monkeypatch, var_dir
):
    ig = scenarios.person(R.IG_OFFICER)
    seen: list[Path] = []

    def broken(*, path: Path, by: User, label: str) -> OptOutSnapshot:
        seen.append(path)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(register, "import_ndop_file", broken)

    with pytest.raises(RuntimeError, match="disk on fire"):
        client_for(ig).post(reverse("api-optout-ndop"), {"ndop_file": _ndop(_lines(NUMBERS[:3]))})

    assert seen and seen[0].is_relative_to(var_dir / "uploads")
    assert _uploads_left(var_dir) == []


# --- proposals ---------------------------------------------------------------------------
def test_proposing_a_platform_policy_change(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    at = mark()

    response = client_for(ig).post(
        reverse("api-optout-policy"),
        {"cells": POLICY_CELLS, "reason": "COPI: direct public health need"},
        JSON,
    )

    change = OptOutChange.objects.get()
    assert response.status_code == 201
    body = response.json()
    assert (body["id"], body["kind"], body["status"]) == (change.pk, "decision_table", "proposed")
    assert (body["can_decide"], body["can_withdraw"]) == (False, True)
    assert change.based_on_version == 1
    assert change.payload["platform_policy"]["copi_reg3"]["type1"] == "not_applied"
    assert types_since(at) == [E.OPT_OUT_CHANGE_PROPOSED]


BAD_POLICY = {
    "no change": (
        {"cells": [{"basis": "copi_reg3", "kind": "type1", "value": "applied"}], "reason": "x"},
        "table",
    ),
    "not a policy cell": (
        {"cells": [{"basis": "s251_standard", "kind": "ndop", "value": "not_applied"}],
         "reason": "x"},
        "decision_table",
    ),
    "not a policy value": (
        {"cells": [{"basis": "copi_reg3", "kind": "type1", "value": "case_by_case"}],
         "reason": "x"},
        "cells",
    ),
    "unknown basis": (
        {"cells": [{"basis": "vibes", "kind": "type1", "value": "applied"}], "reason": "x"},
        "cells",
    ),
    "a cell twice": ({"cells": [POLICY_CELLS[0], POLICY_CELLS[0]], "reason": "x"}, "cells"),
    "no cells": ({"cells": [], "reason": "x"}, "cells"),
    "no reason": ({"cells": POLICY_CELLS, "reason": ""}, "reason"),
}  # fmt: skip


@pytest.mark.parametrize(("data", "field_name"), BAD_POLICY.values(), ids=BAD_POLICY)
def test_a_bad_policy_proposal_is_a_400_and_proposes_nothing(client_for, data, field_name):
    ig = scenarios.person(R.IG_OFFICER)
    at = mark()

    response = client_for(ig).post(reverse("api-optout-policy"), data, JSON)

    assert response.status_code == 400
    assert _errors(response)[field_name]
    assert not OptOutChange.objects.exists()
    assert types_since(at) == []


def test_proposing_a_project_exemption(client_for):
    ig = scenarios.person(R.IG_OFFICER)
    client = _token_client(ig)
    at = mark()

    response = client.post(
        reverse("api-optout-exemption"),
        {"project_id": 12, "cag_letter_disapplies_type1": True,
         "caldicott_type1_decision": "not_applied", "reason": "CAG letter 22/CAG/0042"},
        JSON,
    )  # fmt: skip

    assert response.status_code == 201
    change = OptOutChange.objects.get()
    assert (change.kind, change.project_id, change.proposed_by_id) == ("exemption", 12, ig.pk)
    assert change.payload == {
        "cag_letter_disapplies_type1": True,
        "instrument_overrides_type1": False,
        "caldicott_type1_decision": "not_applied",
    }
    assert response.json()["payload"] == change.payload
    assert types_since(at) == [E.OPT_OUT_CHANGE_PROPOSED]


BAD_EXEMPTIONS = {
    "project zero": ({"project_id": 0, "reason": "x"}, "project_id"),
    "no project": ({"reason": "x"}, "project_id"),
    "bad decision": (
        {"project_id": 3, "caldicott_type1_decision": "maybe", "reason": "x"},
        "caldicott_type1_decision",
    ),
    "not a boolean": (
        {"project_id": 3, "cag_letter_disapplies_type1": "perhaps", "reason": "x"},
        "cag_letter_disapplies_type1",
    ),
    "no reason": ({"project_id": 3, "reason": " "}, "reason"),
}


@pytest.mark.parametrize(("data", "field_name"), BAD_EXEMPTIONS.values(), ids=BAD_EXEMPTIONS)
def test_a_bad_exemption_is_a_400_and_proposes_nothing(client_for, data, field_name):
    ig = scenarios.person(R.IG_OFFICER)

    response = client_for(ig).post(reverse("api-optout-exemption"), data, JSON)

    assert response.status_code == 400
    assert _errors(response)[field_name]
    assert not OptOutChange.objects.exists()


# --- deciding and withdrawing ------------------------------------------------------------
def _decide(client: Client, change: OptOutChange, decision: str, reason: str = "") -> Any:
    return client.post(
        reverse(f"api-optout-change-{decision}", args=[change.pk]),
        {"decision_reason": reason},
        JSON,
    )


def test_a_second_ig_officer_approves_an_exemption(client_for, custodian):
    world = _register_world(custodian)
    at = mark()

    response = _decide(client_for(world.me), world.theirs, "approve")

    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    assert response.json()["decided_by"]["id"] == world.me.pk
    assert types_since(at) == [E.OPT_OUT_EXEMPTION_APPROVED]
    assert optout_changes.exemption_for(5) == world.theirs


def test_approving_a_policy_change_makes_the_next_table_version(client_for):
    proposer, decider = scenarios.person(R.IG_OFFICER), scenarios.person(R.IG_OFFICER)
    client_for(proposer).post(
        reverse("api-optout-policy"), {"cells": POLICY_CELLS, "reason": "COPI"}, JSON
    )
    change = OptOutChange.objects.get()
    client = _token_client(decider)
    at = mark()

    response = _decide(client, change, "approve")

    assert response.status_code == 200
    assert response.json()["table_version"] == 2
    assert types_since(at) == [E.OPT_OUT_POLICY_CHANGED]
    overview = client_for(decider).get(reverse("api-optouts")).json()
    assert overview["decision_table"]["version"] == 2
    assert {"basis": "copi_reg3", "kind": "type1", "value": "not_applied"} in overview[
        "decision_table"
    ]["platform_policy"]
    assert [c["id"] for c in overview["decided"]] == [change.pk]


def test_rejecting_needs_a_reason(client_for, custodian):
    world = _register_world(custodian)
    client = client_for(world.me)
    at = mark()

    refused = _decide(client, world.theirs, "reject")
    rejected = _decide(client, world.theirs, "reject", "no instrument seen")

    assert refused.status_code == 400
    assert _errors(refused)["decision_reason"] == ["Give the reason."]
    assert rejected.status_code == 200
    assert rejected.json()["decision_reason"] == "no instrument seen"
    assert types_since(at) == [E.OPT_OUT_CHANGE_REJECTED]


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_the_proposer_cannot_decide_their_own_change(client_for, custodian, decision):
    world = _register_world(custodian)
    at = mark()

    response = _decide(client_for(world.me), world.mine, decision)

    assert response.status_code == 403  # before the body: even a reasonless rejection
    world.mine.refresh_from_db()
    assert world.mine.status == Status.PROPOSED
    assert types_since(at) == []


def test_deciding_twice_is_a_409(client_for, custodian):
    world = _register_world(custodian)
    _decide(client_for(world.me), world.theirs, "approve")
    third = scenarios.person(R.IG_OFFICER)
    at = mark()

    again = _decide(client_for(third), world.theirs, "reject", "late")

    assert again.status_code == 409
    assert types_since(at) == []


def test_only_the_proposer_withdraws_and_only_once(client_for, custodian):
    world = _register_world(custodian)
    client = client_for(world.me)

    theirs = client.post(reverse("api-optout-change-withdraw", args=[world.theirs.pk]))
    at = mark()
    mine = client.post(reverse("api-optout-change-withdraw", args=[world.mine.pk]))
    again = client.post(reverse("api-optout-change-withdraw", args=[world.mine.pk]))

    assert theirs.status_code == 403
    assert mine.status_code == 200 and mine.json()["status"] == "withdrawn"
    assert again.status_code == 409
    assert types_since(at) == [E.OPT_OUT_CHANGE_WITHDRAWN]


@pytest.mark.parametrize("action", ["", "approve", "reject", "withdraw"])
def test_an_unknown_change_is_a_404_for_ig(client_for, action):
    ig = scenarios.person(R.IG_OFFICER)
    name = f"api-optout-change-{action}" if action else "api-optout-change"
    client = client_for(ig)

    response = (
        client.post(reverse(name, args=[424242]))
        if action
        else client.get(reverse(name, args=[424242]))
    )

    assert response.status_code == 404


# --- nothing identifying in any response --------------------------------------------------
def test_no_nhs_number_or_pseudonym_is_in_any_response(tmp_path, client_for, custodian):
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    drop = synth.generate(patients=300, seed=2, config=config,
                          tables=["patients", "gp_events", "ndop"])  # fmt: skip
    synth.write_drop(drop, tmp_path / "drop")
    ingest = _ingest(tmp_path / "drop", custodian)
    world = _register_world(custodian)
    client = client_for(world.me)
    scope = ExtractScope.from_json({
        "project_id": 3, "datasets": {"patients": ["person_id", "sex"]},
        "purpose": "research", "legal_basis": "s251_standard",
    })  # fmt: skip
    extract = build_extract(scope=scope, by=custodian)
    responses = [
        client.post(reverse("api-optout-manual"),
                    {"nhs_number": VALID, "kind": "ndop", "reason": "email"}, JSON),
        client.post(reverse("api-optout-manual"),
                    {"nhs_number": VALID, "kind": "ndop", "reason": "again"}, JSON),
        client.post(reverse("api-optout-manual"),
                    {"nhs_number": NUMBERS[1], "kind": NUMBERS[2], "reason": "x"}, JSON),
        client.post(reverse("api-optout-manual-withdraw"),
                    {"nhs_number": NUMBERS[3], "kind": "ndop", "reason": "x"}, JSON),
        client.post(reverse("api-optout-ndop"),
                    {"label": f"list for {NUMBERS[4]}",
                     "ndop_file": _ndop(_lines(NUMBERS[4:9]), name=f"{NUMBERS[5]}.csv")}),
    ]  # fmt: skip
    responses += [client.get(reverse("api-optouts")), client.get(reverse("api-datasets"))]
    responses += [client.get(reverse("api-dataset", args=["patients"]))]
    custodian_client = client_for(custodian)
    responses += [
        custodian_client.get(reverse("api-ingests")),
        custodian_client.get(reverse("api-ingest", args=[ingest.pk])),
    ]
    secrets = {*NUMBERS, VALID}
    secrets |= set((tmp_path / "drop" / "ndop.csv").read_text().split())
    secrets |= set(pd.read_csv(tmp_path / "drop" / "patients.csv", dtype=str)["nhs_number"])
    secrets |= set(register.snapshot_entries(register.current_snapshot())["person_id"])
    secrets |= set(ManualOptOut.objects.values_list("system_pseudonym", flat=True))

    assert [r.status_code for r in responses[:5]] == [201, 400, 400, 400, 201]
    assert extract.people_removed > 0
    overview = responses[5].json()
    assert overview["extracts"][0]["people_removed"] == register.suppressed(extract.people_removed)
    assert overview["extracts"][0]["dataset_versions"] == {"patients": 1}
    assert len(secrets) > 300
    for response in responses:
        text = response.content.decode()
        leaked = [s for s in secrets if s in text]
        assert not leaked, (response.request["PATH_INFO"], leaked[:3])


# --- the OpenAPI schema -------------------------------------------------------------------
NEW_PATHS = {
    "/api/v1/datasets",
    "/api/v1/datasets/{slug}",
    "/api/v1/ingests",
    "/api/v1/ingests/{id}",
    "/api/v1/ingests/{id}/quarantine.csv",
    "/api/v1/optouts",
    "/api/v1/optouts/manual",
    "/api/v1/optouts/manual/withdraw",
    "/api/v1/optouts/ndop",
    "/api/v1/optouts/changes/policy",
    "/api/v1/optouts/changes/exemption",
    "/api/v1/optouts/changes/{id}",
    "/api/v1/optouts/changes/{id}/approve",
    "/api/v1/optouts/changes/{id}/reject",
    "/api/v1/optouts/changes/{id}/withdraw",
}


def test_the_schema_covers_the_data_api_without_warnings():
    document = schema_without_warnings()
    assert NEW_PATHS <= set(document["paths"])
    upload = document["paths"]["/api/v1/ingests"]["post"]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    drop = document["components"]["schemas"]["DropUpload"]["properties"]["drop_files"]
    assert drop["items"] == {"type": "string", "format": "binary"}
    manual = document["components"]["schemas"]["ManualOptOut"]["properties"]
    assert manual["nhs_number"]["writeOnly"] is True
    snapshot = document["components"]["schemas"]["OptOutSnapshot"]["properties"]
    assert not {"ndop_count", "type1_count", "manual_count", "path"} & set(snapshot)
