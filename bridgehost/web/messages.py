"""`GET /m/<event id hex>`: one event of a bridged channel, in full.

The IRC adapter cuts a long message after `max_lines` and links here, so the
rest is one click away. The page shows the latest edit of the event (§11);
a deleted event is gone here too. Only events of channels that have a bridge are
served: those are already public on the remote network. Anything else (a DM,
an unbridged channel, an id we never stored) is the same 404, so the page
tells nobody whether an id exists. Markdown is rendered and sanitised (nh3);
everything else is shown as the text it is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import logging
import re

from aiohttp import web

from ..adapters.matrix.render import markdown_to_html
from ..scalar.events import Event
from ..scalar.wire import decode_body
from .context import CONTEXT, WebContext

log = logging.getLogger(__name__)

CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")

STYLE = """
:root { color-scheme: light dark; --muted: #6e7781; }
body { font: 16px/1.5 system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 46rem; }
header { color: var(--muted); margin-bottom: 1rem; overflow-wrap: anywhere; }
header b { color: CanvasText; }
.body { overflow-wrap: anywhere; }
.plain { white-space: pre-wrap; }
pre { overflow-x: auto; }
"""


def _decode(data: bytes) -> Event | None:
    try:
        return Event.from_map(decode_body(data))
    except Exception:
        log.warning("a stored event does not decode (%d bytes)", len(data))
        return None


async def lookup(ctx: WebContext, event_id: bytes) -> tuple[Event, bool] | None:
    """(the event as it reads now, whether it was edited), for an event of a bridged
    channel; None when there is none or it was deleted (§11: withdrawn)."""
    for channel in dict.fromkeys(b.channel for b in ctx.config.bridges):
        data = await ctx.store.event_by_id(channel, event_id)
        if data is None:
            continue
        event = _decode(data)
        if event is None:
            return None
        edited = False
        for later_data in await ctx.store.events_naming(channel, event_id, event.seq):
            later = _decode(later_data)
            if later is None or later.target != event_id or later.sender != event.sender:
                continue
            if later.kind == "delete":
                return None
            if later.kind == "edit":
                event = dataclasses.replace(event, body=later.body, ctype=later.ctype)
                edited = True
        return event, edited
    return None


def render(event: Event, *, edited: bool = False) -> str:
    who = html.escape(event.nick or event.sender)
    where = html.escape(event.topic)
    origin = f" via {html.escape(event.origin.split('/', 1)[0])}" if event.origin else ""
    stamp = dt.datetime.fromtimestamp(event.time / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if event.ctype == "text/markdown":
        body = f'<div class="body">{markdown_to_html(event.body)}</div>'
    else:
        body = f'<div class="body plain">{html.escape(event.body)}</div>'
    action = " (action)" if event.kind == "action" else ""
    action += " (edited)" if edited else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{who} in {where}</title><style>{STYLE}</style></head><body>"
        f"<article><header><b>{who}</b>{origin} in {where}{action}, "
        f'<time datetime="{stamp}">{stamp}</time></header>{body}</article></body></html>\n'
    )


async def message(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    hex_id = request.match_info["id"]
    if not _HEX_ID.fullmatch(hex_id):
        raise web.HTTPNotFound(text="no such message\n")
    found = await lookup(ctx, bytes.fromhex(hex_id))
    if found is None:
        raise web.HTTPNotFound(text="no such message\n")
    event, edited = found
    return web.Response(
        text=render(event, edited=edited),
        content_type="text/html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "max-age=60"},
    )


def setup(app: web.Application, ctx: WebContext) -> None:
    app.router.add_get("/m/{id}", message)
