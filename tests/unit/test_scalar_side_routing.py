"""ScalarSide routing: deliveries and our own echoes come by different paths
(the event stream and request replies), so their order is not the seq order."""

from __future__ import annotations

from pathlib import Path

from bridgehost.adapters.base import AdapterContext, ScalarSide
from bridgehost.config import parse_config
from bridgehost.scalar.events import Event

CHANNEL = "#c@example.com"


def side(tmp_path: Path) -> ScalarSide:
    config = parse_config(
        {
            "server": {"domain": "example.com", "data_dir": str(tmp_path / "d")},
            "accounts": {"f": {"type": "fs", "root": str(tmp_path / "r")}},
            "bridges": [
                {"channel": CHANNEL, "links": [{"account": "f", "target": t} for t in "ab"]}
            ],
        },
        base=tmp_path,
    )

    async def no_connect() -> None:
        raise AssertionError("not used")

    ctx = AdapterContext(config, config.accounts["f"], "!fs-f@example.com", no_connect, None)  # type: ignore[arg-type]
    return ScalarSide(ctx, 100)


def event(seq: int, origin: str | None = None) -> Event:
    return Event(bytes(32), CHANNEL, seq, "alice@example.com", 0, f"m{seq}", origin=origin)


def queued(s: ScalarSide, target: str) -> list[int]:
    q = next(e.queue for e in s.links.values() if e.link.target == target)
    return [ev.seq for ev in q._items]


def test_an_echo_before_a_lower_delivery_loses_nothing(tmp_path: Path) -> None:
    s = side(tmp_path)
    s._route(event(7, origin="fs:f/a"), own=True)  # our echo first...
    s._route(event(6))  # ...then someone else's earlier message
    s._route(event(8))
    assert queued(s, "b") == [7, 6, 8]
    assert queued(s, "a") == [6, 8], "a never gets its own message back"


def test_a_catch_up_does_not_route_our_own_events_twice(tmp_path: Path) -> None:
    s = side(tmp_path)
    s._route(event(1))
    s._route(event(3, origin="fs:f/a"), own=True)  # 2 is still on its way
    for seq, origin in ((2, None), (3, "fs:f/a"), (4, None)):  # a catch-up replays 2..4
        s._route(event(seq, origin))
    s._route(event(4))  # and the live copy of 4 is a duplicate
    assert queued(s, "b") == [1, 3, 2, 4]
    assert s._own_seqs[CHANNEL] == set(), "nothing is remembered once passed"


def test_contiguous_own_events_are_not_remembered(tmp_path: Path) -> None:
    s = side(tmp_path)
    s._route(event(1))
    for seq in range(2, 1000):
        s._route(event(seq, origin="fs:f/a"), own=True)
    assert s._own_seqs[CHANNEL] == set() and s._last_seq[CHANNEL] == 999
