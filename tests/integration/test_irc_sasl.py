"""SASL PLAIN with CAP negotiation against InspIRCd linked to Atheme services."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.ircd import InspIRCd, RawIRC

from .irc_helpers import bridge_config, irc_account, irc_adapter, statuses, wait_joined, wait_until

pytestmark = pytest.mark.ircd


def _name() -> str:
    return "bh" + uuid.uuid4().hex[:8]


async def test_sasl_plain_logs_the_bridge_in(
    tmp_path: Path, ircd_services: InspIRCd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account, password = _name(), "pw-" + uuid.uuid4().hex
    await ircd_services.register_nick_async(account, password)
    overrides = bridge_config(
        {
            "net": irc_account(
                ircd_services, account, sasl={"username": account, "password": password}
            )
        },
        [("room", [{"account": "net", "target": "#sasl"}])],
    )
    async with running(tmp_path, overrides) as srv:
        await wait_joined(srv)
        adapter = irc_adapter(srv, "net")
        assert adapter.conn is not None
        assert adapter.conn.sasl_account == account
        assert {"sasl", "echo-message"} <= adapter.conn.caps
        async with RawIRC(ircd_services.host, ircd_services.port, _name()) as probe:
            await probe.connect()
            await probe.send(f"WHOIS {account}")
            line = await probe.wait_for(lambda m: m.command in ("330", "318"))
            assert line.command == "330" and line.params[2] == account  # "is logged in as"
    blob = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()
    assert password not in caplog.text and blob not in caplog.text
    assert "AUTHENTICATE ***" in caplog.text  # logged, but only by its command


async def test_wrong_sasl_password_is_reported_without_a_tight_loop(
    tmp_path: Path, ircd_services: InspIRCd
) -> None:
    account = _name()
    await ircd_services.register_nick_async(account, "right-" + uuid.uuid4().hex)
    overrides = bridge_config(
        {
            "net": irc_account(
                ircd_services,
                account,
                sasl={"username": account, "password": "wrong"},
                reconnect_initial=0.1,
                reconnect_max=30,
            )
        },
        [("room", [{"account": "net", "target": "#sasl"}])],
    )
    async with running(tmp_path, overrides) as srv:
        status = statuses(srv)[0]
        await wait_until(lambda: status.state == "auth failed", 15, "auth failed")
        assert "SASL authentication failed (904" in (status.last_error or "")
        await asyncio.sleep(2)
        assert irc_adapter(srv, "net").connects == 1
        assert status.state == "auth failed"


async def test_sasl_configured_but_not_offered_fails_clearly(
    tmp_path: Path, ircd: InspIRCd
) -> None:
    overrides = bridge_config(
        {"net": irc_account(ircd, sasl={"password": "x"}, reconnect_max=30)},
        [("room", [{"account": "net", "target": "#room"}])],
    )
    async with running(tmp_path, overrides) as srv:
        status = statuses(srv)[0]
        await wait_until(lambda: status.state == "auth failed", 10, "auth failed")
        assert "no SASL PLAIN" in (status.last_error or "")


async def test_nickserv_password_identifies_after_connecting(
    tmp_path: Path, ircd_services: InspIRCd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account, password = _name(), "ns-" + uuid.uuid4().hex
    await ircd_services.register_nick_async(account, password)
    overrides = bridge_config(
        {"net": irc_account(ircd_services, account, nickserv_password=password)},
        [("room", [{"account": "net", "target": "#ns"}])],
    )
    async with (
        running(tmp_path, overrides) as srv,
        RawIRC(ircd_services.host, ircd_services.port, _name()) as probe,
    ):
        await wait_joined(srv)
        await probe.connect()

        async def logged_in() -> bool:
            mark = probe.mark()
            await probe.send(f"WHOIS {account}")
            line = await probe.wait_for(lambda m: m.command in ("330", "318"), since=mark)
            return line.command == "330"

        for _ in range(50):
            if await logged_in():
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the bridge never identified to NickServ")
    assert password not in caplog.text
