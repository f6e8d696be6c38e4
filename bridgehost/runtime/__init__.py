"""What every long-running part shares (design.md §6): a clock passed in,
one token bucket, one backoff, a supervisor that stops on `Fatal`, task
ownership and latency histograms. No network code; imports nothing else of
bridgehost."""

from .backoff import Backoff
from .bucket import TokenBucket
from .clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock, Timer
from .histogram import LATENCY_BUCKETS, Histogram, HistogramSnapshot
from .supervise import Fatal, fatal_in, supervise
from .tasks import TaskSet
from .timeouts import wait_for

__all__ = [
    "LATENCY_BUCKETS",
    "SYSTEM_CLOCK",
    "Backoff",
    "Clock",
    "FakeClock",
    "Fatal",
    "Histogram",
    "HistogramSnapshot",
    "SystemClock",
    "TaskSet",
    "Timer",
    "TokenBucket",
    "fatal_in",
    "supervise",
    "wait_for",
]
