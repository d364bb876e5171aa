"""Re-identification by a real Celery worker on the real broker: the second sign-off
queues the decryption after commit, the worker makes the list, and the clinician opens
it; the message carries the request's id only.

Everything is made in this process (and committed) before the worker starts; the worker
shares the test database, the private data root and the key folder."""

from __future__ import annotations

import pytest
from django.conf import settings

from sde.analysis.models import Cohort
from sde.directcare import services
from sde.directcare.models import ReidentificationRequest
from sde.identity.models import Organisation, User
from tests.events import mark, types_since
from tests.integration.conftest import TASK_TIMEOUT, WorkerStarter, wait_until
from tests.unit.sde.directcare.conftest import _build, direct_care_drop
from tests.unit.sde.projects import conftest as project_fixtures

data_root = project_fixtures.data_root
__all__ = ["data_root", "direct_care_drop"]

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
S = ReidentificationRequest.Status


def test_the_second_sign_off_has_a_worker_make_the_list_for_the_clinician(
    data_root, direct_care_drop, start_worker: WorkerStarter
):
    world = _build(data_root, direct_care_drop)
    clinician, ig, caldicott = (User.objects.get(pk=pk)
                                for pk in (world.clinician, world.ig, world.caldicott))  # fmt: skip
    cohort = Cohort.objects.get(pk=world.planning_cohort)
    worker = start_worker(env={"SDE_DATA_ROOT": str(settings.SDE_DATA_ROOT)})
    at = mark()

    request = services.request_reidentification(
        cohort=cohort, practice=Organisation.objects.get(pk=world.practice), by=clinician,
        reason="Offer these patients a structured medication review.",
    )  # fmt: skip
    services.sign_off(request=request, by=caldicott, role="caldicott", outcome="approve")
    services.sign_off(request=request, by=ig, role="ig", outcome="approve")

    def ready() -> ReidentificationRequest | None:
        current = ReidentificationRequest.objects.get(pk=request.pk)
        return current if current.status not in (S.APPROVED,) else None

    done = wait_until(ready, timeout=2 * TASK_TIMEOUT, what="the list", log=worker.log)
    assert (done.status, done.failure) == (S.READY, "")
    listing = services.view_list(request=done, by=clinician)
    assert len(listing) == done.people > 0
    assert types_since(at) == [
        "directcare.reid_requested", "directcare.reid_approved", "directcare.reid_approved",
        "directcare.reid_performed", "directcare.list_viewed",
    ]  # fmt: skip
    assert not any(number in worker.log() for number in listing["nhs_number"])
