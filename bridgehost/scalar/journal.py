"""Commit, then deliver (§10): the hub's durable history and the group commit in front of it.

`Journal` is what the hub needs of durable storage (the SQLite `Store`, or an
in-memory one in tests). `GroupCommit` batches events for it: everything
added while one transaction runs goes into the next, so a busy server pays
one commit per batch, not per event. Only when a batch is committed are its
events handed back (`Pending.settle(True)`), in the order they were added, to
be fanned out and echoed; a batch whose commit fails is rolled back by the
journal and every event in it is settled with `False`, as is every later
event of the same topics (their seqs counted on the failed ones). A full
backlog makes publishers wait (`room()`) instead of letting anyone overtake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..runtime import wait_for

log = logging.getLogger(__name__)

MAX_BACKLOG = 10000
"""Events added and not yet committed (queued plus the batch in flight) before
publishers wait for room."""

GATHER = 1024
"""Loop iterations a batch may wait for more events while they keep arriving."""
GATHER_EVENTS = 1000
"""Events after which a batch stops waiting for more (its fan-out runs in one go)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    topic: str
    seq: int
    time: int
    data: bytes
    """The event map, encoded once (CBOR, with `id`)."""
    sender: str = ""
    nonce: str | None = None
    """The publisher's `msg.nonce`: kept with the event so a re-sent `msg` finds it
    again after a restart (§10)."""
    title: str | None = None
    """A `topic` event's new channel title, written with the event."""


class Journal(Protocol):
    """Durable history as the hub uses it."""

    async def commit(self, events: Sequence[StoredEvent]) -> None:
        """Write the events and their topics' new last seqs in one transaction, or
        nothing: on failure the transaction is rolled back and the error raised.
        A (topic, seq) that is already there is a failure, never an overwrite."""

    async def load_topics(self) -> dict[str, tuple[int, str | None]]:
        """Every topic with a committed event -> (last seq, title)."""

    async def ensure_topic(self, topic: str, title: str | None = None) -> None: ...

    async def history(
        self,
        topic: str,
        *,
        after: int | None = None,
        before: int | None = None,
        since: int | None = None,
        limit: int = 50,
    ) -> tuple[list[bytes], bool]: ...

    async def event_by_id(self, topic: str, event_id: bytes) -> bytes | None: ...

    async def event_at(self, topic: str, seq: int) -> bytes | None: ...

    async def recent_nonces(
        self, since_ms: int, limit: int
    ) -> list[tuple[str, str, str, int, int]]: ...

    async def kv_get(self, ns: str, key: str) -> bytes | None: ...

    async def kv_set(self, ns: str, key: str, value: bytes) -> None: ...


@dataclass(slots=True, eq=False)
class Pending:
    """One event waiting for its commit."""

    event: StoredEvent
    settle: Callable[[bool], None]
    """Called once, in order with every other event: True when committed, False when
    its write failed (or one it depends on did)."""


class GroupCommit:
    """Batches events into journal transactions and settles them in order.

    The writer task belongs to this object: `start()` creates it, `close()`
    waits for everything added so far to settle and then ends it.
    """

    def __init__(self, journal: Journal, *, max_backlog: int = MAX_BACKLOG) -> None:
        self.journal = journal
        self.max_backlog = max_backlog
        self._queue: list[Pending] = []
        self._inflight = 0
        self._added = 0
        self._settled = 0
        self._wake = asyncio.Event()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        """flush() and room() callers: a condition each, checked after every batch."""
        self._writer: asyncio.Task[None] | None = None
        self._stopped = False
        self.batches = 0
        self.failed = 0
        """Events settled as failed."""

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def close(self, timeout: float = 30.0) -> None:
        """Settle everything added so far (waiting at most `timeout` seconds for a stuck
        disk; what is still unwritten then fails), then stop the writer."""
        if self._writer is None:
            return
        try:
            await wait_for(self.flush(), timeout)
        except TimeoutError:
            log.error("history commits stuck for %.0f s: %d event(s) fail", timeout, self.backlog)
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    # --- adding and waiting ---------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Events added and not settled yet (queued plus the batch in flight)."""
        return len(self._queue) + self._inflight

    @property
    def full(self) -> bool:
        return self.backlog >= self.max_backlog

    def add(self, item: Pending) -> None:
        """Queue one event for the next batch (callers wait for `room()` first)."""
        if self._writer is None or self._stopped:
            raise RuntimeError("GroupCommit.add while not running")
        self._queue.append(item)
        self._added += 1
        self._wake.set()

    async def room(self) -> None:
        """Back-pressure: wait while the backlog is full."""
        await self._wait_for(lambda: not self.full)

    async def flush(self) -> None:
        """Wait until every event added before this call is settled (committed or failed)."""
        target = self._added
        await self._wait_for(lambda: self._settled >= target)

    async def _wait_for(self, ready: Callable[[], bool]) -> None:
        if self._stopped or ready():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((ready, waiter))
        await waiter

    def _progress(self) -> None:
        """Wake the waiters whose condition now holds (all of them once stopped)."""
        waiting, self._waiters = self._waiters, []
        for ready, waiter in waiting:
            if waiter.done():
                continue
            if self._stopped or ready():
                waiter.set_result(None)
            else:
                self._waiters.append((ready, waiter))

    # --- the writer -------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                await self._gather()
                self._wake.clear()
                batch, self._queue = self._queue, []
                if batch:
                    await self._commit(batch)
        finally:
            # Stopped (closed, or the writer died): nothing queued will be written now.
            self._stopped = True
            left, self._queue = self._queue, []
            self.failed += len(left)
            for p in left:
                _settle(p, False)
            self._settled += len(left)
            self._progress()

    async def _gather(self) -> None:
        """Let the loop run while events keep arriving, for at most GATHER iterations
        and until GATHER_EVENTS are queued.

        Sessions handle one request per loop iteration, so a burst of `msg`s read at
        once arrives over many iterations: waiting until one passes with nothing new
        puts the burst in one batch (one commit, and one write per subscriber for all
        of it) instead of a batch per commit-time slice. A lone event waits one
        iteration, which also lets that iteration's output flush run before the
        commit thread competes with it for the GIL.
        """
        seen = -1
        for _ in range(GATHER):
            if len(self._queue) == seen or seen >= GATHER_EVENTS:
                return
            seen = len(self._queue)
            await asyncio.sleep(0)

    async def _commit(self, batch: list[Pending]) -> None:
        self._inflight = len(batch)
        try:
            await self.journal.commit([p.event for p in batch])
        except Exception:
            log.exception("history commit failed: %d event(s) answered internal", len(batch))
            settled = self._fail(batch)
        except BaseException:  # cancelled mid-commit: whatever happened, nobody is told
            self._inflight = 0
            self.failed += len(batch)
            for p in batch:
                _settle(p, False)
            self._settled += len(batch)
            raise
        else:
            self.batches += 1
            settled = len(batch)
            for p in batch:
                _settle(p, True)
        finally:
            self._inflight = 0
        self._settled += settled
        self._progress()

    def _fail(self, batch: list[Pending]) -> int:
        """Fail a batch and every queued event of its topics (their seqs follow the
        failed ones, which will now be given out again); returns how many."""
        topics = {p.event.topic for p in batch}
        behind = [p for p in self._queue if p.event.topic in topics]
        if behind:
            self._queue = [p for p in self._queue if p.event.topic not in topics]
        failed = batch + behind
        self.failed += len(failed)
        for p in failed:
            _settle(p, False)
        return len(failed)


def _settle(p: Pending, ok: bool) -> None:
    try:
        p.settle(ok)
    except Exception:
        log.exception("settling %s/%d failed", p.event.topic, p.event.seq)
