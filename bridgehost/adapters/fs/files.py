"""The adapter's few file operations: directories, FIFOs, appends, presence.

Each is a short synchronous syscall on a local file, opened non-blocking so a
FIFO put where a regular file belongs can never stall the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def ensure_dir(path: Path) -> None:
    """A directory private to the user (created 0700; an existing one is kept as is)."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError as exc:
        if not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path)) from exc
        return
    os.chmod(path, 0o700)


def ensure_fifo(path: Path) -> None:
    """A named pipe at `path`; whatever else is there (a stray regular file
    from writing to `in` while it was missing) is replaced, with a log line."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISFIFO(st.st_mode):
            return
        log.warning("%s is not a named pipe (%d bytes): replacing it with one", path, st.st_size)
        os.unlink(path)
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)


def append(path: Path, text: str) -> None:
    """Append to a file (created 0600), recreating a directory removed under us."""
    data = text.encode("utf-8", "surrogateescape")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        ensure_dir(path.parent)
        fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace a small file in one step, so a reader never sees it half written."""
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
