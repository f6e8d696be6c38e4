"""pytest fixtures for testing bots and clients against a real in-process server.

In a `conftest.py` (or a test module):

    pytest_plugins = ["bridgehost.testing.fixtures"]

    async def test_ping(bot_harness):
        async with bot_harness(Ping) as h:
            assert await h.ask("!ping") == "pong"

`bot_harness(*bots, channel=..., user=..., overrides=...)` makes a
`BotHarness` (see bridgehost.testing.bots) on the test's `tmp_path`;
`bridgehost_server` is a started server (`Running`) without bots.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from . import Running, running
from .bots import BotHarness, BotHarnessFactory, BotSpec

__all__ = ["BotHarness", "BotHarnessFactory", "BotSpec", "bot_harness", "bridgehost_server"]


@pytest.fixture
def bot_harness(tmp_path: Path) -> BotHarnessFactory:
    def make(*bots: Any, **options: Any) -> BotHarness:
        return BotHarness(tmp_path, *bots, **options)

    return make


@pytest_asyncio.fixture
async def bridgehost_server(tmp_path: Path) -> AsyncIterator[Running]:
    async with running(tmp_path) as srv:
        yield srv
