"""Real InspIRCd (optionally linked to Atheme services) for integration tests.

`InspIRCd` writes a generated config into a directory of its own, binds free
loopback ports, runs ``inspircd --nofork`` as a child process and stops it by
PID. With ``services=True`` it also links ``atheme-services`` (NickServ and
SaslServ), so SASL PLAIN works as on a real network.

`RawIRC` (in `rawirc.py`, re-exported here) is the small asyncio IRC client
that plays the human on the IRC side of a test; `irc_lines.py` parses lines.

Install the servers with ``scripts/ensure-ircd``. See
``/work/shared/real-servers.md`` for the recipes this module follows.
"""

# Timeouts as parameters are the point of these test helpers.

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from .irc_lines import IRCConnectionClosed, IRCLine, SaslError
from .process import (
    LOOPBACK,
    die_with_parent_prefix,
    free_port,
    stop_process,
    tail,
    track,
)
from .rawirc import RawIRC
from .syncirc import SyncIRC

__all__ = [
    "LOOPBACK",
    "IRCConnectionClosed",
    "IRCLine",
    "InspIRCd",
    "PortInUseError",
    "RawIRC",
    "SaslError",
    "ServerStartError",
    "find_binary",
    "free_port",
]

_ATHEME_MODULES = (
    "modules/protocol/inspircd",
    "modules/backend/opensex",
    "modules/crypto/pbkdf2v2",
    "modules/nickserv/main",
    "modules/nickserv/register",
    "modules/nickserv/identify",
    "modules/saslserv/main",
    "modules/saslserv/plain",
)
_probe_ids = itertools.count(1)


class ServerStartError(RuntimeError):
    """The server (or services) did not come up; the message holds log tails."""


class PortInUseError(ServerStartError):
    """A port in the generated config was taken by someone else."""


def find_binary(name: str) -> str:
    """Absolute path of ``name``; /usr/sbin is searched even if not on PATH."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(f"{name} not found; install it with scripts/ensure-ircd")


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


class InspIRCd:
    """An InspIRCd 3 child process with a generated config in ``directory``.

    Ports are picked on the first `start` and kept afterwards, so
    ``stop(); ...; start()`` brings the server back on the same address (for
    reconnect tests). With ``services=True`` Atheme is linked on a second port
    and `start` returns only once SASL is advertised and NickServ/SaslServ are
    online.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fakelag: bool | Literal["yes", "no", "on", "off"] = False,
        threshold: int = 1000,
        commandrate: int = 100000,
        recvq: int = 65536,
        extra_config: Iterable[str] = (),
        services: bool = False,
        port: int | None = None,
        link_port: int | None = None,
        server_name: str = "irc.test",
        network: str = "TestNet",
        startup_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._dir = Path(directory).resolve()
        self._dir.mkdir(parents=True, exist_ok=True)
        if isinstance(fakelag, str):
            fakelag = fakelag.lower() in ("yes", "on", "true", "1")
        self.fakelag: bool = fakelag
        self.threshold: int = threshold
        self.commandrate: int = commandrate
        self.recvq: int = recvq
        self.extra_config: list[str] = list(extra_config)
        self.services: bool = services
        self.server_name: str = server_name
        self.network: str = network
        self.services_name: str = "services.test"
        self.link_password: str = "linkpw-" + os.urandom(6).hex()
        self.startup_timeout: float = startup_timeout
        self.stop_timeout: float = stop_timeout
        self._host = LOOPBACK
        self._port = port
        self._link_port = link_port
        self._fixed_ports = port is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._atheme: subprocess.Popen[bytes] | None = None
        self._stdout_files: list[IO[bytes]] = []
        self._stdout_offset = 0
        self.startup_seconds: float | None = None
        """Wall time of the last successful `start` (until a client got 001)."""

    # ----- addresses and files ---------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("port is chosen on the first start()")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def link_port(self) -> int | None:
        """Server-link port Atheme connects to (``None`` without services)."""
        return self._link_port if self.services else None

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def config_path(self) -> Path:
        return self._dir / "inspircd.conf"

    @property
    def log_path(self) -> Path:
        """InspIRCd's own log (connects, quits, errors)."""
        return self._dir / "ircd.log"

    @property
    def stdout_path(self) -> Path:
        """InspIRCd's stdout/stderr (config errors end up here)."""
        return self._dir / "inspircd.out"

    @property
    def atheme_config_path(self) -> Path:
        return self._dir / "atheme.conf"

    @property
    def atheme_log_path(self) -> Path:
        return self._dir / "atheme.log"

    @property
    def atheme_stdout_path(self) -> Path:
        return self._dir / "atheme.out"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def atheme_pid(self) -> int | None:
        return self._atheme.pid if self._atheme is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def read_log(self) -> str:
        """Whole InspIRCd log file ("" if it does not exist yet)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self, lines: int = 40) -> str:
        """Tails of all log files, for assertion and error messages."""
        parts = [
            f"--- {self.stdout_path} ---\n{tail(self.stdout_path, lines)}",
            f"--- {self.log_path} ---\n{tail(self.log_path, lines)}",
        ]
        if self.services:
            parts.append(
                f"--- {self.atheme_stdout_path} ---\n{tail(self.atheme_stdout_path, lines)}"
            )
            parts.append(f"--- {self.atheme_log_path} ---\n{tail(self.atheme_log_path, lines)}")
        return "\n".join(parts)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<InspIRCd {self._host}:{self._port} services={self.services} {state}>"

    # ----- config ----------------------------------------------------------

    def config_text(self) -> str:
        d = self._dir
        fakelag = "yes" if self.fakelag else "no"
        sid = ' id="001"' if self.services else ""
        lines = [
            f'<server name="{self.server_name}" description="test" network="{self.network}"{sid}>',
            '<admin name="t" nick="t" email="t@t">',
            f'<bind address="{self._host}" port="{self.port}" type="clients">',
            '<connect name="main" allow="*" resolvehostnames="no" maxchans="100"'
            ' localmax="10000" globalmax="10000" limit="10000"'
            f' threshold="{self.threshold}" commandrate="{self.commandrate}"'
            f' fakelag="{fakelag}" hardsendq="10485760" softsendq="65536"'
            f' recvq="{self.recvq}" pingfreq="120" timeout="60">',
            '<class name="all" commands="*">',
            '<options defaultmodes="nt">',
            '<performance softlimit="10000" somaxconn="128">',
            '<limits maxline="512">',
            f'<pid file="{d / "inspircd.pid"}">',
            f'<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" flush="1"'
            f' target="{self.log_path}">',
            '<dns server="127.0.0.1" timeout="1">',
            '<module name="cap">',
            '<module name="ircv3">',
            '<module name="ircv3_echomessage">',
            '<module name="ircv3_servertime">',
            '<module name="ircv3_msgid">',
            '<module name="ircv3_batch">',
            '<module name="chanhistory">',
        ]
        if self.services:
            lines += [
                f'<bind address="{self._host}" port="{self._link_port}" type="servers">',
                '<module name="spanningtree">',
                '<module name="services_account">',
                '<module name="sasl">',
                '<module name="chghost">',
                '<module name="cban">',
                '<module name="svshold">',
                '<module name="hidechans">',
                '<module name="servprotect">',
                '<module name="topiclock">',
                '<module name="ircv3_accounttag">',
                f'<link name="{self.services_name}" ipaddr="{self._host}"'
                f' port="{self._link_port}" allowmask="127.0.0.0/8"'
                f' sendpass="{self.link_password}" recvpass="{self.link_password}">',
                f'<uline server="{self.services_name}" silent="yes">',
                f'<sasl target="{self.services_name}" requiressl="no">',
            ]
        lines += self.extra_config
        return "\n".join(lines) + "\n"

    def atheme_config_text(self) -> str:
        modules = "\n".join(f'loadmodule "{m}";' for m in _ATHEME_MODULES)
        return f"""{modules}
serverinfo {{
    name = "{self.services_name}"; desc = "svc"; numeric = "00A"; recontime = 2;
    netname = "{self.network}"; hidehostsuffix = "users.test"; adminname = "t";
    adminemail = "t@example.org"; registeremail = "noreply@example.org";
    auth = none; casemapping = rfc1459; maxusers = 1000; maxlogins = 5;
}};
uplink "{self.server_name}" {{
    host = "{self._host}"; port = {self._link_port}; password = "{self.link_password}";
}};
nickserv {{ nick = "NickServ"; user = "NickServ"; host = "{self.services_name}"; real = "NS"; }};
saslserv {{ nick = "SaslServ"; user = "SaslServ"; host = "{self.services_name}"; real = "SASL"; }};
general {{ commit_interval = 1; flood_msgs = 0; ratelimit_uses = 1000; ratelimit_period = 60; }};
"""

    def write_config(self) -> None:
        """(Re)write the config files for the current ports and settings."""
        self.config_path.write_text(self.config_text())
        if self.services:
            self.atheme_config_path.write_text(self.atheme_config_text())

    # ----- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Start the server (and services); return once a client gets 001.

        Raises `ServerStartError` (with log tails) if that does not happen
        within ``startup_timeout``; nothing is left running then.
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        began = time.monotonic()
        first_start = self._port is None or (self.services and self._link_port is None)
        attempts = 3 if first_start and not self._fixed_ports else 1
        for attempt in range(1, attempts + 1):
            if self._port is None or (first_start and attempt > 1):
                self._port = free_port(self._host)
            if self.services and (self._link_port is None or (first_start and attempt > 1)):
                self._link_port = free_port(self._host)
                while self._link_port == self._port:
                    self._link_port = free_port(self._host)
            try:
                self._start_once()
            except PortInUseError:  # lost a race for a "free" port: pick others
                self.stop()
                if attempt == attempts:
                    raise
                continue
            except BaseException:
                self.stop()
                raise
            self.startup_seconds = time.monotonic() - began
            return

    def _spawn(self, argv: Sequence[str], stdout_path: Path) -> subprocess.Popen[bytes]:
        out = stdout_path.open("ab")
        self._stdout_files.append(out)
        proc = subprocess.Popen(
            [*die_with_parent_prefix(), *argv],
            cwd=self._dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in pytest must not hit the servers first
        )
        return track(proc)

    def _start_once(self) -> None:
        self.write_config()
        deadline = time.monotonic() + self.startup_timeout
        try:
            self._stdout_offset = self.stdout_path.stat().st_size
        except FileNotFoundError:
            self._stdout_offset = 0
        self._proc = self._spawn(
            [find_binary("inspircd"), f"--config={self.config_path}", "--nofork", "--runasroot"],
            self.stdout_path,
        )
        self._wait_accepting(deadline)
        if self.services:
            self._atheme = self._spawn(
                [
                    find_binary("atheme-services"),
                    "-n",
                    "-c", str(self.atheme_config_path),
                    "-D", str(self._dir),
                    "-l", str(self.atheme_log_path),
                    "-p", str(self._dir / "atheme.pid"),
                ],
                self.atheme_stdout_path,
            )  # fmt: skip
        self._wait_ready(deadline)

    def _new_stdout(self) -> str:
        """InspIRCd's stdout written since the current process was spawned."""
        try:
            with self.stdout_path.open("rb") as f:
                f.seek(self._stdout_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            raise ServerStartError(f"inspircd exited (status {code})\n{self.diagnostics()}")
        if self._atheme is not None and self._atheme.poll() is not None:
            code = self._atheme.returncode
            raise ServerStartError(f"atheme-services exited (status {code})\n{self.diagnostics()}")

    def _wait_accepting(self, deadline: float) -> None:
        # InspIRCd prints "is now running" once its listeners are set up; a
        # <bind> that failed (port taken) does not stop it, it only says so.
        while "InspIRCd is now running" not in self._new_stdout():
            self._check_alive()
            if time.monotonic() > deadline:
                raise ServerStartError(f"inspircd did not finish starting\n{self.diagnostics()}")
            time.sleep(0.02)
        if "failed to bind" in self._new_stdout():
            raise PortInUseError(f"inspircd could not bind its ports\n{self.diagnostics()}")
        while True:
            self._check_alive()
            try:
                with socket.create_connection((self._host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"port {self.port} never accepted a connection\n{self.diagnostics()}"
                )
            time.sleep(0.05)

    def _wait_ready(self, deadline: float) -> None:
        """Register a probe client (001); with services, poll until linked."""
        while True:
            self._check_alive()
            problem: str | None
            try:
                problem = self._probe(deadline)
            except (OSError, TimeoutError) as exc:
                problem = f"probe failed: {exc!r}"
            if problem is None:
                return
            if time.monotonic() > deadline:
                raise ServerStartError(f"{self!r} not ready: {problem}\n{self.diagnostics()}")
            time.sleep(0.2)

    def _probe(self, deadline: float) -> str | None:
        """One probe connection; None when ready, else what is missing."""
        nick = f"probe{os.getpid() % 10000}x{next(_probe_ids)}"
        conn = SyncIRC(self._host, self.port, timeout=2.0)
        try:
            conn.send(f"NICK {nick}")
            conn.send(f"USER {nick} 0 * :readiness probe")
            conn.wait_for(lambda m: m.command == "001", min(deadline, time.monotonic() + 10.0))
            problem: str | None = None
            # Registration costs ~1 s (InspIRCd completes it on its 1-second
            # tick), so keep this connection and poll CAP LS / ISON on it.
            while self.services:
                self._check_alive()
                problem = self._services_problem(conn, deadline)
                if problem is None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            with contextlib.suppress(OSError):
                conn.send("QUIT :probe done")
            return problem
        finally:
            conn.close()

    @staticmethod
    def _services_problem(conn: SyncIRC, deadline: float) -> str | None:
        conn.send("CAP LS 302")
        caps: set[str] = set()
        while True:
            line = conn.wait_for(
                lambda m: m.command == "CAP" and len(m.params) >= 2 and m.params[1] == "LS",
                deadline,
            )
            caps.update(token.split("=", 1)[0] for token in line.trailing.split())
            if len(line.params) < 4 or line.params[2] != "*":
                break
        if "sasl" not in caps:
            return f"sasl not in CAP LS yet ({' '.join(sorted(caps))})"
        conn.send("ISON NickServ SaslServ")
        ison = conn.wait_for(lambda m: m.command == "303", deadline)
        online = {nick.lower() for nick in ison.trailing.split()}
        if not {"nickserv", "saslserv"} <= online:
            return f"services not online yet (ISON: {ison.trailing!r})"
        return None

    def stop(self) -> None:
        """Stop Atheme, then InspIRCd (SIGTERM by PID, SIGKILL if needed).

        Safe to call at any time, repeatedly. Ports are kept for `start`.
        """
        try:
            if self._atheme is not None:
                stop_process(self._atheme, self.stop_timeout)
        finally:
            self._atheme = None
            try:
                if self._proc is not None:
                    stop_process(self._proc, self.stop_timeout)
            finally:
                self._proc = None
                for out in self._stdout_files:
                    out.close()
                self._stdout_files.clear()

    def restart(self) -> None:
        """`stop` then `start`, on the same port(s)."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----- services helpers -----------------------------------------------

    def register_nick(
        self,
        account: str,
        password: str,
        *,
        email: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        """Register a NickServ account (blocking, over a raw socket).

        Connects with nick = ``account``, sends ``REGISTER`` and waits for
        NickServ's confirmation; raises `RuntimeError` with NickServ's answer
        otherwise. From async code prefer `register_nick_async`.
        """
        if not self.services:
            raise RuntimeError("register_nick needs InspIRCd(services=True)")
        if " " in password:
            raise ValueError("NickServ passwords cannot contain spaces")
        email = email or f"{account}@example.org"
        deadline = time.monotonic() + timeout
        conn = SyncIRC(self._host, self.port, timeout=timeout)
        try:
            conn.send(f"NICK {account}")
            conn.send(f"USER {account} 0 * :{account}")
            conn.wait_for(lambda m: m.command == "001", deadline)
            conn.send(f"PRIVMSG NickServ :REGISTER {password} {email}")
            while True:
                line = conn.read_line(deadline)
                if line.command == "NOTICE" and (line.nick or "").lower() == "nickserv":
                    if "is now registered" in line.trailing:
                        break
                    raise RuntimeError(f"NickServ refused to register {account}: {line.trailing}")
                if line.command in ("432", "433", "ERROR"):
                    raise RuntimeError(f"cannot use nick {account}: {line.raw}")
            with contextlib.suppress(OSError):
                conn.send("QUIT :registered")
        except TimeoutError:
            seen = "\n".join(m.raw for m in conn.received[-10:])
            raise RuntimeError(
                f"no NickServ confirmation for {account}; last lines:\n{seen}"
            ) from None
        finally:
            conn.close()

    async def register_nick_async(
        self, account: str, password: str, *, email: str | None = None, timeout: float = 15.0
    ) -> None:
        """`register_nick` in a worker thread, so the event loop keeps running."""
        await asyncio.to_thread(self.register_nick, account, password, email=email, timeout=timeout)
