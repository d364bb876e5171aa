"""The JSON endpoints that take free text refuse what a form field would (the forms
themselves are posted with bad text by test_pages.py)."""

from __future__ import annotations

from typing import Final

import pytest
from django.urls import reverse

from access_requests import services as applications
from access_requests.models import AccessRequest
from tests import scenarios
from tests.conftest import verified_client
from tests.unit.access_requests import builders

pytestmark = pytest.mark.django_db

NUL_TEXT: Final = "Hypertension\x00 in North Place"


def test_nul_in_json_answers_is_a_400_not_a_500(custodian):
    """JSON strings may hold U+0000; PostgreSQL text and jsonb cannot (a 500 there)."""
    organisation = scenarios.organisation()
    request = applications.create_request(by=builders.applicant(organisation),
                                          organisation=organisation)  # fmt: skip
    client = verified_client(request.applicant)
    url = reverse("api-access-request", args=[request.pk])

    response = client.patch(
        url, {"answers": {"meta": {"title": NUL_TEXT}}, "revision": request.revision},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400, response.content
    assert AccessRequest.objects.get(pk=request.pk).revision == request.revision

    response = client.post(
        reverse("api-access-request-comments", args=[request.pk]), {"body": NUL_TEXT},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400, response.content
