"""A bounded disk cache of fetched media in the data dir (least recently used goes first).

Every file operation runs in a worker thread. Entries are written to a
temporary name and renamed, so a half-fetched file is never served; the
content type is kept beside the body.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_DIR = "media-cache"


@dataclass(frozen=True, slots=True)
class Cached:
    path: Path
    content_type: str
    size: int


def cache_key(server: str, media_id: str) -> str:
    return hashlib.sha256(f"{server}/{media_id}".encode()).hexdigest()


class MediaCache:
    def __init__(self, data_dir: Path, limit: int) -> None:
        self.dir = data_dir / CACHE_DIR
        self.limit = limit
        self._sizes: collections.OrderedDict[str, int] | None = None
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    async def _index(self) -> collections.OrderedDict[str, int]:
        if self._sizes is None:
            self._sizes = await asyncio.to_thread(self._scan)
        return self._sizes

    def _scan(self) -> collections.OrderedDict[str, int]:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        entries = []
        for path in self.dir.iterdir():
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)
            elif path.suffix == "" and len(path.name) == 64:
                with contextlib.suppress(OSError):
                    st = path.stat()
                    entries.append((st.st_mtime, path.name, st.st_size))
        entries.sort()
        return collections.OrderedDict((name, size) for _, name, size in entries)

    async def get(self, key: str) -> Cached | None:
        if not self.enabled:
            return None
        sizes = await self._index()
        if key not in sizes:
            return None
        path = self.dir / key
        try:
            ctype = await asyncio.to_thread(self._touch_and_type, path)
        except OSError:
            sizes.pop(key, None)
            return None
        sizes.move_to_end(key)
        return Cached(path, ctype, sizes[key])

    @staticmethod
    def _touch_and_type(path: Path) -> str:
        os.utime(path)
        return path.with_suffix(".type").read_text().strip() or "application/octet-stream"

    def new_file(self, key: str) -> Path:
        return self.dir / f"{key}.{os.urandom(4).hex()}.tmp"

    async def put(self, key: str, tmp: Path, content_type: str, size: int) -> None:
        """Keep a fully written temporary file under `key`, then evict down to the limit."""
        async with self._lock:
            sizes = await self._index()
            await asyncio.to_thread(self._install, key, tmp, content_type)
            sizes[key] = size
            sizes.move_to_end(key)
            victims = []
            total = sum(sizes.values())
            while total > self.limit and len(sizes) > 1:
                name, old = sizes.popitem(last=False)
                total -= old
                victims.append(name)
            if victims:
                await asyncio.to_thread(self._remove, victims)

    def _install(self, key: str, tmp: Path, content_type: str) -> None:
        (self.dir / key).with_suffix(".type").write_text(content_type)
        tmp.replace(self.dir / key)

    def _remove(self, names: list[str]) -> None:
        for name in names:
            (self.dir / name).unlink(missing_ok=True)
            (self.dir / name).with_suffix(".type").unlink(missing_ok=True)
        log.debug("media cache: evicted %d file(s)", len(names))
