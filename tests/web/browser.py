"""Headless Chromium from Debian (/usr/bin/chromium) through Playwright's Python package.

Never `playwright install`: the browser is the system one, given by path.
Screenshots go to `tmp_path` and, for a person to look at after the run,
to `.cache/artifacts/web/` (ignored by git).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""No sandbox (root in CI); no calls home, which this machine's closed network refuses."""
ARTIFACTS = Path(__file__).resolve().parents[2] / ".cache" / "artifacts" / "web"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs it (scripts/ensure-chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def keep(path: Path) -> Path:
    """Copy a screenshot to the artefacts directory; returns the copy."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / path.name
    shutil.copyfile(path, target)
    return target


class Watched:
    """A page with its console errors, uncaught exceptions and requests recorded."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)


async def watched_page(browser: Any, **options: Any) -> Watched:
    return Watched(await browser.new_page(**options))
