"""Pure pieces of plugin support: link reports, stderr lines, config, framing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bridgehost.adapters.state import LinkState
from bridgehost.config import Bridge, ConfigError, Link, parse_config
from bridgehost.config.plugins import ProcessOptions, RestartPolicy
from bridgehost.plugins.process import MAX_LINE, clean_line, describe_exit, level_of
from bridgehost.plugins.report import MAX_EXTRA, LinkMirror, link_report
from bridgehost.plugins.stdio import FRAME_BUDGET, pack
from bridgehost.scalar.errors import BadMessage
from bridgehost.scalar.wire import encode_frame

CHANNEL = "#c@test.example"


def mirror() -> LinkMirror:
    bridge = Bridge(CHANNEL, (Link("irc1", "#chan"),))
    return LinkMirror("irc1", [(bridge, bridge.links[0])])


def child_state(**values: Any) -> LinkState:
    st = LinkState("irc1", "#chan", CHANNEL, "both")
    for key, value in values.items():
        setattr(st, key, value)
    return st


def test_a_report_is_mirrored_and_counters_never_go_back_across_restarts() -> None:
    m = mirror()
    child = child_state(relayed_out=5, relayed_in=2, queued=3)
    child.latency_out.observe(0.02)
    child.set("joined")
    m.apply({"t": "status", "links": [link_report(child)]})
    [st] = m.statuses()
    assert (st.state, st.relayed_out, st.relayed_in, st.queued) == ("joined", 5, 2, 3)
    assert st.latency_out.snapshot().count == 1
    m.apply({"t": "status", "links": [link_report(child)]})  # the same again: no double count
    assert st.relayed_out == 5 and st.latency_out.snapshot().count == 1
    m.new_life()  # the child was restarted: its counters start at 0
    m.process_state("starting")
    again = child_state(relayed_out=2)
    again.latency_out.observe(0.5)
    m.apply({"t": "status", "links": [link_report(again)]})
    assert st.relayed_out == 7 and st.relayed_in == 2
    snap = st.latency_out.snapshot()
    assert snap.count == 2 and snap.sum == pytest.approx(0.52)


def test_process_state_shows_until_the_plugin_reports() -> None:
    m = mirror()
    m.process_state("up")
    assert m.statuses()[0].state == "up"
    m.apply({"links": [{"target": "#chan", "state": "connecting"}]})
    m.process_state("up")
    assert m.statuses()[0].state == "connecting", "the plugin's own word wins while it runs"
    m.process_state("disconnected", "adapter process restarting: killed by SIGKILL")
    st = m.statuses()[0]
    assert st.state == "disconnected" and st.failing_since is not None
    assert st.last_error == "adapter process restarting: killed by SIGKILL"


@pytest.mark.parametrize(
    ("links", "why"),
    [
        ("nope", "must be an array"),
        (["x"], "must be a map"),
        ([{"state": "up"}], "missing field 'target'"),
        ([{"target": "#chan", "state": "sleeping"}], "state must be one of"),
        ([{"target": "#chan", "state": "up", "queued": -1}], "unsigned integer"),
        ([{"target": "#chan", "state": "up", "queued": 2**63}], "too large"),
        (
            [{"target": "#chan", "state": "up", "latency_in": {"counts": [1, 2], "sum_us": 1}}],
            "latency_in.counts must be 16",
        ),
        ([{"target": "", "state": "up"}], "1 to 200 characters"),
        ([{"target": "x", "state": "up", "direction": "sideways"}], "direction"),
    ],
)
def test_malformed_reports_are_bad_messages_and_change_nothing(links: Any, why: str) -> None:
    m = mirror()
    good = {"target": "#chan", "state": "joined"}
    with pytest.raises(BadMessage, match=why):
        m.apply({"links": links if isinstance(links, str) else [good, *links]})
    assert m.statuses()[0].state == "starting" and len(m.statuses()) == 1


def test_extra_links_are_bounded() -> None:
    m = mirror()
    m.apply({"links": [{"target": "(direct messages)", "channel": "!a@x", "state": "up"}]})
    assert [s.target for s in m.statuses()] == ["#chan", "(direct messages)"]
    many = [{"target": f"x{i}", "state": "up"} for i in range(MAX_EXTRA)]
    with pytest.raises(BadMessage, match="beyond the configured"):
        m.apply({"links": many})


def test_status_frames_are_packed_under_the_frame_limit() -> None:
    entries = [link_report(child_state(last_error="e" * 400)) for _ in range(200)]
    chunks = pack(entries)
    assert sum(len(c) for c in chunks) == 200 and len(chunks) > 1
    for chunk in chunks:
        assert len(encode_frame({"t": "status", "rid": 2**32 - 1, "links": chunk})) <= 16384
    assert pack([{"target": "x" * (FRAME_BUDGET + 1)}]) == [], "an entry too big is left out"


def test_stderr_lines_keep_their_level_and_lose_control_characters() -> None:
    assert level_of("WARNING disk almost full") == (logging.WARNING, "disk almost full")
    assert level_of("ERROR: boom") == (logging.ERROR, "boom")
    assert level_of("just text") == (logging.INFO, "just text")
    cleaned = clean_line(b"fake\rINFO line\x1b[31m red\xff\n")
    assert cleaned == "fake\ufffdINFO line\ufffd[31m red\ufffd"
    long = clean_line(b"x" * (MAX_LINE + 10))
    assert long.endswith("[... 10 more characters]") and len(long) < MAX_LINE + 40
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with code 3"


def parse(raw: dict[str, Any], tmp_path: Path, path: Path | None = None) -> Any:
    base = {"server": {"domain": "example.com", "data_dir": str(tmp_path / "d")}}
    return parse_config({**base, **raw}, base=tmp_path, path=path)


def test_process_options_are_read_for_process_accounts(tmp_path: Path) -> None:
    config = parse(
        {
            "accounts": {
                "files": {
                    "type": "fs",
                    "root": "r",
                    "process": True,
                    "limits": {"memory_mb": 300},
                    "grace": 2,
                    "restart": {"burst": 3, "interval": 30},
                },
                "plain": {"type": "fs", "root": "r2"},
            }
        },
        tmp_path,
        tmp_path / "bridgehost.yaml",
    )
    assert config.processes == {
        "files": ProcessOptions(300, 2.0, RestartPolicy(burst=3, interval=30.0))
    }


def test_process_option_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse(
            {
                "accounts": {
                    "a": {"type": "fs", "root": "r", "limits": {"memory_mb": 100}},
                    "b": {"type": "fs", "root": "r", "process": True, "limits": {"memory_mb": 1}},
                    "c": {"type": "fs", "root": "r", "process": True, "restart": {"cap": 0.01}},
                },
                "bots": [
                    {"command": "sh -c x", "id": "!b1@example.com"},
                    {"command": ["sh"], "plugin": "ping", "id": "!b2@example.com"},
                    {"command": ["sh"], "id": "!b3@example.com", "env": {"BRIDGEHOST_ID": "x"}},
                    {"command": ["./nowhere"], "id": "!b4@example.com"},
                    {"command": ["no-such-program-here"], "id": "!b5@example.com"},
                ],
            },
            tmp_path,
        )
    problems = err.value.problems
    for want in (
        "accounts.a.limits: applies to an account with `process: true` only",
        "accounts.b.limits.memory_mb: must be at least 16",
        "accounts.c.restart.cap: must be at least `initial`",
        "bots[0].command: must be a list like [./plugin, --flag] (no shell is used)",
        "bots[1].plugin: a bot is either a `plugin:` class or a `command:`, not both",
        "bots[2].env.BRIDGEHOST_ID: BRIDGEHOST_* variables are set by bridgehost itself",
        f"bots[3].command: no such program: {tmp_path / 'nowhere'}",
        "bots[4].command: 'no-such-program-here' is not on PATH",
    ):
        assert want in problems, (want, problems)


def test_bridgehost_status_lists_plugins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import os

    from bridgehost.cli import main

    data = tmp_path / "d"
    data.mkdir()
    (tmp_path / "c.yaml").write_text(f"server: {{domain: example.com, data_dir: {data}}}\n")
    plugin = {
        "name": "lines",
        "kind": "exec",
        "id": "!lines@example.com",
        "state": "failed",
        "pid": None,
        "restarts": 4,
        "last_exit": "exited with code 3",
        "last_error": "exited with code 3; 5 exits within 60 s: left stopped",
    }
    status = {"pid": os.getpid(), "listening": [], "links": [], "bots": [], "plugins": [plugin]}
    (data / "status.json").write_text(json.dumps(status))
    assert main(["status", "-c", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr().out
    assert "exec lines (!lines@example.com): failed, 4 restart(s), last exited with code 3" in out
    assert "5 exits within 60 s: left stopped" in out
