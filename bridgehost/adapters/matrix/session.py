"""Logging in to the homeserver once and reusing the session.

A password login creates a device; doing that on every start would leave a
trail of devices behind. So after the first password login the access token
and device id are written to `data_dir/matrix-<account>.json` (mode 0600) and
reused on every later start. If the homeserver rejects that token (revoked,
logged out), one fresh password login is made with the same device id, if a
password is configured; otherwise the error says what to do. A configured
`access_token` is used as given (and a password, if also set, is the fallback
when it is rejected). Tokens and passwords never appear in logs or errors.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, LoginResponse, WhoamiResponse

from ...runtime import Fatal
from .config import MatrixAccount
from .credentials import CredentialFile, Credentials, credential_path
from .responses import UNKNOWN_TOKEN, classify

log = logging.getLogger(__name__)


class _DropDebug(logging.Filter):
    """nio logs every response body at DEBUG, a login's access token included."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


logging.getLogger("nio.responses").addFilter(_DropDebug())


class MatrixAuthError(Fatal):
    """The homeserver will not let us in; retrying without a config change is useless."""


class TokenRejected(Exception):
    """The homeserver rejected the access token in use (it was revoked)."""


def new_client(account: MatrixAccount) -> AsyncClient:
    """A nio client that hands every error back instead of retrying on its own."""
    config = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)
    return AsyncClient(
        account.homeserver,
        account.user_id,
        config=config,
        ssl=None if account.verify else False,
    )


class MatrixSession:
    """Opens logged-in clients for one account; counts password logins."""

    def __init__(self, account: MatrixAccount, data_dir: Path) -> None:
        self.account = account
        self.file = CredentialFile(credential_path(data_dir, account.name))
        self.logins = 0
        self.device_id: str | None = None

    async def open(self) -> AsyncClient:
        """A client with a working access token (network errors propagate)."""
        acc = self.account
        client = new_client(acc)
        try:
            if acc.access_token is not None:
                if await self._try(client, acc.access_token, ""):
                    return client
                if acc.password is None:
                    raise MatrixAuthError(
                        f"the configured access_token of {acc.user_id} was rejected by "
                        f"{acc.homeserver} ({UNKNOWN_TOKEN}); configure a new token or a password"
                    )
                log.warning("%s: configured access_token rejected; logging in", acc.name)
                await self._login(client, None)
                return client
            saved = self.file.load()
            if saved and (saved.homeserver, saved.user_id) != (acc.homeserver, acc.user_id):
                saved = None
            if saved is not None:
                if await self._try(client, saved.access_token, saved.device_id):
                    return client
                if acc.password is None:
                    raise MatrixAuthError(
                        f"the saved access token of {acc.user_id} was rejected by "
                        f"{acc.homeserver} ({UNKNOWN_TOKEN}) and no password is configured"
                    )
                log.warning(
                    "%s: saved access token was revoked; one fresh password login", acc.name
                )
            await self._login(client, saved.device_id if saved else None)
            return client
        except BaseException:
            await client.close()
            raise

    async def _try(self, client: AsyncClient, token: str, device_id: str) -> bool:
        """Use `token`; True if the homeserver accepts it."""
        client.restore_login(self.account.user_id, device_id, token)
        resp = await client.whoami()
        answer = classify(resp, WhoamiResponse)
        if answer.ok:
            if resp.user_id != self.account.user_id:
                raise MatrixAuthError(
                    f"the access token belongs to {resp.user_id}, not {self.account.user_id}"
                )
            if resp.device_id:
                client.device_id = resp.device_id
            self.device_id = client.device_id
            return True
        if answer.outcome == "token rejected":
            client.access_token = ""
            return False
        raise ConnectionError(f"whoami failed: {answer.describe()}")

    async def _login(self, client: AsyncClient, device_id: str | None) -> None:
        acc = self.account
        if acc.password is None:
            raise MatrixAuthError(f"{acc.name}: no password configured for {acc.user_id}")
        client.access_token = ""
        client.device_id = device_id
        self.logins += 1
        resp = await client.login(acc.password, device_name=acc.device_name)
        answer = classify(resp, LoginResponse)
        if not answer.ok:
            failed = f"password login as {acc.user_id} failed: {answer.describe()}"
            if answer.outcome in ("forbidden", "refused"):
                raise MatrixAuthError(failed)
            raise ConnectionError(failed)
        self.device_id = resp.device_id
        self.file.save(Credentials(acc.homeserver, acc.user_id, resp.device_id, resp.access_token))
        log.info(
            "%s: logged in as %s, device %s (session saved)", acc.name, acc.user_id, resp.device_id
        )
