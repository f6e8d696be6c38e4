"""The HTTP listener: config, start and stop with the app, errors a client may see."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from bridgehost.app import App
from bridgehost.config import ConfigError, find_config, parse_config
from bridgehost.testing import make_config
from bridgehost.web.context import WebContext
from bridgehost.web.server import MODULES, ListenError, WebServer
from tests.servers.ircd import free_port
from tests.web.helpers import get, web_app


def test_embedded_default_listens_on_7668(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = find_config(None)
    assert config.embedded
    assert config.http is not None
    assert (config.http.host, config.http.port) == ("127.0.0.1", 7668)


def test_config_without_http_has_none(tmp_path: Path) -> None:
    assert parse_config({}, base=tmp_path).http is None
    empty = parse_config({"http": None}, base=tmp_path).http
    assert empty is not None
    assert empty.port == 7668
    assert empty.unhealthy_after == 300
    assert empty.media_max_bytes == 50 * 1024 * 1024


def test_bad_http_config_names_every_problem(tmp_path: Path) -> None:
    raw = {
        "http": {
            "listen": "localhost",
            "public_url": "ftp://x",
            "unhealthy_after": 0,
            "colour": "red",
        }
    }
    with pytest.raises(ConfigError) as err:
        parse_config(raw, base=tmp_path)
    text = str(err.value)
    assert "http.listen: must be HOST:PORT" in text
    assert "http.public_url: must be an http:// or https:// URL" in text
    assert "http.unhealthy_after: must be at least" in text
    assert "http.colour: unknown key" in text


def test_ipv6_listen_and_public_url_without_slash(tmp_path: Path) -> None:
    http = parse_config(
        {"http": {"listen": "[::1]:8080", "public_url": "https://chat.example.com/"}},
        base=tmp_path,
    ).http
    assert http is not None
    assert (http.host, http.port, http.listen) == ("::1", 8080, "[::1]:8080")
    assert http.public_url == "https://chat.example.com"


async def test_starts_and_stops_with_the_app(tmp_path: Path) -> None:
    async with web_app(tmp_path) as (srv, url):
        status, body, _ = await get(url + "/healthz")
        assert (status, body) == (200, "ok\n")
        status, body, _ = await get(url + "/no/such/page")
        assert status == 404
        assert "Traceback" not in body
    with pytest.raises(OSError):
        socket.create_connection((srv.app.web.ctx.http.host, int(url.rsplit(":", 1)[1])), 1)


async def test_status_is_the_json_bridgehost_status_prints(tmp_path: Path) -> None:
    async with web_app(tmp_path) as (srv, url):
        status, body, headers = await get(url + "/status")
        assert status == 200
        assert headers["Content-Type"].startswith("application/json")
        data = json.loads(body)
        assert data["listening"] == srv.app.urls
        assert data["http"] == url
        assert data["links"] == []


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


async def test_port_in_use_is_a_clear_error_and_nothing_stays_open(tmp_path: Path) -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        scalar_port = free_port()
        config = make_config(
            tmp_path,
            {
                "server": {"listen": [f"tcp://127.0.0.1:{scalar_port}"]},
                "http": {"listen": f"127.0.0.1:{port}"},
            },
        )
        with pytest.raises(ListenError) as err:
            async with App.open(config):
                pass
        assert str(err.value) == (
            f"http.listen 127.0.0.1:{port}: cannot listen: address already in use"
        )
        # the Scalar listener opened before it was closed again
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", scalar_port)


def test_port_in_use_from_the_command_line(tmp_path: Path) -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        (tmp_path / "bridgehost.yaml").write_text(
            json.dumps(
                {
                    "server": {
                        "domain": "test.example",
                        "listen": ["tcp://127.0.0.1:0"],
                        "data_dir": str(tmp_path / "data"),
                    },
                    "http": {"listen": f"127.0.0.1:{port}"},
                }
            )
        )
        proc = subprocess.run(
            [sys.executable, "-m", "bridgehost", "run", "-c", str(tmp_path / "bridgehost.yaml")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1
    assert f"cannot start: http.listen 127.0.0.1:{port}: cannot listen: address already in use" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr


async def _fail(request: web.Request) -> web.Response:
    raise RuntimeError("a bug with a secret in its message")


def setup(app: web.Application, ctx: WebContext) -> None:
    app.router.add_get("/broken", _fail)


async def test_a_failing_handler_is_a_plain_500_without_traceback(tmp_path: Path) -> None:
    async with web_app(tmp_path) as (srv, _):
        web_server = WebServer(srv.app.web.ctx, modules=(*MODULES, __name__))
        async with web_server:
            status, body, _ = await get(web_server.url + "/broken")
            assert (status, body) == (500, "internal error (logged)\n")
            assert (await get(web_server.url + "/healthz"))[0] == 200
