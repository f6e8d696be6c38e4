"""The saved Matrix login: private file, read back, and re-read by another
process's SavedLogin only when it changed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bridgehost.adapters.matrix.credentials import (
    CredentialFile,
    Credentials,
    SavedLogin,
    credential_path,
)


def test_saved_login_follows_the_file(tmp_path: Path) -> None:
    path = credential_path(tmp_path, "mx")
    login = SavedLogin("https://hs.example", path)
    assert login.media_credentials() is None  # nothing saved yet
    file = CredentialFile(path)
    file.save(Credentials("https://hs.example", "@b:hs.example", "DEV", "token-1"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert login.media_credentials() == ("https://hs.example", "token-1")
    file.save(Credentials("https://hs.example", "@b:hs.example", "DEV", "token-2"))
    assert login.media_credentials() == ("https://hs.example", "token-2")  # a new login
    path.write_text("{not json")
    assert login.media_credentials() is None
    path.unlink()
    assert login.media_credentials() is None


def test_token_never_in_repr() -> None:
    creds = Credentials("https://hs.example", "@b:hs.example", "DEV", "secret-token")
    assert "secret-token" not in repr(creds)
