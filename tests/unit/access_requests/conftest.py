"""Fixtures for the access request tests: the catalogue, an applicant organisation and a
small ingested drop (approval builds the project's extracts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sde.identity.models import Organisation, User
from tests import scenarios
from tests.shared_db import module_custodian
from tests.unit.access_requests.builders import applicant as make_applicant
from tests.unit.sde.projects.conftest import drop_dir, ingested  # noqa: F401


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path, custodian: User) -> Path:
    return private_data_root


# Every test here has the catalogue (``data_root``): made once for the module.
custodian = module_custodian


@pytest.fixture
def organisation(db: None) -> Organisation:
    return scenarios.organisation()


@pytest.fixture
def applicant(organisation: Organisation) -> User:
    return make_applicant(organisation)
