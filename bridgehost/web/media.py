"""`GET /media/<server>/<media id>/<filename>?sig=…`: Matrix media for people without Matrix.

Only links bridgehost signed are served (see `links`), so this is no open
proxy. The file is fetched from the homeserver with a bridged account's own
token through the authenticated media endpoint (MSC3916,
`/_matrix/client/v1/media/download`), falling back to the legacy
`/_matrix/media/v3/download` for homeservers that do not know it; it is
streamed to the client with its content type, refused past
`http.media_max_bytes`, and kept in a bounded disk cache.

Anything that is not a browser-safe type is sent as an attachment, and every
answer carries a sandboxing CSP: a file uploaded to Matrix never runs as a
page of this origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import aiohttp
from aiohttp import web

from .context import CONTEXT, WebContext
from .links import media_path, valid_media
from .mediacache import MediaCache, cache_key

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=30)
CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"
)
INLINE = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "audio/mp4",
        "audio/flac",
        "text/plain",
        "application/pdf",
    }
)
CLIENT = web.AppKey("media-client", aiohttp.ClientSession)
CACHE = web.AppKey("media-cache", MediaCache)


class Upstream(Exception):
    """The homeserver could not give us the file; `status` is what the client gets."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _error(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers={"Cache-Control": "no-store"})


def _headers(content_type: str, filename: str, size: int | None) -> dict[str, str]:
    base = content_type.split(";", 1)[0].strip().lower()
    disposition = "inline" if base in INLINE else "attachment"
    headers = {
        "Content-Type": content_type if base in INLINE else (base or "application/octet-stream"),
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename, safe='')}",
        "Content-Security-Policy": CSP,
        "Cache-Control": "private, max-age=86400",
    }
    if base == "text/plain":
        headers["Content-Type"] = "text/plain; charset=utf-8"
    if size is not None:
        headers["Content-Length"] = str(size)
    return headers


async def _open(
    ctx: WebContext, client: aiohttp.ClientSession, server: str, media_id: str
) -> aiohttp.ClientResponse:
    """A streaming response for the file from the first account that can get it."""
    sources = [c for s in ctx.media_sources() if (c := s.media_credentials()) is not None]
    if not sources:
        raise Upstream(502, "no Matrix account is logged in to fetch media with")
    last: Upstream | None = None
    sid, mid = quote(server, safe=""), quote(media_id, safe="")
    for homeserver, token in sources:
        base = homeserver.rstrip("/")
        for url in (
            f"{base}/_matrix/client/v1/media/download/{sid}/{mid}",
            f"{base}/_matrix/media/v3/download/{sid}/{mid}",
        ):
            try:
                resp = await client.get(
                    url,
                    headers={"Authorization": f"Bearer {token}"},
                    params={"allow_redirect": "true"},
                )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last = Upstream(502, f"homeserver {base} unreachable: {type(exc).__name__}")
                break
            if resp.status == 200:
                return resp
            errcode = await _errcode(resp)
            resp.release()
            if resp.status in (404, 405) and errcode in (None, "M_UNRECOGNIZED"):
                last = Upstream(502, f"homeserver {base} has no media endpoint ({resp.status})")
                continue  # an older homeserver: try the legacy endpoint
            if errcode == "M_NOT_FOUND":
                last = Upstream(404, "no such media on the homeserver")
            elif errcode == "M_TOO_LARGE":
                last = Upstream(413, "the file is larger than the homeserver serves")
            else:
                last = Upstream(502, f"homeserver {base} answered {resp.status} {errcode or ''}")
            break
    assert last is not None
    raise last


async def _errcode(resp: aiohttp.ClientResponse) -> str | None:
    try:
        data = await resp.json(content_type=None)
    except (TimeoutError, ValueError, aiohttp.ClientError):
        return None
    code = data.get("errcode") if isinstance(data, dict) else None
    return code if isinstance(code, str) else None


async def media(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    server = request.match_info["server"]
    media_id = request.match_info["media_id"]
    filename = request.match_info["filename"]
    if ctx.public is None:
        return _error(404, "media links are off (http.public_url is not set)")
    sig = request.query.get("sig", "")
    if not sig or not ctx.public.verify(media_path(server, media_id, filename), sig):
        return _error(403, "this link is not signed by this bridgehost")
    if not valid_media(server, media_id):
        return _error(404, "not a Matrix media id")
    cache = request.app[CACHE]
    key = cache_key(server, media_id)
    cached = await cache.get(key)
    if cached is not None:
        return web.FileResponse(cached.path, headers=_headers(cached.content_type, filename, None))
    try:
        upstream = await _open(ctx, request.app[CLIENT], server, media_id)
    except Upstream as exc:
        log.info("media %s/%s: %s", server, media_id, exc.reason)
        return _error(exc.status, exc.reason)
    async with upstream:
        return await _relay(
            request, ctx=ctx, cache=cache, key=key, upstream=upstream, filename=filename
        )


async def _relay(
    request: web.Request,
    *,
    ctx: WebContext,
    cache: MediaCache,
    key: str,
    upstream: aiohttp.ClientResponse,
    filename: str,
) -> web.StreamResponse:
    limit = ctx.http.media_max_bytes
    size = upstream.content_length
    if size is not None and size > limit:
        return _error(413, f"the file is larger than this server relays ({limit} bytes)")
    ctype = upstream.headers.get("Content-Type", "application/octet-stream")
    response = web.StreamResponse(headers=_headers(ctype, filename, size))
    keep = cache.enabled and (size is None or size <= cache.limit)
    tmp = cache.new_file(key) if keep else None
    sink = await asyncio.to_thread(_open_sink, tmp) if tmp is not None else None
    sent = 0
    try:
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(CHUNK):
            sent += len(chunk)
            if sent > limit:
                log.warning("media %s: more than %d bytes; cut off", key[:12], limit)
                raise ConnectionAbortedError("media too large")
            if sink is not None:
                await asyncio.to_thread(sink.write, chunk)
            await response.write(chunk)
        await response.write_eof()
    except (ConnectionAbortedError, ConnectionResetError, aiohttp.ClientError) as exc:
        log.info("media %s: relay stopped: %s", key[:12], exc)
        if sink is not None:
            await asyncio.to_thread(_discard, sink, tmp)
            sink = None
        if request.transport is not None:
            request.transport.close()
        return response
    if sink is not None and tmp is not None:
        await asyncio.to_thread(sink.close)
        if sent <= cache.limit:
            await cache.put(key, tmp, ctype, sent)
        else:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
    return response


def _open_sink(path: Path | None) -> BinaryIO:
    assert path is not None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _discard(sink: BinaryIO, path: Path | None) -> None:
    with contextlib.suppress(OSError):
        sink.close()
    if path is not None:
        path.unlink(missing_ok=True)


async def _client(app: web.Application) -> AsyncIterator[None]:
    """One HTTP client per app for homeserver fetches, closed with the app."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as client:
        app[CLIENT] = client
        yield


def setup(app: web.Application, ctx: WebContext) -> None:
    app[CACHE] = MediaCache(ctx.config.server.data_dir, ctx.http.media_cache_bytes)
    app.cleanup_ctx.append(_client)
    app.router.add_get("/media/{server}/{media_id}/{filename}", media)
