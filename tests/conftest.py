"""Fixtures shared by every test directory: real IRC and Matrix servers."""

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
    """The `slow` tests first: spread over workers (scripts/test runs pytest-xdist),
    the longest ones then start at once instead of one of them ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
