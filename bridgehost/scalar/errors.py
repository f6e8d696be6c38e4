"""One small error tree; each leaf carries the protocol error code it maps to.

Raised by the sans-IO core and the server, and by the client when the server
answers a request with `error`, so callers can catch by meaning
(`except RateLimited as e: sleep(e.retry_after)`).
"""

from __future__ import annotations


class ScalarError(Exception):
    """Anything that ends up as an `error{code, text}` frame."""

    code = "internal"

    def __init__(self, text: str = "", *, rid: int | None = None) -> None:
        super().__init__(text or self.code)
        self.text = text or self.code
        self.rid = rid

    def with_rid(self, rid: int | None) -> ScalarError:
        self.rid = rid
        return self


class BadFrame(ScalarError):
    code = "bad-frame"


class BadMessage(ScalarError):
    code = "bad-message"


class UnknownType(ScalarError):
    code = "unknown-type"


class BadTopic(ScalarError):
    code = "bad-topic"


class NotAuthenticated(ScalarError):
    code = "not-authenticated"


class AuthFailed(ScalarError):
    code = "auth-failed"


class Forbidden(ScalarError):
    code = "forbidden"


class NoSuchTopic(ScalarError):
    code = "no-such-topic"


class RateLimited(ScalarError):
    code = "rate-limited"

    def __init__(self, text: str = "", *, rid: int | None = None, retry_after: int = 0) -> None:
        super().__init__(text, rid=rid)
        self.retry_after = retry_after


class TooLarge(ScalarError):
    code = "too-large"


class Unsupported(ScalarError):
    code = "unsupported"


class Internal(ScalarError):
    code = "internal"


class ConnectionClosed(ScalarError):
    """The peer said `bye` or the transport went away (client side only)."""

    code = "closed"


ERRORS_BY_CODE: dict[str, type[ScalarError]] = {
    cls.code: cls
    for cls in (
        BadFrame,
        BadMessage,
        UnknownType,
        BadTopic,
        NotAuthenticated,
        AuthFailed,
        Forbidden,
        NoSuchTopic,
        RateLimited,
        TooLarge,
        Unsupported,
        Internal,
    )
}


def error_from_code(
    code: str, text: str, *, rid: int | None, retry_after: int | None
) -> ScalarError:
    """Rebuild the typed error a server sent; unknown codes become plain ScalarError."""
    if code == RateLimited.code:
        return RateLimited(text, rid=rid, retry_after=retry_after or 0)
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        err = ScalarError(text, rid=rid)
        err.code = code
        return err
    return cls(text, rid=rid)
