"""The status page in a real browser: links, states, errors; no secret, no content."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.integration.irc_helpers import bridge_config, irc_account, wait_until
from tests.servers.ircd import InspIRCd, RawIRC, free_port
from tests.web.browser import chromium, keep, watched_page
from tests.web.helpers import get, web_app

pytestmark = pytest.mark.ircd

SECRET = "pw-that-must-not-show"
CONTENT = "a private line nobody should see on the status page"


async def test_status_page_in_chromium(tmp_path: Path, ircd: InspIRCd) -> None:
    down = free_port()  # nothing listens there: that link keeps failing
    overrides = bridge_config(
        {
            "net": irc_account(ircd),
            "gone": irc_account(ircd, password=SECRET) | {"port": down},
        },
        [
            ("room", [{"account": "net", "target": "#room"}]),
            ("other", [{"account": "gone", "target": "#other", "direction": "out"}]),
        ],
    )
    overrides["bridges"][0]["title"] = "Room <b>with</b> a title"
    async with (
        web_app(tmp_path, overrides, unhealthy_after=0.5, refresh=5) as (srv, url),
        RawIRC(ircd.host, ircd.port, "alice") as irc,
    ):
        await irc.connect()
        await irc.join("#room")
        await wait_until(
            lambda: any(s.state == "joined" for s in srv.app.link_statuses()), 15, "joined"
        )
        await irc.privmsg("#room", CONTENT)
        await wait_until(
            lambda: any(s.relayed_in for s in srv.app.link_statuses()), 10, "relayed in"
        )
        await wait_until(
            lambda: any(s.last_error for s in srv.app.link_statuses() if s.account == "gone"),
            10,
            "an error on the dead link",
        )

        await wait_until(
            lambda: any(s.failing_since for s in srv.app.link_statuses()), 10, "a failing link"
        )
        await asyncio.sleep(0.6)  # past unhealthy_after
        status, html, headers = await get(url + "/")
        assert status == 200
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert SECRET not in html
        assert CONTENT not in html
        assert "<b>with</b>" not in html  # the title is escaped
        assert 'http-equiv="refresh" content="5"' in html

        async with chromium() as browser:
            shots = []
            for name, viewport in (
                ("status-desktop", {"width": 1100, "height": 700}),
                ("status-phone", {"width": 390, "height": 844}),
            ):
                watched = await watched_page(browser, viewport=viewport)
                page = watched.page
                await page.goto(url + "/")
                await _check_page(page, srv)
                path = tmp_path / f"{name}.png"
                await page.screenshot(path=str(path), full_page=True)
                shots.append(keep(path))
                assert watched.errors == []
                assert all(r.startswith(url) for r in watched.requests), watched.requests
                await page.close()
            assert all(p.stat().st_size > 5000 for p in shots)


async def _check_page(page: Any, srv: Any) -> None:
    assert await page.title() == "bridgehost status · test.example"
    body = await page.inner_text("body")
    assert "#room@test.example" in body
    assert "#other@test.example" in body
    assert "Room <b>with</b> a title" in body
    assert "joined" in body
    assert "Unhealthy" in body
    assert "link gone/#other <-> #other@test.example disconnected for" in body
    room = await page.get_by_role("region", name="#room@test.example").inner_text()
    assert "1 / 0" in room  # relayed in / out
    other = await page.get_by_role("region", name="#other@test.example").inner_text()
    assert "cannot connect" in other
