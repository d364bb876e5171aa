"""The disclosure checks are functions of tables and evidence: their tests need no
database. The release tests' ``data_root`` (tests/unit/outputs/conftest.py) would give
each of them the catalogue, made through the database for every test; here it is only the
private data root and key folder, so that nothing touches real data or keys."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path) -> Path:
    return private_data_root
