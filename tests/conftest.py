"""Fixtures shared by every test directory: real IRC and Matrix servers."""

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
