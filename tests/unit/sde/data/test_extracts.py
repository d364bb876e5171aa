"""Project extracts: the data scope, exactly the scoped fields under project pseudonyms,
date range and cohort filters, opt-outs as the decision table says (every row of
optouts.md), rebuilding before use, failing closed, what IG and researchers can reach,
dummy extracts of the identical schema, and the audit trail.

Expectations are computed from the synthetic drop itself (NHS numbers -> system
pseudonyms -> project pseudonyms, recomputed here from the keyrings), never read back
from the service under test."""

from __future__ import annotations

import copy
import hmac
import json
import re
from collections.abc import Callable, Iterable
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.utils import timezone

from sde.audit.events import EventType
from sde.audit.services import get_system_user
from sde.data import extracts, optout_changes, register, synth
from sde.data import source_format as sf
from sde.data.catalogue import published_fields
from sde.data.extracts import (
    CohortFilters,
    ExtractError,
    ExtractScope,
    build_dummy_extract,
    build_extract,
    delete_extract,
    extract_for_use,
    removal_summary,
    validate_scope,
)
from sde.data.files import file_sha256
from sde.data.ingestion import request_ingest, run_ingest
from sde.data.models import DatasetVersion, Extract, Ingest, OptOutChange
from sde.data.optouts import DEFAULT_DECISION_TABLE, treatment_for
from sde.data.pseudonymisation import project_key, project_pseudonyms, system_pseudonyms
from sde.exceptions import NotFound, PermissionDenied, ValidationError
from sde.identity.models import User
from sde.identity.roles import Role
from sde.keys import keyring, rotate_development_key
from tests import scenarios
from tests.events import events_since, mark, types_since

pytestmark = pytest.mark.django_db

SEED = 11
PEOPLE = 900
PROJECT = 7
# Small practices and Places, so the cohort filters on them pick real subsets.
CONFIG = synth.SynthConfig(
    faults=synth.FaultRates.none(),
    people_per_practice=150,
    people_per_place=400,
    people_per_lsoa=60,
)
FULL = ("patients", "gp_events", "apc_spells", "ae_attendances", "ndop")
NO_NDOP = ("patients", "gp_events", "apc_spells")  # the register has Type 1 codes only
NO_REGISTER = ("patients", "apc_spells")  # no GP events, no NDOP file: no snapshot at all
PATIENTS_ONLY = ("patients",)
TABLES = ("patients", "gp_events", "apc_spells", "ae_attendances")
SLUGS = {table: table.replace("_", "-") for table in TABLES}
GP_SOURCED = {"patients", "gp_events"}
END = date(2024, 12, 31)  # a month's last day: ages from the birth month are exact
HYPERTENSION, ASTHMA = "38341003", "195967001"
HEX64 = re.compile(r"[0-9a-f]{64}")


# --- The drop, generated once -----------------------------------------------------------
@cache
def _generated(tables: tuple[str, ...]) -> synth.SyntheticDrop:
    # Each table has its own random stream: a table is the same in every subset.
    return synth.generate(patients=PEOPLE, seed=SEED, config=CONFIG, tables=tables)


def _source(table: str) -> pd.DataFrame:
    return _generated(FULL)[table]


@cache
def _ndop_nhs() -> frozenset[str]:
    return frozenset(_source("ndop")["nhs_number"])


@cache
def _type1_nhs() -> frozenset[str]:
    events = _source("gp_events")
    return frozenset(events.loc[events["snomed_code"] == sf.TYPE1_DISSENT, "nhs_number"])


@cache
def _manual_optout_people() -> tuple[str, str]:
    """Two people with no opt-out in the drop who have GP events, admissions and A&E
    attendances: one gets a manual NDOP opt-out, the other a manual Type 1 opt-out."""
    everywhere = set.intersection(*(set(_source(t)["nhs_number"]) for t in TABLES))
    candidates = sorted(everywhere - _ndop_nhs() - _type1_nhs())
    return candidates[0], candidates[1]


@pytest.fixture(scope="session")
def drop_dirs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[tuple[str, ...]], Path]:
    root = tmp_path_factory.mktemp("drops")

    def folder(tables: tuple[str, ...]) -> Path:
        path = root / "+".join(tables)
        if not path.exists():
            synth.write_drop(_generated(tables), path)
        return path

    return folder


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path) -> Path:
    return private_data_root


@pytest.fixture
def ingest(drop_dirs, custodian) -> Callable[..., Ingest]:
    def run(tables: tuple[str, ...] = FULL) -> Ingest:
        requested = request_ingest(drop_dir=drop_dirs(tables), by=custodian, enqueue=False)
        done = run_ingest(ingest=requested, by=custodian)
        assert done.status == Ingest.Status.SUCCEEDED
        assert done.quarantined_rows == 0  # so every source row is in the data layer
        return done

    return run


# --- Pseudonyms, recomputed here ---------------------------------------------------------
def _system_ids(nhs: Iterable[str]) -> pd.Series:
    return system_pseudonyms(pd.Series(list(nhs), dtype="string"), keyring("system").current()[1])


def _project_key(project_id: int) -> bytes:
    version, master = keyring("master").current()
    return project_key(master, project_id, version)


def _pp(project_id: int = PROJECT) -> dict[str, str]:
    """NHS number -> the project pseudonym, for everyone in the drop."""
    nhs = _source("patients")["nhs_number"].tolist()
    pseudonyms = project_pseudonyms(_system_ids(nhs), _project_key(project_id))
    return dict(zip(nhs, pseudonyms.tolist(), strict=True))


# --- Scopes and reading extracts ----------------------------------------------------------
def _scope(
    datasets: dict[str, Iterable[str]],
    *,
    purpose: str = "research",
    basis: str = "s251_standard",
    project_id: int = PROJECT,
    date_from: date | None = None,
    date_to: date | None = None,
    **cohort: Any,
) -> ExtractScope:
    return ExtractScope(
        project_id=project_id,
        datasets={slug: tuple(fields) for slug, fields in datasets.items()},
        purpose=purpose,
        legal_basis=basis,
        date_from=date_from,
        date_to=date_to,
        cohort=CohortFilters(**cohort),
    )


def _all_fields(table: str) -> list[str]:
    return [f.name for f in published_fields(table)]


def _folder(data_root: Path, extract: Extract) -> Path:
    return data_root / extract.path


def _read(data_root: Path, extract: Extract, slug: str) -> pd.DataFrame:
    return pq.read_table(_folder(data_root, extract) / f"{slug}.parquet").to_pandas()


def _people_in(data_root: Path, extract: Extract, slug: str) -> set[str]:
    return set(_read(data_root, extract, slug)["person_id"])


def _ig_pair() -> tuple[User, User]:
    return scenarios.person(Role.IG_OFFICER), scenarios.person(Role.IG_OFFICER)


def _approve_exemption(project_id: int = PROJECT, **flags: Any) -> OptOutChange:
    """An exemption proposed by one IG officer and approved by a second."""
    proposer, approver = _ig_pair()
    change = optout_changes.propose_exemption(
        project_id=project_id, reason="CAG letter 24/CAG/0001 on file", by=proposer, **flags
    )
    return optout_changes.decide_change(change=change, approve=True, reason="", by=approver)


def _add_optout(nhs_number: str, kind: str) -> None:
    register.add_manual_optout(
        nhs_number=nhs_number, kind=kind, reason="Objection received by letter", by=_ig_pair()[0]
    )


def _assert_nothing_built(data_root: Path) -> None:
    """No Extract row, no extract folder and no file under extracts/ or staging/."""
    assert not Extract.objects.exists()
    for name in ("extracts", "staging"):
        left = [p for p in (data_root / name).rglob("*") if p.is_file()]
        left += list((data_root / name).rglob("extract-*")) + list(
            (data_root / name).rglob("dummy-*")
        )
        assert not left, f"left behind under {name}/: {left}"


# =========================================================================================
# The data scope
# =========================================================================================
VALID_SCOPE: dict[str, Any] = {
    "project_id": PROJECT,
    "datasets": {"patients": ["person_id", "sex"], "gp-events": ["person_id", "date"]},
    "purpose": "research",
    "legal_basis": "s251_standard",
    "date_from": "2023-06-01",
    "date_to": "2024-12-31",
    "cohort": {"age_min": 18, "age_max": 65, "sexes": ["F"], "imd_deciles": [1, 2]},
}


def _scope_json(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID_SCOPE)
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"date_from": "2024-13-01"}, "date_from", "YYYY-MM-DD"),
        ({"date_from": "01/06/2023"}, "date_from", "YYYY-MM-DD"),
        ({"date_to": 20241231}, "date_to", "YYYY-MM-DD"),
        ({"cohort": {"min_age": 18}}, "cohort", "unknown filter 'min_age'"),
        ({"datasets": ["patients"]}, "datasets", "Map each dataset to its fields."),
        ({"datasets": {"patients": None}}, "scope", "Not a data scope."),
    ],
)
def test_from_json_rejects_a_malformed_scope(changes, field, words):
    with pytest.raises(ValidationError) as raised:
        ExtractScope.from_json(_scope_json(**changes))

    assert words in " ".join(raised.value.errors[field])


@pytest.mark.parametrize("data", [["patients"], "scope", None])
def test_from_json_rejects_what_is_not_a_mapping(data):
    with pytest.raises(ValidationError) as raised:
        ExtractScope.from_json(data)

    assert raised.value.errors["scope"] == ["Not a data scope."]


def test_from_json_reports_every_problem_at_once():
    data = _scope_json(
        date_from="yesterday", date_to="2024-02-30", cohort={"min_age": 1, "colour": "red"}
    )

    with pytest.raises(ValidationError) as raised:
        ExtractScope.from_json(data)

    errors = raised.value.errors
    assert set(errors) == {"date_from", "date_to", "cohort"}
    assert errors["cohort"] == ["unknown filter 'colour'", "unknown filter 'min_age'"]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"datasets": {}}, "datasets", "Choose at least one dataset."),
        ({"datasets": {"no-such": ["person_id"]}}, "datasets", "No dataset 'no-such'"),
        ({"datasets": {"patients": ["person_id", "colour"]}}, "datasets", "no field 'colour'"),
        # The NHS number and date of birth are not published fields of any dataset.
        ({"datasets": {"patients": ["nhs_number"]}}, "datasets", "no field 'nhs_number'"),
        ({"datasets": {"patients": ["date_of_birth"]}}, "datasets", "no field 'date_of_birth'"),
        ({"datasets": {"patients": []}}, "datasets", "Choose at least one field of patients."),
        ({"datasets": {"patients": ["sex", "sex"]}}, "datasets", "chosen twice"),
        ({"date_from": "2024-02-01", "date_to": "2024-01-31"}, "date_to", "before the start"),
        ({"cohort": {"age_min": -1}}, "cohort", "Ages are whole years from 0 to 130."),
        ({"cohort": {"age_max": 131}}, "cohort", "Ages are whole years from 0 to 130."),
        ({"cohort": {"age_min": True}}, "cohort", "Ages are whole years from 0 to 130."),
        ({"cohort": {"age_min": "18"}}, "cohort", "Ages are whole years from 0 to 130."),
        ({"cohort": {"age_max": 64.5}}, "cohort", "Ages are whole years from 0 to 130."),
        ({"cohort": {"age_min": 40, "age_max": 39}}, "cohort", "minimum age is above"),
        ({"cohort": {"imd_deciles": [0]}}, "cohort", "IMD deciles run from 1 to 10."),
        ({"cohort": {"imd_deciles": [3, 11]}}, "cohort", "IMD deciles run from 1 to 10."),
        ({"cohort": {"imd_deciles": [True]}}, "cohort", "IMD deciles run from 1 to 10."),
        ({"cohort": {"imd_deciles": ["1"]}}, "cohort", "IMD deciles run from 1 to 10."),
        ({"project_id": 0}, "project_id", "project's number"),
        ({"project_id": -3}, "project_id", "project's number"),
        ({"project_id": "7"}, "project_id", "project's number"),
        ({"project_id": True}, "project_id", "project's number"),
        ({"project_id": None}, "project_id", "project's number"),
        ({"purpose": "marketing"}, "purpose", "Choose one of"),
        ({"purpose": "Research"}, "purpose", "Choose one of"),
        ({"purpose": None}, "purpose", "Choose one of"),
    ],
)
def test_validate_scope_rejects_each_problem_by_field(custodian, changes, field, words):
    scope = ExtractScope.from_json(_scope_json(**changes))

    with pytest.raises(ValidationError) as raised:
        validate_scope(scope)

    assert set(raised.value.errors) == {field}
    assert words in " ".join(raised.value.errors[field])


def test_validate_scope_reports_every_problem_at_once(custodian):
    scope = ExtractScope.from_json(
        {
            "project_id": 0,
            "datasets": {"nope": ["x"], "patients": ["sex", "sex", "colour"], "gp-events": []},
            "purpose": "marketing",
            "legal_basis": "s251_standard",
            "date_from": "2024-02-01",
            "date_to": "2024-01-01",
            "cohort": {"age_min": 60, "age_max": 20, "imd_deciles": [0]},
        }
    )

    with pytest.raises(ValidationError) as raised:
        validate_scope(scope)

    errors = raised.value.errors
    assert set(errors) == {"project_id", "purpose", "datasets", "date_to", "cohort"}
    assert errors["datasets"] == [
        "No dataset 'nope' in the catalogue.",
        "patients has no field 'colour'.",
        "A field of patients is chosen twice.",
        "Choose at least one field of gp-events.",
    ]
    assert errors["cohort"] == [
        "The minimum age is above the maximum.",
        "IMD deciles run from 1 to 10.",
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"cohort": {"age_min": 0, "age_max": 130, "imd_deciles": [1, 10]}},
        {"cohort": {"age_min": 40, "age_max": 40}},
        {"date_from": "2024-01-31", "date_to": "2024-01-31"},
        {"date_from": None, "date_to": None, "cohort": {}},
        {"purpose": "direct_care", "legal_basis": ""},
    ],
)
def test_validate_scope_accepts_the_boundaries(custodian, changes):
    datasets = validate_scope(ExtractScope.from_json(_scope_json(**changes)))

    assert sorted(datasets) == ["gp-events", "patients"]
    assert datasets["gp-events"].source_table == "gp_events"


@pytest.mark.parametrize(
    "scope",
    [
        _scope(
            {"patients": ["person_id", "sex"], "apc-spells": ["cost", "person_id"]},
            date_from=date(2023, 6, 1),
            date_to=END,
            age_min=18,
            age_max=65,
            sexes=("F", "M"),
            practices=("Y99001",),
            places=("North Place",),
            imd_deciles=(1, 2),
            snomed_codes=(HYPERTENSION,),
            registered_only=True,
        ),
        _scope({"gp-events": ["date"]}, purpose="direct_care", basis=""),
    ],
    ids=["every-filter", "no-filters"],
)
def test_a_scope_survives_a_json_round_trip(scope):
    data = json.loads(json.dumps(scope.to_json()))

    assert ExtractScope.from_json(data) == scope
    assert data["date_to"] == (scope.date_to.isoformat() if scope.date_to else None)


# =========================================================================================
# Only the scoped fields, under project pseudonyms
# =========================================================================================
def test_each_file_has_exactly_the_scoped_columns_in_scope_order(data_root, ingest, custodian):
    ingest()
    scope = _scope(
        {
            "patients": ["sex", "person_id", "imd_decile", "birth_month"],
            "gp-events": ["snomed_code", "date"],
            "apc-spells": ["cost", "person_id", "admission_date"],
        },
        purpose="direct_care",
    )

    extract = build_extract(scope=scope, by=custodian)

    folder = _folder(data_root, extract)
    assert sorted(p.name for p in folder.iterdir()) == [
        "apc-spells.parquet",
        "gp-events.parquet",
        "patients.parquet",
    ]
    for slug, fields in scope.datasets.items():
        assert pq.read_schema(folder / f"{slug}.parquet").names == list(fields), slug
        entry = extract.tables[f"{slug}.parquet"]
        assert entry["fields"] == list(fields)
        assert entry["dataset"] == slug
        assert entry["rows"] == pq.read_metadata(folder / f"{slug}.parquet").num_rows
        assert entry["sha256"] == file_sha256(folder / f"{slug}.parquet")
    # The values are the people's own, under their project pseudonyms.
    pp = _pp()
    source = _source("patients")
    expected = pd.DataFrame(
        {
            "sex": source["sex"].astype(str),
            "person_id": source["nhs_number"].map(pp),
            "imd_decile": source["imd_decile"].astype(int),
            "birth_month": source["date_of_birth"].dt.to_period("M").dt.to_timestamp(),
        }
    )
    actual = _read(data_root, extract, "patients")
    assert _records(actual) == _records(expected)
    events = _without_dissent("gp_events", _source("gp_events"))
    gp = _read(data_root, extract, "gp-events")
    assert _records(gp) == _records(events[["snomed_code", "date"]])
    assert extract.scope == scope.to_json()
    assert extract.person_count == len(source)


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    return value.item() if hasattr(value, "item") else value


def _records(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples of plain Python values (types normalised for comparison)."""
    return sorted((tuple(map(_plain, row)) for row in frame.itertuples(index=False)), key=repr)


def test_person_ids_are_project_pseudonyms_never_system_pseudonyms_or_nhs_numbers(
    data_root, ingest, custodian
):
    ingest()
    scope = _scope({"patients": ["person_id"], "gp-events": ["person_id"]}, purpose="direct_care")

    extract = build_extract(scope=scope, by=custodian)

    nhs = _source("patients")["nhs_number"]
    system = set(_system_ids(nhs))
    pp = _pp()
    for slug in ("patients", "gp-events"):
        ids = _people_in(data_root, extract, slug)
        assert ids <= set(pp.values()), slug
        assert all(HEX64.fullmatch(i) for i in ids)
        assert not ids & system
        assert not ids & set(nhs)
    assert _people_in(data_root, extract, "patients") == set(pp.values())
    # One person by hand: HMAC(HKDF(K_master, "project:7:v1"), HMAC(K_system, NHS number)).
    person = nhs.iloc[0]
    version, master = keyring("master").current()
    system_key = keyring("system").current()[1]
    k_project = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"project:{PROJECT}:v{version}".encode(),
    ).derive(master)
    sp = hmac.digest(system_key, person.encode(), "sha256").hex()
    assert hmac.digest(k_project, sp.encode(), "sha256").hex() in ids
    assert extract.master_key_version == version == 1


def test_different_projects_get_different_pseudonyms_for_the_same_people(
    data_root, ingest, custodian
):
    ingest()
    fields = {"patients": ["person_id"]}

    first = build_extract(scope=_scope(fields, purpose="direct_care", project_id=7), by=custodian)
    second = build_extract(scope=_scope(fields, purpose="direct_care", project_id=8), by=custodian)

    seven, eight = (
        _people_in(data_root, first, "patients"),
        _people_in(data_root, second, "patients"),
    )
    assert len(seven) == len(eight) == PEOPLE
    assert not seven & eight
    assert seven == set(_pp(7).values())
    assert eight == set(_pp(8).values())
    assert first.path.startswith("extracts/project-7/")
    assert second.path.startswith("extracts/project-8/")


def test_rebuilding_for_the_same_project_gives_the_same_pseudonyms(data_root, ingest, custodian):
    ingest()
    scope = _scope({"gp-events": ["person_id", "date", "snomed_code"]}, purpose="direct_care")

    first = build_extract(scope=scope, by=custodian)
    second = build_extract(scope=scope, by=custodian)

    assert first.path != second.path
    before, after = (_read(data_root, e, "gp-events") for e in (first, second))
    assert _records(before) == _records(after)
    assert first.tables == second.tables  # same rows, same bytes


def test_a_new_master_key_gives_new_pseudonyms(data_root, ingest, custodian):
    ingest()
    scope = _scope({"patients": ["person_id"]}, purpose="direct_care")
    before = build_extract(scope=scope, by=custodian)

    assert rotate_development_key("master") == 2
    after = build_extract(scope=scope, by=custodian)

    assert (before.master_key_version, after.master_key_version) == (1, 2)
    assert not _people_in(data_root, before, "patients") & _people_in(data_root, after, "patients")
    assert _people_in(data_root, after, "patients") == set(_pp().values())  # under v2


# =========================================================================================
# Date range and cohort
# =========================================================================================
@cache
def _window() -> tuple[date, date]:
    """Two days that have GP events, a third and two thirds into the drop's window."""
    dates = _source("gp_events")["date"]
    inside = dates[(dates >= pd.Timestamp(CONFIG.start))].sort_values(ignore_index=True)
    return inside.iloc[len(inside) // 3].date(), inside.iloc[2 * len(inside) // 3].date()


def _in_range(dates: pd.Series, date_from: date | None, date_to: date | None) -> pd.Series:
    keep = pd.Series(True, index=dates.index)
    if date_from:
        keep &= dates >= pd.Timestamp(date_from)
    if date_to:
        keep &= dates <= pd.Timestamp(date_to)
    return keep


@pytest.mark.parametrize("bounds", ["from", "to", "both"])
def test_the_date_range_filters_activity_on_each_tables_main_date_but_not_patients(
    data_root, ingest, custodian, bounds
):
    ingest()
    first, last = _window()
    date_from = first if bounds in ("from", "both") else None
    date_to = last if bounds in ("to", "both") else None
    fields = {
        "patients": ["person_id", "registration_start"],
        "gp-events": ["person_id", "date"],
        # The main date need not be in scope to filter on it.
        "apc-spells": ["person_id", "cost"],
        "ae-attendances": ["arrival_date", "person_id"],
    }

    extract = build_extract(
        scope=_scope(fields, purpose="direct_care", date_from=date_from, date_to=date_to),
        by=custodian,
    )

    pp = _pp()
    for table in TABLES:
        source = _without_dissent(table, _source(table))
        slug = SLUGS[table]
        if table == "patients":
            outside = ~_in_range(source["registration_start"], date_from, date_to)
            assert outside.any(), "some people registered outside the range"
            kept = source
        else:
            in_range = _in_range(source[sf.MAIN_DATE[table]], date_from, date_to)
            assert 0 < in_range.sum() < len(source), table
            kept = source[in_range]
        expected = kept.assign(person_id=kept["nhs_number"].map(pp))[fields[slug]]
        assert _records(_read(data_root, extract, slug)) == _records(expected), table
    # Both ends are inclusive: the first and last days' events are in.
    gp = _read(data_root, extract, "gp-events")["date"].dt.date
    if date_from:
        assert gp.min() == date_from
    if date_to:
        assert gp.max() == date_to


def _age(people: pd.DataFrame, at: date) -> pd.Series:
    """Exact age in whole years at ``at`` from the full date of birth."""
    born = people["date_of_birth"]
    before_birthday = (born.dt.month > at.month) | (
        (born.dt.month == at.month) & (born.dt.day > at.day)
    )
    return at.year - born.dt.year - before_birthday.astype(int)


def _coded(codes: tuple[str, ...], date_from: date | None, date_to: date | None) -> set[str]:
    events = _source("gp_events")
    hit = events["snomed_code"].isin(codes) & _in_range(events["date"], date_from, date_to)
    return set(events.loc[hit, "nhs_number"])


Predicate = Callable[[pd.DataFrame], pd.Series]
COHORTS: list[tuple[str, dict[str, Any], date | None, Predicate]] = [
    ("adults-18-64", {"age_min": 18, "age_max": 64}, None,
     lambda p: _age(p, END).between(18, 64)),
    ("aged-65-plus", {"age_min": 65}, None, lambda p: _age(p, END) >= 65),
    # People born after the end date have no age yet: they are in no age range.
    ("children", {"age_max": 17}, None, lambda p: _age(p, END).between(0, 17)),
    ("aged-exactly-40", {"age_min": 40, "age_max": 40}, None, lambda p: _age(p, END) == 40),
    ("women", {"sexes": ("F",)}, None, lambda p: p["sex"] == "F"),
    ("two-practices", {"practices": ("Y99001", "Y99004")}, None,
     lambda p: p["practice_ods"].isin(["Y99001", "Y99004"])),
    ("one-place", {"places": ("South Place",)}, None, lambda p: p["place"] == "South Place"),
    ("imd-1-2-10", {"imd_deciles": (1, 2, 10)}, None, lambda p: p["imd_decile"].isin([1, 2, 10])),
    ("registered", {"registered_only": True}, None, lambda p: p["registration_end"].isna()),
    ("coded-in-range", {"snomed_codes": (HYPERTENSION, ASTHMA)}, date(2024, 1, 1),
     lambda p: p["nhs_number"].isin(_coded((HYPERTENSION, ASTHMA), date(2024, 1, 1), END))),
    ("combined",
     {"sexes": ("F",), "imd_deciles": (1, 2, 3, 4, 5), "registered_only": True, "age_min": 50},
     None,
     lambda p: (p["sex"] == "F") & p["imd_decile"].between(1, 5) & p["registration_end"].isna()
     & (_age(p, END) >= 50)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cohort", "date_from", "predicate"),
    [c[1:] for c in COHORTS],
    ids=[c[0] for c in COHORTS],
)
def test_cohort_filters_give_exactly_the_expected_people(
    data_root, ingest, custodian, cohort, date_from, predicate
):
    ingest()
    fields = {
        "patients": ["person_id"],
        "gp-events": ["person_id", "date", "snomed_code"],
        "apc-spells": ["person_id"],
    }

    extract = build_extract(
        scope=_scope(fields, purpose="direct_care", date_from=date_from, date_to=END, **cohort),
        by=custodian,
    )

    people = _source("patients")
    members = set(people.loc[predicate(people).to_numpy(dtype=bool), "nhs_number"])
    assert 0 < len(members) < PEOPLE, "the filter should pick a real subset"
    pp = _pp()
    assert _people_in(data_root, extract, "patients") == {pp[n] for n in members}
    events = _without_dissent("gp_events", _source("gp_events"))
    kept = events[events["nhs_number"].isin(members) & _in_range(events["date"], date_from, END)]
    expected = kept.assign(person_id=kept["nhs_number"].map(pp))[fields["gp-events"]]
    assert _records(_read(data_root, extract, "gp-events")) == _records(expected)
    spells = _source("apc_spells")
    in_range = _in_range(spells["admission_date"], date_from, END)
    admitted = set(spells.loc[in_range & spells["nhs_number"].isin(members), "nhs_number"])
    assert _people_in(data_root, extract, "apc-spells") == {pp[n] for n in admitted}
    assert extract.person_count == len(members)


def test_without_an_end_date_ages_are_counted_at_today_from_the_birth_month(
    data_root, ingest, custodian
):
    ingest()
    today = timezone.localdate()  # the builder's reference day without an end date

    extract = build_extract(
        scope=_scope({"patients": ["person_id"]}, purpose="direct_care", age_min=30, age_max=59),
        by=custodian,
    )

    # Only the birth month is published, so a birthday counts from the first of its month.
    born = _source("patients")["date_of_birth"]
    age = today.year - born.dt.year - (born.dt.month > today.month).astype(int)
    members = _source("patients").loc[age.between(30, 59), "nhs_number"]
    pp = _pp()
    assert _people_in(data_root, extract, "patients") == {pp[n] for n in members}


def test_a_cohort_nobody_matches_gives_empty_files_of_the_scoped_columns(
    data_root, ingest, custodian
):
    ingest()
    fields = {"patients": ["person_id", "sex"], "apc-spells": ["cost"]}

    extract = build_extract(
        scope=_scope(fields, purpose="direct_care", practices=("Z00000",)), by=custodian
    )

    for slug, columns in fields.items():
        frame = _read(data_root, extract, slug)
        assert frame.empty
        assert list(frame.columns) == columns
    assert extract.person_count == 0


# =========================================================================================
# Opt-outs, as the decision table says
# =========================================================================================
# (id, purpose, basis, exemption flags (None: no exemption), NDOP applied, Type 1 applied)
OPT_OUT_CASES: list[tuple[str, str, str, dict[str, Any] | None, bool, bool]] = [
    ("direct-care", "direct_care", "s251_standard", None, False, False),
    ("direct-care-no-basis", "direct_care", "", None, False, False),
    ("s251-standard", "research", "s251_standard", None, True, True),
    ("s251-standard-planning", "planning", "s251_standard", None, True, True),
    ("s251-cag-no-exemption", "research", "s251_cag_ndop_exemption", None, False, True),
    ("s251-cag-letter-keeps-type1", "research", "s251_cag_ndop_exemption",
     {"cag_letter_disapplies_type1": False}, False, True),
    ("s251-cag-letter-disapplies-type1", "research", "s251_cag_ndop_exemption",
     {"cag_letter_disapplies_type1": True}, False, False),
    ("s251-cag-letter-of-another-project", "research", "s251_cag_ndop_exemption",
     {"cag_letter_disapplies_type1": True, "project_id": 99}, False, True),
    # No list of who consented reaches the builder, so nobody is exempt (fail closed).
    ("explicit-consent", "research", "explicit_consent", None, True, True),
    ("copi-reg3-platform-policy", "research", "copi_reg3", None, False, True),
    ("legal-requirement", "research", "legal_requirement", None, False, True),
    ("legal-requirement-instrument-silent", "planning", "legal_requirement",
     {"instrument_overrides_type1": False}, False, True),
    ("legal-requirement-instrument-overrides", "research", "legal_requirement",
     {"instrument_overrides_type1": True}, False, False),
    ("public-interest-no-decision", "research", "overriding_public_interest", None, False, True),
    ("public-interest-decision-none", "research", "overriding_public_interest",
     {"caldicott_type1_decision": None}, False, True),
    ("public-interest-applied", "research", "overriding_public_interest",
     {"caldicott_type1_decision": "applied"}, False, True),
    ("public-interest-not-applied", "research", "overriding_public_interest",
     {"caldicott_type1_decision": "not_applied"}, False, False),
    ("not-confidential", "planning", "not_confidential", None, False, True),
    ("unknown-basis", "research", "unknown", None, True, True),
    ("missing-basis", "research", "", None, True, True),
    ("unrecognised-basis", "research", "s251", None, True, True),
]  # fmt: skip
EVERY_TABLE = {
    SLUGS[t]: ["person_id", "sex" if t == "patients" else sf.MAIN_DATE[t]] for t in TABLES
}


def _without_dissent(table: str, frame: pd.DataFrame, code_column: str = "snomed_code") -> Any:
    """gp_events rows other than the Type 1 dissent code (compared separately)."""
    if table != "gp_events":
        return frame
    return frame[frame[code_column] != sf.TYPE1_DISSENT]


def _removed(table: str, ndop: set[str], type1: set[str], ndop_on: bool, type1_on: bool) -> set:
    return (ndop if ndop_on else set()) | (type1 if type1_on and table in GP_SOURCED else set())


@pytest.mark.parametrize(
    ("purpose", "basis", "exemption", "ndop_applied", "type1_applied"),
    [c[1:] for c in OPT_OUT_CASES],
    ids=[c[0] for c in OPT_OUT_CASES],
)
def test_opt_outs_are_applied_as_the_decision_table_says(
    data_root, ingest, custodian, purpose, basis, exemption, ndop_applied, type1_applied
):
    ingest()
    ndop_person, type1_person = _manual_optout_people()
    _add_optout(ndop_person, "ndop")
    _add_optout(type1_person, "type1")
    approved = None
    if exemption is not None:
        flags = dict(exemption)
        approved = _approve_exemption(project_id=flags.pop("project_id", PROJECT), **flags)
    fields = {**EVERY_TABLE, "gp-events": ["person_id", "date", "snomed_code"]}

    extract = build_extract(scope=_scope(fields, purpose=purpose, basis=basis), by=custodian)

    ndop = set(_ndop_nhs()) | {ndop_person}
    type1 = set(_type1_nhs()) | {type1_person}
    pp = _pp()
    removed_people: set[str] = set()
    removed_rows = 0
    for table in TABLES:
        source = _without_dissent(table, _source(table))  # never provisioned
        removed = _removed(table, ndop, type1, ndop_applied, type1_applied)
        gone = source["nhs_number"].isin(removed)
        removed_people |= set(source.loc[gone, "nhs_number"])
        removed_rows += int(gone.sum())
        actual = _without_dissent(table, _read(data_root, extract, SLUGS[table]))
        kept = _without_dissent(table, source[~gone])
        expected = kept.assign(person_id=kept["nhs_number"].map(pp))[fields[SLUGS[table]]]
        assert _records(actual) == _records(expected), table
        # The people the test opted out by hand, named outright.
        ids = set(actual["person_id"])
        assert (pp[ndop_person] in ids) is not ndop_applied, table
        assert (pp[type1_person] in ids) is not (type1_applied and table in GP_SOURCED), table
    assert extract.treatment["ndop_applied"] is ndop_applied
    assert extract.treatment["type1_applied"] is type1_applied
    assert extract.treatment["explanation"]
    mine = approved is not None and approved.project_id == PROJECT
    assert extract.exemption_id == (approved.pk if mine else None)
    assert extract.optout_snapshot == register.current_snapshot()
    assert extract.optout_snapshot.manual_count == 2
    assert extract.decision_table_version == DEFAULT_DECISION_TABLE.version
    assert extract.people_removed == len(removed_people)
    assert extract.rows_removed == removed_rows
    if ndop_applied or type1_applied:
        # Distinct people, not rows or people-per-dataset.
        assert 0 < extract.people_removed < extract.rows_removed


def test_the_treatment_recorded_is_the_one_the_table_gives(ingest, custodian):
    ingest()
    approved = _approve_exemption(caldicott_type1_decision="not_applied")

    extract = build_extract(
        scope=_scope(EVERY_TABLE, basis="overriding_public_interest"), by=custodian
    )

    expected = treatment_for(
        DEFAULT_DECISION_TABLE,
        purpose="research",
        basis="overriding_public_interest",
        **optout_changes.exemption_flags(approved),
    )
    assert extract.treatment == {
        "ndop_applied": expected.ndop_applied,
        "type1_applied": expected.type1_applied,
        "consented_only": expected.consented_only,
        "explanation": expected.explanation,
        "table_version": 1,
    }
    assert "Caldicott" in extract.treatment["explanation"]


def test_type1_opt_outs_never_remove_anyone_from_non_gp_datasets(data_root, ingest, custodian):
    ingest()
    fields = {"apc-spells": ["person_id"], "ae-attendances": ["person_id"]}

    extract = build_extract(scope=_scope(fields, basis="copi_reg3"), by=custodian)

    pp = _pp()
    admitted = set(_source("apc_spells")["nhs_number"])
    assert admitted & _type1_nhs(), "some Type 1 opt-outs have admissions"
    assert _people_in(data_root, extract, "apc-spells") == {pp[n] for n in admitted}
    assert extract.treatment["type1_applied"] is True
    assert (extract.people_removed, extract.rows_removed) == (0, 0)


def test_only_people_in_the_cohort_count_as_removed(data_root, ingest, custodian):
    ingest()
    fields = {"patients": ["person_id"], "apc-spells": ["person_id"]}

    extract = build_extract(scope=_scope(fields, sexes=("F",)), by=custodian)

    people = _source("patients")
    women = set(people.loc[people["sex"] == "F", "nhs_number"])
    opted_out = set(_ndop_nhs() | _type1_nhs())
    assert opted_out - women, "some opted-out men, who must not count"
    spells = _source("apc_spells")
    spells = spells[spells["nhs_number"].isin(women)]
    # The cohort is chosen from GP data, so Type 1 applies to the spells too.
    opted_out_spells = spells["nhs_number"].isin(opted_out)
    assert extract.people_removed == len(women & opted_out)
    assert extract.rows_removed == len(women & opted_out) + int(opted_out_spells.sum())
    pp = _pp()
    assert _people_in(data_root, extract, "patients") == {pp[n] for n in women - opted_out}


# =========================================================================================
# Rebuilt before use when anything it was built from changed
# =========================================================================================
def test_an_opt_out_added_after_the_build_takes_effect_before_the_next_use(
    data_root, ingest, custodian, django_capture_on_commit_callbacks
):
    ingest()
    old = build_extract(scope=_scope(EVERY_TABLE), by=custodian)
    person = _manual_optout_people()[0]
    pp = _pp()
    assert pp[person] in _people_in(data_root, old, "apc-spells")
    _add_optout(person, "ndop")
    before = mark()

    with django_capture_on_commit_callbacks() as callbacks:
        new = extract_for_use(project_id=PROJECT, by=custodian)
        assert _folder(data_root, old).exists()  # removed only once the deletion commits
    for callback in callbacks:
        callback()

    assert new.pk != old.pk
    for slug in EVERY_TABLE:
        assert pp[person] not in _people_in(data_root, new, slug), slug
    snapshot = register.current_snapshot()
    assert new.optout_snapshot == snapshot
    assert (
        new.rebuild_reason
        == f"rebuilt: the opt-out register has a newer snapshot ({snapshot.number})"
    )
    assert new.people_removed == old.people_removed + 1
    old.refresh_from_db()
    assert old.deleted_at is not None
    assert not _folder(data_root, old).exists()
    assert types_since(before) == [EventType.EXTRACT_BUILT, EventType.EXTRACT_DELETED]
    deleted = events_since(before)[1]
    assert deleted.target_id == str(old.pk)
    assert deleted.project_id == PROJECT
    assert deleted.data == {
        "project_id": PROJECT,
        "dummy": False,
        "reason": "superseded by a rebuild",
    }
    assert extracts.current_extract(PROJECT) == new


@pytest.mark.django_db(transaction=True)
def test_the_superseded_extract_is_removed_when_the_rebuild_commits(data_root, ingest, custodian):
    ingest()
    old = build_extract(scope=_scope(EVERY_TABLE), by=custodian)
    person = _manual_optout_people()[1]
    _add_optout(person, "type1")

    new = extract_for_use(project_id=PROJECT, by=custodian)

    assert new.pk != old.pk
    assert _pp()[person] not in _people_in(data_root, new, "patients")
    assert Extract.objects.get(pk=old.pk).deleted_at is not None
    assert not _folder(data_root, old).exists()
    assert _folder(data_root, new).exists()


def test_a_newer_dataset_version_rebuilds_the_extract_before_use(
    data_root, ingest, custodian, django_capture_on_commit_callbacks
):
    ingest()
    old = build_extract(scope=_scope(EVERY_TABLE), by=custodian)
    ingest(PATIENTS_ONLY)  # patients v2; no GP events or NDOP file, so the same register

    with django_capture_on_commit_callbacks(execute=True):
        new = extract_for_use(project_id=PROJECT, by=custodian)

    assert new.pk != old.pk
    assert new.rebuild_reason == "rebuilt: patients has a newer version (v2)"
    assert new.dataset_versions["patients"]["version"] == 2
    assert new.dataset_versions["gp-events"] == old.dataset_versions["gp-events"]
    assert new.optout_snapshot == old.optout_snapshot
    old.refresh_from_db()
    assert old.deleted_at is not None
    assert not _folder(data_root, old).exists()


def test_an_approved_decision_table_change_rebuilds_the_extract_before_use(
    data_root, ingest, custodian, django_capture_on_commit_callbacks
):
    ingest()
    old = build_extract(scope=_scope(EVERY_TABLE, basis="copi_reg3"), by=custodian)
    pp = _pp()
    type1 = {pp[n] for n in _type1_nhs()}
    assert not type1 & _people_in(data_root, old, "patients")
    proposer, approver = _ig_pair()
    change = optout_changes.propose_platform_policy(
        cells={("copi_reg3", "type1"): "not_applied"}, reason="IG board minute 12", by=proposer
    )
    optout_changes.decide_change(change=change, approve=True, reason="", by=approver)

    with django_capture_on_commit_callbacks(execute=True):
        new = extract_for_use(project_id=PROJECT, by=custodian)

    assert new.pk != old.pk
    assert new.rebuild_reason == "rebuilt: the opt-out decision table is now version 2"
    assert new.decision_table_version == 2
    assert new.treatment["type1_applied"] is False
    assert type1 <= _people_in(data_root, new, "patients")
    assert (new.people_removed, new.rows_removed) == (0, 0)
    old.refresh_from_db()
    assert old.deleted_at is not None


def test_an_approved_exemption_rebuilds_the_extract_before_use(
    data_root, ingest, custodian, django_capture_on_commit_callbacks
):
    ingest()
    old = build_extract(scope=_scope(EVERY_TABLE, basis="legal_requirement"), by=custodian)
    exemption = _approve_exemption(instrument_overrides_type1=True)

    with django_capture_on_commit_callbacks(execute=True):
        new = extract_for_use(project_id=PROJECT, by=custodian)

    assert new.rebuild_reason == "rebuilt: the project's opt-out exemption changed"
    assert new.exemption == exemption
    assert new.treatment["type1_applied"] is False
    assert old.treatment["type1_applied"] is True


@pytest.mark.parametrize(
    ("basis", "change"),
    [("s251_standard", "nothing"), ("s251_standard", "other project"), ("", "direct care")],
)
def test_a_current_extract_is_returned_unchanged(data_root, ingest, custodian, basis, change):
    ingest()
    purpose = "direct_care" if change == "direct care" else "research"
    extract = build_extract(scope=_scope(EVERY_TABLE, purpose=purpose, basis=basis), by=custodian)
    if change == "other project":
        _approve_exemption(project_id=99, cag_letter_disapplies_type1=True)
        build_extract(scope=_scope(EVERY_TABLE, project_id=99), by=custodian)
    if change == "direct care":
        # Opt-outs never apply to direct care: a new snapshot changes nothing in it.
        _add_optout(_manual_optout_people()[0], "ndop")
    before = mark()

    again = extract_for_use(project_id=PROJECT, by=custodian)

    assert again.pk == extract.pk
    assert again.deleted_at is None
    assert types_since(before) == []
    assert _folder(data_root, extract).exists()


def test_an_extract_filtered_on_patients_is_rebuilt_when_patients_has_a_newer_version(
    ingest, custodian, django_capture_on_commit_callbacks
):
    """The cohort is chosen from the patients table even when patients is not in scope:
    the extract was built from it, so a newer version of it must trigger a rebuild."""
    ingest()
    old = build_extract(scope=_scope({"apc-spells": ["person_id"]}, sexes=("F",)), by=custodian)
    ingest(PATIENTS_ONLY)

    with django_capture_on_commit_callbacks(execute=True):
        new = extract_for_use(project_id=PROJECT, by=custodian)

    assert new.pk != old.pk
    assert "patients has a newer version (v2)" in new.rebuild_reason


def test_a_rebuild_that_cannot_be_built_safely_keeps_the_old_extract_and_returns_nothing(
    data_root, ingest, custodian, django_capture_on_commit_callbacks
):
    ingest()
    old = build_extract(scope=_scope(EVERY_TABLE), by=custodian)
    rotate_development_key("system")
    _add_optout(_manual_optout_people()[0], "ndop")  # the register restarts under key 2
    before = mark()

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ExtractError):
        extract_for_use(project_id=PROJECT, by=custodian)

    assert list(Extract.objects.all()) == [old]
    old.refresh_from_db()
    assert old.deleted_at is None
    assert _folder(data_root, old).exists()
    assert types_since(before) == []


def test_extract_for_use_without_a_real_extract_is_not_found(custodian):
    build_dummy_extract(scope=_scope(EVERY_TABLE), by=custodian, patients=200)

    with pytest.raises(NotFound):
        extract_for_use(project_id=PROJECT, by=custodian)


# =========================================================================================
# Failing closed
# =========================================================================================
def test_a_research_extract_with_no_register_snapshot_is_refused(data_root, ingest, custodian):
    ingest(NO_REGISTER)
    assert register.current_snapshot() is None
    before = mark()

    with pytest.raises(ExtractError, match="register is empty"):
        build_extract(scope=_scope({"apc-spells": ["person_id"]}), by=custodian)

    _assert_nothing_built(data_root)
    assert types_since(before) == []
    # Direct care needs no register.
    assert (
        build_extract(
            scope=_scope({"apc-spells": ["person_id"]}, purpose="direct_care"), by=custodian
        ).treatment["ndop_applied"]
        is False
    )


def test_a_research_extract_is_refused_while_the_ndop_list_was_never_imported(
    data_root, ingest, custodian, tmp_path
):
    ingest(NO_NDOP)
    fields = {"patients": ["person_id"], "apc-spells": ["person_id"]}

    with pytest.raises(ExtractError, match="National data opt-out file"):
        build_extract(scope=_scope(fields), by=custodian)

    _assert_nothing_built(data_root)
    # A basis that does not apply NDOP needs only the Type 1 codes, which are imported.
    assert build_extract(scope=_scope(fields, basis="copi_reg3"), by=custodian)
    ndop_file = tmp_path / "ndop.csv"
    ndop_file.write_text("\n".join(sorted(_ndop_nhs())) + "\n")
    register.import_ndop_file(path=ndop_file, by=_ig_pair()[0])
    assert build_extract(scope=_scope(fields), by=custodian).people_removed > 0


def test_a_register_under_an_older_system_key_is_refused(data_root, ingest, custodian):
    ingest()
    assert rotate_development_key("system") == 2
    ingest(NO_REGISTER)  # patients and admissions v2 under key 2; the register is still key 1
    fields = {"patients": ["person_id"], "apc-spells": ["person_id"]}

    with pytest.raises(ExtractError, match="system key version 1 and the data version 2"):
        build_extract(scope=_scope(fields), by=custodian)

    _assert_nothing_built(data_root)
    assert build_extract(scope=_scope(fields, purpose="direct_care"), by=custodian)


@pytest.mark.parametrize("change", ["rewritten", "deleted"])
def test_a_dataset_file_changed_since_ingest_is_refused(data_root, ingest, custodian, change):
    ingest()
    version = DatasetVersion.objects.get(dataset__source_table="gp_events")
    path = data_root / version.path
    if change == "deleted":
        path.unlink()
    else:  # the same rows, written again: the bytes differ from the ingested file's
        pq.write_table(pq.read_table(path), path, compression="snappy")

    with pytest.raises(ExtractError, match="missing or changed since it was ingested"):
        build_extract(
            scope=_scope({"patients": ["person_id"], "gp-events": ["date"]}, purpose="direct_care"),
            by=custodian,
        )

    _assert_nothing_built(data_root)


def test_datasets_under_different_system_keys_are_refused(data_root, ingest, custodian):
    ingest()
    rotate_development_key("system")
    ingest(NO_REGISTER)  # patients v2 under key 2, GP events still v1 under key 1

    with pytest.raises(ExtractError, match="different system keys"):
        build_extract(
            scope=_scope({"patients": ["person_id"], "gp-events": ["date"]}, purpose="direct_care"),
            by=custodian,
        )

    _assert_nothing_built(data_root)


def test_manual_opt_outs_from_before_a_key_rotation_must_be_entered_again(
    data_root, ingest, custodian, tmp_path
):
    ingest()
    _add_optout(_manual_optout_people()[0], "ndop")
    rotate_development_key("system")
    ingest(NO_NDOP)  # Type 1 codes under key 2
    ndop_file = tmp_path / "ndop.csv"
    ndop_file.write_text("\n".join(sorted(_ndop_nhs())) + "\n")
    snapshot = register.import_ndop_file(path=ndop_file, by=_ig_pair()[0])
    assert snapshot.stale_manual_count == 1

    with pytest.raises(ExtractError, match="entered again"):
        build_extract(scope=_scope({"patients": ["person_id"]}), by=custodian)

    _assert_nothing_built(data_root)


@pytest.mark.parametrize(
    ("tables", "scope", "words"),
    [
        ((), _scope({"patients": ["person_id"]}, purpose="direct_care"), "patients has no"),
        (NO_REGISTER, _scope({"gp-events": ["date"]}, purpose="direct_care"), "gp_events has no"),
        (
            NO_REGISTER,
            _scope({"apc-spells": ["cost"]}, purpose="direct_care", snomed_codes=(ASTHMA,)),
            "gp_events has no",
        ),
    ],
    ids=["nothing-ingested", "dataset-not-ingested", "cohort-needs-gp-events"],
)
def test_a_dataset_with_no_ingested_version_is_refused(
    data_root, ingest, custodian, tables, scope, words
):
    if tables:
        ingest(tables)

    with pytest.raises(ExtractError, match=words):
        build_extract(scope=scope, by=custodian)

    _assert_nothing_built(data_root)


def _fail_writing_the_second_file(monkeypatch: pytest.MonkeyPatch) -> None:
    write = extracts.pq.write_table
    calls = []

    def failing(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        write(*args, **kwargs)

    monkeypatch.setattr(extracts.pq, "write_table", failing)


def _fail_the_audit_write(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(**kwargs: Any) -> None:
        raise OSError("audit store unavailable")

    monkeypatch.setattr(extracts, "record_event", failing)


@pytest.mark.parametrize("fail", [_fail_writing_the_second_file, _fail_the_audit_write])
@pytest.mark.parametrize("dummy", [False, True], ids=["real", "dummy"])
def test_a_failed_build_leaves_no_extract_and_no_files(
    data_root, ingest, custodian, monkeypatch, fail, dummy
):
    ingest()
    fail(monkeypatch)
    before = mark()

    with pytest.raises(OSError):
        if dummy:
            build_dummy_extract(scope=_scope(EVERY_TABLE), by=custodian, patients=200)
        else:
            build_extract(scope=_scope(EVERY_TABLE), by=custodian)

    _assert_nothing_built(data_root)
    assert types_since(before) == []


# =========================================================================================
# Researchers never reach opt-out data
# =========================================================================================
def test_extract_files_hold_only_catalogue_fields_and_nothing_about_opt_outs(
    data_root, ingest, custodian
):
    ingest()
    fields = {SLUGS[t]: _all_fields(t) for t in TABLES}

    extract = build_extract(scope=_scope(fields), by=custodian)

    for slug, columns in fields.items():
        schema = pq.read_schema(_folder(data_root, extract) / f"{slug}.parquet")
        assert schema.names == columns
        assert not [n for n in schema.names if re.search("opt|ndop|type.?1|dissent", n, re.I)]
    events = _read(data_root, extract, "gp-events")
    assert sf.TYPE1_DISSENT not in set(events["snomed_code"])


@pytest.mark.parametrize(
    ("basis", "exemption"),
    [
        ("s251_cag_ndop_exemption", {"cag_letter_disapplies_type1": True}),
        ("legal_requirement", {"instrument_overrides_type1": True}),
        ("overriding_public_interest", {"caldicott_type1_decision": "not_applied"}),
    ],
)
def test_a_research_extract_never_shows_who_has_a_type1_opt_out(
    data_root, ingest, custodian, basis, exemption
):
    """Where Type 1 is not applied, the people stay in, but their Type 1 dissent code
    (a GP event) is opt-out status, which researchers must never see."""
    ingest()
    _approve_exemption(**exemption)

    extract = build_extract(
        scope=_scope({"gp-events": ["person_id", "date", "snomed_code"]}, basis=basis),
        by=custodian,
    )

    assert extract.treatment["type1_applied"] is False
    events = _read(data_root, extract, "gp-events")
    assert sf.TYPE1_DISSENT not in set(events["snomed_code"])


NON_IG_ROLES = [role for role in Role if role != Role.IG_OFFICER]


@pytest.mark.parametrize("role", [*NON_IG_ROLES, "system", "no role"])
def test_removal_summary_is_not_found_for_anyone_but_ig(ingest, custodian, role):
    ingest()
    extract = build_extract(scope=_scope(EVERY_TABLE), by=custodian)
    if role == "system":
        user = get_system_user()
    elif role == "no role":
        user = scenarios.person()
    else:
        user = scenarios.person(role)

    with pytest.raises(NotFound):
        removal_summary(extract, by=user)


def test_removal_summary_suppresses_small_counts_for_ig(ingest, custodian, tmp_path):
    ingest(NO_NDOP)
    # An NDOP list of exactly three people, each with one admission.
    spells = _source("apc_spells")
    once = spells["nhs_number"].value_counts()
    three = sorted(once[once == 1].index)[:3]
    ndop_file = tmp_path / "ndop.csv"
    ndop_file.write_text("\n".join(three) + "\n")
    ig, _ = _ig_pair()
    snapshot = register.import_ndop_file(path=ndop_file, by=ig)
    extract = build_extract(scope=_scope({"apc-spells": ["person_id"]}), by=custodian)
    assert (extract.people_removed, extract.rows_removed) == (3, 3)

    summary = removal_summary(extract, by=ig)

    assert summary == {
        "people_removed": "fewer than 10",
        "rows_removed": "fewer than 10",
        "snapshot": snapshot.number,
        "decision_table_version": 1,
        "explanation": extract.treatment["explanation"],
    }
    assert "3" not in json.dumps(summary["people_removed"])


def test_removal_summary_shows_larger_counts_and_zero_exactly(ingest, custodian, ig_officer):
    ingest()
    big = build_extract(scope=_scope(EVERY_TABLE), by=custodian)
    none = build_extract(
        scope=_scope(EVERY_TABLE, purpose="direct_care", project_id=8), by=custodian
    )
    assert big.people_removed >= 10

    assert removal_summary(big, by=ig_officer)["people_removed"] == f"{big.people_removed:,}"
    assert removal_summary(big, by=ig_officer)["rows_removed"] == f"{big.rows_removed:,}"
    assert removal_summary(none, by=ig_officer)["people_removed"] == "0"


@pytest.mark.parametrize("role", [*Role, "system"])
def test_only_a_data_custodian_or_the_system_builds_extracts(data_root, ingest, role):
    ingest()
    user = get_system_user() if role == "system" else scenarios.person(role)
    allowed = role in ("system", Role.DATA_CUSTODIAN)
    scope = _scope({"patients": ["person_id"]})

    if allowed:
        extract = build_extract(scope=scope, by=user)
        assert extract.built_by == user
        assert build_dummy_extract(scope=scope, by=user, patients=100).is_dummy
        assert extract_for_use(project_id=PROJECT, by=user) == extract
        assert delete_extract(extract=extract, by=user, reason="closed").deleted_at
        return
    with pytest.raises(PermissionDenied):
        build_extract(scope=scope, by=user)
    with pytest.raises(PermissionDenied):
        build_dummy_extract(scope=scope, by=user, patients=100)
    with pytest.raises(PermissionDenied):
        extract_for_use(project_id=PROJECT, by=user)
    _assert_nothing_built(data_root)


@pytest.mark.parametrize("role", [r for r in Role if r != Role.DATA_CUSTODIAN])
def test_only_a_data_custodian_deletes_an_extract(data_root, ingest, custodian, role):
    ingest()
    extract = build_extract(scope=_scope({"patients": ["person_id"]}), by=custodian)

    with pytest.raises(PermissionDenied):
        delete_extract(extract=extract, by=scenarios.person(role), reason="tidy up")

    extract.refresh_from_db()
    assert extract.deleted_at is None
    assert _folder(data_root, extract).exists()


# =========================================================================================
# Dummy extracts
# =========================================================================================
DUMMY_SCOPES = {
    "every-field": _scope({SLUGS[t]: _all_fields(t) for t in TABLES}, purpose="direct_care"),
    "filtered": _scope(
        {
            "patients": ["birth_month", "person_id", "imd_decile", "registration_end"],
            "gp-events": ["snomed_code", "value", "date"],
            "ae-attendances": ["cost"],
        },
        project_id=SEED,  # the dummy's generator seed: the same synthetic NHS numbers
        date_from=date(2024, 1, 1),
        date_to=END,
        age_min=18,
        sexes=("F",),
        imd_deciles=(1, 2, 3),
        snomed_codes=(HYPERTENSION,),
        registered_only=True,
    ),
    "practice-and-place": _scope(
        {"apc-spells": ["person_id", "primary_diagnosis_icd10", "discharge_date", "cost"]},
        basis="copi_reg3",
        practices=("Y99001", "Y99002"),
        places=("North Place",),
    ),
}


@cache
def _dummy_nhs_numbers() -> set[str]:
    config = synth.SynthConfig(faults=synth.FaultRates.none())
    drop = synth.generate(
        patients=extracts.DUMMY_PATIENTS, seed=SEED, config=config, tables=("patients",)
    )
    return set(drop["patients"]["nhs_number"])


@pytest.mark.parametrize("name", DUMMY_SCOPES)
def test_a_dummy_extract_has_the_real_extracts_schema_and_no_real_people(
    data_root, ingest, custodian, name
):
    ingest()
    scope = DUMMY_SCOPES[name]
    real = build_extract(scope=scope, by=custodian)
    before = mark()

    dummy = build_dummy_extract(scope=scope, by=custodian)

    real_folder, dummy_folder = _folder(data_root, real), _folder(data_root, dummy)
    assert sorted(p.name for p in dummy_folder.iterdir()) == sorted(real.tables)
    for file in real.tables:
        real_schema, dummy_schema = (
            pq.read_schema(real_folder / file),
            pq.read_schema(dummy_folder / file),
        )
        assert [(f.name, f.type, f.nullable) for f in dummy_schema] == [
            (f.name, f.type, f.nullable) for f in real_schema
        ], file
        assert dummy_schema.equals(real_schema, check_metadata=False), file
    rows = {t["dataset"]: t["rows"] for t in dummy.tables.values()}
    assert sum(rows.values()) > 0
    # Nobody real: no dummy pseudonym is any real person's under this project's key.
    if scope.project_id == SEED:
        # The dummy's generator (seeded with the project id) draws every NHS number of the
        # drop, so only the throwaway keys can keep its pseudonyms apart from the real ones.
        assert set(_source("patients")["nhs_number"]) <= _dummy_nhs_numbers()
    real_ids = set(_pp(scope.project_id).values())
    for slug, fields in scope.datasets.items():
        if "person_id" in fields:
            ids = _people_in(data_root, dummy, slug)
            assert ids and not ids & real_ids, slug
    assert dummy.is_dummy
    assert dummy.path.startswith(f"extracts/project-{scope.project_id}/dummy-")
    assert (dummy.people_removed, dummy.rows_removed) == (0, 0)
    assert dummy.optout_snapshot is None
    assert dummy.dataset_versions == {}
    assert extracts.current_extract(scope.project_id, dummy=True) == dummy
    assert extracts.current_extract(scope.project_id) == real
    assert types_since(before) == [EventType.EXTRACT_BUILT]
    event = events_since(before)[0]
    assert event.data["dummy"] is True
    assert event.data["project_id"] == scope.project_id
    assert event.data["rows"] == rows
    assert event.target_id == str(dummy.pk)


# =========================================================================================
# The audit trail
# =========================================================================================
def test_the_extract_built_event_has_counts_and_versions_but_no_identifiers(
    data_root, ingest, custodian
):
    ingest()
    ingest(PATIENTS_ONLY)
    _add_optout(_manual_optout_people()[0], "ndop")
    before = mark()

    extract = build_extract(scope=_scope(EVERY_TABLE), by=custodian, reason="first build")

    assert types_since(before) == [EventType.EXTRACT_BUILT]
    event = events_since(before)[0]
    assert event.actor_id == custodian.pk
    assert event.target_id == str(extract.pk)
    assert event.project_id == PROJECT  # the audit log's project search finds it
    assert event.data == {
        "project_id": PROJECT,
        "dummy": False,
        "dataset_versions": {"patients": 2, "gp-events": 1, "apc-spells": 1, "ae-attendances": 1},
        "optout_snapshot": register.current_snapshot().number,
        "decision_table_version": 1,
        "ndop_applied": True,
        "type1_applied": True,
        "people_removed": extract.people_removed,
        "rows": {
            slug: pq.read_metadata(_folder(data_root, extract) / f"{slug}.parquet").num_rows
            for slug in EVERY_TABLE
        },
        "reason": "first build",
    }
    assert extract.rebuild_reason == "first build"
    text = json.dumps([event.data, event.target_display, event.actor_display, event.target_type])
    nhs = _source("patients")["nhs_number"]
    assert not re.search(r"\d{10}", text)
    assert not HEX64.search(text)
    identifiers = set(nhs) | set(_system_ids(nhs)) | set(_pp().values())
    assert not any(i in text for i in identifiers)


def test_a_type1_objector_is_never_chosen_for_a_cohort_when_type1_applies(
    data_root, ingest, custodian
):
    """The cohort is chosen from GP data, so with Type 1 applied an objector's GP data
    selects nobody: they are absent even from hospital data, which Type 1 does not cover
    on its own, and they count as removed by opt-outs."""
    ingest()
    fields = {"apc-spells": ["person_id"], "ae-attendances": ["person_id"]}
    everyone = build_extract(scope=_scope(fields, project_id=41), by=custodian)
    cohort = build_extract(scope=_scope(fields, project_id=41, age_min=0), by=custodian)

    pp = _pp(41)
    objectors = {pp[n] for n in _type1_nhs() - _ndop_nhs()}
    for slug in fields:
        in_everyone = _people_in(data_root, everyone, slug)
        assert in_everyone & objectors, "Type 1 does not cover hospital data"
        assert _people_in(data_root, cohort, slug) == in_everyone - objectors
    assert cohort.people_removed > everyone.people_removed


def test_opt_out_codes_cannot_choose_a_cohort():
    with pytest.raises(ValidationError) as error:
        validate_scope(_scope({"patients": ["sex"]}, snomed_codes=(sf.TYPE1_DISSENT,)))
    assert "Opt-out codes cannot select a cohort." in error.value.errors["cohort"]
