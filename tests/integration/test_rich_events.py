"""§11 rich events through a live server: the client's conveniences, the events
they make, and who may publish what."""

from pathlib import Path

import pytest

from bridgehost.scalar import errors
from bridgehost.scalar.client_protocol import ClientProtocol
from bridgehost.scalar.events import EncodedEvent, Event
from bridgehost.scalar.hub import Hub
from bridgehost.scalar.messages import Message, Msg
from bridgehost.scalar.settings import ServerSettings, SystemClock
from bridgehost.scalar.store import STORED_ID, Store, StoredEvent
from bridgehost.testing import running


async def test_edit_delete_react_carry_the_target(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        alice, bob = await srv.client("alice"), await srv.client("bob")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        await bob.sub(lobby)
        first = await alice.publish(lobby, "helo")
        assert (await bob.next_event(5)).id == first.id
        edit = await alice.edit(first, "hello")
        react = await bob.react(first, "👍")
        gone = await alice.delete(first.id, "typo", topic=lobby)
        assert (edit.kind, edit.body, edit.target) == ("edit", "hello", first.id)
        assert (react.kind, react.body, react.target, react.sender) == (
            "react",
            "👍",
            first.id,
            srv.user("bob"),
        )
        assert (gone.kind, gone.body, gone.target) == ("delete", "typo", first.id)
        seen = [await bob.next_event(5) for _ in range(2)]
        assert [e.id for e in seen] == [edit.id, gone.id]
        for event in (edit, react, gone):
            assert event.expected_id() == event.id
        history = await bob.catchup(lobby)
        assert [(e.kind, e.target) for e in history.events] == [
            ("text", None),
            ("edit", first.id),
            ("react", first.id),
            ("delete", first.id),
        ]


async def test_every_publish_carries_a_fresh_nonce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tmp_path) as srv:
        alice = await srv.client("alice")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        sent: list[Msg] = []
        original = ClientProtocol.request

        def spy(self: ClientProtocol, msg: Message) -> int:
            if isinstance(msg, Msg):
                sent.append(msg)
            return original(self, msg)

        monkeypatch.setattr(ClientProtocol, "request", spy)
        await alice.publish(lobby, "one")
        await alice.set_topic(lobby, "the lobby")
        await alice.publish(lobby, "three", nonce="mine")
        nonces = [m.nonce for m in sent]
        assert len(nonces) == 3 and nonces[2] == "mine"
        assert all(n and 1 <= len(n.encode()) <= 64 for n in nonces)
        assert nonces[0] != nonces[1]


async def test_join_and_part_are_for_reserved_ids_only(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        alice, bridge = await srv.client("alice"), await srv.client("!bridge")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        with pytest.raises(errors.Forbidden):
            await alice.publish(lobby, "", kind="join", nick="alice")
        joined = await bridge.publish(lobby, "", kind="join", nick="Zoë", origin="irc:x/#lobby")
        assert (joined.kind, joined.nick, joined.body) == ("join", "Zoë", "")
        with pytest.raises(errors.BadMessage):
            await bridge.publish(lobby, "bye", kind="part")  # no nick


async def test_only_the_sender_edits_or_deletes_and_targets_stay_in_their_topic(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as srv:
        alice, bob = await srv.client("alice"), await srv.client("bob")
        lobby, other = srv.channel("lobby"), srv.channel("other")
        for c in (alice, bob):
            await c.sub(lobby)
            await c.sub(other)
        first = await alice.publish(lobby, "mine")
        elsewhere = await alice.publish(other, "over there")
        with pytest.raises(errors.Forbidden):
            await bob.edit(first, "yours now")
        with pytest.raises(errors.Forbidden):
            await bob.delete(first)
        with pytest.raises(errors.NoSuchTopic):
            await alice.edit(elsewhere.id, "moved", topic=lobby)
        with pytest.raises(errors.NoSuchTopic):
            await bob.react(b"\x09" * 32, "+1", topic=lobby)
        react = await bob.react(first, "+1")  # anyone may react
        with pytest.raises(errors.Forbidden):
            await alice.edit(react, "not words")  # not hers, and not editable
        own_react = await alice.react(first, "ok")
        with pytest.raises(errors.Forbidden):
            await alice.edit(own_react, "a reaction is not text")
        await alice.delete(own_react)  # withdrawing a reaction is a delete
        # A refused request changed nothing: the seqs have no gaps.
        meta = await alice.sub(lobby)
        assert meta.seq == 4


async def test_order_of_checks_target_before_permission(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        alice, carol = await srv.client("alice"), await srv.client("carol")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        first = await alice.publish(lobby, "hi")
        # carol is not subscribed (forbidden), and the target does not exist: §9 puts
        # no-such-topic first.
        with pytest.raises(errors.NoSuchTopic):
            await carol.react(b"\x01" * 32, "x", topic=lobby)
        with pytest.raises(errors.Forbidden):
            await carol.react(first, "x")
        with pytest.raises(errors.BadTopic):
            await carol.react(first.id, "x", topic="not a topic")


async def test_a_bridge_edits_what_it_relayed_only_for_the_same_person(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        bridge = await srv.client("!irc")
        lobby = srv.channel("lobby")
        said = await bridge.publish(lobby, "helo", nick="Zoë", origin="irc:net/#lobby")
        with pytest.raises(errors.Forbidden):
            await bridge.edit(said, "hello", nick="Mallory", origin="irc:net/#lobby")
        with pytest.raises(errors.Forbidden):
            await bridge.edit(said, "hello", nick="Zoë", origin="matrix:!room")
        with pytest.raises(errors.Forbidden):
            await bridge.delete(said)  # no nick: the bridge's own voice is someone else
        edit = await bridge.edit(said, "hello", nick="Zoë", origin="irc:net/#lobby")
        assert (edit.kind, edit.nick, edit.target) == ("edit", "Zoë", said.id)
        gone = await bridge.delete(said, nick="Zoë", origin="irc:net/#lobby")
        assert gone.kind == "delete"


async def test_topic_sets_the_title_and_survives_a_restart(tmp_path: Path) -> None:
    overrides = {"server": {"guests": True}}
    async with running(tmp_path, overrides) as srv:
        alice = await srv.client("alice")
        lobby = srv.channel("lobby")
        assert (await alice.sub(lobby)).title is None
        event = await alice.set_topic(lobby, "Friday: release")
        assert (event.kind, event.body) == ("topic", "Friday: release")
        assert (await alice.sub(lobby)).title == "Friday: release"
        listing = await alice.topics(prefix="#lobby")
        assert [(i.topic, i.title) for i in listing.items] == [(lobby, "Friday: release")]
        with pytest.raises(errors.Forbidden):
            await alice.set_topic(srv.user("alice"), "DMs have no topic")
        with pytest.raises(errors.TooLarge):
            await alice.set_topic(lobby, "x" * 1025)
        await alice.set_topic(lobby, "é" * 512)  # 1024 bytes is fine
        await alice.set_topic(lobby, "Saturday")
    async with running(tmp_path, overrides) as srv:
        guest = await srv.client()
        assert (await guest.sub(srv.channel("lobby"))).title == "Saturday"


async def test_configured_title_is_where_a_channel_starts(tmp_path: Path) -> None:
    lobby = "#lobby@test.example"

    async def start(title: str) -> tuple[Store, Hub]:
        settings = ServerSettings(domain="test.example", titles=((lobby, title),))
        store = await Store.open(tmp_path)
        hub = Hub(settings, store, SystemClock())
        await hub.load()
        return store, hub

    async def stop(store: Store, hub: Hub) -> None:
        await hub.close()
        await store.close()

    store, hub = await start("From config")
    assert hub.topics[lobby].title == "From config"
    msg = Msg(lobby, "Set by a user", kind="topic")
    acked: list[object] = []
    prepared = hub.prepare("alice@test.example", msg, None)
    hub.publish(None, prepared, acked.append)  # type: ignore[arg-type]
    await hub.flush()
    assert acked and acked[0] is not None
    await stop(store, hub)
    store, hub = await start("From config")
    assert hub.topics[lobby].title == "Set by a user"
    await stop(store, hub)
    store, hub = await start("Changed in the config")
    assert hub.topics[lobby].title == "Changed in the config"
    await stop(store, hub)


async def test_store_finds_events_by_id_through_the_index(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        full = EncodedEvent.build(
            Event.core_map(
                topic="#a@x",
                seq=1,
                sender="!b@x",
                time=5,
                body="b" * 300,
                kind="edit",
                nick="N",
                reply_to=b"\x01" * 32,
                ctype="text/markdown",
                origin="o",
                target=b"\x02" * 32,
            )
        )
        small = EncodedEvent.build(
            Event.core_map(topic="#a@x", seq=2, sender="a@x", time=6, body="")
        )
        await store.commit(
            [StoredEvent("#a@x", seq, 5, enc.stored) for seq, enc in ((1, full), (2, small))]
        )
        assert await store.event_by_id("#a@x", full.id) == full.stored
        assert await store.event_by_id("#a@x", small.id) == small.stored
        assert await store.event_by_id("#b@x", small.id) is None
        assert store._r is not None
        plan = await (
            await store._r.execute(
                f"EXPLAIN QUERY PLAN SELECT data FROM events WHERE {STORED_ID} = ? AND topic = ?",
                (small.id, "#a@x"),
            )
        ).fetchall()
        assert "events_id" in str(plan)
    finally:
        await store.close()
