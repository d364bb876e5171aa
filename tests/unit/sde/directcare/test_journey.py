"""The direct care journey through the services: who ends up on the list, and that the
list is the requesting clinician's alone (issue 7's acceptance tests)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from django.utils import timezone

from sde.audit.models import AuditEvent
from sde.data.files import data_root
from sde.directcare import services
from sde.directcare.models import ReidentificationRequest
from sde.exceptions import NotFound
from sde.governance import governed_writes

pytestmark = pytest.mark.django_db
S = ReidentificationRequest.Status
REASON = "Invite these patients for an annual physical health check."
TODAY = timezone.localdate()


def _approved(cohort, practice, clinician, ig, caldicott) -> ReidentificationRequest:
    request = services.request_reidentification(cohort=cohort, practice=practice, reason=REASON,
                                                by=clinician)  # fmt: skip
    services.sign_off(request=request, by=ig, role="ig", outcome="approve")
    return services.sign_off(request=request, by=caldicott, role="caldicott", outcome="approve")


def _expected(cohort, ods: str) -> int:
    """Cohort members the extract shows registered at ``ods`` and alive: counted from the
    project's own extract, not by the code under test."""
    patients = pd.read_parquet(data_root() / cohort.extract.path / "patients.parquet")
    members = pd.read_parquet(data_root() / cohort.path)["person_id"]
    here = patients[
        patients["person_id"].isin(members)
        & (patients["practice_ods"] == ods)
        & patients["registration_end"].isna()
        & patients["date_of_death"].isna()
    ]
    return here["person_id"].nunique()


def _drop_patients(drop: Path) -> pd.DataFrame:
    return pd.read_csv(drop / "patients.csv", dtype=str)


def test_after_both_approvals_the_list_is_the_cohort_members_registered_at_the_practice(
    cohort, practice, clinician, ig, caldicott, direct_care_drop
):
    request = _approved(cohort, practice, clinician, ig, caldicott)
    assert request.status == S.APPROVED

    ready = services.perform(request=request)

    listing = services.view_list(request=ready, by=clinician)
    expected = _expected(cohort, "Y99001")
    assert expected > 10
    assert (ready.status, ready.people, len(listing)) == (S.READY, expected, expected)
    source = _drop_patients(direct_care_drop).set_index("nhs_number")
    rows = source.loc[listing["nhs_number"]]
    assert (rows["practice_ods"] == "Y99001").all()
    assert rows["registration_end"].isna().all() and rows["date_of_death"].isna().all()
    born = pd.to_datetime(rows["date_of_birth"])
    assert (born <= pd.Timestamp("2008-01-01")).all()  # adults on the index date
    assert list(listing.columns) == ["nhs_number", "birth_month", "sex"]
    assert listing["birth_month"].tolist() == born.dt.strftime("%Y-%m").tolist()


def test_people_registered_at_another_practice_are_never_on_the_list(
    cohort, practice, other_practice, clinician, other_clinician, ig, caldicott, direct_care_drop
):
    mine = services.perform(request=_approved(cohort, practice, clinician, ig, caldicott))
    theirs = services.perform(
        request=_approved(cohort, other_practice, other_clinician, ig, caldicott)
    )

    a = set(services.view_list(request=mine, by=clinician)["nhs_number"])
    b = set(services.view_list(request=theirs, by=other_clinician)["nhs_number"])
    source = _drop_patients(direct_care_drop).set_index("nhs_number")["practice_ods"]
    assert a and b and not a & b
    assert set(source.loc[list(b)]) == {"Y99002"}
    assert len(b) == _expected(cohort, "Y99002")


def test_every_step_is_audited_with_counts_and_no_nhs_number(
    cohort, practice, clinician, ig, caldicott
):
    ready = services.perform(request=_approved(cohort, practice, clinician, ig, caldicott))
    listing = services.view_list(request=ready, by=clinician)
    services.download_list(request=ready, by=clinician)

    events = AuditEvent.objects.filter(target_type__icontains="reidentification",
                                       target_id=str(ready.pk)).order_by("sequence")  # fmt: skip
    assert [e.event_type for e in events] == [
        "directcare.reid_requested", "directcare.reid_approved", "directcare.reid_approved",
        "directcare.reid_performed", "directcare.list_viewed", "directcare.list_downloaded",
    ]  # fmt: skip
    performed = events[3].data
    assert performed["people"] == len(listing) and performed["practice"] == "Y99001"
    assert performed["cohort_id"] == cohort.pk and performed["vault_key_versions"] == [1]
    text = " ".join(str(e.data) for e in AuditEvent.objects.all())
    assert not any(number in text for number in listing["nhs_number"])


def test_the_list_expires_and_its_file_is_gone(cohort, practice, clinician, ig, caldicott):
    ready = services.perform(request=_approved(cohort, practice, clinician, ig, caldicott))
    path = data_root() / ready.path
    assert path.is_file()

    swept = services.sweep(now=ready.expires_at + timezone.timedelta(seconds=1))

    assert swept["expired"] == [ready.pk] and not path.exists()
    with pytest.raises(NotFound):
        services.view_list(request=ready, by=clinician)
    assert ReidentificationRequest.objects.get(pk=ready.pk).status == S.EXPIRED


def test_a_list_past_its_time_is_gone_at_once_even_before_the_sweep(
    cohort, practice, clinician, ig, caldicott
):
    ready = services.perform(request=_approved(cohort, practice, clinician, ig, caldicott))
    with governed_writes(ReidentificationRequest):  # time passes
        ReidentificationRequest.objects.filter(pk=ready.pk).update(expires_at=timezone.now())

    with pytest.raises(NotFound):
        services.download_list(request=ready, by=clinician)
    assert not (data_root() / ready.path).exists()
    assert ReidentificationRequest.objects.get(pk=ready.pk).status == S.EXPIRED
