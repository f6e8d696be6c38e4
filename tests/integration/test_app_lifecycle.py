"""`App.open` is one scope: a start-up that fails at any step closes what had
started (no task, no socket, no data-dir lock left behind) and raises the
original error; a Fatal adapter is stopped while the rest runs on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridgehost.adapters import spec as adapter_specs
from bridgehost.adapters.base import AdapterContext
from bridgehost.adapters.spec import AdapterSpec
from bridgehost.adapters.state import LinkState
from bridgehost.app import App
from bridgehost.bots.host import BotHost
from bridgehost.runtime import Fatal
from bridgehost.scalar.store import DataDirInUse, Store
from bridgehost.testing import make_config, running
from bridgehost.web.server import ListenError
from tests.servers.ircd import free_port


class Boom(Exception):
    pass


def open_sockets() -> int:
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@contextlib.contextmanager
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def nothing_left(tmp_path: Path, tasks: set[asyncio.Task[Any]], sockets: int) -> None:
    """No task or socket more than before, and the data dir can be owned again."""
    for _ in range(50):
        if other_tasks() <= tasks and open_sockets() <= sockets:
            break
        await asyncio.sleep(0.02)
    assert other_tasks() - tasks == set()
    assert open_sockets() <= sockets
    store = await Store.open(tmp_path / "data", owner=True)
    await store.close()


def config_with(tmp_path: Path, scalar_port: int, **extra: Any) -> Any:
    return make_config(
        tmp_path,
        {"server": {"listen": [f"tcp://127.0.0.1:{scalar_port}"]}, **extra},
    )


# --- the adapters used to inject failures -----------------------------------------------


class Steady:
    """An adapter that holds an in-process Scalar session until cancelled."""

    def __init__(self, ctx: AdapterContext) -> None:
        self.ctx, self.name = ctx, ctx.account.name
        self.started = asyncio.Event()
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        client = await self.ctx.connect()
        try:
            self.started.set()
            await asyncio.Future()
        finally:
            await client.close()

    def status(self) -> list[LinkState]:
        return []


class Refused(Fatal):
    pass


class Doomed(Steady):
    """Runs once, then finds out its credentials are refused."""

    async def run(self) -> None:
        self.runs += 1
        self.started.set()
        raise Refused("the network refused our password")


def explodes(ctx: AdapterContext) -> Steady:
    raise Boom("adapter cannot be built")


FAKES = {"steady": Steady, "doomed": Doomed, "broken": explodes}
"""By account name: the adapter an fs account of that name gets instead."""


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> list[Steady]:
    """Every fake adapter the app built, in order."""
    built: list[Steady] = []
    fs = adapter_specs.adapter_spec("fs")

    def factory(ctx: AdapterContext) -> Steady:
        adapter = FAKES[ctx.account.name](ctx)
        built.append(adapter)
        return adapter

    spec = AdapterSpec(type="fs", read=fs.read, load=lambda: factory)
    monkeypatch.setattr("bridgehost.app.adapter_spec", lambda type_: spec)
    return built


def accounts(tmp_path: Path, *names: str) -> dict[str, Any]:
    out = {}
    for name in names:
        (tmp_path / name).mkdir(exist_ok=True)
        out[name] = {"type": "fs", "root": str(tmp_path / name)}
    return out


# --- each start-up step fails -------------------------------------------------------------


async def test_store_step_fails_when_another_server_owns_the_data_dir(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        tasks, sockets = other_tasks(), open_sockets()
        port = free_port()
        with pytest.raises(DataDirInUse):
            async with App.open(config_with(tmp_path, port)):
                pytest.fail("started twice on one data dir")
        assert await refused(port)
        assert other_tasks() - tasks == set() and open_sockets() <= sockets
        alice = await srv.client("alice")  # the first one is unharmed
        await alice.sub(srv.channel("x"))


async def test_server_step_fails_on_its_second_listener(tmp_path: Path) -> None:
    tasks, sockets = other_tasks(), open_sockets()
    first = free_port()
    with busy_port() as second:
        config = make_config(
            tmp_path,
            {"server": {"listen": [f"tcp://127.0.0.1:{first}", f"tcp://127.0.0.1:{second}"]}},
        )
        with pytest.raises(OSError, match="address already in use"):
            async with App.open(config):
                pytest.fail("started with a port in use")
    assert await refused(first)
    await nothing_left(tmp_path, tasks, sockets)


async def test_http_step_fails_on_a_busy_port(tmp_path: Path) -> None:
    tasks, sockets = other_tasks(), open_sockets()
    port = free_port()
    with busy_port() as http:
        config = config_with(tmp_path, port, http={"listen": f"127.0.0.1:{http}"})
        with pytest.raises(ListenError):
            async with App.open(config):
                pytest.fail("started with the HTTP port in use")
    assert await refused(port)
    await nothing_left(tmp_path, tasks, sockets)


async def test_adapter_step_fails_after_another_adapter_started(
    tmp_path: Path, fakes: list[Steady]
) -> None:
    tasks, sockets = other_tasks(), open_sockets()
    port = free_port()
    config = config_with(tmp_path, port, accounts=accounts(tmp_path, "steady", "broken"))
    with pytest.raises(Boom):
        async with App.open(config):
            pytest.fail("started with an adapter that cannot be built")
    assert [type(a) for a in fakes] == [Steady]
    assert await refused(port)
    await nothing_left(tmp_path, tasks, sockets)


async def test_bot_step_fails_after_adapters_and_bots_run(
    tmp_path: Path, fakes: list[Steady], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = BotHost.start

    async def start_then_fail(self: BotHost, bots: Any) -> None:
        await real_start(self, bots)
        assert self.runners and all(r.ready.is_set() for r in self.runners.values())
        assert fakes[0].started.is_set()
        raise Boom("bot host failed after starting its bots")

    monkeypatch.setattr(BotHost, "start", start_then_fail)
    tasks, sockets = other_tasks(), open_sockets()
    port = free_port()
    config = config_with(
        tmp_path,
        port,
        accounts=accounts(tmp_path, "steady"),
        bots=[{"plugin": "ping", "id": "!ping@test.example", "topics": ["#lobby@test.example"]}],
    )
    with pytest.raises(Boom):
        async with App.open(config):
            pytest.fail("started although the bots failed")
    assert await refused(port)
    await nothing_left(tmp_path, tasks, sockets)


async def test_a_failure_in_the_body_closes_everything_and_is_raised_as_is(
    tmp_path: Path, fakes: list[Steady]
) -> None:
    tasks, sockets = other_tasks(), open_sockets()
    port = free_port()
    config = config_with(tmp_path, port, accounts=accounts(tmp_path, "steady"))
    with pytest.raises(Boom):
        async with App.open(config) as app:
            await asyncio.wait_for(fakes[0].started.wait(), 5)
            assert not await refused(port) and app.urls
            raise Boom("the caller's own failure")
    assert await refused(port)
    await nothing_left(tmp_path, tasks, sockets)


async def test_cancelling_the_scope_closes_everything(tmp_path: Path, fakes: list[Steady]) -> None:
    """What the CLI does on SIGINT/SIGTERM."""
    tasks, sockets = other_tasks(), open_sockets()
    port = free_port()
    config = config_with(tmp_path, port, accounts=accounts(tmp_path, "steady"))
    up = asyncio.Event()

    async def serve() -> None:
        async with App.open(config):
            up.set()
            await asyncio.Future()

    serving = asyncio.ensure_future(serve())
    await asyncio.wait_for(up.wait(), 10)
    await asyncio.wait_for(fakes[0].started.wait(), 5)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert await refused(port)
    await nothing_left(tmp_path, tasks, sockets)


# --- Fatal ------------------------------------------------------------------------------


async def test_a_fatal_adapter_is_stopped_once_and_the_rest_runs_on(
    tmp_path: Path, fakes: list[Steady], caplog: pytest.LogCaptureFixture
) -> None:
    config_accounts = accounts(tmp_path, "doomed", "steady")
    async with running(tmp_path, {"accounts": config_accounts}) as srv:
        doomed, steady = fakes
        await asyncio.wait_for(steady.started.wait(), 5)
        await asyncio.sleep(2.5)  # a restart would have come within the supervisor's backoff
        assert doomed.runs == 1 and steady.runs == 1
        stopped = [r.getMessage() for r in caplog.records if "not restarted" in r.getMessage()]
        assert stopped == [
            "adapter doomed stopped, not restarted: the network refused our password"
        ]
        alice = await srv.client("alice")  # the app serves on
        await alice.sub(srv.channel("x"))
        event = await alice.publish(srv.channel("x"), "still here")
        assert event.seq == 1
