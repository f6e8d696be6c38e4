"""§11 rich events through a live server: the client's conveniences, the events
they make, and who may publish what."""

from pathlib import Path

import pytest

from bridgehost.scalar import errors
from bridgehost.scalar.messages import Message, Msg
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
            "react", "👍", first.id, srv.user("bob"))
        assert (gone.kind, gone.body, gone.target) == ("delete", "typo", first.id)
        seen = [await bob.next_event(5) for _ in range(2)]
        assert [e.id for e in seen] == [edit.id, gone.id]
        for event in (edit, react, gone):
            assert event.expected_id() == event.id
        history = await bob.catchup(lobby)
        assert [(e.kind, e.target) for e in history.events] == [
            ("text", None), ("edit", first.id), ("react", first.id), ("delete", first.id)]


async def test_every_publish_carries_a_fresh_nonce(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(tmp_path) as srv:
        alice = await srv.client("alice")
        lobby = srv.channel("lobby")
        await alice.sub(lobby)
        sent: list[Msg] = []
        original = type(alice)._send

        def spy(self: object, msg: Message) -> None:
            if isinstance(msg, Msg):
                sent.append(msg)
            original(self, msg)  # type: ignore[arg-type]

        monkeypatch.setattr(type(alice), "_send", spy)
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
