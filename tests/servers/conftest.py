"""Make the real-server fixtures available to the tests in this directory.

Imported rather than listed in ``pytest_plugins``: pytest refuses
``pytest_plugins`` in a conftest below the rootdir once collection has begun
(as it has when running plain ``pytest`` over ``testpaths``).
"""

from .fixtures import ircd, ircd_factory, ircd_services

__all__ = ["ircd", "ircd_factory", "ircd_services"]
