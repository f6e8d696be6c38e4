"""Public links to long messages and media, signed so the media route is no open proxy.

`public_url/m/<event id hex>` names one event; `public_url/media/<server>/<media
id>/<filename>?sig=…` names one Matrix upload. The signature is an HMAC-SHA256
over the URL path (truncated to 128 bits) with a key kept in the data dir, so
only links bridgehost itself made are served, and changing any part of the
path (another server, another media id) makes them invalid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote

KEY_FILE = "http-signing-key"
_SERVER = re.compile(r"[A-Za-z0-9.\-:\[\]]{1,255}")
_MEDIA_ID = re.compile(r"[A-Za-z0-9_\-]{1,255}")


def load_key(data_dir: Path) -> bytes:
    """The signing key in `data_dir`, made (0600, written atomically) on first use."""
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) >= 32:
        return key
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    tmp.replace(path)
    return key


def valid_media(server: str, media_id: str) -> bool:
    """Whether (server, media id) can be part of an `mxc://` URI we fetch."""
    return bool(_SERVER.fullmatch(server) and _MEDIA_ID.fullmatch(media_id))


def media_path(server: str, media_id: str, filename: str) -> str:
    """`/media/<server>/<media id>/<filename>`, each part percent-encoded."""
    parts = (server, media_id, filename or "file")
    return "/media/" + "/".join(quote(p, safe="") for p in parts)


class PublicLinks:
    """Makes and checks the links IRC users (and Scalar bodies) get."""

    def __init__(self, public_url: str, key: bytes) -> None:
        self.base = public_url.rstrip("/")
        self._key = key

    def sign(self, path: str) -> str:
        digest = hmac.new(self._key, path.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, path: str, sig: str) -> bool:
        return hmac.compare_digest(self.sign(path).encode(), sig.encode(errors="replace"))

    def media(self, server: str, media_id: str, filename: str) -> str | None:
        """The signed public link to `mxc://server/media_id`, or None if it is malformed."""
        if not valid_media(server, media_id):
            return None
        path = media_path(server, media_id, filename)
        return f"{self.base}{path}?sig={self.sign(path)}"

    def message(self, event_id: bytes) -> str:
        """The page of one (long) event: `public_url/m/<id hex>`."""
        return f"{self.base}/m/{event_id.hex()}"
