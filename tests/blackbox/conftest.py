"""Black-box fixtures: run `python -m bridgehost run -c CONFIG` as a subprocess.

Nothing here imports bridgehost; the server is only reached over TCP and its CLI.
"""

from __future__ import annotations

import asyncio
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import scalar_raw  # noqa: E402
from bbhelpers import DOMAIN, uniq  # noqa: E402

REPO = HERE.parents[1]
HOST = "127.0.0.1"

DEFAULTS: dict[str, Any] = {
    "guests": True,
    "keep": 10000,
    "rate": 5,
    "burst": 20,
    "subs": 500,
    "connections": 10000,
    "send_buffer": 1048576,
    "ident": 10,
    "ping": 60,
    "pong": 30,
    "unix": False,  # also listen on unix://<tmp>/scalar.sock
}


_POOL_DONE = object()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _num(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


class ServerHandle:
    """A bridgehost server process plus helpers to reach it."""

    def __init__(self, tmp: Path, **settings: Any) -> None:
        unknown = set(settings) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown server settings: {sorted(unknown)}")
        self.settings = {**DEFAULTS, **settings}
        self.tmp = tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.domain = DOMAIN
        self.port = 0
        self.data_dir = tmp / "data"
        self.config_path = tmp / "config.yaml"
        self.unix_path = tmp / "scalar.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path: Path | None = None
        self._conns: list[scalar_raw.Conn] = []
        self._pool: queue.Queue[Any] | None = None
        self._pool_stop = threading.Event()
        self._pool_thread: threading.Thread | None = None

    # -- process -------------------------------------------------------
    def write_config(self) -> None:
        s = self.settings
        listen = f'"tcp://{self.host}:{self.port}"'
        if s["unix"]:
            listen += f', "unix://{self.unix_path}"'
        text = (
            "server:\n"
            f"  domain: {self.domain}\n"
            f"  listen: [{listen}]\n"
            f'  data_dir: "{self.data_dir}"\n'
            f"  guests: {'true' if s['guests'] else 'false'}\n"
            f"  history: {{keep: {_num(s['keep'])}}}\n"
            f"  limits: {{rate: {_num(s['rate'])}, burst: {_num(s['burst'])}, "
            f"subs: {_num(s['subs'])}, connections: {_num(s['connections'])}, "
            f"send_buffer: {_num(s['send_buffer'])}}}\n"
            f"  timeouts: {{ident: {_num(s['ident'])}, ping: {_num(s['ping'])}, "
            f"pong: {_num(s['pong'])}}}\n"
        )
        self.config_path.write_text(text)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def log_tail(self, n: int = 60) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def start(self, timeout: float = 15.0) -> None:
        assert self.proc is None, "server already running"
        self.port = free_port()
        self.write_config()
        self.starts += 1
        self.log_path = self.tmp / f"server-{self.starts}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the subprocess
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridgehost", "run", "-c", str(self.config_path)],
                cwd=str(REPO),
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                pytest.fail(
                    f"server exited with {rc} during start-up; output:\n"
                    f"{self.log_tail()}\nconfig:\n{self.config_path.read_text()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    f"server did not accept connections on port {self.port} "
                    f"within {timeout}s; output:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, check: bool = True) -> int:
        """SIGTERM, then kill after 10 s. Asserts exit code 0 when `check`."""
        proc = self.proc
        assert proc is not None, "server not running"
        self._pool_stop.set()
        if self._pool_thread is not None:
            self._pool_thread.join(timeout=30)
            self._pool_thread = None
            self._pool = None
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.proc = None
            if check:
                pytest.fail(f"server ignored SIGTERM for 10 s; output:\n{self.log_tail()}")
            return -9
        self.proc = None
        if check:
            assert rc == 0, (
                f"server exited with {rc} on SIGTERM (expected 0); output:\n{self.log_tail()}"
            )
        return rc

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- accounts (CLI, may run while the server runs) ------------------
    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridgehost", *args, "-c", str(self.config_path)],
            cwd=str(REPO),
            env=self.env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def add_user(self, name: str, password: str) -> str:
        res = self.cli("user", "add", name, "--password-stdin", input=password + "\n")
        assert res.returncode == 0, (
            f"`user add {name}` failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
        )
        return f"{name}@{self.domain}"

    def new_user(self, prefix: str = "u") -> tuple[str, str]:
        """A fresh user (id, password). Taken from the prefill pool when one runs."""
        if self._pool is not None:
            item = self._pool.get(timeout=60)
            if item is _POOL_DONE:
                self._pool = None
            elif isinstance(item, BaseException):
                raise item
            else:
                return item  # type: ignore[no-any-return]
        name = uniq(prefix)
        password = "pw-" + secrets.token_hex(8)
        return self.add_user(name, password), password

    def start_user_pool(self, size: int) -> None:
        """Create `size` users in a background thread (the CLI costs ~0.3 s a call), so
        tests that need fresh users rarely wait for one."""
        self._pool = queue.Queue()
        pool = self._pool

        def fill() -> None:
            for _ in range(size):
                if self._pool_stop.is_set():
                    return
                try:
                    name = uniq("u")
                    password = "pw-" + secrets.token_hex(8)
                    pool.put((self.add_user(name, password), password))
                except BaseException as e:
                    pool.put(e)
                    return
            # pool exhausted: fall back to creating users on demand
            pool.put(_POOL_DONE)

        self._pool_thread = threading.Thread(target=fill, daemon=True)
        self._pool_thread.start()

    def new_token(self, reserved_id: str) -> str:
        res = self.cli("token", "create", reserved_id)
        assert res.returncode == 0, (
            f"`token create {reserved_id}` failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
        )
        lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
        assert lines, f"`token create` printed nothing: {res.stderr}"
        return lines[-1]

    def new_bot(self, prefix: str = "bot") -> tuple[str, str]:
        rid = f"!{uniq(prefix)}@{self.domain}"
        return rid, self.new_token(rid)

    # -- connections ---------------------------------------------------
    async def connect(self, **kw: Any) -> scalar_raw.Conn:
        conn = await scalar_raw.connect(self.host, self.port, **kw)
        self._conns.append(conn)
        return conn

    async def connect_unix(self) -> scalar_raw.Conn:
        reader, writer = await asyncio.open_unix_connection(str(self.unix_path))
        conn = scalar_raw.Conn(reader, writer)
        self._conns.append(conn)
        return conn

    async def user_conn(self, user: tuple[str, str] | None = None) -> scalar_raw.Conn:
        """A connection logged in as `user` (id, password), or as a new user."""
        if user is None:
            user = self.new_user()
        conn = await self.connect()
        await conn.login(user[0], user[1])
        return conn

    async def guest_conn(self) -> scalar_raw.Conn:
        conn = await self.connect()
        await conn.login()
        return conn

    async def bot_conn(self, bot: tuple[str, str] | None = None) -> scalar_raw.Conn:
        if bot is None:
            bot = self.new_bot()
        conn = await self.connect()
        await conn.login(bot[0], bot[1], method="token")
        return conn

    async def close_all(self) -> None:
        conns, self._conns = self._conns, []
        for c in conns:
            await c.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """The shared default server (guests on, keep 10000, rate 5/burst 20, ...)."""
    handle = ServerHandle(tmp_path_factory.mktemp("server"))
    handle.start()
    handle.start_user_pool(140)
    yield handle
    if handle.proc is not None:
        handle.stop()


@pytest.fixture
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Factory: make_server(guests=False, keep=0, ident=0.5, ...) -> started server.

    Every server it starts is stopped with SIGTERM at teardown (exit code 0 asserted).
    """
    started: list[ServerHandle] = []

    def factory(**settings: Any) -> ServerHandle:
        handle = ServerHandle(tmp_path_factory.mktemp("custom"), **settings)
        handle.start()
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        if handle.proc is not None:
            handle.stop()


@pytest_asyncio.fixture
async def srv(server: ServerHandle) -> Any:
    """The shared server, for async tests: closes the test's connections afterwards."""
    yield server
    await server.close_all()


@pytest_asyncio.fixture
async def mk(make_server: Any) -> Any:
    """make_server for async tests: closes the test's connections before the servers stop."""
    handles: list[ServerHandle] = []

    def factory(**settings: Any) -> ServerHandle:
        handle = make_server(**settings)
        handles.append(handle)
        return handle  # type: ignore[no-any-return]

    yield factory
    for handle in handles:
        await handle.close_all()


@pytest_asyncio.fixture
async def custom_server(request: pytest.FixtureRequest, mk: Any) -> Any:
    """A server with non-default settings, parametrised indirectly:
    @pytest.mark.parametrize("custom_server", [{"guests": False}], indirect=True)."""
    settings = getattr(request, "param", {}) or {}
    return mk(**settings)
