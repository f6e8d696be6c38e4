"""One IRC connection on the `irc` package's asyncio reactor.

What the library leaves to us is done here: capability negotiation (CAP LS
302, echo-message, SASL PLAIN) before NICK/USER, alternate nicks while
registering, a keepalive that notices a server that went silent, and one
write path that refuses CR, LF and NUL, paces lines (token bucket plus an
in-flight window) and logs lines with secrets (PASS, AUTHENTICATE, IDENTIFY,
JOIN with a key) by their command only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any, Literal

from irc.client import NickMask, is_channel

from ...runtime import TokenBucket
from .config import IrcAccount
from .history import Line, server_time
from .listener import Listener, RegistrationFailed
from .protocol import (
    JOIN_ERROR_TEXT,
    JOIN_ERRORS,
    NICK_ERRORS,
    SASL_FAILURES,
    WANTED_CAPS,
    LineKind,
    fold,
    nick_candidates,
    sasl_plain_chunks,
)
from .reactor import Connection, Reactor
from .tags import parse_tags, tag_value

log = logging.getLogger(__name__)

TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


HISTORY_BATCHES = frozenset({"chathistory", "draft/chathistory"})


class IrcConnection:
    """Registers with one server and then relays its events to a `Listener`."""

    def __init__(self, account: IrcAccount, listener: Listener, bucket: TokenBucket) -> None:
        self.account = account
        self.bucket = bucket
        self.name = account.name
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.reactor = Reactor(loop=self.loop)
        self.conn: Connection = self.reactor.server()
        self.conn.owner = self
        self.reactor.add_global_handler("all_events", self._on_event)
        self.caps_offered: dict[str, str | None] = {}
        self.caps: set[str] = set()
        self.sasl_account: str | None = None
        self.last_heard = self.loop.time()
        self.lines_sent = 0
        self.window = account.flood.window
        self.in_flight = 0
        """Bytes written that the server has not yet shown it processed (see `_track`)."""
        self._mark: tuple[str, int] | None = None
        self._pings = 0
        self._acked = asyncio.Event()
        self._quickack: Any = None
        self._nicks = nick_candidates(account.nick, account.alt_nicks)
        self._nick_index = 0
        self._cap_done = False
        self._batches: dict[str, str] = {}
        """Open `chathistory` batches: reference -> channel."""
        self._registered: asyncio.Future[None] = self.loop.create_future()
        self._closed: asyncio.Future[str] = self.loop.create_future()
        self._error: str | None = None

    # --- state --------------------------------------------------------------------------

    @property
    def nick(self) -> str:
        return str(self.conn.get_nickname())

    @property
    def alive(self) -> bool:
        transport = self.conn.transport
        return bool(self.conn.connected) and transport is not None and not transport.is_closing()

    def heard(self) -> None:
        self.last_heard = self.loop.time()
        if self._quickack is not None:
            # Linux falls back to delayed ACKs after a while; renewing the flag
            # after each read keeps ACKs immediate. Otherwise a server that
            # uses Nagle (InspIRCd does) holds the next line to us until our
            # delayed ACK of its last one (e.g. an echo): +40 ms per message.
            with contextlib.suppress(OSError):
                self._quickack.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)

    def is_me(self, nick: str) -> bool:
        return fold(nick) == fold(self.nick)

    # --- connecting ---------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        acc = self.account
        if not acc.tls:
            return None
        context = ssl.create_default_context(cafile=str(acc.ca) if acc.ca else None)
        if not acc.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _open(self, protocol: asyncio.Protocol, address: tuple[str, int]) -> Any:
        """Connect factory for AioConnection: PASS and CAP LS go out before its NICK/USER."""
        context = self._ssl_context()
        transport, proto = await self.loop.create_connection(
            lambda: protocol,
            address[0],
            address[1],
            ssl=context,
            server_hostname=address[0] if context else None,
        )
        self.conn.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # one line per chat message: no Nagle delay
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if TCP_QUICKACK is not None:
                self._quickack = sock
        if self.account.password:
            self.write(f"PASS :{self.account.password}", secret=True)
        self.write("CAP LS 302")
        return transport, proto

    async def connect(self, timeout: float = 30.0) -> None:
        """Connect and register; return after the welcome (001).

        Raises RegistrationFailed, OSError (incl. ssl errors) or TimeoutError.
        """
        acc = self.account
        try:
            async with asyncio.timeout(timeout):
                await self.conn.connect(
                    acc.host,
                    acc.port,
                    self._nicks[0],
                    username=acc.username or acc.nick,
                    ircname=acc.realname,
                    connect_factory=self._open,
                )
                waiting: set[asyncio.Future[Any]] = {self._registered, self._closed}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self.close("registration did not complete")
            raise
        if self._registered in done:
            self._registered.result()
            return
        raise RegistrationFailed(self._error or f"connection closed: {self._closed.result()}")

    def _fail(self, reason: str, *, auth: bool = False) -> None:
        if not self._registered.done():
            self._registered.set_exception(RegistrationFailed(reason, auth=auth))
        self.close(reason)

    async def wait_closed(self) -> str:
        """Wait until the connection is gone; the reason (e.g. the server's ERROR)."""
        return await asyncio.shield(self._closed)

    def close(self, reason: str = "bye") -> None:
        if self.conn.connected:
            with contextlib.suppress(Exception):
                self.conn.disconnect(reason)
        transport = self.conn.transport
        if transport is not None:
            transport.close()
        self._set_closed(reason)

    def _set_closed(self, reason: str) -> None:
        self._acked.set()
        if not self._closed.done():
            self._closed.set_result(self._error or reason)
        if not self._registered.done():
            self._registered.set_exception(
                RegistrationFailed(self._error or f"connection closed: {reason}")
            )
            self._registered.exception()  # retrieved: connect() reports via _closed

    async def keepalive(self, interval: float, timeout: float) -> None:
        """PING when the server has been silent `interval` s; drop it after `timeout` more."""
        pinged = False
        while self.alive:
            silent = self.loop.time() - self.last_heard
            if silent >= interval + timeout:
                log.warning("%s: no reply from the server for %.0f s", self.name, silent)
                self._error = f"ping timeout ({silent:.0f} s without data)"
                self.close(self._error)
                return
            if silent >= interval and not pinged:
                self.send("PING :keepalive")
                pinged = True
            elif silent < interval:
                pinged = False
            await asyncio.sleep(min(interval, timeout) / 4)

    # --- sending ------------------------------------------------------------------------

    def write(self, line: str, *, secret: bool = False, paced: bool = False) -> bool:
        """Write one protocol line; False when the connection is gone.

        Lines with CR, LF or NUL are refused (ValueError): callers sanitise
        text first. An unpaced line still spends a token, since the server
        counts it; a secret line is logged by its command only.
        """
        if any(ch in line for ch in "\r\n\0"):
            raise ValueError("IRC line with CR, LF or NUL refused")
        transport = self.conn.transport
        if transport is None or transport.is_closing():
            return False
        data = line.encode() + b"\r\n"
        transport.write(data)
        self.lines_sent += 1
        if not paced:
            self.bucket.take()
        log.debug("%s >> %s", self.name, line.split(" ", 1)[0] + " ***" if secret else line)
        self._track(len(data))
        return True

    def send(self, line: str) -> bool:
        return self.write(line)

    async def paced(self, line: str, *, still: Callable[[], bool], secret: bool = False) -> bool:
        """Wait for a token and for room in the window, then write `line` if `still()`."""
        await self.bucket.acquire()
        while self.window > 0 and self.in_flight >= self.window and self.alive:
            self._acked.clear()
            await self._acked.wait()
        return still() and self.alive and self.write(line, secret=secret, paced=True)

    async def say(
        self,
        kind: LineKind | Literal["topic"],
        target: str,
        text: str,
        *,
        still: Callable[[], bool],
        reply_msgid: str | None = None,
    ) -> bool:
        """A PRIVMSG, NOTICE, CTCP ACTION or TOPIC; with `reply_msgid` tagged as a
        reply to that message (`+draft/reply`) when the server takes client tags."""
        if kind == "topic":
            return await self.paced(f"TOPIC {target} :{text}", still=still)
        tag = ""
        if reply_msgid and "message-tags" in self.caps:
            tag = f"@+draft/reply={tag_value(reply_msgid)} "
        if kind == "action":
            line = f"{tag}PRIVMSG {target} :\x01ACTION {text}\x01"
            return await self.paced(line, still=still)
        command = "NOTICE" if kind == "notice" else "PRIVMSG"
        return await self.paced(f"{tag}{command} {target} :{text}", still=still)

    async def join(self, channel: str, key: str | None) -> bool:
        line = f"JOIN {channel} {key}" if key else f"JOIN {channel}"
        return await self.paced(line, still=lambda: True, secret=bool(key))

    def _track(self, size: int) -> None:
        """Bound what sits unprocessed in the server's receive queue.

        With fakelag a server delays lines instead of dropping them, and
        kills a client whose backlog outgrows its recvq. A PING sent once
        half the window is in flight comes back only after the server has
        processed every line before it, so its PONG frees that much.
        """
        if self.window <= 0:
            return
        self.in_flight += size
        if self._mark is None and self.in_flight >= self.window // 2:
            self._pings += 1
            token = f"bh-window-{self._pings}"
            self._mark = (token, self.in_flight + len(f"PING :{token}") + 2)
            self.write(f"PING :{token}")

    def _on_pong(self, event: Any) -> None:
        token = event.arguments[-1] if event.arguments else event.target
        if self._mark is not None and token == self._mark[0]:
            self.in_flight = max(0, self.in_flight - self._mark[1])
            self._mark = None
            self._acked.set()
            if self.in_flight >= self.window // 2:
                self._track(0)

    # --- events -------------------------------------------------------------------------

    def _on_event(self, _conn: Any, event: Any) -> None:
        handler: Callable[[Any], None] | None = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)
        elif event.type in NICK_ERRORS and not self._registered.done():
            self._nick_rejected(event)
        elif event.type in SASL_FAILURES:
            text = event.arguments[-1] if event.arguments else event.type
            code = SASL_FAILURES[event.type]
            self._fail(f"SASL authentication failed ({code}: {text})", auth=True)
        elif event.type in JOIN_ERRORS and event.arguments and is_channel(event.arguments[0]):
            code = JOIN_ERRORS[event.type]
            channel = event.arguments[0]
            text = event.arguments[-1] if len(event.arguments) > 1 else ""
            why = JOIN_ERROR_TEXT.get(code, text)
            self.listener.on_join_error(channel, f"cannot join {channel}: {why} ({code} {text})")

    def _on_disconnect(self, event: Any) -> None:
        reason = event.arguments[0] if event.arguments else "connection lost"
        self._set_closed(reason or "connection lost")

    def _on_error(self, event: Any) -> None:
        self._error = f"server closed the link: {event.target}"
        log.warning("%s: %s", self.name, self._error)

    def _on_cap(self, event: Any) -> None:
        args = list(event.arguments)
        if not args:
            return
        sub = args[0].upper()
        if sub == "LS":
            for token in args[-1].split():
                name, eq, value = token.partition("=")
                self.caps_offered[name] = value if eq else None
            if len(args) >= 3 and args[1] == "*":
                return  # more LS lines follow
            self._request_caps()
        elif sub == "ACK":
            acked = {c.lstrip("-~=") for c in args[-1].split() if not c.startswith("-")}
            self.caps |= acked
            if "sasl" in acked and self.account.sasl_password is not None:
                self.send("AUTHENTICATE PLAIN")
            else:
                self._cap_end()
        elif sub == "NAK":
            if self.account.sasl_password is not None:
                self._fail("the server refused the SASL capability", auth=True)
            else:
                self._cap_end()

    def _request_caps(self) -> None:
        wanted = [c for c in WANTED_CAPS if c in self.caps_offered]
        if self.account.sasl_password is not None:
            mechs = self.caps_offered.get("sasl", "missing")
            if "sasl" not in self.caps_offered or (mechs and "PLAIN" not in mechs.split(",")):
                self._fail("the server offers no SASL PLAIN (sasl is configured)", auth=True)
                return
            wanted.append("sasl")
        if wanted:
            self.send(f"CAP REQ :{' '.join(wanted)}")
        else:
            self._cap_end()

    def _cap_end(self) -> None:
        if not self._cap_done:
            self._cap_done = True
            self.send("CAP END")

    def _on_authenticate(self, event: Any) -> None:
        acc = self.account
        if event.target != "+" or acc.sasl_password is None:
            return
        for chunk in sasl_plain_chunks(acc.sasl_username or acc.nick, acc.sasl_password):
            self.write(f"AUTHENTICATE {chunk}", secret=True)

    def _on_loggedin(self, event: Any) -> None:
        if len(event.arguments) >= 2:
            self.sasl_account = event.arguments[1]
            log.info("%s: logged in as %s", self.name, self.sasl_account)

    def _on_saslsuccess(self, _event: Any) -> None:
        self._cap_end()

    def _on_saslalready(self, _event: Any) -> None:
        self._cap_end()

    def _on_passwdmismatch(self, _event: Any) -> None:
        self._fail("the server rejected the password (464)", auth=True)

    def _on_yourebannedcreep(self, event: Any) -> None:
        text = event.arguments[-1] if event.arguments else ""
        self._fail(f"banned from the server (465 {text})", auth=True)

    def _nick_rejected(self, event: Any) -> None:
        self._nick_index += 1
        if self._nick_index >= len(self._nicks):
            self._fail("every configured nick is taken or invalid")
            return
        new = self._nicks[self._nick_index]
        log.info(
            "%s: nick %s not available (%s); trying %s",
            self.name,
            event.arguments[:1],
            event.type,
            new,
        )
        self.send(f"NICK {new}")

    def _on_welcome(self, _event: Any) -> None:
        if not self._cap_done:
            self._cap_done = True  # a server without CAP: registration went on anyway
            if self.account.sasl_password is not None:
                self._fail("the server does not support CAP/SASL (sasl is configured)", auth=True)
                return
        log.info(
            "%s: registered as %s (caps: %s)",
            self.name,
            self.nick,
            " ".join(sorted(self.caps)) or "none",
        )
        if self.account.nickserv_password:
            self.write(f"PRIVMSG NickServ :IDENTIFY {self.account.nickserv_password}", secret=True)
        if not self._registered.done():
            self._registered.set_result(None)

    def message(self, command: str, source: Any, target: str, text: str, tags: Any = None) -> None:
        """A PRIVMSG or NOTICE (called by reactor.Connection for every one)."""
        nick = NickMask(source).nick if source else ""
        if not source or "!" not in str(source) or not is_channel(target):
            return  # server notices, private messages
        values = parse_tags(tags)
        history = self._batches.get(values.get("batch") or "")
        if self.is_me(nick) and history is None:
            self.listener.on_echo(target, text, values)  # our own line, with its msgid
            return
        kind: LineKind = "notice" if command == "notice" else "text"
        raw = text
        if text.startswith("\x01"):
            tag, _, rest = text[1:].removesuffix("\x01").partition(" ")
            if tag.upper() != "ACTION" or kind == "notice":
                return  # other CTCP requests and replies are not chat
            kind, text = "action", rest
        line = Line(nick, raw, values.get("msgid"), server_time(values.get("time")))
        if history is not None:
            self.listener.on_history(target, nick, text, kind, line)
        else:
            self.listener.on_message(target, nick, text, kind, line=line, tags=values)

    def _on_batch(self, event: Any) -> None:
        """IRCv3 batches: a `chathistory` one is a channel's history, sent on join."""
        ref = str(event.target or "")
        if ref.startswith("+") and len(event.arguments) >= 2:
            if event.arguments[0].lower() in HISTORY_BATCHES and len(self._batches) < 100:
                self._batches[ref[1:]] = event.arguments[1]
        elif ref.startswith("-"):
            channel = self._batches.pop(ref[1:], None)
            if channel is not None:
                self.listener.on_history_end(channel)

    def _on_join(self, event: Any) -> None:
        if self.is_me(event.source.nick):
            self.listener.on_joined(event.target)
        else:
            self.listener.on_member(event.target, event.source.nick, "join", "")

    def _on_kick(self, event: Any) -> None:
        if not event.arguments:
            return
        reason = event.arguments[1] if len(event.arguments) > 1 else ""
        if self.is_me(event.arguments[0]):
            self.listener.on_removed(
                event.target, f"kicked from {event.target} by {event.source.nick}: {reason}"
            )
        else:
            why = f"kicked by {event.source.nick}" + (f": {reason}" if reason else "")
            self.listener.on_member(event.target, event.arguments[0], "part", why)

    def _on_topic(self, event: Any) -> None:
        if event.source and not self.is_me(event.source.nick) and is_channel(event.target):
            text = event.arguments[0] if event.arguments else ""
            self.listener.on_topic(event.target, event.source.nick, text)

    def _on_currenttopic(self, event: Any) -> None:
        if len(event.arguments) >= 2:
            self.listener.on_topic(event.arguments[0], None, event.arguments[1])

    def _on_quit(self, event: Any) -> None:
        if event.source and not self.is_me(event.source.nick):
            reason = event.arguments[0] if event.arguments else ""
            self.listener.on_quit(event.source.nick, reason)

    def _on_nick(self, event: Any) -> None:
        if event.source and event.target:
            self.listener.on_nick(event.source.nick, event.target)

    def _on_namreply(self, event: Any) -> None:
        if len(event.arguments) >= 3:
            self.listener.on_names(event.arguments[1], event.arguments[2].split(), False)

    def _on_endofnames(self, event: Any) -> None:
        if event.arguments:
            self.listener.on_names(event.arguments[0], [], True)

    def _on_chanoprivsneeded(self, event: Any) -> None:
        if event.arguments and is_channel(event.arguments[0]):
            channel = event.arguments[0]
            text = event.arguments[-1] if len(event.arguments) > 1 else ""
            self.listener.on_refused(channel, f"cannot set the topic of {channel}: {text} (482)")

    def _on_cannotsendtochan(self, event: Any) -> None:
        if event.arguments and is_channel(event.arguments[0]):
            channel = event.arguments[0]
            text = event.arguments[-1] if len(event.arguments) > 1 else ""
            self.listener.on_refused(channel, f"cannot send to {channel}: {text} (404)")

    def _on_part(self, event: Any) -> None:
        if self.is_me(event.source.nick):
            self.listener.on_removed(event.target, f"parted {event.target}")
        else:
            reason = event.arguments[0] if event.arguments else ""
            self.listener.on_member(event.target, event.source.nick, "part", reason)
