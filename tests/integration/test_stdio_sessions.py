"""§12 inherited stdio: a real child process speaks raw frames on its stdin and stdout,
pre-authenticated as a reserved ID (ScalarServer.connect_plugin on the session driver)."""

import asyncio
import json
import sys
from pathlib import Path

from bridgehost.scalar.server import PluginConnection, ScalarServer
from bridgehost.testing import running

CHILD = Path(__file__).with_name("stdio_child.py")


async def _child(
    server: ScalarServer, ident: str, claims: str, topic: str
) -> tuple[asyncio.subprocess.Process, PluginConnection]:
    conn, ends = await server.connect_plugin(ident)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            claims,
            topic,
            stdin=ends.stdin,
            stdout=ends.stdout,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        ends.close()
    return proc, conn


async def _report(proc: asyncio.subprocess.Process) -> dict[str, object]:
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), 10)
    assert line, "the child said nothing"
    return dict(json.loads(line))


async def test_a_child_on_stdio_is_its_reserved_id_without_a_secret(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        server = srv.app.server
        assert server is not None
        lobby = srv.channel("lobby")
        alice = await srv.client("alice")
        await alice.sub(lobby)
        proc, conn = await _child(server, "!Weather@test.example", "!weather@test.example", lobby)
        first = await _report(proc)
        assert first == {"welcome": "!weather@test.example", "echo": "hello from stdio"}
        event = await alice.next_event(5)
        assert (event.sender, event.body) == ("!weather@test.example", "hello from stdio")
        assert server.by_kind().get("stdio") == 1 and server.public == 1  # not public
        await alice.publish(lobby, "hi, plugin")
        assert await _report(proc) == {"event": "hi, plugin"}
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        await asyncio.wait_for(conn.ended.wait(), 5)
        assert "stdio" not in server.by_kind()


async def test_any_other_ident_on_the_pipe_is_auth_failed(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        server = srv.app.server
        assert server is not None
        proc, conn = await _child(
            server, "!weather@test.example", "!admin@test.example", srv.channel("lobby")
        )
        report = await _report(proc)
        assert report["refused"] == {
            "t": "error",
            "rid": 1,
            "code": "auth-failed",
            "text": "authentication failed",
        }
        assert report["bye"] == {"t": "bye", "reason": "auth-failed"}
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        await asyncio.wait_for(conn.ended.wait(), 5)
        assert "bye auth-failed" in conn.end_reason()
