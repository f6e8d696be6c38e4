"""The saved Matrix login of one account: `data_dir/matrix-<account>.json`.

Light (no nio): the adapter saves and reuses it, and the app reads it to
fetch media as an account whose adapter runs in a child process
(`process: true`), since the file is the same in both modes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def credential_path(data_dir: Path, account: str) -> Path:
    return data_dir / f"matrix-{account}.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str = field(repr=False)


class CredentialFile:
    """The saved session of one account: a JSON file only its owner can read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Credentials | None:
        try:
            raw: Any = json.loads(self.path.read_text())
            return Credentials(
                homeserver=str(raw["homeserver"]),
                user_id=str(raw["user_id"]),
                device_id=str(raw["device_id"]),
                access_token=str(raw["access_token"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable Matrix session file %s: %s", self.path, exc)
            return None

    def save(self, creds: Credentials) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "homeserver": creds.homeserver,
                    "user_id": creds.user_id,
                    "device_id": creds.device_id,
                    "access_token": creds.access_token,
                },
                f,
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class SavedLogin:
    """Media credentials from the file another process keeps up to date (read
    again only when the file changed)."""

    def __init__(self, homeserver: str, path: Path) -> None:
        self.homeserver, self.file = homeserver, CredentialFile(path)
        self._seen: tuple[int, int] | None = None
        self._token: str | None = None

    def media_credentials(self) -> tuple[str, str] | None:
        try:
            st = self.file.path.stat()
        except OSError:
            return None
        if (st.st_mtime_ns, st.st_ino) != self._seen:
            saved = self.file.load()
            self._seen = (st.st_mtime_ns, st.st_ino)
            self._token = saved.access_token if saved is not None else None
        return (self.homeserver, self._token) if self._token else None
