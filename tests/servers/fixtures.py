"""pytest fixtures that run real IRC servers (see `tests.servers.ircd`).

- ``ircd``: a fresh InspIRCd per test (fakelag off, generous limits).
- ``ircd_factory``: build custom ones (flood limits, services, extra config);
  every server it made is stopped at teardown.
- ``ircd_services``: one InspIRCd linked to Atheme (NickServ + SASL) for the
  whole session. Do not stop it from a test; use
  ``ircd_factory(services=True)`` for a private one instead. Accounts
  registered on it live for the whole session: use unique names.

Every server is stopped at teardown, whether the test passed or not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, Protocol

import pytest

from .ircd import InspIRCd

__all__ = ["IRCdFactory", "ircd", "ircd_factory", "ircd_services"]


class IRCdFactory(Protocol):
    """Signature of the ``ircd_factory`` fixture's value."""

    def __call__(
        self,
        *,
        fakelag: bool | Literal["yes", "no", "on", "off"] = False,
        threshold: int = 1000,
        commandrate: int = 100000,
        recvq: int = 65536,
        extra_config: Iterable[str] = (),
        services: bool = False,
        port: int | None = None,
        start: bool = True,
    ) -> InspIRCd: ...


@pytest.fixture
def ircd(tmp_path: Path) -> Iterator[InspIRCd]:
    """A running InspIRCd for one test (fakelag off, no services)."""
    server = InspIRCd(tmp_path / "ircd", fakelag=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def ircd_factory(tmp_path: Path) -> Iterator[IRCdFactory]:
    """Call it to get a started InspIRCd with custom settings.

    ``start=False`` returns it unstarted (the fixture still stops it).
    """
    made: list[InspIRCd] = []

    def factory(
        *,
        fakelag: bool | Literal["yes", "no", "on", "off"] = False,
        threshold: int = 1000,
        commandrate: int = 100000,
        recvq: int = 65536,
        extra_config: Iterable[str] = (),
        services: bool = False,
        port: int | None = None,
        start: bool = True,
    ) -> InspIRCd:
        server = InspIRCd(
            tmp_path / f"ircd-factory-{len(made)}",
            fakelag=fakelag,
            threshold=threshold,
            commandrate=commandrate,
            recvq=recvq,
            extra_config=extra_config,
            services=services,
            port=port,
        )
        made.append(server)
        if start:
            server.start()
        return server

    try:
        yield factory
    finally:
        errors: list[BaseException] = []
        for server in reversed(made):
            try:
                server.stop()
            except BaseException as exc:  # stop the others before reporting
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def ircd_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InspIRCd]:
    """InspIRCd linked to Atheme services, shared by the whole session."""
    server = InspIRCd(tmp_path_factory.mktemp("ircd-services"), services=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()
