"""/chat serves the built client from the package: types, caching, a strict CSP."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from bridgehost.web.chat import load_assets
from tests.web.helpers import web_app


async def test_chat_files(tmp_path: Path) -> None:
    async with web_app(tmp_path) as (_, base), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/chat", allow_redirects=False) as r:
            assert r.status == 308 and r.headers["Location"] == "/chat/"
        async with http.get(f"{base}/chat/") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/html; charset=utf-8"
            assert r.headers["Cache-Control"] == "no-cache"
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "connect-src 'self'" in csp
            assert "unsafe-inline" not in csp and "default-src 'none'" in csp
            assert r.headers["X-Frame-Options"] == "DENY"
            page = await r.text()
            etag = r.headers["ETag"]
        async with http.get(f"{base}/chat/", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
        script = re.search(r'src="(app-[A-Z0-9]+\.js)"', page)
        style = re.search(r'href="(style-[A-Z0-9]+\.css)"', page)
        assert script and style
        for name, ctype in ((script[1], "text/javascript"), (style[1], "text/css")):
            async with http.get(f"{base}/chat/{name}") as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == f"{ctype}; charset=utf-8"
                assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                assert len(await r.read()) > 1000
        async with http.get(f"{base}/chat/icon.svg") as r:
            assert r.headers["Content-Type"].startswith("image/svg+xml")
        for bad in ("nope.js", "..%2Fserver.py", "%2e%2e/%2e%2e/pyproject.toml"):
            async with http.get(f"{base}/chat/{bad}") as r:
                assert r.status == 404, bad
        async with http.get(f"{base}/chat/api/info") as r:
            assert await r.json() == {"domain": "test.example", "guests": True}


def test_every_built_file_is_loaded() -> None:
    assets = load_assets()
    assert {"index.html", "icon.svg", "licenses.txt"} <= set(assets)
    assert any(n.endswith(".js") for n in assets) and any(n.endswith(".css") for n in assets)
