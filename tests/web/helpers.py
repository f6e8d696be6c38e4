"""Helpers for tests of the HTTP side: an app with `http:` on a free port, a client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from bridgehost.testing import Running, running


def with_http(overrides: Mapping[str, Any] | None = None, **http: Any) -> dict[str, Any]:
    raw: dict[str, Any] = dict(overrides or {})
    raw["http"] = {"listen": "127.0.0.1:0", **http}
    return raw


@contextlib.asynccontextmanager
async def web_app(
    tmp_path: Path, overrides: Mapping[str, Any] | None = None, **http: Any
) -> AsyncIterator[tuple[Running, str]]:
    """A running bridgehost with its HTTP side; yields (srv, base URL)."""
    async with running(tmp_path, with_http(overrides, **http)) as srv:
        assert srv.app.web is not None
        yield srv, srv.app.web.url


async def get(url: str, **kwargs: Any) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as resp:
        return resp.status, await resp.text(errors="replace"), resp.headers
