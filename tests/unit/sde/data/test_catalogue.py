"""The dataset catalogue: the standard datasets, their published fields, who registers
them and who reads them."""

from __future__ import annotations

import pytest

from sde.audit.events import EventType
from sde.audit.services import get_system_user
from sde.data import source_format as sf
from sde.data.catalogue import (
    CONTROLLERS,
    catalogue_for,
    published_fields,
    register_standard_datasets,
)
from sde.data.models import Dataset, DatasetField, Sensitivity
from sde.exceptions import PermissionDenied
from sde.identity import services
from sde.identity.roles import Role
from tests import scenarios
from tests.events import events_since as _events_since
from tests.events import mark as _mark

pytestmark = pytest.mark.django_db

DATASET_TABLES = [t for t in sf.TABLES if t != "ndop"]
NOT_CUSTODIANS = [r for r in Role if r != Role.DATA_CUSTODIAN]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Nobody here signs in with a password; argon2 would only slow things down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_registering_creates_the_nine_standard_datasets_once_each():
    custodian = scenarios.person(Role.DATA_CUSTODIAN)
    mark = _mark()

    created = register_standard_datasets(by=custodian, dpia_reference="DPIA-2025-07")

    assert sorted(d.source_table for d in created) == sorted(DATASET_TABLES)
    assert Dataset.objects.count() == 9
    assert set(CONTROLLERS) == set(DATASET_TABLES)
    events = _events_since(mark)
    assert [e.event_type for e in events] == [EventType.DATASET_REGISTERED] * 9
    assert all(e.actor_id == custodian.pk for e in events)
    assert [e.data for e in events] == [
        {"slug": d.slug, "fields": len(published_fields(d.source_table))} for d in created
    ]
    for dataset in created:
        assert dataset.slug == dataset.source_table.replace("_", "-")
        assert dataset.description == sf.TABLE_DESCRIPTIONS[dataset.source_table]
        assert dataset.controller_name == CONTROLLERS[dataset.source_table]
        assert dataset.dpia_reference == "DPIA-2025-07"


def test_registering_again_changes_nothing_and_records_nothing():
    custodian = scenarios.person(Role.DATA_CUSTODIAN)
    register_standard_datasets(by=custodian)
    fields = DatasetField.objects.count()
    mark = _mark()

    again = register_standard_datasets(by=custodian)

    assert again == []
    assert Dataset.objects.count() == 9
    assert DatasetField.objects.count() == fields
    assert _events_since(mark) == []


@pytest.mark.parametrize("table", DATASET_TABLES)
def test_a_datasets_fields_are_its_published_fields_in_order(table):
    register_standard_datasets(by=scenarios.person(Role.DATA_CUSTODIAN))

    fields = list(Dataset.objects.get(source_table=table).fields.order_by("position"))

    expected = published_fields(table)
    assert [f.position for f in fields] == list(range(len(expected)))
    assert [(f.name, f.data_type, f.description, f.sensitivity) for f in fields] == [
        (p.name, p.data_type, p.description, p.sensitivity) for p in expected
    ]


@pytest.mark.parametrize("table", DATASET_TABLES)
def test_published_fields_replace_the_identifiers_of_the_source(table):
    fields = {f.name: f for f in published_fields(table)}
    source = sf.COLUMNS[table]

    assert next(iter(fields)) == "person_id"
    assert fields["person_id"].sensitivity == Sensitivity.IDENTIFIER
    assert "nhs_number" not in fields
    assert "date_of_birth" not in fields
    # Every other source column is published, with the source format's description.
    for name, column in source.items():
        if name not in ("nhs_number", "date_of_birth"):
            assert (fields[name].data_type, fields[name].sensitivity) == (
                column.type,
                column.sensitivity,
            )
    assert len(fields) == len(source)


def test_the_date_of_birth_is_published_as_a_quasi_identifying_birth_month():
    fields = [f.name for f in published_fields("patients")]

    birth_month = next(f for f in published_fields("patients") if f.name == "birth_month")
    assert birth_month.sensitivity == Sensitivity.QUASI_IDENTIFIER
    assert birth_month.data_type == "date"
    # In the date of birth's place, so a field's position is its column in the file.
    assert fields.index("birth_month") == list(sf.COLUMNS["patients"]).index("date_of_birth")


def test_only_the_gp_sourced_datasets_are_marked_for_type_1_opt_outs():
    register_standard_datasets(by=scenarios.person(Role.DATA_CUSTODIAN))

    flags = dict(Dataset.objects.values_list("source_table", "gp_sourced"))

    assert flags == {t: t in sf.GP_SOURCED_TABLES for t in DATASET_TABLES}
    assert sorted(t for t, gp in flags.items() if gp) == sorted(sf.GP_SOURCED_TABLES)


def test_every_field_has_a_known_sensitivity():
    register_standard_datasets(by=scenarios.person(Role.DATA_CUSTODIAN))

    sensitivities = set(DatasetField.objects.values_list("sensitivity", flat=True))

    assert sensitivities <= set(Sensitivity.values)
    assert DatasetField.objects.filter(name="person_id").count() == 9
    assert set(
        DatasetField.objects.filter(name="person_id").values_list("sensitivity", flat=True)
    ) == {Sensitivity.IDENTIFIER}


@pytest.mark.parametrize("role", NOT_CUSTODIANS, ids=[r.value for r in NOT_CUSTODIANS])
def test_only_a_custodian_registers_datasets(role):
    person = scenarios.person(role, accredited=role == Role.RESEARCHER)
    mark = _mark()

    with pytest.raises(PermissionDenied):
        register_standard_datasets(by=person)

    assert not Dataset.objects.exists()
    assert _events_since(mark) == []


def test_the_system_user_registers_datasets_for_the_operators_command():
    created = register_standard_datasets(by=get_system_user())

    assert len(created) == 9


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_everyone_signed_in_reads_the_whole_catalogue(role):
    register_standard_datasets(by=scenarios.person(Role.DATA_CUSTODIAN))
    person = scenarios.person(role)

    datasets = list(catalogue_for(person))

    assert sorted(d.source_table for d in datasets) == sorted(DATASET_TABLES)


def test_a_suspended_person_reads_nothing_of_the_catalogue():
    register_standard_datasets(by=scenarios.person(Role.DATA_CUSTODIAN))
    person = scenarios.person(Role.RESEARCHER)
    services.suspend_account(user=person, by=scenarios.administrator(), reason="left the ICS")
    person.refresh_from_db()

    assert list(catalogue_for(person)) == []
