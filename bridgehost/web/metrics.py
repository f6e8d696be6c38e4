"""`GET /metrics`: Prometheus text format from live state, read at scrape time.

Nothing here counts: the server, store and adapters keep plain integers and
runtime histograms, and a custom collector turns them into metric families
when Prometheus asks. Each app has its own `CollectorRegistry` (tests run
several apps in one process); counters start at 0 with the process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..adapters.state import STATES, LinkState
from ..runtime import Histogram, HistogramSnapshot
from .context import CONTEXT, WebContext

PLUGIN_STATES = ("starting", "running", "restarting", "failed", "stopped")
LINK_LABELS = ("account", "target", "channel", "direction")


def _buckets(snap: HistogramSnapshot) -> list[tuple[str, float]]:
    out = [(str(bound), float(n)) for bound, n in zip(snap.bounds, snap.counts, strict=False)]
    out.append(("+Inf", float(snap.count)))
    return out


def _histogram(name: str, doc: str, labels: Sequence[str] = ()) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=list(labels))


def _add(family: HistogramMetricFamily, labels: Sequence[str], hist: Histogram) -> None:
    snap = hist.snapshot()
    family.add_metric(list(labels), _buckets(snap), snap.sum)


def connection_kinds(ctx: WebContext) -> dict[str, int]:
    kinds = {"user": 0, "guest": 0, "reserved": 0, "unidentified": 0}
    for conn in list(ctx.server.connections):
        session = conn.session
        if not session.open:
            kinds["unidentified"] += 1
        elif session.reserved:
            kinds["reserved"] += 1
        elif session.guest:
            kinds["guest"] += 1
        else:
            kinds["user"] += 1
    return kinds


def _counter(name: str, doc: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value))


class BridgehostCollector(Collector):
    """Reads the server, the store and every link at scrape time."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        yield from self._server()
        yield from self._links(list(self.ctx.links()))
        yield from self._plugins()

    def _server(self) -> Iterator[Metric]:
        server = self.ctx.server
        hub = server.hub
        counters = server.shared.counters
        conns = GaugeMetricFamily(
            "bridgehost_connections",
            "Open Scalar connections by kind (in-process adapters and bots are reserved)",
            labels=["kind"],
        )
        for kind, n in connection_kinds(self.ctx).items():
            conns.add_metric([kind], n)
        yield conns
        yield GaugeMetricFamily(
            "bridgehost_channels", "Channels the hub knows", value=hub.list_topics(None, 0, 1)[0]
        )
        yield _counter("bridgehost_events_published", "Events published", hub.published)
        yield _counter(
            "bridgehost_events_delivered", "Event copies delivered to subscribers", hub.delivered
        )
        yield _counter(
            "bridgehost_slow_consumer_kicks",
            "Connections closed because they did not read their output",
            server.slow_consumers,
        )
        yield _counter(
            "bridgehost_failed_idents",
            "ident requests refused (wrong secret, unknown user, ...)",
            counters.failed_idents,
        )
        yield _counter(
            "bridgehost_rate_limited_requests",
            "Requests answered rate-limited",
            counters.rate_limited,
        )
        commit = _histogram(
            "bridgehost_commit_latency_seconds", "Time to commit a batch of events to the store"
        )
        _add(commit, [], self.ctx.store.commit_latency)
        yield commit

    def _links(self, links: list[LinkState]) -> Iterator[Metric]:
        labels = list(LINK_LABELS)
        state = GaugeMetricFamily(
            "bridgehost_link_state",
            "1 for the state each link is in, 0 for the others",
            labels=[*labels, "state"],
        )
        failing = GaugeMetricFamily(
            "bridgehost_link_failing_seconds",
            "How long a link has been failing (0 when it is fine)",
            labels=labels,
        )
        queued = GaugeMetricFamily(
            "bridgehost_link_queued", "Events waiting to be sent to the remote side", labels=labels
        )
        dropped = CounterMetricFamily(
            "bridgehost_link_dropped", "Events dropped: the link's queue was full", labels=labels
        )
        relayed_in = CounterMetricFamily(
            "bridgehost_link_relayed_in", "Messages relayed remote -> Scalar", labels=labels
        )
        relayed_out = CounterMetricFamily(
            "bridgehost_link_relayed_out", "Messages relayed Scalar -> remote", labels=labels
        )
        last_error = GaugeMetricFamily(
            "bridgehost_link_last_error_timestamp_seconds",
            "Unix time of a link's last error (0: none since start)",
            labels=labels,
        )
        latency_in = _histogram(
            "bridgehost_link_latency_in_seconds",
            "Remote receive -> Scalar commit, per link",
            labels,
        )
        latency_out = _histogram(
            "bridgehost_link_latency_out_seconds",
            "Scalar commit -> remote send, per link",
            labels,
        )
        now = self._now()
        for link in links:
            values = [link.account, link.target, link.channel, link.direction]
            for name in STATES:
                state.add_metric([*values, name], 1 if name == link.state else 0)
            since = link.failing_since
            failing.add_metric(values, max(0.0, now - since) if since is not None else 0.0)
            queued.add_metric(values, link.queued)
            dropped.add_metric(values, link.dropped)
            relayed_in.add_metric(values, link.relayed_in)
            relayed_out.add_metric(values, link.relayed_out)
            last_error.add_metric(values, link.last_error_time or 0.0)
            _add(latency_in, values, link.latency_in)
            _add(latency_out, values, link.latency_out)
        yield from (state, failing, queued, dropped, relayed_in, relayed_out, last_error)
        yield from (latency_in, latency_out)

    def _plugins(self) -> Iterator[Metric]:
        labels = ["plugin", "kind"]
        state = GaugeMetricFamily(
            "bridgehost_plugin_state",
            "1 for the state each plugin process is in (failed: left stopped after crashing)",
            labels=[*labels, "state"],
        )
        restarts = CounterMetricFamily(
            "bridgehost_plugin_restarts", "Times a plugin process was started again", labels=labels
        )
        failing = GaugeMetricFamily(
            "bridgehost_plugin_failing_seconds",
            "How long a plugin process has not been running (0 while it runs)",
            labels=labels,
        )
        now = self._now()
        for plugin in self.ctx.plugins():
            values = [plugin.name, plugin.kind]
            for name in PLUGIN_STATES:
                state.add_metric([*values, name], 1 if plugin.state == name else 0)
            restarts.add_metric(values, plugin.restarts)
            since = plugin.failing_since
            failing.add_metric(values, max(0.0, now - since) if since is not None else 0.0)
        yield from (state, restarts, failing)

    def _now(self) -> float:
        return self.ctx.clock.now_ms() / 1000


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = generate_latest(ctx.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application, ctx: WebContext) -> None:
    ctx.registry.register(BridgehostCollector(ctx))
    ProcessCollector(registry=ctx.registry)
    app.router.add_get("/metrics", metrics)
