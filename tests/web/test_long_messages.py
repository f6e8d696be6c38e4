"""/m/<event id>: the whole text of one event of a bridged channel, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.web.helpers import get, web_app


def fs_bridge(tmp_path: Path) -> dict[str, Any]:
    """One bridged channel (#room) over the fs adapter: no network needed."""
    return {
        "accounts": {"shell": {"type": "fs", "root": str(tmp_path / "fs")}},
        "bridges": [{"channel": "#room@test.example", "links": [{"account": "shell"}]}],
    }


async def test_serves_whole_text_of_bridged_events_only(tmp_path: Path) -> None:
    async with web_app(tmp_path, fs_bridge(tmp_path)) as (srv, url):
        alice = await srv.client("alice")
        bob = await srv.client("bob")
        room, elsewhere = srv.channel("room"), srv.channel("elsewhere")
        await alice.sub(room)
        await alice.sub(elsewhere)
        lines = [f"line {i}: <b>not bold</b> & more" for i in range(40)]
        long = await alice.publish(room, "\n".join(lines))
        status, page, headers = await get(f"{url}/m/{long.id.hex()}")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        for line in lines:
            assert line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in page
        assert "<b>not bold</b>" not in page
        assert "alice@test.example" in page
        assert "#room@test.example" in page
        upper, _, _ = await get(f"{url}/m/{long.id.hex().upper()}")
        assert upper == 200

        hidden = await alice.publish(elsewhere, "not bridged")
        dm = await alice.publish(srv.user("bob"), "a direct message")
        for event in (hidden, dm):
            status, body, _ = await get(f"{url}/m/{event.id.hex()}")
            assert (status, body) == (404, "no such message\n")
        for bad in ("00" * 32, "zz" * 32, "abc", long.id.hex() + "00", "a%2Fb"):
            status, body, _ = await get(f"{url}/m/{bad}")
            assert status == 404
            assert "Traceback" not in body
        assert bob is not None


async def test_markdown_is_rendered_and_sanitised(tmp_path: Path) -> None:
    async with web_app(tmp_path, fs_bridge(tmp_path)) as (srv, url):
        bridge = await srv.client("!irc-x")
        room = srv.channel("room")
        body = "**bold** and [a link](https://example.org/)\n\n<script>alert(1)</script>"
        event = await bridge.publish(
            room, body, ctype="text/markdown", nick="Zoë", origin="irc:x/#room"
        )
        status, page, _ = await get(f"{url}/m/{event.id.hex()}")
        assert status == 200
        assert "<strong>bold</strong>" in page
        assert 'href="https://example.org/"' in page
        assert "<script>" not in page
        assert "Zoë" in page
        assert "via irc:x" in page


async def test_shows_the_latest_edit_and_forgets_deleted_events(tmp_path: Path) -> None:
    async with web_app(tmp_path, fs_bridge(tmp_path)) as (srv, url):
        alice = await srv.client("alice")
        bob = await srv.client("bob")
        room = srv.channel("room")
        await alice.sub(room)
        await bob.sub(room)
        first = await alice.publish(room, "first draft")
        await bob.publish(room, "a reply naming it", reply_to=first.id)
        await bob.react(first, "👍")
        await alice.edit(first, "second draft")
        await alice.edit(first, "final text")
        status, page, _ = await get(f"{url}/m/{first.id.hex()}")
        assert status == 200
        assert "final text" in page
        assert "draft" not in page
        assert "(edited)" in page

        gone = await alice.publish(room, "regretted")
        assert (await get(f"{url}/m/{gone.id.hex()}"))[0] == 200
        await alice.delete(gone)
        assert (await get(f"{url}/m/{gone.id.hex()}"))[:2] == (404, "no such message\n")
