"""Small helpers shared by the black-box tests (no bridgehost imports)."""

from __future__ import annotations

import secrets
from typing import Any

DOMAIN = "test.example"

_counter = iter(range(2, 250))


def uniq(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def channel(prefix: str = "c") -> str:
    return f"#{uniq(prefix)}@{DOMAIN}"


def fresh_source_address() -> str:
    """A loopback source address (127.x.y.z) not used by another test, so per-address
    limits such as the failed-ident limit never leak between tests."""
    return f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}.{next(_counter)}"


def assert_error(frame: dict[str, Any], code: str, rid: int | None = None) -> None:
    assert frame.get("t") == "error", f"expected error {code!r}, got {frame!r}"
    assert frame.get("code") == code, f"expected error {code!r}, got {frame!r}"
    assert isinstance(frame.get("text"), str), f"error without text: {frame!r}"
    if rid is None:
        assert "rid" not in frame, f"error should carry no rid: {frame!r}"
    else:
        assert frame.get("rid") == rid, f"error should carry rid {rid}: {frame!r}"


def assert_bye(frame: dict[str, Any], reason: str) -> None:
    assert frame.get("t") == "bye", f"expected bye{{reason:{reason!r}}}, got {frame!r}"
    assert frame.get("reason") == reason, f"expected bye reason {reason!r}, got {frame!r}"
