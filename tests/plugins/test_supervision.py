"""Supervision of plugin processes: restarts, crash loops, bad output, slow
readers, memory limits, shutdown in order, nothing left running."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from bridgehost.testing import running, wait_until
from tests.web.browser import chromium, keep, watched_page
from tests.web.helpers import get, web_app
from tests.web.test_metrics import key, samples

from .helpers import FAST_RESTART, alive, exec_account, script, supervisor

# A well-behaved plugin: ident, then answer pings until bye or EOF.
IDLE = """
ident()
while True:
    m = recv()
    if m.get("t") == "ping":
        send({"t": "pong", "time": m.get("time", 0)})
"""


def one(command: list[str], **extra: object) -> dict[str, object]:
    extra.pop("links", None)
    return {"accounts": {"p": exec_account(command, id="!exec-p@test.example", **extra)}}


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def messages(caplog: pytest.LogCaptureFixture, name: str = "p") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == f"bridgehost.plugin.{name}"]


async def test_killed_plugin_is_restarted(tmp_path: Path) -> None:
    async with running(tmp_path, one(script(tmp_path, "idle", IDLE))) as srv:
        sup = supervisor(srv, "p")
        await wait_until(lambda: sup.state.pid is not None, what="started")
        first = sup.state.pid
        assert first is not None
        await wait_until(lambda: srv.app.server.hub.is_online("!exec-p@test.example"))
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: sup.state.pid not in (None, first), 5, "restarted")
        await wait_until(lambda: srv.app.server.hub.is_online("!exec-p@test.example"))
        assert sup.state.state == "running"
        assert sup.state.restarts == 1
        assert sup.state.last_exit == "killed by SIGKILL"
        assert not alive(first)


async def test_plugin_crashing_on_start_is_stopped_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crash = 'sys.stderr.write("ERROR no config for me\\n"); sys.exit(3)'
    command = script(tmp_path, "crash", crash)
    restart = {**FAST_RESTART, "burst": 3, "interval": 60}
    config = one(command, restart=restart, links=None)
    async with web_app(tmp_path, config) as (srv, url):
        sup = supervisor(srv, "p")
        await wait_until(lambda: sup.state.state == "failed", 10, "left stopped")
        assert sup.state.starts == 3
        await asyncio.sleep(0.5)  # nothing restarts it meanwhile
        assert sup.state.starts == 3 and sup.state.pid is None
        [plugin] = srv.app.status()["plugins"]
        assert plugin["state"] == "failed"
        assert plugin["last_exit"] == "exited with code 3"
        assert "3 exits within 60 s: left stopped" in plugin["last_error"]
        assert plugin["failing_since"] is not None
        code, body, _ = await get(url + "/healthz")
        assert code == 503
        assert "exec p left stopped: exited with code 3; 3 exits within 60 s" in body
        metrics = samples((await get(url + "/metrics"))[1])
        labels = {"plugin": "p", "kind": "exec"}
        assert metrics[key("bridgehost_plugin_state", labels, state="failed")] == 1
        assert metrics[key("bridgehost_plugin_state", labels, state="running")] == 0
        assert metrics[key("bridgehost_plugin_restarts_total", labels)] == 2
        assert metrics[key("bridgehost_plugin_failing_seconds", labels)] > 0
        code, page, _ = await get(url + "/")
        assert code == 200
        section = page[page.index('<section aria-label="Plugin processes">') :]
        assert "exec <b>p</b> !exec-p@test.example" in section
        assert '<span class="state bad">failed</span> (down since' in section
        assert "exited with code 3" in section
        assert "3 exits within 60 s: left stopped" in section
        assert str(command[-1]) not in page  # no command line: it may carry a secret
        await _screenshot(url, tmp_path)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(r.getMessage() == "no config for me" for r in errors), "stderr level kept"
    assert any("left stopped" in r.getMessage() for r in errors)


async def _screenshot(url: str, tmp_path: Path) -> None:
    """The status page with a failed plugin, at phone width (looked at by a person)."""
    async with chromium() as browser:
        watched = await watched_page(browser, viewport={"width": 390, "height": 844})
        await watched.page.goto(url + "/")
        row = watched.page.get_by_role("region", name="Plugin processes").get_by_role("row")
        assert await row.filter(has_text="left stopped").count() == 1
        path = tmp_path / "status-plugin-failed.png"
        await watched.page.screenshot(path=str(path), full_page=True)
        keep(path)
        assert watched.errors == []


async def test_garbage_on_stdout_is_cut_off_with_a_clear_line_and_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    command = script(
        tmp_path,
        "chatty",
        """
        ident()
        print("hello, I am a plugin", flush=True)  # not a frame: its 2 bytes say 26725
        time.sleep(3600)
        """,
    )
    async with running(tmp_path, one(command, restart=FAST_RESTART, grace=0.5)) as srv:
        sup = supervisor(srv, "p")
        await wait_until(lambda: sup.state.starts >= 2, 10, "restarted")
    lines = messages(caplog)
    assert any(
        "session ended while running: bridgehost ended it (bye bad-frame: bad-frame:" in line
        for line in lines
    ), lines


async def test_plugin_that_stops_reading_is_a_slow_consumer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    command = script(
        tmp_path,
        "deaf",
        """
        ident()
        send({"t": "sub", "topic": "#busy@test.example", "rid": 2})
        time.sleep(3600)  # reads nothing more
        """,
    )
    limits = {"send_buffer": 16384, "rate": 100000, "burst": 100000}
    config = {**one(command, restart=FAST_RESTART, grace=0.5), "server": {"limits": limits}}
    async with running(tmp_path, config) as srv:
        sup = supervisor(srv, "p")
        alice = await srv.client("alice")
        await alice.sub("#busy@test.example")
        await wait_until(lambda: srv.app.server.hub.is_online("!exec-p@test.example"))
        await wait_until(lambda: len(srv.app.server.hub.topics["#busy@test.example"].subs) == 2)
        body = "x" * 1000
        for _ in range(200):
            await alice.publish("#busy@test.example", body)
            if sup.state.starts >= 2:
                break
        await wait_until(lambda: sup.state.starts >= 2, 10, "cut off and restarted")
        event = await alice.publish("#busy@test.example", "alice was never held up")
        assert event.seq > 1
    assert any("bye slow-consumer" in line for line in messages(caplog))


async def test_memory_limit_applies_to_the_plugin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    command = script(
        tmp_path,
        "hungry",
        """
        ident()
        hog = bytearray(512 * 1024 * 1024)
        time.sleep(3600)
        """,
    )
    config = one(command, limits={"memory_mb": 128}, restart={**FAST_RESTART, "burst": 2})
    async with running(tmp_path, config) as srv:
        sup = supervisor(srv, "p")
        await wait_until(lambda: sup.state.state == "failed", 15, "stopped")
        assert sup.state.last_exit == "exited with code 1"
    assert any(line.endswith("its last words: MemoryError") for line in messages(caplog))


async def test_shutdown_says_bye_then_sigterm_then_sigkill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    command = script(
        tmp_path,
        "stubborn",
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ident()
        while True:
            try:
                recv()
            except SystemExit:  # bye and EOF: stays anyway
                time.sleep(3600)
        """,
    )
    async with running(tmp_path, one(command, grace=0.3)) as srv:
        sup = supervisor(srv, "p")
        await wait_until(lambda: srv.app.server.hub.is_online("!exec-p@test.example"))
        pid = sup.state.pid
        assert pid is not None
        started = time.monotonic()
    assert time.monotonic() - started < 5
    assert not alive(pid)
    lines = messages(caplog)
    assert "did not exit 0.3 s after SIGTERM: SIGKILL" in lines
    assert "stopped (killed by SIGKILL)" in lines


async def test_ident_as_another_id_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "reply"
    command = script(
        tmp_path,
        "impostor",
        f"""
        reply = ident("alice@test.example")
        head = sys.stdin.buffer.read(2)
        bye = cbor2.loads(sys.stdin.buffer.read(struct.unpack("<H", head)[0]))
        open({str(out)!r}, "w").write(repr([reply, bye]))
        time.sleep(3600)
        """,
    )
    async with running(tmp_path, one(command, restart={**FAST_RESTART, "burst": 1})) as srv:
        await wait_until(out.exists, what="the refusal")
        assert not srv.app.server.hub.is_online("alice@test.example")
    text = out.read_text()
    assert "'code': 'auth-failed'" in text and "'reason': 'auth-failed'" in text
