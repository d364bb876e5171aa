"""Fixtures for the bad input sweep: a private data root; the world of ``world.py``,
built once per module (tests/shared_db.py) for the tests that crawl the pages; and each
person's crawl of it, made once and read by both page sweeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import verified_client
from tests.shared_db import shared_rows
from tests.unit.bad_input import world as hostile
from tests.unit.bad_input.crawl import Crawl, crawl

PAGES = 45  # per person: every kind of page within reach, in bounded time
START = ["/", "/dashboard/", "/register/", "/direct-care/"]


@pytest.fixture(autouse=True)
def data_root(private_data_root: Path) -> Path:
    return private_data_root


def _private(folder: Path) -> dict[str, Any]:
    """As ``private_data_root`` (tests/conftest.py) sets them, under ``folder``."""
    return {
        "SDE_DATA_ROOT": folder / "data", "SDE_KEY_DIR": folder / "keys",
        "SDE_ATTACHMENT_ROOT": folder / "attachments", "PRODUCTION": False,
        "SDE_SYSTEM_KEYS": None, "SDE_MASTER_KEYS": None, "SDE_VAULT_KEYS": None,
    }  # fmt: skip


@pytest.fixture(scope="module")
def _world(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[hostile.World, Path]]:
    folder = tmp_path_factory.mktemp("hostile-world")
    private = override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        **_private(folder),
    )

    def build() -> hostile.World:
        with private:
            return hostile.build(folder)

    with shared_rows(django_db_blocker, build) as built:
        yield built, folder


@pytest.fixture
def world(
    _world: tuple[hostile.World, Path], data_root: Path, settings: Any, db: None
) -> hostile.World:
    built, folder = _world
    for name, value in _private(folder).items():
        setattr(settings, name, value)
    return built


@pytest.fixture(scope="module")
def _crawls(_world: tuple[hostile.World, Path]) -> dict[str, Crawl]:
    return {}


@pytest.fixture
def crawl_as(world: hostile.World, _crawls: dict[str, Crawl]) -> Callable[[str], Crawl]:
    """A person's crawl of the world (made by the first test to ask; the rows are the
    same in every test, each rolled back to the world)."""

    def made(who: str) -> Crawl:
        if who not in _crawls:
            _crawls[who] = crawl(
                verified_client(world.people[who]), START + world.pages, limit=PAGES
            )
        return _crawls[who]

    return made
