"""`GET /healthz` for load balancers and probes, `GET /status` for `bridgehost status`.

Healthy means: the store answers, every Scalar listener is serving, and no
link has been failing for longer than `http.unhealthy_after`. A link that
fails for a moment (a reconnect) does not flip the answer; one that stays
down does, with the reason, and it flips back once the link is up again.
Plugin processes count the same way (restarting for too long), and one left
stopped after crashing again and again is unhealthy at once: it will not
come back by itself.
"""

from __future__ import annotations

import json
import time

from aiohttp import web

from ..runtime import wait_for
from .context import CONTEXT, WebContext

STORE_TIMEOUT = 2.0


def problems(ctx: WebContext, now: float) -> list[str]:
    """What is wrong, one line each (empty: healthy). The store is checked separately."""
    found = []
    listeners = ctx.server.listeners
    if not listeners or not all(srv.is_serving() for srv in listeners):
        found.append("Scalar listeners are not serving")
    for link in ctx.links():
        since = link.failing_since
        if since is None or now - since < ctx.http.unhealthy_after:
            continue
        why = f": {link.last_error}" if link.last_error else ""
        found.append(
            f"link {link.account}/{link.target} <-> {link.channel} {link.state}"
            f" for {now - since:.0f} s{why}"
        )
    for plugin in ctx.plugins():
        since = plugin.failing_since
        stopped = plugin.state == "failed"
        if since is None or (not stopped and now - since < ctx.http.unhealthy_after):
            continue
        what = "left stopped" if stopped else f"{plugin.state} for {now - since:.0f} s"
        why = f": {plugin.last_error}" if plugin.last_error else ""
        found.append(f"{plugin.kind} {plugin.name} {what}{why}")
    return found


async def _store_problem(ctx: WebContext) -> str | None:
    try:
        await wait_for(ctx.store.kv_get("web", "health"), STORE_TIMEOUT)
    except Exception as exc:
        return f"store does not answer: {type(exc).__name__}"
    return None


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    found = problems(ctx, time.time())
    store = await _store_problem(ctx)
    if store:
        found.insert(0, store)
    headers = {"Cache-Control": "no-store"}
    if found:
        return web.Response(status=503, text="\n".join(found) + "\n", headers=headers)
    return web.Response(text="ok\n", headers=headers)


async def status(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = json.dumps(ctx.status(), indent=1, default=str)
    return web.Response(
        text=body + "\n", content_type="application/json", headers={"Cache-Control": "no-store"}
    )


def setup(app: web.Application, ctx: WebContext) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
