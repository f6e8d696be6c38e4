"""/healthz against a real InspIRCd that goes away and comes back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.integration.irc_helpers import bridge_config, irc_account, wait_joined
from tests.servers.ircd import InspIRCd
from tests.web.helpers import get, web_app

pytestmark = pytest.mark.ircd


async def wait_health(url: str, status: int, within: float) -> tuple[str, float]:
    """Poll /healthz until it answers `status`; (body, seconds it took)."""
    start = time.monotonic()
    while True:
        got, body, _ = await get(url + "/healthz")
        if got == status:
            return body, time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"/healthz still {got} after {within} s: {body!r}")
        await asyncio.sleep(0.05)


async def test_a_stopped_irc_server_turns_healthz_503_then_back(
    tmp_path: Path, ircd: InspIRCd
) -> None:
    overrides = bridge_config(
        {"net": irc_account(ircd)}, [("room", [{"account": "net", "target": "#room"}])]
    )
    async with web_app(tmp_path, overrides, unhealthy_after=1.5) as (srv, url):
        await wait_joined(srv)
        assert (await get(url + "/healthz"))[:2] == (200, "ok\n")

        await asyncio.to_thread(ircd.stop)
        stopped = time.monotonic()
        body, _ = await wait_health(url, 503, within=15)
        assert time.monotonic() - stopped >= 1.5  # not before unhealthy_after
        assert body.startswith("link net/#room <-> #room@test.example disconnected for ")
        assert "Connect call failed" in body or "connection" in body.lower()
        (link,) = srv.app.link_statuses()
        assert link.failing_since is not None

        await asyncio.to_thread(ircd.start)
        await wait_joined(srv, timeout=20)
        body, _ = await wait_health(url, 200, within=5)
        assert body == "ok\n"
        assert link.failing_since is None
