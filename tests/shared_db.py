"""Database rows built once and shared by many tests, each test still seeing them fresh.

``shared_rows`` builds rows inside a transaction that stays open for the scope of a
module- or session-scoped fixture. Each test then runs in pytest-django's own atomic
block, which is a savepoint inside that transaction, so whatever a test writes is rolled
back to the shared rows before the next test, exactly as a per-test fixture would leave
them. The shared transaction is rolled back at the end of the scope: nothing is ever
committed.

Only for non-transactional tests (``@pytest.mark.django_db`` without ``transaction=True``);
a transactional test cannot run inside the shared transaction.

``module_catalogue`` (tests/conftest.py) uses it for the data custodian and the standard
datasets that every test of some modules starts from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from django.db import transaction

from sde.identity.models import User

T = TypeVar("T")


@contextmanager
def shared_rows(django_db_blocker: Any, build: Callable[[], T]) -> Iterator[T]:
    """Run ``build`` in a transaction held open until exit, and yield what it returns;
    the tests that run meanwhile see its rows, and they are rolled back at exit."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        # Marked as a test case's block (as Django's TestCase.setUpTestData block is), so
        # a durable atomic block inside a test behaves as under a per-test fixture.
        atomic._from_testcase = True  # type: ignore[attr-defined]
        atomic.__enter__()
        try:
            value = build()
        except BaseException:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            raise
    try:
        yield value
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture(name="custodian")
def module_custodian(module_catalogue: int, db: None) -> User:
    """``custodian`` (tests/conftest.py) made once for a module: the data custodian and the
    standard datasets of ``module_catalogue``. A module adopts it as
    ``custodian = module_custodian``, with an autouse fixture that asks for it, so that
    every test of the module sees the same catalogue."""
    return User.objects.get(pk=module_catalogue)
