"""`/chat`: the browser client, served from the files built into the package.

The files are read once at start-up (they are part of the installed
package, `bridgehost/web/static/chat`, built from `web/client`). Hashed
names (`app-XXXX.js`) never change content, so browsers may keep them for a
year; `index.html` is revalidated on every load so a new version is picked
up at once. Every answer carries a strict Content-Security-Policy: scripts
and styles only from this origin, no inline script, connections only back
to this origin (the `/scalar` WebSocket and the login API).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from .context import CONTEXT, WebContext

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HASHED = re.compile(r"^[a-z]+-[A-Z0-9]{8}\.(js|css)$")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    cache: str


def load_assets() -> dict[str, Asset]:
    """Every file of the built client by name; `index.html` also under ''."""
    root = resources.files("bridgehost.web").joinpath("static", "chat")
    assets: dict[str, Asset] = {}
    for entry in root.iterdir():
        if not entry.is_file():
            continue
        name = entry.name
        body = entry.read_bytes()
        suffix = name[name.rfind(".") :]
        content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "text/plain"
        if _HASHED.match(name):
            cache = "public, max-age=31536000, immutable"
        elif name == "index.html":
            cache = "no-cache"
        else:
            cache = "public, max-age=3600"
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body, content_type, etag, cache)
    if "index.html" not in assets:
        raise RuntimeError(f"the chat client is not built: no index.html in {root}")
    assets[""] = assets["index.html"]
    return assets


def security_headers(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return response


def _serve(assets: dict[str, Asset]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        asset = assets.get(request.match_info.get("name", ""))
        if asset is None:
            raise web.HTTPNotFound(text="no such file\n")
        headers = {"ETag": asset.etag, "Cache-Control": asset.cache}
        if asset.etag in request.headers.get("If-None-Match", ""):
            return security_headers(web.Response(status=304, headers=headers))
        charset = "utf-8" if asset.content_type.startswith(("text/", "image/svg")) else None
        response = web.Response(
            body=asset.body, content_type=asset.content_type, charset=charset, headers=headers
        )
        return security_headers(response)

    return serve


async def info(request: web.Request) -> web.Response:
    """What the login page needs to know before anyone logs in."""
    ctx: WebContext = request.app[CONTEXT]
    settings = ctx.server.settings
    response = web.json_response(
        {"domain": settings.domain, "guests": settings.guests},
        headers={"Cache-Control": "no-store"},
    )
    security_headers(response)
    return response


async def _to_slash(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect("/chat/")


def setup(app: web.Application, ctx: WebContext) -> None:
    serve = _serve(load_assets())
    app.router.add_get("/chat", _to_slash)
    app.router.add_get("/chat/api/info", info)
    app.router.add_get("/chat/", serve)
    app.router.add_get(r"/chat/{name:[A-Za-z0-9._-]+}", serve)
