"""fs adapter: the `out` line format and cutting `in` input into lines."""

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from bridgehost.adapters.fs.lines import (
    Line,
    LineSplitter,
    escape_controls,
    format_event,
    format_notice,
    parse_input,
    stamp,
    utf8_cut,
)
from bridgehost.scalar.events import Event

T = 1_700_000_000_123  # 2023-11-14 22:13:20 UTC


def ev(body: str, **kw: object) -> Event:
    fields: dict[str, object] = {
        "id": b"\0" * 32,
        "topic": "#lobby@example.com",
        "seq": 1,
        "sender": "alice@example.com",
        "time": T,
        "body": body,
    }
    fields.update(kw)
    return Event(**fields)  # type: ignore[arg-type]


def test_stamp_is_utc() -> None:
    assert stamp(T) == "2023-11-14 22:13:20"
    assert stamp(0) == "1970-01-01 00:00:00"


def test_text_line_uses_local_name_or_relayed_nick() -> None:
    assert format_event(ev("hi"), "example.com") == "2023-11-14 22:13:20 <alice> hi\n"
    relayed = ev("hi", sender="!irc-libera@example.com", nick="bob", origin="irc:libera/#x")
    assert format_event(relayed, "example.com") == "2023-11-14 22:13:20 <bob> hi\n"
    assert format_event(ev("hi"), "other.org") == "2023-11-14 22:13:20 <alice@example.com> hi\n"
    bot = ev("pong", sender="!ping@example.com", kind="notice")
    assert format_event(bot, "example.com") == "2023-11-14 22:13:20 -!ping- pong\n"


def test_action() -> None:
    assert format_event(ev("waves", kind="action"), "example.com") == (
        "2023-11-14 22:13:20 * alice waves\n"
    )


def test_multi_line_body_gives_one_stamped_line_per_line() -> None:
    out = format_event(ev("one\ntwo\r\nthree\rfour\n"), "example.com")
    assert out.splitlines() == [
        "2023-11-14 22:13:20 <alice> one",
        "2023-11-14 22:13:20 <alice> two",
        "2023-11-14 22:13:20 <alice> three",
        "2023-11-14 22:13:20 <alice> four",
        "2023-11-14 22:13:20 <alice> ",
    ]


def test_control_characters_are_escaped() -> None:
    assert escape_controls("plain text, ünïcödé ✓") == "plain text, ünïcödé ✓"
    assert escape_controls("a\x1b[31mred\x00\x7f\tb") == "a\\x1b[31mred\\x00\\x7f\\x09b"
    assert escape_controls("x\x85y\u2028z\u2029w") == "x\\x85y\\u2028z\\u2029w"
    assert escape_controls("evil\u202ertl\u2066") == "evil\\u202ertl\\u2066"
    assert escape_controls("emoji 👩\u200d💻") == "emoji 👩\u200d💻"
    nasty = ev("ok\x1b]0;title\x07", nick="m\nallory\x1b")
    assert (
        format_event(nasty, "x") == "2023-11-14 22:13:20 <m\\x0aallory\\x1b> ok\\x1b]0;title\\x07\n"
    )


@given(st.text(max_size=100), st.text(min_size=1, max_size=20))
def test_every_event_is_whole_lines_with_no_raw_controls(body: str, nick: str) -> None:
    out = format_event(ev(body, nick=nick), "example.com")
    lines = out.split("\n")
    assert lines[-1] == ""
    assert len(lines) - 1 == body.count("\n") + body.count("\r") - body.count("\r\n") + 1
    for line in lines[:-1]:
        assert line.startswith("2023-11-14 22:13:20 ")
        for ch in line:
            assert unicodedata.category(ch) not in ("Cc", "Zl", "Zp", "Cs"), repr(ch)
            assert not 0x202A <= ord(ch) <= 0x202E and not 0x2066 <= ord(ch) <= 0x2069


def test_notice_line() -> None:
    assert format_notice(T, "bad\nthing") == "2023-11-14 22:13:20 -!- bad\\x0athing\n"


def test_parse_input() -> None:
    assert parse_input("hello") == ("text", "hello")
    assert parse_input("/me waves") == ("action", "waves")
    assert parse_input("/mess") == ("text", "/mess")
    assert parse_input("/me ") is None
    assert parse_input("") is None
    assert parse_input("   ") is None
    assert parse_input("  indented") == ("text", "  indented")


def test_utf8_cut_never_splits_a_character() -> None:
    data = "aé€😀".encode()  # 1 + 2 + 3 + 4 bytes
    assert [utf8_cut(data, n) for n in range(11)] == [0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10]
    assert utf8_cut(b"\x80" * 10, 5) == 5  # not UTF-8: cut where asked


def test_splitter_joins_writes_and_strips_cr() -> None:
    s = LineSplitter(100)
    assert s.feed(b"he") == []
    assert s.feed(b"llo\r\nwor") == [Line(b"hello")]
    assert s.feed(b"ld\n\n") == [Line(b"world"), Line(b"")]
    assert s.feed(b"tail") == []
    assert s.end() == [Line(b"tail")]
    assert s.end() == []


def test_splitter_cuts_long_lines_into_pieces_without_loss() -> None:
    s = LineSplitter(10)
    text = "0123456789abcdefghéé€xyz"
    lines = s.feed(text.encode() + b"\nnext\n")
    assert [line.part for line in lines] == [1, 2, 3, 0]
    assert [line.last for line in lines] == [False, False, True, True]
    assert all(len(line.data) <= 10 for line in lines)
    assert b"".join(line.data for line in lines[:3]).decode() == text
    for line in lines:
        line.data.decode()  # every piece is whole UTF-8
    assert lines[3] == Line(b"next")


def test_splitter_cuts_long_lines_before_the_newline_arrives() -> None:
    s = LineSplitter(4)
    assert s.feed(b"abcdef") == [Line(b"abcd", 1, last=False)]
    assert s.end() == [Line(b"ef", 2)]


@given(st.lists(st.binary(max_size=40), max_size=10), st.integers(4, 30))
def test_splitter_loses_nothing(chunks: list[bytes], limit: int) -> None:
    s = LineSplitter(limit)
    lines = [line for chunk in chunks for line in s.feed(chunk)] + s.end()
    joined = b"".join(chunks)
    rebuilt = b""
    for line in lines:
        rebuilt += line.data + (b"\n" if line.last else b"")
        assert len(line.data) <= limit
    if joined and not joined.endswith(b"\n"):
        joined += b"\n"
    assert rebuilt == joined.replace(b"\r\n", b"\n")
