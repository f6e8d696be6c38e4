"""Link health of Matrix rooms across an outage (no sockets)."""

from __future__ import annotations

from bridgehost.adapters.matrix.events import Membership
from bridgehost.adapters.matrix.rooms import Room, Rooms
from bridgehost.adapters.state import LinkState
from bridgehost.config import Bridge, Link

ME = "@bridge:example.org"


def rooms() -> Rooms:
    made = []
    for target in ("!a:x", "!b:x"):
        link = Link(account="mx", target=target)
        bridge = Bridge(channel="#c@d", links=(link,))
        made.append(Room(bridge, link, LinkState("mx", target, "#c@d", "both")))
    return Rooms("mx", ME, made)


async def test_a_removed_room_stays_reported_after_an_outage() -> None:
    rs = rooms()
    joined, kicked = rs[0], rs[1]
    rs.set_online()
    rs.mark_joined(joined)
    rs.mark_joined(kicked)
    assert [r.status.state for r in rs] == ["joined", "joined"]
    rs.mark_left(kicked, Membership("leave", "@mod:x", "spam"))
    assert (kicked.status.state, kicked.joined.is_set()) == ("removed", False)

    rs.set_down("homeserver unreachable: refused")
    assert [r.status.state for r in rs] == ["disconnected", "disconnected"]
    assert not rs.online.is_set()

    rs.set_online()
    assert joined.status.state == "joined"
    assert kicked.status.state == "removed"
    assert kicked.status.last_error == "kicked from the room by @mod:x: spam"

    rs.mark_joined(kicked)  # invited back
    rs.set_down("again")
    rs.set_online()
    assert [r.status.state for r in rs] == ["joined", "joined"]


def test_bind_keeps_one_room_per_id() -> None:
    rs = rooms()
    rs.bind(rs[0], "!real:x")
    assert rs.by_id["!real:x"] is rs[0]
    rs.bind(rs[0], "!moved:x")
    assert "!real:x" not in rs.by_id and rs.by_id["!moved:x"] is rs[0]
    assert len(rs) == 2 and list(rs) == rs.all
