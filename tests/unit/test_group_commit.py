"""GroupCommit and the hub's publish path over an in-memory journal, fake peers, fake clock."""

from __future__ import annotations

import asyncio

import cbor2
import pytest

from bridgehost.runtime.clock import FakeClock
from bridgehost.scalar.events import EncodedEvent
from bridgehost.scalar.hub import Hub
from bridgehost.scalar.journal import GroupCommit, Pending, StoredEvent
from bridgehost.scalar.messages import Msg
from bridgehost.scalar.settings import ServerSettings
from bridgehost.testing.journal import FaultyJournal, MemoryJournal


def event(topic: str, seq: int) -> StoredEvent:
    return StoredEvent(topic, seq, 0, cbor2.dumps({"id": bytes(32), "seq": seq}))


class Log:
    def __init__(self) -> None:
        self.settled: list[tuple[str, int, bool]] = []

    def pending(self, topic: str, seq: int) -> Pending:
        e = event(topic, seq)
        return Pending(e, lambda ok: self.settled.append((topic, seq, ok)))


async def started(journal: FaultyJournal, **kw: int) -> GroupCommit:
    commits = GroupCommit(journal, **kw)
    commits.start()
    return commits


async def test_events_added_during_a_commit_go_in_the_next_batch_in_order() -> None:
    journal = FaultyJournal(MemoryJournal())
    commits, log = await started(journal), Log()
    journal.hold()
    commits.add(log.pending("#a", 1))
    await asyncio.wait_for(journal.held.wait(), 1)
    for seq in range(2, 6):
        commits.add(log.pending("#a", seq))
    assert log.settled == [] and commits.backlog == 5
    journal.release()
    await commits.flush()
    assert log.settled == [("#a", seq, True) for seq in range(1, 6)]
    assert [len(b) for b in journal.attempts] == [1, 4]
    await commits.close()


async def test_a_failed_batch_fails_the_queued_events_of_its_topics_only() -> None:
    journal = FaultyJournal(MemoryJournal())
    commits, log = await started(journal), Log()
    journal.hold()
    commits.add(log.pending("#a", 1))
    await asyncio.wait_for(journal.held.wait(), 1)
    commits.add(log.pending("#a", 2))
    commits.add(log.pending("#b", 1))
    journal.fail(1)
    journal.release()
    await commits.flush()
    assert log.settled == [("#a", 1, False), ("#a", 2, False), ("#b", 1, True)]
    assert commits.failed == 2
    inner = journal.inner
    assert isinstance(inner, MemoryJournal)
    assert set(inner.events) == {"#b"}
    await commits.close()


async def test_flush_and_close_wait_for_the_batch_in_flight() -> None:
    journal = FaultyJournal(MemoryJournal())
    commits, log = await started(journal), Log()
    journal.hold()
    commits.add(log.pending("#a", 1))
    await asyncio.wait_for(journal.held.wait(), 1)
    flushing = asyncio.ensure_future(commits.flush())
    closing = asyncio.ensure_future(commits.close())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not flushing.done() and not closing.done()
    journal.release()
    await asyncio.wait_for(asyncio.gather(flushing, closing), 1)
    assert log.settled == [("#a", 1, True)]


async def test_room_waits_while_the_backlog_is_full() -> None:
    journal = FaultyJournal(MemoryJournal())
    commits, log = await started(journal, max_backlog=3), Log()
    journal.hold()
    for seq in (1, 2, 3):
        commits.add(log.pending("#a", seq))
    assert commits.full
    waiting = asyncio.ensure_future(commits.room())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiting.done()
    journal.release()
    await asyncio.wait_for(waiting, 1)
    assert not commits.full
    await commits.close()


async def test_adding_before_start_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        GroupCommit(MemoryJournal()).add(Log().pending("#a", 1))


# --- the hub's publish path ---------------------------------------------------------------


class FakePeer:
    def __init__(self, ident: str) -> None:
        self.id = ident
        self.frames: list[dict[str, object]] = []

    def push(self, data: bytes) -> None:
        self.frames.append(cbor2.loads(data[2:]))


async def hub_with(journal: FaultyJournal) -> Hub:
    hub = Hub(ServerSettings(domain="x.example"), journal, FakeClock())
    await hub.load()
    return hub


def publish(hub: Hub, peer: FakePeer, topic: str, body: str, acks: list[object]) -> None:
    prepared = hub.prepare(peer.id, Msg(topic=topic, body=body), None)

    def ack(e: EncodedEvent | None) -> None:
        acks.append(None if e is None else cbor2.loads(e.stored)["seq"])

    hub.publish(peer, prepared, ack)


async def test_the_hub_delivers_only_what_is_committed_in_seq_order() -> None:
    journal = FaultyJournal(MemoryJournal())
    hub = await hub_with(journal)
    alice, bob = FakePeer("alice@x.example"), FakePeer("bob@x.example")
    room = "#room@x.example"
    hub.subscribe(alice, room, None)
    hub.subscribe(bob, room, None)
    acks: list[object] = []
    journal.hold()
    publish(hub, alice, room, "one", acks)
    await asyncio.wait_for(journal.held.wait(), 1)
    publish(hub, alice, room, "two", acks)
    assert bob.frames == [] and acks == []
    assert hub.meta(bob, hub.topics[room], None).seq == 0
    journal.release()
    await hub.flush()
    assert [f["seq"] for f in bob.frames] == [1, 2] and acks == [1, 2]
    assert alice.frames == []  # the publisher gets its echo from the ack, not the fan-out
    assert hub.published == 2 and hub.meta(bob, hub.topics[room], None).seq == 2
    await hub.close()


async def test_after_a_failed_commit_the_hub_gives_its_seqs_out_again() -> None:
    journal = FaultyJournal(MemoryJournal())
    hub = await hub_with(journal)
    alice, bob = FakePeer("alice@x.example"), FakePeer("bob@x.example")
    room = "#room@x.example"
    hub.subscribe(bob, room, None)
    acks: list[object] = []
    journal.fail(1)
    publish(hub, alice, room, "lost", acks)
    await hub.flush()
    assert acks == [None] and bob.frames == []
    topic = hub.topics[room]
    assert (topic.seq, topic.assigned) == (0, 0)
    publish(hub, alice, room, "kept", acks)
    await hub.flush()
    assert acks == [None, 1] and [f["body"] for f in bob.frames] == ["kept"]
    await hub.close()


async def test_a_writer_that_stops_mid_commit_fails_what_it_held_and_wakes_everyone() -> None:
    journal = FaultyJournal(MemoryJournal())
    commits, log = await started(journal), Log()
    journal.hold()
    commits.add(log.pending("#a", 1))
    await asyncio.wait_for(journal.held.wait(), 1)
    commits.add(log.pending("#a", 2))
    flushing = asyncio.ensure_future(commits.flush())
    assert commits._writer is not None
    commits._writer.cancel()  # as when the process is being torn down
    await asyncio.wait_for(flushing, 1)
    assert log.settled == [("#a", 1, False), ("#a", 2, False)]
    with pytest.raises(RuntimeError):
        commits.add(log.pending("#a", 3))


async def test_a_prepared_event_whose_seq_went_to_another_is_refused() -> None:
    hub = await hub_with(FaultyJournal(MemoryJournal()))
    alice = FakePeer("alice@x.example")
    room = "#room@x.example"
    first = hub.prepare(alice.id, Msg(topic=room, body="one"), None)
    second = hub.prepare(alice.id, Msg(topic=room, body="two"), None)  # the same seq: 1
    hub.publish(alice, first, lambda _: None)
    with pytest.raises(RuntimeError, match="prepare and publish"):
        hub.publish(alice, second, lambda _: None)
    await hub.flush()
    assert hub.topics[room].seq == 1
    await hub.close()
