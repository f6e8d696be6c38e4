"""`GET /`: the status page a person reads, on a desk or a phone.

Every bridge with its links: state, queue depth, last error and when things
changed; then the plugin processes, with their restarts and last exit. Plain
HTML and one inline style sheet, no script and nothing loaded from elsewhere
(the Content-Security-Policy says so); it reloads itself every `http.refresh`
seconds. It shows no secret and no message content (nor a plugin's command
line, which may carry one).
"""

from __future__ import annotations

import datetime as dt
import html
import time
from collections.abc import Sequence

from aiohttp import web

from .. import __version__
from ..adapters.state import HEALTHY, LinkState
from .context import CONTEXT, PluginView, WebContext
from .health import problems

CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

STYLE = """
:root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e;
  --muted: #6e7781; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 1rem; max-width: 60rem; }
h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; word-break: break-all; }
.meta, .muted { color: var(--muted); }
.health { padding: .6rem .8rem; border-radius: .4rem; margin: .8rem 0; font-weight: 600; }
.health.ok { background: color-mix(in srgb, var(--ok) 15%, transparent); }
.health.bad { background: color-mix(in srgb, var(--bad) 15%, transparent); }
.health ul { margin: .3rem 0 0; padding-left: 1.2rem; font-weight: normal; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th:nth-child(1) { width: 19%; } th:nth-child(2) { width: 10%; } th:nth-child(3) { width: 17%; }
th:nth-child(4), th:nth-child(5), th:nth-child(6) { width: 9%; }
td { overflow-wrap: anywhere; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-size: .8rem; text-transform: uppercase; color: var(--muted); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; white-space: nowrap; }
.state.ok { color: var(--ok); } .state.warn { color: var(--warn); }
.state.bad { color: var(--bad); }
.error { color: var(--bad); overflow-wrap: anywhere; }
@media (max-width: 40rem) {
  thead { display: none; }
  table, tbody, tr, td { display: block; width: 100%; }
  tr { border: 1px solid var(--line); border-radius: .4rem; margin: 0 0 .7rem; padding: .3rem; }
  td { border: 0; padding: .15rem .4rem; }
  td.num { text-align: left; }
  td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _when(stamp: float | None, now: float) -> str:
    if not stamp:
        return ""
    utc = dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<time datetime="{_e(utc)}" title="{_e(utc)}">{_e(_ago(now - stamp))}</time>'


NONE = '<span class="muted">none</span>'


def _state(
    state: str,
    *,
    ok: bool,
    failing_since: float | None,
    since: float,
    now: float,
    limit: float,
    failed: bool = False,
    failing: str = "failing",
) -> str:
    """A state, coloured: ok; bad once failing for `limit` s (or `failed`); else warn.
    A failing one says since when (its state may flip meanwhile), else since when it is so."""
    if ok:
        cls = "ok"
    elif failed or (failing_since is not None and now - failing_since >= limit):
        cls = "bad"
    else:
        cls = "warn"
    if failing_since is not None:
        age = f"({failing} since {_when(failing_since, now)})"
    else:
        age = _when(since, now)
    return f'<span class="state {cls}">{_e(state)}</span> {age}'


def _error(text: str | None, when: float | None, now: float) -> str:
    if not text:
        return NONE
    return f'<span class="error">{_e(text)}</span> {_when(when, now)}'


def _row(cells: Sequence[tuple[str, str]], numeric: Sequence[str]) -> str:
    tds = "".join(
        f'<td data-label="{label}"{" class=num" if label in numeric else ""}>{value}</td>'
        for label, value in cells
    )
    return f"<tr>{tds}</tr>"


def _table(label: str, title: str, heads: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th>{h}</th>" for h in heads)
    return (
        f'<section aria-label="{_e(label)}"><h2>{title}</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</section>"
    )


LINK_HEADS = ("Link", "Direction", "State", "Queued", "Dropped", "In / out", "Last error")


def _link_row(ctx: WebContext, link: LinkState, now: float) -> str:
    account = ctx.config.accounts.get(link.account)
    kind = account.type if account is not None else "?"
    state = _state(
        link.state,
        ok=link.state in HEALTHY,
        failing_since=link.failing_since,
        since=link.since,
        now=now,
        limit=ctx.http.unhealthy_after,
    )
    cells = [
        ("Link", f"{_e(kind)} <b>{_e(link.account)}</b> {_e(link.target)}"),
        ("Direction", _e(link.direction)),
        ("State", state),
        ("Queued", _e(link.queued)),
        ("Dropped", _e(link.dropped)),
        ("In / out", f"{_e(link.relayed_in)} / {_e(link.relayed_out)}"),
        ("Last error", _error(link.last_error, link.last_error_time, now)),
    ]
    return _row(cells, numeric=("Queued", "Dropped"))


def _bridges(ctx: WebContext, links: Sequence[LinkState], now: float) -> str:
    by_key = {(lk.account, lk.target, lk.channel): lk for lk in links}
    parts = []
    for bridge in ctx.config.bridges:
        rows = []
        for cfg in bridge.links:
            link = by_key.get((cfg.account, cfg.target, bridge.channel))
            if link is not None:
                rows.append(_link_row(ctx, link, now))
            else:
                rows.append(
                    f'<tr><td data-label="Link">{_e(cfg.account)} {_e(cfg.target)}</td>'
                    f'<td colspan="{len(LINK_HEADS) - 1}" class="muted">not running</td></tr>'
                )
        title = f' <span class="muted">{_e(bridge.title)}</span>' if bridge.title else ""
        parts.append(_table(bridge.channel, f"{_e(bridge.channel)}{title}", LINK_HEADS, rows))
    if not parts:
        parts.append('<p class="muted">No bridges are configured.</p>')
    return "".join(parts)


def _plugin_row(plugin: PluginView, now: float, limit: float) -> str:
    state = _state(
        plugin.state,
        ok=plugin.state == "running",
        failing_since=plugin.failing_since,
        since=plugin.since,
        now=now,
        limit=limit,
        failed=plugin.state == "failed",
        failing="down",
    )
    cells = [
        ("Plugin", f"{_e(plugin.kind)} <b>{_e(plugin.name)}</b> {_e(plugin.id)}"),
        ("PID", _e(plugin.pid) if plugin.pid is not None else NONE),
        ("State", state),
        ("Restarts", _e(plugin.restarts)),
        ("Last exit", _e(plugin.last_exit or "")),
        ("Last error", _error(plugin.last_error, plugin.last_error_time, now)),
    ]
    return _row(cells, numeric=("Restarts",))


def _plugins(ctx: WebContext, now: float) -> str:
    """Plugin processes (`process: true`, `type: exec`, `command:` bots), when any."""
    rows = [_plugin_row(p, now, ctx.http.unhealthy_after) for p in ctx.plugins()]
    if not rows:
        return ""
    heads = ("Plugin", "PID", "State", "Restarts", "Last exit", "Last error")
    return _table("Plugin processes", "Plugin processes", heads, rows)


def render(ctx: WebContext, now: float) -> str:
    links = list(ctx.links())
    found = problems(ctx, now)
    if found:
        items = "".join(f"<li>{_e(p)}</li>" for p in found)
        health = f'<div class="health bad" role="status">Unhealthy<ul>{items}</ul></div>'
    else:
        health = '<div class="health ok" role="status">Healthy</div>'
    server = ctx.server
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    summary = (
        f"{_e(ctx.config.server.domain)} · bridgehost {_e(__version__)} · "
        f"{len(server.connections)} connection(s) · {server.hub.published} event(s) published"
        f" since start · updated {_e(stamp)}, every {ctx.http.refresh} s"
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{ctx.http.refresh}">'
        '<meta name="robots" content="noindex">'
        f"<title>bridgehost status · {_e(ctx.config.server.domain)}</title>"
        f"<style>{STYLE}</style></head><body><main>"
        f'<h1>bridgehost status</h1><p class="meta">{summary}</p>{health}'
        f"{_bridges(ctx, links, now)}{_plugins(ctx, now)}</main></body></html>\n"
    )


async def status_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    return web.Response(
        text=render(ctx, time.time()),
        content_type="text/html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )


def setup(app: web.Application, ctx: WebContext) -> None:
    app.router.add_get("/", status_page)
