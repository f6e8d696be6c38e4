"""Matrix media through bridgehost's signed links, against a real Synapse with
authenticated media on (its default) and a real InspIRCd."""

from __future__ import annotations

import asyncio
import io
import re
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest

from bridgehost.config import load_config
from bridgehost.testing import running
from bridgehost.web.links import PublicLinks, load_key
from bridgehost.web.server import WebServer, web_context
from tests.integration.irc_helpers import irc_account, wait_until
from tests.integration.matrix_helpers import overrides, private_room, register_bot, send, wait_up
from tests.plugins.helpers import config_file
from tests.servers.ircd import InspIRCd, RawIRC, free_port
from tests.servers.synapse_fixtures import MatrixUsers
from tests.web.helpers import get, web_app

pytestmark = [pytest.mark.synapse, pytest.mark.ircd]

LINK = re.compile(r"(http://\S+/media/\S+\?sig=\S+)")


def png(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny) PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    rows = b"".join(b"\x00" + bytes([200, 30, 30]) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    """A plain HTTP client, as an IRC user's browser or curl would be."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


async def upload(owner: Any, data: bytes, ctype: str, name: str) -> str:
    resp, _ = await owner.client.upload(
        io.BytesIO(data), content_type=ctype, filename=name, filesize=len(data)
    )
    return str(resp.content_uri)


async def test_image_reaches_irc_as_a_link_a_plain_client_can_open(
    tmp_path: Path, matrix_users: MatrixUsers, ircd: InspIRCd
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    http_port = free_port()
    public = f"http://127.0.0.1:{http_port}"
    config = overrides(owner.server, bot, room_id)
    config["accounts"]["net"] = irc_account(ircd)
    config["bridges"][0]["links"].append({"account": "net", "target": "#pics"})
    async with (
        web_app(
            tmp_path,
            config,
            listen=f"127.0.0.1:{http_port}",
            public_url=public,
            media_max_bytes=4000,
        ) as (srv, url),
        RawIRC(ircd.host, ircd.port, "carol") as irc,
    ):
        await irc.connect()
        await irc.join("#pics")
        await wait_up(srv)
        image = png()
        mxc = await upload(owner, image, "image/png", "red square.png")
        # authenticated media is on: the homeserver's public URL is refused
        server_name, media_id = mxc.removeprefix("mxc://").split("/")
        legacy = f"{owner.server.url}/_matrix/media/v3/download/{server_name}/{media_id}"
        assert (await asyncio.to_thread(fetch, legacy))[0] in (401, 404)

        mark = irc.mark()
        await send(owner, room_id, {"msgtype": "m.image", "body": "red square.png", "url": mxc})
        line = await irc.wait_for(
            lambda m: m.command == "PRIVMSG" and "/media/" in m.trailing, since=mark, timeout=15
        )
        match = LINK.search(line.trailing)
        assert match is not None, line.trailing
        link = match.group(1)
        assert link.startswith(f"{public}/media/{server_name}/{media_id}/red%20square.png?sig=")

        status, body, headers = await asyncio.to_thread(fetch, link)
        assert status == 200
        assert body == image
        assert headers["Content-Type"] == "image/png"
        assert headers["Content-Disposition"].startswith("inline;")
        assert "sandbox" in headers["Content-Security-Policy"]
        cache = tmp_path / "data" / "media-cache"
        await wait_until(  # kept once the whole file went out
            lambda: sorted(p.suffix for p in cache.iterdir()) == ["", ".type"], 5, "cached"
        )
        again = await asyncio.to_thread(fetch, link)
        assert again[:2] == (200, image)

        # forged, altered, missing signatures: 403, never the file
        path, sig = link.split("?sig=")
        other_id = "A" * len(media_id)
        for bad in (
            f"{path}?sig={'x' * len(sig)}",
            f"{path}?sig=",
            path,
            f"{path.replace(media_id, other_id)}?sig={sig}",
            f"{path.replace('red%20square.png', 'evil.html')}?sig={sig}",
            f"{path}?sig={sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}",
        ):
            status, body, _ = await asyncio.to_thread(fetch, bad)
            assert status == 403, bad
            assert body == b"this link is not signed by this bridgehost\n"

        # a larger file than http.media_max_bytes is refused cleanly
        big = await upload(owner, b"x" * 5000, "text/plain", "big.txt")
        links = PublicLinks(public, load_key(tmp_path / "data"))
        big_link = links.media(*big.removeprefix("mxc://").split("/"), "big.txt")
        assert big_link is not None
        status, body, _ = await asyncio.to_thread(fetch, big_link)
        assert status == 413
        assert b"larger than this server relays" in body

        # unknown media: the homeserver's 404, passed on
        missing = links.media(server_name, "NoSuchMediaHere", "x.png")
        assert missing is not None
        status, body, _ = await asyncio.to_thread(fetch, missing)
        assert (status, body) == (404, b"no such media on the homeserver\n")
        assert (await get(url + "/healthz"))[0] == 200


class DownHomeserver:
    """A media source whose homeserver is not running (nothing listens on its port)."""

    def __init__(self) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"

    def media_credentials(self) -> tuple[str, str]:
        return self.url, "token"


async def test_homeserver_down_is_502_with_a_reason(tmp_path: Path) -> None:
    async with web_app(tmp_path) as (srv, _):
        app = srv.app
        assert app.server is not None and app.store is not None and app.config.http is not None
        public = PublicLinks("http://127.0.0.1", load_key(tmp_path / "data"))
        down = DownHomeserver()
        http = app.config.http
        for sources, reason in (
            ([down], f"homeserver {down.url} unreachable: ClientConnectorError"),
            ([], "no Matrix account is logged in to fetch media with"),
        ):
            ctx = web_context(
                app.config,
                http,
                app.server,
                app.store,
                links=list,
                status=dict,
                media_sources=lambda s=sources: s,  # type: ignore[misc]
                public=public,
            )
            async with WebServer(ctx) as web:
                link = public.media("example.org", "abcDEF", "a.png")
                assert link is not None
                status, body, _ = await get(web.url + link.removeprefix("http://127.0.0.1"))
                assert (status, body) == (502, reason + "\n")


async def test_media_of_a_matrix_account_whose_adapter_runs_in_a_child_process(
    tmp_path: Path, matrix_users: MatrixUsers, ircd: InspIRCd
) -> None:
    """`process: true`: the child logs in and signs the link; this process fetches
    the file with the login the child saved in the data dir."""
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    http_port = free_port()
    public = f"http://127.0.0.1:{http_port}"
    matrix = overrides(owner.server, bot, room_id, account={"process": True})["accounts"]["mx"]
    path = config_file(
        tmp_path,
        {"matrix": matrix, "net": irc_account(ircd)},
        [
            {
                "channel": "#pics@test.example",
                "links": [
                    {"account": "matrix", "target": room_id},
                    {"account": "net", "target": "#pics"},
                ],
            }
        ],
        http={"listen": f"127.0.0.1:{http_port}", "public_url": public},
    )
    async with (
        running(tmp_path, config=load_config(path)) as srv,
        RawIRC(ircd.host, ircd.port, "carol") as irc,
    ):
        await irc.connect()
        await irc.join("#pics")
        await wait_until(
            lambda: all(s.state == "joined" for s in srv.app.link_statuses()), 30, "joined"
        )
        assert not any(hasattr(a, "media_credentials") for a in srv.app.adapters)
        image = png(5, 2)
        mxc = await upload(owner, image, "image/png", "child.png")
        mark = irc.mark()
        await send(owner, room_id, {"msgtype": "m.image", "body": "child.png", "url": mxc})
        line = await irc.wait_for(
            lambda m: m.command == "PRIVMSG" and "/media/" in m.trailing, since=mark, timeout=20
        )
        match = LINK.search(line.trailing)
        assert match is not None, line.trailing
        status, body, headers = await asyncio.to_thread(fetch, match.group(1))
        assert (status, body) == (200, image)
        assert headers["Content-Type"] == "image/png"
