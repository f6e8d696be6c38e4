"""Fixtures shared by every test directory: real IRC and Matrix servers, and the
order and company tests keep on parallel workers (scripts/test runs pytest-xdist)."""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.fixtures import ircd, ircd_factory, ircd_services
from tests.servers.synapse_fixtures import matrix_users, synapse, synapse_factory, synapse_template

__all__ = [
    "ircd",
    "ircd_factory",
    "ircd_services",
    "matrix_users",
    "synapse",
    "synapse_factory",
    "synapse_template",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`slow` tests first, so the longest start at once instead of one ending the run
    alone; `alone` tests last, where the others they make wait are short."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("alone"):
            return 2
        return 0 if item.get_closest_marker("slow") else 1

    items.sort(key=rank)


@contextlib.contextmanager
def _flocked(path: Path, how: int) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, how)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _company(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A readers-writer lock across xdist workers: an `alone` test holds it
    exclusively (its deadline is the issue's, not one for a shared CPU); every other
    test holds it shared. A turnstile stops new shared holders while an `alone` test
    waits, so it is not starved."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing runs beside anything
        yield
        return
    shared = tmp_path_factory.getbasetemp().parent  # the run's root; each worker's is below
    turnstile, lock = shared / f"company-{run}.turnstile", shared / f"company-{run}.lock"
    if request.node.get_closest_marker("alone"):
        with _flocked(turnstile, fcntl.LOCK_EX), _flocked(lock, fcntl.LOCK_EX):
            yield
    else:
        with _flocked(turnstile, fcntl.LOCK_EX):
            pass
        with _flocked(lock, fcntl.LOCK_SH):
            yield
