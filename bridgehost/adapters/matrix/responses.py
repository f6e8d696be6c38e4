"""What a matrix-nio answer means for us, decided in one place.

nio returns an error object instead of raising; every call site used to pick
`status_code`, `message`, `retry_after_ms` and the HTTP status out of it by
hand. `classify` turns any answer into one of six outcomes the adapter acts
on: go on, wait `retry_after`, log in again, give up on this room, drop this
one request, or retry later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["ok", "rate limited", "token rejected", "forbidden", "refused", "transient"]

UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"
_FORBIDDEN = frozenset({"M_FORBIDDEN", "M_USER_DEACTIVATED"})


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    code: str | None = None
    """The Matrix `errcode`, e.g. `M_FORBIDDEN`."""
    status: int | None = None
    """The HTTP status (None: no HTTP answer at all)."""
    message: str = ""
    retry_after: float | None = None
    """Seconds the homeserver asked us to wait (rate limited)."""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def describe(self) -> str:
        return f"{self.code or self.status}: {self.message}"


def classify(resp: Any, ok: type | tuple[type, ...]) -> Answer:
    """`resp` (a nio response) is `ok` when it is an instance of `ok`; an error
    is rate limited (M_LIMIT_EXCEEDED / 429), token rejected (M_UNKNOWN_TOKEN),
    forbidden (M_FORBIDDEN, deactivated), transient (no HTTP answer or 5xx), or
    refused (any other 4xx: this request will never succeed)."""
    if isinstance(resp, ok):
        return Answer("ok")
    code = getattr(resp, "status_code", None)
    message = str(getattr(resp, "message", "") or "")
    status = getattr(getattr(resp, "transport_response", None), "status", None)
    retry_ms = getattr(resp, "retry_after_ms", None)
    code = code if isinstance(code, str) else None
    status = status if isinstance(status, int) else None
    retry = retry_ms / 1000 if isinstance(retry_ms, int | float) and retry_ms > 0 else None
    outcome: Outcome
    if code == "M_LIMIT_EXCEEDED" or status == 429:
        outcome = "rate limited"
    elif code == UNKNOWN_TOKEN:
        outcome = "token rejected"
    elif code in _FORBIDDEN:
        outcome = "forbidden"
    elif status is None or status >= 500:
        outcome = "transient"
    else:
        outcome = "refused"
    return Answer(outcome, code, status, message, retry)
