"""IRC rendering of rich events, corrections, nick styles, reactions, netsplits (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridgehost.adapters.formatting import IRC_LINE_MAX, strip_formatting
from bridgehost.adapters.irc.correction import apply_sed, correction, parse_sed
from bridgehost.adapters.irc.membership import Roster, SplitCollector
from bridgehost.adapters.irc.memory import Said
from bridgehost.adapters.irc.nicks import PALETTE, ZWJ, NickStyle, anti_highlight, colour_of
from bridgehost.adapters.irc.reactions import ReactionGate
from bridgehost.adapters.irc.render import IrcStyle, Renderer
from bridgehost.adapters.irc.tags import parse_tags, tag_value
from bridgehost.scalar.events import Event

PLAIN = NickStyle(colours=False, anti_highlight=False)


def ev(body: str, kind: str = "text", nick: str | None = "bob", **kw: Any) -> Event:
    return Event(
        id=bytes(32),
        topic="#c@d",
        seq=1,
        sender="!irc-x@d",
        time=0,
        body=body,
        kind=kind,
        nick=nick,
        **kw,
    )


def renderer(**style: Any) -> Renderer:
    style.setdefault("nicks", PLAIN)
    return Renderer(IrcStyle(**style), "#chan", nick_len=30)


def lines(r: Renderer, event: Event, **kw: Any) -> tuple[str, ...]:
    said = r.render(event, **kw)
    assert said is not None
    return said.lines


# --- nicks ---------------------------------------------------------------------------


def test_anti_highlight_puts_a_zero_width_joiner_after_the_first_character() -> None:
    assert anti_highlight("alice") == "a" + ZWJ + "lice"
    assert anti_highlight("é") == "é" + ZWJ
    assert anti_highlight("") == ""
    assert NickStyle(colours=False).plain("alice") == "a\u200dlice"


def test_nick_colour_is_stable_readable_and_case_blind() -> None:
    assert colour_of("alice") == colour_of("ALICE")
    assert colour_of("alice") in PALETTE and 0 not in PALETTE and 1 not in PALETTE
    # Fixed values: CRC-32, never Python's per-process salted hash.
    assert [colour_of(n) for n in ("alice", "bob", "carol", "dave")] == [
        colour_of(n) for n in ("Alice", "Bob", "Carol", "Dave")
    ]
    used = {colour_of(f"user{i}") for i in range(200)}
    assert len(used) == len(PALETTE)


def test_format_fields_nick_is_coloured_plainnick_is_not() -> None:
    fields = NickStyle().fields("7bob")
    assert fields["plainnick"] == "7" + ZWJ + "bob"
    code = f"{colour_of('7bob'):02d}"
    assert fields["nick"] == f"\x03{code}7{ZWJ}bob\x03"
    assert strip_formatting(fields["nick"]) == fields["plainnick"]


def test_default_style_lines_are_coloured_and_do_not_ping() -> None:
    r = Renderer(IrcStyle(), "#chan", nick_len=30)
    (line,) = lines(r, ev("hello"))
    assert line.startswith("<\x03") and "bob" not in line and "b\u200dob" in line
    r = Renderer(IrcStyle(format="[{plainnick}] {body}"), "#chan", nick_len=30)
    assert lines(r, ev("hello")) == ("[b\u200dob] hello",)


# --- replies, long messages ----------------------------------------------------------


def test_reply_names_the_one_it_answers_once() -> None:
    r = renderer()
    alice = Said("alice", "what time is it?", msgid="abc")
    said = r.render(ev("noon"), reply=alice)
    assert said is not None and said.lines == ("<bob> alice: noon",) and said.reply_msgid == "abc"
    assert lines(r, ev("alice: noon"), reply=alice) == ("<bob> alice: noon",)
    assert lines(renderer(replies=False), ev("noon"), reply=alice) == ("<bob> noon",)
    assert lines(r, ev("noon")) == ("<bob> noon",)


def test_long_message_keeps_every_character_without_a_link() -> None:
    body = "\n".join(f"line {i} " + "x" * 50 for i in range(30))
    got = lines(renderer(max_lines=10), ev(body))
    assert len(got) == 30
    assert "\n".join(g.removeprefix("<bob> ") for g in got) == body


def test_long_message_past_max_lines_is_linked() -> None:
    body = "\n".join(f"line {i}" for i in range(30))
    said = renderer(max_lines=10).render(ev(body), link="https://chat.example/m/ab12")
    assert said is not None and said.linked
    assert said.lines[:9] == tuple(f"<bob> line {i}" for i in range(9))
    assert said.lines[9] == "<bob> [… 21 more lines: https://chat.example/m/ab12]"
    short = renderer(max_lines=10).render(ev("one\ntwo"), link="https://x/m/1")
    assert short is not None and short.lines == ("<bob> one", "<bob> two") and not short.linked


@given(st.text(max_size=4000), st.text(max_size=64))
def test_every_line_fits_and_carries_no_protocol_breaker(body: str, nick: str) -> None:
    r = Renderer(IrcStyle(), "#chan", nick_len=30)
    said = r.render(ev(body, nick=nick))
    assert said is not None
    prefix = len(f":{'n' * 30}!~{'u' * 10}@{'h' * 63} PRIVMSG #chan :")
    for line in said.lines:
        assert prefix + len(line.encode()) + 2 <= IRC_LINE_MAX
        assert not any(ch in line for ch in "\r\n\0\x01")


# --- edits, deletes, reactions, topic, membership -----------------------------------------


def test_edit_small_change_is_a_correction() -> None:
    old = Said("bob", "I think this is teh answer to the question")
    new = ev("I think this is the answer to the question", kind="edit")
    assert lines(renderer(), new, target=old) == ("<bob> s/teh/the/",)


def test_edit_big_change_or_unknown_target_is_the_new_text() -> None:
    new = ev("something else entirely", kind="edit")
    assert lines(renderer(), new, target=Said("bob", "hello")) == (
        "<bob> * something else entirely",
    )
    assert lines(renderer(), new) == ("<bob> * something else entirely",)
    partial = Said("bob", "I think this is teh answer", complete=False)
    fixed = ev("I think this is the answer", kind="edit")
    assert lines(renderer(), fixed, target=partial) == ("<bob> * I think this is the answer",)


def test_edit_modes_full_and_off_and_no_op_edit() -> None:
    old = Said("bob", "I think this is teh answer to the question")
    new = ev("I think this is the answer to the question", kind="edit")
    assert lines(renderer(edits="full"), new, target=old) == (
        "<bob> * I think this is the answer to the question",
    )
    assert renderer(edits="off").render(new, target=old) is None
    same = ev(old.text, kind="edit")
    assert renderer().render(same, target=old) is None


def test_delete_is_silent_by_default() -> None:
    assert renderer().render(ev("", kind="delete"), target=Said("bob", "x")) is None
    assert lines(renderer(deletes=True), ev("", kind="delete")) == ("* bob deleted a message",)


def test_reaction_line_quotes_the_target_briefly() -> None:
    target = Said("alice", "a rather long message that goes on and on and on forever")
    (line,) = lines(renderer(), ev("👍", kind="react"), target=target)
    assert line == '* bob reacted 👍 to alice: "a rather long message that goes on and o…"'
    assert lines(renderer(), ev("👍", kind="react")) == ("* bob reacted 👍",)
    assert renderer(reactions=False).render(ev("👍", kind="react"), target=target) is None
    r = Renderer(IrcStyle(), "#chan", nick_len=30)
    (line,) = lines(r, ev("👍", kind="react"), target=target)
    assert "a\u200dlice" in line and "b\u200dob" in line  # neither is pinged


def test_reactions_summary_line() -> None:
    said = renderer().reactions(["bob", "carol", "bob"], ["👍", "❤", "👍"], Said("al", "hi"))
    assert said.lines == ('* bob, carol reacted 👍 ❤ to al: "hi"',)


def test_topic_is_one_line_and_switchable() -> None:
    said = renderer().render(ev("new\ntopic  here", kind="topic"))
    assert said is not None and said.command == "topic" and said.lines == ("new topic here",)
    assert renderer(topic=False).render(ev("x", kind="topic")) is None


def test_membership_is_off_by_default() -> None:
    assert renderer().render(ev("", kind="join")) is None
    r = renderer(membership=True)
    assert lines(r, ev("", kind="join")) == ("* bob joined",)
    assert lines(r, ev("timeout", kind="part")) == ("* bob left (timeout)",)
    assert lines(r, ev("", kind="part")) == ("* bob left",)


def test_unknown_kinds_and_presence_show_nothing() -> None:
    assert renderer().render(ev("online", kind="presence")) is None
    assert renderer().render(ev("??", kind="future-kind")) is None


# --- corrections ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "fix"),
    [
        ("the cat sat on the mat today again", "the cat sat on the hat today again", "s/mat/hat/"),
        ("a b c d e f g h i j k l", "a b c d e f g h i j k l m", "s/l/l m/"),
        (
            "see http://x/y for the full details of it",
            "see http://x/z for the full details of it",
            "s/y/z/",
        ),
        (
            "use a/b here in the config file please",
            "use a/c here in the config file please",
            "s/b/c/",
        ),
        ("go to a/b now and then see", "go to c/d now and then see", "s|a/b|c/d|"),
        (
            "this is a long sentence with a typo in it now",
            "this is a long sentence with a typo in it",
            "s/it now/it/",
        ),
        ("helo world", "hello world", None),
        ("same", "same", None),
        ("one\ntwo", "one\nthree", None),
    ],
)
def test_correction(old: str, new: str, fix: str | None) -> None:
    assert correction(old, new) == fix


@given(st.text(alphabet="ab /|#,:!x\t", max_size=40), st.text(alphabet="ab /|#,:!x", max_size=40))
def test_correction_applied_gives_the_new_text(old: str, new: str) -> None:
    fix = correction(old, new)
    if fix is None:
        return
    d = fix[1]
    part, repl = fix[2:-1].split(d)
    assert old.replace(part, repl, 1) == new


def test_sed_lines() -> None:
    assert parse_sed("s/teh/the/") == ("teh", "the", "")
    assert parse_sed("s/teh/the") == ("teh", "the", "")
    assert parse_sed(" s/a\\/b/c/g ") == ("a/b", "c", "g")
    assert parse_sed("s/x/y/ and more") is None
    assert parse_sed("hello") is None
    assert apply_sed("teh cat teh", ("teh", "the", "g")) == "the cat the"
    assert apply_sed("teh cat teh", ("teh", "the", "")) == "the cat teh"
    assert apply_sed("Teh", ("teh", "the", "i")) == "the"
    assert apply_sed("a.c", (".", "!", "")) == "a!c"  # literal, not a regex
    assert apply_sed("abc", ("x", "y", "")) is None


# --- reaction gate -------------------------------------------------------------------


def test_reaction_gate_one_line_per_target_per_interval() -> None:
    gate = ReactionGate(10.0)
    a, b = b"a" * 32, b"b" * 32
    assert gate.offer(a, "bob", "👍", now=0.0)
    assert gate.offer(b, "bob", "👍", now=1.0)  # another message: shown
    assert not gate.offer(a, "carol", "❤", now=2.0)
    assert not gate.offer(a, "dave", "👍", now=3.0)
    assert gate.next_due() == 10.0
    assert gate.due(9.9) == []
    (held,) = gate.due(10.0)
    assert (held.target, held.who, held.keys) == (a, ["carol", "dave"], ["❤", "👍"])
    assert not gate.offer(a, "erin", "👍", now=12.0)  # the summary started a new interval
    assert gate.offer(b, "erin", "👍", now=11.5)


# --- roster and netsplits ------------------------------------------------------------


def test_roster_tracks_members_for_quits() -> None:
    r = Roster()
    r.names("#a", ["@alice", "+Bob", "carol"])
    r.end_of_names("#a")
    r.joined("#b", "bob")
    r.renamed("carol", "caz")
    assert r.members("#a") == ["alice", "Bob", "caz"]
    assert sorted(r.quit("BOB")) == ["#a", "#b"]
    r.parted("#a", "alice")
    assert ("#a", "alice") not in r and ("#a", "caz") in r
    r.left_channel("#a")
    assert r.quit("caz") == []


def test_netsplit_becomes_one_summary_per_channel() -> None:
    s = SplitCollector(window=3.0)
    assert s.is_split("hub.example.net leaf.example.net")
    assert not s.is_split("Quit: bye") and not s.is_split("Ping timeout: 240 seconds")
    for i in range(20):
        s.add("#a", f"user{i}", "hub.example.net leaf.example.net", now=i * 0.1)
    assert s.due(2.9) == []
    (split,) = s.due(3.0)
    nick, body = split.summary()
    assert len(nick) <= 64 and nick.startswith("user0, user1") and nick.endswith("others")
    assert body.startswith("netsplit hub.example.net leaf.example.net (user0, user1")
    assert all(f"user{i}" in body for i in range(20))
    two = SplitCollector()
    two.add("#a", "x", "a.b c.d", 0)
    two.add("#a", "y", "a.b c.d", 0)
    assert two.due(5)[0].summary() == ("x, y", "netsplit a.b c.d")


def test_tag_values_cannot_end_the_tags_or_the_line() -> None:
    assert tag_value("a b;c\\d\r\ne") == "a\\sb\\:c\\\\d\\r\\ne"
    assert parse_tags([{"key": "msgid", "value": "x"}, {"key": "+flag", "value": None}, 5]) == {
        "msgid": "x",
        "+flag": None,
    }
