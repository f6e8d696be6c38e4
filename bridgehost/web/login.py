"""The browser client's login API: a password for a revocable user token.

`POST /chat/api/login` with JSON `{user, password, label?}` checks the
password through the server's Authenticator, under the same failed-login
allowance per remote address as a Scalar `ident` (one shared bucket: a
guesser gains nothing by switching between the two), and answers
`{id, token}`. The page keeps the token, never the password, and logs in
over the WebSocket with `{"method": "token"}`; `bridgehost token revoke`
(or `POST /chat/api/logout`) ends it. Wrong user and wrong password look
the same. Requests from another site's pages are refused by `Origin`.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..scalar import ids
from ..scalar.auth import TOKEN_PREFIX
from ..scalar.errors import AuthFailed, RateLimited, ScalarError
from ..scalar.ids import Kind
from .context import CONTEXT, WebContext
from .origin import check_origin

log = logging.getLogger(__name__)

MAX_FIELD = 1024
NO_STORE = {"Cache-Control": "no-store"}


def _answer(status: int, **body: Any) -> web.Response:
    return web.json_response(body, status=status, headers=NO_STORE)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json\n")
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body is not JSON\n") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object\n")
    return body


def _field(body: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = body.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value) or len(value) > MAX_FIELD:
        raise web.HTTPBadRequest(text=f"{key} must be a non-empty string\n")
    return value


async def login(request: web.Request) -> web.Response:
    ctx: WebContext = request.app[CONTEXT]
    check_origin(request, ctx.http)
    body = await _json_body(request)
    name, password = _field(body, "user").strip().lower(), _field(body, "password")
    label = _field(body, "label", required=False) or "browser"
    server = ctx.server
    domain = server.settings.domain
    remote = request.remote or "?"
    try:  # the failed-ident allowance of the address, as for ident (§10)
        attempt = server.shared.failed_idents.attempt(remote)
    except RateLimited as exc:
        server.shared.counters.rate_limited += 1
        seconds = max(1, round(exc.retry_after / 1000))
        return _answer(
            429,
            error=f"too many failed logins: try again in {seconds} s",
            retry_after=exc.retry_after,
        )
    try:
        ident = ids.parse(name if "@" in name else f"{name}@{domain}")
        if ident.kind is not Kind.USER or ident.domain != domain:
            raise AuthFailed("not a user of this server")
        await server.auth.verify(str(ident), "password", password, attempt)
    except RateLimited as exc:
        attempt.failed()
        server.shared.counters.rate_limited += 1
        return _answer(429, error="too many failed logins", retry_after=exc.retry_after)
    except (AuthFailed, ScalarError):
        attempt.failed()
        server.shared.counters.failed_idents += 1
        log.info("browser login refused from %s", remote)
        return _answer(401, error="wrong user or password")
    except BaseException:
        attempt.failed()
        raise
    attempt.succeeded()
    token = await server.auth.issue_user_token(str(ident), label)
    log.info("browser login of %s from %s", ident, remote)
    return _answer(200, id=str(ident), token=token)


async def logout(request: web.Request) -> web.Response:
    """Revoke the token the page held (the answer is the same whether it existed)."""
    ctx: WebContext = request.app[CONTEXT]
    check_origin(request, ctx.http)
    token = _field(await _json_body(request), "token")
    if token.startswith(TOKEN_PREFIX):
        await ctx.server.auth.revoke_user_token(token)
    return web.Response(status=204, headers=NO_STORE)


def setup(app: web.Application, ctx: WebContext) -> None:
    app.router.add_post("/chat/api/login", login)
    app.router.add_post("/chat/api/logout", logout)
