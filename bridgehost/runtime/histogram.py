"""Latency histograms with fixed buckets, kept as plain counters.

The store's commit latency and each link's relay latency are recorded here
so that only `web/` needs prometheus-client: it reads `snapshot()`, whose
cumulative counts are what a Prometheus histogram exposes.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Upper bounds in seconds: from a local commit (ms) to a relay that waited out an outage."""


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    bounds: tuple[float, ...]
    """Upper bounds in seconds; `math.inf` (the +Inf bucket) is implied last."""
    counts: tuple[int, ...]
    """Cumulative: counts[i] = observations <= bounds[i]; one more entry for +Inf (= count)."""
    sum: float
    count: int

    def as_dict(self) -> dict[str, object]:
        return {
            "buckets": dict(zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True)),
            "sum": self.sum,
            "count": self.count,
        }


class Histogram:
    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        ordered = tuple(float(b) for b in bounds)
        if not ordered or list(ordered) != sorted(set(ordered)):
            raise ValueError("histogram bounds must be distinct and ascending")
        self.bounds = ordered
        self._counts = [0] * (len(ordered) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def add_counts(self, counts: Sequence[int], total: float) -> None:
        """Add observations counted elsewhere with the same bounds (per bucket, not
        cumulative, +Inf last; `total` their sum), e.g. by a plugin process."""
        if len(counts) != len(self._counts):
            raise ValueError("histogram counts do not match the bounds")
        for i, n in enumerate(counts):
            self._counts[i] += n
        self.count += sum(counts)
        self.sum += total

    def snapshot(self) -> HistogramSnapshot:
        cumulative, total = [], 0
        for n in self._counts:
            total += n
            cumulative.append(total)
        return HistogramSnapshot(self.bounds, tuple(cumulative), self.sum, self.count)
