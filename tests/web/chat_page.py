"""Driving the /chat page in Chromium the way a person does: by label, role and text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.web.browser import ARTIFACTS, Watched

SHOTS = ARTIFACTS / "chat"
WS_FAILURE = re.compile(r"WebSocket connection to .* failed")
"""What Chromium logs to the console when the server is away; expected while it restarts."""


class ChatPage:
    """One person's tab: their page, its console errors, and the steps it shows."""

    def __init__(self, watched: Watched, base: str, name: str) -> None:
        self.w = watched
        self.page: Any = watched.page
        self.base = base
        self.name = name
        self.page.set_default_timeout(15_000)

    async def open(self) -> None:
        await self.page.goto(f"{self.base}/chat/")

    async def login(self, user: str, password: str) -> None:
        await self.open()
        await self.page.get_by_label("User").fill(user)
        await self.page.get_by_label("Password").fill(password)
        await self.page.get_by_role("button", name="Log in").click()
        await self.page.get_by_role("button", name="Log out").wait_for()

    async def as_guest(self) -> None:
        await self.open()
        await self.page.get_by_role("button", name="Continue as guest").click()
        await self.page.get_by_role("button", name="Log out").wait_for()

    async def join(self, name: str) -> None:
        """Type the channel's name in the filter and pick it (or create it)."""
        nav = self.page.get_by_role("navigation", name="Channels")
        await nav.get_by_role("searchbox", name="Filter channels").fill(name)
        listed = nav.get_by_role("button", name=re.compile(rf"^#{re.escape(name)}\b"))
        create = nav.get_by_role("button", name=f"Join #{name}")
        await listed.or_(create).first.click()
        await self.page.get_by_role("heading", name=f"#{name}").wait_for()

    @property
    def message_box(self) -> Any:
        return self.page.get_by_role("textbox", name="Message", exact=True)

    async def say(self, text: str) -> None:
        box = self.message_box
        await box.fill(text)
        await box.press("Enter")

    def article(self, text: str) -> Any:
        return self.page.get_by_role("article").filter(has_text=text)

    async def sees(self, text: str) -> Any:
        found = self.article(text)
        await found.first.wait_for()
        return found

    async def act(self, article: Any, action: str) -> None:
        """Point at a message (tap it, on a phone) and use one of its actions."""
        await article.locator(".meta").first.click()
        await article.get_by_role("button", name=action).click()

    async def open_view(self, label: str) -> None:
        """Open a channel or conversation from the navigation by its short name."""
        nav = self.page.get_by_role("navigation", name="Channels")
        await (
            nav.locator("button.view").filter(has_text=re.compile(rf"^{re.escape(label)}")).click()
        )
        await self.page.get_by_role("heading", name=label).wait_for()

    async def count(self, text: str) -> int:
        return int(await self.article(text).count())

    async def shot(self, step: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{step}-{self.name}.png"
        await self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path

    def errors(self, *, allow: re.Pattern[str] | None = None) -> list[str]:
        return [e for e in self.w.errors if allow is None or not allow.search(e)]
