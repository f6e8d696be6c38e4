"""Pure text conversions between IRC lines and Scalar bodies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgehost.adapters.formatting import (
    IRC_LINE_MAX,
    body_lines,
    clean_nick,
    irc_to_scalar,
    render_lines,
    split_utf8,
    strip_formatting,
    text_budget,
    to_markdown,
    truncate_utf8,
)

B, C, R, It, U, S, M, V = "\x02", "\x03", "\x0f", "\x1d", "\x1f", "\x1e", "\x11", "\x16"


@pytest.mark.parametrize(
    ("irc", "plain"),
    [
        (f"{B}bold{B} text", "bold text"),
        (f"{C}4red{C} and {C}04,12both{C}", "red and both"),
        (f"{C}12,hello", ",hello"),
        (f"{C}99,99x", "x"),
        (f"{C}", ""),
        ("\x04ff0000hex\x04", "hex"),
        ("\x04ff0000,00ff00two", "two"),
        (f"{It}it{R}{U}under{U}{S}strike{S}{M}mono{M}{V}rev", "itunderstrikemonorev"),
        (f"5 {C}3 apples", "5  apples"),
        ("bell\x07 and \x01ctcp\x01", "bell and ctcp"),
        ("tab\tkept", "tab\tkept"),
    ],
)
def test_strip_formatting(irc: str, plain: str) -> None:
    assert strip_formatting(irc) == plain


def test_colour_digits_are_not_eaten_beyond_two() -> None:
    assert strip_formatting(f"{C}4123") == "23"
    assert strip_formatting(f"{C}4,5123") == "23"


@pytest.mark.parametrize(
    ("irc", "md"),
    [
        (f"{B}bold{B} plain", "**bold** plain"),
        (f"{It}it{It}", "*it*"),
        (f"{S}gone{S}", "~~gone~~"),
        (f"{M}x = 1{M}", "`x = 1`"),
        (f"{M}a`b{M}", "`` a`b ``"),
        (f"{B}bold {It}both{R} none", "**bold** ***both*** none"),
        (f"{B} spaced {B}", " **spaced** "),
        (f"{C}4red{C} 2*3*4", "red 2\\*3\\*4"),
        (f"{U}under{U}_x_", "under\\_x\\_"),
        (f"{B}{B}", ""),
    ],
)
def test_to_markdown(irc: str, md: str) -> None:
    assert to_markdown(irc) == md


def test_irc_to_scalar_markdown_only_when_asked_and_styled() -> None:
    assert irc_to_scalar(f"{B}hi{B}", markdown=False) == ("hi", None)
    assert irc_to_scalar(f"{B}hi{B}", markdown=True) == ("**hi**", "text/markdown")
    assert irc_to_scalar("2*3", markdown=True) == ("2*3", None)


def test_body_lines_splits_breaks_and_drops_nul_and_ctcp() -> None:
    assert body_lines("a\r\nb\rc\nd") == ["a", "b", "c", "d"]
    assert body_lines("hi\r\nQUIT :pwned") == ["hi", "QUIT :pwned"]
    assert body_lines("x\x00y\x01z") == ["xyz"]
    assert body_lines("one\n\n  \ntwo  ") == ["one", "two"]


def test_split_utf8_respects_limit_and_characters() -> None:
    text = "é" * 300  # 2 bytes each
    pieces = split_utf8(text, 101)
    assert all(len(p.encode()) <= 101 for p in pieces)
    assert "".join(pieces) == text
    emoji = "😀" * 50  # 4 bytes each
    pieces = split_utf8(emoji, 10)
    assert [len(p) for p in pieces[:2]] == [2, 2]
    assert "".join(pieces) == emoji


def test_split_utf8_prefers_spaces_and_keeps_them() -> None:
    assert split_utf8("aaaa bbbb cccc", 10) == ["aaaa bbbb ", "cccc"]
    assert split_utf8("a" * 25, 10) == ["a" * 10, "a" * 10, "a" * 5]
    assert split_utf8("", 10) == [""]


@given(st.text(min_size=0, max_size=400), st.integers(min_value=4, max_value=120))
def test_split_utf8_property(text: str, limit: int) -> None:
    pieces = split_utf8(text, limit)
    assert all(len(p.encode()) <= limit for p in pieces)
    assert "".join(pieces) == text  # nothing lost


def test_truncate_utf8() -> None:
    assert truncate_utf8("ééé", 5) == "éé"
    assert truncate_utf8("abc", 5) == "abc"


def test_text_budget_counts_the_relayed_prefix() -> None:
    budget = text_budget("PRIVMSG", "#chan")
    worst = f":{'n' * 30}!~{'u' * 10}@{'h' * 63} PRIVMSG #chan :"
    assert len(worst) + budget + 2 == IRC_LINE_MAX
    assert text_budget("PRIVMSG", "#chan", action=True) == budget - 9
    assert text_budget("PRIVMSG", "#chän") == budget - 1


def test_render_lines_formats_each_line() -> None:
    out = render_lines("one\ntwo", nick="bob", fmt="<{nick}> {body}", budget=400, max_lines=5)
    assert out.lines == ("<bob> one", "<bob> two")
    assert not out.linked


def test_render_lines_sends_everything_without_a_link() -> None:
    body = "\n".join(f"line {i}" for i in range(10))
    out = render_lines(body, nick="bob", fmt="<{nick}> {body}", budget=400, max_lines=3)
    assert out.lines == tuple(f"<bob> line {i}" for i in range(10)) and not out.linked


def test_render_lines_links_the_rest_past_max_lines() -> None:
    body = "\n".join(f"line {i}" for i in range(10))
    out = render_lines(
        body, nick="bob", fmt="<{nick}> {body}", budget=400, max_lines=3, link="https://x/m/1"
    )
    assert out.linked
    assert out.lines == ("<bob> line 0", "<bob> line 1", "<bob> [… 8 more lines: https://x/m/1]")


def test_render_lines_long_line_fits_budget_and_loses_nothing() -> None:
    body = "ü" * 2000
    out = render_lines(body, nick="bob", fmt="<{nick}> {body}", budget=100, max_lines=4)
    assert all(len(line.encode()) <= 100 for line in out.lines)
    assert "".join(line.removeprefix("<bob> ") for line in out.lines) == body
    out = render_lines(
        body, nick="bob", fmt="<{nick}> {body}", budget=100, max_lines=4, link="https://x/m/1"
    )
    assert len(out.lines) == 4 and out.lines[-1].endswith("https://x/m/1]")
    assert all(len(line.encode()) <= 100 for line in out.lines)


def test_render_lines_never_contains_protocol_breakers() -> None:
    body = "hi\r\nQUIT :pwned\x00\rJOIN #x\n"
    out = render_lines(
        body, nick=clean_nick("e\r\nvil"), fmt="<{nick}> {body}", budget=400, max_lines=9
    )
    assert out.lines == ("<evil> hi", "<evil> QUIT :pwned", "<evil> JOIN #x")
    out = render_lines("x", nick="e\r\nv\x01il", fmt="<{nick}> {body}", budget=400, max_lines=9)
    assert out.lines == ("<evil> x",)


@given(st.text(max_size=3000), st.text(max_size=64))
def test_render_lines_property(body: str, nick: str) -> None:
    nick = clean_nick(nick)
    out = render_lines(body, nick=nick, fmt="<{nick}> {body}", budget=300, max_lines=5)
    for line in out.lines:
        assert len(line.encode()) <= 300 + len(nick.encode())
        assert not any(ch in line for ch in "\r\n\0\x01")
