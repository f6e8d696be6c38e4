"""What a reconnecting client has seen of each topic (sans-IO).

After a lost connection the client subscribes again; what was published
meanwhile is fetched with `catchup` from the last seq it saw, and handed over
once, in seq order, before the live events that arrive during the fetch
(which are held until then). Events the client published itself were answered
as echoes, not deliveries, and are not handed over again.
"""

from __future__ import annotations

from collections import OrderedDict

from .events import Event


class Continuity:
    def __init__(self, echoes: int = 1000) -> None:
        self._seen: dict[str, int] = {}
        self._echoes: OrderedDict[bytes, None] = OrderedDict()
        self._max_echoes = echoes
        self._held: dict[str, list[Event]] = {}

    def seen(self, topic: str) -> int:
        """The highest seq of `topic` delivered or echoed to us (0: none)."""
        return self._seen.get(topic, 0)

    def note(self, event: Event, *, echo: bool = False) -> None:
        if event.seq > self._seen.get(event.topic, 0):
            self._seen[event.topic] = event.seq
        if echo:
            self._echoes[event.id] = None
            while len(self._echoes) > self._max_echoes:
                self._echoes.popitem(last=False)

    def hold(self, topic: str) -> bool:
        """Hold live events of `topic` until `release`; False if already holding."""
        if topic in self._held:
            return False
        self._held[topic] = []
        return True

    def holding(self, topic: str) -> bool:
        return topic in self._held

    def live(self, event: Event) -> bool:
        """A delivery: True to hand it over now, False when it is held."""
        held = self._held.get(event.topic)
        if held is not None:
            held.append(event)
            return False
        self.note(event)
        return True

    def release(self, topic: str, missed: list[Event]) -> list[Event]:
        """The events to hand over, in order: what was missed (from `catchup`, oldest
        first) and then what was held, each once."""
        held = self._held.pop(topic, [])
        out: list[Event] = []
        last = self._seen.get(topic, 0)
        for event in [*missed, *held]:
            if event.seq == 0:  # presence: live only
                out.append(event)
                continue
            if event.seq <= last or event.id in self._echoes:
                last = max(last, event.seq)
                continue
            out.append(event)
            last = event.seq
        if last:
            self._seen[topic] = last
        return out
