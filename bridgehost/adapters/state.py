"""The health of one link, as `bridgehost status`, status.json, `/metrics`
and `/healthz` show it. Every adapter keeps one `LinkState` per link (the
IRC, Matrix and fs link records share it) and only ever writes it here."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, get_args

from ..config import Direction
from ..runtime import SYSTEM_CLOCK, Clock, Histogram

log = logging.getLogger(__name__)

State = Literal[
    "starting",
    "connecting",
    "joining",
    "reconnecting",
    "joined",
    "up",
    "disconnected",
    "removed",
    "join failed",
    "auth failed",
    "error",
    "stopped",
]
"""`joined`/`up` relay; `starting`, `connecting`, `joining`, `reconnecting` are on
their way; the rest are failing (`auth failed` for good, until the config changes)."""
STATES: tuple[State, ...] = get_args(State)
HEALTHY: frozenset[State] = frozenset({"joined", "up"})
FAILING: frozenset[State] = frozenset(
    {"disconnected", "removed", "join failed", "auth failed", "error"}
)


@dataclass(slots=True, eq=False)
class LinkState:
    account: str
    target: str
    channel: str
    direction: Direction
    state: State = "starting"
    since: float = 0.0
    """Wall-clock time (s) of the last change of `state`."""
    last_error: str | None = None
    last_error_time: float | None = None
    failing_since: float | None = None
    """Set when the link enters a failing state, cleared once it is healthy again
    (a reconnect that passes through `connecting` keeps it)."""
    queued: int = 0
    dropped: int = 0
    relayed_in: int = 0
    relayed_out: int = 0
    latency_in: Histogram = field(default_factory=Histogram)
    """Remote receive -> Scalar commit, seconds."""
    latency_out: Histogram = field(default_factory=Histogram)
    """Scalar commit -> remote send, seconds (includes time queued while down)."""
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False)

    def __post_init__(self) -> None:
        if not self.since:
            self.since = self._now()

    def _now(self) -> float:
        return self.clock.now_ms() / 1000

    def set(self, state: State, error: str | None = None) -> None:
        """Change state (logged when it changes), optionally with the reason."""
        now = self._now()
        if state != self.state or (error and error != self.last_error):
            level = logging.WARNING if error else logging.INFO
            log.log(
                level,
                "link %s/%s <-> %s: %s%s",
                self.account,
                self.target,
                self.channel,
                state,
                f" ({error})" if error else "",
            )
        if state != self.state:
            self.state, self.since = state, now
        if state in HEALTHY:
            self.failing_since = None
        elif state in FAILING and self.failing_since is None:
            self.failing_since = now
        if error:
            self.last_error, self.last_error_time = error, now

    def error(self, text: str) -> None:
        """A problem that does not change the state (a message refused, a rate limit)."""
        self.set(self.state, text)

    def relayed(self, committed_ms: int) -> None:
        """One Scalar event (committed at `committed_ms`) went out to the remote side."""
        self.relayed_out += 1
        self.latency_out.observe(max(0.0, self._now() - committed_ms / 1000))

    def published(self, seconds: float) -> None:
        """One remote message is in Scalar, `seconds` after it was received."""
        self.relayed_in += 1
        self.latency_in.observe(max(0.0, seconds))

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "target": self.target,
            "channel": self.channel,
            "direction": self.direction,
            "state": self.state,
            "since": self.since,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
            "failing_since": self.failing_since,
            "queued": self.queued,
            "dropped": self.dropped,
            "relayed_in": self.relayed_in,
            "relayed_out": self.relayed_out,
            "latency_in": self.latency_in.snapshot().as_dict(),
            "latency_out": self.latency_out.snapshot().as_dict(),
        }
