"""Rich events as readable lines for `bridgehost tail` and the fs `out` files (pure)."""

from __future__ import annotations

from typing import Any

from bridgehost.adapters.fs.lines import format_event
from bridgehost.adapters.transcript import Transcript, escape_controls
from bridgehost.cli import format_event as tail_line
from bridgehost.scalar.events import Event


def ev(n: int, body: str, kind: str = "text", nick: str = "bob", **kw: Any) -> Event:
    return Event(
        id=bytes([n]) * 32,
        topic="#c@d",
        seq=n,
        sender="!irc-x@d",
        time=1_700_000_000_000,
        body=body,
        kind=kind,
        nick=nick,
        **kw,
    )


def test_every_kind_reads_naturally() -> None:
    t = Transcript()
    q = ev(1, "what time is it?", nick="alice")
    assert t.lines(q) == ["<alice> what time is it?"]
    a = ev(2, "noon\nor so", reply_to=q.id)
    assert t.lines(a) == ['<bob> (reply to alice: "what time is it?") noon', "<bob> or so"]
    assert t.lines(ev(3, "half past twelve", "edit", target=a.id)) == [
        '* bob edited "noon or so": half past twelve'
    ]
    assert t.lines(ev(4, "👍", "react", nick="carol", target=a.id)) == [
        '* carol reacted 👍 to bob: "half past twelve"'
    ]
    assert t.lines(ev(5, "", "delete", target=a.id)) == ['* bob deleted "half past twelve"']
    assert t.lines(ev(6, "spam", "delete", target=bytes(32))) == ["* bob deleted a message (spam)"]
    assert t.lines(ev(7, "lunch\nplans", "topic", nick="dave")) == [
        "* dave set the topic: lunch plans"
    ]
    assert t.lines(ev(8, "", "join", nick="erin")) == ["* erin joined"]
    assert t.lines(ev(9, "bye", "part", nick="erin")) == ["* erin left (bye)"]
    assert t.lines(ev(10, "waves", "action")) == ["* bob waves"]
    assert t.lines(ev(11, "fyi", "notice")) == ["-bob- fyi"]
    assert t.lines(ev(12, "x", "edit", target=bytes(32))) == ["* bob edited a message: x"]


def test_unknown_kinds_never_fail() -> None:
    assert Transcript().lines(ev(1, "a\nb", "poll")) == ["-bob- [poll] a", "-bob- [poll] b"]


def test_memory_is_bounded() -> None:
    t = Transcript(memory=2)
    for n in range(1, 4):
        t.lines(ev(n, f"m{n}"))
    assert t.lines(ev(9, "👍", "react", target=bytes([1]) * 32)) == ["* bob reacted 👍"]
    assert t.lines(ev(9, "👍", "react", target=bytes([3]) * 32)) == [
        '* bob reacted 👍 to bob: "m3"'
    ]


def test_tail_and_fs_lines_escape_controls_and_stamp() -> None:
    t = Transcript()
    evil = ev(1, "hi\x1b]0;pwned\x07", nick="m\x1bal")
    assert tail_line(evil, t) == "2023-11-14 22:13:20 <m\\x1bal> hi\\x1b]0;pwned\\x07"
    fs = format_event(ev(2, "👍", "react", target=evil.id), "d")
    assert fs == "2023-11-14 22:13:20 * bob reacted 👍\n"
    assert escape_controls("\u202eabc") == "\\u202eabc"
