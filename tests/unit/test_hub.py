"""The hub in memory (MemoryJournal, FakeClock, fake peers): topics come and go,
commit then deliver, direct messages and presence, listings."""

from typing import Any

import cbor2

from bridgehost.runtime import FakeClock
from bridgehost.scalar.events import EncodedEvent
from bridgehost.scalar.hub import Hub
from bridgehost.scalar.messages import Msg
from bridgehost.scalar.settings import ServerSettings
from bridgehost.testing.journal import FaultyJournal, MemoryJournal

LOBBY = "#lobby@test.example"


class Peer:
    def __init__(self, ident: str) -> None:
        self.id = ident
        self.frames: list[dict[str, Any]] = []

    def push(self, data: bytes) -> None:
        self.frames.append(cbor2.loads(data[2:]))


async def _hub(journal: Any = None, **settings: Any) -> Hub:
    hub = Hub(
        ServerSettings(domain="test.example", **settings), journal or MemoryJournal(), FakeClock()
    )
    await hub.load()
    return hub


def _publish(hub: Hub, peer: Peer, topic: str, body: str, **fields: Any) -> list[Any]:
    acks: list[Any] = []
    hub.publish(
        peer,
        hub.prepare(peer.id, Msg(topic, body, **fields), None),  # type: ignore[arg-type]
        acks.append,
    )
    return acks


async def test_a_sub_alone_keeps_a_topic_only_while_it_lasts() -> None:
    hub = await _hub()
    a = Peer("a@test.example")
    meta = hub.subscribe(a, LOBBY, 1)  # type: ignore[arg-type]
    assert (meta.seq, meta.subscribers, meta.history) == (0, 1, True)
    assert hub.channel_count == 1 and hub.list_topics(None, 0, 10)[0] == 1
    hub.unsubscribe(a, LOBBY)  # type: ignore[arg-type]
    assert not hub.has_topic(LOBBY) and hub.channel_count == 0
    hub.unsubscribe(a, LOBBY)  # type: ignore[arg-type]
    await hub.close()


async def test_commit_then_deliver_and_the_topic_is_kept() -> None:
    journal = FaultyJournal(MemoryJournal())
    hub = await _hub(journal)
    a, b = Peer("a@test.example"), Peer("b@test.example")
    for p in (a, b):
        hub.subscribe(p, LOBBY, None)  # type: ignore[arg-type]
    journal.hold()
    acks = _publish(hub, a, LOBBY, "hi")
    assert not b.frames and not acks  # nothing before the commit
    journal.release()
    await hub.flush()
    assert isinstance(acks[0], EncodedEvent)
    assert [f["body"] for f in b.frames] == ["hi"] and not a.frames  # the source gets its echo
    for p in (a, b):
        hub.unsubscribe(p, LOBBY)  # type: ignore[arg-type]
    assert hub.has_topic(LOBBY) and hub.topics[LOBBY].seq == 1  # it has an event now
    await hub.close()


async def test_a_new_topic_whose_first_event_failed_is_not_kept() -> None:
    journal = FaultyJournal(MemoryJournal())
    hub = await _hub(journal)
    bot = Peer("!bot@test.example")
    journal.fail(1)
    acks = _publish(hub, bot, "#new@test.example", "x")
    await hub.flush()
    assert acks == [None]
    assert not hub.has_topic("#new@test.example") and hub.channel_count == 0
    await hub.close()


async def test_direct_messages_reach_only_their_owner_and_presence_everyone() -> None:
    hub = await _hub()
    alice, alice2, bob, watcher = (
        Peer("alice@test.example"),
        Peer("alice@test.example"),
        Peer("bob@test.example"),
        Peer("w@test.example"),
    )
    for p in (alice, alice2):
        hub.subscribe(p, alice.id, None)  # type: ignore[arg-type]
    hub.subscribe(watcher, alice.id, None)  # type: ignore[arg-type]
    hub.connected(bob.id)
    _publish(hub, bob, alice.id, "psst")
    await hub.flush()
    assert [f["body"] for f in alice.frames] == ["psst"]
    assert [f["body"] for f in alice2.frames] == ["psst"]
    assert watcher.frames == []  # someone else's DMs
    hub.connected(alice.id)
    hub.connected(alice.id)
    hub.disconnected(alice, [alice.id])  # type: ignore[arg-type]
    assert [(f["kind"], f["body"], f["seq"]) for f in watcher.frames] == [
        ("presence", "online", 0)
    ]  # still one connection left: no offline yet
    hub.disconnected(alice2, [alice.id])  # type: ignore[arg-type]
    assert watcher.frames[-1]["body"] == "offline"
    await hub.close()


async def test_listing_is_sorted_prefixed_and_paged() -> None:
    hub = await _hub()
    bot = Peer("!bot@test.example")
    names = [f"#room{i:02d}@test.example" for i in range(25)] + ["#other@test.example"]
    for name in reversed(names):
        _publish(hub, bot, name, "x")
    _publish(hub, bot, "alice@test.example", "not a channel")
    await hub.flush()
    total, items = hub.list_topics("#room", 20, 10)
    assert total == 25 and [i.topic for i in items] == names[20:25]
    total, items = hub.list_topics(None, 0, 100)
    assert total == 26 and items[0].topic == "#other@test.example"
    await hub.close()


async def test_load_skips_channels_an_older_version_kept_for_a_sub() -> None:
    journal = MemoryJournal()
    journal.topics = {
        "#empty@test.example": (0, None),
        "#titled@test.example": (0, "T"),
        "#used@test.example": (7, None),
    }
    hub = await _hub(journal)
    assert sorted(hub.topics) == ["#titled@test.example", "#used@test.example"]
    assert hub.topics["#used@test.example"].seq == 7
    await hub.close()


async def test_a_guest_topic_is_forgotten_when_the_guest_leaves() -> None:
    journal = MemoryJournal()
    hub = await _hub(journal)
    guest, alice = Peer("guest-0123abcd@test.example"), Peer("alice@test.example")
    hub.connected(guest.id)
    hub.subscribe(guest, guest.id, None)  # type: ignore[arg-type]
    _publish(hub, alice, guest.id, "hello, guest")
    await hub.flush()
    assert [f["body"] for f in guest.frames] == ["hello, guest"]
    hub.disconnected(guest, [guest.id])  # type: ignore[arg-type]
    assert not hub.has_topic(guest.id)  # guests coming and going hold nothing
    await hub.close()
    again = await _hub(journal)  # nor after a restart
    assert not again.has_topic(guest.id) and journal.topics[guest.id][0] == 1
    await again.close()
