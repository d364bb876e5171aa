import pytest
from django.urls import reverse

from sde.identity.roles import Role


@pytest.mark.django_db
def test_dashboard_renders_for_every_role(client_for, make_person):
    for role in Role:
        user = make_person(role)
        response = client_for(user).get(reverse("dashboard"))
        assert response.status_code == 200, role
        assert role.label.encode() in response.content
