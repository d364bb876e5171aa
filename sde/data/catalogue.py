"""The dataset catalogue: what the environment holds, described field by field.

Researchers read metadata only, never rows. The standard ICS datasets are registered
from the source-format contract, describing the *published* (pseudonymised) fields that
analyses see: the NHS number becomes ``person_id`` (the system pseudonym) and the date
of birth becomes ``birth_month``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet

from sde import policy
from sde.audit.events import EventType
from sde.audit.services import record_event
from sde.data import source_format
from sde.data.models import Dataset, DatasetField, Sensitivity
from sde.governance import governed_writes
from sde.identity.models import User

# Who controls each source table's data (an ICS's usual arrangement).
CONTROLLERS: dict[str, str] = {
    "patients": "GP practices (joint controllers)",
    "gp_events": "GP practices (joint controllers)",
    "gp_medications": "GP practices (joint controllers)",
    "apc_spells": "Acute trusts",
    "ae_attendances": "Acute trusts",
    "op_appointments": "Acute trusts",
    "community_contacts": "Community health services provider",
    "mh_contacts": "Mental health trust",
    "social_care": "Local authority",
}
PERSON_ID = source_format.Column(
    "pseudonym",
    "The person's pseudonym (project-specific in every extract)",
    Sensitivity.IDENTIFIER,
)
BIRTH_MONTH = source_format.Column(
    "date",
    "Month of birth (first of the month): date of birth generalised at ingestion",
    Sensitivity.QUASI_IDENTIFIER,
)


PUBLISHED_NAMES = {"nhs_number": "person_id", "date_of_birth": "birth_month"}


def published_name(source_column: str) -> str:
    """The name a source column has after ingestion (identifiers are replaced)."""
    return PUBLISHED_NAMES.get(source_column, source_column)


@dataclass(frozen=True)
class PublishedField:
    name: str
    data_type: str
    description: str
    sensitivity: str


def published_fields(table: str) -> list[PublishedField]:
    """The columns a table has after ingestion, in order."""
    fields = [
        PublishedField("person_id", PERSON_ID.type, PERSON_ID.description, PERSON_ID.sensitivity)
    ]
    for name, column in source_format.COLUMNS[table].items():
        if name == "nhs_number":
            continue
        if name == "date_of_birth":
            fields.append(
                PublishedField(
                    "birth_month",
                    BIRTH_MONTH.type,
                    BIRTH_MONTH.description,
                    BIRTH_MONTH.sensitivity,
                )
            )
            continue
        fields.append(PublishedField(name, column.type, column.description, column.sensitivity))
    return fields


def register_standard_datasets(*, by: User, dpia_reference: str = "") -> list[Dataset]:
    """Register every standard ICS dataset that is not in the catalogue yet (idempotent).

    Raises PermissionDenied unless ``by`` manages datasets. Event per new dataset:
    data.dataset_registered.
    """
    policy.check_manage_datasets(by)
    created = []
    with transaction.atomic(durable=True), governed_writes(Dataset, DatasetField):
        for table in CONTROLLERS:
            if Dataset.objects.filter(source_table=table).exists():
                continue
            dataset = Dataset(
                slug=table.replace("_", "-"),
                name=_title(table),
                description=source_format.TABLE_DESCRIPTIONS[table],
                source_table=table,
                controller_name=CONTROLLERS[table],
                gp_sourced=table in source_format.GP_SOURCED_TABLES,
                dpia_reference=dpia_reference,
            )
            dataset.save()
            DatasetField.objects.bulk_create(
                DatasetField(
                    dataset=dataset,
                    name=f.name,
                    data_type=f.data_type,
                    description=f.description,
                    sensitivity=f.sensitivity,
                    position=position,
                )
                for position, f in enumerate(published_fields(table))
            )
            record_event(
                event_type=EventType.DATASET_REGISTERED,
                actor=by,
                target=dataset,
                data={"slug": dataset.slug, "fields": len(published_fields(table))},
            )
            created.append(dataset)
    return created


def _title(table: str) -> str:
    names = {
        "patients": "Registered patients",
        "gp_events": "GP events",
        "gp_medications": "GP medications",
        "apc_spells": "Hospital admitted patient care",
        "ae_attendances": "A&E attendances",
        "op_appointments": "Outpatient appointments",
        "community_contacts": "Community services",
        "mh_contacts": "Mental health services",
        "social_care": "Adult social care",
    }
    return names[table]


def catalogue_for(user: User) -> QuerySet[Dataset]:
    """Datasets with their fields and versions, for anyone signed in (metadata only)."""
    if not policy.user_can_read_catalogue(user):
        return Dataset.objects.none()
    # Versions come newest first (DatasetVersion's default ordering).
    return Dataset.objects.prefetch_related("fields", "versions")
