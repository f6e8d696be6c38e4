"""The chat page in headless Chromium against a real bridgehost process.

One bridgehost process and one browser serve the whole module (each person
gets a browser context of their own, as separate people would). Screenshots
of every step are kept in .cache/artifacts/web/chat/.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import cbor2
import pytest
import pytest_asyncio
from aiohttp import web

from bridgehost.scalar.client import Client, connect
from tests.integration.proc import BridgehostProcess
from tests.servers.ircd import free_port
from tests.web.browser import chromium, watched_page
from tests.web.chat_page import WS_FAILURE, ChatPage

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

DOMAIN = "test.example"
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-22"}


class Server:
    def __init__(self, proc: BridgehostProcess, http_port: int) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{http_port}"
        self.http_port = http_port

    def wait_http(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.http_port), 0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, self.proc.log()
                time.sleep(0.05)

    def restart(self) -> None:
        self.proc.start()
        self.wait_http()

    async def client(self, name: str) -> Client:
        return await connect(self.proc.url, id=f"{name}@{DOMAIN}", secret=PASSWORDS[name])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    proc = BridgehostProcess(
        tmp_path_factory.mktemp("chat"),
        {
            "http": {"listen": f"127.0.0.1:{port}"},
            "server": {"limits": {"rate": 1000, "burst": 1000}},
        },
    )
    for name, password in PASSWORDS.items():
        done = proc.cli("user", "add", name, "--password-stdin", stdin=password + "\n")
        assert done.returncode == 0, done.stderr
    srv = Server(proc, port)
    srv.restart()
    try:
        yield srv
    finally:
        proc.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


@pytest_asyncio.fixture(loop_scope="module")
async def people(browser: Any, server: Server) -> AsyncIterator[dict[str, ChatPage]]:
    """A fresh browser context per person (their own storage), closed after the test."""
    contexts: list[Any] = []
    pages: dict[str, ChatPage] = {}

    async def person(name: str, **options: Any) -> ChatPage:
        context = await browser.new_context(**options)
        contexts.append(context)
        page = ChatPage(await watched_page(context), server.base, name)
        pages[name] = page
        return page

    pages_api: dict[str, Any] = {"new": person}
    try:
        yield pages_api  # type: ignore[misc]
    finally:
        for context in contexts:
            await context.close()


async def test_two_people_chat_and_a_reload_keeps_login_and_history(
    server: Server, people: dict[str, Any]
) -> None:
    alice = await people["new"]("alice", viewport={"width": 1100, "height": 720})
    bob = await people["new"](
        "bob", viewport={"width": 390, "height": 760}, is_mobile=True, reduced_motion="reduce"
    )
    await alice.open()
    await alice.page.get_by_role("button", name="Log in").wait_for()
    await alice.shot("00-login")
    await alice.login("alice", PASSWORDS["alice"])
    await alice.join("lobby")
    await alice.shot("01-joined")
    await bob.login("bob", PASSWORDS["bob"])
    await bob.page.get_by_role("button", name="Show channels").click()
    await bob.page.get_by_role("navigation", name="Channels").get_by_text("#lobby").wait_for()
    await bob.shot("01-phone-menu")
    await bob.join("lobby")
    await alice.say("Hello Bob, this is Alice")
    await bob.sees("Hello Bob, this is Alice")
    await bob.say("Hi Alice!\nA second line (Shift+Enter is a new line)")
    box = bob.message_box
    await box.fill("first line")
    await box.press("Shift+Enter")
    await box.type("second line")
    await box.press("Enter")
    said = await alice.sees("first line")
    assert "second line" in await said.inner_text()
    await bob.say("/me waves")
    action = await alice.sees("waves")
    assert "* bob waves" in " ".join((await action.inner_text()).split())
    await alice.shot("02-chatting")
    await bob.shot("02-chatting")

    # Bob reloads: still logged in (a token, not the password), history back, in order.
    await bob.page.reload()
    await bob.sees("Hello Bob, this is Alice")
    await bob.sees("waves")
    assert await bob.page.get_by_role("button", name="Log in").count() == 0
    texts = await bob.page.get_by_role("article").all_inner_texts()
    order = [i for i, t in enumerate(texts) for k in ("Hello Bob", "first line", "waves") if k in t]
    assert order == sorted(order) and len(order) == 3
    await bob.shot("03-after-reload")
    for page in (alice, bob):
        assert page.errors() == [], page.errors()


async def test_rich_events_render_and_are_sent(server: Server, people: dict[str, Any]) -> None:
    alice = await people["new"]("alice")
    bob = await people["new"]("bob")
    await alice.login("alice", PASSWORDS["alice"])
    await bob.login("bob", PASSWORDS["bob"])
    await alice.join("rich")
    await bob.join("rich")
    await alice.say("teh first draft")
    mine = await alice.sees("teh first draft")
    await alice.act(mine, "Edit")
    await alice.message_box.fill("the final text")
    await alice.message_box.press("Enter")
    edited = await bob.sees("the final text")
    assert "(edited)" in await edited.inner_text()
    assert await bob.count("teh first draft") == 0

    await bob.act(edited, "React")
    await edited.get_by_role("button", name="React with 👍").click()
    reaction = alice.article("the final text").get_by_role("button", name="👍 1: bob")
    await reaction.wait_for()
    # Bob takes it back (his own reaction, pressed), then gives it again.
    mine = bob.article("the final text").get_by_role("button", name="👍 1: bob")
    assert await mine.get_attribute("aria-pressed") == "true"
    await mine.click()
    await reaction.wait_for(state="detached")
    await bob.act(edited, "React")
    await edited.get_by_role("button", name="React with 👍").click()
    await reaction.wait_for()

    await bob.act(edited, "Reply")
    await bob.say("agreed, see https://example.org/docs")
    reply = await alice.sees("agreed, see")
    assert "the final text" in await reply.locator(".reply-quote").inner_text()
    link = reply.get_by_role("link", name="https://example.org/docs")
    assert await link.get_attribute("target") == "_blank"
    assert "noopener" in (await link.get_attribute("rel") or "")

    await bob.say("**bold** and `code` <img src=x onerror=alert(1)> <script>alert(2)</script>")
    formatted = await alice.sees("bold and code")
    assert await formatted.locator("strong").inner_text() == "bold"
    assert await formatted.locator("code").inner_text() == "code"
    assert await formatted.locator("img, script").count() == 0
    assert "<img src=x" in await formatted.inner_text(), "raw HTML is shown as text"

    await alice.say("/topic Rich events, tested")
    await bob.page.get_by_text("Rich events, tested").first.wait_for()
    assert await bob.page.locator(".view-topic").inner_text() == "Rich events, tested"

    await alice.say("this one goes away")
    doomed = await bob.sees("this one goes away")
    await alice.shot("04-rich-before-delete")
    await alice.act(alice.article("this one goes away"), "Delete")
    await doomed.wait_for(state="detached")
    await alice.article("this one goes away").wait_for(state="detached")
    await alice.shot("05-rich")
    await bob.shot("05-rich")
    # Someone else's message offers no Edit or Delete.
    theirs = alice.article("agreed, see")
    assert await theirs.get_by_role("button", name="Edit").count() == 0
    for page in (alice, bob):
        assert page.errors() == [], page.errors()


async def test_direct_messages_and_a_guest_cannot_read_them(
    server: Server, people: dict[str, Any]
) -> None:
    alice = await people["new"]("alice")
    bob = await people["new"]("bob")
    guest = await people["new"]("guest")
    await alice.login("alice", PASSWORDS["alice"])
    await bob.login("bob", PASSWORDS["bob"])
    nav = alice.page.get_by_role("navigation", name="Channels")
    await nav.get_by_role("textbox", name="Start a conversation with").fill("bob")
    await nav.get_by_role("button", name="Open").click()
    await alice.page.get_by_role("heading", name="bob").wait_for()
    # Bob is online (his page is open): the presence dot says so once he reconnects.
    await alice.say("psst, a secret for bob only")
    await alice.sees("psst, a secret for bob only")
    await bob.open_view("alice")
    await bob.sees("psst, a secret for bob only")
    await bob.say("got it")
    await alice.sees("got it")
    await bob.page.reload()
    await bob.open_view("alice")
    await bob.sees("psst, a secret for bob only")
    await bob.sees("got it")
    await alice.shot("06-dm")
    await bob.shot("06-dm")

    await guest.as_guest()
    gnav = guest.page.get_by_role("navigation", name="Channels")
    await gnav.get_by_role("textbox", name="Start a conversation with").fill("bob")
    await gnav.get_by_role("button", name="Open").click()
    await guest.page.get_by_role("heading", name="bob").wait_for()
    await guest.page.wait_for_timeout(500)
    assert await guest.count("psst") == 0
    await guest.shot("07-guest-dm-view")
    # And not through the protocol either: another user's topic is theirs alone.
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.base.replace("http", "ws", 1) + "/scalar", origin=server.base) as ws,
    ):
        for request in (
            {"t": "ident", "v": 1, "rid": 1},
            {"t": "catchup", "topic": f"bob@{DOMAIN}", "rid": 2},
            {"t": "sub", "topic": f"bob@{DOMAIN}", "rid": 3},
        ):
            await ws.send_bytes(cbor2.dumps(request))
            reply = cbor2.loads((await ws.receive(timeout=5)).data)
            if request["rid"] == 2:
                assert reply["code"] == "forbidden"
        async with await server.client("alice") as tcp:
            await tcp.publish(f"bob@{DOMAIN}", "another secret")
        await bob.sees("another secret")
        with pytest.raises(asyncio.TimeoutError):
            while True:
                frame = cbor2.loads((await ws.receive(timeout=1)).data)
                assert "secret" not in str(frame.get("body", "")), frame
    for page in (alice, bob, guest):
        assert page.errors() == [], page.errors()


async def test_a_websocket_from_another_site_is_refused(
    server: Server, people: dict[str, Any]
) -> None:
    """A page on another origin tries the visitor's browser against /scalar."""

    async def evil(_: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>elsewhere</title>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/", evil)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        page = await people["new"]("elsewhere")
        await page.page.goto(f"http://localhost:{port}/")
        outcome = await page.page.evaluate(
            """url => new Promise(done => {
                const ws = new WebSocket(url);
                ws.onopen = () => done("open");
                ws.onerror = () => done("refused");
            })""",
            server.base.replace("http", "ws", 1) + "/scalar",
        )
        assert outcome == "refused"
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                server.base + "/scalar",
                headers={
                    "Origin": f"http://localhost:{port}",
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            ) as r,
        ):
            assert r.status == 403
    finally:
        await runner.cleanup()


async def test_restart_reconnects_and_fills_the_gap_once(
    server: Server, people: dict[str, Any]
) -> None:
    alice = await people["new"]("alice")
    await alice.login("alice", PASSWORDS["alice"])
    await alice.join("restart")
    await alice.say("before the restart")
    await alice.sees("before the restart")
    banner = alice.page.get_by_role("alert").filter(has_text="Connection lost")

    await asyncio.to_thread(server.proc.stop)
    await banner.wait_for()
    await alice.shot("08-connection-lost")
    await alice.say("typed while the server was away")
    await alice.page.get_by_text("Waiting for the connection").wait_for()
    await asyncio.to_thread(server.restart)
    async with await server.client("bob") as bob:
        await bob.sub(f"#restart@{DOMAIN}")
        said = [f"said meanwhile {i}" for i in range(3)]
        for text in said:
            await bob.publish(f"#restart@{DOMAIN}", text)
        await banner.wait_for(state="hidden", timeout=40_000)
        for text in [*said, "typed while the server was away", "before the restart"]:
            await alice.sees(text)
        await bob.publish(f"#restart@{DOMAIN}", "live after the reconnect")
        await alice.sees("live after the reconnect")
        await alice.shot("09-reconnected")
        for text in [*said, "typed while the server was away", "before the restart"]:
            assert await alice.count(text) == 1, text
        history = await bob.catchup(f"#restart@{DOMAIN}")
        bodies = [e.body for e in history.events]
        assert bodies.count("typed while the server was away") == 1
    assert alice.errors(allow=WS_FAILURE) == [], alice.errors()


async def test_history_loads_as_you_scroll_up(server: Server, people: dict[str, Any]) -> None:
    topic = f"#history@{DOMAIN}"
    async with await server.client("bob") as bob:
        await bob.sub(topic)
        for i in range(130):
            await bob.publish(topic, f"history line {i:03d}")
    alice = await people["new"]("alice", viewport={"width": 900, "height": 600})
    await alice.login("alice", PASSWORDS["alice"])
    await alice.join("history")
    await alice.sees("history line 129")
    assert await alice.count("history line 000") == 0, "only the latest page at first"
    timeline = alice.page.get_by_role("log")
    top_of = """(el, text) => {
        const a = [...el.querySelectorAll("article")].find((x) => x.textContent.includes(text));
        return a.getBoundingClientRect().top - el.getBoundingClientRect().top;
    }"""
    # at the top, the oldest line shown is where the reader is: it stays put as a page lands
    before = await timeline.evaluate(
        f"el => {{ el.scrollTop = 0; return ({top_of})(el, 'history line 080'); }}"
    )
    await alice.sees("history line 079")
    await alice.page.wait_for_timeout(100)
    after = await timeline.evaluate(f"el => ({top_of})(el, 'history line 080')")
    assert abs(after - before) < 3, f"the view jumped from {before} to {after} px"
    for _ in range(20):
        if await alice.count("history line 000"):
            break
        await timeline.evaluate("el => { el.scrollTop = 0; }")
        await alice.page.wait_for_timeout(200)
    await alice.sees("history line 000")
    texts = await alice.page.get_by_role("article").locator(".body").all_inner_texts()
    lines = [t for t in texts if "history line" in t]
    assert lines == [f"history line {i:03d}" for i in range(130)], "each once, in order"
    await alice.shot("10-history-top")
    assert alice.errors() == [], alice.errors()
