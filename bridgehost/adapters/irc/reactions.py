"""At most one reaction line per message per interval (pure; the clock is passed in).

A popular message on Matrix can collect a dozen reactions within seconds;
one IRC line each would drown the channel. The first reaction to a message
is shown at once; the ones that follow within `interval` seconds are held
and shown together in one line when it ends, after which the next one is
shown at once again.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Held:
    """Reactions to one message waiting for its interval to end."""

    target: bytes
    until: float
    who: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


class ReactionGate:
    def __init__(self, interval: float = 10.0, *, max_targets: int = 1000) -> None:
        self.interval = interval
        self.max_targets = max_targets
        self._quiet_until: dict[bytes, float] = {}
        self._held: dict[bytes, Held] = {}

    def offer(self, target: bytes, who: str, key: str, now: float) -> bool:
        """True: show this reaction now. False: it is held (see `due`)."""
        self._expire(now)
        until = self._quiet_until.get(target)
        if until is None or now >= until:
            self._quiet_until[target] = now + self.interval
            return True
        held = self._held.get(target)
        if held is None:
            held = self._held[target] = Held(target, until)
        held.who.append(who)
        held.keys.append(key)
        return False

    def due(self, now: float) -> list[Held]:
        """Held reactions whose interval has ended, oldest first; each starts a new interval."""
        ready = [h for h in self._held.values() if h.until <= now]
        for held in ready:
            del self._held[held.target]
            self._quiet_until[held.target] = now + self.interval
        return sorted(ready, key=lambda h: h.until)

    def next_due(self) -> float | None:
        return min((h.until for h in self._held.values()), default=None)

    def _expire(self, now: float) -> None:
        if len(self._quiet_until) < self.max_targets:
            return
        for target, until in list(self._quiet_until.items()):
            if until <= now and target not in self._held:
                del self._quiet_until[target]
        while len(self._quiet_until) >= self.max_targets:
            oldest = next(iter(self._quiet_until))
            self._quiet_until.pop(oldest)
            self._held.pop(oldest, None)
