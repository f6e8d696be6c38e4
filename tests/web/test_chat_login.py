"""The browser login: a password for a revocable user token, under the ident allowance."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import cbor2
import yaml

from bridgehost import cli
from tests.web.helpers import web_app


async def ws_ident(http: aiohttp.ClientSession, base: str, **ident: Any) -> dict[str, Any]:
    async with http.ws_connect(base.replace("http", "ws", 1) + "/scalar") as ws:
        await ws.send_bytes(cbor2.dumps({"t": "ident", "v": 1, "rid": 1, **ident}))
        reply = cbor2.loads((await ws.receive(timeout=5)).data)
        assert isinstance(reply, dict)
        return reply


async def post(http: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, Any]:
    async with http.post(url, json=body, **kw) as r:
        text = await r.text()
        return r.status, (await r.json() if r.content_type == "application/json" else text)


async def test_login_gives_a_token_that_idents_until_revoked(tmp_path: Path) -> None:
    async with web_app(tmp_path) as (srv, base), aiohttp.ClientSession() as http:
        alice, password = await srv.add_user("alice", "correct horse")
        status, answer = await post(
            http,
            f"{base}/chat/api/login",
            {"user": "Alice", "password": password, "label": "laptop"},
            headers={"Origin": base},
        )
        assert status == 200 and answer["id"] == alice
        token = answer["token"]
        auth = {"method": "token", "secret": token}
        welcome = await ws_ident(http, base, id=alice, auth=auth)
        assert (welcome["t"], welcome["id"]) == ("ident", alice)
        # The token is alice's alone.
        bob, _ = await srv.add_user("bob")
        assert (await ws_ident(http, base, id=bob, auth=auth))["code"] == "auth-failed"
        # `bridgehost token list/revoke` work while the server runs, on the same data dir.
        config = tmp_path / "bridgehost.yaml"
        config.write_text(
            yaml.safe_dump({"server": {"domain": srv.domain, "data_dir": str(tmp_path / "data")}})
        )
        assert await asyncio.to_thread(cli.main, ["token", "list", "alice", "-c", str(config)]) == 0
        assert srv.app.server is not None
        (issued,) = await srv.app.server.auth.user_tokens(alice)
        assert (issued.user, issued.label) == (alice, "laptop")
        assert token not in repr(issued)
        assert (
            await asyncio.to_thread(cli.main, ["token", "revoke", issued.id, "-c", str(config)])
            == 0
        )
        assert (
            await asyncio.to_thread(cli.main, ["token", "revoke", issued.id, "-c", str(config)])
            == 1
        )
        refused = await ws_ident(http, base, id=alice, auth=auth)
        assert refused["code"] == "auth-failed"


async def test_logout_revokes(tmp_path: Path) -> None:
    async with web_app(tmp_path) as (srv, base), aiohttp.ClientSession() as http:
        alice, password = await srv.add_user("alice")
        _, answer = await post(
            http, f"{base}/chat/api/login", {"user": alice, "password": password}
        )
        status, _ = await post(http, f"{base}/chat/api/logout", {"token": answer["token"]})
        assert status == 204
        auth = {"method": "token", "secret": answer["token"]}
        assert (await ws_ident(http, base, id=alice, auth=auth))["code"] == "auth-failed"
        assert srv.app.server is not None
        assert await srv.app.server.auth.user_tokens() == []


async def test_wrong_logins_look_alike_and_share_the_ident_allowance(tmp_path: Path) -> None:
    async with web_app(tmp_path) as (srv, base), aiohttp.ClientSession() as http:
        alice, password = await srv.add_user("alice")
        url = f"{base}/chat/api/login"
        wrong_password = await post(http, url, {"user": alice, "password": "nope"})
        unknown_user = await post(http, url, {"user": "nobody", "password": "nope"})
        not_a_user = await post(http, url, {"user": "#chan@test.example", "password": "x"})
        assert wrong_password == unknown_user == not_a_user
        assert wrong_password == (401, {"error": "wrong user or password"})
        for _ in range(2):
            await post(http, url, {"user": alice, "password": "nope"})
        # Five failures used up the allowance; ident over WebSocket shares it.
        assert (await ws_ident(http, base, id=alice, auth={"method": "password", "secret": "x"}))[
            "code"
        ] == "rate-limited"
        status, answer = await post(http, url, {"user": alice, "password": password})
        assert status == 429 and answer["retry_after"] > 0
        assert "try again" in answer["error"]


async def test_bad_requests(tmp_path: Path) -> None:
    async with web_app(tmp_path) as (srv, base), aiohttp.ClientSession() as http:
        url = f"{base}/chat/api/login"
        alice, password = await srv.add_user("alice")
        status, _ = await post(
            http,
            url,
            {"user": alice, "password": password},
            headers={"Origin": "https://evil.example"},
        )
        assert status == 403, "another site's page cannot log a visitor in"
        async with http.post(url, data=f"user={alice}&password={password}") as r:
            assert r.status == 415
        async with http.post(url, data="{", headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
        for body in (
            [],
            {"user": alice},
            {"user": alice, "password": 5},
            {"user": "", "password": "x"},
        ):
            assert (await post(http, url, body))[0] == 400, body
        assert srv.app.server is not None
        assert await srv.app.server.auth.user_tokens() == []
