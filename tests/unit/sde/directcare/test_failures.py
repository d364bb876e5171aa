"""The decryption fails closed (sde.directcare.services.perform and the list's reads): when a
key, the cohort, the data or the clinician's standing does not hold, the request ends
``failed`` with a reason, no file is left under the data root's ``direct-care`` folder, and
the audit event names no NHS number. A list that cannot be authenticated is never shown."""

from __future__ import annotations

import base64
import os
import re
import secrets
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from sde.audit.models import AuditEvent
from sde.audit.services import get_system_user
from sde.data.files import data_root, file_sha256
from sde.data.models import DatasetVersion, IdentityVaultRecord
from sde.data.pseudonymisation import project_key, project_pseudonyms
from sde.directcare import services
from sde.directcare.models import ReidentificationRequest
from sde.exceptions import NotFound
from sde.governance import governed_writes
from sde.identity import services as identity
from sde.identity.roles import Role
from sde.keys import keyring
from sde.projects import services as projects
from sde.tasks import perform_reidentification_task
from tests import scenarios

pytestmark = pytest.mark.django_db
S = ReidentificationRequest.Status
REASON = "Invite these patients for an annual physical health check."


@pytest.fixture
def approve(cohort, practice, clinician, ig, caldicott):
    """A function making an approved request (a fresh one each call)."""

    def make() -> ReidentificationRequest:
        request = services.request_reidentification(
            cohort=cohort, practice=practice, reason=REASON, by=clinician
        )
        services.sign_off(request=request, by=ig, role="ig", outcome="approve")
        return services.sign_off(request=request, by=caldicott, role="caldicott", outcome="approve")

    return make


@pytest.fixture
def approved(approve) -> ReidentificationRequest:
    return approve()


@pytest.fixture
def nhs_numbers(direct_care_drop) -> set[str]:
    return set(pd.read_csv(direct_care_drop / "patients.csv", dtype=str)["nhs_number"])


def _list_files() -> list[str]:
    folder = data_root() / "direct-care"
    return sorted(p.name for p in folder.rglob("*")) if folder.is_dir() else []


def _events(request: ReidentificationRequest) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            target_type__icontains="reidentification", target_id=str(request.pk)
        ).order_by("sequence")
    )


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _members(cohort, ods: str = "Y99001") -> list[str]:
    """System pseudonyms of the cohort's members registered at ``ods`` and alive, found
    here from the data layer and the project key (not by the code under test)."""
    people = pd.read_parquet(
        data_root() / DatasetVersion.objects.get(dataset__source_table="patients").path
    )
    here = people[
        (people["practice_ods"] == ods)
        & people["registration_end"].isna()
        & people["date_of_death"].isna()
    ]
    key = project_key(keyring("master").get(1), cohort.project_id, 1)
    pps = project_pseudonyms(here["person_id"].astype("string"), key)
    wanted = set(pd.read_parquet(data_root() / cohort.path)["person_id"])
    return sorted(here["person_id"][pps.isin(wanted).to_numpy()].tolist())


def _assert_failed_closed(request, nhs_numbers: set[str], match: str) -> None:
    failed = ReidentificationRequest.objects.get(pk=request.pk)
    assert failed.status == S.FAILED
    assert re.search(match, failed.failure), failed.failure
    assert (failed.path, failed.people, failed.performed_at, failed.expires_at) == (
        "",
        None,
        None,
        None,
    )
    assert _list_files() == []
    event = _events(request)[-1]
    assert event.event_type == "directcare.reid_failed"
    assert event.actor_id == get_system_user().pk
    assert event.data["status"] == "failed" and event.data["reason"]
    assert not any(n in failed.failure for n in nhs_numbers)
    logged = " ".join(str(e.data) for e in AuditEvent.objects.all())
    assert not any(number in logged for number in nhs_numbers)
    with pytest.raises(NotFound):
        services.view_list(request=failed, by=failed.requested_by)


# --- Keys ---------------------------------------------------------------------------------
def test_without_the_vault_key_version_of_the_records_it_fails(approved, settings, nhs_numbers):
    settings.SDE_VAULT_KEYS = f"2:{_b64(secrets.token_bytes(32))}"  # version 1 is gone

    assert services.perform(request=approved).status == S.FAILED

    _assert_failed_closed(approved, nhs_numbers, "no vault key for version 1")


def test_with_a_wrong_vault_key_of_the_same_version_it_fails(approved, settings, nhs_numbers):
    settings.SDE_VAULT_KEYS = f"1:{_b64(secrets.token_bytes(32))}"

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "failed authentication")
    assert _events(approved)[-1].data["reason"] == "VaultDecryptionError"


def test_a_malformed_vault_keyring_fails(approved, settings, nhs_numbers):
    settings.SDE_VAULT_KEYS = "1:not-base64!"

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "SDE_VAULT_KEYS")
    assert _events(approved)[-1].data["reason"] == "ImproperlyConfigured"


def test_without_the_master_key_version_of_the_extract_it_fails(approved, settings, nhs_numbers):
    settings.SDE_MASTER_KEYS = f"2:{_b64(secrets.token_bytes(32))}"

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "no master key version 1")


def test_a_vault_key_rotated_after_the_list_was_made_still_opens_it(approved, clinician, settings):
    ready = services.perform(request=approved)
    old = keyring("vault").get(1)
    expected = services.view_list(request=ready, by=clinician)
    settings.SDE_VAULT_KEYS = f"1:{_b64(old)},2:{_b64(secrets.token_bytes(32))}"

    listing = services.view_list(request=ready, by=clinician)

    pd.testing.assert_frame_equal(listing, expected)


def test_a_list_whose_vault_key_version_was_retired_is_not_shown(approved, clinician, settings):
    ready = services.perform(request=approved)
    settings.SDE_VAULT_KEYS = f"2:{_b64(secrets.token_bytes(32))}"
    before = AuditEvent.objects.count()

    with pytest.raises(services.ListUnavailable):
        services.view_list(request=ready, by=clinician)

    assert AuditEvent.objects.count() == before


# --- The vault ----------------------------------------------------------------------------
def _flip(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 1])


def test_a_members_tampered_vault_record_fails(approved, cohort, nhs_numbers):
    member = _members(cohort)[0]
    record = IdentityVaultRecord.objects.get(system_pseudonym=member)
    with governed_writes(IdentityVaultRecord):
        IdentityVaultRecord.objects.filter(pk=record.pk).update(
            ciphertext=_flip(bytes(record.ciphertext))
        )

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "failed authentication")


def test_two_members_swapped_vault_records_fail(approved, cohort, nhs_numbers):
    first, second = _members(cohort)[:2]
    a = IdentityVaultRecord.objects.get(system_pseudonym=first)
    b = IdentityVaultRecord.objects.get(system_pseudonym=second)
    with governed_writes(IdentityVaultRecord):
        IdentityVaultRecord.objects.filter(pk=a.pk).update(ciphertext=bytes(b.ciphertext))
        IdentityVaultRecord.objects.filter(pk=b.pk).update(ciphertext=bytes(a.ciphertext))

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "failed authentication")


def test_a_members_missing_vault_record_fails(approved, cohort, nhs_numbers):
    with governed_writes(IdentityVaultRecord):
        IdentityVaultRecord.objects.filter(system_pseudonym=_members(cohort)[0]).delete()

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "1 of the people have no identity vault")


def test_only_the_members_records_are_decrypted(approved, cohort, clinician):
    """A damaged record of someone not on the list (registered elsewhere) is never read."""
    elsewhere = _members(cohort, "Y99002")[0]
    record = IdentityVaultRecord.objects.get(system_pseudonym=elsewhere)
    with governed_writes(IdentityVaultRecord):
        IdentityVaultRecord.objects.filter(pk=record.pk).update(
            ciphertext=_flip(bytes(record.ciphertext))
        )

    ready = services.perform(request=approved)

    assert ready.status == S.READY
    assert (
        ready.people
        == len(_members(cohort))
        == len(services.view_list(request=ready, by=clinician))
    )
    assert _events(ready)[-2].data["people"] == ready.people


# --- The cohort and the data --------------------------------------------------------------
def test_a_cohort_file_changed_after_it_was_saved_fails(approved, cohort, nhs_numbers):
    path = data_root() / cohort.path
    table = pq.read_table(path)
    pq.write_table(table.slice(1), path)  # one person fewer

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "missing or changed since it was saved")


def test_a_cohort_file_gone_fails(approved, cohort, nhs_numbers):
    (data_root() / cohort.path).unlink()

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "missing or changed")


def test_a_system_key_rotated_after_the_cohort_was_found_fails_asking_for_a_rerun(
    approved, nhs_numbers
):
    latest = DatasetVersion.objects.get(dataset__source_table="patients")
    with governed_writes(DatasetVersion):  # the next ingest, under system key version 2
        DatasetVersion.objects.create(
            dataset=latest.dataset,
            version=latest.version + 1,
            ingest=latest.ingest,
            path=latest.path,
            checksum=latest.checksum,
            row_count=latest.row_count,
            person_count=latest.person_count,
            quarantined_count=0,
            key_version=2,
        )

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "run the analysis again")
    failure = ReidentificationRequest.objects.get(pk=approved.pk).failure
    assert "version 1" in failure and "version 2" in failure


def test_an_extract_of_mixed_system_key_versions_fails(approved, cohort, nhs_numbers):
    some = next(iter(cohort.extract.dataset_versions.values()))["id"]
    with governed_writes(DatasetVersion):
        DatasetVersion.objects.filter(pk=some).update(key_version=2)

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "one system key version")


def test_the_people_tables_file_gone_fails_closed(approved, nhs_numbers):
    (data_root() / DatasetVersion.objects.get(dataset__source_table="patients").path).unlink()

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "people|registration")


def test_an_unexpected_error_fails_closed_naming_only_its_class(approved, nhs_numbers, monkeypatch):
    """Whatever goes wrong ends the request (the sweep would otherwise send it again for
    ever), and an unknown error's text, which could carry data, is not kept."""
    secret = next(iter(nhs_numbers))

    def broken(*args, **kwargs):
        raise RuntimeError(f"row {secret} is odd")

    monkeypatch.setattr(services.reidentify, "cohort_members", broken)

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, r"could not be made \(RuntimeError\)")


def test_a_people_table_changed_after_ingest_fails(approved, cohort, nhs_numbers):
    version = DatasetVersion.objects.get(dataset__source_table="patients")
    path = data_root() / version.path
    assert file_sha256(path) == version.checksum
    people = pq.read_table(path).to_pandas()
    people["practice_ods"] = "Y99001"  # everyone "registered" at the clinician's practice
    pq.write_table(pa.Table.from_pandas(people, preserve_index=False), path)

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "changed")


# --- The clinician and the project --------------------------------------------------------
def test_a_clinician_removed_from_the_practice_before_the_list_is_made_fails(
    approved, clinician, practice, nhs_numbers
):
    membership = clinician.memberships.get(organisation=practice)
    identity.remove_membership(membership=membership, by=scenarios.administrator())

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "no longer works at the practice")


def test_a_clinician_whose_role_was_removed_before_the_list_is_made_fails(
    approved, clinician, nhs_numbers
):
    identity.remove_role(user=clinician, role=Role.CLINICIAN, by=scenarios.administrator())

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "no longer works at the practice")


def test_a_clinician_suspended_before_the_list_is_made_fails(approved, clinician, nhs_numbers):
    identity.suspend_account(user=clinician, by=scenarios.administrator(), reason="Left.")

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "no longer works at the practice")


@pytest.mark.parametrize("change", ["membership", "role"])
def test_after_the_list_is_made_a_clinician_who_left_cannot_obtain_it(
    approved, clinician, practice, change
):
    ready = services.perform(request=approved)
    admin = scenarios.administrator()
    if change == "membership":
        identity.remove_membership(
            membership=clinician.memberships.get(organisation=practice), by=admin
        )
    else:
        identity.remove_role(user=clinician, role=Role.CLINICIAN, by=admin)
    before = AuditEvent.objects.count()

    for obtain in (services.view_list, services.download_list):
        with pytest.raises(NotFound):
            obtain(request=ready, by=clinician)

    assert AuditEvent.objects.count() == before
    assert ReidentificationRequest.objects.get(pk=ready.pk).status == S.READY


def test_a_project_suspended_before_the_list_is_made_fails(approved, cohort, ig, nhs_numbers):
    projects.suspend_project(project=cohort.project, reason="An audit.", by=ig)

    services.perform(request=approved)

    _assert_failed_closed(approved, nhs_numbers, "its project is suspended")


def test_the_task_reports_the_failure(approved, cohort, nhs_numbers):
    (data_root() / cohort.path).unlink()

    assert perform_reidentification_task(approved.pk) == "failed"
    assert perform_reidentification_task(approved.pk) == "failed"  # and again: no change

    _assert_failed_closed(approved, nhs_numbers, "missing or changed")
    assert [e.event_type for e in _events(approved)].count("directcare.reid_failed") == 1


def test_the_task_for_a_request_that_does_not_exist_does_nothing():
    before = AuditEvent.objects.count()

    assert perform_reidentification_task(987654) == "missing"

    assert AuditEvent.objects.count() == before


# --- The sealed list ----------------------------------------------------------------------
def test_a_list_file_changed_on_disk_is_not_shown_and_not_recorded_as_viewed(approved, clinician):
    ready = services.perform(request=approved)
    path = data_root() / ready.path
    path.write_bytes(_flip(path.read_bytes()))
    before = AuditEvent.objects.count()

    for obtain in (services.view_list, services.download_list):
        with pytest.raises(services.ListUnavailable):
            obtain(request=ready, by=clinician)

    assert AuditEvent.objects.count() == before
    assert not AuditEvent.objects.filter(event_type__startswith="directcare.list_").exists()


def test_one_requests_list_copied_over_anothers_is_not_shown(approve, clinician):
    first = services.perform(request=approve())
    second = services.perform(request=approve())
    (data_root() / second.path).write_bytes((data_root() / first.path).read_bytes())
    before = AuditEvent.objects.count()

    with pytest.raises(services.ListUnavailable):
        services.view_list(request=second, by=clinician)

    assert AuditEvent.objects.count() == before
    assert len(services.view_list(request=first, by=clinician)) == first.people


def test_the_list_file_holds_no_nhs_number_in_the_clear(approved, clinician):
    ready = services.perform(request=approved)
    blob = (data_root() / ready.path).read_bytes()

    numbers = services.view_list(request=ready, by=clinician)["nhs_number"]

    assert len(numbers) > 0
    assert not any(number.encode() in blob for number in numbers)
    with pytest.raises(pa.ArrowInvalid):  # not a Parquet file without the key
        pq.read_table(pa.BufferReader(blob))


def test_a_ready_list_whose_file_is_gone_is_unavailable(approved, clinician):
    ready = services.perform(request=approved)
    (data_root() / ready.path).unlink()
    before = AuditEvent.objects.count()

    for obtain in (services.view_list, services.download_list):
        with pytest.raises(services.ListUnavailable):
            obtain(request=ready, by=clinician)

    assert AuditEvent.objects.count() == before


# --- Idempotence and the sweep -----------------------------------------------------------
def test_perform_twice_makes_one_list(approved):
    first = services.perform(request=approved)
    content = (data_root() / first.path).read_bytes()

    second = services.perform(request=approved)

    assert second.status == S.READY
    assert (
        second.path,
        second.people,
        second.performed_at,
        second.expires_at,
        second.status_changed_at,
    ) == (first.path, first.people, first.performed_at, first.expires_at, first.status_changed_at)
    assert (data_root() / second.path).read_bytes() == content
    assert _list_files() == [f"request-{approved.pk}.sealed"]
    types = [e.event_type for e in _events(approved)]
    assert types.count("directcare.reid_performed") == 1
    assert types[-1] == "directcare.reid_performed"


def test_the_list_is_kept_for_the_requests_days(approved):
    ready = services.perform(request=approved)

    assert ready.expires_at - ready.performed_at == timedelta(days=approved.valid_days)
    assert ready.key_version == keyring("vault").current_version


def _age(request: ReidentificationRequest, seconds: int) -> None:
    with governed_writes(ReidentificationRequest):
        ReidentificationRequest.objects.filter(pk=request.pk).update(
            status_changed_at=timezone.now() - timedelta(seconds=seconds)
        )


def test_the_sweep_sends_again_only_approved_requests_that_waited(
    approve, cohort, practice, clinician, ig, settings, sent
):
    settings.SDE_JOB_RESEND_SECONDS = 300
    stale, fresh = approve(), approve()
    waiting = services.sign_off(
        request=services.request_reidentification(
            cohort=cohort, practice=practice, reason=REASON, by=clinician
        ),
        by=ig,
        role="ig",
        outcome="approve",
    )
    _age(stale, 301)
    _age(waiting, 3000)  # one approval only: nothing to send
    _age(fresh, 200)
    before = AuditEvent.objects.count()

    swept = services.sweep()

    assert swept == {"expired": [], "resent": [stale.pk], "removed": 0}
    assert sent == [stale.pk]
    assert AuditEvent.objects.count() == before
    statuses = dict(ReidentificationRequest.objects.values_list("pk", "status"))
    assert statuses == {
        stale.pk: S.APPROVED,
        fresh.pk: S.APPROVED,
        waiting.pk: S.PARTIALLY_APPROVED,
    }


def test_the_sweep_does_not_send_a_list_already_made(approved, settings, sent):
    settings.SDE_JOB_RESEND_SECONDS = 300
    ready = services.perform(request=approved)
    _age(ready, 3000)

    assert services.sweep() == {"expired": [], "resent": [], "removed": 0}
    assert sent == []


def test_the_sweep_removes_what_a_killed_worker_left_and_keeps_ready_lists(
    approved, approve, cohort, practice, clinician, ig, caldicott, settings
):
    """A worker killed while writing leaves a half-written file (its finally never ran);
    the sweep deletes such files once they are old, and never a ready request's list."""
    settings.SDE_JOB_RESEND_SECONDS = 300
    ready = services.perform(request=approved)
    folder = data_root() / "direct-care"
    left = [folder / "request-999.sealed.0badc0de.partial", folder / "request-998.sealed"]
    fresh = folder / "request-997.sealed.1234abcd.partial"  # a worker may be writing it now
    for path in (*left, fresh):
        path.write_bytes(b"half")
    old = time.time() - 3000
    for path in (*left, data_root() / ready.path):
        os.utime(path, (old, old))

    swept = services.sweep()

    assert swept["removed"] == 2
    assert sorted(_list_files()) == sorted([Path(ready.path).name, fresh.name])
    assert len(services.view_list(request=ready, by=ready.requested_by)) == ready.people
