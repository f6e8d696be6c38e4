"""`RawIRC`: a deliberately small asyncio IRC client that plays the human on
the IRC side of a test: it sends exactly the lines it is told to and records
every line it receives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Self

from .irc_lines import (
    SASL_FINAL,
    IRCConnectionClosed,
    IRCLine,
    SaslError,
    _check_line,
    _sasl_plain_payload,
)

# --------------------------------------------------------------------------
# Raw asyncio client
# --------------------------------------------------------------------------


class RawIRC:
    """Minimal asyncio IRC client for tests; records every received line.

    Typical use::

        async with RawIRC(server.host, server.port, "alice") as alice:
            await alice.connect()               # NICK/USER, waits for 001
            await alice.join("#room")
            mark = alice.mark()
            await alice.privmsg("#room", "hi")
            line = await alice.wait_for(lambda m: m.command == "PRIVMSG", since=mark)

    `wait_for` searches every line received since ``since`` (a `mark`,
    default 0 = the whole history), so a line that arrived before the wait
    began is still found. PINGs are answered automatically.
    """

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        *,
        username: str | None = None,
        realname: str = "RawIRC test client",
        encoding: str = "utf-8",
        auto_pong: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.nick = nick
        self.username = username or nick
        self.realname = realname
        self.encoding = encoding
        self.auto_pong = auto_pong
        self.caps: dict[str, str | None] = {}
        """Capabilities from the last ``CAP LS`` (name -> value or None)."""
        self.enabled_caps: set[str] = set()
        self.sasl_result: IRCLine | None = None
        """Final SASL numeric (903 on success) of the last `sasl_plain`."""
        self.welcome: IRCLine | None = None
        self._lines: list[IRCLine] = []
        self._cond = asyncio.Condition()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()

    # ----- connection ------------------------------------------------------

    async def open(self, timeout: float = 10.0) -> None:
        """Open the TCP connection only (no registration)."""
        async with asyncio.timeout(timeout):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._read_task = asyncio.create_task(self._read_loop(), name=f"RawIRC-{self.nick}")

    async def connect(
        self,
        *,
        caps: Iterable[str] = (),
        sasl: tuple[str, str] | None = None,
        require_sasl: bool = True,
        timeout: float = 10.0,
    ) -> IRCLine:
        """Open the connection and register; return the 001 line.

        With ``caps`` and/or ``sasl`` (account, password) it negotiates
        ``CAP LS 302`` / ``CAP REQ`` / ``AUTHENTICATE PLAIN`` before
        ``CAP END``. The SASL outcome is in `sasl_result`; with
        ``require_sasl`` a result other than 903 raises `SaslError`.
        """
        if self._writer is None:
            await self.open(timeout)
        return await self.register(caps=caps, sasl=sasl, require_sasl=require_sasl, timeout=timeout)

    async def register(
        self,
        *,
        caps: Iterable[str] = (),
        sasl: tuple[str, str] | None = None,
        require_sasl: bool = True,
        timeout: float = 10.0,
    ) -> IRCLine:
        """Send (CAP ...) NICK/USER on an open connection; return the 001 line."""
        wanted = list(caps)
        if sasl is not None and "sasl" not in wanted:
            wanted.append("sasl")
        mark = self.mark()
        negotiate = bool(wanted)
        if negotiate:
            await self.send("CAP LS 302")
        await self.send(f"NICK {self.nick}")
        await self.send(f"USER {self.username} 0 * :{self.realname}")
        if negotiate:
            await self._read_cap_ls(mark, timeout)
            await self.cap_req(wanted, timeout=timeout)
            if sasl is not None:
                result = await self.sasl_plain(*sasl, timeout=timeout)
                if require_sasl and result.command != "903":
                    raise SaslError(f"SASL failed: {result.raw}", result)
            await self.send("CAP END")
        welcome = await self.wait_for(lambda m: m.command == "001", timeout, since=mark)
        self.nick = welcome.params[0] if welcome.params else self.nick
        self.welcome = welcome
        return welcome

    async def _read_cap_ls(self, since: int, timeout: float) -> dict[str, str | None]:
        caps: dict[str, str | None] = {}
        while True:
            index = await self._wait_index(
                lambda m: m.command == "CAP" and len(m.params) >= 2 and m.params[1] == "LS",
                timeout,
                since,
            )
            line = self._lines[index]
            since = index + 1
            for token in line.trailing.split():
                name, eq, value = token.partition("=")
                caps[name] = value if eq else None
            if len(line.params) < 4 or line.params[2] != "*":
                break
        self.caps = caps
        return caps

    async def cap_ls(self, timeout: float = 10.0) -> dict[str, str | None]:
        """Send ``CAP LS 302`` and return the advertised capabilities."""
        mark = self.mark()
        await self.send("CAP LS 302")
        return await self._read_cap_ls(mark, timeout)

    async def cap_req(self, caps: Iterable[str], timeout: float = 10.0) -> set[str]:
        """``CAP REQ`` the given capabilities; return the ACKed set.

        Raises `RuntimeError` if the server NAKs the request.
        """
        wanted = " ".join(caps)
        mark = self.mark()
        await self.send(f"CAP REQ :{wanted}")
        line = await self.wait_for(
            lambda m: m.command == "CAP" and len(m.params) >= 2 and m.params[1] in ("ACK", "NAK"),
            timeout,
            since=mark,
        )
        if line.params[1] == "NAK":
            raise RuntimeError(f"server refused CAP REQ {wanted!r}: {line.raw}")
        acked = {c.lstrip("-~=") for c in line.trailing.split() if not c.startswith("-")}
        self.enabled_caps |= acked
        return acked

    async def sasl_plain(self, account: str, password: str, timeout: float = 10.0) -> IRCLine:
        """Run ``AUTHENTICATE PLAIN``; return the final numeric (903 = success).

        The ``sasl`` capability must already be ACKed.
        """
        mark = self.mark()
        await self.send("AUTHENTICATE PLAIN")
        first = await self.wait_for(
            lambda m: m.command == "AUTHENTICATE" or m.command in SASL_FINAL,
            timeout,
            since=mark,
        )
        if first.command == "AUTHENTICATE":
            for chunk in _sasl_plain_payload(account, password):
                await self.send(f"AUTHENTICATE {chunk}")
            result = await self.wait_for(lambda m: m.command in SASL_FINAL, timeout, since=mark)
        else:
            result = first
        self.sasl_result = result
        return result

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.readline()
                if not data:
                    break
                line = IRCLine.parse(data.decode(self.encoding, errors="replace"))
                if line.command == "PING" and self.auto_pong:
                    with contextlib.suppress(Exception):
                        await self.send("PONG :" + line.trailing)
                elif line.command == "NICK" and line.nick == self.nick and line.params:
                    self.nick = line.params[0]
                async with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        except (ConnectionError, OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            self._closed.set()
            async with self._cond:
                self._cond.notify_all()

    async def close(self) -> None:
        """Drop the connection (no QUIT) and stop the reader task."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
        self._closed.set()

    async def quit(self, message: str = "bye", timeout: float = 5.0) -> None:
        """Send QUIT, wait (briefly) for the server to close, then close."""
        if not self.closed:
            with contextlib.suppress(ConnectionError, OSError):
                await self.send(f"QUIT :{message}")
            with contextlib.suppress(TimeoutError):
                await self.wait_closed(timeout)
        await self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True once the server closed the connection (or `close` ran)."""
        return self._closed.is_set()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self._closed.wait()

    # ----- sending ---------------------------------------------------------

    async def send(self, line: str) -> None:
        """Send one line (CRLF is appended; CR/LF/NUL inside are refused)."""
        _check_line(line)
        await self.send_raw(line.encode(self.encoding) + b"\r\n")

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are, in one write (e.g. a flood of many lines)."""
        if self._writer is None:
            raise RuntimeError("not connected; call open() or connect() first")
        self._writer.write(data)
        await self._writer.drain()

    async def privmsg(self, target: str, text: str) -> None:
        await self.send(f"PRIVMSG {target} :{text}")

    async def notice(self, target: str, text: str) -> None:
        await self.send(f"NOTICE {target} :{text}")

    async def join(self, channel: str, timeout: float = 10.0) -> None:
        """JOIN and wait for the end of NAMES (366); raise on a join error."""
        mark = self.mark()
        await self.send(f"JOIN {channel}")
        line = await self.wait_for(
            lambda m: (
                (m.command == "366" or (m.command[:1] == "4" and m.command.isdigit()))
                and len(m.params) >= 2
                and m.params[1].lower() == channel.lower()
            ),
            timeout,
            since=mark,
        )
        if line.command != "366":
            raise RuntimeError(f"cannot join {channel}: {line.raw}")

    async def part(self, channel: str, reason: str = "bye", timeout: float = 10.0) -> None:
        mark = self.mark()
        await self.send(f"PART {channel} :{reason}")
        await self.wait_for(
            lambda m: m.command == "PART" and m.nick == self.nick, timeout, since=mark
        )

    # ----- receiving -------------------------------------------------------

    @property
    def lines(self) -> Sequence[IRCLine]:
        """Every line received so far (a copy)."""
        return list(self._lines)

    def mark(self) -> int:
        """Index for ``since=``: only lines received after this call."""
        return len(self._lines)

    def received(
        self, predicate: Callable[[IRCLine], bool] | None = None, *, since: int = 0
    ) -> list[IRCLine]:
        """Received lines (from ``since``) matching ``predicate``."""
        return [m for m in self._lines[since:] if predicate is None or predicate(m)]

    def messages(self, target: str | None = None, *, since: int = 0) -> list[IRCLine]:
        """PRIVMSG lines received (optionally only those sent to ``target``)."""
        return self.received(
            lambda m: (
                m.command == "PRIVMSG"
                and (target is None or (bool(m.params) and m.params[0].lower() == target.lower()))
            ),
            since=since,
        )

    async def wait_for(
        self,
        predicate: Callable[[IRCLine], bool],
        timeout: float = 10.0,
        *,
        since: int = 0,
    ) -> IRCLine:
        """First line from index ``since`` on that matches ``predicate``.

        Raises `TimeoutError` after ``timeout`` seconds, or
        `IRCConnectionClosed` as soon as the connection is closed without a
        match. Both messages include the last lines received.
        """
        return self._lines[await self._wait_index(predicate, timeout, since)]

    async def _wait_index(
        self, predicate: Callable[[IRCLine], bool], timeout: float, since: int
    ) -> int:
        index = since
        found: list[int] = []

        def check() -> bool:
            nonlocal index
            while index < len(self._lines):
                if predicate(self._lines[index]):
                    found.append(index)
                    return True
                index += 1
            return self._closed.is_set()

        try:
            async with asyncio.timeout(timeout), self._cond:
                await self._cond.wait_for(check)
        except TimeoutError:
            raise TimeoutError(
                f"{self.nick}: no matching line within {timeout}s; last lines:\n{self._recent()}"
            ) from None
        if found:
            return found[0]
        raise IRCConnectionClosed(
            f"{self.nick}: connection closed before a matching line; last lines:\n{self._recent()}"
        )

    async def wait_for_command(
        self, command: str, timeout: float = 10.0, *, since: int = 0
    ) -> IRCLine:
        """First line with this command (e.g. "PRIVMSG", "001") from ``since``."""
        command = command.upper()
        return await self.wait_for(lambda m: m.command == command, timeout, since=since)

    def _recent(self, count: int = 15) -> str:
        return "\n".join("  " + m.raw for m in self._lines[-count:]) or "  (nothing received)"
