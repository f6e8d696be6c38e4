"""How a plugin's links reach bridgehost's status, /metrics and /healthz.

A plugin sends `status` requests on its session (an extension of Scalar/1
served only on plugin sessions, docs/plugins.md): `links` is an array of
maps, one per link it reports, keyed by `target`. Counters and latency
histograms count from the plugin's start; the parent adds what earlier runs
of the plugin counted, so they never go back. CBOR has no floats here
(§1): times are ms since the epoch, latency sums µs.

The parent keeps one `LinkState` per configured link of the plugin (a
mirror); a report updates it, and while the plugin is not running the
parent itself says so in the link's state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..adapters.state import STATES, LinkState, State
from ..config import DIRECTIONS, Bridge, Link
from ..runtime import Histogram
from ..scalar.fields import Fields
from ..scalar.wire import CborMap

MAX_ERROR = 500
"""Characters of a reported `last_error` kept."""
MAX_COUNT = 2**62
MAX_EXTRA = 16
"""Links a plugin may report beyond its configured ones (an adapter's direct messages)."""


# --- plugin side ------------------------------------------------------------------------


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _histogram(h: Histogram) -> CborMap:
    snap = h.snapshot()
    counts = [b - a for a, b in zip((0, *snap.counts), snap.counts, strict=False)]
    return {"counts": counts, "sum_us": int(snap.sum * 1_000_000)}


def link_report(st: LinkState) -> CborMap:
    """One link's entry in a `status` request."""
    entry: CborMap = {
        "target": st.target,
        "channel": st.channel,
        "direction": st.direction,
        "state": st.state,
        "since": _ms(st.since),
        "queued": st.queued,
        "dropped": st.dropped,
        "relayed_in": st.relayed_in,
        "relayed_out": st.relayed_out,
        "latency_in": _histogram(st.latency_in),
        "latency_out": _histogram(st.latency_out),
    }
    if st.last_error is not None:
        entry["last_error"] = st.last_error[:MAX_ERROR]
        entry["last_error_time"] = _ms(st.last_error_time)
    if st.failing_since is not None:
        entry["failing_since"] = _ms(st.failing_since)
    return {k: v for k, v in entry.items() if v is not None}


# --- parent side ------------------------------------------------------------------------


def _count(f: Fields, key: str) -> int:
    value = f.uint(key)
    if value is None:
        return 0
    if value > MAX_COUNT:
        raise f.fail(f"{key} is too large")
    return int(value)


def _time(f: Fields, key: str) -> float | None:
    value = f.uint(key)
    return None if value is None else value / 1000


def _counts(f: Fields, key: str, buckets: int) -> tuple[list[int], float] | None:
    m = f.map(key)
    if m is None:
        return None
    inner = f.nested(m)
    counts = inner.array("counts", required=True)
    if len(counts) != buckets or not all(type(n) is int and 0 <= n <= MAX_COUNT for n in counts):
        raise f.fail(f"{key}.counts must be {buckets} unsigned integers (per bucket, +Inf last)")
    total = _count(inner, "sum_us") / 1_000_000
    return counts, total


@dataclass(slots=True)
class _Life:
    """What the current run of the plugin reported last (its counters start at 0)."""

    relayed_in: int = 0
    relayed_out: int = 0
    dropped: int = 0
    latency: dict[str, tuple[list[int], float]] = field(default_factory=dict)


class LinkMirror:
    """The parent's `LinkState` of each link a plugin serves, kept from its reports."""

    def __init__(self, account: str, links: Iterable[tuple[Bridge, Link]]) -> None:
        self.account = account
        self.states: dict[str, LinkState] = {}
        for bridge, link in links:
            self.states[link.target.lower()] = LinkState(
                account, link.target, bridge.channel, link.direction
            )
        self.configured = len(self.states)
        self._life: dict[str, _Life] = {}
        self.reported = False
        """Whether the running plugin has reported any link (else the process state shows)."""

    def statuses(self) -> list[LinkState]:
        return list(self.states.values())

    def new_life(self) -> None:
        """A new run of the plugin starts: its counters start from 0 again."""
        self._life.clear()
        self.reported = False

    def process_state(self, state: State, error: str | None = None) -> None:
        """The process is up (and reports nothing itself), starting, or down."""
        if state in ("starting", "up") and self.reported:
            return
        for st in self.states.values():
            st.set(state, error)
        if state not in ("starting", "up"):
            for st in self.states.values():
                st.queued = 0

    def apply(self, request: CborMap) -> None:
        """Apply one `status` request; raises BadMessage (changing nothing) if malformed."""
        f = Fields(request)
        entries = f.array("links", required=True)
        if len(entries) > len(self.states) + MAX_EXTRA:
            raise f.fail("more links than this plugin has")
        updates = [self._parse(f, entry) for entry in entries]
        for st, values in updates:
            self._update(st, values)
        self.reported = self.reported or bool(updates)

    def _parse(self, f: Fields, entry: Any) -> tuple[LinkState, dict[str, Any]]:
        if not isinstance(entry, dict):
            raise f.fail("each of links must be a map")
        e = f.nested(entry)
        target = e.text("target", required=True)
        st = self.states.get(target.lower()) or self._extra(f, e, target)
        state = e.text("state", required=True)
        if state not in STATES:
            raise f.fail(f"state must be one of {', '.join(STATES)}")
        error = e.text("last_error")
        buckets = len(st.latency_in.bounds) + 1
        return st, {
            "state": state,
            "since": _time(e, "since"),
            "queued": _count(e, "queued"),
            "dropped": _count(e, "dropped"),
            "relayed_in": _count(e, "relayed_in"),
            "relayed_out": _count(e, "relayed_out"),
            "last_error": error[:MAX_ERROR] if error is not None else None,
            "last_error_time": _time(e, "last_error_time"),
            "failing_since": _time(e, "failing_since"),
            "latency_in": _counts(e, "latency_in", buckets),
            "latency_out": _counts(e, "latency_out", buckets),
        }

    def _extra(self, f: Fields, e: Fields, target: str) -> LinkState:
        """A link the config does not name (an adapter's own, like its direct messages)."""
        if not 0 < len(target) <= 200:
            raise f.fail("a link's target is 1 to 200 characters")
        if len(self.states) >= self.configured + MAX_EXTRA:
            raise f.fail(f"more than {MAX_EXTRA} links beyond the configured ones")
        channel = e.text("channel") or ""
        direction = e.text("direction") or "both"
        if direction not in DIRECTIONS or len(channel) > 255:
            raise f.fail("a link's direction is in, out or both; its channel a topic")
        st = LinkState(self.account, target, channel, direction)
        self.states[target.lower()] = st
        return st

    def _update(self, st: LinkState, v: dict[str, Any]) -> None:
        life = self._life.setdefault(st.target.lower(), _Life())
        if v["state"] != st.state:
            st.state = v["state"]
            st.since = v["since"] or st.clock.now_ms() / 1000
        st.failing_since = v["failing_since"]
        st.queued = v["queued"]
        if v["last_error"] is not None:
            st.last_error, st.last_error_time = v["last_error"], v["last_error_time"]
        for key in ("relayed_in", "relayed_out", "dropped"):
            now = v[key]
            setattr(st, key, getattr(st, key) + max(0, now - getattr(life, key)))
            setattr(life, key, max(now, getattr(life, key)))
        for key, hist in (("latency_in", st.latency_in), ("latency_out", st.latency_out)):
            reported = v[key]
            if reported is None:
                continue
            counts, total = reported
            before, before_total = life.latency.get(key, ([0] * len(counts), 0.0))
            delta = [max(0, a - b) for a, b in zip(counts, before, strict=True)]
            hist.add_counts(delta, max(0.0, total - before_total))
            life.latency[key] = (counts, total)


def link_reports(states: Sequence[LinkState]) -> list[CborMap]:
    return [link_report(st) for st in states]
