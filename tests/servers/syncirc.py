"""A blocking IRC connection for the fixture's own use (no event loop needed):
`InspIRCd` probes readiness and registers NickServ accounts with it."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

from .irc_lines import IRCConnectionClosed, IRCLine, _check_line


class SyncIRC:
    """A blocking IRC line reader: the readiness probes and NickServ registration."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buffer = b""
        self.received: list[IRCLine] = []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, line: str) -> None:
        _check_line(line)
        self.sock.sendall(line.encode() + b"\r\n")

    def read_line(self, deadline: float) -> IRCLine:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no line from server in time")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no line from server in time") from None
            if not chunk:
                raise IRCConnectionClosed("server closed the connection")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\n")
        line = IRCLine.parse(raw.decode("utf-8", errors="replace"))
        self.received.append(line)
        if line.command == "PING":
            self.send("PONG :" + line.trailing)
        return line

    def wait_for(self, predicate: Callable[[IRCLine], bool], deadline: float) -> IRCLine:
        while True:
            line = self.read_line(deadline)
            if predicate(line):
                return line
            if line.command == "ERROR":
                raise IRCConnectionClosed(line.raw)
