"""A bounded map of text keys to text values, in memory and saved as pages.

Adapters remember what crossed the bridge (which Matrix event a Scalar event
became, who said what on IRC) so that a later reply, edit, deletion or
reaction finds its target, also after a restart. A key-value write per
message would cost a database commit on the relay path (a 1,000-line burst
would wait on 1,000 commits), so the map lives in memory and is written
behind, a page at a time:

- entries go to the current page; a full page is closed and a new one begun;
- at most `capacity // page_size` pages are kept: the oldest page's entries
  are forgotten when a new one would exceed that (memory and disk bounded);
- `save()` writes the pages changed since the last save, each as one value
  under `PREFIX<slot>`, slots reused in a ring, plus `PREFIXhead` (the
  number of the current page). The owner calls it every second and at stop,
  so a crash loses at most the last second's entries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from ..scalar.store import KeyValue

log = logging.getLogger(__name__)


class PagedMap:
    def __init__(
        self, kv: KeyValue, prefix: str, *, capacity: int = 20_000, page_size: int = 500
    ) -> None:
        self.kv = kv
        self.prefix = prefix
        self.page_size = max(1, page_size)
        self.pages = max(2, -(-capacity // self.page_size))
        self._entries: dict[str, tuple[str, int]] = {}
        """key -> (value, number of the page holding its latest value)."""
        self._content: dict[int, dict[str, str]] = {}
        """page number -> its entries, for the pages kept."""
        self._head = 0
        self._dirty: set[int] = set()
        self._head_saved = -1

    @property
    def capacity(self) -> int:
        return self.pages * self.page_size

    def __len__(self) -> int:
        return len(self._entries)

    def _slot(self, page: int) -> str:
        return f"{self.prefix}{page % self.pages:05d}"

    async def load(self) -> None:
        """Read what an earlier run saved (nothing on a first start)."""
        raw_head = await self.kv.get(self.prefix + "head")
        if raw_head is None:
            return
        head = int(raw_head)
        found: list[tuple[int, dict[str, str]]] = []
        for slot, raw in await self.kv.items(self.prefix):
            if slot == self.prefix + "head":
                continue
            try:
                page = json.loads(raw)
                number, items = int(page["n"]), dict(page["items"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("%s: unreadable page %s skipped: %s", self.prefix, slot, exc)
                continue
            if head - self.pages < number <= head:
                found.append((number, {str(k): str(v) for k, v in items.items()}))
        for number, items in sorted(found):
            self._content[number] = items
            for key, value in items.items():
                self._entries[key] = (value, number)
        self._head = head
        self._head_saved = head

    def get(self, key: str) -> str | None:
        hit = self._entries.get(key)
        return None if hit is None else hit[0]

    def put(self, key: str, value: str) -> None:
        page = self._content.get(self._head)
        if page is None:
            page = self._content[self._head] = {}
        elif len(page) >= self.page_size and key not in page:
            self._head += 1
            page = self._content[self._head] = {}
            self._forget(self._head - self.pages)
        page[key] = value
        self._entries[key] = (value, self._head)
        self._dirty.add(self._head)

    def put_many(self, items: Iterable[tuple[str, str]]) -> None:
        for key, value in items:
            self.put(key, value)

    def _forget(self, number: int) -> None:
        old = self._content.pop(number, None)
        self._dirty.discard(number)
        for key in old or ():
            hit = self._entries.get(key)
            if hit is not None and hit[1] == number:
                del self._entries[key]

    async def save(self) -> None:
        """Write the pages changed since the last save (the head first: a page
        newer than the saved head would be ignored by `load`)."""
        dirty, self._dirty = sorted(self._dirty), set()
        try:
            if dirty and self._head != self._head_saved:
                await self.kv.set(self.prefix + "head", str(self._head).encode())
                self._head_saved = self._head
            while dirty:
                items = self._content.get(dirty[0])
                if items is not None:
                    page = json.dumps({"n": dirty[0], "items": items}, ensure_ascii=False)
                    await self.kv.set(self._slot(dirty[0]), page.encode())
                dirty.pop(0)
        finally:
            self._dirty.update(dirty)
