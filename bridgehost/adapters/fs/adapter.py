"""The fs adapter: topics as directories with an `in` FIFO and an `out` log,
the way ii and sj expose IRC and XMPP to shell scripts.

    ROOT/in                      commands: `/msg ID TEXT`, `/j ID`
    ROOT/out                     the adapter's notices (rejected input, errors)
    ROOT/#lobby@example.com/in   each line written is published (`/me ...` = action)
    ROOT/#lobby@example.com/out  `YYYY-MM-DD HH:MM:SS <nick> body` per line, UTC
    ROOT/alice@example.com/...   direct messages with alice, same `in`/`out`
    ROOT/alice@example.com/presence   `online` / `offline` (users configured)

Channels go through ScalarSide like every adapter (origin, loop prevention,
bounded queue). Direct messages and presence need the adapter's own user
topic, so a second session of the same reserved ID holds those; the last DM
seq written is kept in the adapter's store, so a restart catches up DMs that
arrived meanwhile (and a first start replays nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable
from pathlib import Path

from ...config import Bridge, Link
from ...scalar import ids
from ...scalar.client import Client
from ...scalar.errors import BadTopic, ScalarError
from ...scalar.events import Event
from ..base import AdapterContext, ScalarSide, hub_backoff, origin_of, publish_retrying
from ..state import LinkState
from ..transcript import Transcript
from .config import FsAccount
from .fifo import FifoReader
from .files import append, ensure_dir, write_atomic
from .lines import MAX_LINE_BYTES, Line, display_name, format_event, format_notice, parse_input
from .names import escape_name, peer_of

log = logging.getLogger(__name__)

DM_SEQ_KEY = "dm-seq"
RETRY_AFTER_ERROR = 5.0
MAX_DM_READERS = 500
"""Anyone (a guest too) can DM the adapter; each DM `in` holds a file descriptor."""


class FsAdapter:
    """Mirror the configured channels, DMs and presence into a directory tree."""

    name = "fs"

    def __init__(self, ctx: AdapterContext) -> None:
        if not isinstance(ctx.account, FsAccount):
            raise TypeError(f"FsAdapter needs an fs account, not {ctx.account.type}")
        self.ctx = ctx
        self.account = ctx.account
        self.root = ctx.account.root
        self.domain = ctx.config.server.domain
        self.own_id = ctx.reserved_id
        self.side = ScalarSide(ctx, ctx.account.queue, settle=self._written, own_too=True)
        self.dm_status = LinkState(ctx.account.name, "(direct messages)", self.own_id, "both")
        self.users = self._qualify_users(ctx.account.users)
        self._dm: Client | None = None
        self._dm_ready = asyncio.Event()
        self._dm_seq: int | None = None
        self._dm_dirs: set[str] = set()
        self._dm_unread: set[str] = set()
        self.max_dm_readers = MAX_DM_READERS
        self._group: asyncio.TaskGroup | None = None
        self._action_piece: dict[Path, str] = {}
        self._dm_transcript = self._transcript()

    def _transcript(self) -> Transcript:
        """How `out` files name people and the messages edits and reactions act on."""
        return Transcript(functools.partial(display_name, domain=self.domain), memory=500)

    def status(self) -> list[LinkState]:
        return [*self.side.statuses(), self.dm_status]

    def _qualify_users(self, users: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for user in users:
            uid = user if "@" in user else f"{user}@{self.domain}"
            if uid.rpartition("@")[2] != self.domain:
                log.error(
                    "fs %s: user %s is not of this server (%s)", self.account.name, uid, self.domain
                )
                continue
            out.append(uid)
        return tuple(out)

    # --- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        ensure_dir(self.root)
        append(self.root / "out", "")
        mode = os.stat(self.root).st_mode
        if mode & 0o077:
            log.warning(
                "fs root %s is accessible by other users (mode %o)", self.root, mode & 0o777
            )
        self._dm_dirs.clear()
        self._dm_unread.clear()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self.side.run(), name=f"fs-{self.account.name}-scalar")
                group.create_task(self._dm_session(), name=f"fs-{self.account.name}-dm")
                group.create_task(
                    self._watch(FifoReader(self.root / "in", self._command), self.dm_status),
                    name=f"fs-{self.account.name}-commands",
                )
                for bridge, link in self.ctx.links:
                    self._start_link(group, bridge, link)
                for user in self.users:
                    self._open_dm(user)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._dir(user) / "presence")
                with os.scandir(self.root) as entries:
                    peers = [peer_of(e.name, self.domain) for e in entries if e.is_dir()]
                for peer in sorted(p for p in peers if p is not None):
                    self._open_dm(peer)
        finally:
            self._group = None

    def _dir(self, name: str) -> Path:
        return self.root / escape_name(name)

    async def _written(self, link: Link, event: Event) -> bool | None:
        """Whether `out` already ends with this event (it was being written when the
        adapter's process was killed); None for kinds rendered with earlier context."""
        if event.kind not in ("text", "action", "notice"):
            return None
        text = format_event(event, self.domain, self._transcript()).encode()
        path = self._dir(link.target) / "out"
        try:
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - len(text)))
                return fh.read() == text
        except OSError:
            return None

    def _start_link(self, group: asyncio.TaskGroup, bridge: Bridge, link: Link) -> None:
        st = self.side.status_of(link)
        try:
            directory = self._dir(link.target)
            ensure_dir(directory)
            append(directory / "out", "")
        except (ValueError, OSError) as exc:
            st.set("error", f"cannot create the directory for {link.target!r}: {exc}")
            return
        if link.outbound:
            group.create_task(self._write_out(link, directory / "out"))
        if link.inbound:
            path = directory / "in"
            reader = FifoReader(path, functools.partial(self._channel_line, link, path))
            group.create_task(self._watch(reader, st))
        st.set("up")

    async def _watch(self, reader: FifoReader, st: LinkState) -> None:
        """Keep reading one FIFO; a file-system error is logged and retried."""
        while True:
            try:
                await reader.run()
            except OSError as exc:
                st.set("error", f"{reader.path}: {exc}")
                self._notice(f"cannot read {reader.path}: {exc}; retrying")
                await asyncio.sleep(RETRY_AFTER_ERROR)

    # --- output ------------------------------------------------------------------------

    def _append(self, path: Path, text: str, st: LinkState) -> None:
        try:
            append(path, text)
        except OSError as exc:
            st.set(st.state, f"cannot write {path}: {exc}")

    def _notice(self, text: str) -> None:
        """A problem the shell user should see: in the log and in ROOT/out."""
        log.warning("fs %s: %s", self.account.name, text)
        with contextlib.suppress(OSError):
            append(self.root / "out", format_notice(int(time.time() * 1000), text))

    async def _write_out(self, link: Link, path: Path) -> None:
        queue, st = self.side.queue(link), self.side.status_of(link)
        own = self.side.origin(link)
        transcript = self._transcript()
        while True:
            event = await queue.peek()
            self._append(path, format_event(event, self.domain, transcript), st)
            if event.origin != own:
                queue.sent()
            else:
                queue.pop()

    # --- input ---------------------------------------------------------------------------

    def _decode(self, path: Path, line: Line) -> tuple[str, str] | None:
        """(kind, body) of one line from `in`, or None (blank, or rejected and logged)."""
        try:
            text = line.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = line.data[exc.start : exc.start + 1].hex()
            self._notice(
                f"{path}: rejected a line of {len(line.data)} bytes that is not valid UTF-8 "
                f"(byte 0x{bad} at {exc.start})"
            )
            return None
        if line.part == 1:
            self._notice(f"{path}: a line longer than {MAX_LINE_BYTES} bytes is sent in parts")
        if line.part > 1:
            kind = self._action_piece.get(path, "text")
            if line.last:
                self._action_piece.pop(path, None)
            return (kind, text) if text else None
        parsed = parse_input(text)
        if parsed is not None and line.part == 1:
            self._action_piece[path] = parsed[0]
        return parsed

    async def _channel_line(self, link: Link, path: Path, line: Line) -> None:
        parsed = self._decode(path, line)
        if parsed is None:
            return
        kind, body = parsed
        event = await self.side.publish(link, nick=self.account.nick, body=body, kind=kind)
        if event is None:
            self._notice(f"{path}: a line could not be published (see the log)")
        elif link.outbound:
            self.side.queue(link).put(event)

    async def _command(self, line: Line) -> None:
        """ROOT/in: `/msg ID TEXT` sends a direct message, `/j ID` opens its directory."""
        path = self.root / "in"
        parsed = self._decode(path, line)
        if parsed is None:
            return
        cmd, _, rest = parsed[1].strip().partition(" ")
        target, _, text = rest.strip().partition(" ")
        if cmd not in ("/msg", "/j", "/join", "/query"):
            self._notice(f"unknown command {cmd[:40]!r}: use /msg ID TEXT or /j ID")
            return
        peer = self._peer(target)
        if peer is None:
            self._notice(f"{cmd}: not a user ID of {self.domain}: {target[:80]!r}")
            return
        self._open_dm(peer)
        message = parse_input(text)
        if cmd == "/msg" and message is not None:
            await self._send_dm(peer, *message)

    def _peer(self, text: str) -> str | None:
        if text and "@" not in text:
            text = f"{text}@{self.domain}"
        try:
            parsed = ids.parse(text)
        except BadTopic:
            return None
        if parsed.is_channel or parsed.domain != self.domain:
            return None
        return str(parsed)

    # --- direct messages and presence ------------------------------------------------------

    def _open_dm(self, peer: str) -> None:
        """Give a user its directory (`in` read from now on) the first time we talk."""
        if peer in self._dm_dirs or self._group is None:
            return
        directory = self._dir(peer)
        try:
            ensure_dir(directory)
            append(directory / "out", "")
        except OSError as exc:
            self.dm_status.set(self.dm_status.state, f"cannot create {directory}: {exc}")
            return
        if len(self._dm_dirs) >= self.max_dm_readers:
            if peer not in self._dm_unread:
                self._dm_unread.add(peer)
                self._notice(
                    f"{self.max_dm_readers} DM directories are open: {directory}/out is "
                    "written but its `in` is not read (restart to pick it up)"
                )
            return
        self._dm_dirs.add(peer)
        path = directory / "in"
        reader = FifoReader(path, functools.partial(self._dm_line, peer, path))
        self._group.create_task(self._watch(reader, self.dm_status))

    async def _dm_line(self, peer: str, path: Path, line: Line) -> None:
        parsed = self._decode(path, line)
        if parsed is not None:
            await self._send_dm(peer, *parsed)

    async def _send_dm(self, peer: str, kind: str, body: str) -> None:
        origin = origin_of(self.account, peer)
        received = time.monotonic()

        def send(client: Client) -> Awaitable[Event]:
            return client.publish(peer, body, kind=kind, nick=self.account.nick, origin=origin)

        try:
            event = await publish_retrying(self._dm_ready, lambda: self._dm, send)
        except ScalarError as exc:
            self._notice(f"message to {peer} refused: {exc.code}: {exc.text}")
            return
        if event is None:
            self._notice(f"message to {peer} not sent: the hub is unavailable")
            return
        self.dm_status.published(time.monotonic() - received)
        out = format_event(event, self.domain, self._dm_transcript)
        self._append(self._dir(peer) / "out", out, self.dm_status)

    async def _dm_session(self) -> None:
        """Hold the session that receives DMs and presence; catch up after any loss."""
        backoff = hub_backoff()
        while True:
            client = await self.ctx.connect()
            try:
                meta = await client.sub(self.own_id)
                for user in self.users:
                    await client.sub(user)
                if self._dm_seq is None:
                    stored = await self.ctx.kv.get(DM_SEQ_KEY)
                    self._dm_seq = int(stored) if stored else None
                if self._dm_seq is None:
                    await self._save_dm_seq(meta.seq)
                elif self._dm_seq < meta.seq:
                    async for event in client.history_after(self.own_id, self._dm_seq):
                        await self._on_dm_event(event)
                self._dm = client
                self._dm_ready.set()
                backoff.started()
                self.dm_status.set("up")
                async for event in client:
                    await self._on_dm_event(event)
                self.dm_status.set("reconnecting", f"session ended: {client.close_reason}")
            finally:
                self._dm_ready.clear()
                self._dm = None
                await client.close()
            await backoff.wait()

    async def _save_dm_seq(self, seq: int) -> None:
        self._dm_seq = seq
        await self.ctx.kv.set(DM_SEQ_KEY, str(seq).encode())

    async def _on_dm_event(self, event: Event) -> None:
        if event.kind == "presence":
            if event.topic in self.users:
                try:
                    write_atomic(self._dir(event.topic) / "presence", event.body + "\n")
                except OSError as exc:
                    self.dm_status.set(self.dm_status.state, f"cannot write presence: {exc}")
            return
        if event.topic != self.own_id or event.seq <= (self._dm_seq or 0):
            return
        if event.sender != self.own_id:
            self._open_dm(event.sender)
            out = format_event(event, self.domain, self._dm_transcript)
            self._append(self._dir(event.sender) / "out", out, self.dm_status)
            self.dm_status.relayed(event.time)
        await self._save_dm_seq(event.seq)
